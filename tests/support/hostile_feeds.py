"""Hostile and pathological feed documents, built to a size the test chooses.

Each builder returns the bytes of a whole document; the entries in it that a parser should keep, where there are any,
are named in its docstring.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

FIRST_ENTRY_AT = datetime(2025, 10, 24, 9, 0, tzinfo=UTC)


def rss(items: str, *, prolog: str = "") -> bytes:
    """An RSS 2.0 document around `items` (markup), with `prolog` (a DOCTYPE, say) after the XML declaration."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}<rss version="2.0"><channel><title>Hostile</title>'
        f"{items}</channel></rss>"
    ).encode()


def item(guid: str, title: str = "title", text: str = "text", *, minute: int = 0, extra: str = "") -> str:
    """One RSS item published `minute` minutes after `FIRST_ENTRY_AT`; `title` and `text` are inserted as given
    (escape them if they are meant as text)."""
    published = format_datetime(FIRST_ENTRY_AT + timedelta(minutes=minute), usegmt=True)
    return (
        f"<item><guid>{guid}</guid><title>{title}</title><description>{text}</description>"
        f"<pubDate>{published}</pubDate>{extra}</item>"
    )


def billion_laughs(levels: int = 10, fanout: int = 10, *, one_line: bool = True) -> bytes:
    """Entities nested `levels` deep, each `fanout` references to the one below: `fanout ** levels` laughs.

    On one line the DOCTYPE passes feedparser's own DOCTYPE rewriting untouched and reaches expat as written.
    """
    joiner = "" if one_line else "\n"
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * fanout}">' for n in range(1, levels)
    ]
    prolog = f"{joiner}<!DOCTYPE rss [{joiner}{joiner.join(entities)}{joiner}]>{joiner}"
    return rss(item("bomb", f"&lol{levels - 1};"), prolog=prolog)


def quadratic_blowup(entity_chars: int, references: int, *, one_line: bool = False) -> bytes:
    """One entity of `entity_chars` characters, referenced `references` times: no nesting, just repetition.

    On separate lines (the default) feedparser's lenient parser keeps the entity and expands every reference.
    """
    joiner = "" if one_line else "\n"
    prolog = f'{joiner}<!DOCTYPE rss [{joiner}<!ENTITY a "{"A" * entity_chars}">{joiner}]>{joiner}'
    return rss(item("bomb", "quadratic", "&a;" * references), prolog=prolog)


def external_entity(system_id: str) -> bytes:
    """An external general entity used in a title (XXE). The entry 'xxe' is kept; the entity is never loaded."""
    prolog = f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{system_id}">]>'
    return rss(item("xxe", "before &xxe; after"), prolog=prolog)


def external_parameter_entity(system_id: str) -> bytes:
    """An external parameter entity referenced in the DTD, as the XHTML entity sets are. Entry 'pe' is kept."""
    prolog = f'<!DOCTYPE rss [<!ENTITY % remote SYSTEM "{system_id}"> %remote;]>'
    return rss(item("pe", "title"), prolog=prolog)


def external_dtd(system_id: str) -> bytes:
    """A DOCTYPE naming an external DTD, as RSS 0.91 feeds do. Entry 'dtd' is kept; the DTD is never fetched."""
    return rss(item("dtd", "title"), prolog=f'<!DOCTYPE rss SYSTEM "{system_id}">')


def internal_parameter_entity() -> bytes:
    """A parameter entity that declares a general entity when referenced, out of sight of a look at declarations."""
    prolog = "<!DOCTYPE rss [<!ENTITY % p \"<!ENTITY a 'hidden'>\"> %p;]>"
    return rss(item("pe", "&a;"), prolog=prolog)


def recursive_entities() -> bytes:
    """Two entities that refer to each other (not well-formed; endless if expanded)."""
    return rss(item("loop", "&a;"), prolog='<!DOCTYPE rss [<!ENTITY a "x&b;"><!ENTITY b "y&a;">]>')


def small_entities() -> bytes:
    """Legal, modest entities (nested once and a character reference): entry 'ok' titled 'AT&T © Walthamstow'."""
    prolog = '<!DOCTYPE rss [<!ENTITY copy "&#169;"><!ENTITY place "Walthamstow"><!ENTITY sign "&copy; &place;">]>'
    return rss(item("ok", "AT&amp;T &sign;"), prolog=prolog)


def many_entries(count: int) -> bytes:
    """`count` dated items g0 … g{count-1}, a minute apart in document order (the last is the newest)."""
    return rss("".join(item(f"g{n}", f"Entry {n}", f"Text of entry {n}.", minute=n) for n in range(count)))


def huge_title(chars: int) -> bytes:
    """One item 'big' whose title is `chars` characters of words."""
    words = ("word " * (chars // 5 + 1))[:chars]
    return rss(item("big", words, "short text"))


def invalid_utf8() -> bytes:
    """Declared UTF-8, with bytes that are not UTF-8 in a title: entry 'bad' kept, decoded another way."""
    return rss(item("bad", "MARK", "text")).replace(b"MARK", b"caf\xe9 \xff\xfe \xc3(")


def attribute_flood(attributes: int) -> bytes:
    """One element with `attributes` attributes (xml.sax looks each up by a linear search)."""
    flood = " ".join(f'a{n}="v"' for n in range(attributes))
    return rss(item("flood", extra=f"<x {flood}/>"))


def deep_nesting(depth: int) -> bytes:
    """An item holding elements nested `depth` deep."""
    return rss(item("deep", extra="<x>" * depth + "</x>" * depth))


def unclosed_comment_markup(repeats: int) -> bytes:
    """Escaped markup holding '<!--' `repeats` times and no end: feedparser's sanitiser rescans it from each one."""
    return rss(item("comment", "title", html.escape("<p>text</p>" + "<!--" * repeats)))


def long_style_markup(chars: int) -> bytes:
    """Escaped markup with a style attribute of `chars` letters and no colon (feedparser checks it with a regex
    that backtracks over the whole value from each position)."""
    return rss(item("style", "title", html.escape(f"<p style='{'a' * chars}'>text</p>")))


def long_author(labels: int) -> bytes:
    """An author almost an e-mail address, 'a@' + 'a.' * labels + '!' (feedparser matches it with a regex that
    backtracks quadratically)."""
    return rss(item("author", extra=f"<author>a@{'a.' * labels}!</author>"))


def reencoded(document: bytes, encoding: str) -> bytes:
    """`document` (UTF-8, declared so) declared and encoded in `encoding` instead."""
    text = document.decode().replace('encoding="utf-8"', f'encoding="{encoding}"', 1)
    return text.encode(encoding)


def utf7_hidden(document: bytes) -> bytes:
    """`document` declared UTF-7, everything after the declaration in UTF-7's base64 form: no markup is visible in
    the bytes until they are decoded."""
    head, _, rest = document.decode().replace('encoding="utf-8"', 'encoding="utf-7"', 1).partition("?>")
    return f"{head}?>+".encode() + base64.b64encode(rest.encode("utf-16-be")).rstrip(b"=") + b"-"


def laughs_after(declarations: str) -> bytes:
    """Billion laughs in an internal subset that begins with `declarations` (a comment, say, or an entity whose
    value looks like the end of the subset)."""
    entities = "".join(['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)])
    return rss(item("bomb", "&lol9;"), prolog=f"<!DOCTYPE rss [{declarations}{entities}]>")
