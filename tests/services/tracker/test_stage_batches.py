"""The tracker stage reads and acknowledges in batches; one failing update stays pending alone; a copy of a text that
was only recorded never waits for it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from schemas import EventType, RevisionDiff, RevisionKind, Verdict
from services.app import build_broker
from services.groups import backlog, ensure_groups
from services.names import Keys
from services.settings import Settings
from services.stage import StageContext
from services.tracker.stage import process
from services.tracker.store import NOT_AN_INCIDENT, IncidentStore
from services.wire import as_text, entry_data, entry_fields
from tests.services.test_worker_crash import place_name
from tests.services.tracker.test_tracker_stage import update
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

NOT_NEWS = ("Cup final tickets on sale", "Tickets for the cup final go on sale on Monday.")


async def test_a_copy_of_a_retitled_non_incident_is_dropped_not_left_waiting(redis: Redis, key_prefix: str) -> None:
    """A cosmetic edit of an entry about no incident is recorded as no incident, so a copy of the edit is dropped at
    once instead of waiting for an original that will never be tracked."""
    store = IncidentStore(redis, Keys(key_prefix))
    original = update("echo", "e1", *NOT_NEWS)
    retitled = update("echo", "e1", f"{NOT_NEWS[0]} - latest", NOT_NEWS[1], minutes=5, verdict=Verdict.revision
                      ).model_copy(update={"revision": RevisionDiff(kind=RevisionKind.cosmetic, reason="retitled"),
                                           "fingerprint": "f2", "replaces": original.update_id})
    copy = update("wire", "w1", retitled.title, retitled.text, minutes=6, verdict=Verdict.duplicate,
                  duplicate_of=retitled.update_id)
    assert await process(store, original) == []
    assert await process(store, retitled) == []
    assert await process(store, copy) == []
    assert await store.item_decision(retitled.update_id) == NOT_AN_INCIDENT
    assert await store.item_decision(copy.update_id) == NOT_AN_INCIDENT  # its own copies are dropped too
    assert await store.all() == []


class CountingRedis(Redis):
    """A client that remembers how many entry ids each XACK it sent named."""

    acks: list[int]

    async def xack(self, name: Any, groupname: Any, *ids: Any) -> Any:
        self.acks.append(len(ids))
        return await super().xack(name, groupname, *ids)


def stabbing(n: int) -> tuple[str, str]:
    place = place_name(n)
    return f"Man stabbed in {place}", f"A man was stabbed in {place} on Friday. He is in a critical condition."


async def test_updates_are_acknowledged_in_batches_and_a_failing_one_stays_pending_alone(
        redis: Redis, settings: Settings) -> None:
    """120 updates on `updates` are tracked and acknowledged a batch at a time (a few XACKs, not one per update); a
    malformed entry is dead-lettered at once and a copy whose original never comes stays pending while the rest of
    its batch is acknowledged, then is dead-lettered with its error once its deliveries run out."""
    keys = settings.keys
    updates = [update("echo", f"e{n}", *stabbing(n), minutes=n) for n in range(120)]
    orphan = update("wire", "w1", *stabbing(0), verdict=Verdict.duplicate, duplicate_of="u_never_tracked")
    await ensure_groups(redis, keys, ["tracker"])
    for n, item in enumerate(updates):
        await redis.xadd(keys.updates, entry_fields(item))  # type: ignore[arg-type]
        if n == 30:
            await redis.xadd(keys.updates, {"__data__": "{not json"})
        if n == 60:
            orphan_id = as_text(await redis.xadd(keys.updates, entry_fields(orphan)))  # type: ignore[arg-type]
    client = CountingRedis.from_url(settings.redis_url or "")
    assert isinstance(client, CountingRedis)
    client.acks = []
    ctx = StageContext(settings.model_copy(update={"batch_size": 50}), client)
    try:
        async with build_broker(ctx, settings.redis_url or "", ["tracker"]) as broker:
            await broker.start()
            await eventually(lambda: sum(client.acks) == 120, timeout_s=60, what="every good update acknowledged")
            pending = await redis.xpending_range(keys.updates, "tracker", "-", "+", 10)
            assert [as_text(entry["message_id"]) for entry in pending] == [orphan_id]
            assert len(client.acks) <= 6
            assert max(client.acks) >= 40
            await eventually(_dead_letters(redis, keys, 2), timeout_s=30, what="the orphan copy dead-lettered")
    finally:
        await client.aclose()
    assert (await backlog(redis, keys, ["tracker"]))["tracker"] == 0
    dead = {json.loads(data)["entry_id"]: json.loads(data)
            for _, data in entry_data(await redis.xrange(keys.deadletter))}
    assert "OriginalNotYetTrackedError" in dead[orphan_id]["error"]
    assert dead[orphan_id]["deliveries"] == settings.max_deliveries
    events = [json.loads(data) for _, data in entry_data(await redis.xrange(keys.changes))]
    opened = {event["evidence"][0]["guid"] for event in events if event["type"] == EventType.incident_opened.value}
    assert opened == {item.guid for item in updates}


def _dead_letters(redis: Redis, keys: Keys, count: int) -> Any:
    async def check() -> bool:
        await asyncio.sleep(0)
        return bool(await redis.xlen(keys.deadletter) == count)

    return check
