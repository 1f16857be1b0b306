"""Parser processes under limits (ParserPool): the same result as parse_feed, and a document that would take
feedparser minutes or gigabytes costs its CPU or memory limit, for its own feed only.

The pathological documents here take feedparser a minute or more in the calling process (quadratic paths in its
sanitiser and author matching); the pool's limits are set to a second, so each costs about that.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from schemas import FeedSource
from services.errors import FeedError
from services.poller import parser_pool
from services.poller.check import check_feeds
from services.poller.feeds import probe
from services.poller.fetch import build_client
from services.poller.parse import ParsedFeed, parse_feed
from services.poller.parser_pool import ParserPool, parse_feed_bounded
from services.settings import Settings
from tests.support import hostile_feeds as hostile
from tests.support.feed_server import FeedServer, rss

# Generous: a limited parse ends a second or two after it starts; without the limit these take a minute or more.
BOUND_S = 30.0
CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpora" / "feedparser-tests" / "tests"


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(2, cpu_s=1, cpu_s_per_mb=0)
    yield parsers
    parsers.close()


def bounded_call(pool: ParserPool, body: bytes, feed: str) -> tuple[ParsedFeed | str, float]:
    """What `pool.parse` gives (the ParsedFeed, or the FeedError's message) and how long it took; a call still
    running after BOUND_S fails the test (the pool is closed by its fixture, which kills the process)."""
    started = time.monotonic()
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(pool.parse, body, feed=feed)
        try:
            outcome: ParsedFeed | str = future.result(timeout=BOUND_S)
        except FeedError as error:
            outcome = str(error)
        except TimeoutError:
            pool.close()
            raise AssertionError(f"{feed} was not cut off within {BOUND_S} s") from None
    return outcome, time.monotonic() - started


def _outcome(parse: Callable[..., ParsedFeed], body: bytes, feed: str, content_type: str | None) -> ParsedFeed | str:
    try:
        return parse(body, feed=feed, content_type=content_type)
    except FeedError as error:
        return str(error)


def test_the_pool_gives_what_parse_feed_gives(pool: ParserPool) -> None:
    """Entries, warnings and refusals are exactly those of parse_feed, over a sample of the feedparser corpus (every
    20th document) and hostile documents, legal or not."""
    documents: dict[str, tuple[bytes, str | None]] = {
        path.name: (path.read_bytes(), None) for path in sorted(CORPUS.rglob("*.xml"))[::20]}
    documents |= {"entities": (hostile.small_entities(), None), "utf8": (hostile.invalid_utf8(), "text/xml"),
                  "bomb": (hostile.billion_laughs(), None), "many": (hostile.many_entries(1_500), None)}
    assert len(documents) > 100
    for name, (body, content_type) in documents.items():
        here = _outcome(parse_feed, body, name, content_type)
        there = _outcome(pool.parse, body, name, content_type)
        assert there == here, name


@pytest.mark.parametrize(
    "document",
    [hostile.long_style_markup(100_000), hostile.unclosed_comment_markup(200_000), hostile.long_author(64_000)],
    ids=["long-style-attribute", "unclosed-comments", "almost-an-email-author"],
)
def test_a_pathological_document_costs_its_cpu_limit(pool: ParserPool, document: bytes) -> None:
    outcome, took_s = bounded_call(pool, document, "slow")
    print(f"\ncut off after {took_s:.2f} s: {outcome}")
    assert outcome == "feed slow: refused: parsing it took more than 1 s of CPU"
    assert took_s < BOUND_S


def test_a_document_that_needs_too_much_memory_is_refused() -> None:
    parsers = ParserPool(1, cpu_s=60, memory_bytes=16 * 2**20, memory_per_body_byte=0)
    try:
        outcome, _ = bounded_call(parsers, hostile.many_entries(20_000), "big")
        assert outcome == "feed big: refused: parsing it needed more than 16 MB"
        small = parsers.parse(hostile.many_entries(3), feed="small")
        assert [e.guid for e in small.entries] == ["g0", "g1", "g2"], "a fresh parser took the dead one's place"
    finally:
        parsers.close()


def test_other_documents_are_parsed_while_a_pathological_one_is_cut_off(pool: ParserPool) -> None:
    """One parser is busy with a slow document until the kernel stops it; the other parses every good one meanwhile,
    and afterwards the pool has two working parsers again."""
    good = hostile.many_entries(5)
    with ThreadPoolExecutor(8) as executor:
        slow = executor.submit(pool.parse, hostile.long_style_markup(100_000), feed="slow")
        time.sleep(0.5)  # the slow one holds a parser first
        started = time.monotonic()
        quick = [executor.submit(pool.parse, good, feed=f"good-{n}") for n in range(20)]
        parsed = [future.result(timeout=BOUND_S) for future in quick]
        good_done_s = time.monotonic() - started
        # The slow one needs a whole second of CPU before it is stopped; the good ones need milliseconds.
        assert not slow.done(), "the good documents waited for the slow one"
        with pytest.raises(FeedError, match="took more than 1 s of CPU"):
            slow.result(timeout=BOUND_S)
    assert all([e.guid for e in feed.entries] == ["g0", "g1", "g2", "g3", "g4"] for feed in parsed)
    print(f"\n20 good documents parsed in {good_done_s:.2f} s beside the slow one")
    again = [pool.parse(good, feed="after").entries[0].guid for _ in range(4)]
    assert again == ["g0"] * 4
    assert len(pool.processes) <= 2


def test_closing_the_pool_stops_its_processes() -> None:
    parsers = ParserPool(2)
    parsers.parse(hostile.many_entries(1), feed="one")
    processes = parsers.processes
    assert len(processes) == 1
    assert processes[0].is_alive()
    parsers.close()
    assert not processes[0].is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        parsers.parse(hostile.many_entries(1), feed="one")


async def test_parse_feed_bounded_parses_and_refuses_like_parse_feed() -> None:
    parsed = await parse_feed_bounded(hostile.many_entries(2), feed="two")
    assert [e.guid for e in parsed.entries] == ["g0", "g1"]
    with pytest.raises(FeedError, match=r"^feed bomb: refused as an XML bomb"):
        await parse_feed_bounded(hostile.billion_laughs(), feed="bomb")


async def test_feed_check_and_feeds_add_parse_network_documents_under_the_limits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`livedesk feed check URL` and `livedesk feeds add URL` (its probe) parse what they fetch in parser processes:
    a pathological document is cut off at its CPU limit with a clear error, and the good feed next to it is read."""
    limited = ParserPool(1, cpu_s=1, cpu_s_per_mb=0)
    monkeypatch.setattr(parser_pool, "_default_pool", limited)
    settings = Settings(_env_file=None, allow_private_hosts=True)
    try:
        with FeedServer() as server:
            server.routes["/slow.xml"] = hostile.long_style_markup(100_000)
            server.routes["/good.xml"] = rss(("g1", "Council meeting moved", "The agenda is unchanged."))
            out = io.StringIO()
            summary = await check_feeds([f"{server.url}/slow.xml", f"{server.url}/good.xml"], out=out,
                                        settings=settings)
            async with build_client(settings) as client:
                with pytest.raises(FeedError, match="took more than 1 s of CPU"):
                    await probe(client, FeedSource(id="slow", name="Slow", url=f"{server.url}/slow.xml"),
                                settings.http_max_body_bytes)
    finally:
        limited.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"ERROR {server.url}/slow.xml: refused: parsing it took more than 1 s of CPU"
    assert json.loads(lines[1])["title"] == "Council meeting moved"
    assert (summary.ok, summary.errors) == (1, 1)
