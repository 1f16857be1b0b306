"""The WebSub subscriptions of the registry's feeds, kept in Redis so every HTTP process can answer for any of them.

A subscription's life (WebSub §5): the poller sees a feed advertise a hub (`offer_hub`) → it is due → the subscriber
asks the hub (`requested`) → the hub checks our intent on the callback (`confirm`) → `active` until the lease ends;
it is due again for renewal before that. While active, the feed's state carries `push_until`, which the poll
scheduler reads to fall back to its maximum interval.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from services.names import Keys
from services.wire import as_optional_text, as_text

# The share of a granted lease after which it is renewed: hubs may expire a lease a little early.
RENEW_AT = 0.8


class SubscriptionState(StrEnum):
    new = "new"  # a hub was found; nothing asked yet
    requested = "requested"  # the hub accepted the request; its verification of intent has not come yet
    active = "active"  # verified: the hub pushes until lease_until
    denied = "denied"  # the hub refused (hub.mode=denied); asked again later
    unsubscribing = "unsubscribing"  # the feed was removed; waiting for the hub to confirm


@dataclass(frozen=True)
class Subscription:
    """One feed's subscription as stored (all times aware UTC)."""

    feed_id: str
    hub: str
    topic: str
    secret: str
    state: SubscriptionState
    token: str = ""  # the secret part of the callback path: only the hub we asked knows it
    pending: str = ""  # "subscribe" or "unsubscribe" while a request awaits the hub's verification
    lease_until: datetime | None = None
    attempts: int = 0
    last_error: str = ""


_OFFER = """
if redis.call('HGET', KEYS[1], 'hub') == ARGV[1] and redis.call('HGET', KEYS[1], 'topic') == ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'hub', ARGV[1], 'topic', ARGV[2], 'secret', ARGV[3], 'state', 'new', 'attempts', 0,
           'last_error', '', 'token', ARGV[6])
-- The old subscription's lease says nothing about the new one: until it is verified, the feed is polled as usual.
redis.call('HDEL', KEYS[1], 'lease_until', 'pending')
redis.call('HDEL', KEYS[3], 'push_until')
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""

# Claims due subscriptions by moving them `hold` seconds ahead: a subscriber that dies mid-request leaves them due
# again then, and two subscribers never ask for one subscription at once.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


_REQUESTED = """
if redis.call('HGET', KEYS[1], 'pending') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] == 'unsubscribe' then state = 'unsubscribing' elseif state ~= 'active' then state = 'requested' end
redis.call('HSET', KEYS[1], 'state', state, 'last_error', '')
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


async def offer_hub(redis: Redis, keys: Keys, feed_id: str, *, hub_url: str, topic: str) -> bool:
    """Record that `feed_id` advertises `hub_url` for `topic`; a new or changed hub is due for subscribing now.

    Returns:
        True when the hub or topic is new (a fresh secret is drawn and the old subscription forgotten).
    """
    changed = await redis.eval(
        _OFFER, 3, keys.websub(feed_id), keys.websub_due, keys.feed_state(feed_id),
        hub_url, topic, secrets.token_urlsafe(32), datetime.now(UTC).timestamp(), feed_id, secrets.token_urlsafe(16),
    )
    return bool(changed)


class SubscriptionStore:
    """Reads and moves the subscriptions of one key prefix."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, feed_id: str) -> Subscription | None:
        fields = await self._redis.hgetall(self._keys.websub(feed_id))
        return _decode(feed_id, fields) if fields else None

    async def claim_due(self, now: datetime, limit: int, hold_s: float) -> list[str]:
        """Up to `limit` feed ids whose subscription is due, each held for `hold_s` seconds."""
        ids = await self._redis.eval(
            _CLAIM, 1, self._keys.websub_due, now.timestamp(), now.timestamp() + hold_s, limit
        )
        return [as_text(i) for i in ids]

    async def mark_pending(self, feed_id: str, mode: str) -> None:
        """About to ask the hub to `mode` (subscribe or unsubscribe): its verification of intent is awaited from now,
        since a quick hub verifies before it has even answered the request."""
        await self._redis.hset(self._keys.websub(feed_id), "pending", mode)

    async def requested(self, feed_id: str, mode: str, check_again: datetime) -> None:
        """The hub accepted a request to `mode`; if its verification never comes, ask again at `check_again`.

        A verification that already came (the request is no longer pending) is left as it is.
        """
        await self._redis.eval(_REQUESTED, 2, self._keys.websub(feed_id), self._keys.websub_due, mode,
                               check_again.timestamp(), feed_id)

    async def failed(self, feed_id: str, error: str, retry_at: datetime) -> None:
        """A request the hub refused or could not be reached for: recorded, and asked again at `retry_at`."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.websub(feed_id), "pending")
            pipe.hset(self._keys.websub(feed_id), "last_error", error)
            pipe.hincrby(self._keys.websub(feed_id), "attempts", 1)
            pipe.zadd(self._keys.websub_due, {feed_id: retry_at.timestamp()})
            await pipe.execute()

    async def confirm(self, feed_id: str, mode: str, topic: str, lease_s: int | None, now: datetime) -> bool:
        """The hub's verification of intent (WebSub §5.3): True when we asked for exactly this.

        A confirmed subscription is active for `lease_s` and due for renewal before it ends; a confirmed
        unsubscription is forgotten.
        """
        subscription = await self.get(feed_id)
        if subscription is None or subscription.topic != topic or subscription.pending != mode:
            return False  # only a request we have made and not yet seen verified
        if mode == "unsubscribe":
            await self.forget(feed_id)
            return True
        lease = timedelta(seconds=lease_s if lease_s and lease_s > 0 else 0)
        until = now + lease
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._keys.websub(feed_id),
                mapping={"state": SubscriptionState.active.value, "lease_until": until.isoformat(), "attempts": 0,
                         "last_error": ""},
            )
            pipe.hdel(self._keys.websub(feed_id), "pending")
            pipe.zadd(self._keys.websub_due, {feed_id: (now + lease * RENEW_AT).timestamp()})
            pipe.hset(self._keys.feed_state(feed_id), "push_until", until.isoformat())
            await pipe.execute()
        return True

    async def denied(self, feed_id: str, topic: str, reason: str, retry_at: datetime) -> bool:
        """The hub refused or ended the subscription (WebSub §5.2): polling only, asked again at `retry_at`."""
        subscription = await self.get(feed_id)
        if subscription is None or subscription.topic != topic:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.websub(feed_id),
                      mapping={"state": SubscriptionState.denied.value, "last_error": f"denied: {reason}"})
            pipe.hdel(self._keys.websub(feed_id), "lease_until")
            pipe.hdel(self._keys.feed_state(feed_id), "push_until")
            pipe.zadd(self._keys.websub_due, {feed_id: retry_at.timestamp()})
            await pipe.execute()
        return True

    async def forget(self, feed_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.websub(feed_id))
            pipe.zrem(self._keys.websub_due, feed_id)
            pipe.hdel(self._keys.feed_state(feed_id), "push_until")
            await pipe.execute()


def _decode(feed_id: str, fields: dict[Any, Any]) -> Subscription:
    values = {as_text(k): as_text(v) for k, v in fields.items()}
    lease = as_optional_text(values.get("lease_until"))
    return Subscription(
        feed_id=feed_id,
        hub=values.get("hub", ""),
        topic=values.get("topic", ""),
        secret=values.get("secret", ""),
        state=SubscriptionState(values.get("state", "new")),
        token=values.get("token", ""),
        pending=values.get("pending", ""),
        lease_until=datetime.fromisoformat(lease) if lease else None,
        attempts=int(values.get("attempts") or 0),
        last_error=values.get("last_error", ""),
    )
