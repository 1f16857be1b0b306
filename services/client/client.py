"""`Client`: a connection to one livedesk deployment, and the subscriptions to its change events."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis

from schemas import EventFilter, EventType, Incident
from services.client.start import Start, start_id
from services.client.subscription import ErrorHandler, IncidentLoader, Options, Subscription
from services.connection import connect as connect_redis
from services.filters import parse_where
from services.names import Keys
from services.tracker.store import IncidentStore

# (stream, group, consumer) of every open subscription in this process: two at once under one name would take each
# other's pending events for their own.
_ACTIVE: set[tuple[str, str, str]] = set()


def default_consumer(stream: str, group: str) -> str:
    """`<host>-<pid>`, unique per process; `-2`, `-3`… for further subscriptions open at once on the same group.

    The same name is used again once a subscription is closed, so a process that subscribes again re-reads what it
    left pending. A process that restarts has a new pid: give a fixed `consumer=` to re-read its own pending events
    at once instead of having them reclaimed after `min_idle_ms`.
    """
    base = f"{socket.gethostname()}-{os.getpid()}"
    name, n = base, 1
    while (stream, group, name) in _ACTIVE:
        n += 1
        name = f"{base}-{n}"
    return name


class Client:
    """A livedesk deployment's change events: `async with Client(url) as desk: async for e in desk.subscribe(...)`.

    `key_prefix` is the deployment's `LIVEDESK_KEY_PREFIX`. Pass `redis` to use a client of your own (it is not
    closed by `aclose`); otherwise one is opened from `url`, lazily (nothing connects before the first read).
    """

    def __init__(self, url: str | None = None, *, key_prefix: str = "livedesk", redis: Redis | None = None,
                 **redis_options: Any) -> None:
        if (url is None) == (redis is None):
            raise ValueError("give either url or redis")
        self._owned = redis is None
        # redis-py's `Redis.from_url` options (e.g. `socket_timeout`), for a client opened from `url`.
        self.redis: Redis = redis if redis is not None else connect_redis(url or "", **redis_options)
        self.keys = Keys(key_prefix)
        self._closes_with_subscription = False  # set by the module-level `subscribe`

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis connections this client opened. Subscriptions should be closed first."""
        if self._owned:
            await self.redis.aclose()

    async def load_incidents(self, incident_ids: Sequence[str]) -> dict[str, Incident]:
        """The current state of each incident found (one merged into another is answered with the survivor)."""
        loaded = await IncidentStore(self.redis, self.keys).load(incident_ids)
        return {incident_id: incident for incident_id, (incident, _) in loaded.items()}

    def subscribe(
        self,
        group: str,
        *,
        types: Iterable[EventType | str] = (),
        where: str | EventFilter | None = None,
        start: Start = "$",
        reset: bool = False,
        consumer: str | None = None,
        batch_size: int = 50,
        block_ms: int = 1000,
        min_idle_ms: int = 60_000,
        on_error: ErrorHandler | None = None,
        incidents: IncidentLoader | None = None,
    ) -> Subscription:
        """The change events of consumer group `group`, as a `Subscription` (async iterator and context manager).

        - `types` and `where` (the `--where` text, e.g. `"region=London corroboration=several"`, or an EventFilter)
          select events; the others are acknowledged unseen. Incident conditions (category, region, near,
          corroboration) are decided on the incident as it stands when the event is read.
        - `start` applies only when the group is created: `"$"` (default) new events only, `"0"` every event the
          stream still holds, a stream id (events after it) or an aware datetime (events written at or after it).
          An existing group resumes where it left off, unless `reset=True` moves it to `start` (XGROUP SETID: for
          every consumer of the group).
        - `consumer` names this reader in the group (default: `default_consumer`). Readers sharing a group split
          its events; each group gets every event.
        - Up to `batch_size` events are read at once; each is acknowledged on its own, after its body. Keep it small
          when bodies are slow: events read but not yet handled can be reclaimed by another consumer after
          `min_idle_ms`, which is also how long a crashed consumer's events wait before this one takes them over.
        - `on_error(entry_id, fields, error)` hears of malformed entries, which are then acknowledged.
        - `incidents` replaces the incident loader (default: `load_incidents`).
        """
        stream = self.keys.changes
        name = consumer or default_consumer(stream, group)
        if (stream, group, name) in _ACTIVE:
            raise ValueError(f"consumer {name!r} of group {group!r} is already subscribed in this process")
        options = Options(
            stream=stream, group=group, consumer=name, where=_filter(types, where), start=start_id(start),
            reset=reset, batch_size=batch_size, block_ms=block_ms, min_idle_ms=min_idle_ms,
        )
        _ACTIVE.add((stream, group, name))

        async def release() -> None:
            _ACTIVE.discard((stream, group, name))
            if self._closes_with_subscription:
                await self.aclose()

        return Subscription(self.redis, options, incidents=incidents or self.load_incidents, on_error=on_error,
                            on_close=release)


def _filter(types: Iterable[EventType | str], where: str | EventFilter | None) -> EventFilter:
    base = parse_where(where) if isinstance(where, str) else (where or EventFilter())
    wanted = [EventType(t) for t in types]
    return base.model_copy(update={"types": [*base.types, *wanted]}) if wanted else base


def connect(url: str, *, key_prefix: str = "livedesk", **redis_options: Any) -> Client:
    """A `Client` for `url` (redis://, rediss://, unix://, or redis+cluster:// for a Redis Cluster); `redis_options`
    go to `services.connection.connect`."""
    return Client(url, key_prefix=key_prefix, **redis_options)


def subscribe(url: str, group: str, *, key_prefix: str = "livedesk", **options: Any) -> Subscription:
    """`Client(url).subscribe(group, **options)` with a client that closes with the subscription. Use it as
    `async with livedesk.subscribe(url, "alerts") as events: async for event in events: ...` so that it is closed."""
    client = Client(url, key_prefix=key_prefix)
    client._closes_with_subscription = True
    return client.subscribe(group, **options)
