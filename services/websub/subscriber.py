"""Asks hubs for subscriptions and renews them before their lease ends (WebSub §5.1).

Runs in the HTTP process, beside the callback that receives the hubs' verifications and pushes. Any number of such
processes can run: each due subscription is claimed by one of them at a time.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from redis.exceptions import RedisError

from services.poller.feeds import FeedRegistry
from services.stage import StageContext, raise_if_cancelled
from services.websub.subscriptions import Subscription, SubscriptionState, SubscriptionStore

log = structlog.get_logger(__name__)

_TICK_S = 1.0
_BATCH = 20
# How long a claimed subscription is held, and how long a hub may take to verify before we ask again.
_HOLD_S = 60.0
_VERIFY_WAIT_S = 600.0


# A feed removed while its unsubscription goes unverified is forgotten after this many requests.
_UNSUBSCRIBE_ATTEMPTS = 3


def callback_url(public_url: str, subscription: Subscription) -> str:
    """Where the hub reaches us about one subscription: the feed id, and a token only that hub knows."""
    return f"{public_url.rstrip('/')}/websub/{subscription.feed_id}/{subscription.token}"


class Subscriber:
    """Keeps every advertised hub subscribed (or unsubscribed, once its feed is removed) until cancelled."""

    def __init__(self, ctx: StageContext, client: httpx.AsyncClient, public_url: str) -> None:
        self._ctx = ctx
        self._client = client
        self._public_url = public_url
        self._store = SubscriptionStore(ctx.redis, ctx.keys)
        self._registry = FeedRegistry(ctx.redis, ctx.keys)
        self._random = random.Random()

    async def run(self) -> None:
        log.info("websub subscriber started", callback_base=f"{self._public_url.rstrip('/')}/websub/")
        while True:
            raise_if_cancelled()
            try:
                due = await self._store.claim_due(datetime.now(UTC), _BATCH, _HOLD_S)
            except RedisError as error:
                log.warning("websub subscriber cannot reach Redis; retrying", error=str(error))
                due = []
            for feed_id in due:
                try:
                    await self.request(feed_id)
                except Exception:
                    # One feed's bad hub URL (or a bug) must not stop every other subscription's renewals: the
                    # claim has moved it `_HOLD_S` ahead, so it is tried again then.
                    log.exception("websub request crashed", source_id=feed_id)
            await asyncio.sleep(_TICK_S)

    async def request(self, feed_id: str) -> None:
        """Ask the hub to (re)subscribe `feed_id`, or to unsubscribe it when the feed has left the registry."""
        subscription = await self._store.get(feed_id)
        if subscription is None:
            return
        removed = await self._registry.get(feed_id) is None
        if removed and subscription.state in (SubscriptionState.new, SubscriptionState.denied):
            await self._store.forget(feed_id)  # nothing to undo at the hub
            return
        if removed and subscription.attempts >= _UNSUBSCRIBE_ATTEMPTS:
            await self._store.forget(feed_id)  # the hub never verified: its lease will run out by itself
            return
        mode = "unsubscribe" if removed else "subscribe"
        form = {
            "hub.mode": mode,
            "hub.topic": subscription.topic,
            "hub.callback": callback_url(self._public_url, subscription),
        }
        if mode == "subscribe":
            form |= {"hub.secret": subscription.secret, "hub.lease_seconds": str(self._ctx.settings.websub_lease_s)}
        now = datetime.now(UTC)
        await self._store.mark_pending(feed_id, mode)
        try:
            response = await self._client.post(subscription.hub, data=form, follow_redirects=False)
        except httpx.HTTPError as error:
            await self._failed(subscription, f"hub unreachable: {type(error).__name__}: {error}", now)
            return
        if not response.is_success:
            await self._failed(subscription, f"hub answered {response.status_code}: {response.text[:200]!r}", now)
            return
        await self._store.requested(feed_id, mode, now + timedelta(seconds=_VERIFY_WAIT_S))
        log.info("websub request accepted", source_id=feed_id, hub=subscription.hub, mode=mode,
                 status=response.status_code)

    async def _failed(self, subscription: Subscription, error: str, now: datetime) -> None:
        settings = self._ctx.settings
        # Backs off like a failing feed; never gives up (the feed is still polled meanwhile).
        delay = min(settings.poll_max_interval_s, settings.poll_backoff_base_s * 2.0 ** min(subscription.attempts, 20))
        delay *= 0.9 + 0.2 * self._random.random()
        log.warning("websub request failed", source_id=subscription.feed_id, hub=subscription.hub, error=error,
                    retry_in_s=round(delay))
        await self._store.failed(subscription.feed_id, error, now + timedelta(seconds=delay))
