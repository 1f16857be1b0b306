"""The poller against feeds served by a real HTTP server on loopback, publishing to a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from schemas import Authority, FeedSource, RawUpdate
from services.errors import FeedError
from services.poller.fetch import build_client
from services.poller.stage import Poller
from services.settings import Settings
from services.stage import StageContext
from services.wire import entry_data
from tests.support.feed_server import FeedServer, rss
from tests.support.polling import FAST_POLLING
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def source(server: FeedServer, name: str) -> FeedSource:
    return FeedSource(id=name, name=name, url=f"{server.url}/{name}.xml", authority=Authority.news)


async def published(redis: Redis, settings: Settings) -> list[RawUpdate]:
    rows = await redis.xrange(settings.keys.raw)
    return [RawUpdate.model_validate_json(data) for _, data in entry_data(rows)]


async def test_new_then_not_modified_then_edited(server: FeedServer, redis: Redis, settings: Settings) -> None:
    """200 publishes every entry; 304 publishes nothing and is asked with the ETag; an edit publishes one entry."""
    server.routes["/a.xml"] = rss(("g1", "Man shot", "critical"), ("g2", "Cordon", "in place"))
    feed = source(server, "a")
    async with build_client(settings) as client:
        poller = Poller(StageContext(settings, redis), [feed], client)
        assert await poller.poll(feed) == 2
        assert await poller.poll(feed) == 0
        assert server.requests[-1][1] is not None  # the second request was conditional
        server.routes["/a.xml"] = rss(("g1", "Man shot", "now stable"), ("g2", "Cordon", "in place"))
        assert await poller.poll(feed) == 1
    entries = await published(redis, settings)
    assert [(u.entry.guid, u.entry.text) for u in entries] == [("g1", "critical"), ("g2", "in place"),
                                                                ("g1", "now stable")]
    assert entries[0].identity == entries[2].identity
    assert entries[0].fingerprint != entries[2].fingerprint


async def test_missing_and_broken_feeds_fail_alone(server: FeedServer, redis: Redis, settings: Settings) -> None:
    """404 and broken XML raise a FeedError naming the feed; a good feed polled alongside still publishes."""
    server.routes["/good.xml"] = rss(("g1", "Man shot", "critical"))
    server.routes["/broken.xml"] = b"<rss version=\"2.0\"><channel></rss>"
    good, broken, missing = source(server, "good"), source(server, "broken"), source(server, "missing")
    async with build_client(settings) as client:
        poller = Poller(StageContext(settings, redis), [good, broken, missing], client)
        with pytest.raises(FeedError, match="missing") as not_found:
            await poller.poll(missing)
        assert "404" in str(not_found.value)
        with pytest.raises(FeedError, match="broken"):
            await poller.poll(broken)
        assert await poller.poll(good) == 1


async def test_loop_keeps_polling_past_failing_feeds(server: FeedServer, redis: Redis, settings: Settings) -> None:
    """The run loop records each feed's error and keeps publishing the healthy feed's new entries."""
    server.routes["/good.xml"] = rss(("g1", "Man shot", "critical"))
    server.routes["/broken.xml"] = b"this is not a feed"
    fast = settings.model_copy(update=FAST_POLLING)
    feeds = [source(server, "good"), source(server, "broken")]
    async with build_client(fast) as client:
        task = asyncio.create_task(Poller(StageContext(fast, redis), feeds, client).run())
        try:
            for _ in range(100):
                if len(await published(redis, fast)) == 1 and await redis.hget(fast.keys.feed_state("broken"),
                                                                               "last_error"):
                    break
                await asyncio.sleep(0.1)
            server.routes["/good.xml"] = rss(("g1", "Man shot", "critical"), ("g2", "Update", "stable"))
            for _ in range(100):
                if len(await published(redis, fast)) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert [u.entry.guid for u in await published(redis, fast)] == ["g1", "g2"]
    error = await redis.hget(fast.keys.feed_state("broken"), "last_error")
    assert error is not None
    assert b"broken" in error


async def test_two_pollers_publish_each_change_once(redis: Redis, settings: Settings) -> None:
    """Concurrent diffs of the same document (two pollers) publish every entry exactly once."""
    from datetime import UTC, datetime

    from services.poller.diff import publish_changed, raw_updates
    from services.poller.parse import parse_feed

    feed = FeedSource(id="a", name="a", url="https://a.example.org/rss")
    entries = parse_feed(rss(*[(f"g{n}", f"title {n}", f"text {n}") for n in range(20)]), feed="a").entries
    updates = raw_updates(feed, entries, datetime(2025, 10, 24, 9, tzinfo=UTC))
    results = await asyncio.gather(*(publish_changed(redis, settings.keys, "a", updates) for _ in range(4)))
    assert sum(len(r) for r in results) == 20
    assert len(await published(redis, settings)) == 20


@pytest.mark.parametrize(
    ("status", "host_paused"), [(503, True), (429, False)], ids=["503-pauses-host", "429-feed-only"]
)
async def test_retry_after_slows_the_host_only_when_the_whole_server_is_unavailable(
    server: FeedServer, redis: Redis, settings: Settings, status: int, host_paused: bool
) -> None:
    """503 + Retry-After (the server is down) holds back every feed on that host; 429 (this client asks too often
    for this resource) slows only the feed that got it. Both feeds get Retry-After as their floor."""
    from datetime import UTC, datetime, timedelta

    from services.poller.feeds import FeedRegistry

    server.failures["/busy.xml"] = (status, {"Retry-After": "120"})
    server.routes["/other.xml"] = rss(("g1", "Man shot", "critical"))
    busy, other = source(server, "busy"), source(server, "other")
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([busy, other], due=datetime.now(UTC))
    await registry.schedule("other", datetime.now(UTC) + timedelta(seconds=0.5))  # due just after the failure
    async with build_client(settings) as client:
        task = asyncio.create_task(Poller(StageContext(settings, redis), [], client).run())
        try:
            async def other_rescheduled() -> bool:
                # Past the lease a poll takes (70 s): "other" was rescheduled after its turn, polled or held back.
                due = await registry.next_due("other")
                return due is not None and due > datetime.now(UTC) + timedelta(seconds=100)

            await eventually(other_rescheduled)
        finally:
            task.cancel()
            async with asyncio.timeout(10):  # a poller that does not stop on cancel is a failure, not a hang
                await asyncio.gather(task, return_exceptions=True)
    paths = [path for path, _ in server.requests]
    assert paths.count("/busy.xml") == 1
    assert paths.count("/other.xml") == (0 if host_paused else 1)
    busy_due, other_due = await registry.next_due("busy"), await registry.next_due("other")
    assert busy_due is not None
    assert busy_due > datetime.now(UTC) + timedelta(seconds=110)
    assert other_due is not None
    if host_paused:  # held back to the end of the pause (polled, it would be due at its own interval)
        assert other_due > datetime.now(UTC) + timedelta(seconds=110)


async def test_the_poller_outlives_a_redis_outage(settings: Settings) -> None:
    """Redis unreachable: the poller loop keeps retrying instead of ending (and still stops when cancelled)."""
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    async with build_client(settings) as client:
        task = asyncio.create_task(Poller(StageContext(settings, unreachable), [], client).run())
        await asyncio.sleep(1.5)
        assert not task.done(), "the loop ended on a connection error"
        task.cancel()
        async with asyncio.timeout(10):
            await asyncio.gather(task, return_exceptions=True)
    await unreachable.aclose()


async def test_a_poller_holds_a_feed_for_the_configured_lease(redis: Redis, settings: Settings) -> None:
    """While a poll runs, its feed's lease runs out after `poll_lease_s`: a dead poller's feeds are taken over after
    seconds, not the default's minute."""
    leased = settings.model_copy(update={**FAST_POLLING, "http_timeout_s": 3.0, "poll_lease_s": 4.0})
    with FeedServer(delay_s=1.5) as slow:
        slow.routes["/a.xml"] = rss(("g1", "Man shot", "critical"))
        feed = source(slow, "a")
        async with build_client(leased) as client:
            task = asyncio.create_task(Poller(StageContext(leased, redis), [feed], client).run())
            try:
                await eventually(lambda: bool(slow.paths_in_flight()), what="the poll under way")
                left_ms = await redis.pttl(leased.keys.feed_lease("a"))
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    assert 0 < left_ms <= 4_000


def test_a_lease_no_longer_than_a_fetch_is_refused() -> None:
    """A lease that could run out while its poller still fetches would hand the feed to a second poller."""
    with pytest.raises(ValueError, match=r"poll_lease_s \(15 s\) must exceed http_timeout_s \(20 s\)"):
        Settings(http_timeout_s=20, poll_lease_s=15)
    assert Settings(http_timeout_s=20).poll_lease_ms == 70_000
    assert Settings(http_timeout_s=20, poll_lease_s=25).poll_lease_ms == 25_000
