"""The parse boundary (design §7.3): feed bytes in, normalised `FeedEntry` values out.

Every foreign format (RSS 0.9x/2.0, RSS 1.0/RDF, Atom 0.3/1.0, CDF) is read here with feedparser, and nothing
feedparser builds leaves this module: callers see `ParsedFeed` and `FeedEntry` only. Any bytes at all are accepted;
the only exception that leaves `parse_feed` is `FeedError`.

Hostile documents are refused before feedparser reads them (`services.poller.screen`: XML bombs, attribute floods);
what no check can foresee (feedparser's own quadratic paths) is bounded by parsing documents from the network in
parser processes with a CPU and memory limit each (`services.poller.parser_pool`).
"""

from __future__ import annotations

import calendar
import contextlib
import io
import re
import time
import xml.sax
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import feedparser.encodings
from feedparser.urls import RelativeURIResolver

from schemas import FeedEntry
from services.errors import FeedError
from services.poller.screen import Refused, one_line, screen

MAX_ENTRIES = 1_000
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 8 * MAX_TEXT_CHARS  # as much markup as the text is taken from; longer bodies keep only the text
MAX_REF_CHARS = 2_048  # guid and link: longer ones are garbage, and they end up in keys
MAX_WARNINGS = 50

_SPACE = re.compile(r"\s+")
# C0 controls other than whitespace, DEL, and lone surrogates (from numeric character references) cannot be written
# as UTF-8 or mean nothing in a title.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Up to the next ">" or "<": a "<" that never closes costs one step, not a scan to the end of the text.
_TAG = re.compile(r"<[^<>]*+>")
# An attribute feedparser's resolver rewrites, holding no scheme: a link that may still be relative. Markup without
# one is not run through the resolver again (a third of the parse time of a feed of links that are all absolute).
_RELATIVE_LINK = re.compile(
    r"\b(?:action|background|cite|classid|codebase|data|href|longdesc|poster|profile|src|usemap)\s*=\s*+[\"']?+"
    r"(?![a-z][a-z0-9+.-]*:)",
    re.IGNORECASE,
)
_SKIPPED_ELEMENTS = frozenset({"script", "style", "head", "title", "template"})
# Elements that end a line or a block when rendered; inline ones (b, em, a, span) must not split words or punctuation.
_BREAKING_ELEMENTS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section"}
    | {"table", "td", "th", "tr", "ul"}
)


@dataclass(frozen=True)
class ParsedFeed:
    """One feed document, normalised.

    Attributes:
        title: The feed's own title as plain text ("" when it has none).
        entries: Normalised entries in document order, at most `MAX_ENTRIES`.
        ttl_s: The RSS `<ttl>` hint converted to seconds, None when absent or unusable.
        warnings: One-line notes on what was wrong but tolerated (ill-formed XML, bad dates, truncation).
        update_period_s: The Syndication module's hint (`sy:updatePeriod` divided by `sy:updateFrequency`) in seconds,
            None when absent or unusable.
        hub_url: The WebSub hub the feed advertises (`<link rel="hub">`, Atom or `atom:link` in RSS), absolute.
        self_url: The feed's own URL as it states it (`<link rel="self">`), absolute; the WebSub topic.
    """

    title: str
    entries: list[FeedEntry]
    ttl_s: int | None
    warnings: list[str]
    update_period_s: int | None = None
    hub_url: str | None = None
    self_url: str | None = None


class _Warnings:
    """A bounded list of warnings: a hostile document must not grow memory through its complaints."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.dropped = 0

    def add(self, message: str) -> None:
        if len(self.items) < MAX_WARNINGS:
            self.items.append(one_line(message, 300))
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.items, f"{self.dropped} more warnings not shown"]
        return list(self.items)


class _TextExtractor(HTMLParser):
    """Collects the character data of an HTML fragment, with entities resolved by the standard parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self._skip_depth += 1
        # Block boundaries become spaces so "<p>one</p><p>two</p>" does not read "onetwo".
        if tag in _BREAKING_ELEMENTS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS and self._skip_depth:
            self._skip_depth -= 1
        if tag in _BREAKING_ELEMENTS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)

    @property
    def skipping(self) -> bool:
        """Inside an element whose content is not text (script, style …)."""
        return self._skip_depth > 0


def _clean(text: str) -> str:
    return _SPACE.sub(" ", _SURROGATE.sub("\ufffd", _UNPRINTABLE.sub("", text))).strip()


# What feed() leaves unread (markup never finished, such as an unclosed comment or tag, and everything after it) goes
# through close() up to this size, as the standard parser means it to. close() scans the rest again for every character
# it gives up on, which is quadratic ("<!--" repeated 80,000 times takes 40 s), so a longer remainder is stripped of
# tags crudely instead.
_MAX_UNFINISHED_CHARS = 4_096


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags removed, entities resolved, whitespace collapsed to single spaces."""
    extractor = _TextExtractor()
    try:
        extractor.feed(fragment)
        unfinished = extractor.rawdata
        if len(unfinished) <= _MAX_UNFINISHED_CHARS:
            extractor.close()
            text = "".join(extractor.parts)
        else:
            skipped = extractor.skipping
            text = "".join(extractor.parts) + ("" if skipped else " " + unescape(_TAG.sub(" ", unfinished)))
    except Exception:  # the stdlib parser still asserts on some malformed markup; a cruder strip is good enough
        text = unescape(_TAG.sub(" ", fragment))
    return _clean(text)


def _detail_text(value: Any, detail: Any, limit: int) -> tuple[str, bool]:
    """Plain text of a feedparser text construct, and whether it had to be cut to `limit` characters."""
    if not isinstance(value, str):
        return "", False
    kind = detail.get("type") if isinstance(detail, dict) else None
    # Bounding the input bounds the work; markup rarely outweighs text by more than this.
    raw = value[: limit * 8]
    text = html_to_text(raw) if isinstance(kind, str) and "html" in kind else _clean(raw)
    if len(text) > limit or len(raw) < len(value):
        return text[:limit], True
    return text, False


class _LinkResolver(RelativeURIResolver):  # type: ignore[misc]  # feedparser ships no type information
    """feedparser's own resolver of links in markup, except that an empty link stays empty.

    It runs after feedparser's sanitiser, which empties unsafe links (`javascript:`); resolved, those would become
    links to the feed itself.
    """

    def resolve_uri(self, uri: str) -> str:
        return str(super().resolve_uri(uri)) if uri.strip() else uri


def _detail_html(value: Any, detail: Any, base_url: str | None) -> tuple[str | None, bool]:
    """The markup of a feedparser text construct with links made absolute, and whether it was too long to keep.

    None for plain text. feedparser has already sanitised it and resolved links against an absolute `xml:base`; it
    is not given the document's URL because it would resolve GUIDs too (see `parse_feed`), so what is still relative
    is resolved here.
    """
    kind = detail.get("type") if isinstance(detail, dict) else None
    if not (isinstance(value, str) and isinstance(kind, str) and "html" in kind):
        return None, False
    if len(value) > MAX_HTML_CHARS:
        return None, True
    html = value
    if base_url and _RELATIVE_LINK.search(html):
        # feedparser's own base for this text: an absolute xml:base it has applied already, or a relative one it
        # could not apply without the document's URL.
        xml_base = detail.get("base")
        if isinstance(xml_base, str) and xml_base:
            with contextlib.suppress(ValueError):
                base_url = urljoin(base_url, xml_base)
        resolver = _LinkResolver(base_url, "utf-8", kind)
        try:
            resolver.feed(html)
            html = resolver.output()
        except Exception:  # feedparser's HTML processor on markup it already read once; as served beats nothing
            html = value
    return _SURROGATE.sub("\ufffd", _UNPRINTABLE.sub("", html)).strip() or None, False


def _ref(value: Any, base_url: str | None = None) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = _clean(value)
    if base_url and cleaned:
        # A link urljoin rejects (an unclosed IPv6 bracket, say) stays as written.
        with contextlib.suppress(ValueError):
            cleaned = urljoin(base_url, cleaned)
    return cleaned[:MAX_REF_CHARS] or None


def _as_utc(parsed: Any) -> datetime | None:
    """feedparser's `*_parsed` values are UTC `struct_time`s; anything else (or out of range) is None."""
    if not isinstance(parsed, tuple) or len(parsed) < 6:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in parsed[:6])
        # Leap seconds exist in feeds ("23:59:60"); datetime has no room for them.
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _entry_time(entry: dict[str, Any], key: str, label: str, warnings: _Warnings) -> datetime | None:
    # dict.get, not entry.get: FeedParserDict maps a missing `updated` to `published` with a DeprecationWarning.
    moment = _as_utc(dict.get(entry, f"{key}_parsed"))
    raw = dict.get(entry, key)
    if moment is None and isinstance(raw, str) and raw.strip():
        warnings.add(f"{label}: unparseable {key} date {one_line(raw, 60)!r}")
    return moment


def _sort_key(position: int, entry: dict[str, Any]) -> tuple[bool, float, int]:
    """Newest first: dated before undated, later before earlier, and earlier in the document before later."""
    for key in ("updated_parsed", "published_parsed"):
        parsed = dict.get(entry, key)
        if isinstance(parsed, time.struct_time):
            try:
                return True, float(calendar.timegm(parsed)), -position
            except (OverflowError, ValueError, TypeError):
                break
    return False, 0.0, -position


def _keep_newest(raw_entries: list[dict[str, Any]], warnings: _Warnings) -> list[dict[str, Any]]:
    if len(raw_entries) <= MAX_ENTRIES:
        return raw_entries
    ranked = sorted(range(len(raw_entries)), key=lambda i: _sort_key(i, raw_entries[i]), reverse=True)
    kept = sorted(ranked[:MAX_ENTRIES])
    warnings.add(f"{len(raw_entries)} entries, kept the newest {MAX_ENTRIES}")
    return [raw_entries[i] for i in kept]


def _entry(raw: dict[str, Any], label: str, base_url: str | None, warnings: _Warnings) -> FeedEntry:
    title, cut_title = _detail_text(dict.get(raw, "title"), dict.get(raw, "title_detail"), MAX_TITLE_CHARS)
    content = dict.get(raw, "content")
    first = content[0] if isinstance(content, list) and content and isinstance(content[0], dict) else None
    body: Any
    detail: Any
    if first is not None and isinstance(first.get("value"), str):
        body, detail = first["value"], first
    else:
        body, detail = dict.get(raw, "summary"), dict.get(raw, "summary_detail")
    text, cut_text = _detail_text(body, detail, MAX_TEXT_CHARS)
    html, dropped_html = _detail_html(body, detail, base_url)
    if cut_title or cut_text:
        warnings.add(f"{label}: {'title' if cut_title else 'text'} truncated")
    if dropped_html:
        warnings.add(f"{label}: markup longer than {MAX_HTML_CHARS} characters, only its text kept")
    return FeedEntry(
        guid=_ref(dict.get(raw, "id")),
        link=_ref(dict.get(raw, "link"), base_url),
        title=title,
        text=text,
        html=html,
        published=_entry_time(raw, "published", label, warnings),
        updated=_entry_time(raw, "updated", label, warnings),
    )


def _ttl_seconds(value: Any, warnings: _Warnings) -> int | None:
    if value is None:
        return None
    try:
        minutes = int(str(value).strip())
    except ValueError:
        minutes = -1
    if minutes < 0:
        warnings.add(f"unusable <ttl> {one_line(str(value), 40)!r}")
        return None
    return minutes * 60


# The Syndication module's periods (http://purl.org/rss/1.0/modules/syndication/); a month and a year are nominal.
_SY_PERIOD_S = {"hourly": 3_600, "daily": 86_400, "weekly": 604_800, "monthly": 2_592_000, "yearly": 31_536_000}


def _update_period_seconds(meta: dict[str, Any], warnings: _Warnings) -> int | None:
    """`sy:updatePeriod` / `sy:updateFrequency` in seconds; the spec's defaults are daily and 1 when one is missing."""
    period = dict.get(meta, "sy_updateperiod")
    frequency = dict.get(meta, "sy_updatefrequency")
    if period is None and frequency is None:
        return None
    period_text = str(period if period is not None else "daily").strip().lower()
    period_s = _SY_PERIOD_S.get(period_text)
    if period_s is None:
        warnings.add(f"unusable sy:updatePeriod {one_line(str(period), 40)!r}")
        return None
    try:
        times = int(str(frequency if frequency is not None else "1").strip())
    except ValueError:
        times = 0
    if times <= 0:
        warnings.add(f"unusable sy:updateFrequency {one_line(str(frequency), 40)!r}")
        return None
    # Sub-second intervals mean nothing to a poller; a frequency above the period's seconds still says "often".
    return max(1, period_s // times)


def _feed_link(meta: dict[str, Any], rel: str, base_url: str | None, warnings: _Warnings) -> str | None:
    """The first feed-level link with this rel, absolute; only http(s) is kept, since it is a URL we may request."""
    links = dict.get(meta, "links")
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        link_rel = link.get("rel")
        if not (isinstance(link_rel, str) and link_rel.strip().lower() == rel):
            continue
        url = _ref(link.get("href"), base_url)
        if url is None:
            continue
        if urlsplit(url).scheme.lower() in ("http", "https"):
            return url
        warnings.add(f"ignored rel={rel} link {one_line(url, 80)!r}: not an absolute http(s) URL")
    return None


def _describe(exc: Any) -> str:
    """One line for a feedparser `bozo_exception`."""
    if isinstance(exc, xml.sax.SAXParseException):
        return f"broken XML at line {exc.getLineNumber()}: {exc.getMessage()}"
    if isinstance(exc, BaseException):
        message = str(exc) or type(exc).__name__
        return one_line(f"{type(exc).__name__}: {message}" if type(exc).__name__ not in message else message, 200)
    return "ill-formed document"


def _sniff(body: bytes) -> str | None:
    """Why a body that yielded nothing is not a feed, when its first bytes make that plain."""
    if body[:2] == b"\x1f\x8b":
        return "not a feed: looks like gzip-compressed data"
    # UTF-16/32 documents interleave NULs with ASCII; dropping them is enough to recognise the markup.
    head = body[:2048].replace(b"\x00", b"").decode("latin-1").lstrip("\ufeff\xef\xbb\xbf\xfe\xff \t\r\n").lower()
    if not head:
        return "empty body"
    if head[0] in "{[":
        return "not a feed: looks like JSON"
    if "<html" in head or "<!doctype html" in head or "<body" in head:
        return "not a feed: looks like HTML"
    if head[0] != "<":
        return "not a feed: looks like plain text" if head[:200].isprintable() else "not a feed: binary data"
    return None


def _root_element(body: bytes) -> str | None:
    head = body[:4096].replace(b"\x00", b"").decode("latin-1")
    match = re.search(r"<([A-Za-z_][\w.:-]*)", re.sub(r"<[?!][^>]*>", "", head))
    return match.group(1) if match else None


def _not_a_feed(body: bytes, exc: Any) -> str:
    sniffed = _sniff(body)
    if sniffed is not None:
        return sniffed
    if isinstance(exc, xml.sax.SAXParseException):
        return _describe(exc)
    root = _root_element(body)
    return f"not a feed: XML root <{root}> is not RSS, Atom or RDF" if root else "not a feed: no RSS, Atom or RDF found"


OUT_OF_MEMORY = "ran out of memory while parsing"


def _run_feedparser(body: bytes, feed: str, content_type: str | None) -> Any:
    headers = {"content-type": content_type} if content_type else None
    try:
        # A stream, never the bytes: feedparser treats a bytes argument as a file name first and would open it.
        return feedparser.parse(io.BytesIO(body), response_headers=headers)
    except RecursionError:
        raise FeedError(feed, "document nested too deeply") from None
    except MemoryError:
        raise FeedError(feed, OUT_OF_MEMORY) from None
    except Exception as exc:  # a parser crash on one document is that feed's problem, not the poller's
        raise FeedError(feed, one_line(f"parser failed: {type(exc).__name__}: {exc}", 200)) from exc


def parse_feed(body: bytes, *, feed: str, content_type: str | None = None, base_url: str | None = None) -> ParsedFeed:
    """Parse one feed document into normalised entries.

    Args:
        body: The document exactly as served (any bytes at all).
        feed: Names the feed in errors (source id, URL or path).
        content_type: The HTTP Content-Type, when there was one; its charset takes part in encoding detection.
        base_url: The URL the document was served from (after redirects); relative entry links, and links in entry
            markup, are resolved against it. GUIDs are not: a GUID names the entry, and must not change when the feed
            moves (which is why feedparser itself is not told this URL: it resolves permalink GUIDs).

    Returns:
        The feed's title, at most `MAX_ENTRIES` entries (the newest, in document order), the `<ttl>` and
        `sy:updatePeriod` hints in seconds, the WebSub hub and self URLs (resolved against `base_url`), and warnings
        for whatever was wrong but tolerated: a document that is ill-formed but still yields entries is used, with the
        reason as a warning; a garbage date or hint becomes None plus a warning.

    Raises:
        FeedError: The body is not a usable feed (empty, HTML, JSON, text, broken XML with no entries, ...), with a
            one-line reason. Nothing else is raised for any input.
    """
    if not body.strip():
        raise FeedError(feed, "empty body")
    warnings = _Warnings()
    try:
        screen(body, content_type, warnings.add)
    except Refused as refused:
        raise FeedError(feed, str(refused)) from None
    result = _run_feedparser(body, feed, content_type)
    raw_entries = [e for e in dict.get(result, "entries") or [] if isinstance(e, dict)]
    version = dict.get(result, "version") or ""
    exc = dict.get(result, "bozo_exception") if dict.get(result, "bozo") else None
    meta = dict.get(result, "feed")
    meta = meta if isinstance(meta, dict) else {}
    if not raw_entries:
        if not version:
            raise FeedError(feed, _not_a_feed(body, exc))
        if isinstance(exc, xml.sax.SAXParseException) and not meta:
            # Ill-formed and nothing recovered, not even a channel title: broken before it said anything (a cut-off
            # body, say). An empty feed that parsed, or a sloppy one the lenient parser read, is not an error.
            raise FeedError(feed, _describe(exc))
    if exc is not None:
        warnings.add(_describe(exc))
    title, _ = _detail_text(dict.get(meta, "title"), dict.get(meta, "title_detail"), MAX_TITLE_CHARS)
    ttl_s = _ttl_seconds(dict.get(meta, "ttl"), warnings)
    update_period_s = _update_period_seconds(meta, warnings)
    hub_url = _feed_link(meta, "hub", base_url, warnings)
    self_url = _feed_link(meta, "self", base_url, warnings)
    kept = _keep_newest(raw_entries, warnings)
    normalised = [_entry(raw, f"entry {i + 1}", base_url, warnings) for i, raw in enumerate(kept)]
    # An entry with no field at all says nothing and cannot be told apart from another; it is noise, not news.
    entries = [e for e in normalised if e.guid or e.link or e.title or e.text or e.published or e.updated]
    if not entries and not version:
        # Stray <item>-like elements in some other XML document are not a feed either.
        raise FeedError(feed, _not_a_feed(body, exc))
    if len(entries) < len(normalised):
        warnings.add(f"{len(normalised) - len(entries)} empty entries dropped")
    return ParsedFeed(
        title=title,
        entries=entries,
        ttl_s=ttl_s,
        warnings=warnings.result(),
        update_period_s=update_period_s,
        hub_url=hub_url,
        self_url=self_url,
    )
