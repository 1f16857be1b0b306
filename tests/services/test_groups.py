"""Consumer groups: created at the stream's start, backlog measured, trimming never drops unread work."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from services.groups import backlog, ensure_groups, prune_consumers, trim
from services.names import Keys

pytestmark = pytest.mark.redis


async def test_groups_see_entries_written_before_them(redis: Redis, key_prefix: str) -> None:
    """A group created by ensure_groups reads entries that were on the stream before it existed."""
    keys = Keys(key_prefix)
    await redis.xadd(keys.raw, {"__data__": "{}"})
    await ensure_groups(redis, keys, ["dedup", "tracker", "poller"])
    await ensure_groups(redis, keys, ["dedup"])  # again: BUSYGROUP is fine
    rows = await redis.xreadgroup("dedup", "c", {keys.raw: ">"}, count=10)
    assert len(rows[0][1]) == 1
    assert (await backlog(redis, keys))["dedup"] == 1  # read but not acknowledged


async def test_trim_keeps_unread_and_pending_entries(redis: Redis, key_prefix: str) -> None:
    """Entries past retention go only once every group has read and acknowledged them."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    ids = [await redis.xadd(keys.raw, {"__data__": str(n)}) for n in range(5)]
    later_ms = int(time.time() * 1000) + 3_600_000  # an hour from now: every entry is past a 60 s retention
    assert (await trim(redis, keys, 60, later_ms)).get("raw", 0) == 0
    await redis.xreadgroup("dedup", "c", {keys.raw: ">"}, count=3)
    assert (await trim(redis, keys, 60, later_ms)).get("raw", 0) == 0, "read but pending entries must stay"
    await redis.xack(keys.raw, "dedup", *ids[:3])
    await trim(redis, keys, 60, later_ms)
    remaining = [entry_id for entry_id, _ in await redis.xrange(keys.raw)]
    assert remaining[0] >= ids[2]
    assert ids[3] in remaining
    assert ids[4] in remaining


async def test_prune_forgets_idle_empty_consumers_only(redis: Redis, key_prefix: str) -> None:
    """A consumer holding pending entries is kept; an idle one holding nothing is removed."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    await redis.xadd(keys.raw, {"__data__": "{}"})
    await redis.xreadgroup("dedup", "holder", {keys.raw: ">"}, count=1)
    await redis.xgroup_createconsumer(keys.raw, "dedup", "gone")
    assert await prune_consumers(redis, keys, idle_ms=0) == 1
    names = {c["name"] for c in await redis.xinfo_consumers(keys.raw, "dedup")}
    assert names == {b"holder"}
