"""Replay archives (design.md §4): a recorded slice of the world run through the live pipeline.

Every snapshot goes, in time order, through the same parse → diff → publish path as a live poll (with the snapshot
instant as the fetch time) and then through the real dedup and tracker stages on a private key prefix. The same
archive always gives the same events and the same incidents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from redis.asyncio import Redis

from schemas import ChangeEvent, FeedSource, Incident
from services.connection import connect
from services.errors import ConfigurationError, FeedError
from services.groups import BackPressure, backlog, ensure_groups
from services.names import Keys
from services.poller.diff import publish_changed, raw_updates
from services.poller.parse import parse_feed
from services.poller.registry import load_registry
from services.settings import Settings
from services.stage import StageContext
from services.tracker.store import IncidentStore
from services.wire import entry_data

log = structlog.get_logger(__name__)

# The stages a replay runs: the poller's part is the replay itself, which reads the snapshots.
REPLAY_STAGES = ("dedup", "tracker")
_SNAPSHOT_NAME = re.compile(r"^(?P<at>\d{8}T\d{6}Z)--(?P<source>[^/]+?)\.[A-Za-z0-9]+$")
EventSink = Callable[[ChangeEvent], Awaitable[None]]


@dataclass(frozen=True)
class Snapshot:
    """One feed document as served at one instant."""

    at: datetime
    source_id: str
    path: Path


@dataclass(frozen=True)
class Archive:
    sources: dict[str, FeedSource]
    snapshots: list[Snapshot]


@dataclass(frozen=True)
class ReplayResult:
    events: list[ChangeEvent]
    incidents: list[Incident]
    feed_errors: list[str]
    dead_letters: list[str]  # the error of every entry a stage gave up on: the output is incomplete if any


def read_archive(root: Path) -> Archive:
    """The archive's sources and its snapshots in time order; a malformed archive is refused with the file named."""
    sources = {source.id: source for source in load_registry(root / "sources.toml")}
    snapshot_dir = root / "snapshots"
    if not snapshot_dir.is_dir():
        raise ConfigurationError(f"archive {root}: no snapshots/ folder")
    snapshots: list[Snapshot] = []
    for path in sorted(snapshot_dir.iterdir()):
        if path.name.startswith("."):
            continue
        match = _SNAPSHOT_NAME.match(path.name)
        if not match:
            raise ConfigurationError(f"archive {root}: {path.name}: name is not <YYYYMMDDTHHMMSSZ>--<source-id>.<ext>")
        if match["source"] not in sources:
            raise ConfigurationError(f"archive {root}: {path.name}: source {match['source']!r} not in sources.toml")
        at = datetime.strptime(match["at"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        snapshots.append(Snapshot(at, match["source"], path))
    snapshots.sort(key=lambda s: (s.at, s.source_id))
    return Archive(sources, snapshots)


async def wait_drained(redis: Redis, keys: Keys, timeout_s: float = 300.0,
                       stages: Iterable[str] = REPLAY_STAGES) -> None:
    """Return once each of `stages` has read and acknowledged everything (seen empty twice in a row)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline not drained after {timeout_s:.0f} s: {await backlog(redis, keys, stages)}")
        work = await backlog(redis, keys, stages)
        quiet = quiet + 1 if not any(work.values()) else 0
        await asyncio.sleep(0.05)


class EventReader:
    """Reads the `changes` stream from the start, remembering where it got to."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._stream = keys.changes
        self._last = "-"

    async def new_events(self) -> list[ChangeEvent]:
        start = self._last if self._last == "-" else f"({self._last}"
        rows = entry_data(await self._redis.xrange(self._stream, min=start, max="+"))
        if rows:
            self._last = rows[-1][0]
        return [ChangeEvent.model_validate_json(data) for _, data in rows]


async def replay(
    root: Path,
    settings: Settings,
    url: str,
    *,
    key_prefix: str | None = None,
    pace_s: float = 0.0,
    on_event: EventSink | None = None,
    keep: bool = False,
    serve_console: bool = False,
    before_cleanup: Callable[[], Awaitable[None]] | None = None,
) -> ReplayResult:
    """Run the archive at `root` through the pipeline and return every change event and the final incidents.

    With `pace_s`, waits for the pipeline after each snapshot and pauses, handing each new event to `on_event` as
    it is committed (the demo); without it, publishes at full speed and waits once at the end. With
    `serve_console`, the console serves the replay's key prefix on `settings.http_host:http_port` while it runs and
    until `before_cleanup` (awaited once every event is read) returns. The private key prefix is removed afterwards
    unless `keep`.
    """
    from services.app import build_broker  # the app imports the stages; keep replay importable without them

    archive = read_archive(root)
    prefix = key_prefix or f"{settings.key_prefix}:replay:{uuid.uuid4().hex[:12]}"
    private = settings.model_copy(update={"key_prefix": prefix, "consumer": f"replay-{uuid.uuid4().hex[:8]}"})
    redis = connect(url)
    ctx = StageContext(private, redis)
    keys = ctx.keys
    reader = EventReader(redis, keys)
    errors: list[str] = []
    events: list[ChangeEvent] = []
    try:
        await ensure_groups(redis, keys, REPLAY_STAGES)
        # A replay publishes as fast as it reads files: like a poller, it waits while its stages are far behind.
        pressure = BackPressure(redis, keys, private.max_backlog, stages=REPLAY_STAGES, who="replay")
        broker = build_broker(ctx, url, REPLAY_STAGES)
        async with contextlib.AsyncExitStack() as serving, broker:
            if serve_console:
                await serving.enter_async_context(_console(ctx))
            await broker.start()
            for snapshot in archive.snapshots:
                source = archive.sources[snapshot.source_id]
                try:
                    parsed = parse_feed(
                        snapshot.path.read_bytes(), feed=f"{source.id} ({snapshot.path.name})", base_url=source.url
                    )
                except FeedError as error:
                    log.warning("snapshot skipped", snapshot=snapshot.path.name, error=str(error))
                    errors.append(str(error))
                    continue
                await pressure.wait()
                await publish_changed(redis, keys, source.id, raw_updates(source, parsed.entries, snapshot.at))
                if pace_s:
                    await wait_drained(redis, keys)
                    for event in await reader.new_events():
                        events.append(event)
                        if on_event:
                            await on_event(event)
                    await asyncio.sleep(pace_s)
            await wait_drained(redis, keys)
            for event in await reader.new_events():
                events.append(event)
                if on_event:
                    await on_event(event)
            incidents = await IncidentStore(redis, keys).all()
            dead = [json.loads(data)["error"] for _, data in entry_data(await redis.xrange(keys.deadletter))]
            if before_cleanup:
                await before_cleanup()
        return ReplayResult(events, incidents, errors, dead)
    finally:
        if not keep:
            await delete_prefix(redis, prefix)
        await redis.aclose()


@contextlib.asynccontextmanager
async def _console(ctx: StageContext) -> AsyncIterator[None]:
    """The console of `ctx`'s key prefix, served until the block ends."""
    from services.console.auth import check_console_binding
    from services.console.routes import build_console
    from services.web import build_web_app, http_server

    check_console_binding(ctx.settings)
    console = build_console(ctx)
    server = http_server(build_web_app(ctx, websub=False, console=console), ctx.settings.http_host,
                         ctx.settings.http_port)
    task = asyncio.create_task(server.serve(), name="console")
    while not server.started:
        if task.done():  # the port is taken, say: uvicorn has logged why
            raise ConfigurationError(f"the console could not listen on {ctx.settings.http_host}:"
                                     f"{ctx.settings.http_port}")
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        console.stop()
        server.should_exit = True
        await task


async def delete_prefix(redis: Redis, prefix: str) -> int:
    """Delete every key under `prefix` and the prefixes that extend it (`Keys.everything`; never anything else);
    returns how many. On a cluster the scan visits every node."""
    deleted = 0
    async for key in redis.scan_iter(match=Keys(prefix).everything, count=500):
        deleted += await redis.unlink(key)
    return deleted
