"""Webhook delivery end to end on a real Redis, to real receivers on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent
from schemas.subscriptions import DeadLetter, Delivery
from services.notifier.deadletters import read_dead_letters, redeliver, replay_dead_letters
from services.notifier.deliver import Deliverers, EarlierEvents
from services.notifier.formats import delivery_id
from services.notifier.hooks import HookRegistry
from services.notifier.send import build_hook_client
from services.notifier.signing import verify
from services.settings import Settings
from services.stage import StageContext
from services.wire import entry_data
from tests.services.notifier.conftest import SECRET, add_hook, change, publish, running_notifier
from tests.support.receivers import Receiver, Reply, dead, failing, rate_limited
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis


def signed(receiver: Receiver) -> bool:
    return all(verify(SECRET, r.headers["x-livedesk-timestamp"], r.body, r.headers["x-livedesk-signature"])
               for r in receiver.requests)


async def deliveries(redis: Redis, settings: Settings) -> list[Delivery]:
    return [Delivery.model_validate_json(d) for _, d in entry_data(await redis.xrange(settings.keys.deliveries))]


async def test_flaky_receiver_gets_every_event_once_in_order_per_incident(redis: Redis, fast: Settings) -> None:
    """After two 500s the receiver has each event exactly once by Idempotency-Key, in order per incident, signed."""
    events = [change(f"i_{n}", v) for v in (1, 2, 3) for n in (1, 2, 3)]
    with failing(2) as receiver:
        await add_hook(redis, fast, "flaky", receiver.url)
        async with running_notifier(redis, fast):
            await publish(redis, fast, events)
            await eventually(lambda: len(set(receiver.accepted_keys())) == len(events), what="all delivered")
            await eventually(lambda: _recorded(redis, fast, len(events) + 2), what="attempts recorded")
    keys = receiver.accepted_keys()
    assert sorted(keys) == sorted(e.event_id for e in events)
    assert len(keys) == len(set(keys)), "no event accepted twice"
    for incident in ("i_1", "i_2", "i_3"):
        assert [k for k in keys if k.startswith(incident)] == [f"{incident}-v{v}" for v in (1, 2, 3)]
    assert signed(receiver)
    bodies = [ChangeEvent.model_validate_json(r.body) for r in receiver.accepted()]
    assert {b.event_id for b in bodies} == set(keys), "the body is the bare event named by the key"
    recorded = await deliveries(redis, fast)
    assert [d.status for d in recorded].count(500) == 2
    assert sum(d.ok for d in recorded) == len(events)


async def test_stalled_then_rate_limited_receiver_recovers(redis: Redis, fast: Settings) -> None:
    """A request past the timeout and a 429 are retried; the event is delivered once they pass."""
    script = [Reply(stall_s=1.0), Reply(429, {"Retry-After": "1"})]
    with Receiver(script) as receiver:
        await add_hook(redis, fast, "slow", receiver.url, timeout_s=0.3)
        async with running_notifier(redis, fast):
            await publish(redis, fast, [change("i_1", 1)])
            await eventually(lambda: receiver.accepted_keys() == ["i_1-v1"], what="delivered")
            await eventually(lambda: _recorded(redis, fast, 3), what="attempts recorded")
    recorded = await deliveries(redis, fast)
    assert [(d.attempt, d.status, d.ok) for d in recorded] == [(1, None, False), (2, 429, False), (3, 200, True)]
    assert "0.3 s" in (recorded[0].error or "")


async def test_retry_after_beyond_the_max_age_dead_letters_at_once(redis: Redis, fast: Settings) -> None:
    """A receiver asking for a wait past the delivery's max age ends it now, not after jittered retries."""
    with rate_limited(5, "120") as receiver:
        await add_hook(redis, fast, "limited", receiver.url, max_age_s=30)
        async with running_notifier(redis, fast):
            await publish(redis, fast, [change("i_1", 1)])
            await eventually(lambda: _dead_count(redis, fast, 1), what="dead-lettered")
    assert len(receiver.requests) == 1


async def _recorded(redis: Redis, settings: Settings, n: int) -> bool:
    return bool(await redis.xlen(settings.keys.deliveries) >= n)


async def _dead_count(redis: Redis, settings: Settings, n: int) -> bool:
    return bool(await redis.xlen(settings.keys.deadletter) == n)


async def test_a_dead_receiver_does_not_delay_a_healthy_one(redis: Redis, fast: Settings) -> None:
    """A receiver that never answers holds up only its own hook: the healthy one gets every event."""
    events = [change("i_1", v) for v in range(1, 6)]
    with dead() as stuck, Receiver() as healthy:
        await add_hook(redis, fast, "stuck", stuck.url, timeout_s=60)
        await add_hook(redis, fast, "healthy", healthy.url)
        async with running_notifier(redis, fast):
            await publish(redis, fast, events)
            await eventually(lambda: len(healthy.accepted()) == len(events), what="healthy receiver served")
            assert stuck.accepted() == []
    assert healthy.accepted_keys() == [e.event_id for e in events]


async def test_a_burst_about_one_incident_is_coalesced(redis: Redis, fast: Settings) -> None:
    """Events of one incident within the window go out as one payload listing them, keyed by its events."""
    events = [change("i_1", v) for v in (1, 2, 3)]
    with Receiver() as receiver:
        await add_hook(redis, fast, "digest", receiver.url, coalesce_s=0.5)
        await publish(redis, fast, events)
        async with running_notifier(redis, fast):
            await eventually(lambda: len(receiver.accepted()) == 1, what="one payload")
    body = json.loads(receiver.accepted()[0].body)
    assert body["incident_id"] == "i_1"
    assert [e["event_id"] for e in body["events"]] == ["i_1-v1", "i_1-v2", "i_1-v3"]
    assert receiver.accepted_keys() == [delivery_id(events)]
    assert signed(receiver)


async def test_slack_format_is_signed_text(redis: Redis, fast: Settings) -> None:
    """A slack hook gets {"text": ...} with the summary, incident id and evidence link, signed like any other."""
    with Receiver() as receiver:
        await add_hook(redis, fast, "chat", receiver.url, format="slack")
        async with running_notifier(redis, fast):
            await publish(redis, fast, [change("i_9", 1)])
            await eventually(lambda: len(receiver.accepted()) == 1, what="delivered")
    text = json.loads(receiver.accepted()[0].body)["text"]
    assert "i_9" in text
    assert "i_9 change 1 — <https://echo.example/1|Echo>" in text
    assert signed(receiver)


async def test_dead_lettered_after_max_age_then_redelivered(redis: Redis, fast: Settings) -> None:
    """A receiver failing past the max age gets the event dead-lettered with hook and error; redeliver sends it."""
    with Receiver(then=Reply(500)) as receiver:
        await add_hook(redis, fast, "down", receiver.url, max_age_s=0.3)
        async with running_notifier(redis, fast):
            await publish(redis, fast, [change("i_1", 1)])
            await eventually(lambda: _dead_count(redis, fast, 1), what="dead-lettered")
            [letter] = await read_dead_letters(redis, fast.keys)
            assert isinstance(letter, DeadLetter)
            assert letter.hook_id == "down"
            assert "hook down: HTTP 500" in letter.error
            assert ChangeEvent.model_validate_json(letter.payload) == change("i_1", 1)
            assert await redis.xlen(fast.keys.hook_queue("down")) == 0
            receiver.then = Reply(200)
            assert [d.dead_letter_id for d in await redeliver(redis, fast.keys, "down")] == [letter.dead_letter_id]
            await eventually(lambda: receiver.accepted_keys() == ["i_1-v1"], what="redelivered")
    assert await redis.xlen(fast.keys.deadletter) == 0


@pytest.mark.parametrize("put_back", ["hooks redeliver", "deadletter replay"])
async def test_an_event_put_back_on_its_queue_holds_back_the_later_events_of_its_incident(
        redis: Redis, fast: Settings, put_back: str) -> None:
    """A dead-lettered event put back on its hook's queue is indexed as unsent, as a fanned-out one is: until it is
    sent, any copy of the notifier holds that incident's later events for the hook (and no other incident's)."""
    with Receiver(then=Reply(500)) as receiver:
        await add_hook(redis, fast, "down", receiver.url, max_age_s=0.3)
        async with running_notifier(redis, fast):
            await publish(redis, fast, [change("i_1", 1)])
            await eventually(lambda: _dead_count(redis, fast, 1), what="dead-lettered")
    earlier = EarlierEvents(redis, fast.keys, "down")
    assert not await earlier.before(change("i_1", 2)), "a dead letter holds nothing back"
    if put_back == "hooks redeliver":
        assert len(await redeliver(redis, fast.keys, "down")) == 1
    else:
        assert len((await replay_dead_letters(redis, fast.keys, known_hooks=["down"])).put_back) == 1
    assert await earlier.before(change("i_1", 2))
    assert not await earlier.before(change("i_1", 1))
    assert not await earlier.before(change("i_2", 2))
    with Receiver() as receiver:
        await add_hook(redis, fast, "down", receiver.url)
        async with running_notifier(redis, fast):
            await eventually(lambda: receiver.accepted_keys() == ["i_1-v1"], what="sent")
            await eventually(lambda: _nothing_held(earlier), what="nothing held back once it is sent")


async def _nothing_held(earlier: EarlierEvents) -> bool:
    return not await earlier.before(change("i_1", 2))


async def test_a_worker_killed_mid_delivery_loses_nothing(redis: Redis, fast: Settings) -> None:
    """Deliverers cancelled while a request hangs leave their entries pending; another process delivers them all."""
    events = [change("i_1", v) for v in (1, 2, 3)]
    with Receiver([Reply(gated=True)]) as receiver:
        await add_hook(redis, fast, "crash", receiver.url, timeout_s=60)
        async with running_notifier(redis, fast):
            await publish(redis, fast, events)
            await eventually(lambda: len(receiver.arrivals) == 1, what="first request in flight")
        assert receiver.accepted() == []
        successor = fast.model_copy(update={"consumer": fast.consumer + "-next"})
        async with running_notifier(redis, successor):
            await eventually(lambda: len(receiver.accepted()) == len(events), what="all delivered after restart")
        # Checked before the receiver stops: stopping releases the request the killed worker left hanging.
        assert receiver.accepted_keys() == [e.event_id for e in events]
        assert signed(receiver)


async def test_the_worker_of_a_removed_hook_is_finished_when_the_deliverers_stop(redis: Redis, fast: Settings) -> None:
    """A hook removed while its receiver hangs: its worker is stopped, and once the deliverers return it is finished
    too, before the caller closes the HTTP client and Redis it uses."""
    with dead() as receiver:
        await add_hook(redis, fast, "gone", receiver.url)
        async with build_hook_client(fast) as client:
            deliverers = Deliverers(StageContext(fast, redis), client, refresh_s=0.05)
            running = asyncio.create_task(deliverers.run())

            def workers() -> list[asyncio.Task[object]]:
                return [task for task in asyncio.all_tasks() if task.get_name() == "hook:gone"]

            async def started() -> bool:  # async: `eventually` runs a plain function off the event loop
                return bool(workers())

            await eventually(started, timeout_s=10, what="the hook's worker started")
            (worker,) = workers()
            await HookRegistry(redis, fast.keys).remove("gone")

            async def stopped() -> bool:
                return worker.cancelling() > 0 or worker.done()

            await eventually(stopped, timeout_s=10, what="the removed hook's worker stopped")
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            assert worker.done()
