"""One consumer of the `changes` stream in a consumer group: `Subscription`, the iterator `Client.subscribe` returns.

Delivery is at-least-once. An event is acknowledged (XACK) only when the caller asks for the next one, so only after
the body of its `async for` finished; an exception in the body, a `break`, a cancelled task or a dead process
leaves it pending, and it is delivered again: to this consumer name when it subscribes again (its own pending
entries are read first), or to any consumer of the group once it has been idle for `min_idle_ms` (XAUTOCLAIM).
Event ids are deterministic, so a subscriber that must not act twice deduplicates on `event_id`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas import ChangeEvent, EventFilter, Incident
from services.filters import matches
from services.stage import raise_if_cancelled
from services.wire import DATA_FIELD, as_text

log = structlog.get_logger(__name__)

# Loads incidents by id (those not found are left out); what incident filters decide with.
IncidentLoader = Callable[[Sequence[str]], Awaitable[Mapping[str, Incident]]]
# Told about an entry that is not a change event: its stream id, its raw fields and the error. May be async.
ErrorHandler = Callable[[str, Mapping[str, str], Exception], Awaitable[None] | None]

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
_RETRY_FIRST_S, _RETRY_MAX_S = 0.5, 10.0


@dataclass(frozen=True)
class Options:
    """How a subscription reads; `Client.subscribe` documents each."""

    stream: str
    group: str
    consumer: str
    where: EventFilter
    start: str
    reset: bool = False
    batch_size: int = 50
    block_ms: int = 1000
    min_idle_ms: int = 60_000


class Subscription:
    """An async iterator of the `ChangeEvent`s of one consumer group, and an async context manager that closes it.

    Order: events come in stream order within each read; an event delivered again (reclaimed or re-read after a
    failure) comes when it is picked up, so after newer ones may already have been handled elsewhere.

    Events that do not pass the filter are acknowledged without being yielded. A malformed entry (no `__data__`, or
    JSON that is not a `ChangeEvent`) is logged, handed to `on_error` and acknowledged; if `on_error` raises, the
    exception ends the iteration and the entry stays pending. Redis connection errors are retried with backoff.
    """

    def __init__(self, redis: Redis, options: Options, *, incidents: IncidentLoader | None,
                 on_error: ErrorHandler | None, on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self._redis = redis
        self._options = options
        self._incidents = incidents
        self._on_error = on_error
        self._on_close = on_close
        self._ready: deque[tuple[str, ChangeEvent]] = deque()
        self._current: str | None = None  # yielded, not yet acknowledged
        self._last_id: str | None = None
        self._event_only = EventFilter(types=options.where.types, fields=options.where.fields)
        self._started = False
        self._closed = False
        self._own_cursor: str | None = "0"  # None once this consumer's earlier pending entries were all re-read
        self._claim_cursor = "0-0"
        self._next_claim = 0.0

    @property
    def consumer(self) -> str:
        """This subscription's consumer name in its group."""
        return self._options.consumer

    @property
    def entry_id(self) -> str | None:
        """The stream id of the event last yielded (pass it as `start` to resume a new group after it)."""
        return self._last_id

    def __aiter__(self) -> Subscription:
        return self

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def __anext__(self) -> ChangeEvent:
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            await self._retrying(self._create_group)
            self._started = True
        await self.ack()  # the caller asked for the next event: the body of the last one finished
        while not self._ready:
            raise_if_cancelled()
            await self._retrying(self._fill)
        self._current, event = self._ready.popleft()
        self._last_id = self._current
        return event

    async def ack(self) -> None:
        """Acknowledge the event last yielded now, e.g. before a `break` that should not leave it pending."""
        if self._current is not None:
            await self._retrying(self._ack, [self._current])
            self._current = None

    async def aclose(self) -> None:
        """Stop. The event last yielded and not acknowledged stays pending (see the module's docstring); events read
        but not yet yielded stay pending too, and come again to this consumer name or, after `min_idle_ms`, to
        another. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        if self._on_close is not None:
            await self._on_close()

    async def _create_group(self) -> None:
        opts = self._options
        try:
            await self._redis.xgroup_create(opts.stream, opts.group, id=opts.start, mkstream=True)
            log.info("consumer group created", group=opts.group, start=opts.start)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
            # An existing group keeps its position: `start` is where a group begins, not where a consumer does.
            if opts.reset:
                await self._redis.xgroup_setid(opts.stream, opts.group, id=opts.start)
                log.info("consumer group reset", group=opts.group, start=opts.start)

    async def _fill(self) -> None:
        """Read the next entries into `_ready`: first this consumer's own pending entries (left by an earlier run
        under the same name), then entries other consumers left idle for `min_idle_ms`, then new ones."""
        try:
            await self._take(await self._read())
        except BaseException:
            # Whatever was read is pending on this consumer: a retry (or a caller who goes on) reads it again first.
            self._own_cursor = "0"
            raise

    async def _take(self, entries: list[tuple[str, dict[str, str] | None]]) -> None:
        events: list[tuple[str, ChangeEvent]] = []
        done: list[str] = []
        for entry_id, fields in entries:
            if fields is None:
                done.append(entry_id)  # pending, but trimmed from the stream since: nothing left to deliver
                continue
            try:
                events.append((entry_id, ChangeEvent.model_validate_json(fields[DATA_FIELD])))
            except (KeyError, ValidationError, ValueError) as error:
                await self._malformed(entry_id, fields, error)
                done.append(entry_id)
        wanted = await self._wanted(events)
        done += [entry_id for entry_id, event in events if not wanted(event)]
        if done:
            await self._ack(done)
        # Only once nothing can fail any more: a retry of the whole read must not queue the same events twice.
        self._ready.extend((entry_id, event) for entry_id, event in events if wanted(event))

    async def _read(self) -> list[tuple[str, dict[str, str] | None]]:
        opts = self._options
        if self._own_cursor is not None:
            rows = await self._read_group(self._own_cursor, block_ms=None)
            self._own_cursor = rows[-1][0] if rows else None
            if rows:
                return rows
        now = time.monotonic()
        if now >= self._next_claim:
            cursor, claimed, *deleted = await self._redis.xautoclaim(
                opts.stream, opts.group, opts.consumer, opts.min_idle_ms, self._claim_cursor, count=opts.batch_size)
            self._claim_cursor = as_text(cursor)
            # A sweep ends at cursor 0-0; the next starts a while later, the previous one is continued at once.
            self._next_claim = now + _claim_interval_s(opts.min_idle_ms) if self._claim_cursor == "0-0" else now
            rows = _rows(claimed)
            if deleted and deleted[0]:  # Redis 7 and later list the pending ids it found trimmed, and drops them
                log.warning("pending events trimmed before they were handled", group=opts.group,
                            count=len(deleted[0]))
            if rows:
                log.info("events reclaimed", group=opts.group, consumer=opts.consumer, count=len(rows))
                return rows
        block = max(1, min(opts.block_ms, int((self._next_claim - time.monotonic()) * 1000)))
        return await self._read_group(">", block_ms=block)

    async def _read_group(self, from_id: str, block_ms: int | None) -> list[tuple[str, dict[str, str] | None]]:
        opts = self._options
        try:
            reply = await self._redis.xreadgroup(opts.group, opts.consumer, {opts.stream: from_id},
                                                 count=opts.batch_size, block=block_ms)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # The stream or group was deleted under us: start it again where this subscription was told to.
            log.warning("consumer group missing, created again", group=opts.group, start=opts.start)
            await self._create_group()
            return []
        # RESP2 replies [[stream, entries]], RESP3 {stream: [entries]}; either way one stream was asked for.
        if isinstance(reply, dict):
            return [row for (entries,) in reply.values() for row in _rows(entries)]
        return [row for _, entries in reply or [] for row in _rows(entries)]

    async def _wanted(self, events: list[tuple[str, ChangeEvent]]) -> Callable[[ChangeEvent], bool]:
        where = self._options.where
        incidents: Mapping[str, Incident] = {}
        # Load only the incidents of events the event-level conditions let through: one round trip per read.
        candidates = [event for _, event in events if matches(self._event_only, event, None)]
        if where.needs_incident and candidates and self._incidents is not None:
            incidents = await self._incidents(sorted({event.incident_id for event in candidates}))
        return lambda event: matches(where, event, incidents.get(event.incident_id))

    async def _malformed(self, entry_id: str, fields: Mapping[str, str], error: Exception) -> None:
        log.warning("malformed change event skipped", group=self._options.group, entry_id=entry_id,
                    error=f"{type(error).__name__}: {error}")
        if self._on_error is not None:
            outcome = self._on_error(entry_id, fields, error)
            if inspect.isawaitable(outcome):
                await outcome

    async def _ack(self, entry_ids: list[str]) -> None:
        await self._redis.xack(self._options.stream, self._options.group, *entry_ids)

    async def _retrying(self, step: Callable[..., Awaitable[None]], *args: Any) -> None:
        delay = _RETRY_FIRST_S
        while True:
            try:
                await step(*args)
                return
            except _TRANSIENT as error:
                log.warning("redis unavailable, retrying", group=self._options.group, error=str(error),
                            retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)


def _claim_interval_s(min_idle_ms: int) -> float:
    # Often enough that an abandoned event waits at most about 1.5 × min_idle_ms, never more than every 100 ms.
    return max(min_idle_ms / 2000, 0.1)


def _rows(entries: Any) -> list[tuple[str, dict[str, str] | None]]:
    """(entry id, fields as text, or None for an entry deleted while pending) of a stream reply's entries."""
    rows: list[tuple[str, dict[str, str] | None]] = []
    for entry_id, fields in entries or []:
        if entry_id is None:
            continue
        # Bytes that are not UTF-8 must not stop the loop: they fail validation as a malformed entry instead.
        text = {_text(k): _text(v) for k, v in fields.items()} if fields else None
        rows.append((as_text(entry_id), text))
    return rows


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
