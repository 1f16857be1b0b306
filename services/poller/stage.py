"""The poller stage: polls every feed of the registry on its own schedule and publishes what changed on `raw`.

One task per feed, so a slow or broken feed never holds up the others; every failure is logged with the feed named
and the feed is tried again at its next turn.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import httpx
import structlog

from schemas import FeedSource
from services.errors import LivedeskError
from services.poller.diff import publish_changed, raw_updates
from services.poller.fetch import fetch_feed
from services.poller.parse import parse_feed
from services.stage import StageContext

log = structlog.get_logger(__name__)


class Poller:
    """Polls a fixed set of feeds until cancelled."""

    def __init__(self, ctx: StageContext, sources: list[FeedSource], client: httpx.AsyncClient) -> None:
        self._ctx = ctx
        self._sources = sources
        self._client = client

    async def poll(self, source: FeedSource) -> int:
        """Fetch, parse and diff one feed once; returns how many entries were published."""
        keys, redis = self._ctx.keys, self._ctx.redis
        etag, last_modified = await redis.hmget(keys.feed_state(source.id), ["etag", "last_modified"])
        fetched_at = datetime.now(UTC)
        result = await fetch_feed(
            self._client,
            source,
            etag=_text(etag),
            last_modified=_text(last_modified),
            max_body_bytes=self._ctx.settings.http_max_body_bytes,
        )
        published = 0
        if not result.not_modified and result.body is not None:
            # Parsing a large feed takes seconds of CPU: off the event loop, so the other feeds keep moving.
            parsed = await asyncio.to_thread(
                parse_feed, result.body, feed=source.id, content_type=result.content_type, base_url=result.url
            )
            for warning in parsed.warnings:
                log.warning("feed is not well-formed but usable", source_id=source.id, warning=warning)
            updates = raw_updates(source, parsed.entries, fetched_at)
            published = len(await publish_changed(redis, keys, source.id, updates))
        await redis.hset(
            keys.feed_state(source.id),
            mapping={
                "etag": result.etag or "",
                "last_modified": result.last_modified or "",
                "last_status": str(result.status),
                "last_polled_at": fetched_at.isoformat(),
                "last_error": "",
            },
        )
        log.info("feed polled", source_id=source.id, status=result.status, published=published)
        return published

    async def _follow(self, source: FeedSource) -> None:
        interval_s = self._ctx.settings.poll_interval_s
        # Spread the first polls so that many feeds do not all start in the same second.
        await asyncio.sleep(random.uniform(0, min(interval_s, 5.0)))
        while True:
            try:
                await self.poll(source)
            except LivedeskError as error:
                log.warning("feed poll failed", source_id=source.id, feed_url=source.url, error=str(error))
                await self._ctx.redis.hset(self._ctx.keys.feed_state(source.id), "last_error", str(error))
            except Exception:
                # A bug must not take the other feeds down with it: log it loudly and keep this feed scheduled.
                log.exception("feed poll crashed", source_id=source.id, feed_url=source.url)
            await asyncio.sleep(interval_s * random.uniform(0.9, 1.1))

    async def run(self) -> None:
        """Poll every feed forever."""
        log.info("poller started", feeds=len(self._sources))
        async with asyncio.TaskGroup() as group:
            for source in self._sources:
                group.create_task(self._follow(source), name=f"poll:{source.id}")


def _text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        value = value.decode()
    return value or None
