"""The one settings object: built once per process from `LIVEDESK_*` variables and passed down."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.names import Keys


def _default_consumer() -> str:
    # Unique per process: FastStream needs a consumer name per replica, and a restarted process must not inherit
    # the pending list of a dead one by accident (the reclaimer takes those over on purpose).
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Every knob of livedesk. Durations carry their unit in the name."""

    model_config = SettingsConfigDict(env_prefix="LIVEDESK_", env_file=".env", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="Redis or Valkey to use; unset starts an embedded Valkey under `data_dir`."
    )
    key_prefix: str = Field(default="livedesk", min_length=1, description="Prefix of every key and stream, used as "
                            "their Redis Cluster hash tag ({livedesk}:stream:raw); one with a tag of its own, such as "
                            "{desk}:eu, is used as written.")
    data_dir: Path = Field(default=Path(".livedesk"), description="Where the embedded server keeps its data.")
    sources: Path | None = Field(default=None, description="The feed registry: a TOML file of `[[source]]` tables.")

    poll_interval_s: float = Field(default=300.0, gt=0, description="How often each feed is polled.")
    poll_min_interval_s: float = Field(default=60.0, gt=0, description="No feed is polled more often.")
    poll_max_interval_s: float = Field(default=3600.0, gt=0, description="Every feed is polled at least this often.")
    poll_hot_interval_s: float = Field(default=60.0, gt=0, description="Interval of a feed on a changing incident.")
    poll_hot_quiet_s: float = Field(default=3600.0, gt=0, description="A feed stays hot until quiet this long.")
    poll_backoff_base_s: float = Field(default=60.0, gt=0, description="First retry delay after an error.")
    poll_max_in_flight: int = Field(default=50, ge=1, description="Polls one poller runs at once.")
    poll_per_host: int = Field(default=2, ge=1, description="Requests in flight to one host at once.")
    poll_host_gap_s: float = Field(default=0.5, ge=0, description="Minimum time between two requests to one host.")
    http_timeout_s: float = Field(default=20.0, gt=0)
    http_connect_timeout_s: float = Field(default=5.0, gt=0)
    poll_lease_s: float | None = Field(
        default=None, gt=0, description="How long a poller holds a feed it polls: a dead poller's feeds are taken "
        "over once it runs out. Unset: twice `http_timeout_s` plus 30 s. It must exceed `http_timeout_s`, which "
        "bounds a whole fetch; shorter than a fetch and its parse, another poller may poll the feed as well.")
    http_max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="Bodies past this are refused.")
    allow_private_hosts: bool = Field(
        default=False, description="Allow feeds on loopback and private addresses (tests, an intranet feed server)."
    )
    user_agent: str = "livedesk/0.1 (+https://github.com/livedesk/livedesk)"

    http_host: str = Field(default="127.0.0.1", description="Address the HTTP process (WebSub callbacks) listens on.")
    http_port: int = Field(default=8400, ge=0, le=65535, description="Port the HTTP process listens on.")
    public_url: str | None = Field(
        default=None,
        description="Base URL at which hubs reach the HTTP process, e.g. `https://livedesk.example.org`; "
        "unset turns WebSub push off (feeds are polled only).",
    )
    websub_lease_s: int = Field(default=10 * 86_400, ge=60, description="Subscription lease asked of WebSub hubs.")

    consumer: str = Field(default_factory=_default_consumer, description="This process's consumer name.")
    batch_size: int = Field(default=50, ge=1, le=1000, description="Entries read from a stream at once.")
    reclaim_idle_ms: int = Field(
        default=60_000, ge=100, description="A pending entry idle this long is taken over from its dead consumer."
    )
    turn_wait_ms: int = Field(
        default=5_000, ge=0, description="How long a copy of a stage waits for the batches other copies read before "
        "its own, so that copies handle a stream in order (`services.turns`); past it, the copy holding them is taken "
        "for dead and no longer waited for (at most half of `reclaim_idle_ms`). 0: copies do not wait (throughput over "
        "order).")
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before a failing entry is dead-lettered.")
    stream_retention_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="Stream entries older than this and read by every group are trimmed."
    )
    stream_max_len: int = Field(
        default=1_000_000, ge=1, description="Entries past the newest this many on `raw`, `updates` and `changes` "
        "are trimmed too, once every group has read and acknowledged them; entries a group still needs are kept past "
        "it, and the group's lag is logged.")
    max_backlog: int = Field(
        default=10_000, ge=0, description="Back-pressure: pollers claim no feed while a stage (dedup, tracker, "
        "notifier) has more than this many entries unread or unacknowledged; 0 turns it off.")

    dedup_window_s: int = Field(
        default=7 * 86_400, ge=60, description="How long dedup remembers entries, texts and near-copy signatures."
    )
    dedup_near_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Estimated Jaccard similarity from which a text is a near-copy."
    )
    tracker_extractor: str = Field(
        default="rules", min_length=1,
        description="The fact extractor: 'rules' (shipped, offline) or 'package.module:callable' with the same "
                    "interface (services.tracker.extractors).",
    )
    extract_cpu_s: float = Field(
        default=5.0, ge=0, description="CPU seconds reading the facts of one text may take (the tracker reading an "
        "update, dedup comparing two versions of an entry; an article takes milliseconds): past it the entry is "
        "dead-lettered with the error, and the stream flows on. 0: no limit.")

    hooks_file: Path | None = Field(
        default=None, description="Webhook rules: a TOML file of `[[hook]]` tables, loaded when the notifier starts "
        "(`livedesk hooks add` adds more at run time).")
    notifier_batch_wait_ms: int = Field(
        default=20, ge=0, le=1000, description="After reading fewer than `batch_size` changes, how long the notifier "
        "waits before it reads again. Behind a busy tracker, changes come one at a time: waiting lets the next read "
        "take several, queued for the hooks in one round trip instead of one each. Adds up to this much to a "
        "webhook's latency; 0: no wait.")
    hook_timeout_s: float = Field(default=10.0, gt=0, description="Default timeout of one webhook delivery.")
    hook_max_age_s: float = Field(default=86_400.0, gt=0, description="Default time a delivery is retried before "
                                  "it goes to the dead letters.")
    hook_coalesce_s: float = Field(default=0.0, ge=0, description="Default coalescing window; 0 sends each event "
                                   "alone.")
    hook_retry_base_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles per attempt, jittered.")
    hook_retry_max_s: float = Field(default=600.0, gt=0, description="Longest delay between two attempts (a "
                                    "receiver's Retry-After may ask for longer, up to the delivery's max age).")
    hook_parallel_incidents: int = Field(default=8, ge=1, description="Incidents one hook delivers at once; events "
                                         "of one incident always go one after another, in order.")
    hook_queue_max_len: int = Field(default=100_000, ge=1, description="Events one hook's queue holds at most: past "
                                    "it, the oldest not yet being sent go to the dead letters (`livedesk hooks "
                                    "redeliver` sends them again).")
    deliveries_kept: int = Field(default=10_000, ge=100, description="Delivery attempts kept on the `deliveries` "
                                 "stream (approximately).")

    console_token: str | None = Field(
        default=None, min_length=16, description="Bearer token the console's API and page require. Unset on a "
        "loopback address means open; the console refuses to start on any other address without one.")

    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def keys(self) -> Keys:
        return Keys(self.key_prefix)

    @property
    def poll_lease_ms(self) -> int:
        """`poll_lease_s` in milliseconds, or its default."""
        lease_s = self.poll_lease_s if self.poll_lease_s is not None else 2 * self.http_timeout_s + 30
        return int(lease_s * 1000)

    @model_validator(mode="after")
    def _lease_outlasts_a_fetch(self) -> Settings:
        if self.poll_lease_s is not None and self.poll_lease_s <= self.http_timeout_s:
            raise ValueError(f"poll_lease_s ({self.poll_lease_s:g} s) must exceed http_timeout_s "
                             f"({self.http_timeout_s:g} s), which bounds a whole fetch: a shorter lease would hand a "
                             "feed to another poller while its poll is still running")
        return self

    @field_validator("key_prefix")
    @classmethod
    def _names_keys(cls, prefix: str) -> str:
        Keys(prefix)  # refuses stray braces when the settings load, not at the first key name
        return prefix
