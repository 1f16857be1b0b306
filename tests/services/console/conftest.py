"""The console on a real Redis, served by uvicorn on loopback, over data the real pipeline wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from schemas import Authority, FeedSource
from schemas.generate import JSON_DIR
from services.cli import DEMO_ARCHIVE
from services.connection import connect
from services.console.routes import Console, build_console, build_console_app
from services.names import Keys
from services.notifier.hooks import HookRegistry, make_hook
from services.poller.fetch import build_client
from services.poller.stage import Poller
from services.replay import replay
from services.settings import Settings
from services.stage import StageContext
from tests.support.feed_server import FeedServer, rss
from tests.support.notifier import QUICK_RETRIES, running_notifier
from tests.support.polling import FAST_POLLING
from tests.support.receivers import Receiver, failing, rate_limited
from tests.support.serving import served_in_thread, serving
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[3]
# The demo story and the scenario archives: four incidents (two shootings, a stabbing, a fire) in four regions.
ARCHIVES = [DEMO_ARCHIVE, *sorted(p for p in (ROOT / "tests" / "scenarios").iterdir() if p.is_dir())]
WALTHAMSTOW = "i_d7eb9d5ede296bf0"  # the demo's incident: its id follows from the first update's id
TOKEN = "console-token-0123456789"
HOOK_SECRET = "hook-secret-0123456789"
# Event streams that say they are idle after 0.3 s and notice a stop within 0.1 s: a test waits that long, not 15 s.
QUICK: dict[str, Any] = {"keepalive_s": 0.3, "block_ms": 100}


def is_valid(body: object, model: str) -> bool:
    """`body` validates against the checked-in JSON Schema of `model` (raises with the reason when not)."""
    jsonschema.validate(body, json.loads((JSON_DIR / f"{model}.json").read_text()))
    return True


def api_error(response: httpx.Response, status: int, parameter: str | None = None) -> dict[str, Any]:
    """The response is `status` with an ApiError body naming `parameter`; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert is_valid(body, "ApiError")
    assert body["parameter"] == parameter, body
    assert "Traceback" not in response.text
    return body


@contextlib.asynccontextmanager
async def console_at(settings: Settings, redis: Redis, **options: Any) -> AsyncIterator[tuple[str, Console]]:
    """The console of `settings.key_prefix` served on loopback: its base URL and the console."""
    console = build_console(StageContext(settings, redis), **options)
    async with serving(build_console_app(console), on_stop=console.stop) as base:
        yield base, console


@pytest.fixture
async def console_url(settings: Settings, redis: Redis) -> AsyncIterator[str]:
    """The console of the test's own key prefix, open (no token)."""
    async with console_at(settings, redis, **QUICK) as (base, _):
        yield base


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def _replay_all(settings: Settings, url: str) -> None:
    async def run() -> None:
        for archive in ARCHIVES:
            await replay(archive, settings, url, key_prefix=settings.key_prefix, keep=True)

    asyncio.run(run())


@pytest.fixture(scope="session")
def stories(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a key prefix holding the four archives replayed through the real dedup and tracker, read-only,
    shared by the session's tests (a replay of all four takes seconds)."""
    prefix = f"{{livedesk-test:{uuid.uuid4().hex[:12]}}}"  # a hash tag of its own, as the tests' prefixes are
    settings = Settings(_env_file=None, redis_url=redis_url, key_prefix=prefix,
                        data_dir=tmp_path_factory.mktemp("stories"), consumer=f"test-{uuid.uuid4().hex[:8]}",
                        log_format="json", log_level="warning")
    # Its own thread: a session fixture runs outside the tests' event loops, and asyncio.run needs none running.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(_replay_all, settings, redis_url).result(timeout=120)
    yield settings
    client = SyncRedis.from_url(redis_url)
    for key in client.scan_iter(match=Keys(prefix).everything, count=500):
        client.unlink(key)
    client.close()


@pytest.fixture(scope="session")
def stories_url(stories: Settings, redis_url: str) -> Iterator[str]:
    """The console of the replayed stories, served on loopback from a thread of its own for the whole session."""

    @contextlib.asynccontextmanager
    async def start() -> AsyncIterator[str]:
        redis = connect(redis_url)
        try:
            async with console_at(stories, redis, **QUICK) as (base, _):
                yield base
        finally:
            await redis.aclose()

    with served_in_thread(start) as base:
        yield base


@contextlib.asynccontextmanager
async def polled_feeds(settings: Settings, redis: Redis) -> AsyncIterator[FeedServer]:
    """Three feeds the real poller has polled on loopback: `good` (200, then 304 Not Modified), `broken` (not a
    feed: an error recorded) and `gone` (410: marked gone)."""
    fast = settings.model_copy(update=FAST_POLLING)
    with FeedServer() as server:
        server.routes["/good.xml"] = rss(("g1", "Council meeting moved to Thursday", "The agenda is unchanged."))
        server.routes["/broken.xml"] = b"this is not a feed"
        server.failures["/gone.xml"] = (410, {})
        sources = [FeedSource(id=name, name=f"{name.title()} Times", url=f"{server.url}/{name}.xml",
                              authority=Authority.news) for name in ("good", "broken", "gone")]
        async with build_client(fast) as http:
            task = asyncio.create_task(Poller(StageContext(fast, redis), sources, http).run())
            try:
                async def recorded() -> bool:
                    good, broken, gone = [await redis.hgetall(fast.keys.feed_state(name))
                                          for name in ("good", "broken", "gone")]
                    return (good.get(b"last_status") == b"304" and bool(broken.get(b"last_error"))
                            and gone.get(b"gone") == b"1")

                await eventually(recorded, timeout_s=15, what="every feed polled, the good one twice")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        yield server


# One item of an event stream: ("event", id, data JSON) or ("comment", text, None).
StreamItem = tuple[str, str | None, Any]


async def stream_items(response: httpx.Response) -> AsyncIterator[StreamItem]:
    """The Server-Sent Events of `response` as they come (the `retry:` field is left out)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip(), None
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif "data" in fields:
            yield "event", fields.get("id"), json.loads(fields["data"])
            fields = {}
        else:
            fields = {}


async def take(items: AsyncIterator[StreamItem], count: int, timeout_s: float = 10) -> list[tuple[str, Any]]:
    """The next `count` events (id, data), comments skipped."""
    events: list[tuple[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while len(events) < count:
            kind, text, data = await anext(items)
            if kind == "event":
                assert text is not None, "every event has an id"
                events.append((text, data))
    return events


async def then_idle(items: AsyncIterator[StreamItem], timeout_s: float = 10) -> None:
    """The stream sends a keep-alive before any other event: nothing more was there to send."""
    async with asyncio.timeout(timeout_s):
        while True:
            kind, text, data = await anext(items)
            assert kind == "comment", f"an event more than expected: {data}"
            if text == "keep-alive":
                return


@dataclass(frozen=True)
class Notified:
    """The demo story told to two hooks by the real notifier: `conditions` (its receiver failed once, then took
    the three condition changes) and `cordons` (its receiver asked to wait past the delivery's max age, so both
    cordon changes went to the dead letters)."""

    settings: Settings
    conditions: Receiver
    cordons: Receiver


@pytest.fixture
async def notified(settings: Settings, redis: Redis, redis_url: str) -> AsyncIterator[Notified]:
    fast = settings.model_copy(update=QUICK_RETRIES)
    await replay(DEMO_ARCHIVE, fast, redis_url, key_prefix=fast.keys.prefix, keep=True)
    with failing(1) as conditions, rate_limited(5, "120") as cordons:
        await HookRegistry(redis, fast.keys).upsert([
            make_hook(fast, {"id": "conditions", "url": conditions.url, "secret": HOOK_SECRET,
                             "where": "type=condition_updated"}),
            make_hook(fast, {"id": "cordons", "url": cordons.url, "secret": HOOK_SECRET, "where": "type=cordon_updated",
                             "max_age_s": 30}),
        ])
        async with running_notifier(redis, fast):
            async def told() -> bool:
                return (len(set(conditions.accepted_keys())) == 3 and await redis.xlen(fast.keys.deadletter) == 2
                        and await redis.xlen(fast.keys.deliveries) == 6)

            await eventually(told, timeout_s=20, what="three deliveries made, two dead-lettered")
        yield Notified(fast, conditions, cordons)
