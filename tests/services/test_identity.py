"""Entry identity and content version (design §2.1–2.2), and the signs that a feed's GUIDs cannot be trusted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import FeedEntry
from services.identity import (
    SHARED,
    canonical_link,
    content_fingerprint,
    entry_identity,
    guid_trouble,
    name_entries,
    normalise_text,
)

ARTICLE = "https://example.org/news/story"

# (link as served, its canonical form). Every case folds to the form on the right, and that form is a fixed point.
CANONICAL = [
    ("https://www.Example.org/news/story/", ARTICLE, "case-www-slash"),
    ("http://example.org/news/story", ARTICLE, "http-is-https"),
    ("https://example.org:443/news/story", ARTICLE, "default-port"),
    ("https://example.org:8443/news/story", "https://example.org:8443/news/story", "other-port-kept"),
    ("https://example.org//news//story", ARTICLE, "double-slashes"),
    ("https://example.org/news/story#comments", ARTICLE, "fragment"),
    ("https://example.org/a?utm_source=x&id=3#top", "https://example.org/a?id=3", "utm-and-fragment"),
    ("https://example.org/a?fbclid=1&b=2&a=1", "https://example.org/a?a=1&b=2", "fbclid-and-order"),
    # AMP variants of one article
    ("https://example.org/news/story/amp", ARTICLE, "amp-suffix"),
    ("https://example.org/news/story/amp/", ARTICLE, "amp-suffix-slash"),
    ("https://www.example.org/amp/news/story", ARTICLE, "amp-leading-segment"),
    ("https://www.bbc.co.uk/news/amp/uk-123", "https://bbc.co.uk/news/uk-123", "amp-middle-segment"),
    ("https://example.org/news/story.amp", ARTICLE, "dot-amp"),
    ("https://example.org/news/story.amp.html", "https://example.org/news/story.html", "dot-amp-html"),
    ("https://amp.example.org/news/story", ARTICLE, "amp-dot-host"),
    ("https://amp-example.org/news/story", ARTICLE, "amp-dash-host"),
    ("https://example.org/news/story?amp", ARTICLE, "amp-flag"),
    ("https://example.org/news/story?amp=1", ARTICLE, "amp-one"),
    ("https://example.org/news/story?outputType=amp", ARTICLE, "output-type-amp"),
    ("https://www-example-org.cdn.ampproject.org/c/s/www.example.org/news/story", ARTICLE, "amp-cache"),
    ("https://cdn.ampproject.org/v/s/example.org/news/story/amp?amp_js_v=0.1&usqp=mq331AQ", ARTICLE, "amp-viewer-url"),
    ("https://example-org.cdn.ampproject.org/c/example.org/a?p=7", "https://example.org/a?p=7", "amp-cache-http-query"),
    ("https://www.google.com/amp/s/www.example.org/news/story/amp/", ARTICLE, "google-amp-viewer"),
    # tracking parameters; the rest of the query stays
    ("https://example.org/a?id=3&mc_cid=ab12&mc_eid=cd34", "https://example.org/a?id=3", "mailchimp"),
    ("https://example.org/a?id=3&_ga=2.1.2&_gl=1*x", "https://example.org/a?id=3", "google-analytics-linker"),
    ("https://example.org/a?id=3&gclid=x&gbraid=y&wbraid=z", "https://example.org/a?id=3", "google-ads"),
    ("https://example.org/a?id=3&CMP=share_btn_tw", "https://example.org/a?id=3", "guardian-cmp"),
    ("https://example.org/a?id=3&cmp=rss", "https://example.org/a?id=3", "cmp-lower"),
    ("https://example.org/a?id=3&s_cid=rss:feed", "https://example.org/a?id=3", "adobe-s-cid"),
    ("https://example.org/a?id=3&smid=tw-nytimes&smtyp=cur", "https://example.org/a?id=3", "nyt-smid"),
    ("https://example.org/a?id=3&xtor=RSS-3208", "https://example.org/a?id=3", "xiti-xtor"),
    ("https://example.org/a?id=3&ns_mchannel=rss&ns_source=x", "https://example.org/a?id=3", "comscore"),
    ("https://example.org/a?id=3&WT.mc_id=rss", "https://example.org/a?id=3", "webtrends"),
    ("https://example.org/a?id=3&pk_campaign=rss", "https://example.org/a?id=3", "matomo"),
    ("https://example.org/a?id=3&fb_action_ids=1&igshid=2", "https://example.org/a?id=3", "facebook-instagram"),
    ("https://example.org/a?id=3&ncid=rss&ocid=msn", "https://example.org/a?id=3", "yahoo-msn"),
    ("https://example.org/a?id=3&ref_src=twsrc%5Etfw", "https://example.org/a?id=3", "twitter-ref-src"),
    ("https://example.org/a?id=3&ref=rss", "https://example.org/a?id=3", "ref-rss"),
    ("https://example.org/a?id=3&ref=rss_feed", "https://example.org/a?id=3", "ref-rss-word"),
    ("https://example.org/a?id=3&ref=hn", "https://example.org/a?id=3", "ref-hn"),
    ("https://example.org/a?id=3&share=twitter", "https://example.org/a?id=3", "share-channel"),
    ("https://example.org/a?id=3&share=1", "https://example.org/a?id=3", "share-flag"),
    ("https://example.org/a?id=3&rss=1", "https://example.org/a?id=3", "rss-flag"),
    # kept: parameters that may name a page or a version of it
    ("https://example.org/a?ref=main", "https://example.org/a?ref=main", "ref-kept-when-not-a-channel"),
    ("https://example.org/a?ref=12345", "https://example.org/a?ref=12345", "ref-number-kept"),
    ("https://example.org/a?share=9f8e7d6c", "https://example.org/a?share=9f8e7d6c", "share-token-kept"),
    ("https://example.org/a?rss=sport", "https://example.org/a?rss=sport", "rss-value-kept"),
    ("https://example.org/a?outputType=print", "https://example.org/a?outputType=print", "output-type-kept"),
    ("https://example.org/?p=123", "https://example.org/?p=123", "wordpress-p-kept"),
    ("https://amp.dev/documentation", "https://amp.dev/documentation", "amp-is-the-domain"),
    ("https://example.org/amp-stories/x", "https://example.org/amp-stories/x", "amp-word-in-segment"),
    ("https://example.org/news/camp.html", "https://example.org/news/camp.html", "amp-inside-a-word"),
    ("https://example.org/a?cid=7", "https://example.org/a?cid=7", "cid-kept"),
]


@pytest.mark.parametrize(("link", "canonical"), [c[:2] for c in CANONICAL], ids=[c[2] for c in CANONICAL])
def test_canonical_link(link: str, canonical: str) -> None:
    """Each variant of a page folds to one canonical form (tracking, case, www, slash, port, AMP), which is stable."""
    assert canonical_link(link) == canonical
    assert canonical_link(canonical) == canonical


DIFFERENT = [
    ("https://example.org/?p=123", "https://example.org/?p=124", "wordpress-post-ids"),
    ("https://example.org/a?id=3", "https://example.org/a?id=4", "article-ids"),
    ("https://example.org/view?story=10", "https://example.org/view?story=11", "story-ids"),
    ("https://example.org/view?story=10", "https://example.org/view", "story-id-and-none"),
    ("https://example.org/a", "https://example.org/b", "paths"),
    ("https://example.org/a?ref=main", "https://example.org/a?ref=dev", "ref-branches"),
    ("https://example.org/a?ref=main", "https://example.org/a", "ref-value-and-none"),
    ("https://example.org/news/story", "https://example.org/news/story-amp", "amp-suffixed-slug"),
    ("https://example.org/a", "https://other.example.org/a", "hosts"),
]


@pytest.mark.parametrize(("a", "b"), [c[:2] for c in DIFFERENT], ids=[c[2] for c in DIFFERENT])
def test_different_pages_stay_different(a: str, b: str) -> None:
    """A query parameter or path that names another page keeps links apart."""
    assert canonical_link(a) != canonical_link(b)


def test_a_garbled_link_names_itself() -> None:
    """A link urllib cannot split is kept as served rather than failing the whole document."""
    assert canonical_link(" http://[::1/a ") == "http://[::1/a"


def test_identity_prefers_guid_then_link_then_title() -> None:
    """GUID wins; without it the canonical link; without both a title hash."""
    assert entry_identity("s", FeedEntry(guid="g1", link="https://x.org/a")) == "s|g1"
    assert entry_identity("s", FeedEntry(link="https://www.x.org/a/?utm_medium=rss")) == "s|https://x.org/a"
    assert entry_identity("s", FeedEntry(title="Man shot")).startswith("s|title:")


def test_identity_in_a_feed_with_unreliable_guids_prefers_the_link() -> None:
    """With unreliable GUIDs the canonical link comes first; an entry without a link keeps its GUID."""
    linked = FeedEntry(guid="g1", link="https://x.org/a/amp/")
    assert entry_identity("s", linked, guid_reliable=False) == "s|https://x.org/a"
    assert entry_identity("s", FeedEntry(guid="g1"), guid_reliable=False) == "s|g1"
    assert entry_identity("s", FeedEntry(title="Man shot"), guid_reliable=False).startswith("s|title:")


def test_fingerprint_ignores_cosmetics_but_not_content() -> None:
    """Whitespace, case and quote style do not make a new version; a changed word does."""
    base = FeedEntry(title="Man shot", text="He is in a ‘critical’ condition.")
    same = FeedEntry(title="man  shot ", text="He is in a 'critical'   condition.")
    edited = FeedEntry(title="Man shot", text="He is in a stable condition.")
    assert content_fingerprint(base) == content_fingerprint(same)
    assert content_fingerprint(base) != content_fingerprint(edited)


def item(guid: str | None, link: str | None = None, title: str = "Man shot") -> FeedEntry:
    return FeedEntry(guid=guid, link=link, title=title)


A, B, C = "https://x.org/a", "https://x.org/b", "https://x.org/c"

TROUBLE = [
    # (entries, link index, GUIDs published before, expected reason prefix or None)
    ([item("g1", A), item("g2", B)], {}, set(), None, "first-document"),
    ([item("g1", A), item("g2", B)], {A: "g1", B: "g2"}, {"g1", "g2"}, None, "stable"),
    ([item("g1", A), item("g1", A + "?utm_source=rss")], {}, set(), None, "repeat-same-link"),
    ([item("g1", A), item("g1", B)], {}, set(), "duplicate", "one-guid-two-links"),
    ([item("g1", title="Man shot"), item("g1", title="Fire")], {}, set(), "duplicate", "one-guid-two-titles"),
    ([item("g1", title="Man shot"), item("g1", title="man  shot")], {}, set(), None, "one-guid-same-title"),
    ([item("g1-stable", A)], {A: "g1-critical"}, set(), "changed", "guid-changed-with-edit"),
    ([item("g2", A), item("g1", A)], {A: "g1"}, set(), None, "shared-link-old-guid-still-shown"),
    ([item("g2", A), item("g3", A)], {A: "g1"}, set(), None, "shared-link-in-document"),
    ([item("g2", A)], {A: "g1"}, {"g2"}, None, "guid-known-before"),
    ([item("g2", B)], {A: "g1"}, set(), None, "new-entry-new-link"),
    ([item(None, A)], {A: "g1"}, set(), None, "guid-dropped"),
    ([item("g3", A)], {A: SHARED}, set(), None, "link-shared-before"),
]


@pytest.mark.parametrize(
    ("entries", "links", "known", "reason"), [t[:4] for t in TROUBLE], ids=[t[4] for t in TROUBLE]
)
def test_guid_trouble(entries: list[FeedEntry], links: dict[str, str], known: set[str], reason: str | None) -> None:
    """A GUID naming two entries, or one that changes with an edit, makes a feed's GUIDs unreliable; nothing else."""
    found = guid_trouble(entries, links, known)
    assert (found.split(":", 1)[0] if found else None) == reason


def test_reliable_naming_remembers_each_link_with_its_guid() -> None:
    """With reliable GUIDs entries are their GUIDs, and links one GUID carries are remembered with it."""
    naming = name_entries([item("g1", A), item("g2", B), item("g3", B), item(None, C)], guid_reliable=True, links={})
    assert naming.names == ["g1", "g2", "g3", C]
    assert naming.links == {A: "g1", B: SHARED}, "a link two GUIDs share is remembered as shared"
    again = name_entries([item("g4", B)], guid_reliable=True, links=naming.links)
    assert again.links == {B: SHARED}, "once shared, always shared"


def test_unreliable_naming_pins_what_was_published_and_names_the_rest_by_link() -> None:
    """After the switch an entry keeps the GUID it was published under; new ones are their links; a shared link keeps
    the GUIDs apart; an entry without a link keeps its GUID; the index keeps pins and shared links, nothing new."""
    d = "https://x.org/d"
    entries = [item("g1-edited", A + "?utm_source=rss"), item("g9", B), item("g5", C), item("g6", C), item("g7"),
               item("g8", d)]
    naming = name_entries(entries, guid_reliable=False, links={A: "g1", d: SHARED})
    assert naming.names == ["g1", B, "g5", "g6", "g7", "g8"]
    assert naming.links == {A: "g1", C: SHARED, d: SHARED}


def test_a_pin_two_links_claim_is_ignored() -> None:
    """A GUID the index holds for two links of one document would merge them: both are named by their links."""
    naming = name_entries([item("g1", A), item("g1", B)], guid_reliable=False, links={A: "g1", B: "g1"})
    assert naming.names == [A, B]
    assert naming.links == {}


@given(st.text(alphabet=st.sampled_from("aÉ1 \t\n\u00a0\u2003\u2019-."), max_size=40) | st.text(max_size=40))
def test_normalised_text_has_single_spaces_between_words_and_none_around(text: str) -> None:
    """What callers count words by (a story key's length check counts spaces)."""
    normalised = normalise_text(text)
    assert normalised == " ".join(normalised.split())
    assert normalised.split(" ") == (normalised.split() or [""])
