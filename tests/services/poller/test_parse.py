"""The parse boundary: feed bytes in, normalised entries or one FeedError out."""

from __future__ import annotations

import ast
import codecs
import gzip
import importlib.util
import io
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import FeedEntry
from services.errors import FeedError
from services.poller import parse
from services.poller.parse import MAX_ENTRIES, MAX_TEXT_CHARS, MAX_TITLE_CHARS, ParsedFeed, html_to_text, parse_feed

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Met Police &amp; partners</title>
  <link>https://news.met.police.uk/</link>
  <ttl>15</ttl>
  <item>
    <title>Man shot by police in Walthamstow</title>
    <link>https://news.met.police.uk/news/1</link>
    <guid isPermaLink="false">met-1</guid>
    <pubDate>Fri, 24 Oct 2025 10:20:00 +0100</pubDate>
    <description>&lt;p&gt;A man is in a &lt;b&gt;critical&lt;/b&gt; condition.&lt;/p&gt;</description>
  </item>
  <item>
    <title>IOPC investigation</title>
    <link>https://news.met.police.uk/news/2</link>
    <guid>https://news.met.police.uk/news/2</guid>
    <description>summary only</description>
    <content:encoded><![CDATA[<p>The IOPC has opened</p><p>an independent investigation.</p>]]></content:encoded>
  </item>
</channel>
</rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="html">Waltham Forest &lt;b&gt;Echo&lt;/b&gt;</title>
  <id>urn:uuid:feed</id>
  <updated>2025-10-24T12:00:00Z</updated>
  <entry>
    <id>tag:echo.example,2025:42</id>
    <title type="html">Cordon &lt;em&gt;lifted&lt;/em&gt; in Hoe Street</title>
    <link rel="alternate" href="https://echo.example/42"/>
    <link rel="enclosure" href="https://echo.example/42.jpg"/>
    <published>2025-10-24T09:20:00+01:00</published>
    <updated>2025-10-24T11:05:30-04:00</updated>
    <summary>short</summary>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Police say there is
      <strong>no wider risk</strong>.</p><p>The cordon has gone.</p></div></content>
  </entry>
</feed>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="http://example.org/"><title>RDF news</title><link>http://example.org/</link>
    <description>d</description></channel>
  <item rdf:about="http://example.org/1">
    <title>First &amp; only</title>
    <link>http://example.org/1</link>
    <description>Body &lt;b&gt;bold&lt;/b&gt;</description>
    <dc:date>2025-10-24T10:20:00+01:00</dc:date>
  </item>
</rdf:RDF>"""


def rss_with(items: str, channel: str = "") -> bytes:
    """An RSS 2.0 document around the given raw item markup."""
    head = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
    return f"{head}{channel}{items}</channel></rss>".encode()


def test_rss20_entries_are_normalised() -> None:
    """RSS 2.0 items give guid, link, plain title/text (content:encoded over description) and aware UTC dates."""
    parsed = parse_feed(RSS, feed="met", content_type="application/rss+xml")
    assert parsed.title == "Met Police & partners"
    assert parsed.ttl_s == 15 * 60
    assert parsed.warnings == []
    first, second = parsed.entries
    assert first == FeedEntry(
        guid="met-1",
        link="https://news.met.police.uk/news/1",
        title="Man shot by police in Walthamstow",
        text="A man is in a critical condition.",
        html="<p>A man is in a <b>critical</b> condition.</p>",
        published=datetime(2025, 10, 24, 9, 20, tzinfo=UTC),
        updated=None,
    )
    assert second.guid == "https://news.met.police.uk/news/2"
    assert second.text == "The IOPC has opened an independent investigation."
    assert second.html == "<p>The IOPC has opened</p><p>an independent investigation.</p>"


def test_atom_entries_are_normalised() -> None:
    """Atom entries give id, alternate link, markup-free html/xhtml text, and published and updated in UTC."""
    parsed = parse_feed(ATOM, feed="echo")
    assert parsed.title == "Waltham Forest Echo"
    assert parsed.ttl_s is None
    (entry,) = parsed.entries
    assert entry.guid == "tag:echo.example,2025:42"
    assert entry.link == "https://echo.example/42"
    assert entry.title == "Cordon lifted in Hoe Street"
    assert entry.text == "Police say there is no wider risk. The cordon has gone."
    assert entry.published == datetime(2025, 10, 24, 8, 20, tzinfo=UTC)
    assert entry.updated == datetime(2025, 10, 24, 15, 5, 30, tzinfo=UTC)
    assert entry.published is not None
    assert entry.published.utcoffset() is not None


def test_rdf_items_are_normalised() -> None:
    """RSS 1.0 (RDF) items are read; rdf:about is the guid and dc:date the updated time."""
    (entry,) = parse_feed(RDF, feed="rdf").entries
    assert entry.guid == "http://example.org/1"
    assert entry.title == "First & only"
    assert entry.text == "Body bold"
    assert entry.updated == datetime(2025, 10, 24, 9, 20, tzinfo=UTC)


def test_empty_feed_is_a_feed() -> None:
    """A well-formed feed with no entries is a feed with no entries, not an error."""
    assert parse_feed(rss_with(""), feed="f") == ParsedFeed(title="T", entries=[], ttl_s=None, warnings=[])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"  \r\n\t ", "empty body"),
        (b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>no feed</p></body></html>", "looks like HTML"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "looks like JSON"),
        (b"Service temporarily unavailable, try later", "looks like plain text"),
        (gzip.compress(RSS), "gzip"),
        (b"\x00\x01\x02\xff\xfe\x80garbage", "not a feed"),
        (b'<?xml version="1.0"?><config><item>1</item></config>', "XML root <config>"),
        (b'<?xml version="1.0"?>\n<rss version="2.0">\n<channel></rss>', "broken XML at line 3: mismatched tag"),
    ],
)
def test_not_a_feed_is_a_feed_error_with_reason(body: bytes, reason: str) -> None:
    """Documents that are not feeds raise FeedError naming the feed, with a one-line reason."""
    with pytest.raises(FeedError) as caught:
        parse_feed(body, feed="bad-feed")
    assert caught.value.feed == "bad-feed"
    assert reason in caught.value.reason
    assert "\n" not in caught.value.reason


def test_bozo_feed_with_entries_is_used_with_a_warning() -> None:
    """An ill-formed document that still yields entries is used, with the XML problem as a warning."""
    body = rss_with("<item><title>Kept</title><guid>k1</guid></item><item><title>Broken</b></item>")
    parsed = parse_feed(body, feed="f")
    assert parsed.entries[0].title == "Kept"
    assert any(w.startswith("broken XML at line 1") for w in parsed.warnings)


def test_entities_and_markup_become_plain_text() -> None:
    """HTML entities are resolved, tags and script bodies removed, and whitespace collapsed."""
    body = rss_with(
        "<item><title>Fish &amp;amp; chips &lt;i&gt;shop&lt;/i&gt; &amp;#8217;s</title>"
        "<description>&lt;p&gt;one&lt;/p&gt;&lt;p&gt;two&amp;nbsp;three&lt;/p&gt;\n\n&lt;br/&gt;four</description>"
        "</item>"
    )
    (entry,) = parse_feed(body, feed="f").entries
    assert entry.title == "Fish & chips shop \u2019s"
    assert entry.text == "one two three four"  # a no-break space is whitespace too
    assert html_to_text("<style>p{}</style><script>alert(1)</script>Hi &lt;there&gt;") == "Hi <there>"


def test_plain_text_titles_keep_angle_brackets() -> None:
    """A title the feed marks as plain text is not treated as markup: '3 < 4' stays."""
    (entry,) = parse_feed(rss_with("<item><title>3 &lt; 4</title></item>"), feed="f").entries
    assert entry.title == "3 < 4"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Fri, 24 Oct 2025 10:20:00 +0100", datetime(2025, 10, 24, 9, 20, tzinfo=UTC)),
        ("Fri, 24 Oct 2025 09:20:00 GMT", datetime(2025, 10, 24, 9, 20, tzinfo=UTC)),
        ("Thu, 23 Oct 2025 23:30:00 -0500", datetime(2025, 10, 24, 4, 30, tzinfo=UTC)),
        ("2025-10-24T09:20:00Z", datetime(2025, 10, 24, 9, 20, tzinfo=UTC)),
        ("Sat, 24 Oct 98 09:20:00 EST", datetime(1998, 10, 24, 14, 20, tzinfo=UTC)),
    ],
)
def test_dates_become_aware_utc(date: str, expected: datetime) -> None:
    """pubDate in any zone and format feedparser knows becomes a timezone-aware UTC datetime."""
    (entry,) = parse_feed(rss_with(f"<item><title>x</title><pubDate>{date}</pubDate></item>"), feed="f").entries
    assert entry.published == expected
    assert entry.published is not None
    assert entry.published.tzinfo is UTC


def test_garbage_date_is_none_with_warning() -> None:
    """A date that cannot be read is None plus a warning, and the entry is kept."""
    parsed = parse_feed(rss_with("<item><title>x</title><pubDate>yesterday-ish</pubDate></item>"), feed="f")
    assert parsed.entries[0].published is None
    assert parsed.warnings == ["entry 1: unparseable published date 'yesterday-ish'"]


def test_garbage_ttl_is_none_with_warning() -> None:
    """An unusable <ttl> is None plus a warning."""
    parsed = parse_feed(rss_with("<item><title>x</title></item>", channel="<ttl>soon</ttl>"), feed="f")
    assert parsed.ttl_s is None
    assert parsed.warnings == ["unusable <ttl> 'soon'"]


SY = 'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'


def rss_sy(channel: str) -> bytes:
    """An RSS 2.0 document with the Syndication namespace declared and one item."""
    return (
        f'<?xml version="1.0"?><rss version="2.0" {SY}><channel><title>T</title>{channel}'
        "<item><title>x</title></item></channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>", 1_800),
        ("<sy:updatePeriod> Daily </sy:updatePeriod>", 86_400),
        ("<sy:updateFrequency>4</sy:updateFrequency>", 21_600),  # the period defaults to daily
        ("<sy:updatePeriod>weekly</sy:updatePeriod><sy:updateFrequency>1</sy:updateFrequency>", 604_800),
        ("<sy:updatePeriod>monthly</sy:updatePeriod>", 30 * 86_400),
        ("<sy:updatePeriod>yearly</sy:updatePeriod><sy:updateFrequency>365</sy:updateFrequency>", 86_400),
        ("", None),
    ],
)
def test_syndication_update_period_in_seconds(channel: str, expected: int | None) -> None:
    """sy:updatePeriod divided by sy:updateFrequency becomes update_period_s, with the spec's defaults."""
    parsed = parse_feed(rss_sy(channel), feed="f")
    assert parsed.update_period_s == expected
    assert parsed.warnings == []


def test_syndication_update_period_in_atom() -> None:
    """The Syndication module is read in Atom feeds too."""
    body = (
        f'<feed xmlns="http://www.w3.org/2005/Atom" {SY}><title>T</title>'
        "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>"
        "<entry><id>e</id><title>x</title></entry></feed>"
    ).encode()
    assert parse_feed(body, feed="f").update_period_s == 900


@pytest.mark.parametrize(
    ("channel", "warning"),
    [
        ("<sy:updatePeriod>fortnightly</sy:updatePeriod>", "unusable sy:updatePeriod 'fortnightly'"),
        ("<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>0</sy:updateFrequency>",
         "unusable sy:updateFrequency '0'"),
        ("<sy:updateFrequency>often</sy:updateFrequency>", "unusable sy:updateFrequency 'often'"),
        ("<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>-3</sy:updateFrequency>",
         "unusable sy:updateFrequency '-3'"),
    ],
)  # fmt: skip
def test_garbage_update_period_is_none_with_warning(channel: str, warning: str) -> None:
    """An unknown period or a non-positive or non-numeric frequency gives None plus a warning; entries are kept."""
    parsed = parse_feed(rss_sy(channel), feed="f")
    assert parsed.update_period_s is None
    assert parsed.warnings == [warning]
    assert parsed.entries[0].title == "x"


def test_websub_hub_and_self_in_atom_resolve_against_base_url() -> None:
    """Atom <link rel="hub"> and rel="self" become absolute hub_url and self_url; rel="alternate" is neither."""
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><link href="/alt"/>'
        b'<link rel="hub" href="https://pubsubhubbub.appspot.com/"/><link rel="self" href="/feeds/main.atom"/>'
        b"<entry><id>e</id><title>x</title></entry></feed>"
    )
    parsed = parse_feed(body, feed="f", base_url="https://news.example/feeds/old.atom")
    assert parsed.hub_url == "https://pubsubhubbub.appspot.com/"
    assert parsed.self_url == "https://news.example/feeds/main.atom"
    assert parsed.warnings == []


def test_websub_hub_and_self_in_rss_atom_link() -> None:
    """RSS 2.0 carries WebSub links as atom:link; a relative hub resolves against base_url, the first hub wins."""
    channel = (
        '<atom:link rel="hub" href="hub"/><atom:link rel="hub" href="https://second.example/"/>'
        '<atom:link rel="self" type="application/rss+xml" href="https://x.example/rss"/>'
    )
    body = rss_with("<item><title>x</title></item>", channel=channel).replace(
        b'<rss version="2.0">', b'<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
    )
    parsed = parse_feed(body, feed="f", base_url="https://x.example/feeds/rss")
    assert parsed.hub_url == "https://x.example/feeds/hub"
    assert parsed.self_url == "https://x.example/rss"


def test_no_websub_links_and_unusable_hub() -> None:
    """Without hub/self links both are None; a hub that is not http(s) is ignored with a warning."""
    assert (parse_feed(RSS, feed="f").hub_url, parse_feed(RSS, feed="f").self_url) == (None, None)
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><link rel="hub" href="javascript:alert(1)"/></feed>'
    )
    parsed = parse_feed(body, feed="f", base_url="https://x.example/")
    assert parsed.hub_url is None
    assert parsed.warnings == ["ignored rel=hub link 'javascript:alert(1)': not an absolute http(s) URL"]


def test_entries_are_capped_keeping_the_newest() -> None:
    """More than MAX_ENTRIES entries: the oldest are dropped, document order kept, and a warning says so."""
    count = MAX_ENTRIES + 5
    # Oldest first in the document, so keeping the first MAX_ENTRIES would be wrong.
    items = "".join(
        f"<item><guid>g{i}</guid><pubDate>{time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime(10**9 + i * 60))}"
        "</pubDate></item>"
        for i in range(count)
    )
    parsed = parse_feed(rss_with(items), feed="f")
    assert [e.guid for e in parsed.entries] == [f"g{i}" for i in range(5, count)]
    assert f"{count} entries, kept the newest {MAX_ENTRIES}" in parsed.warnings


def test_title_and_text_are_capped() -> None:
    """Over-long titles and texts are cut to their caps, with a warning."""
    body = rss_with(f"<item><title>{'t' * 5000}</title><description>{'x ' * 200_000}</description></item>")
    parsed = parse_feed(body, feed="f")
    (entry,) = parsed.entries
    assert len(entry.title) == MAX_TITLE_CHARS
    assert len(entry.text) == MAX_TEXT_CHARS
    assert parsed.warnings == ["entry 1: title truncated"]


def test_declared_charset_is_used() -> None:
    """The charset of the Content-Type takes part in decoding the body."""
    body = "<rss version='2.0'><channel><title>caf\xe9</title><item><title>Caf\xe9</title></item></channel></rss>"
    parsed = parse_feed(body.encode("latin-1"), feed="f", content_type="text/xml; charset=iso-8859-1")
    assert parsed.entries[0].title == "Café"
    assert parsed.warnings == []


def test_relative_links_resolve_against_base_url_but_guids_do_not() -> None:
    """With base_url, relative links become absolute; GUIDs stay as written so identity survives a feed move."""
    body = rss_with("<item><guid>67</guid><title>a</title></item><item><link>/news/2</link><title>b</title></item>")
    first, second = parse_feed(body, feed="f", base_url="https://x.example/feed/").entries
    assert (first.guid, first.link) == ("67", "https://x.example/feed/67")
    assert second.link == "https://x.example/news/2"


def test_markup_is_kept_sanitised_beside_the_plain_text() -> None:
    """The body's HTML is kept as feedparser sanitised it (no script, no event handler); the text has no markup."""
    body = rss_with(
        "<item><guid>g</guid><title>t</title><description>&lt;p onclick='steal()'&gt;A man is &lt;b&gt;critical"
        "&lt;/b&gt;.&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;&lt;ul&gt;&lt;li&gt;one&lt;/li&gt;&lt;/ul&gt;"
        "</description></item>"
    )
    (entry,) = parse_feed(body, feed="f").entries
    assert entry.html == "<p>A man is <b>critical</b>.</p><ul><li>one</li></ul>"
    assert entry.text == "A man is critical. one"


def test_links_in_markup_resolve_against_the_feed_url() -> None:
    """Relative links and images in the HTML become absolute against base_url (after xml:base); a link the sanitiser
    emptied stays empty; the GUID stays as written."""
    base = "https://news.example/feeds/met.xml"
    body = rss_with(
        "<item><guid isPermaLink='false'>67</guid><title>t</title><description>&lt;p&gt;&lt;a href='/news/2'&gt;"
        "More&lt;/a&gt; &lt;img src='pics/1.jpg' alt=''&gt; &lt;a href='https://other.example/x'&gt;there&lt;/a&gt;"
        " &lt;a href='javascript:alert(1)'&gt;bad&lt;/a&gt;&lt;/p&gt;</description></item>"
    )
    (entry,) = parse_feed(body, feed="f", base_url=base).entries
    assert entry.guid == "67"
    assert entry.html == (
        '<p><a href="https://news.example/news/2">More</a> <img alt="" src="https://news.example/feeds/pics/1.jpg" />'
        ' <a href="https://other.example/x">there</a> <a href="">bad</a></p>'
    )
    assert entry.text == "More there bad"
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/blog/"><title>T</title><id>urn:f</id>'
        b'<entry><id>urn:e1</id><title>a</title><content type="html">&lt;a href="post-1"&gt;read&lt;/a&gt;'
        b'</content></entry></feed>'
    )
    (relative_base,) = parse_feed(atom, feed="f", base_url=base).entries
    assert relative_base.html == '<a href="https://news.example/blog/post-1">read</a>'
    (unresolved,) = parse_feed(atom, feed="f").entries
    assert unresolved.html == '<a href="post-1">read</a>', "without the feed's URL there is nothing to resolve against"


def test_plain_text_and_missing_bodies_have_no_html() -> None:
    """A body the feed marks as plain text, or no body at all, gives html None; the text is still read."""
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:f</id>'
        b'<entry><id>urn:e1</id><title>a</title><content type="text">3 &lt; 4 &lt;b&gt;</content></entry>'
        b"<entry><id>urn:e2</id><title>b</title></entry></feed>"
    )
    plain, bodiless = parse_feed(atom, feed="f", base_url="https://news.example/").entries
    assert (plain.text, plain.html) == ("3 < 4 <b>", None)
    assert (bodiless.text, bodiless.html) == ("", None)


def test_overlong_markup_keeps_only_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Markup past MAX_HTML_CHARS is not kept (cut markup is broken markup); the text is, with a warning."""
    monkeypatch.setattr(parse, "MAX_HTML_CHARS", 40)
    body = rss_with("<item><guid>g</guid><description>&lt;p&gt;" + "word " * 20 + "&lt;/p&gt;</description></item>")
    parsed = parse_feed(body, feed="f")
    assert parsed.entries[0].html is None
    assert parsed.entries[0].text == " ".join(["word"] * 20)
    assert parsed.warnings == ["entry 1: markup longer than 40 characters, only its text kept"]


def test_body_naming_a_file_is_not_opened(tmp_path: Path) -> None:
    """Bytes that happen to be a path are parsed as a document, never opened as a file."""
    target = tmp_path / "feed.xml"
    target.write_bytes(RSS)
    with pytest.raises(FeedError, match="plain text"):
        parse_feed(str(target).encode(), feed="f")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_feed_or_feed_error(body: bytes) -> None:
    """Any bytes at all give a ParsedFeed or a FeedError, never another exception."""
    try:
        parsed = parse_feed(body, feed="fuzz")
    except FeedError as error:
        reason = error.reason
    else:
        assert all(isinstance(e, FeedEntry) for e in parsed.entries)
        return
    assert reason
    assert "\n" not in reason


_field_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.sampled_from(
    ["&amp;", "&nbsp;", "&#xD800;", "&#0;", "<![CDATA[", "]]>", "<b>", "</item>", "<![if x]>", "31 Feb 2025 25:61"]
)


@settings(max_examples=200, deadline=None)
@given(title=_field_text, text=_field_text, date=_field_text, guid=_field_text)
def test_garbage_in_fields_never_breaks_parsing(title: str, text: str, date: str, guid: str) -> None:
    """Random, unescaped garbage inside an item's fields gives a ParsedFeed or a FeedError, with bounded fields."""
    item = f"<item><title>{title}</title><description>{text}</description><pubDate>{date}</pubDate>"
    item += f"<guid>{guid}</guid></item>"
    try:
        parsed = parse_feed(rss_with(item).replace(b"\x00", b""), feed="fuzz")
    except FeedError:
        return
    for entry in parsed.entries:
        assert len(entry.title) <= MAX_TITLE_CHARS
        assert entry.title == " ".join(entry.title.split())
        entry.model_dump_json()  # every field survives serialisation (no lone surrogates)


# ---------- the feedparser corpus ----------

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpora" / "feedparser-tests" / "tests"
HEADER = re.compile(rb"^Header:\s+([^:]+):(.+)$", re.MULTILINE)
EXPECT = re.compile(rb"Expect:\s*(.*?)\s*-->", re.DOTALL)
# Where runtests.py serves the corpus's http_* documents; their Expect lines depend on that URL.
_CORPUS_SERVER = "http://127.0.0.1:8097/"
# Expect-line subjects (as key paths) that livedesk keeps, and the field of ours each one maps to.
KEPT: dict[tuple[Any, ...], str] = {
    ("entries", 0, "title"): "title",
    ("entries", 0, "id"): "guid",
    ("entries", 0, "guid"): "guid",
    ("entries", 0, "link"): "link",
    ("entries", 0, "published_parsed"): "published",
    ("entries", 0, "updated_parsed"): "updated",
    ("entries", 0, "description"): "text",
    ("entries", 0, "summary"): "text",
    ("entries", 0, "content", 0, "value"): "text",
    ("feed", "title"): "feed title",
}
_SUMMARY_SUBJECTS = frozenset({("entries", 0, "description"), ("entries", 0, "summary")})
# Elements feedparser reads as entry content; beside them a summary is not what our `text` holds.
_CONTENT_ELEMENT = re.compile(rb"<(?:[\w.-]+:)?(?:content|encoded|body|fullitem)[\s>/]", re.IGNORECASE)
_SKIP_UNLESS = re.compile(rb"^SkipUnless:\s*(.*?)\s*$", re.MULTILINE)
_NEEDS_CODEC = re.compile(r"__import__\('codecs'\)\.lookup\('([^']+)'\)")
_NEEDS_MODULE = re.compile(r"__import__\('(\w+)'\)$")


def runtests_skips(body: bytes) -> bool:
    """Whether runtests.py would skip this case here: its SkipUnless names a codec or module this Python lacks."""
    match = _SKIP_UNLESS.search(body)
    condition = match.group(1).decode("utf-8", "replace") if match else ""
    if codec := _NEEDS_CODEC.search(condition):
        try:
            codecs.lookup(codec.group(1))
        except LookupError:
            return True
    elif module := _NEEDS_MODULE.search(condition):
        return importlib.util.find_spec(module.group(1)) is None
    return False


@dataclass
class Agreement:
    """Tally of Expect claims on kept fields compared with our normalised values."""

    agreed: int = 0
    disagreed: list[str] = field(default_factory=list)
    not_comparable: dict[str, int] = field(default_factory=dict)

    @property
    def compared(self) -> int:
        return self.agreed + len(self.disagreed)

    def skip(self, reason: str) -> None:
        self.not_comparable[reason] = self.not_comparable.get(reason, 0) + 1


def _key_path(node: ast.expr) -> tuple[Any, ...] | None:
    """`entries[0]['summary']` as ('entries', 0, 'summary'), `feed.title` as ('feed', 'title')."""
    path: list[Any] = []
    while not isinstance(node, ast.Name):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            path.append(node.slice.value)
        elif isinstance(node, ast.Attribute):
            path.append(node.attr)
        else:
            return None
        node = node.value
    return (node.id, *reversed(path))


def kept_claims(expect: str) -> list[tuple[tuple[Any, ...], Any]]:
    """(subject, expected value) for each `SUBJECT == CONSTANT` on a kept field that the Expect line asserts outright.

    Only conjuncts of a top-level `and` count (anything under `or`/`not` is not asserted), only single `==`
    comparisons, and only a string constant (or, for dates, a tuple of ints).
    """
    try:
        tree = ast.parse(expect, mode="eval").body
    except SyntaxError:
        return []
    conjuncts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    claims: list[tuple[tuple[Any, ...], Any]] = []
    for node in conjuncts:
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
            continue
        subject = _key_path(node.left)
        if subject not in KEPT:
            continue
        try:
            value = ast.literal_eval(node.comparators[0])
        except ValueError:
            continue
        if isinstance(value, str) or (isinstance(value, tuple) and all(isinstance(v, int) for v in value)):
            claims.append((subject, value))
    return claims


def _ours(parsed: ParsedFeed | None, name: str) -> Any:
    if parsed is None:
        return None
    if name == "feed title":
        return parsed.title
    return getattr(parsed.entries[0], name) if parsed.entries else None


def compare_claims(
    claims: list[tuple[tuple[Any, ...], Any]], parsed: ParsedFeed | None, body: bytes, case: str, tally: Agreement
) -> None:
    """Tally each claim as agreed, disagreed or not comparable (with the reason) against our parse of `body`."""
    if claims and runtests_skips(body):
        # feedparser's own claim is untested without the codec (it falls back to another decoding), and so is ours.
        tally.skip("SkipUnless unmet here, as runtests.py skips it")
        return
    for subject, expected in claims:
        name = KEPT[subject]
        got = _ours(parsed, name)
        if isinstance(expected, tuple):
            year, month, day, hour, minute, second = expected[:6]
            agrees = got == datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        elif name in ("title", "text", "feed title"):
            # feedparser keeps markup, entities and layout whitespace; our text is plain. Its value does not say
            # whether it is markup (a text/plain title may hold "<b>"), so either reading of it may be ours.
            plain = {" ".join(expected.split()), html_to_text(expected)}
            agrees = got in plain
            if not agrees and got is None and not html_to_text(expected):
                tally.skip("entry with no text (markup only), dropped as empty by design")
                continue
            if not agrees and subject in _SUMMARY_SUBJECTS and _CONTENT_ELEMENT.search(body):
                tally.skip("summary beside content: our text is the content")
                continue
        else:
            agrees = got == expected
        if agrees:
            tally.agreed += 1
        else:
            tally.disagreed.append(f"{case}: {name} expected {expected!r}, got {got!r}")


def _served_as(path: Path, body: bytes) -> tuple[str | None, str | None]:
    """The Content-Type and document URL the corpus's own test server would serve this file with."""
    headers = {k.strip().lower().decode(): v.strip().decode() for k, v in HEADER.findall(body)}
    base = None
    if path.name.startswith("http"):
        base = urljoin(_CORPUS_SERVER + path.relative_to(CORPUS.parent).as_posix(), headers.get("content-location", ""))
    return headers.get("content-type"), base


def test_feedparser_corpus_never_crashes_and_agrees_on_kept_fields() -> None:
    """Every corpus document gives entries or a FeedError; Expect claims on kept fields hold in each directory."""
    assert CORPUS.is_dir(), f"feedparser corpus not found at {CORPUS} (expected beside the repo in shared/corpora)"
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(files) >= 2249, f"corpus looks incomplete: {len(files)} files under {CORPUS}"
    ok, errors, crashes = 0, 0, []
    tallies = {part: Agreement() for part in ("wellformed", "encoding", "entities", "illformed")}
    for path in files:
        body = path.read_bytes()
        content_type, base_url = _served_as(path, body)
        parsed: ParsedFeed | None = None
        try:
            parsed = parse_feed(body, feed=path.name, content_type=content_type, base_url=base_url)
            ok += 1
        except FeedError:
            errors += 1
        except Exception as exc:
            crashes.append(f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}")
        expect = EXPECT.search(body)
        tally = tallies.get(path.relative_to(CORPUS).parts[0])
        if tally is not None and expect:
            claims = kept_claims(expect.group(1).decode("utf-8", "replace"))
            compare_claims(claims, parsed, body, path.relative_to(CORPUS).as_posix(), tally)
    print(f"\ncorpus: {len(files)} documents, {ok} parsed, {errors} FeedError, {len(crashes)} crashed")
    for part, tally in tallies.items():
        print(f"{part} agreement: {tally.agreed}/{tally.compared} Expect claims on kept fields;"
              f" not comparable: {tally.not_comparable}")  # fmt: skip
        for line in tally.disagreed:
            print("  disagrees:", line)
    assert crashes == []
    for part in ("wellformed", "encoding", "entities"):
        tally = tallies[part]
        assert tally.compared >= 50, f"too few comparable {part} claims: the Expect parser no longer matches the corpus"
        assert tally.agreed / tally.compared >= 0.9, f"{part}: {tally.agreed}/{tally.compared} agree"


_BODY_SUBJECTS = frozenset({("entries", 0, "content", 0, "value"), *_SUMMARY_SUBJECTS})


def _body_is_markup(body: bytes, content_type: str | None, subjects: set[tuple[Any, ...]]) -> bool:
    """Whether feedparser reads the first entry's body (content, else summary) as markup, and the claims are on it."""
    headers = {"content-type": content_type} if content_type else None
    result = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not result.entries:
        return False
    entry = result.entries[0]
    content = dict.get(entry, "content")
    if content:
        detail = content[0]
        if subjects != {("entries", 0, "content", 0, "value")}:
            return False  # a claim on the summary beside content: not what our html holds
    else:
        detail = dict.get(entry, "summary_detail")
    return isinstance(detail, dict) and "html" in (detail.get("type") or "")


def test_feedparser_corpus_html_agrees_including_links_resolved_against_the_document() -> None:
    """Where the corpus states an entry body's markup (sanitised, links made absolute against the URL it was served
    from or its xml:base), our html is exactly that."""
    agreed, disagreed, resolved = 0, [], 0
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        body = path.read_bytes()
        expect = EXPECT.search(body)
        if not expect:
            continue
        claims = [(s, v) for s, v in kept_claims(expect.group(1).decode("utf-8", "replace"))
                  if s in _BODY_SUBJECTS and isinstance(v, str)]
        content_type, base_url = _served_as(path, body)
        if not claims or runtests_skips(body) or not _body_is_markup(body, content_type, {s for s, _ in claims}):
            continue
        try:
            entries = parse_feed(body, feed=path.name, content_type=content_type, base_url=base_url).entries
        except FeedError:
            continue
        if not entries:
            continue  # no title, text or id: dropped as empty by design
        for _, expected in claims:
            if entries[0].html == expected.strip():
                agreed += 1
                resolved += base_url is not None and base_url in expected
            else:
                disagreed.append(f"{path.relative_to(CORPUS)}: expected {expected!r}, got {entries[0].html!r}")
    print(f"\ncorpus html: {agreed} claims agree, {resolved} of them on links resolved against the document's URL")
    assert disagreed == []
    assert agreed >= 150, "too few comparable claims: the corpus or the claim filter changed"
    assert resolved >= 10, "too few claims on links resolved against the document's URL"
