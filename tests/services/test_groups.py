"""Consumer groups: created at the stream's start, backlog measured, trimming never drops unread work."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from services.groups import BackPressure, backlog, ensure_groups, group_lags, prune_consumers, trim
from services.names import Keys
from services.wire import as_text

pytestmark = pytest.mark.redis


async def add(redis: Redis, stream: str, data: str = "{}") -> str:
    """XADD one entry; its id."""
    return as_text(await redis.xadd(stream, {"__data__": data}))


async def ids_on(redis: Redis, stream: str) -> list[str]:
    rows: Any = await redis.xrange(stream)
    return [as_text(entry_id) for entry_id, _ in rows]


async def read(redis: Redis, stream: str, group: str, count: int | None = None) -> int:
    """XREADGROUP new entries for `group`; how many were read."""
    rows: Any = await redis.xreadgroup(group, "c", {stream: ">"}, count=count)
    return sum(len(entries) for _, entries in rows or [])


async def test_groups_see_entries_written_before_them(redis: Redis, key_prefix: str) -> None:
    """A group created by ensure_groups reads entries that were on the stream before it existed."""
    keys = Keys(key_prefix)
    await add(redis, keys.raw)
    await ensure_groups(redis, keys, ["dedup", "tracker", "poller"])
    await ensure_groups(redis, keys, ["dedup"])  # again: BUSYGROUP is fine
    assert await read(redis, keys.raw, "dedup", 10) == 1
    assert (await backlog(redis, keys))["dedup"] == 1  # read but not acknowledged


async def test_trim_keeps_unread_and_pending_entries(redis: Redis, key_prefix: str) -> None:
    """Entries past retention go only once every group has read and acknowledged them."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    ids = [await add(redis, keys.raw, str(n)) for n in range(5)]
    later_ms = int(time.time() * 1000) + 3_600_000  # an hour from now: every entry is past a 60 s retention
    assert (await trim(redis, keys, 60, later_ms)).get("raw", 0) == 0
    await read(redis, keys.raw, "dedup", 3)
    assert (await trim(redis, keys, 60, later_ms)).get("raw", 0) == 0, "read but pending entries must stay"
    await redis.xack(keys.raw, "dedup", *ids[:3])
    await trim(redis, keys, 60, later_ms)
    remaining = await ids_on(redis, keys.raw)
    assert remaining[0] >= ids[2]
    assert ids[3] in remaining
    assert ids[4] in remaining


async def test_prune_forgets_idle_empty_consumers_only(redis: Redis, key_prefix: str) -> None:
    """A consumer holding pending entries is kept; an idle one holding nothing is removed."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    await add(redis, keys.raw)
    await redis.xreadgroup("dedup", "holder", {keys.raw: ">"}, count=1)
    await redis.xgroup_createconsumer(keys.raw, "dedup", "gone")
    assert await prune_consumers(redis, keys, idle_ms=0) == 1
    consumers: Any = await redis.xinfo_consumers(keys.raw, "dedup")
    assert {as_text(c["name"]) for c in consumers} == {"holder"}


async def test_length_cap_trims_only_what_every_group_finished(redis: Redis, key_prefix: str) -> None:
    """Past `max_len`, the oldest entries go once every group has acknowledged them; the newest `max_len` stay."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["dedup"])
    ids = [await add(redis, keys.raw, str(n)) for n in range(10)]
    now_ms = int(time.time() * 1000)  # nothing is past a day's retention: only the cap trims
    await read(redis, keys.raw, "dedup", 6)
    assert (await trim(redis, keys, 86_400, now_ms, max_len=3))["raw"] == 0, "read but pending entries must stay"
    await redis.xack(keys.raw, "dedup", *ids[:6])
    assert (await trim(redis, keys, 86_400, now_ms, max_len=3))["raw"] == 6, "unread entries must stay"
    assert await ids_on(redis, keys.raw) == ids[6:]
    await read(redis, keys.raw, "dedup")
    await redis.xack(keys.raw, "dedup", *ids[6:])
    assert (await trim(redis, keys, 86_400, now_ms, max_len=3))["raw"] == 1
    assert await ids_on(redis, keys.raw) == ids[7:]


async def test_group_lags_tell_unread_pending_and_the_oldest_age(redis: Redis, key_prefix: str) -> None:
    """Every group of a stream, a subscriber's too, with its unread and pending entries and its oldest one's time."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["notifier"])
    await redis.xgroup_create(keys.changes, "alerts", id="0")
    ids = [await add(redis, keys.changes, str(n)) for n in range(5)]
    await read(redis, keys.changes, "notifier", 3)
    await redis.xack(keys.changes, "notifier", ids[0])
    lags = {lag.group: lag for lag in await group_lags(redis, keys)}
    first_ms, second_ms = (int(entry_id.split("-")[0]) for entry_id in ids[:2])
    assert (lags["notifier"].unread, lags["notifier"].pending, lags["notifier"].oldest_ms) == (2, 2, second_ms)
    assert (lags["alerts"].unread, lags["alerts"].pending, lags["alerts"].oldest_ms) == (5, 0, first_ms)
    report = lags["alerts"].as_report(first_ms + 2500)
    assert report == {"stream": "changes", "group": "alerts", "unread": 5, "pending": 0, "failed_to_retry": 0,
                      "oldest_unfinished_s": 2.5}
    await read(redis, keys.changes, "alerts")
    await redis.xack(keys.changes, "alerts", *ids)
    assert next(lag for lag in await group_lags(redis, keys) if lag.group == "alerts").oldest_ms is None


async def test_back_pressure_counts_running_stages_past_the_limit(redis: Redis, key_prefix: str) -> None:
    """Only a stage whose group exists and is past max_backlog holds back; a subscriber's group never does."""
    keys = Keys(key_prefix)
    pressure = BackPressure(redis, keys, max_backlog=2, check_every_s=0)
    for _ in range(5):
        await add(redis, keys.changes)
        await add(redis, keys.raw)
    assert await pressure.behind() == {}, "no group: no stage runs to be behind"
    await redis.xgroup_create(keys.changes, "alerts", id="0")
    assert await pressure.behind() == {}, "a subscriber's group does not hold the desk back"
    await ensure_groups(redis, keys, ["dedup"])
    assert await pressure.behind() == {"dedup": 5}
    assert await BackPressure(redis, keys, max_backlog=0, check_every_s=0).behind() == {}, "0 turns it off"
    await read(redis, keys.raw, "dedup", 5)
    assert await pressure.behind() == {"dedup": 5}, "pending entries are not finished"
    ids = await ids_on(redis, keys.raw)
    await redis.xack(keys.raw, "dedup", *ids[:3])
    assert await pressure.behind() == {}
    assert await pressure.wait() < 1.0


async def test_a_group_whose_pending_entries_were_acked_since_it_was_counted_has_a_lag(redis: Redis,
                                                                                      key_prefix: str) -> None:
    """XINFO said one entry was pending, XPENDING finds none (acknowledged in between): the lag is read, no crash."""
    from services.groups import _group_lag

    stream = Keys(key_prefix).stream("raw")
    entry_id = as_text(await redis.xadd(stream, {"__data__": "{}"}))
    await redis.xgroup_create(stream, "dedup", id="0")
    await redis.xreadgroup("dedup", "c1", {stream: ">"})
    await redis.xack(stream, "dedup", entry_id)
    counted = {"name": "dedup", "pending": 1, "last-delivered-id": entry_id, "lag": 0}
    lag, _ = await _group_lag(redis, stream, "raw", counted)
    assert lag.group == "dedup"
    assert lag.unread == 0
