"""`GET /events`: the change events as Server-Sent Events, filtered, resumable and kept alive.

Each event is `id: <its id on the changes stream>` and `data: <ChangeEvent JSON>` (the default `message` type). A
client that reconnects with `Last-Event-ID` (EventSource does so by itself) gets every event after that id that is
still on the stream; `?last_event_id=` does the same for a first connection (the incident list gives the id to start
from). Without either, the stream starts at the newest event. The stream ends when the client goes away or the
console is stopped (`Console.stop`).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from pydantic import ValidationError
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from schemas import ChangeEvent, Incident
from schemas.subscriptions import EventFilter
from services.console.auth import TOKEN_PARAMETER
from services.console.http import Handler, Problem, only
from services.console.incidents import last_event_id
from services.filters import FilterSyntaxError, matches, parse_where
from services.names import Keys
from services.tracker.store import IncidentStore
from services.wire import entry_data

log = structlog.get_logger(__name__)

FILTER_PARAMETERS = ("type", "field", "category", "region", "near", "corroboration")
RESUME_PARAMETER = "last_event_id"
_STREAM_ID = re.compile(r"^\d+(-\d+)?$")
_READ_COUNT = 100
_RETRY_MS = 3000  # how long a browser waits before reconnecting


def event_filter(request: Request) -> EventFilter:
    """The filter the query asks for, in `services.filters.parse_where` terms; Problem 400 naming a bad parameter."""
    terms: list[str] = []
    for name in FILTER_PARAMETERS:
        named = [shlex.quote(f"{name}={value}") for value in request.query_params.getlist(name)]
        try:
            parse_where(named)  # alone first, so that the error names its parameter
        except FilterSyntaxError as error:
            raise Problem(400, f"{name}: {error}", name) from None
        terms += named
    return parse_where(terms)


def start_id(request: Request) -> str | None:
    """Where to resume: `Last-Event-ID`, else `?last_event_id=`, else None (from now)."""
    given = request.headers.get("last-event-id") or request.query_params.get(RESUME_PARAMETER)
    if given is None or not given.strip():
        return None
    if not _STREAM_ID.match(given.strip()):
        raise Problem(400, f"Last-Event-ID {given!r} is not an id this stream gave out (like 1761300000000-0)",
                      RESUME_PARAMETER)
    return given.strip()


def own_connection(redis: Redis) -> Redis:
    """A client with one connection of its own, made like `redis`'s: a blocking read must not hold a connection of
    the shared pool for seconds, and cancelling it must not leave a half-read reply there."""
    shared = redis.connection_pool
    pool = ConnectionPool(connection_class=shared.connection_class, max_connections=1, **shared.connection_kwargs)
    return Redis.from_pool(pool)


class EventStream:
    """The SSE body of one client: reads `changes` after `last` and yields what passes `where`."""

    def __init__(self, redis: Redis, keys: Keys, where: EventFilter, last: str, stopping: asyncio.Event,
                 keepalive_s: float, block_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._where = where
        self._last = last
        self._stopping = stopping
        self._keepalive_s = keepalive_s
        self._block_ms = block_ms

    async def _incident(self, event: ChangeEvent) -> Incident | None:
        """The event's incident as it stands, when the filter needs it; None when unknown or unreadable (a filter on
        the incident then passes nothing of it, and the stream goes on)."""
        if not self._where.needs_incident:
            return None
        try:
            loaded = await IncidentStore(self._redis, self._keys).load([event.incident_id])
        except ValidationError:
            log.warning("incident state not readable; its events are not passed", incident_id=event.incident_id)
            return None
        return loaded[event.incident_id][0] if event.incident_id in loaded else None

    async def body(self) -> AsyncIterator[str]:
        """The stream's text. A failure while it runs (Redis gone, say) ends it with a line in the log, never a
        traceback to the client: the browser reconnects with `Last-Event-ID` and misses nothing still on the stream."""
        reader = own_connection(self._redis)
        try:
            yield f"retry: {_RETRY_MS}\n: connected\n\n"
            async for chunk in self._events(reader):
                yield chunk
        except RedisError as error:
            log.warning("event stream ended: Redis", error=str(error), last_event_id=self._last)
        except Exception:
            log.exception("event stream ended: failure", last_event_id=self._last)
        finally:
            # Shielded: a client that went away cancels this body, and an unshielded close would be cancelled too,
            # leaving the connection open.
            with anyio.CancelScope(shield=True):
                await reader.aclose()

    async def _events(self, reader: Redis) -> AsyncIterator[str]:
        sent_at = time.monotonic()
        # Short blocks: the loop looks at `stopping` between them, so a stopping server is never held up long.
        while not self._stopping.is_set():
            rows: Any = await reader.xread({self._keys.changes: self._last}, block=self._block_ms, count=_READ_COUNT)
            for _, entries in rows or []:
                for entry_id, data in entry_data(entries):
                    self._last = entry_id
                    try:
                        event = ChangeEvent.model_validate_json(data)
                    except ValidationError:
                        log.warning("change event not readable; skipped", entry_id=entry_id)
                        continue
                    if matches(self._where, event, await self._incident(event)):
                        sent_at = time.monotonic()
                        yield f"id: {entry_id}\ndata: {event.model_dump_json()}\n\n"
            if time.monotonic() - sent_at >= self._keepalive_s:
                sent_at = time.monotonic()
                yield ": keep-alive\n\n"


def events_handler(redis: Redis, keys: Keys, stopping: asyncio.Event, keepalive_s: float,
                   block_ms: int = 1000) -> Handler:
    async def route(request: Request) -> Response:
        only(request, (*FILTER_PARAMETERS, RESUME_PARAMETER, TOKEN_PARAMETER))
        where = event_filter(request)
        last = start_id(request) or await last_event_id(redis, keys) or "0-0"
        stream = EventStream(redis, keys, where, last, stopping, keepalive_s, block_ms)
        # no-cache and X-Accel-Buffering: proxies (nginx) must pass each event on as it comes, not buffer the body.
        return StreamingResponse(stream.body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return route
