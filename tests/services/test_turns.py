"""Copies of a stage take turns (`services.turns`): a batch waits for the earlier entries other copies are handling,
and for nothing else."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from faststream.redis import RedisRouter
from pydantic import BaseModel
from redis.asyncio import Redis

from services.app import build_broker
from services.groups import group_lags
from services.settings import Settings
from services.stage import InTurn, StageContext, subscribe_stream_batches
from services.turns import PARKED, Turn
from services.wire import as_text
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

GROUP = "copies"


class Probe(BaseModel):
    ok: bool


async def stream_with_group(redis: Redis, settings: Settings, entries: int) -> tuple[str, list[str]]:
    stream = f"{settings.key_prefix}:turns"
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    ids = [as_text(await redis.xadd(stream, {"n": n})) for n in range(entries)]
    return stream, ids


async def read_as(redis: Redis, stream: str, consumer: str, count: int) -> list[str]:
    """Read `count` new entries of the group as `consumer`: they are pending on it."""
    reply: Any = await redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=count)
    return [as_text(entry_id) for entry_id, _ in reply[0][1]]


async def waits(turn: Turn, first_id: str, for_s: float = 0.3) -> bool:
    """Whether `turn.wait(first_id)` is still waiting after `for_s`."""
    task = asyncio.create_task(turn.wait(first_id))
    await asyncio.sleep(for_s)
    still = not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return still


async def test_a_batch_waits_for_earlier_entries_another_copy_is_handling(redis: Redis, settings: Settings) -> None:
    stream, _ = await stream_with_group(redis, settings, 4)
    first = await read_as(redis, stream, "copy-a", 2)
    second = await read_as(redis, stream, "copy-b", 2)
    turn_of_b = Turn(redis, stream, GROUP, "copy-b", wait_ms=10_000)
    turn_of_a = Turn(redis, stream, GROUP, "copy-a", wait_ms=10_000)

    assert not await waits(turn_of_a, first[0]), "nothing was read before the first batch"
    assert await waits(turn_of_b, second[0]), "copy-a still holds the entries before copy-b's"
    waiting = asyncio.create_task(turn_of_b.wait(second[0]))
    await redis.xack(stream, GROUP, first[0])
    await asyncio.sleep(0.2)
    assert not waiting.done(), "one earlier entry is still held"
    await redis.xack(stream, GROUP, first[1])
    await asyncio.wait_for(waiting, timeout=2)


async def test_own_parked_retried_and_stale_entries_are_not_waited_for(redis: Redis, settings: Settings) -> None:
    stream, _ = await stream_with_group(redis, settings, 5)
    own = await read_as(redis, stream, "copy-b", 1)
    failed = await read_as(redis, stream, "copy-a", 1)
    retried = await read_as(redis, stream, "copy-c", 1)
    stale = await read_as(redis, stream, "copy-d", 1)
    batch = await read_as(redis, stream, "copy-b", 1)
    turn_of_a = Turn(redis, stream, GROUP, "copy-a", wait_ms=600)
    turn_of_b = Turn(redis, stream, GROUP, "copy-b", wait_ms=600)

    await turn_of_a.park(failed)
    # Taken over by another copy (as the reclaimer does): its second delivery, a retry.
    taken_over: list[Any] = list(retried)
    await redis.xclaim(stream, GROUP, "copy-e", 0, taken_over)
    pending = {as_text(row["message_id"]): row for row in
               await redis.xpending_range(stream, GROUP, min="-", max="+", count=10)}
    assert as_text(pending[failed[0]]["consumer"]) == PARKED
    assert pending[failed[0]]["times_delivered"] == 1, "parking is not a delivery"
    assert pending[retried[0]]["times_delivered"] == 2
    assert {own[0], stale[0]} <= pending.keys()

    started = time.monotonic()
    await asyncio.wait_for(turn_of_b.wait(batch[0]), timeout=5)
    waited_s = time.monotonic() - started
    # copy-d's entry was the only one worth waiting for, until it had been held for `wait_ms` (a dead copy).
    assert 0.3 < waited_s < 3, waited_s
    assert not await waits(turn_of_b, batch[0], for_s=0.1), "a stale entry is waited for once"


async def test_waiting_is_off_with_no_wait(redis: Redis, settings: Settings) -> None:
    stream, _ = await stream_with_group(redis, settings, 2)
    await read_as(redis, stream, "copy-a", 1)
    second = await read_as(redis, stream, "copy-b", 1)
    assert not await waits(Turn(redis, stream, GROUP, "copy-b", wait_ms=0), second[0])


async def test_entries_a_batch_handler_did_not_finish_are_parked(redis: Redis, settings: Settings) -> None:
    """Through the stage's batch reader: finished entries are acknowledged, the others parked for the reclaimer (no
    copy waits for them, and `livedesk health` counts them as failed), and the handler's turn came before it went
    on."""
    stream = settings.keys.changes
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    settings = settings.model_copy(update={"reclaim_idle_ms": 60_000})
    ctx = StageContext(settings, redis)
    handled: list[list[str]] = []
    turns: list[float] = []
    router = RedisRouter()

    async def handle(batch: list[tuple[Probe, str]], in_turn: InTurn) -> list[str]:
        await in_turn()
        turns.append(time.monotonic())
        handled.append([entry_id for _, entry_id in batch])
        return [entry_id for probe, entry_id in batch if probe.ok]

    async def handle_one(probe: Probe) -> None:
        raise AssertionError("nothing is reclaimed within this test")  # reclaiming starts after a minute

    subscribe_stream_batches(router, ctx, stream, GROUP, Probe, handle, handle_one)
    for ok in (True, False, True):
        await redis.xadd(stream, {"__data__": Probe(ok=ok).model_dump_json()})
    async with build_broker(ctx, settings.redis_url or "", []) as broker:
        broker.include_router(router)
        await broker.start()
        await eventually(lambda: bool(handled), timeout_s=10, what="the batch handled")
        await asyncio.sleep(0.3)
    rows = await redis.xpending_range(stream, GROUP, min="-", max="+", count=10)
    assert [as_text(row["consumer"]) for row in rows] == [PARKED]
    assert as_text(rows[0]["message_id"]) == handled[0][1]
    assert turns
    (lag,) = [lag for lag in await group_lags(redis, settings.keys, ["changes"]) if lag.group == GROUP]
    assert (lag.pending, lag.failed) == (1, 1)


async def test_a_batch_waits_its_turn_for_at_most_half_the_reclaim_time(redis: Redis, settings: Settings) -> None:
    """An earlier entry held by another copy that never finishes it is waited for no longer than half of
    `reclaim_idle_ms`, however long `turn_wait_ms` is: the waiting batch's own entries would otherwise grow idle
    enough for a reclaimer to take them over while they are being handled."""
    stream = settings.keys.updates
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xadd(stream, {"__data__": Probe(ok=True).model_dump_json()})
    held = await read_as(redis, stream, "copy-a", 1)  # by a copy that is alive and never finishes it

    async def keep_held() -> None:
        while True:  # as a live copy's claim keeper would: never idle, never taken over
            await redis.xclaim(stream, GROUP, "copy-a", 0, list[Any](held), justid=True)
            await asyncio.sleep(0.05)

    keeper = asyncio.create_task(keep_held())
    await redis.xadd(stream, {"__data__": Probe(ok=True).model_dump_json()})
    settings = settings.model_copy(update={"reclaim_idle_ms": 600, "turn_wait_ms": 60_000})
    ctx = StageContext(settings, redis)
    turned: list[float] = []
    router = RedisRouter()

    async def handle(batch: list[tuple[Probe, str]], in_turn: InTurn) -> list[str]:
        started = time.monotonic()
        await in_turn()
        turned.append(time.monotonic() - started)
        return [entry_id for _, entry_id in batch]

    async def handle_one(probe: Probe) -> None:
        raise AssertionError("the held entry is never idle long enough to be taken over")

    subscribe_stream_batches(router, ctx, stream, GROUP, Probe, handle, handle_one)
    async with build_broker(ctx, settings.redis_url or "", []) as broker:
        broker.include_router(router)
        await broker.start()
        try:
            await eventually(lambda: bool(turned), timeout_s=10, what="the batch's turn")
        finally:
            keeper.cancel()
    assert turned[0] < 5, f"waited {turned[0]:.1f} s: at most half the reclaim time (0.3 s) was due"
