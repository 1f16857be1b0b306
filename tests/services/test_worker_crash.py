"""A worker killed mid-message loses nothing: another process reclaims its pending entries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas import Authority, ChangeEvent, EventType, FeedEntry, RawUpdate, Update, Verdict
from services.groups import backlog, ensure_groups
from services.identity import content_fingerprint, entry_identity, update_id
from services.names import STAGE_INPUTS, Keys
from services.wire import entry_data, entry_fields

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = 1500


def worker(
    stage: str, redis_url: str, prefix: str, consumer: str, reclaim_idle_ms: int, *, capture: bool = False
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LIVEDESK_REDIS_URL": redis_url,
        "LIVEDESK_KEY_PREFIX": prefix,
        "LIVEDESK_CONSUMER": consumer,
        "LIVEDESK_RECLAIM_IDLE_MS": str(reclaim_idle_ms),
        "LIVEDESK_BATCH_SIZE": "25",
        "LIVEDESK_LOG_LEVEL": "warning",
    }
    return subprocess.Popen([sys.executable, "-m", "services", "worker", stage], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if capture else subprocess.DEVNULL)


def raw_updates() -> list[RawUpdate]:
    start = datetime(2025, 10, 24, 9, tzinfo=UTC)
    updates = []
    for n in range(ENTRIES):
        entry = FeedEntry(guid=f"g{n}", title=f"Report {n}", text=f"Distinct text number {n}.",
                          published=start + timedelta(seconds=n))
        updates.append(RawUpdate(source_id="wire", authority=Authority.news, feed_url="https://wire.example.org",
                                 entry=entry, identity=entry_identity("wire", entry),
                                 fingerprint=content_fingerprint(entry), fetched_at=start))
    return updates


def place_name(n: int) -> str:
    """A distinct made-up place per number ("Babe Green", "Bace Green" …), so each report is its own incident."""
    consonants, vowels = "bcdfghklmnprstvw", "aeiou"
    letters = [consonants[n % 16], vowels[n // 16 % 5], consonants[n // 80 % 16], vowels[n // 1280 % 5]]
    return "".join(letters).capitalize() + " Green"


def incident_updates(count: int) -> list[Update]:
    start = datetime(2025, 10, 24, 9, tzinfo=UTC)
    return [
        Update(update_id=f"u{n}", verdict=Verdict.new, source_id="wire", authority=Authority.news,
               identity=f"wire|g{n}", fingerprint="f", guid=f"g{n}", title=f"Man stabbed in {place_name(n)}",
               text=f"A man was stabbed in {place_name(n)} on Friday. He is in a critical condition.",
               reported_at=start + timedelta(seconds=n), fetched_at=start)
        for n in range(count)
    ]


async def _kill_mid_stream(stage: str, redis: Redis, redis_url: str, key_prefix: str, output: str, total: int) -> None:
    stream, group = STAGE_INPUTS[stage]
    input_stream = Keys(key_prefix).stream(stream)
    # A batch worker holds unacknowledged entries only while it handles a batch, so a kill can land between two
    # batches; then another victim takes over the rest of the stream and is killed in turn.
    for attempt in range(5):
        victim = worker(stage, redis_url, key_prefix, f"victim-{attempt}", reclaim_idle_ms=600_000)
        written = await redis.xlen(output)
        try:
            for _ in range(3000):  # start-up can take seconds on a loaded machine
                if await redis.xlen(output) > written:
                    break
                await asyncio.sleep(0.01)
            for _ in range(100_000):
                # Frozen, it holds what it holds: kill it only while it has read entries it has not acknowledged.
                # Tried again at once: a fast worker drains the stream in a few hundred milliseconds.
                victim.send_signal(signal.SIGSTOP)
                if (await redis.xpending(input_stream, group))["pending"] > 0:
                    break
                victim.send_signal(signal.SIGCONT)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        finally:
            victim.kill()
        if (await redis.xpending(input_stream, group))["pending"] > 0:
            break
    assert 0 < await redis.xlen(output) < total, "the victim must die mid-stream"
    pending = await redis.xpending(input_stream, group)
    assert pending["pending"] > 0, "the victim must die holding unacknowledged entries"


async def _rescue(stage: str, redis: Redis, redis_url: str, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    rescuer = worker(stage, redis_url, key_prefix, "rescuer", reclaim_idle_ms=300, capture=True)
    try:
        for _ in range(600):
            if not (await backlog(redis, keys))[stage]:
                break
            await asyncio.sleep(0.1)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        _, errors = rescuer.communicate(timeout=20)
    assert (await backlog(redis, keys))[stage] == 0, errors.decode()[-2000:]
    assert rescuer.returncode == 0, errors.decode()[-2000:]


async def test_killed_dedup_worker_loses_nothing(redis: Redis, redis_url: str, key_prefix: str) -> None:
    """SIGKILL mid-stream leaves pending entries; a second worker reclaims them; every verdict is told once."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    sent = raw_updates()
    async with redis.pipeline(transaction=False) as pipe:
        for item in sent:
            pipe.xadd(keys.raw, entry_fields(item))  # type: ignore[arg-type]
        await pipe.execute()
    await _kill_mid_stream("dedup", redis, redis_url, key_prefix, keys.updates, ENTRIES)
    await _rescue("dedup", redis, redis_url, key_prefix)
    published = [Update.model_validate_json(data).update_id for _, data in entry_data(await redis.xrange(keys.updates))]
    assert sorted(published) == sorted(update_id(u.identity, u.fingerprint) for u in sent)


async def test_killed_tracker_worker_loses_and_repeats_nothing(redis: Redis, redis_url: str, key_prefix: str) -> None:
    """SIGKILL of the tracker mid-stream: every incident is opened exactly once, by one event each."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["tracker"])
    sent = incident_updates(400)
    assert len({place_name(n) for n in range(400)}) == 400
    async with redis.pipeline(transaction=False) as pipe:
        for item in sent:
            pipe.xadd(keys.updates, entry_fields(item))  # type: ignore[arg-type]
        await pipe.execute()
    await _kill_mid_stream("tracker", redis, redis_url, key_prefix, keys.changes, len(sent))
    await _rescue("tracker", redis, redis_url, key_prefix)
    events = [ChangeEvent.model_validate_json(data) for _, data in entry_data(await redis.xrange(keys.changes))]
    assert len({e.event_id for e in events}) == len(events), "no event told twice"
    opened = [e for e in events if e.type is EventType.incident_opened]
    assert sorted(e.evidence[0].guid for e in opened) == sorted(u.guid for u in sent)
