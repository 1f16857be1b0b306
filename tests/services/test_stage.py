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


async def _read_in_batches(redis: Redis, settings: Settings, linger_ms: int, entries_before: int,
                           later: list[float]) -> list[tuple[float, list[str]]]:
    """When each batch of `raw` was handled (seconds after the last entry was written) and the guids it held, as a
    batch reader with `linger_ms` read them: `entries_before` entries written before it starts, then one entry after
    each delay of `later`, the first once the reader has handled everything before it."""
    from faststream.redis import RedisRouter

    from services.stage import InTurn, subscribe_stream_batches

    keys = settings.keys
    await ensure_groups(redis, keys, ["dedup"])
    guids = iter(f"g{n}" for n in range(100))

    async def write() -> None:
        entry = good_entry()
        entry = entry.model_copy(update={"entry": entry.entry.model_copy(update={"guid": next(guids)})})
        await redis.xadd(keys.raw, entry_fields(entry))  # type: ignore[arg-type]

    for _ in range(entries_before):
        await write()
    batches: list[tuple[float, list[str]]] = []
    clock = asyncio.get_running_loop().time

    async def record(batch: list[tuple[RawUpdate, str]], in_turn: InTurn) -> list[str]:
        await in_turn()
        batches.append((clock(), [raw.entry.guid or "" for raw, _ in batch]))
        return [entry_id for _, entry_id in batch]

    async def one(raw: RawUpdate) -> None:
        raise AssertionError("nothing is reclaimed here")

    router = RedisRouter()
    subscribe_stream_batches(router, StageContext(settings, redis), keys.raw, "dedup", RawUpdate, record, one,
                             linger_ms=linger_ms)
    total = entries_before + len(later)
    async with build_broker(StageContext(settings, redis), settings.redis_url or "", []) as broker:
        broker.include_router(router)
        await broker.start()
        for _ in range(100):
            if sum(len(guids) for _, guids in batches) == entries_before:
                break
            await asyncio.sleep(0.05)
        for delay in later:
            await asyncio.sleep(delay)
            await write()
        written = clock()
        for _ in range(200):
            if sum(len(guids) for _, guids in batches) == total:
                break
            await asyncio.sleep(0.05)
    assert sum(len(guids) for _, guids in batches) == total, batches
    assert (await backlog(redis, keys))["dedup"] == 0
    return [(at - written, guids) for at, guids in batches]


async def test_a_lingering_reader_reads_entries_that_trickle_in_together(redis: Redis, settings: Settings) -> None:
    """After a batch smaller than the batch size the reader waits `linger_ms`: entries arriving one at a time
    during the wait are read in one batch; without the wait, each is read as it comes."""
    trickle = [0.0, 0.5, 0.5]
    lingering = await _read_in_batches(redis, settings, linger_ms=2500, entries_before=1, later=trickle)
    assert [guids for _, guids in lingering] == [["g0"], ["g1", "g2", "g3"]]
    eager = await _read_in_batches(redis, settings.model_copy(update={"key_prefix": f"{settings.key_prefix}:eager"}),
                                   linger_ms=0, entries_before=1, later=trickle)
    assert [guids for _, guids in eager] == [["g0"], ["g1"], ["g2"], ["g3"]]


async def test_a_full_batch_is_followed_by_no_wait(redis: Redis, settings: Settings) -> None:
    """A reader that read a whole batch reads again at once, however long its linger: it is behind, not waiting for
    entries to gather."""
    full = settings.model_copy(update={"batch_size": 2})
    batches = await _read_in_batches(redis, full, linger_ms=3_000, entries_before=2, later=[0.0])
    assert [guids for _, guids in batches] == [["g0", "g1"], ["g2"]]
    assert batches[-1][0] < 2, "the entry after a full batch waited for the linger"
