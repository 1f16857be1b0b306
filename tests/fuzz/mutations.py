"""Mutated feed documents for fuzzing the parse boundary: documents of the feedparser corpus with bytes flipped,
dropped or inserted, XML and HTML tokens spliced in, pieces repeated many times, and the end cut off.

The tokens are the constructs parsers handle specially (DTDs and entities, CDATA, comments, encodings, markup that
feedparser sanitises); repetition is how quadratic paths show, so a piece may be repeated into a document of up to
`MAX_DOCUMENT_BYTES`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "feedparser-tests" / "tests"
MAX_DOCUMENT_BYTES = 64 * 1024

TOKENS: tuple[bytes, ...] = (
    b'<?xml version="1.0" encoding="utf-8"?>', b'<?xml version="1.0" encoding="utf-16"?>',
    b'<?xml version="1.0" encoding="utf-7"?>', b'<?xml version="1.0" encoding="iso-8859-1"?>',
    b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80",
    b"<!DOCTYPE rss [", b"]>", b'<!ENTITY a "AAAA">', b'<!ENTITY b "&a;&a;&a;">', b'<!ENTITY % p "x">', b"%p;",
    b'<!ENTITY x SYSTEM "file:///etc/passwd">', b"&a;", b"&b;", b"&x;", b"&amp;", b"&#0;", b"&#xD800;", b"&#x110000;",
    b"&nbsp;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi x?>", b"<!", b"<?",
    b'<rss version="2.0">', b"<channel>", b"</channel>", b"<item>", b"</item>", b'<feed xmlns="http://www.w3.org/2005/Atom">',
    b"<entry>", b"</entry>", b"<title>", b"</title>", b'<title type="html">', b'<content type="xhtml">',
    b"<description>", b"</description>", b"<guid>", b"<link>", b"<pubDate>", b"<updated>", b"<author>a@a.a.a",
    b'xml:base="../"', b'xmlns:x="urn:x"', b' a="1"', b'href="javascript:alert(1)"',
    b"&lt;p style='a:b'&gt;", b"&lt;!--", b"&lt;script&gt;", b"&lt;a href=&quot;/x&quot;&gt;", b"&lt;/",
    b"Fri, 31 Feb 2025 25:61:00 +9999", b"2025-13-45T99:99:99Z", b"99999999999999999999",
)


@functools.cache
def corpus_documents() -> tuple[Path, ...]:
    """Every document of the feedparser corpus, sorted (the order of examples must not depend on the file system)."""
    return tuple(sorted(path for path in CORPUS.rglob("*") if path.is_file() and path.name != "runtests.py"))


@functools.cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A corpus document with one to eight mutations."""
    document = bytearray(_read(draw(st.sampled_from(corpus_documents()))))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(document)))
        kind = draw(st.sampled_from(["flip", "drop", "insert", "token", "repeat", "cut"]))
        if kind == "flip" and at < len(document):
            document[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "drop":
            del document[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            document[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "token":
            document[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "repeat":
            piece = bytes(document[at:at + draw(st.integers(1, 32))]) or draw(st.sampled_from(TOKENS))
            times = draw(st.integers(2, MAX_DOCUMENT_BYTES // len(piece)))
            document[at:at] = piece * times
        elif kind == "cut":
            del document[at:]
        del document[MAX_DOCUMENT_BYTES:]
    return bytes(document)
