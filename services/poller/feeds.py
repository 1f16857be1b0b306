"""The live feed registry in Redis: which feeds exist, when each is due, and which poller holds it.

The TOML registry is loaded into it at start-up; `livedesk feeds add|remove|poll` change it at run time. Any number
of pollers share it: a feed is polled only by the holder of its lease, and a lease left by a dead poller expires,
so its feeds are taken over.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from schemas import FeedSource
from services.errors import FeedError
from services.names import Keys
from services.poller.fetch import fetch_feed
from services.poller.parse import ParsedFeed
from services.poller.parser_pool import parse_feed_bounded
from services.poller.schedule import FeedSchedule
from services.poller.scheduling_state import load_schedule
from services.wire import as_optional_text, as_text

# Take the lease and move the feed's due time to the lease's end in one step: other pollers' due lists move on to
# the next feeds instead of offering this one again, and if the holder dies the feed is due exactly when its lease
# has expired.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[4])
  return 1
end
return 0
"""

# `_ACQUIRE` for the due feeds just read, returning what a poll needs to start (the source and the feed state's
# CLAIM_FIELDS), so a batch of polls costs two round trips here and each poll one when it ends (`finish`). A feed
# another poller claimed and finished since it was read is no longer due and is left alone. Every key is passed in
# KEYS (a cluster routes a script by them): a lease and a state key per feed.
# KEYS: due set, feeds hash, then (lease, state) per feed. ARGV: now, holder, lease ms, lease end, number of
# fields, CLAIM_FIELDS..., then the feed ids.
_CLAIM = """
local fields = tonumber(ARGV[5])
local claimed = {}
for i = 6 + fields, #ARGV do
  local id, lease, state = ARGV[i], KEYS[1 + 2 * (i - 5 - fields)], KEYS[2 + 2 * (i - 5 - fields)]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= tonumber(ARGV[1]) and redis.call('SET', lease, ARGV[2], 'NX', 'PX', ARGV[3]) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[4], id)
    claimed[#claimed + 1] = {id, redis.call('HGET', KEYS[2], id),
                             redis.call('HMGET', state, unpack(ARGV, 6, 5 + fields))}
  end
end
return claimed
"""

# Release a lease only if we still hold it: after an expiry another poller may hold it now.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Extend a lease only if we still hold it, and keep the feed's due time past its end.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[3], ARGV[4])
return 1
"""



# What a poll reads of the feed's state hash: validators, the last body's hash, and the scheduler's state.
CLAIM_FIELDS = ("etag", "last_modified", "body_hash", "schedule", "hot_until", "push_until")


@dataclass(frozen=True)
class ClaimedFeed:
    """A due feed whose lease this poller now holds: its source (None if removed meanwhile) and `CLAIM_FIELDS`."""

    feed_id: str
    source: FeedSource | None
    state: dict[str, str | None]


class FeedRegistry:
    """Feeds, their due times and their leases under one key prefix."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def upsert(self, sources: Iterable[FeedSource], due: datetime) -> None:
        """Add or update `sources`, keeping what the pollers learned about the feeds already known.

        A source as the operator gives it (`configured_url` None: from the TOML registry or `feeds add`) is
        compared with the URL its feed was configured with. The same URL keeps the feed's current URL (a permanent
        redirect may have moved it), its gone mark and its due time, and takes the rest (name, authority, tags) from
        the source. Another URL is the operator's correction: it replaces the current one, clears the gone mark and
        makes the feed due at `due` unless it is due sooner. A new feed is due at `due`.

        A source read from the registry (`get`, `all`: `configured_url` set) updates its feed as it is, URL included:
        that is how a poller records a move. Its due time and gone mark stay; it is dropped when the feed has since
        been removed or configured with another URL, so a poll that started before the change cannot undo it.
        """
        by_id = {s.id: s for s in sources}
        if not by_id:
            return
        ids = list(by_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._keys.feeds)
                    found = await pipe.hmget(self._keys.feeds, ids)
                    # Not watched: a feed marked gone meanwhile and made due again here answers 410 again.
                    gone = await self._gone(ids)
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    for source, stored_json, was_gone in zip(by_id.values(), found, gone, strict=True):
                        stored = self._stored(stored_json) if stored_json else None
                        self._queue_upsert(pipe, source, stored, was_gone, due)
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # the registry changed meanwhile (another poller starting, a move): decide again

    def _queue_upsert(self, pipe: Pipeline, source: FeedSource, stored: FeedSource | None, gone: bool,
                      due: datetime) -> None:
        """Queue on `pipe` what `upsert` does for one source (see there)."""
        feed_id, state_key = source.id, self._keys.feed_state(source.id)
        if source.configured_url is not None:
            if stored is not None and stored.configured_url == source.configured_url:
                pipe.hset(self._keys.feeds, feed_id, source.model_dump_json())
            return
        if stored is not None and stored.configured_url == source.url:
            kept = source.model_copy(update={"url": stored.url, "configured_url": source.url})
            pipe.hset(self._keys.feeds, feed_id, kept.model_dump_json())
            if not gone:
                pipe.zadd(self._keys.feeds_due, {feed_id: due.timestamp()}, nx=True)
            return
        configured = source.model_copy(update={"configured_url": source.url})
        pipe.hset(self._keys.feeds, feed_id, configured.model_dump_json())
        # A new URL is a new start: whatever the old one said (410, or a stale mark of a feed removed and added again).
        pipe.hdel(state_key, "gone")
        pipe.zadd(self._keys.feeds_due, {feed_id: due.timestamp()}, lt=True)

    async def _gone(self, feed_ids: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for feed_id in feed_ids:
                pipe.hget(self._keys.feed_state(feed_id), "gone")
            marks = await pipe.execute()
        return [as_optional_text(mark) == "1" for mark in marks]

    @staticmethod
    def _stored(value: str | bytes) -> FeedSource:
        """A feed as stored; one stored before `configured_url` existed was configured with its current URL."""
        source = FeedSource.model_validate_json(value)
        return source if source.configured_url else source.model_copy(update={"configured_url": source.url})

    async def remove(self, feed_id: str) -> bool:
        """Forget a feed (its seen-entries record stays, so re-adding it publishes nothing old again)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.feeds, feed_id)
            pipe.zrem(self._keys.feeds_due, feed_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def get(self, feed_id: str) -> FeedSource | None:
        """The feed as stored, `configured_url` set."""
        found = await self._redis.hget(self._keys.feeds, feed_id)
        return self._stored(found) if found else None

    async def all(self) -> list[FeedSource]:
        """Every feed as stored, by id."""
        found = await self._redis.hgetall(self._keys.feeds)
        return sorted((self._stored(v) for v in found.values()), key=lambda s: s.id)

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of up to `limit` feeds due at `now`, most overdue first."""
        found = await self._redis.zrangebyscore(self._keys.feeds_due, "-inf", now.timestamp(), start=0, num=limit)
        return [as_text(f) for f in found]

    async def next_due(self, feed_id: str) -> datetime | None:
        score = await self._redis.zscore(self._keys.feeds_due, feed_id)
        return datetime.fromtimestamp(score).astimezone() if score is not None else None

    async def schedule(self, feed_id: str, at: datetime) -> None:
        """Make the feed due at `at` (only if it is still registered)."""
        await self._redis.zadd(self._keys.feeds_due, {feed_id: at.timestamp()}, xx=True)

    async def poll_now(self, feed_id: str) -> bool:
        """Make a registered feed due now, a gone one included (the operator says it is back); False if unknown."""
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._keys.feeds)
                    if not await pipe.hexists(self._keys.feeds, feed_id):
                        return False
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.hdel(self._keys.feed_state(feed_id), "gone")
                    pipe.zadd(self._keys.feeds_due, {feed_id: time.time()})
                    await pipe.execute()
                    return True
                except WatchError:
                    continue  # removed or changed meanwhile: look again

    async def mark_gone(self, feed_id: str) -> None:
        """The server said the feed is gone (410): never due again, but still listed with that status."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.feeds_due, feed_id)
            pipe.hset(self._keys.feed_state(feed_id), mapping={"gone": "1", "next_due": ""})
            await pipe.execute()

    async def status(self, feed_id: str) -> dict[str, str]:
        """What the pollers recorded about the feed, as stored: last poll, status, errors, next due, `gone`."""
        state = await self._redis.hgetall(self._keys.feed_state(feed_id))
        return {as_text(k): as_text(v) for k, v in state.items() if k not in (b"etag", b"last_modified")}

    async def scheduling(self, feed_id: str) -> FeedSchedule:
        """What the scheduler keeps about the feed: its estimated entries per day, hot period, errors in a row."""
        return await load_schedule(self._redis, self._keys, feed_id)

    async def acquire(self, feed_id: str, holder: str, lease_ms: int) -> bool:
        """Take the feed's lease for `lease_ms`; False when another poller holds it."""
        lease_end = time.time() + lease_ms / 1000  # the same clock as every other due time
        taken = await self._redis.eval(
            _ACQUIRE, 2, self._keys.feed_lease(feed_id), self._keys.feeds_due, holder, lease_ms, lease_end, feed_id
        )
        return bool(taken)

    async def claim(self, now: datetime, limit: int, holder: str, lease_ms: int) -> list[ClaimedFeed]:
        """Take the leases of up to `limit` feeds due at `now` (see `acquire`), most overdue first."""
        due = await self.due(now, limit)
        if not due:
            return []
        lease_end = time.time() + lease_ms / 1000
        keys = [self._keys.feeds_due, self._keys.feeds]
        for feed_id in due:
            keys += [self._keys.feed_lease(feed_id), self._keys.feed_state(feed_id)]
        rows = await self._redis.eval(
            _CLAIM, len(keys), *keys, now.timestamp(), holder, lease_ms, lease_end, len(CLAIM_FIELDS), *CLAIM_FIELDS,
            *due,
        )
        return [
            ClaimedFeed(
                feed_id=as_text(feed_id),
                source=self._stored(stored) if stored else None,
                state={name: as_optional_text(value) for name, value in zip(CLAIM_FIELDS, values, strict=True)},
            )
            for feed_id, stored, values in rows
        ]

    async def finish(self, feed_id: str, holder: str, next_due: datetime, state: Mapping[str, str], *,
                     failed: bool) -> None:
        """End a poll in one step: record `state` on the feed (counting a failure), count the poll in
        `Keys.poll_stats`, set the feed's next due time (unless it was removed or marked gone meanwhile) and release
        its lease."""
        key = self._keys.feed_state(feed_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            fields: dict[Any, Any] = dict(state)  # redis-py's mapping type is invariant in its keys
            pipe.hset(key, mapping=fields)
            pipe.hincrby(self._keys.poll_stats, "polls", 1)
            if state.get("last_status") == "304":
                pipe.hincrby(self._keys.poll_stats, "not_modified", 1)
            if failed:
                pipe.hincrby(key, "error_count", 1)
                pipe.hincrby(self._keys.poll_stats, "failed", 1)
            pipe.zadd(self._keys.feeds_due, {feed_id: next_due.timestamp()}, xx=True)
            pipe.eval(_RELEASE, 1, self._keys.feed_lease(feed_id), holder)
            await pipe.execute()

    async def renew(self, feed_id: str, holder: str, lease_ms: int) -> bool:
        """Give the lease `holder` took another `lease_ms` from now; False when it had expired and was lost."""
        lease_end = time.time() + lease_ms / 1000
        renewed = await self._redis.eval(_RENEW, 2, self._keys.feed_lease(feed_id), self._keys.feeds_due, holder,
                                         lease_ms, lease_end, feed_id)
        return bool(renewed)

    async def release(self, feed_id: str, holder: str) -> None:
        await self._redis.eval(_RELEASE, 1, self._keys.feed_lease(feed_id), holder)


def feed_id_for(url: str) -> str:
    """A readable id for a feed added by URL: host and path, lower case, `-` between words."""
    parts = urlsplit(url)
    words = re.findall(r"[a-z0-9]+", f"{(parts.hostname or '').removeprefix('www.')} {parts.path}".lower())
    return "-".join(w for w in words if w not in {"xml", "rss", "atom", "feed", "feeds", "index"})[:60] or "feed"


async def probe(client: httpx.AsyncClient, source: FeedSource, max_body_bytes: int) -> ParsedFeed:
    """Fetch and parse `source` once (in a parser process, under its limits), publishing nothing: raises
    FeedError/FetchError when it is not a usable feed."""
    result = await fetch_feed(client, source, etag=None, last_modified=None, max_body_bytes=max_body_bytes)
    if result.body is None:
        raise FeedError(source.id, f"no body (HTTP {result.status})")
    parsed = await parse_feed_bounded(result.body, feed=source.id, content_type=result.content_type,
                                      base_url=result.url)
    if not parsed.entries and not parsed.title:
        raise FeedError(source.id, "the document has neither a title nor entries")
    return parsed
