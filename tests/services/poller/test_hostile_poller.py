"""A running poller with good and hostile feeds on one loopback server: every hostile feed gets its own clear error
(or, where it is legal, its entries), and the good feeds' entries, and later changes to them, keep coming."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import cast

import pytest
from redis.asyncio import Redis

from schemas import FeedSource, RawUpdate
from services.poller.fetch import build_client
from services.poller.parse import MAX_TITLE_CHARS
from services.poller.stage import Poller
from services.settings import Settings
from services.stage import StageContext
from services.wire import DATA_FIELD, as_optional_text
from tests.support import hostile_feeds as hostile
from tests.support.hostile_server import HostileServer, drip, static, streamed
from tests.support.polling import FAST_POLLING
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

CAP = 2 * 2**20
TIMEOUT_S = 1.5

# Feed → what its last_error must say. Every one of them is on the same server as the good feeds.
REFUSED = {
    "bomb": "refused as an XML bomb: entity 'lol9' declared in its DTD expands to more than 1,000,000 characters",
    "quadratic": "refused as an XML bomb: references to entities declared in its DTD would add more than",
    "flood": "refused: an element has more than 256 attributes",
    "gigabyte": f"body larger than {CAP} bytes",
    "declared": f"body larger than {CAP} bytes (Content-Length {2**30})",
    "endless": f"body larger than {CAP} bytes",
    "drip": f"no complete response within {TIMEOUT_S:g} s",
    "page": "not a feed: looks like HTML",
}


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        running.routes |= {
            "/good-a.xml": static(hostile.rss(hostile.item("a1", "Man shot in Walthamstow", "critical"))),
            "/good-b.xml": static(hostile.rss(hostile.item("b1", "Cordon in place", "police said"))),
            "/bomb.xml": static(hostile.billion_laughs()),
            "/quadratic.xml": static(hostile.quadratic_blowup(50_000, 20_000)),
            "/flood.xml": static(hostile.attribute_flood(100_000)),
            "/gigabyte.xml": streamed(2**30, declare_length=False),
            "/declared.xml": streamed(2**30, declare_length=True),
            "/endless.xml": streamed(None, declare_length=False),
            "/drip.xml": drip(1.0),
            "/page.xml": static(b"<!doctype html><html><body>Moved</body></html>", "text/html"),
            "/xxe.xml": static(hostile.external_entity(running.url("/secret.txt"))),
            "/many.xml": static(hostile.many_entries(10_000)),
            "/title.xml": static(hostile.huge_title(1_000_000)),
            "/utf8.xml": static(hostile.invalid_utf8()),
            "/secret.txt": static(b"SECRET", "text/plain"),
        }
        yield running


async def published(redis: Redis, settings: Settings) -> list[RawUpdate]:
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(settings.keys.raw))
    return [RawUpdate.model_validate_json(fields[DATA_FIELD.encode()]) for _, fields in rows]


async def test_hostile_feeds_fail_alone_and_good_feeds_keep_flowing(
    server: HostileServer, redis: Redis, settings: Settings
) -> None:
    fast = settings.model_copy(update={
        **FAST_POLLING, "http_timeout_s": TIMEOUT_S, "http_connect_timeout_s": TIMEOUT_S, "http_max_body_bytes": CAP,
        # Host politeness is not what is tested here: enough slots that the slow feeds do not queue the others.
        "poll_per_host": 8,
    })
    names = ["good-a", "good-b", *REFUSED, "xxe", "many", "title", "utf8"]
    feeds = [FeedSource(id=name, name=name, url=server.url(f"/{name}.xml")) for name in names]

    async def last_error(feed: str) -> str:
        return as_optional_text(await redis.hget(fast.keys.feed_state(feed), "last_error")) or ""

    async def by_feed() -> dict[str, list[RawUpdate]]:
        grouped: dict[str, list[RawUpdate]] = {}
        for update in await published(redis, fast):
            grouped.setdefault(update.source_id, []).append(update)
        return grouped

    async def every_feed_answered() -> bool:
        errors = {feed: await last_error(feed) for feed in REFUSED}
        seen = await by_feed()
        return all(reason in errors[feed] for feed, reason in REFUSED.items()) and all(
            feed in seen for feed in ("good-a", "good-b", "xxe", "many", "title", "utf8"))

    async with build_client(fast) as client, asyncio.timeout(90):
        task = asyncio.create_task(Poller(StageContext(fast, redis), feeds, client).run())
        try:
            await eventually(every_feed_answered, timeout_s=60, what="every feed polled to its outcome")
            # The hostile feeds keep failing at every turn; a change to a good feed still gets through.
            server.routes["/good-a.xml"] = static(hostile.rss(
                hostile.item("a1", "Man shot in Walthamstow", "critical")
                + hostile.item("a2", "IOPC investigation", "opened", minute=5)))

            async def change_published() -> bool:
                return "a2" in [u.entry.guid for u in (await by_feed()).get("good-a", [])]

            await eventually(change_published, timeout_s=20, what="the good feed's new entry")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    seen = await by_feed()
    for feed, reason in REFUSED.items():
        error = await last_error(feed)
        assert error.startswith(f"feed {feed}: "), error
        assert reason in error, error
        assert feed not in seen
    assert [u.entry.guid for u in seen["good-a"]] == ["a1", "a2"]
    assert [u.entry.guid for u in seen["good-b"]] == ["b1"]
    assert [u.entry.guid for u in seen["many"]] == [f"g{n}" for n in range(9_000, 10_000)]
    assert [len(u.entry.title) for u in seen["title"]] == [MAX_TITLE_CHARS]
    assert [u.entry.title for u in seen["utf8"]] == ["café ÿþ Ã("]
    assert [u.entry.title for u in seen["xxe"]] == ["before after"]
    assert "/secret.txt" not in server.requests, "an external entity was fetched"
    for feed in ("good-a", "good-b", "xxe", "many", "title", "utf8"):
        assert await last_error(feed) == "", feed
