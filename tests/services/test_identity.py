"""Entry identity and content version (design §2.1–2.2)."""

from __future__ import annotations

import pytest

from schemas import FeedEntry
from services.identity import canonical_link, content_fingerprint, entry_identity


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://www.Example.org/news/story/", "http://example.org/news/story"),
        ("https://example.org/a?utm_source=x&id=3#top", "https://example.org/a?id=3"),
        ("https://example.org/a?fbclid=1&b=2&a=1", "https://example.org/a?a=1&b=2"),
        ("https://example.org:443/a", "https://example.org/a"),
    ],
    ids=["case-www-slash-scheme", "utm-and-fragment", "fbclid-and-order", "default-port"],
)
def test_canonical_links_agree(a: str, b: str) -> None:
    """Links that differ only by tracking, case, www, slash or default port are one link."""
    assert canonical_link(a) == canonical_link(b)


def test_different_pages_stay_different() -> None:
    """A meaningful query parameter or path keeps links apart."""
    assert canonical_link("https://example.org/a?id=3") != canonical_link("https://example.org/a?id=4")
    assert canonical_link("https://example.org/a") != canonical_link("https://example.org/b")


def test_identity_prefers_guid_then_link_then_title() -> None:
    """GUID wins; without it the canonical link; without both a title hash."""
    assert entry_identity("s", FeedEntry(guid="g1", link="https://x.org/a")) == "s|g1"
    assert entry_identity("s", FeedEntry(link="https://www.x.org/a/?utm_medium=rss")) == "s|https://x.org/a"
    assert entry_identity("s", FeedEntry(title="Man shot")).startswith("s|title:")


def test_fingerprint_ignores_cosmetics_but_not_content() -> None:
    """Whitespace, case and quote style do not make a new version; a changed word does."""
    base = FeedEntry(title="Man shot", text="He is in a ‘critical’ condition.")
    same = FeedEntry(title="man  shot ", text="He is in a 'critical'   condition.")
    edited = FeedEntry(title="Man shot", text="He is in a stable condition.")
    assert content_fingerprint(base) == content_fingerprint(same)
    assert content_fingerprint(base) != content_fingerprint(edited)
