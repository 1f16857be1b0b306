"""The one path from a feed document to `raw`: parse it, keep what changed, publish that.

Polled documents and documents pushed by a WebSub hub both go through `ingest_document`, so an entry is published
once whichever way it arrives first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from redis.asyncio import Redis

from schemas import FeedSource, RawUpdate
from services.names import Keys
from services.poller.diff import publish_changed, raw_updates
from services.poller.parse import ParsedFeed
from services.poller.parser_pool import parse_feed_bounded

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Ingested:
    """A document read: what it said about the feed, and the entries published from it."""

    parsed: ParsedFeed
    published: list[RawUpdate]


async def ingest_document(
    redis: Redis,
    keys: Keys,
    source: FeedSource,
    body: bytes,
    *,
    fetched_at: datetime,
    content_type: str | None = None,
    base_url: str | None = None,
) -> Ingested:
    """Parse `body` as a document of `source` and publish its new and edited entries on `raw`.

    Raises:
        FeedError: the document yields no entries (the error names the feed and says why).
    """
    # In a parser process with the document's CPU time and memory bounded: a large or hostile feed costs its own
    # limits and its own error, and the event loop and the other feeds keep moving.
    parsed = await parse_feed_bounded(body, feed=source.id, content_type=content_type,
                                      base_url=base_url or source.url)
    for warning in parsed.warnings:
        log.warning("feed is not well-formed but usable", source_id=source.id, warning=warning)
    published = await publish_changed(redis, keys, source.id, raw_updates(source, parsed.entries, fetched_at))
    return Ingested(parsed, published)
