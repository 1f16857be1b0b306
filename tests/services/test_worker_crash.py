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

from schemas import Authority, FeedEntry, RawUpdate, Update
from services.groups import backlog, ensure_groups
from services.identity import content_fingerprint, entry_identity, update_id
from services.names import Keys
from services.wire import DATA_FIELD, entry_fields

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


async def test_killed_dedup_worker_loses_nothing(redis: Redis, redis_url: str, key_prefix: str) -> None:
    """SIGKILL mid-stream leaves pending entries; a second worker reclaims them; every verdict is told once."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    sent = raw_updates()
    async with redis.pipeline(transaction=False) as pipe:
        for item in sent:
            pipe.xadd(keys.raw, entry_fields(item))  # type: ignore[arg-type]
        await pipe.execute()

    victim = worker("dedup", redis_url, key_prefix, "victim", reclaim_idle_ms=600_000)
    try:
        for _ in range(600):
            if await redis.xlen(keys.updates) > 0:
                break
            await asyncio.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim.kill()
    assert 0 < await redis.xlen(keys.updates) < ENTRIES, "the victim must die mid-stream"
    pending = await redis.xpending(keys.raw, "dedup")
    assert pending["pending"] > 0, "the victim must die holding unacknowledged entries"

    rescuer = worker("dedup", redis_url, key_prefix, "rescuer", reclaim_idle_ms=300, capture=True)
    try:
        for _ in range(600):
            if not (await backlog(redis, keys))["dedup"]:
                break
            await asyncio.sleep(0.1)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        _, errors = rescuer.communicate(timeout=20)
    assert (await backlog(redis, keys))["dedup"] == 0, errors.decode()[-2000:]
    rows = await redis.xrange(keys.updates)
    published = [Update.model_validate_json(fields[DATA_FIELD.encode()]).update_id for _, fields in rows]
    assert sorted(published) == sorted(update_id(u.identity, u.fingerprint) for u in sent)
    assert rescuer.returncode == 0, errors.decode()[-2000:]
