"""The live feed registry: schedules and leases shared by several pollers, per-host politeness."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from schemas import FeedSource
from services.poller.feeds import FeedRegistry
from services.poller.fetch import build_client
from services.poller.parse import ParsedFeed
from services.poller.stage import Poller
from services.settings import Settings
from services.stage import StageContext
from tests.support.feed_server import FeedServer, rss
from tests.support.polling import FAST_POLLING
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

NOW = datetime(2025, 10, 24, 9, tzinfo=UTC)


def feed(n: int, base: str = "https://a.example.org") -> FeedSource:
    return FeedSource(id=f"f{n}", name=f"feed {n}", url=f"{base}/f{n}.xml")


async def test_registry_keeps_schedules_and_forgets_removed_feeds(redis: Redis, settings: Settings) -> None:
    """Upserting a known feed keeps its due time; due lists the overdue first; removed feeds are never due."""
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([feed(1), feed(2)], due=NOW)
    await registry.schedule("f1", NOW + timedelta(hours=1))
    await registry.upsert([feed(1), feed(3)], due=NOW - timedelta(minutes=1))
    assert await registry.due(NOW, limit=10) == ["f3", "f2"]
    assert await registry.remove("f2")
    assert not await registry.remove("f2")
    assert await registry.due(NOW + timedelta(hours=2), limit=10) == ["f3", "f1"]
    assert [s.id for s in await registry.all()] == ["f1", "f3"]


async def test_poll_now_makes_a_feed_due_and_revives_a_gone_one(redis: Redis, settings: Settings) -> None:
    """`feeds poll` is the operator saying "try it now": a feed far ahead or gone is due at once; unknown is False."""
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([feed(1), feed(2)], due=datetime.now(UTC) + timedelta(days=1))
    await registry.mark_gone("f2")
    assert await registry.due(datetime.now(UTC), limit=10) == []
    assert await registry.poll_now("f1")
    assert await registry.poll_now("f2")
    assert not await registry.poll_now("f9")
    assert sorted(await registry.due(datetime.now(UTC), limit=10)) == ["f1", "f2"]
    assert "gone" not in await registry.status("f2")


async def test_claim_takes_due_feeds_with_their_state_once(redis: Redis, settings: Settings) -> None:
    """`claim` leases each due feed to one poller and hands it the feed's stored validators and schedule."""
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([feed(1), feed(2)], due=NOW)
    await registry.schedule("f2", datetime.now(UTC) + timedelta(hours=1))
    await redis.hset(settings.keys.feed_state("f1"), mapping={"etag": '"v1"', "body_hash": "abc"})
    first = await registry.claim(datetime.now(UTC), 10, "poller-1", 60_000)
    assert [(c.feed_id, c.source, c.state["etag"], c.state["body_hash"], c.state["schedule"]) for c in first] == [
        ("f1", (await registry.get("f1")), '"v1"', "abc", None)
    ]
    assert await registry.claim(datetime.now(UTC), 10, "poller-2", 60_000) == [], "leased and moved past its lease"
    await registry.finish("f1", "poller-1", NOW, {"last_status": "200"}, failed=True)
    status = await registry.status("f1")
    assert (status["last_status"], status["error_count"]) == ("200", "1")
    assert [c.feed_id for c in await registry.claim(datetime.now(UTC), 10, "poller-2", 60_000)] == ["f1"]


async def test_lease_is_exclusive_and_expires(redis: Redis, settings: Settings) -> None:
    """One holder at a time; only the holder releases; an expired lease can be taken."""
    registry = FeedRegistry(redis, settings.keys)
    assert await registry.acquire("f1", "a", lease_ms=300)
    assert not await registry.acquire("f1", "b", lease_ms=300)
    await registry.release("f1", "b")
    assert not await registry.acquire("f1", "b", lease_ms=300), "a non-holder cannot release"
    await asyncio.sleep(0.4)
    assert await registry.acquire("f1", "b", lease_ms=300)


async def _run_pollers(pollers: list[Poller], seconds: float, until: Callable[[], bool] | None = None) -> None:
    """Run `pollers` for `seconds`, and on until `until()` holds (a busy machine starts their parser processes
    slowly), then stop them."""
    tasks = [asyncio.create_task(p.run()) for p in pollers]
    await asyncio.sleep(seconds)
    if until is not None:
        await eventually(until, timeout_s=30, what=getattr(until, "__doc__", None) or "")
    for task in tasks:
        task.cancel()
    async with asyncio.timeout(10):  # a poller that does not stop on cancel is a failure, not a hung suite
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_two_pollers_never_poll_one_feed_at_once(redis: Redis, settings: Settings) -> None:
    """Two pollers on one registry poll every feed, and never the same feed at the same time."""
    fast = settings.model_copy(update={**FAST_POLLING, "poll_per_host": 10})
    with FeedServer(delay_s=0.15) as server:
        sources = [feed(n, server.url) for n in range(6)]
        for source in sources:
            server.routes[f"/{source.id}.xml"] = rss(("g1", "t", "x"))
        async with build_client(fast) as one, build_client(fast) as two:
            pollers = [Poller(StageContext(fast, redis), sources, one), Poller(StageContext(fast, redis), [], two)]

            def every_feed_polled_twice() -> bool:
                """every feed polled again when due"""
                polled = [path for path, _ in list(server.requests)]
                return all(polled.count(f"/{source.id}.xml") >= 2 for source in sources)

            await _run_pollers(pollers, 2.0, until=every_feed_polled_twice)
    assert set(server.most_in_flight) == {f"/{s.id}.xml" for s in sources}
    assert max(server.most_in_flight.values()) == 1
    assert every_feed_polled_twice()


async def test_a_dead_poller_s_feed_is_taken_over_after_its_lease(redis: Redis, settings: Settings) -> None:
    """A feed leased by a poller that died is polled by another one once the lease expires, not before."""
    with FeedServer() as server:
        source = feed(1, server.url)
        server.routes["/f1.xml"] = rss(("g1", "t", "x"))
        registry = FeedRegistry(redis, settings.keys)
        await registry.upsert([source], due=datetime.now(UTC))
        assert await registry.acquire("f1", "dead-poller", lease_ms=800)
        expires = time.monotonic() + 0.8
        async with build_client(settings) as client:
            await _run_pollers([Poller(StageContext(settings, redis), [], client)], 2.0)
    assert server.started, "the feed was never taken over"
    assert server.started[0][1] >= expires - 0.05


async def test_per_host_limit_and_gap(redis: Redis, settings: Settings) -> None:
    """With one request per host and a gap, polls of one host's feeds never overlap and are spaced out."""
    polite = settings.model_copy(update={"poll_per_host": 1, "poll_host_gap_s": 0.2, "poll_interval_s": 60})
    with FeedServer(delay_s=0.05) as server:
        sources = [feed(n, server.url) for n in range(4)]
        for source in sources:
            server.routes[f"/{source.id}.xml"] = rss(("g1", "t", "x"))
        async with build_client(polite) as client:
            await _run_pollers([Poller(StageContext(polite, redis), sources, client)], 1.5)
    assert server.most_in_flight_overall == 1
    starts = sorted(at for _, at in server.started)
    assert len(starts) == 4
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.18


async def test_retry_after_and_hot_incidents_drive_the_schedule(redis: Redis, settings: Settings) -> None:
    """A 429 with Retry-After schedules the feed no sooner than asked; an incident change makes it due soon."""
    from services.poller.scheduling_state import mark_feed_hot, schedule_policy

    with FeedServer() as server:
        server.failures["/rss"] = (429, {"Retry-After": "1200"})
        source = FeedSource(id="busy", name="busy", url=f"{server.url}/rss")
        async with build_client(settings) as client:
            await _run_pollers([Poller(StageContext(settings, redis), [source], client)], 1.0)
    registry = FeedRegistry(redis, settings.keys)
    status = await registry.status("busy")
    assert status["schedule_reason"] == "retry-after"
    due = await redis.zscore(settings.keys.feeds_due, "busy")
    assert due is not None
    assert due >= time.time() + 1200 - 5
    # The tracker saw an incident this feed reports on change: the feed is due within the hot interval.
    now = datetime.now(UTC)
    await mark_feed_hot(redis, settings.keys, "busy", now, schedule_policy(settings))
    hot_due = await redis.zscore(settings.keys.feeds_due, "busy")
    assert hot_due is not None
    assert hot_due <= now.timestamp() + settings.poll_hot_interval_s
    assert (await registry.status("busy"))["hot_until"] > now.isoformat()


async def test_an_unregistered_source_is_not_made_hot(redis: Redis, settings: Settings) -> None:
    """A replay's sources are in no registry: an incident they report on changing writes no feed state for them."""
    from services.poller.scheduling_state import mark_feed_hot, schedule_policy

    await mark_feed_hot(redis, settings.keys, "replayed-source", datetime.now(UTC), schedule_policy(settings))
    assert not await redis.exists(settings.keys.feed_state("replayed-source"))
    assert await redis.zscore(settings.keys.feeds_due, "replayed-source") is None


async def test_moved_gone_and_unchanged_feeds(redis: Redis, settings: Settings,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """301 updates the stored URL; the same bytes again cost no parse; 410 stops polling but keeps the feed listed."""
    with FeedServer(honour_validators=False) as server:  # ignores validators: always the same bytes
        server.routes["/new.xml"] = rss(("g1", "Man shot", "critical"))
        server.failures["/old.xml"] = (301, {"Location": "/new.xml"})
        server.failures["/gone.xml"] = (410, {})
        base = server.url
        moved = FeedSource(id="moved", name="m", url=f"{base}/old.xml")
        gone = FeedSource(id="gone", name="g", url=f"{base}/gone.xml")
        registry = FeedRegistry(redis, settings.keys)
        import services.poller.ingest as ingest
        from services.poller.parser_pool import parse_feed_bounded as real_parse  # the parse ingest calls

        parses: list[str] = []

        async def counted_parse(body: bytes, **kw: Any) -> ParsedFeed:
            parses.append(kw["feed"])
            return await real_parse(body, **kw)

        monkeypatch.setattr(ingest, "parse_feed_bounded", counted_parse)
        async with build_client(settings) as client:
            poller = Poller(StageContext(settings, redis), [moved, gone], client)
            await registry.upsert([moved, gone], due=datetime.now(UTC))
            assert await poller.poll(moved) == 1
            stored = await registry.get("moved")
            assert stored is not None
            assert stored.url == f"{base}/new.xml"
            assert await poller.poll(stored) == 0
            assert parses == ["moved"], "the same bytes again are not parsed again"
            assert (await registry.status("moved"))["last_status"] == "200"
            await _run_pollers([poller], 1.0)
    gone_status = await registry.status("gone")
    assert (gone_status["gone"], gone_status["next_due"], gone_status["last_status"]) == ("1", "", "410")
    assert "gone" not in await registry.due(datetime.now(UTC) + timedelta(days=30), limit=10)
    assert [s.id for s in await registry.all()] == ["gone", "moved"]


async def test_start_up_keeps_a_moved_url_a_gone_mark_and_due_times(redis: Redis, settings: Settings) -> None:
    """Loading the same TOML again keeps a feed's moved URL, its gone mark and its due time; its name is updated."""
    registry = FeedRegistry(redis, settings.keys)
    toml = [feed(1), feed(2), feed(3)]
    await registry.upsert(toml, due=NOW)
    stored = await registry.get("f1")
    assert stored is not None
    assert (stored.url, stored.configured_url) == (toml[0].url, toml[0].url)
    await registry.upsert([stored.model_copy(update={"url": "https://b.example.org/f1.xml"})], due=NOW)  # a 301
    await registry.mark_gone("f2")  # a 410
    await registry.schedule("f3", NOW + timedelta(hours=1))

    await registry.upsert([toml[0].model_copy(update={"name": "renamed"}), *toml[1:]], due=NOW + timedelta(minutes=1))
    moved = await registry.get("f1")
    assert moved is not None
    assert (moved.url, moved.configured_url, moved.name) == ("https://b.example.org/f1.xml", toml[0].url, "renamed")
    assert (await registry.status("f2"))["gone"] == "1"
    assert await registry.due(NOW + timedelta(minutes=59), limit=10) == ["f1"], "f2 gone, f3 not due yet"
    assert await registry.next_due("f1") == NOW, "a known feed keeps its due time"


async def test_an_edited_url_wins_and_revives_a_gone_feed(redis: Redis, settings: Settings) -> None:
    """A TOML giving another URL replaces a moved URL and clears a gone mark; both feeds are due at once."""
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([feed(1), feed(2)], due=NOW)
    stored = await registry.get("f1")
    assert stored is not None
    await registry.upsert([stored.model_copy(update={"url": "https://b.example.org/f1.xml"})], due=NOW)
    await registry.schedule("f1", NOW + timedelta(hours=1))
    await registry.mark_gone("f2")

    edited = [feed(1, "https://c.example.org"), feed(2, "https://c.example.org")]
    await registry.upsert(edited, due=NOW)
    assert [(s.url, s.configured_url) for s in await registry.all()] == [(s.url, s.url) for s in edited]
    assert "gone" not in await registry.status("f2")
    assert await registry.due(NOW, limit=10) == ["f1", "f2"]


async def test_a_stale_move_does_not_undo_the_operator(redis: Redis, settings: Settings) -> None:
    """A move recorded by a poll that began before the operator changed the feed's URL, or removed it, is dropped."""
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([feed(1)], due=NOW)
    polled = await registry.get("f1")
    assert polled is not None
    await registry.upsert([feed(1, "https://c.example.org")], due=NOW)
    await registry.upsert([polled.model_copy(update={"url": "https://b.example.org/f1.xml"})], due=NOW)
    assert [s.url for s in await registry.all()] == ["https://c.example.org/f1.xml"]
    assert await registry.remove("f1")
    await registry.upsert([polled.model_copy(update={"url": "https://b.example.org/f1.xml"})], due=NOW)
    assert await registry.all() == []
    assert await registry.due(NOW, limit=10) == []


async def test_a_restarted_poller_polls_the_moved_url_and_never_the_gone_feed(redis: Redis, settings: Settings) -> None:
    """End to end: a poller follows a 301 and stops at a 410; one started again with the same TOML polls the new URL
    only, and never the gone feed."""
    with FeedServer() as server:
        server.routes["/new.xml"] = rss(("g1", "Man shot", "critical"))
        server.failures["/old.xml"] = (308, {"Location": "/new.xml"})
        server.failures["/gone.xml"] = (410, {})
        base = server.url
        toml = [FeedSource(id="moved", name="m", url=f"{base}/old.xml"),
                FeedSource(id="gone", name="g", url=f"{base}/gone.xml")]
        registry = FeedRegistry(redis, settings.keys)
        async with build_client(settings) as client:
            await _run_pollers([Poller(StageContext(settings, redis), toml, client)], 1.0)
            assert sorted(path for path, _ in server.requests) == ["/gone.xml", "/new.xml", "/old.xml"]
            server.requests.clear()
            await registry.schedule("moved", datetime.now(UTC))  # `livedesk feeds poll moved`
            await _run_pollers([Poller(StageContext(settings, redis), toml, client)], 1.0)
    assert [path for path, _ in server.requests] == ["/new.xml"]
    stored = await registry.get("moved")
    assert stored is not None
    assert (stored.url, stored.configured_url) == (f"{base}/new.xml", f"{base}/old.xml")
    assert (await registry.status("gone"))["gone"] == "1"


async def test_a_damaged_schedule_record_does_not_stall_the_feed(redis: Redis, settings: Settings) -> None:
    """A feed whose stored schedule cannot be read is polled and scheduled afresh, not skipped forever."""
    with FeedServer() as server:
        server.routes["/f1.xml"] = rss(("g1", "t", "x"))
        source = feed(1, server.url)
        registry = FeedRegistry(redis, settings.keys)
        await registry.upsert([source], due=datetime.now(UTC))
        await redis.hset(settings.keys.feed_state("f1"), mapping={"schedule": "{not json", "hot_until": "yesterday"})
        async with build_client(settings) as client:
            await _run_pollers([Poller(StageContext(settings, redis), [], client)], 1.0)
    assert [path for path, _ in server.requests] == ["/f1.xml"]
    assert (await registry.scheduling("f1")).entries_per_day is not None, "the schedule was written afresh"


async def test_a_lease_is_renewed_only_by_its_holder(redis: Redis, settings: Settings) -> None:
    """A poll that waited for its host renews its lease before it starts; a lease lost meanwhile is not taken back."""
    registry = FeedRegistry(redis, settings.keys)
    await registry.upsert([feed(1)], due=datetime.now(UTC))
    assert [c.feed_id for c in await registry.claim(datetime.now(UTC), 10, "poller-1", 200)] == ["f1"]
    assert await registry.renew("f1", "poller-1", 60_000)
    assert 50_000 < await redis.pttl(settings.keys.feed_lease("f1")) <= 60_000
    due = await registry.next_due("f1")
    assert due is not None
    assert due > datetime.now(UTC) + timedelta(seconds=50), "not offered to others while the lease holds"
    assert not await registry.renew("f1", "poller-2", 60_000)
    await registry.release("f1", "poller-1")
    assert not await registry.renew("f1", "poller-1", 60_000), "a released (or expired) lease is gone"
