"""Hostile documents, refused before feedparser reads them: XML bombs (billion laughs, quadratic blow-up, self-referring
and parameter entities), attribute floods, and feedparser's own cubic search for the declared encoding, replaced by a
linear one. What no check can foresee is bounded by `services.poller.parser_pool`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import feedparser.encodings
from feedparser.encodings import convert_to_utf8
from feedparser.sanitizer import replace_doctype

_SPACE = re.compile(r"\s+")


def one_line(text: str, limit: int) -> str:
    """`text` on one line, whitespace collapsed, cut to `limit` characters with an ellipsis."""
    line = _SPACE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


# What entities declared in a document's DTD may add to it, in characters. Feeds hardly use them ("&copy;" declared
# as "&#169;"); an XML bomb adds gigabytes (billion laughs: nested entities; quadratic blow-up: one long entity
# referenced many times), which feedparser's lenient parser would expand in full.
MAX_ENTITY_EXPANSION_CHARS = 1_000_000
MAX_DECLARATIONS = 10_000
# Attributes on one element: xml.sax looks each one up by a linear search, so an element with n costs n² (50,000
# attributes take a minute). Feeds use a handful.
MAX_ATTRIBUTES = 256

_LITERAL = rb"(?:\"[^\"]*+\"|'[^']*+')"
_PROLOG_MISC = re.compile(rb"(?:\s++|<\?(?:[^?]|\?(?!>))*+\?>|<!--(?:[^-]|-(?!->))*+-->)*+")
_DOCTYPE_OPEN = re.compile(rb"<!DOCTYPE\s++[^\s\[>]++(?:\s++(?:SYSTEM|PUBLIC)(?:\s*+" + _LITERAL + rb")++)?\s*+\[")
_SUBSET_SKIP = re.compile(rb"[^<\]]++")
_DECLARATION_PART = re.compile(rb"[\"'>]")
_ENTITY_DECLARATION = re.compile(
    rb"<!ENTITY\s++(%\s++)?([^\s\"'%>]++)\s++(?:(" + _LITERAL + rb")|((?:SYSTEM|PUBLIC)(?:\s*+" + _LITERAL + rb")++))"
)
_REFERENCE = re.compile(rb"&(#?)([^\s&;<>\"']++);")
_PREDEFINED = frozenset({b"lt", b"gt", b"amp", b"apos", b"quot"})
_MANY_ATTRIBUTES = re.compile(
    rb"<[^\s<>!?/]++(?:\s++[^\s=<>]++\s*+=\s*+(?:" + _LITERAL + rb"|[^\s<>\"']++)){%d}" % (MAX_ATTRIBUTES + 1)
)


class Refused(Exception):
    """A document refused before parsing; the message is the reason."""


def _declarations(data: bytes) -> tuple[list[bytes], int]:
    """The markup declarations (`<!…>`) of the DOCTYPE's internal subset, and where the subset ends.

    Only a subset that expat would read counts: one after nothing but the XML declaration, comments, processing
    instructions and whitespace. Every step moves forward by a search, so the scan is linear whatever the input.
    """
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    misc = _PROLOG_MISC.match(data, start)
    opened = _DOCTYPE_OPEN.match(data, misc.end() if misc else start)
    if opened is None:
        return [], 0
    found: list[bytes] = []
    at, size = opened.end(), len(data)
    while at < size and data[at] != 0x5D:  # "]" ends the subset
        if data.startswith(b"<!--", at) or data.startswith(b"<?", at):
            closing = b"-->" if data[at + 1] == 0x21 else b"?>"
            end = data.find(closing, at + 2)
            if end < 0:
                break  # never closed: expat stops here too
            at = end + len(closing)
        elif data.startswith(b"<!", at):
            # A declaration ends at the first ">" outside its quoted literals.
            cursor = at + 2
            while (part := _DECLARATION_PART.search(data, cursor)) is not None and part.group() != b">":
                close = data.find(part.group(), part.end())
                if close < 0:
                    return found, size
                cursor = close + 1
            if part is None:
                break
            found.append(data[at:part.end()])
            if len(found) > MAX_DECLARATIONS:
                raise Refused(f"refused: its DTD has more than {MAX_DECLARATIONS:,} declarations")
            at = part.end()
        else:
            skipped = _SUBSET_SKIP.match(data, at)
            at = skipped.end() if skipped else at + 1
    return found, at


def _name(raw: bytes) -> str:
    return one_line(raw.decode("utf-8", "replace"), 60)


def _expanded_lengths(values: dict[bytes, bytes]) -> dict[bytes, int]:
    """The length each internal entity expands to, nested references included, saturating past the limit.

    Raises:
        Refused: An entity refers to itself, directly or through others (not well-formed, and endless).
    """
    own: dict[bytes, int] = {}
    refs: dict[bytes, list[bytes]] = {}
    for name, value in values.items():
        own[name], refs[name] = len(value), []
        for reference in _REFERENCE.finditer(value):
            own[name] -= len(reference.group())
            if reference.group(1):
                own[name] += 1  # a character reference is one character
            else:
                refs[name].append(reference.group(2))
    lengths: dict[bytes, int] = {}
    for root in values:
        # Depth first without recursion (a chain of thousands would overflow the stack); `open_` holds the entities
        # whose expansion is under way, so meeting one of them again is a cycle.
        stack, open_ = [root], set[bytes]()
        while stack:
            name = stack[-1]
            if name in lengths:
                stack.pop()
            elif name not in open_:
                open_.add(name)
                for ref in refs[name]:
                    if ref in open_:
                        raise Refused(f"refused: entity {_name(ref)!r} in its DTD refers to itself")
                    if ref in values and ref not in lengths:
                        stack.append(ref)
            else:
                total = own[name] + sum(lengths.get(r, 1 if r in _PREDEFINED else 0) for r in refs[name])
                lengths[name] = min(total, MAX_ENTITY_EXPANSION_CHARS + 1)
                open_.discard(name)
                stack.pop()
    return lengths


def _check_expansion(data: bytes, start: int, lengths: dict[bytes, int]) -> None:
    """Refuse the document when its references to `lengths`' entities would add more than the limit."""
    if not lengths:
        return
    total = 0
    for ref in _REFERENCE.finditer(data, start):
        added = lengths.get(ref.group(2), 0) if not ref.group(1) else 0
        total += added
        if total > MAX_ENTITY_EXPANSION_CHARS:
            name = _name(ref.group(2))
            if added > MAX_ENTITY_EXPANSION_CHARS:
                raise Refused(f"refused as an XML bomb: entity {name!r} declared in its DTD expands to more than "
                               f"{MAX_ENTITY_EXPANSION_CHARS:,} characters")
            raise Refused(f"refused as an XML bomb: references to entities declared in its DTD would add more than "
                           f"{MAX_ENTITY_EXPANSION_CHARS:,} characters (entity {name!r} is {added:,} long)")


def screen(body: bytes, content_type: str | None, warn: Callable[[str], None]) -> None:
    """Refuse what would make feedparser's parsers blow up (XML bombs, attribute floods); note entities not loaded.

    The checks read the document exactly as both of feedparser's parsers will: converted to UTF-8 as feedparser
    converts it (an entity hidden in UTF-16 or UTF-7 is found) and with its DOCTYPE rewritten as feedparser rewrites
    it. The strict parser (expat) reads the internal subset left in the document; the lenient one expands the
    entities feedparser kept aside. External entities are never loaded (feedparser turns that off in expat).

    Raises:
        Refused: with the reason.
    """
    try:
        converted = convert_to_utf8({"content-type": content_type} if content_type else {}, body, {})
        _, data, lenient_entities = replace_doctype(converted)
    except Exception:
        # feedparser takes the same first steps on the same bytes and fails the same way, before it parses anything:
        # `_run_feedparser` reports it.
        return
    if _MANY_ATTRIBUTES.search(data):
        raise Refused(f"refused: an element has more than {MAX_ATTRIBUTES} attributes")
    declarations, subset_end = _declarations(data)
    internal: dict[bytes, bytes] = {}
    for declaration in declarations:
        entity = _ENTITY_DECLARATION.match(declaration)
        if entity is None:
            continue  # another kind of declaration (ELEMENT, ATTLIST, NOTATION), or one expat will reject
        parameter, name, value, external = entity.groups()
        label = f"%{_name(name)};" if parameter else repr(_name(name))
        if external is not None:
            warn(f"{'parameter ' if parameter else ''}entity {label} is external "
                         f"({one_line(external.decode('utf-8', 'replace'), 100)}): not loaded")
        elif parameter:
            # A parameter entity can declare further entities when referenced, out of sight of this check.
            raise Refused(f"refused: its DTD declares parameter entity {label}, which feeds have no use for")
        else:
            internal.setdefault(name, value[1:-1])  # the first declaration of a name is the one that counts
    _check_expansion(data, subset_end, _expanded_lengths(internal))
    lenient = {name.encode(): len(value) for name, value in lenient_entities.items()}
    _check_expansion(data, 0, lenient)


class _DeclaredEncoding:
    """What feedparser's `RE_XML_PI_ENCODING.match` finds (the encoding named in the XML declaration), found in
    linear time.

    feedparser matches `PATTERN` against the whole document; over a long first line with many `encoding="…"` and no
    `?>` after them it backtracks cubically (1,000 of them, 15 kB, take 4 s; an unclosed declaration before a
    one-line feed of 150 kB takes half a second, of 10 MB half an hour). The pattern chooses the last `encoding=` on
    the first line whose value is followed by a `?>`; so does this, by searching.
    """

    PATTERN = rb"""^<\?.*encoding=[\'"](.*?)[\'"].*\?>"""  # as feedparser 6.0 writes it
    _QUOTE = re.compile(rb"['\"]")

    @dataclass(frozen=True)
    class Found:
        value: bytes

        def groups(self) -> tuple[bytes]:
            return (self.value,)

    def match(self, data: bytes) -> Found | None:
        if not data.startswith(b"<?"):
            return None
        newline = data.find(b"\n")
        line = data if newline < 0 else data[:newline]  # "." does not match a newline
        last_close = line.rfind(b"?>")
        end = len(line)
        while (at := line.rfind(b"encoding=", 2, end)) >= 0:
            end = at + len(b"encoding=") - 1  # the next candidate starts before this one
            value = at + len(b"encoding=") + 1
            if line[value - 1:value] not in (b"'", b'"'):
                continue
            # The lazy group ends at the first quote; a later one cannot be followed by a "?>" this one is not.
            quote = self._QUOTE.search(line, value)
            if quote is not None and last_close >= quote.end():
                return self.Found(line[value:quote.start()])
        return None


if getattr(getattr(feedparser.encodings, "RE_XML_PI_ENCODING", None), "pattern", None) == _DeclaredEncoding.PATTERN:
    # Replaced only while it is the pattern above: a feedparser that changed it is left alone, and a test says so.
    feedparser.encodings.RE_XML_PI_ENCODING = _DeclaredEncoding()
