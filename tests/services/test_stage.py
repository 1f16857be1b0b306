"""Consuming stages on a real server: bad entries are dead-lettered with their error, the stream keeps flowing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from schemas import Authority, FeedEntry, RawUpdate
from services.app import build_broker
from services.groups import backlog, ensure_groups
from services.identity import content_fingerprint, entry_identity
from services.settings import Settings
from services.stage import StageContext
from services.wire import entry_data, entry_fields

pytestmark = pytest.mark.redis


def good_entry() -> RawUpdate:
    entry = FeedEntry(guid="g1", title="Man shot in Walthamstow", published=datetime(2025, 10, 24, 9, tzinfo=UTC))
    return RawUpdate(source_id="echo", authority=Authority.news, feed_url="https://echo.example.org/rss",
                     entry=entry, identity=entry_identity("echo", entry), fingerprint=content_fingerprint(entry),
                     fetched_at=datetime(2025, 10, 24, 9, 5, tzinfo=UTC))


async def test_poison_entries_are_dead_lettered_and_the_stream_flows(redis: Redis, settings: Settings) -> None:
    """Invalid JSON and a schema violation go to deadletter at once, with the error; a good entry behind them passes."""
    keys = settings.keys
    await ensure_groups(redis, keys, ["dedup"])
    await redis.xadd(keys.raw, {"__data__": "{not json"})
    await redis.xadd(keys.raw, {"__data__": json.dumps({"source_id": "echo", "entry": {"title": 3}})})
    await redis.xadd(keys.raw, entry_fields(good_entry()))  # type: ignore[arg-type]
    ctx = StageContext(settings, redis)
    async with build_broker(ctx, settings.redis_url or "", ["dedup"]) as broker:
        await broker.start()
        for _ in range(200):
            if await redis.xlen(keys.deadletter) == 2 and not (await backlog(redis, keys))["dedup"]:
                break
            await asyncio.sleep(0.1)
    dead = [json.loads(data) for _, data in entry_data(await redis.xrange(keys.deadletter))]
    assert sorted(d["payload"][:9] for d in dead) == sorted(["{not json", '{"source_'])
    assert all(d["deliveries"] == 1 for d in dead), "bad data is dead-lettered at once, not retried"
    assert any("Invalid JSON" in d["error"] or "JSONDecodeError" in d["error"] for d in dead)
    assert any("ValidationError" in d["error"] and "authority" in d["error"] for d in dead)
    assert await redis.xlen(keys.updates) == 1
    assert (await backlog(redis, keys))["dedup"] == 0


async def test_failing_handler_is_retried_then_dead_lettered(redis: Redis, settings: Settings) -> None:
    """A handler that keeps raising a transient error is retried max_deliveries times, then dead-lettered."""
    from faststream.redis import RedisRouter

    from services.errors import TransientError
    from services.stage import subscribe_stream

    keys = settings.keys
    await ensure_groups(redis, keys, ["dedup"])
    await redis.xadd(keys.raw, entry_fields(good_entry()))  # type: ignore[arg-type]
    ctx = StageContext(settings, redis)
    calls: list[str] = []
    router = RedisRouter()

    @subscribe_stream(router, ctx, keys.raw, "dedup")
    async def flaky(raw: RawUpdate) -> None:
        calls.append(raw.identity)
        raise TransientError("receiver down")

    async with build_broker(ctx, settings.redis_url or "", []) as broker:
        broker.include_router(router)
        await broker.start()
        for _ in range(200):
            if await redis.xlen(keys.deadletter):
                break
            await asyncio.sleep(0.1)
    (dead,) = [json.loads(data) for _, data in entry_data(await redis.xrange(keys.deadletter))]
    assert dead["deliveries"] == settings.max_deliveries
    assert len(calls) == settings.max_deliveries
    assert "receiver down" in dead["error"]
    assert (await backlog(redis, keys))["dedup"] == 0


async def test_entry_whose_consumers_keep_dying_is_dead_lettered_unhandled(redis: Redis, settings: Settings) -> None:
    """An entry taken over more than max_deliveries times (each consumer died holding it) is dead-lettered by the
    reclaimer without being handled again; the entry behind it is handled."""
    from faststream.redis import RedisRouter

    from services.stage import subscribe_stream

    keys = settings.keys
    await ensure_groups(redis, keys, ["dedup"])
    fatal = good_entry().model_copy(update={"identity": "echo|fatal"})
    await redis.xadd(keys.raw, entry_fields(fatal))  # type: ignore[arg-type]
    # Read by one consumer, then taken over by others, each of which died holding it.
    await redis.xreadgroup("dedup", "died-0", {keys.raw: ">"}, count=1)
    rows: Any = await redis.xrange(keys.raw)
    [(entry_id, _)] = rows
    for n in range(1, settings.max_deliveries):
        await redis.xclaim(keys.raw, "dedup", f"died-{n}", 0, [entry_id])
    await redis.xadd(keys.raw, entry_fields(good_entry()))  # type: ignore[arg-type]
    ctx = StageContext(settings, redis)
    handled: list[str] = []
    router = RedisRouter()

    @subscribe_stream(router, ctx, keys.raw, "dedup")
    async def record(raw: RawUpdate) -> None:
        handled.append(raw.identity)

    async with build_broker(ctx, settings.redis_url or "", []) as broker:
        broker.include_router(router)
        await broker.start()
        for _ in range(200):
            if await redis.xlen(keys.deadletter) and not (await backlog(redis, keys))["dedup"]:
                break
            await asyncio.sleep(0.1)
    (dead,) = [json.loads(data) for _, data in entry_data(await redis.xrange(keys.deadletter))]
    assert dead["deliveries"] == settings.max_deliveries + 1
    assert "AbandonedError" in dead["error"]
    assert "never finished" in dead["error"]
    assert json.loads(dead["payload"])["identity"] == "echo|fatal"
    assert handled == [good_entry().identity], "the abandoned entry is not handled again"
