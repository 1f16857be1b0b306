"""The subscriber SDK against a real Redis: typed events in order, ack after the body, reclaim, replay, filters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent, EventType, Evidence, Incident, Location
from services import client as livedesk
from services.names import Keys
from services.wire import DATA_FIELD, entry_fields

pytestmark = pytest.mark.redis

AT = datetime(2025, 10, 24, 9, 20, tzinfo=UTC)


def event(n: int, type_: EventType = EventType.condition_updated, field: str | None = "condition",
          incident_id: str = "i_1") -> ChangeEvent:
    return ChangeEvent(
        event_id=f"e_{n}", type=type_, incident_id=incident_id, version=n, field=field, subject="man",
        before="critical", after="stable", reported_at=AT, detected_at=AT,
        evidence=[Evidence(source_id="met-police", guid=f"g{n}")], summary=f"change {n} — “stable”",
    )


async def write(redis: Redis, keys: Keys, *events: ChangeEvent, ids: Sequence[str] = ()) -> None:
    for n, change in enumerate(events):
        await redis.xadd(keys.changes, entry_fields(change), id=ids[n] if ids else "*")  # type: ignore[arg-type]  # redis-py's fields: an invariant dict


async def take(events: livedesk.Subscription, count: int) -> list[ChangeEvent]:
    return [await asyncio.wait_for(anext(events), 5) for _ in range(count)]


async def nothing_more(events: livedesk.Subscription, within_s: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(anext(events), within_s)
    except TimeoutError:
        return True
    return False


async def pending(redis: Redis, keys: Keys, group: str) -> int:
    return int((await redis.xpending(keys.changes, group))["pending"])


@pytest.fixture
async def desk(redis: Redis, key_prefix: str) -> AsyncIterator[livedesk.Client]:
    async with livedesk.Client(redis=redis, key_prefix=key_prefix) as client:
        yield client


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


async def test_events_come_out_typed_and_in_order(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """Events written before the subscription (start=0) come out as equal ChangeEvents, in stream order."""
    written = [event(n) for n in range(1, 6)]
    await write(redis, keys, *written)
    async with desk.subscribe("alerts", start="0", batch_size=2) as events:
        assert await take(events, 5) == written
        assert events.entry_id is not None


async def test_an_exception_in_the_body_leaves_the_event_pending(desk: livedesk.Client, redis: Redis,
                                                                 keys: Keys) -> None:
    """An event whose body raised is not acknowledged and comes again to the group; the one before it was acked."""
    await write(redis, keys, event(1), event(2))

    async def consume() -> None:
        async with desk.subscribe("alerts", start="0") as events:
            async for change in events:
                if change.event_id == "e_2":
                    raise RuntimeError("body failed")

    with pytest.raises(RuntimeError):
        await consume()
    assert await pending(redis, keys, "alerts") == 1
    async with desk.subscribe("alerts") as events:
        assert [e.event_id for e in await take(events, 1)] == ["e_2"]
        assert await nothing_more(events)
    assert await pending(redis, keys, "alerts") == 0


async def test_break_leaves_the_event_pending_unless_acked(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """`break` leaves the last event pending (it comes again); `ack()` before the break finishes it."""
    await write(redis, keys, event(1), event(2))
    async with desk.subscribe("alerts", start="0", batch_size=1) as events:
        async for _ in events:
            break
    async with desk.subscribe("alerts", batch_size=1) as events:
        async for change in events:
            assert change.event_id == "e_1"
            await events.ack()
            break
    async with desk.subscribe("alerts") as events:
        assert [e.event_id for e in await take(events, 1)] == ["e_2"]


async def test_a_second_consumer_reclaims_a_crashed_consumers_event(desk: livedesk.Client, redis: Redis,
                                                                    keys: Keys) -> None:
    """An event left pending by a consumer that is gone is taken over by another after `min_idle_ms`, not before."""
    await write(redis, keys, event(1))
    crashed = desk.subscribe("alerts", start="0", consumer="crashed")
    assert [e.event_id for e in await take(crashed, 1)] == ["e_1"]
    await crashed.aclose()  # as a killed process would: nothing acknowledged
    async with desk.subscribe("alerts", consumer="survivor", min_idle_ms=400, block_ms=100) as events:
        started = asyncio.get_running_loop().time()
        assert [e.event_id for e in await take(events, 1)] == ["e_1"]
        assert asyncio.get_running_loop().time() - started >= 0.3
        await events.ack()
    consumers = {c["name"].decode(): c["pending"] for c in await redis.xinfo_consumers(keys.changes, "alerts")}
    assert consumers == {"crashed": 0, "survivor": 0}


async def test_replay_from_an_id_and_from_a_time(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """A new group started at a stream id gets the events after it; one started at a time those at or after it."""
    await write(redis, keys, event(1), event(2), event(3), ids=["1000-0", "2000-0", "3000-0"])
    async with desk.subscribe("from-id", start="1000-0") as events:
        assert [e.event_id for e in await take(events, 2)] == ["e_2", "e_3"]
    at = datetime.fromtimestamp(2, tz=UTC)
    async with desk.subscribe("from-time", start=at) as events:
        assert [e.event_id for e in await take(events, 2)] == ["e_2", "e_3"]
    with pytest.raises(ValueError, match="timezone-aware"):
        desk.subscribe("naive", start=datetime(2025, 1, 1))


async def test_start_applies_to_a_new_group_and_reset_moves_an_existing_one(desk: livedesk.Client, redis: Redis,
                                                                            keys: Keys) -> None:
    """An existing group resumes where it was whatever `start` says; `reset=True` moves it to `start`."""
    await write(redis, keys, event(1), event(2), ids=["1000-0", "2000-0"])
    async with desk.subscribe("alerts", start="0") as events:
        await take(events, 2)
        await events.ack()
    async with desk.subscribe("alerts", start="0") as events:
        assert await nothing_more(events)
    async with desk.subscribe("alerts", start="1000-0", reset=True) as events:
        assert [e.event_id for e in await take(events, 1)] == ["e_2"]


async def test_filters_on_type_and_field_ack_what_they_drop(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """Only events of the asked types and fields are yielded; the others are acknowledged unseen."""
    await write(redis, keys, event(1), event(2, EventType.cordon_updated, "cordon"),
                event(3, EventType.casualties_updated, "injured"), event(4, EventType.cordon_updated, "cordon"))
    async with desk.subscribe("cordons", start="0", types=["cordon_updated", "casualties_updated"],
                              where="field=cordon") as events:
        assert [e.event_id for e in await take(events, 2)] == ["e_2", "e_4"]
        await events.ack()
    assert await pending(redis, keys, "cordons") == 0


def incident(incident_id: str, region: str, sources: list[str]) -> Incident:
    return Incident(incident_id=incident_id, version=1, title="t", opened_at=AT, updated_at=AT,
                    location=Location(name="Walthamstow" if region == "London" else "Leeds", region=region),
                    sources=sources)


async def test_filters_on_stored_incidents(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """Region and corroboration are decided on the incidents as the tracker stores them; unknown incidents fail."""
    for stored in (incident("i_london", "London", ["bbc", "met-police"]), incident("i_leeds", "Yorkshire",
                   ["bbc", "itv"]), incident("i_single", "London", ["bbc"])):
        await redis.hset(keys.incident(stored.incident_id), mapping={"state": stored.model_dump_json(), "rev": 1})
    await write(redis, keys, *(event(n, incident_id=i) for n, i in
                               enumerate(["i_leeds", "i_london", "i_single", "i_unknown", "i_london"], start=1)))
    async with desk.subscribe("london", start="0", where="region=london corroboration=several") as events:
        assert [(e.event_id, e.incident_id) for e in await take(events, 2)] == [("e_2", "i_london"),
                                                                               ("e_5", "i_london")]


async def test_an_injected_incident_loader_is_asked_once_per_read(desk: livedesk.Client, redis: Redis,
                                                                  keys: Keys) -> None:
    """A custom loader decides incident filters, asked only for incidents of events the event filters pass."""
    asked: list[list[str]] = []

    async def load(ids: Sequence[str]) -> dict[str, Incident]:
        asked.append(list(ids))
        return {"i_1": incident("i_1", "London", ["bbc"])}

    await write(redis, keys, event(1), event(2, incident_id="i_2"), event(3, EventType.cordon_updated, "cordon",
                                                                          incident_id="i_3"))
    async with desk.subscribe("a", start="0", types=["condition_updated"], where="region=London",
                              incidents=load) as events:
        assert [e.event_id for e in await take(events, 1)] == ["e_1"]
    assert asked == [["i_1", "i_2"]]


async def test_malformed_entries_are_reported_acked_and_skipped(desk: livedesk.Client, redis: Redis,
                                                                keys: Keys) -> None:
    """Entries that are not change events go to `on_error`, are acknowledged, and the loop goes on."""
    await redis.xadd(keys.changes, {DATA_FIELD: "not json"})
    await redis.xadd(keys.changes, {"other": "field"})
    await redis.xadd(keys.changes, {DATA_FIELD: '{"event_id": "e_x"}'})
    await redis.xadd(keys.changes, {DATA_FIELD: b"\xff\xfe not utf-8"})
    await write(redis, keys, event(1))
    errors: list[tuple[str, str]] = []

    async def on_error(entry_id: str, fields: object, error: Exception) -> None:
        errors.append((entry_id, type(error).__name__))

    async with desk.subscribe("alerts", start="0", on_error=on_error) as events:
        assert [e.event_id for e in await take(events, 1)] == ["e_1"]
        await events.ack()
    assert [name for _, name in errors] == ["ValidationError", "KeyError", "ValidationError", "ValidationError"]
    assert await pending(redis, keys, "alerts") == 0


async def test_two_groups_each_get_every_event(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """Every group sees the whole stream, independently."""
    await write(redis, keys, event(1), event(2), event(3))
    async with desk.subscribe("one", start="0") as one, desk.subscribe("two", start="0") as two:
        assert [e.event_id for e in await take(one, 3)] == [e.event_id for e in await take(two, 3)]


async def test_consumers_of_one_group_split_its_events(desk: livedesk.Client, redis: Redis, keys: Keys) -> None:
    """Two consumers of one group (distinct default names in one process) each get a share, none twice."""
    await write(redis, keys, *(event(n) for n in range(1, 7)))
    async with desk.subscribe("shared", start="0", batch_size=1) as a, desk.subscribe("shared", batch_size=1) as b:
        assert a.consumer != b.consumer
        seen_a: list[str] = []
        seen_b: list[str] = []
        for _ in range(3):
            seen_a += [e.event_id for e in await take(a, 1)]
            seen_b += [e.event_id for e in await take(b, 1)]
        assert sorted(seen_a + seen_b) == [f"e_{n}" for n in range(1, 7)]
        assert not set(seen_a) & set(seen_b)
        assert await nothing_more(a)
        assert await nothing_more(b)


async def test_cancelling_a_waiting_subscriber_leaves_nothing_half_done(desk: livedesk.Client, redis: Redis,
                                                                        keys: Keys) -> None:
    """A task blocked on the stream stops at once when cancelled, and its consumer name is free again."""
    events = desk.subscribe("alerts", start="0", consumer="waiter", block_ms=5000)

    async def consume() -> None:
        async with events:
            async for _ in events:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    async with desk.subscribe("alerts", consumer="waiter") as again:
        await write(redis, keys, event(1))
        assert [e.event_id for e in await take(again, 1)] == ["e_1"]


async def test_module_level_subscribe_owns_its_client(redis_url: str, redis: Redis, keys: Keys) -> None:
    """`livedesk.subscribe(url, group)` opens a client of its own and closes it with the subscription."""
    await write(redis, keys, event(1))
    async with livedesk.subscribe(redis_url, "alerts", key_prefix=keys.prefix, start="0") as events:
        assert [e.event_id for e in await take(events, 1)] == ["e_1"]
