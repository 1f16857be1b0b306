"""Every stream, consumer group and key name livedesk uses, and the model each stream carries.

All names hang off one key prefix (`LIVEDESK_KEY_PREFIX`, default `livedesk`), so several deployments, a replay
or a test can share one server without seeing each other.

The prefix is a Redis Cluster hash tag: every name starts `{livedesk}:` (a prefix that already has a tag of its own,
such as `{desk}:eu`, is used as it is). So all of a deployment's keys hash to one slot, and every script and
transaction that touches several of them (a verdict with its keys, a new incident state with its events and indexes)
runs unchanged on one server and on a cluster. The price: one deployment lives on one cluster node (see
`services.connection`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from schemas import ChangeEvent, RawUpdate, Update

# Stream → the schemas model of its entries. A stream entry has one field, `__data__`, holding that model's JSON.
STREAM_MODELS: dict[str, type[BaseModel]] = {
    "raw": RawUpdate,
    "updates": Update,
    "changes": ChangeEvent,
}

# Stage → (stream it consumes, its consumer group).
STAGE_INPUTS: dict[str, tuple[str, str]] = {
    "dedup": ("raw", "dedup"),
    "tracker": ("updates", "tracker"),
    "notifier": ("changes", "notifier"),
}


def hash_tag(key: str) -> str | None:
    """The part of `key` Redis Cluster hashes, when it is not the whole key: what lies between its first `{` and the
    next `}`, if anything does."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1:end] if end > start + 1 else None


def _glob_escaped(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


@dataclass(frozen=True)
class Keys:
    """Names under one key prefix."""

    prefix: str = "livedesk"
    root: str = field(init=False, repr=False)  # how every name starts: the prefix as a hash tag

    def __post_init__(self) -> None:
        if hash_tag(self.prefix) is not None:
            root = self.prefix
        elif "{" in self.prefix or "}" in self.prefix:
            # A stray brace would end up in the tag or cut it short, and `everything` would match other prefixes.
            raise ValueError(f"key prefix {self.prefix!r}: braces only around a hash tag, as in '{{desk}}:eu'")
        else:
            root = f"{{{self.prefix}}}"
        object.__setattr__(self, "root", root)

    @property
    def everything(self) -> str:
        """A SCAN `MATCH` pattern for every key under this prefix, and under the prefixes that extend it (`<prefix>:…`,
        as a replay's private prefix does), and nothing else."""
        if self.root == self.prefix:  # tagged by the operator: extensions keep the tag and start the same way
            return f"{_glob_escaped(self.prefix)}:*"
        # `{p}:…` and the extensions' `{p:…}:…`
        return f"{{{_glob_escaped(self.prefix)}[:}}]*"

    def stream(self, name: str) -> str:
        """The Redis key of a stream: `raw`, `updates`, `changes` or `deadletter`."""
        return f"{self.root}:stream:{name}"

    @property
    def raw(self) -> str:
        return self.stream("raw")

    @property
    def updates(self) -> str:
        return self.stream("updates")

    @property
    def changes(self) -> str:
        return self.stream("changes")

    @property
    def deadletter(self) -> str:
        # Messages that failed too often, each with its original payload and the last error.
        return self.stream("deadletter")

    @property
    def deliveries(self) -> str:
        """Stream: every webhook delivery attempt and its outcome (`Delivery` JSON), capped in length."""
        return self.stream("deliveries")

    @property
    def hooks(self) -> str:
        """Hash: hook id → `Hook` JSON (the webhook rules the notifiers share)."""
        return f"{self.root}:hooks"

    def hook_queue(self, hook_id: str) -> str:
        """Stream: the change events one hook is still to be sent, in order (group `deliver`)."""
        return f"{self.root}:hook:{hook_id}:queue"

    @property
    def feeds(self) -> str:
        """Hash: feed id → FeedSource JSON (the live registry)."""
        return f"{self.root}:feeds"

    @property
    def feeds_due(self) -> str:
        """Sorted set: feed id scored by when it is next due (Unix seconds)."""
        return f"{self.root}:feeds:due"

    def feed_lease(self, source_id: str) -> str:
        """String with a TTL: the poller that is polling this feed now."""
        return f"{self.root}:feed-lease:{source_id}"

    def feed_state(self, source_id: str) -> str:
        """Hash: HTTP validators (etag, last_modified) and last poll outcome of one feed."""
        return f"{self.root}:feed:{source_id}"

    def websub(self, source_id: str) -> str:
        """Hash: the WebSub subscription of one feed (hub, topic, secret, state, lease end)."""
        return f"{self.root}:websub:{source_id}"

    @property
    def websub_due(self) -> str:
        """Sorted set: feed id scored by when its WebSub subscription is next to be requested or renewed."""
        return f"{self.root}:websub:due"

    def feed_links(self, source_id: str) -> str:
        """Hash: canonical entry link → the GUID it was last seen under in one feed (to spot GUIDs that change); once
        the feed's GUIDs are found unreliable, the GUID its entry keeps; `""` for a link several GUIDs share."""
        return f"{self.root}:links:{source_id}"

    def feed_seen(self, source_id: str) -> str:
        """Hash: entry identity → content fingerprint last published by the poller for one feed."""
        return f"{self.root}:seen:{source_id}"

    def dedup_entry(self, identity: str) -> str:
        """Hash, expiring with the dedup window: `current` = `fingerprint fetched_ms raw_entry_id` of the entry's latest
        judged version, and one `v:<fingerprint>` field per version ever judged."""
        return f"{self.root}:dedup:entry:{identity}"

    def dedup_story(self, story: str) -> str:
        """String, expiring with the window: `update_id|identity` of the first entry with this exact text."""
        return f"{self.root}:dedup:story:{story}"

    def dedup_near(self, bucket: int) -> str:
        """Hash, expiring a window after its time bucket ends: the near-copy index of the updates judged in bucket
        number `bucket` (LSH band → update ids; update id → compact signature and source; see `services.dedup.stage`).
        """
        return f"{self.root}:dedup:near:{bucket}"

    @property
    def poll_stats(self) -> str:
        """Hash: how many polls the pollers finished (`polls`), how many were answered 304 (`not_modified`) and how
        many failed (`failed`), over every feed since the deployment began."""
        return f"{self.root}:poll:stats"

    @property
    def dedup_stats(self) -> str:
        """Hash: how many raw entries got each verdict, and how many were exact repeats (dropped)."""
        return f"{self.root}:dedup:stats"

    def incident(self, incident_id: str) -> str:
        """Hash: `state` (the incident's JSON) and `rev` (its compare-and-set revision)."""
        return f"{self.root}:incident:{incident_id}"

    def incident_history(self, incident_id: str) -> str:
        """Stream: every stored revision of the incident, oldest first (`IncidentVersion` JSON in `__data__`)."""
        return f"{self.root}:incident:{incident_id}:history"

    @property
    def incident_index(self) -> str:
        """Sorted set: incident id scored by the reported time of its newest evidence."""
        return f"{self.root}:incidents"

    @property
    def item_index(self) -> str:
        """Hash: entry identity and update id → the incident it was merged into."""
        return f"{self.root}:items"

    def source_incidents(self, source_id: str) -> str:
        """Sorted set: ids of the incidents a source reported on, scored by their newest evidence."""
        return f"{self.root}:source-incidents:{source_id}"

    @property
    def tracker_words(self) -> str:
        """Hash: word → in how many reports the tracker read it; field `__reports__`: how many it read."""
        return f"{self.root}:tracker:words"

    def source_words(self, source_id: str) -> str:
        """Hash: as `tracker_words`, over the reports of one source only (what its site puts on many pages)."""
        return f"{self.root}:tracker:words:{source_id}"

    def word_incidents(self, word: str) -> str:
        """Set: ids of the incidents whose reports have `word` among their most distinctive."""
        return f"{self.root}:word:{word}"

    def place(self, place: str) -> str:
        """Sorted set: ids of the recent incidents whose reports name `place` (lower case), scored by their newest
        evidence."""
        return f"{self.root}:place-incidents:{place}"
