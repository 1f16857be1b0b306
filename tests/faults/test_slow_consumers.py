"""Slow and stopped consumers: trimming never drops what a group has not finished (it reports the lag), pollers hold
back while a stage is behind, and a dead receiver's hook queue is capped into the dead letters, losing nothing."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from schemas import Authority, ChangeEvent, FeedEntry, FeedSource, RawUpdate, Update
from services.app import build_broker
from services.cli import cli
from services.client import Client
from services.groups import backlog, ensure_groups, trim
from services.identity import content_fingerprint, entry_identity, update_id
from services.notifier.deadletters import read_dead_letters
from services.poller.fetch import build_client
from services.poller.stage import Poller
from services.replay import wait_drained
from services.settings import Settings
from services.stage import StageContext
from services.wire import entry_data, entry_fields
from tests.services.notifier.conftest import add_hook, change, publish
from tests.support.feed_server import FeedServer, rss
from tests.support.notifier import running_notifier
from tests.support.polling import FAST_POLLING
from tests.support.receivers import dead
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

T0 = datetime(2025, 10, 24, 9, tzinfo=UTC)


def raw_entry(n: int) -> RawUpdate:
    entry = FeedEntry(guid=f"g{n}", title=f"Report {n}", text=f"Distinct text number {n}.",
                      published=T0 + timedelta(seconds=n))
    return RawUpdate(source_id="wire", authority=Authority.news, feed_url="https://wire.example.org", entry=entry,
                     identity=entry_identity("wire", entry), fingerprint=content_fingerprint(entry), fetched_at=T0)


async def health(settings: Settings) -> dict[str, Any]:
    env = {"LIVEDESK_REDIS_URL": settings.redis_url or "", "LIVEDESK_KEY_PREFIX": settings.key_prefix,
           "LIVEDESK_MAX_BACKLOG": str(settings.max_backlog)}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["health"], env=env)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def test_trimming_keeps_what_stopped_consumers_have_not_finished(redis: Redis, settings: Settings) -> None:
    """Dedup stopped with entries unread and a dead worker's entries pending, a subscriber stopped on `changes`: a
    trim with no retention and a cap of one drops none of them and `health` reports the lag; started again, dedup
    judges every entry and the subscriber reads every event; then the cap applies."""
    settings = settings.model_copy(update={"reclaim_idle_ms": 300})
    keys = settings.keys
    await ensure_groups(redis, keys, ["dedup"])
    sent = [raw_entry(n) for n in range(30)]
    async with redis.pipeline(transaction=False) as pipe:
        for item in sent:
            pipe.xadd(keys.raw, entry_fields(item))  # type: ignore[arg-type]
        await pipe.execute()
    await redis.xreadgroup("dedup", "died-holding-five", {keys.raw: ">"}, count=5)
    url = settings.redis_url or ""
    # A subscriber's group, made as `subscribe(start="0")` makes it, whose process has stopped since.
    await redis.xgroup_create(keys.changes, "archive", id="0", mkstream=True)
    events = [change(f"i_{n}", 1) for n in range(20)]
    await publish(redis, settings, events)

    an_hour_on = int(time.time() * 1000) + 3_600_000
    assert await trim(redis, keys, 0, an_hour_on, max_len=1) == {"raw": 0, "changes": 0}
    assert (await redis.xlen(keys.raw), await redis.xlen(keys.changes)) == (30, 20)
    lags = {(row["stream"], row["group"]): row for row in (await health(settings))["lag"]}
    assert (lags["raw", "dedup"]["unread"], lags["raw", "dedup"]["pending"]) == (25, 5)
    assert (lags["changes", "archive"]["unread"], lags["changes", "archive"]["pending"]) == (20, 0)
    assert lags["raw", "dedup"]["oldest_unfinished_s"] is not None

    ctx = StageContext(settings, redis)
    async with build_broker(ctx, url, ["dedup"]) as broker:
        await broker.start()
        await wait_drained(redis, keys, timeout_s=30, stages=["dedup"])
    judged = {Update.model_validate_json(d).update_id for _, d in entry_data(await redis.xrange(keys.updates))}
    assert judged == {update_id(u.identity, u.fingerprint) for u in sent}, "every entry judged, the dead one's too"
    read: list[ChangeEvent] = []
    async with Client(url, key_prefix=settings.key_prefix) as desk, desk.subscribe("archive", block_ms=50) as events_in:
        async for event in events_in:
            read.append(event)
            if len(read) == len(events):
                break
    assert read == events

    # Within a day's retention, the cap alone trims: what every group finished goes, down to the newest entry.
    assert (await trim(redis, keys, 86_400, int(time.time() * 1000), max_len=1))["raw"] == 29
    assert (await redis.xlen(keys.raw), await redis.xlen(keys.changes)) == (1, 1)


async def test_pollers_hold_back_while_dedup_is_behind(redis: Redis, settings: Settings) -> None:
    """With dedup more than max_backlog entries behind no feed is polled; once dedup catches up, polling resumes and
    the feed's entry goes through. `health` says when back-pressure holds."""
    settings = settings.model_copy(update={**FAST_POLLING, "max_backlog": 3})
    keys = settings.keys
    await ensure_groups(redis, keys, ["dedup"])
    for n in range(5):
        await redis.xadd(keys.raw, entry_fields(raw_entry(n)))  # type: ignore[arg-type]
    with FeedServer() as server:
        server.routes["/a.xml"] = rss(("a1", "Man shot in Walthamstow", "He is in a critical condition."))
        feed = FeedSource(id="a", name="A", url=f"{server.url}/a.xml")
        async with build_client(settings) as client:
            poller = asyncio.create_task(Poller(StageContext(settings, redis), [feed], client).run())
            try:
                report = await health(settings)
                assert report["back_pressure"] == {"max_backlog": 3, "holding": True, "behind": {"dedup": 5}}
                await asyncio.sleep(1.0)  # five turns of the poller's loop: a due feed is claimed at the first
                assert server.requests == [], "no poll while dedup is behind"
                assert not poller.done()
                async with build_broker(StageContext(settings, redis), settings.redis_url or "", ["dedup"]) as broker:
                    await broker.start()
                    await eventually(lambda: bool(server.requests), timeout_s=20, what="polling resumed")

                    async def judged() -> bool:
                        rows = entry_data(await redis.xrange(keys.updates))
                        return any(Update.model_validate_json(d).guid == "a1" for _, d in rows)

                    await eventually(judged, timeout_s=20, what="the polled entry judged")
                assert (await health(settings))["back_pressure"] == {"max_backlog": 3, "holding": False,
                                                                     "behind": {}}
            finally:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)


async def test_a_dead_receivers_queue_is_capped_into_the_dead_letters(redis: Redis, settings: Settings) -> None:
    """A hook whose receiver never answers holds at most its cap (or what its worker holds); the oldest unsent events
    go to the dead letters with the hook and the reason; once the receiver is back every event is either delivered
    or a dead letter, none both, none lost."""
    settings = settings.model_copy(update={"hook_queue_max_len": 5, "hook_parallel_incidents": 1, "batch_size": 2,
                                           "hook_timeout_s": 0.3, "hook_retry_base_s": 0.05, "hook_retry_max_s": 0.1,
                                           "reclaim_idle_ms": 400})
    # The worker reads ahead up to this many more while it holds fewer: what it can hold at most.
    held_at_most = 2 * max(settings.batch_size, 10 * settings.hook_parallel_incidents)
    events = [change(f"i_{n}", 1) for n in range(30)]
    with dead() as receiver:
        await add_hook(redis, settings, "slow", receiver.url)
        queue = settings.keys.hook_queue("slow")
        async with running_notifier(redis, settings):
            await publish(redis, settings, events)

            async def capped() -> bool:
                fanned_out = not (await backlog(redis, settings.keys, ["notifier"]))["notifier"]
                queued, held = await redis.xlen(queue), (await redis.xpending(queue, "deliver"))["pending"]
                buried = len(await read_dead_letters(redis, settings.keys))
                return fanned_out and queued == held and queued + buried == len(events)

            await eventually(capped, timeout_s=30, what="every event queued, and the queue shed to what is held")
            held = await redis.xlen(queue)
            assert 0 < held <= max(settings.hook_queue_max_len, held_at_most) < len(events)
            letters = await read_dead_letters(redis, settings.keys)
            assert {letter.hook_id for letter in letters} == {"slow"}
            assert all("queue over 5 events" in letter.error and letter.deliveries == 0 for letter in letters)
            receiver.gate.set()  # the receiver answers again
            await eventually(lambda: len(set(receiver.accepted_keys())) == held, timeout_s=30,
                             what="the events the worker held delivered")

            async def emptied() -> bool:  # each is deleted once its answer is back, a moment after it was received
                return await redis.xlen(queue) == 0

            await eventually(emptied, timeout_s=10, what="the delivered events deleted from the queue")
    buried = {ChangeEvent.model_validate_json(letter.payload).event_id for letter in letters}
    delivered = set(receiver.accepted_keys())
    assert not buried & delivered, "no event both delivered and dead-lettered"
    assert buried | delivered == {event.event_id for event in events}, "none lost"
