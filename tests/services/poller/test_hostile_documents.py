"""Hostile documents at the parse boundary: XML bombs, external entities, floods, huge fields and bad encodings
each give a clear FeedError naming the feed, or are read correctly where they are legal, in bounded time and memory.

Costs are measured in a process of their own (tests.support.measure), whose address space is capped: the bounds
below are generous (the documents take milliseconds and a few MB), and what they guard against costs gigabytes or
minutes (an XML bomb expanded, a quadratic path taken).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.errors import FeedError
from services.poller import screen
from services.poller.parse import MAX_TITLE_CHARS, html_to_text, parse_feed
from tests.support import hostile_feeds as hostile
from tests.support.hostile_server import HostileServer, static
from tests.support.measure import Measured, measure

# No correct run comes near this (they take milliseconds); a run past it has found a quadratic path or a hang.
BOUND_S = 30.0
MB = 2**20


def measured_parse(tmp_path: Path, name: str, body: bytes, *, trace: bool = True) -> Measured:
    path = tmp_path / name
    path.write_bytes(body)
    measured = measure("tests.support.hostile_calls:parse_file", str(path), timeout_s=120, trace=trace)
    print(f"\n{name} ({len(body):,} bytes): {measured.describe()}")
    return measured


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (hostile.billion_laughs(), "refused as an XML bomb: entity 'lol9' declared in its DTD expands to more than "
                                   "1,000,000 characters"),
        # On separate lines feedparser keeps the entity for its lenient parser, which expanded all 1 GB of it.
        (hostile.quadratic_blowup(50_000, 20_000), "refused as an XML bomb: references to entities declared in its DTD "
                                                   "would add more than 1,000,000 characters (entity 'a' is 50,000 "
                                                   "long)"),
        (hostile.quadratic_blowup(50_000, 20_000, one_line=True), "refused as an XML bomb: references to entities"),
        (hostile.recursive_entities(), "refused: entity 'a' in its DTD refers to itself"),
        (hostile.internal_parameter_entity(), "refused: its DTD declares parameter entity %p;"),
        (hostile.attribute_flood(100_000), "refused: an element has more than 256 attributes"),
    ],
    ids=["billion-laughs", "quadratic-blowup", "quadratic-blowup-one-line", "recursive-entities",
         "internal-parameter-entity", "attribute-flood"],
)
def test_xml_bombs_are_refused_naming_the_feed_in_bounded_time_and_memory(
    tmp_path: Path, document: bytes, reason: str
) -> None:
    measured = measured_parse(tmp_path, "bomb.xml", document)
    assert (measured.error, measured.message[: len(reason) + 15]) == ("FeedError", f"feed bomb.xml: {reason}")
    assert measured.wall_s < BOUND_S
    assert measured.peak_bytes is not None
    assert measured.peak_bytes < 8 * len(document) + 4 * MB, "the screen holds a few copies of the body at most"


@pytest.mark.parametrize(
    "document",
    [
        hostile.reencoded(hostile.billion_laughs(), "utf-16"),
        hostile.utf7_hidden(hostile.billion_laughs()),
        hostile.laughs_after('<!ENTITY a "]>">'),
        hostile.laughs_after("<!-- ]> -->"),
        hostile.laughs_after("<?pi ]> ?>"),
        hostile.laughs_after("<!ELEMENT rss ANY><!ATTLIST rss version CDATA '2.0'>"),
    ],
    ids=["utf-16", "utf-7-base64", "quoted-end-of-subset", "commented-end-of-subset", "end-of-subset-in-a-pi",
         "after-other-declarations"],
)
def test_a_bomb_is_found_whatever_hides_it(document: bytes) -> None:
    """The document is read as the parsers read it: decoded first, and the subset's end found outside literals,
    comments and processing instructions."""
    with pytest.raises(FeedError, match=r"^feed hidden: refused as an XML bomb: entity 'lol9'"):
        parse_feed(document, feed="hidden")


def test_billion_laughs_on_separate_lines_expands_nothing() -> None:
    """feedparser drops nested entity declarations it finds on their own lines; what is left refers to undeclared
    entities, so the title is the reference as written, and the broken XML is a warning."""
    parsed = parse_feed(hostile.billion_laughs(one_line=False), feed="laughs")
    assert [(e.guid, e.title) for e in parsed.entries] == [("bomb", "&lol9;")]
    assert parsed.warnings == ["broken XML at line 5: undefined entity"]


def test_modest_entities_are_expanded() -> None:
    """Legal entities (one nested in another, a character reference) are read as XML says."""
    parsed = parse_feed(hostile.small_entities(), feed="entities")
    assert [(e.guid, e.title) for e in parsed.entries] == [("ok", "AT&T © Walthamstow")]
    assert parsed.warnings == []


@pytest.fixture
def entity_server() -> Iterator[HostileServer]:
    """Serves what an external entity or DTD would load, so that a request for it shows."""
    with HostileServer() as server:
        server.routes["/secret.txt"] = static(b"SECRET-FROM-THE-NETWORK", "text/plain")
        server.routes["/entities.dtd"] = static(b'<!ENTITY leak "SECRET-FROM-A-DTD">', "application/xml-dtd")
        yield server


def test_external_entities_and_dtds_are_never_loaded(entity_server: HostileServer, tmp_path: Path) -> None:
    """No entity or DTD is fetched from the network or read from disk (XXE); the entries are kept, and each external
    entity is named in a warning."""
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("SECRET-FROM-THE-DISK")
    documents = {
        "network entity": hostile.external_entity(entity_server.url("/secret.txt")),
        "file entity": hostile.external_entity(secret_file.as_uri()),
        "parameter entity": hostile.external_parameter_entity(entity_server.url("/entities.dtd")),
        "external dtd": hostile.external_dtd(entity_server.url("/entities.dtd")),
    }
    parsed = {name: parse_feed(body, feed=name) for name, body in documents.items()}
    assert entity_server.requests == []
    for name, feed in parsed.items():
        assert len(feed.entries) == 1, name
        assert "SECRET" not in feed.entries[0].title + feed.entries[0].text, name
    assert parsed["network entity"].entries[0].title == "before after"
    assert parsed["network entity"].warnings == [
        f"entity 'xxe' is external (SYSTEM \"{entity_server.url('/secret.txt')}\"): not loaded"]
    assert parsed["file entity"].warnings == [
        f"entity 'xxe' is external (SYSTEM \"{secret_file.as_uri()}\"): not loaded"]
    assert parsed["parameter entity"].warnings == [
        f"parameter entity %remote; is external (SYSTEM \"{entity_server.url('/entities.dtd')}\"): not loaded"]


def test_ten_thousand_entries_keep_the_newest_thousand_in_bounded_time_and_memory(tmp_path: Path) -> None:
    document = hostile.many_entries(10_000)
    measured = measured_parse(tmp_path, "many.xml", document, trace=False)
    assert measured.error is None, measured.message
    assert measured.value["guids"] == [f"g{n}" for n in range(9_000, 10_000)]
    assert measured.value["warnings"] == ["10000 entries, kept the newest 1000"]
    assert measured.wall_s < BOUND_S
    # About 20 MB here; a parser holding every entry several times over would pass 100 × the body.
    assert measured.rss_growth_bytes < 100 * len(document)


@pytest.mark.parametrize("markup", [False, True], ids=["text", "escaped-markup"])
def test_a_one_megabyte_title_is_cut_with_a_warning(tmp_path: Path, markup: bool) -> None:
    title = html.escape("<b>word</b> " * 80_000) if markup else "word " * 200_000
    document = hostile.rss(hostile.item("big", title, "short text"))
    # Not traced: feedparser's sanitiser reads the markup tag by tag, and tracing would slow that tenfold.
    measured = measured_parse(tmp_path, "title.xml", document, trace=False)
    assert measured.error is None, measured.message
    assert (measured.value["guids"], measured.value["title_lengths"]) == (["big"], [MAX_TITLE_CHARS])
    assert measured.value["warnings"] == ["entry 1: title truncated"]
    assert measured.wall_s < BOUND_S
    assert measured.rss_growth_bytes < 64 * len(document)


def test_invalid_utf8_is_read_another_way_with_a_warning() -> None:
    """Bytes that are not UTF-8 in a document that says it is: the entry is kept, read as windows-1252, and the
    warning says so."""
    parsed = parse_feed(hostile.invalid_utf8(), feed="bad")
    assert [(e.guid, e.title) for e in parsed.entries] == [("bad", "café ÿþ Ã(")]
    assert parsed.warnings == ["CharacterEncodingOverride: document declared as utf-8, but parsed as windows-1252"]
    served = parse_feed(hostile.invalid_utf8(), feed="bad", content_type="application/rss+xml; charset=utf-8")
    assert [e.title for e in served.entries] == ["café ÿþ Ã("]


def test_invalid_utf8_with_nothing_else_to_go_on_is_a_feed_error() -> None:
    """Not UTF-8, not XML: refused with the reason, not decoded into a feed."""
    with pytest.raises(FeedError, match=r"^feed junk: not a feed: looks like plain text$"):
        parse_feed(b"\xfd\xc3\x28 \xe9t\xe9" * 100, feed="junk")


def test_unfinished_markup_is_read_in_linear_time(tmp_path: Path) -> None:
    """html_to_text of markup that never closes a comment, a tag or a declaration: the standard parser's close()
    rescans the rest from each one (40 s for 320 kB); the unfinished tail is stripped instead."""
    markup = "<p>Intro</p>" + "<!--" * 200_000
    path = tmp_path / "unfinished.html"
    path.write_text(markup)
    measured = measure("tests.support.hostile_calls:markup_text_length", str(path), timeout_s=120)
    print(f"\nunfinished markup ({len(markup):,} characters): {measured.describe()}")
    assert measured.error is None, measured.message
    assert measured.wall_s < BOUND_S
    assert html_to_text("<p>Intro</p>" + "<a" * 5_000).startswith("Intro")
    assert html_to_text("<p>Intro</p><!-- never closed") == "Intro <!-- never closed", "short tails: as before"


def test_a_declared_encoding_that_cannot_be_looked_up_is_a_feed_error() -> None:
    """Found by fuzzing: a NUL in the declared encoding's name makes the codec lookup raise ValueError; the checks
    before parsing leave it to the parser's own error handling, which names the feed."""
    body = b'<?xml version="1.0" encoding="\x00437"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>'
    with pytest.raises(FeedError, match=r"^feed nul: parser failed: ValueError: embedded null character$"):
        parse_feed(body, feed="nul")


_FEEDPARSER_ENCODING_PATTERN = re.compile(screen._DeclaredEncoding.PATTERN)


@settings(max_examples=500, derandomize=True, database=None)
@given(st.lists(st.sampled_from([b"<?", b"?>", b"<?xml ", b"encoding=", b"'", b'"', b"\n", b"utf-8", b" ", b">", b"x"]),
                max_size=30).map(b"".join))
def test_the_declared_encoding_is_found_as_feedparser_finds_it(data: bytes) -> None:
    """The linear search finds exactly what feedparser's pattern finds, in any arrangement of its parts."""
    expected = _FEEDPARSER_ENCODING_PATTERN.match(data)
    found = screen._DeclaredEncoding().match(data)
    assert (found.groups() if found else None) == (expected.groups() if expected else None)


def test_feedparser_reads_the_declared_encoding_in_linear_time(tmp_path: Path) -> None:
    """feedparser's own pattern took 4 s on 1,000 `encoding="…"` in a first line without `?>` (cubic), and half an
    hour on an unclosed declaration before a one-line feed of 10 MB; the search that replaces it, milliseconds."""
    import feedparser.encodings

    assert isinstance(feedparser.encodings.RE_XML_PI_ENCODING, screen._DeclaredEncoding), "feedparser changed"
    documents = {
        "many-encodings.xml": b'<?xml version="1.0"' + b' encoding="1.0"' * 2_000,
        # The quotes are what the pattern backtracks over: each is a possible end of the encoding's value.
        "unclosed-declaration.xml": b'<?xml version="1.0" encoding="utf-8">'
        + hostile.rss(hostile.item("g", "title", '"' * 1_000_000))[38:],
    }
    for name, document in documents.items():
        measured = measured_parse(tmp_path, name, document)
        assert measured.wall_s < BOUND_S
        assert measured.cpu_s < BOUND_S
