"""WebSub push end to end: a feed that names a hub, a hub on loopback, the callback served by uvicorn on loopback,
the poller and the subscriber on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from schemas import Authority, FeedSource, RawUpdate
from services.poller.feeds import FeedRegistry
from services.poller.fetch import build_client
from services.poller.stage import Poller
from services.settings import Settings
from services.stage import StageContext
from services.web import build_web_app, http_server
from services.websub.subscriber import Subscriber, callback_url
from services.websub.subscriptions import SubscriptionState, SubscriptionStore
from services.wire import as_optional_text, entry_data
from tests.support.feed_server import FeedServer, atom, free_port
from tests.support.waiting import eventually
from tests.support.websub_hub import WebSubHub

pytestmark = pytest.mark.redis


@dataclass
class Push:
    """A running push side (callback server + subscriber) and a poller, with the feed they share."""

    settings: Settings
    redis: Redis
    source: FeedSource
    topic: str
    server: FeedServer

    async def callback(self) -> str:
        subscription = await SubscriptionStore(self.redis, self.settings.keys).get(self.source.id)
        assert self.settings.public_url
        assert subscription is not None
        return callback_url(self.settings.public_url, subscription)

    async def raw(self) -> list[RawUpdate]:
        rows = await self.redis.xrange(self.settings.keys.raw)
        return [RawUpdate.model_validate_json(data) for _, data in entry_data(rows)]

    async def subscription_state(self) -> SubscriptionState | None:
        found = await SubscriptionStore(self.redis, self.settings.keys).get(self.source.id)
        return found.state if found else None


@pytest.fixture
async def push(request: pytest.FixtureRequest, redis: Redis,
               settings: Settings) -> AsyncIterator[tuple[Push, WebSubHub]]:
    """Poller, callback server and subscriber running on one hub-advertising feed; the poll interval is long.

    Parametrised indirectly, the parameter is the hub's keyword arguments."""
    port = free_port()
    settings = settings.model_copy(
        update={"public_url": f"http://127.0.0.1:{port}", "http_port": port, "poll_interval_s": 3000.0,
                "poll_min_interval_s": 3000.0, "poll_max_interval_s": 7200.0, "poll_hot_interval_s": 3000.0}
    )
    ctx = StageContext(settings, redis)
    with FeedServer() as feeds, WebSubHub(**getattr(request, "param", {})) as hub:
        topic = f"{feeds.url}/a.xml"
        feeds.routes["/a.xml"] = atom(hub.url, topic, ("e1", "Man shot in Walthamstow", "critical condition"))
        source = FeedSource(id="a", name="A", url=topic, authority=Authority.news)
        server = http_server(build_web_app(ctx), "127.0.0.1", port)
        async with build_client(settings) as client:
            tasks = [
                asyncio.create_task(server.serve()),
                asyncio.create_task(Poller(ctx, [source], client).run()),
                asyncio.create_task(Subscriber(ctx, client, settings.public_url or "").run()),
            ]
            try:
                yield Push(settings, redis, source, topic, feeds), hub
            finally:
                server.should_exit = True
                for task in tasks[1:]:
                    task.cancel()
                async with asyncio.timeout(10):
                    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("push", [{}, {"verify_before_answering": True}], ids=["hub", "quick-hub"], indirect=True)
async def test_a_feed_naming_a_hub_is_subscribed_and_pushes_arrive_on_raw(push: tuple[Push, WebSubHub]) -> None:
    """The first poll finds the hub; the hub verifies us (even before it has answered our request); a push is on
    `raw` at once, long before the next poll."""
    side, hub = push
    await eventually(lambda: any(v == ("subscribe", side.topic, True) for v in hub.verifications))
    request = hub.requests[0]
    assert request["hub.callback"] == await side.callback()
    assert request["hub.topic"] == side.topic
    assert len(request["hub.secret"]) >= 32
    assert request["hub.lease_seconds"] == str(side.settings.websub_lease_s)
    assert await side.subscription_state() is SubscriptionState.active
    assert [u.entry.guid for u in await side.raw()] == ["e1"]

    pushed = atom(hub.url, side.topic, ("e2", "Second stabbing in Walthamstow", "a man was arrested"),
                  ("e1", "Man shot in Walthamstow", "now in a stable condition"))
    assert await asyncio.to_thread(hub.publish, side.topic, pushed) == [202]
    raw = await side.raw()
    assert [(u.entry.guid, u.entry.text) for u in raw] == [
        ("e1", "critical condition"),
        ("e2", "a man was arrested"),
        ("e1", "now in a stable condition"),  # an edit pushed is a revision like a polled one
    ]
    # Pushed and polled entries share one record of what was seen: the same document again publishes nothing.
    assert await asyncio.to_thread(hub.publish, side.topic, pushed) == [202]
    assert len(await side.raw()) == 3
    state = await side.redis.hgetall(side.settings.keys.feed_state("a"))
    assert state[b"pushes"] == b"2"
    assert len(side.server.requests) == 1, "pushes cost no poll"


async def test_an_active_subscription_makes_polling_a_fallback_at_the_maximum_interval(
    push: tuple[Push, WebSubHub],
) -> None:
    side, hub = push

    async def reason() -> str | None:
        return as_optional_text(await side.redis.hget(side.settings.keys.feed_state("a"), "schedule_reason"))

    await eventually(lambda: any(confirmed for _, _, confirmed in hub.verifications))
    assert await reason() != "push", "the first poll, before the subscription, is scheduled as usual"
    registry = FeedRegistry(side.redis, side.settings.keys)
    # The next poll after the subscription is at the maximum interval, reason "push".
    await registry.schedule("a", datetime.now(UTC))
    await eventually(lambda: len(side.server.requests) >= 2)

    async def pushed() -> bool:
        return await reason() == "push"

    await eventually(pushed)
    due = await registry.next_due("a")
    assert due is not None
    assert due > datetime.now(UTC) + timedelta(seconds=0.8 * side.settings.poll_max_interval_s)


async def test_a_push_with_a_wrong_signature_is_acknowledged_and_ignored(push: tuple[Push, WebSubHub]) -> None:
    side, hub = push
    await eventually(lambda: any(confirmed for _, _, confirmed in hub.verifications))
    forged = atom(hub.url, side.topic, ("e9", "Forged", "not from the hub"))
    assert await asyncio.to_thread(hub.publish, side.topic, forged, secret="guessed") == [202]
    async with httpx.AsyncClient() as client:  # no signature at all
        assert (await client.post(await side.callback(), content=forged)).status_code == 202
    assert [u.entry.guid for u in await side.raw()] == ["e1"]


async def test_a_push_that_is_not_a_feed_is_refused_naming_the_feed(push: tuple[Push, WebSubHub]) -> None:
    side, hub = push
    await eventually(lambda: any(confirmed for _, _, confirmed in hub.verifications))
    statuses = await asyncio.to_thread(hub.publish, side.topic, b"<html><body>Sorry</body></html>",
                                       content_type="text/html")
    assert statuses == [400]
    assert [u.entry.guid for u in await side.raw()] == ["e1"]


async def test_verifications_we_did_not_ask_for_are_refused(push: tuple[Push, WebSubHub]) -> None:
    """Intent is checked (WebSub §5.3): another topic, an unsubscribe or a renewal we did not ask for, a guessed
    token, an unknown feed → 404; nothing a stranger sends changes the subscription."""
    side, hub = push
    await eventually(lambda: any(confirmed for _, _, confirmed in hub.verifications))
    base, callback = side.settings.public_url, await side.callback()
    verification: dict[str, str | int] = {"hub.mode": "subscribe", "hub.topic": side.topic, "hub.challenge": "c",
                                          "hub.lease_seconds": 60}
    async with httpx.AsyncClient() as client:
        other_topic = await client.get(callback, params={**verification, "hub.topic": "http://elsewhere/feed"})
        unsubscribe = await client.get(callback, params={**verification, "hub.mode": "unsubscribe"})
        # The right path and topic, but no request of ours is pending: a forged "renewal" with a huge lease.
        not_pending = await client.get(callback, params={**verification, "hub.lease_seconds": 999_999_999})
        wrong_token = await client.get(f"{base}/websub/a/guessed", params=verification)
        unknown = await client.get(f"{base}/websub/nope/x", params=verification)
        no_challenge = await client.get(callback, params={"hub.mode": "subscribe", "hub.topic": side.topic})
        denied_by_forger = await client.get(f"{base}/websub/a/guessed",
                                            params={"hub.mode": "denied", "hub.topic": side.topic})
        push_to_unknown = await client.post(f"{base}/websub/nope/x", content=b"<feed/>")
        bad_signature = await client.post(callback, content=b"<feed/>", headers={b"X-Hub-Signature": b"sha1=\xe9"})
    assert [r.status_code for r in (other_topic, unsubscribe, not_pending, wrong_token, unknown, denied_by_forger)] \
        == [404] * 6
    assert no_challenge.status_code == 400
    assert push_to_unknown.status_code == 410
    assert bad_signature.status_code == 202, "a header that is not ASCII is a wrong signature, not a crash"
    subscription = await SubscriptionStore(side.redis, side.settings.keys).get("a")
    assert subscription is not None
    assert subscription.lease_until is not None
    assert subscription.lease_until < datetime.now(UTC) + timedelta(seconds=side.settings.websub_lease_s + 60)
    assert await side.subscription_state() is SubscriptionState.active


async def test_a_short_lease_is_renewed_before_it_ends(redis: Redis, settings: Settings) -> None:
    """A hub granting 2 s leases is asked again before each lease ends, and the subscription stays active."""
    port = free_port()
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "poll_interval_s": 3000.0,
                                           "poll_min_interval_s": 3000.0, "poll_max_interval_s": 7200.0,
                                           "poll_hot_interval_s": 3000.0})
    ctx = StageContext(settings, redis)
    with FeedServer() as feeds, WebSubHub(lease_s=2) as hub:
        topic = f"{feeds.url}/a.xml"
        feeds.routes["/a.xml"] = atom(hub.url, topic, ("e1", "t", "x"))
        source = FeedSource(id="a", name="A", url=topic)
        server = http_server(build_web_app(ctx), "127.0.0.1", port)
        async with build_client(settings) as client:
            poller, subscriber = Poller(ctx, [source], client), Subscriber(ctx, client, settings.public_url or "")
            tasks = [asyncio.create_task(c) for c in (server.serve(), poller.run(), subscriber.run())]
            try:
                await eventually(lambda: sum(confirmed for _, _, confirmed in hub.verifications) >= 3, timeout_s=15)
                subscription = await SubscriptionStore(redis, settings.keys).get("a")
            finally:
                server.should_exit = True
                for task in tasks[1:]:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    assert [r["hub.mode"] for r in hub.requests][:3] == ["subscribe"] * 3
    assert subscription is not None
    assert subscription.state is SubscriptionState.active
    assert subscription.lease_until is not None
    assert subscription.lease_until > datetime.now(UTC) - timedelta(seconds=2)
    assert len({r["hub.secret"] for r in hub.requests}) == 1, "renewals keep the subscription's secret"


async def test_a_denied_subscription_falls_back_to_polling(push: tuple[Push, WebSubHub]) -> None:
    side, hub = push
    await eventually(lambda: any(confirmed for _, _, confirmed in hub.verifications))
    assert await side.redis.hexists(side.settings.keys.feed_state("a"), "push_until")
    assert await asyncio.to_thread(hub.deny, side.topic, await side.callback(), "topic closed") == 200
    assert await side.subscription_state() is SubscriptionState.denied
    assert not await side.redis.hexists(side.settings.keys.feed_state("a"), "push_until")
    subscription = await SubscriptionStore(side.redis, side.settings.keys).get("a")
    assert subscription is not None
    assert "topic closed" in subscription.last_error


async def test_a_removed_feed_is_unsubscribed(push: tuple[Push, WebSubHub]) -> None:
    side, hub = push
    await eventually(lambda: any(confirmed for _, _, confirmed in hub.verifications))
    await FeedRegistry(side.redis, side.settings.keys).remove("a")
    # Due now (as at its renewal time): the subscriber finds the feed gone and unsubscribes.
    await side.redis.zadd(side.settings.keys.websub_due, {"a": 0})
    await eventually(lambda: ("unsubscribe", side.topic, True) in hub.verifications)
    await eventually(lambda: not hub.subscriptions.get(side.topic))
    assert await side.subscription_state() is None
    assert not await side.redis.hexists(side.settings.keys.feed_state("a"), "push_until")


async def test_a_hub_that_refuses_is_asked_again_later(redis: Redis, settings: Settings) -> None:
    """A hub answering 500 is recorded on the subscription and asked again after a backoff; polling goes on."""
    settings = settings.model_copy(update={"public_url": "http://127.0.0.1:9", "poll_backoff_base_s": 120.0})
    ctx = StageContext(settings, redis)
    with FeedServer() as feeds, WebSubHub(refuse_with=500) as hub:
        topic = f"{feeds.url}/a.xml"
        feeds.routes["/a.xml"] = atom(hub.url, topic, ("e1", "t", "x"))
        source = FeedSource(id="a", name="A", url=topic)
        async with build_client(settings) as client:
            await Poller(ctx, [source], client).poll(source)
            await FeedRegistry(redis, settings.keys).upsert([source], due=datetime.now(UTC))
            subscriber = Subscriber(ctx, client, settings.public_url or "")
            started = datetime.now(UTC)
            await subscriber.request("a")
    subscription = await SubscriptionStore(redis, settings.keys).get("a")
    assert subscription is not None
    assert subscription.state is SubscriptionState.new
    assert "hub answered 500" in subscription.last_error
    retry_at = await redis.zscore(settings.keys.websub_due, "a")
    assert retry_at is not None
    assert retry_at > (started + timedelta(seconds=100)).timestamp()
    assert len(hub.requests) == 1


async def test_an_oversized_push_is_refused_before_it_is_read(redis: Redis, settings: Settings) -> None:
    """A push past the body cap gets 413, whether it declares its length or streams without one."""
    from services.poller.feeds import FeedRegistry
    from services.websub.subscriptions import offer_hub

    port = free_port()
    small = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "http_max_body_bytes": 1000})
    await FeedRegistry(redis, small.keys).upsert([FeedSource(id="a", name="A", url="http://h/a.xml")],
                                                 due=datetime.now(UTC))
    await offer_hub(redis, small.keys, "a", hub_url="http://h/hub", topic="http://h/a.xml")
    subscription = await SubscriptionStore(redis, small.keys).get("a")
    assert subscription is not None
    server = http_server(build_web_app(StageContext(small, redis)), "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        async with httpx.AsyncClient() as client:
            declared = await client.post(callback_url(small.public_url or "", subscription), content=b"x" * 5000)
            streamed = await client.post(callback_url(small.public_url or "", subscription), content=chunks())
    finally:
        server.should_exit = True
        await task
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert await redis.xlen(small.keys.raw) == 0
