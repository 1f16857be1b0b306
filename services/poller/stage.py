"""The poller stage: polls every due feed of the registry and publishes what changed on `raw`.

One task per poll, so a slow or broken feed never holds up the others; every failure is logged with the feed named
and recorded on it, and the feed is tried again at its next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from redis.exceptions import RedisError

from schemas import FeedSource, RawUpdate
from services.errors import LivedeskError
from services.groups import BackPressure
from services.poller.feeds import CLAIM_FIELDS, ClaimedFeed, FeedRegistry
from services.poller.fetch import fetch_feed
from services.poller.ingest import ingest_document
from services.poller.parse import ParsedFeed
from services.poller.schedule import FeedSchedule, PollOutcome, error_kind, next_check, parse_retry_after
from services.poller.scheduling_state import decode_schedule, schedule_fields, schedule_policy
from services.stage import StageContext, raise_if_cancelled
from services.websub.subscriptions import offer_hub
from services.wire import as_optional_text

log = structlog.get_logger(__name__)


_TICK_S = 0.2
_REDIS_RETRY_S = 1.0


class Poller:
    """Polls the registry's due feeds until cancelled; `sources` are added to the registry when it starts."""

    def __init__(self, ctx: StageContext, sources: list[FeedSource], client: httpx.AsyncClient) -> None:
        self._ctx = ctx
        self._sources = sources
        self._client = client
        self._registry = FeedRegistry(ctx.redis, ctx.keys)
        self._holder = f"{ctx.settings.consumer}-{uuid.uuid4().hex[:6]}"
        # Longer than any one poll can take (the fetch, bounded by the HTTP timeout, then the parse), so a live holder
        # never loses it; the wait for a host slot renews it.
        self._lease_ms = ctx.settings.poll_lease_ms
        self._hosts = HostLimits(ctx.settings.poll_per_host, ctx.settings.poll_host_gap_s)
        self._policy = schedule_policy(ctx.settings)
        self._random = random.Random()
        self._pressure = BackPressure(ctx.redis, ctx.keys, ctx.settings.max_backlog, who="poller")

    async def poll(self, source: FeedSource) -> int:
        """Fetch, parse and diff one feed once, outside the schedule; returns how many entries were published."""
        key = self._ctx.keys.feed_state(source.id)
        values = await self._ctx.redis.hmget(key, list(CLAIM_FIELDS))
        outcome, fields = await self._poll(source, dict(zip(CLAIM_FIELDS, map(as_optional_text, values), strict=True)))
        record: dict[Any, Any] = fields  # redis-py's mapping type is invariant in its keys
        await self._ctx.redis.hset(key, mapping=record)
        return outcome.new_entries

    async def _poll(self, source: FeedSource, state: Mapping[str, str | None]) -> tuple[PollOutcome, dict[str, str]]:
        """One poll, given the feed's stored `state` (`CLAIM_FIELDS`): what it tells the scheduler, and the fields
        to record on the feed."""
        keys, redis = self._ctx.keys, self._ctx.redis
        fetched_at = datetime.now(UTC)
        result = await fetch_feed(
            self._client,
            source,
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            max_body_bytes=self._ctx.settings.http_max_body_bytes,
        )
        published: list[RawUpdate] = []
        parsed: ParsedFeed | None = None
        old_hash = state.get("body_hash")
        new_hash = hashlib.sha256(result.body).hexdigest() if result.body is not None else old_hash
        if result.moved_to and result.moved_to != source.url:
            log.info("feed moved permanently", source_id=source.id, old_url=source.url, new_url=result.moved_to)
            await self._registry.upsert([source.model_copy(update={"url": result.moved_to})], due=fetched_at)
        # A server that ignores validators and sends the same bytes again costs no parse.
        if not result.not_modified and result.body is not None and new_hash != old_hash:
            ingested = await ingest_document(
                redis, keys, source, result.body,
                fetched_at=fetched_at, content_type=result.content_type, base_url=result.url,
            )
            parsed, published = ingested.parsed, ingested.published
            if parsed.hub_url:
                await offer_hub(redis, keys, source.id, hub_url=parsed.hub_url, topic=parsed.self_url or result.url)
        log.info("feed polled", source_id=source.id, status=result.status, published=len(published))
        outcome = PollOutcome(
            status=result.status,
            headers=result.headers,
            ttl_s=parsed.ttl_s if parsed else None,
            update_period_s=parsed.update_period_s if parsed else None,
            new_entries=len(published),
            entry_times=tuple(u.reported_at for u in published),
        )
        fields = {
            "etag": result.etag or "",
            "last_modified": result.last_modified or "",
            "body_hash": new_hash or "",
            "last_status": str(result.status),
            "last_polled_at": fetched_at.isoformat(),
            "last_error": "",
        }
        return outcome, fields

    async def run(self) -> None:
        """Load the configured feeds into the registry, then poll whatever is due, forever.

        A feed is polled only under its lease, so any number of pollers can share the registry; one whose poller
        died is due again once the lease expires. While a stage is more than `max_backlog` entries behind, no feed
        is claimed (back-pressure): due feeds wait in the registry, not as entries on a growing stream.
        """
        registry, settings = self._registry, self._ctx.settings
        await registry.upsert(self._sources, due=datetime.now(UTC))
        log.info("poller started", configured_feeds=len(self._sources), holder=self._holder)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                raise_if_cancelled()
                capacity = settings.poll_max_in_flight - len(running)
                try:
                    if capacity > 0 and await self._pressure.behind():
                        capacity = 0  # polls in flight finish; nothing new until the pipeline catches up
                    claimed = await registry.claim(datetime.now(UTC), capacity, self._holder, self._lease_ms) \
                        if capacity > 0 else []
                except RedisError as error:
                    # Redis restarting or unreachable: keep trying (polls in flight finish on their own).
                    log.warning("poller cannot reach Redis; retrying", error=str(error))
                    claimed = []
                    await asyncio.sleep(_REDIS_RETRY_S)
                for feed in claimed:
                    if feed.feed_id in running:
                        # Its lease ran out while its poll waited for a host slot; that poll still records and
                        # releases it, so this claim is dropped.
                        continue
                    running[feed.feed_id] = asyncio.create_task(self._turn(feed), name=f"poll:{feed.feed_id}")
                # Wake when a poll finishes (its slot is free at once) or at the next tick (new feeds may be due).
                if running:
                    await asyncio.wait(running.values(), timeout=_TICK_S, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(_TICK_S)
                for feed_id in [f for f, task in running.items() if task.done()]:
                    task = running.pop(feed_id)
                    if not task.cancelled() and (failure := task.exception()) is not None:
                        # `_turn` handles every poll failure; what reaches here is Redis failing around it. The
                        # lease expires and the feed is due again then.
                        log.error("feed turn failed", source_id=feed_id, error=f"{type(failure).__name__}: {failure}")
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _turn(self, claimed: ClaimedFeed) -> None:
        """One poll of one feed under its lease, then its next due time, recorded and released in one step."""
        registry, feed_id, source = self._registry, claimed.feed_id, claimed.source
        if source is None:
            await registry.release(feed_id, self._holder)  # removed meanwhile
            return
        try:
            state = decode_schedule(claimed.state.get("schedule"), claimed.state.get("hot_until"),
                                    claimed.state.get("push_until"))
        except (ValueError, TypeError) as error:
            # A damaged record must not stall the feed for good: schedule it afresh, as a new feed.
            log.warning("feed schedule state unreadable, starting afresh", source_id=feed_id, error=str(error))
            state = FeedSchedule()
        if (paused_s := self._hosts.paused_for(source.url)) > 0:
            await registry.schedule(feed_id, datetime.now(UTC) + timedelta(seconds=paused_s))
            await registry.release(feed_id, self._holder)
            return
        failed = True
        try:
            async with self._hosts.slot(source.url):
                # The wait for a host slot may have eaten into the lease: the poll itself gets a whole one, and a
                # lease lost meanwhile (another poller has the feed now) means this poll is not ours to make.
                if not await registry.renew(feed_id, self._holder, self._lease_ms):
                    log.warning("feed lease lost while waiting for its host; skipped", source_id=feed_id)
                    return
                try:
                    outcome, fields = await self._poll(source, claimed.state)
                    failed = False
                except LivedeskError as error:
                    log.warning("feed poll failed", source_id=source.id, feed_url=source.url, error=str(error))
                    status = getattr(error, "status", None)
                    fields = _failure_fields(error, status)
                    if status == 410:
                        # Gone for good (RFC 9110 §15.5.11): stop polling, keep it listed so people see why.
                        await registry.mark_gone(feed_id)
                    headers = getattr(error, "headers", {})
                    outcome = PollOutcome(status=status, error=error_kind(error, status), headers=headers)
                    retry_after = parse_retry_after(headers.get("retry-after", ""), datetime.now(UTC))
                    if status == 503 and retry_after:
                        # 503 + Retry-After: the whole server is unavailable, so every feed on the host waits. A
                        # 429 (this client, this resource) slows only its own feed, through next_check.
                        self._hosts.pause(source.url, retry_after)
                        log.warning("host paused", host=urlsplit(source.url).hostname, seconds=retry_after,
                                    source_id=source.id)
                except Exception as error:
                    # A bug must not take the other feeds down with it: log it loudly, keep this feed scheduled.
                    log.exception("feed poll crashed", source_id=source.id, feed_url=source.url)
                    fields = _failure_fields(error, None)
                    outcome = PollOutcome(status=None, error="transient")
            decision = next_check(state, outcome, self._policy, datetime.now(UTC), self._random.random())
            record = fields | schedule_fields(decision)
            if outcome.status == 410:
                record["next_due"] = ""  # gone: `finish` leaves it out of the due list, and the record says so
            await registry.finish(feed_id, self._holder, decision.next_due, record, failed=failed)
        except BaseException:
            # Cancelled or Redis gone: free the lease so another poller can take the feed at once.
            with contextlib.suppress(Exception):
                await asyncio.shield(registry.release(feed_id, self._holder))
            raise


def _failure_fields(error: Exception, status: int | None) -> dict[str, str]:
    """What a failed poll records on the feed (the error count is incremented by `FeedRegistry.finish`)."""
    return {
        "last_error": str(error) if isinstance(error, LivedeskError) else f"{type(error).__name__}: {error}",
        "last_status": str(status) if status is not None else "",
        "last_polled_at": datetime.now(UTC).isoformat(),
    }


class HostLimits:
    """At most `per_host` requests in flight per host, at least `gap_s` between two starts on one host, and no
    request at all to a host while it is paused."""

    def __init__(self, per_host: int, gap_s: float) -> None:
        self._per_host = per_host
        self._gap_s = gap_s
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}

    def pause(self, url: str, seconds: float) -> None:
        """No request to `url`'s host for `seconds` (never shortens a longer pause)."""
        host = urlsplit(url).hostname or ""
        until = time.monotonic() + seconds
        self._paused_until[host] = max(until, self._paused_until.get(host, 0.0))

    def paused_for(self, url: str) -> float:
        """Seconds left of the pause of `url`'s host; 0 when it is not paused."""
        host = urlsplit(url).hostname or ""
        left = self._paused_until.get(host, 0.0) - time.monotonic()
        if left <= 0:
            self._paused_until.pop(host, None)
        return max(0.0, left)

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        host = urlsplit(url).hostname or ""
        semaphore = self._slots.setdefault(host, asyncio.Semaphore(self._per_host))
        async with semaphore:
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self._next_start.get(host, 0.0))
            self._next_start[host] = start + self._gap_s
            await asyncio.sleep(start - loop.time())
            yield
