"""From parsed entries to the raw updates the poller publishes: content versions, HTML, the undated mark."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from redis.asyncio import Redis

from schemas import FeedSource, RawUpdate, Verdict
from schemas.generate import JSON_DIR
from services.dedup import process
from services.poller.diff import publish_changed, raw_updates
from services.poller.parse import parse_feed
from services.settings import Settings
from services.wire import DATA_FIELD, entry_data, entry_fields

SOURCE = FeedSource(id="met", name="Met", url="https://news.example/feeds/met.xml")
FETCHED = datetime(2025, 10, 24, 12, tzinfo=UTC)


def document(*items: tuple[str, str, str | None]) -> bytes:
    """An RSS document of (guid, escaped HTML description, RFC 822 pubDate or None) items."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>Man shot in Walthamstow</title><description>{html}</description>"
        + (f"<pubDate>{date}</pubDate>" if date else "")
        + "</item>"
        for guid, html, date in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Met</title>{body}</channel></rss>'.encode()


def updates(body: bytes, fetched_at: datetime = FETCHED) -> list[RawUpdate]:
    return raw_updates(SOURCE, parse_feed(body, feed=SOURCE.id, base_url=SOURCE.url).entries, fetched_at)


CRITICAL = "&lt;p&gt;He is in a &lt;b&gt;critical&lt;/b&gt; condition.&lt;/p&gt;"
# The same words with other markup and a link: a layout change, not news.
CRITICAL_RESTYLED = "&lt;div&gt;He is in a &lt;a href='/people/1'&gt;critical&lt;/a&gt; condition.&lt;/div&gt;"
STABLE = "&lt;p&gt;He is in a &lt;b&gt;stable&lt;/b&gt; condition.&lt;/p&gt;"


def test_an_entry_without_a_date_is_marked_and_dated_by_the_fetch() -> None:
    """An entry with no published or updated time is `undated` and reported at the fetch time, on the wire too."""
    dated, undated = updates(document(("g1", CRITICAL, "Fri, 24 Oct 2025 09:20:00 GMT"), ("g2", CRITICAL, None)))
    published = datetime(2025, 10, 24, 9, 20, tzinfo=UTC)
    assert (dated.entry.guid, dated.undated, dated.reported_at) == ("g1", False, published)
    assert (undated.entry.guid, undated.undated, undated.reported_at) == ("g2", True, FETCHED)
    wire = json.loads(entry_fields(undated)[DATA_FIELD])
    assert wire["undated"] is True
    jsonschema.validate(wire, json.loads((JSON_DIR / "RawUpdate.json").read_text()))
    assert RawUpdate.model_validate_json(entry_fields(undated)[DATA_FIELD]) == undated


def test_a_future_date_is_clamped_but_not_undated() -> None:
    """An entry dated after the fetch is reported at the fetch time, yet it has a date: it is not `undated`."""
    (future,) = updates(document(("g1", CRITICAL, "Fri, 24 Oct 2025 18:00:00 GMT")))
    assert (future.reported_at, future.undated) == (FETCHED, False)


def test_a_markup_only_edit_is_not_a_new_content_version() -> None:
    """Versions differing only in HTML share identity and fingerprint, each keeping its own HTML; new words do not."""
    (first,) = updates(document(("g1", CRITICAL, None)))
    (restyled,) = updates(document(("g1", CRITICAL_RESTYLED, None)))
    (edited,) = updates(document(("g1", STABLE, None)))
    assert first.entry.html == "<p>He is in a <b>critical</b> condition.</p>"
    link = '<a href="https://news.example/people/1">critical</a>'
    assert restyled.entry.html == f"<div>He is in a {link} condition.</div>"
    assert first.entry.text == restyled.entry.text == "He is in a critical condition."
    assert (restyled.identity, restyled.fingerprint) == (first.identity, first.fingerprint)
    assert edited.identity == first.identity
    assert edited.fingerprint != first.fingerprint


@pytest.mark.redis
async def test_markup_only_edit_is_neither_published_nor_judged_a_revision(redis: Redis, settings: Settings) -> None:
    """On a real Redis: a markup-only edit publishes nothing and dedup calls it a repeat; a text edit is a revision."""
    keys = settings.keys
    later = FETCHED + timedelta(minutes=5)
    (first,) = updates(document(("g1", CRITICAL, None)))
    assert await publish_changed(redis, keys, SOURCE.id, [first]) == [first]
    (restyled,) = updates(document(("g1", CRITICAL_RESTYLED, None)), later)
    assert await publish_changed(redis, keys, SOURCE.id, [restyled]) == []
    (edited,) = updates(document(("g1", STABLE, None)), later)
    assert await publish_changed(redis, keys, SOURCE.id, [edited]) == [edited]

    rows = await redis.xrange(keys.raw)
    on_the_wire = [RawUpdate.model_validate_json(data) for _, data in entry_data(rows)]
    assert [u.entry.html for u in on_the_wire] == [first.entry.html, edited.entry.html]
    assert all(u.undated for u in on_the_wire)

    new = await process(redis, keys, first)
    assert new is not None
    assert (new.verdict, new.reported_at) == (Verdict.new, FETCHED), "an undated entry dates from its fetch"
    assert await process(redis, keys, restyled) is None, "even sent to dedup, a markup-only edit is a repeat"
    revision = await process(redis, keys, edited)
    assert revision is not None
    assert (revision.verdict, revision.reported_at) == (Verdict.revision, later)


def linked_document(*items: tuple[str, str, str]) -> bytes:
    """An RSS document of (guid, title, link) items, each with its title as its text."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>{link}</link><description>{title}.</description></item>"
        for guid, title, link in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Met</title>{body}</channel></rss>'.encode()


STORY = "https://news.example/2025/10/24/man-shot-walthamstow"
OTHER = "https://news.example/2025/10/24/cadets-winter-intake"


@pytest.mark.redis
async def test_a_guid_that_changes_with_the_title_keeps_the_entry_one_entry(redis: Redis, settings: Settings) -> None:
    """On a real Redis: an edit that changes the GUID (same link) is a revision of the same identity, the feed is
    marked, and its later entries are named by their links."""
    keys = settings.keys
    later, latest = FETCHED + timedelta(minutes=5), FETCHED + timedelta(minutes=10)
    first = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("met-man-shot-critical", "Man shot, critical", STORY + "?utm_source=rss"),
        ("met-cadets", "Cadets wanted", OTHER),
    )))
    assert [u.identity for u in first] == ["met|met-cadets", "met|met-man-shot-critical"]
    assert not await redis.hexists(keys.feed_state(SOURCE.id), "guid_unreliable")

    (edited,) = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("met-man-shot-stable", "Man shot, now stable", STORY + "/amp/"),
        ("met-cadets", "Cadets wanted", OTHER),
    ), later))
    assert (edited.entry.guid, edited.identity) == ("met-man-shot-stable", "met|met-man-shot-critical")
    reason = await redis.hget(keys.feed_state(SOURCE.id), "guid_unreliable")
    assert isinstance(reason, bytes)
    assert reason.startswith(b"changed:")

    for raw in first:
        assert await process(redis, keys, raw) is not None
    revision = await process(redis, keys, edited)
    assert revision is not None
    assert revision.verdict == Verdict.revision

    third = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("met-man-shot-discharged", "Man shot, discharged", STORY),
        ("met-appeal", "Appeal for witnesses", "https://news.example/appeal?utm_medium=feed"),
        ("met-cadets", "Cadets wanted", OTHER),
    ), latest))
    assert {u.entry.guid: u.identity for u in third} == {
        "met-man-shot-discharged": "met|met-man-shot-critical",  # published before the switch: keeps its identity
        "met-appeal": "met|https://news.example/appeal",  # first seen after the switch: its link
    }


@pytest.mark.redis
async def test_duplicate_guids_in_one_document_mark_the_feed_and_later_entries_use_links(
    redis: Redis, settings: Settings
) -> None:
    """On a real Redis: one GUID for two entries in a document marks the feed; each entry is then its own identity
    (the one published under the GUID before keeps it), in that document and the ones after."""
    keys = settings.keys
    (only,) = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(("1", "Man shot", STORY))))
    assert only.identity == "met|1"

    (second,) = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("1", "Cadets wanted", OTHER), ("1", "Man shot", STORY)
    ), FETCHED + timedelta(minutes=5)))
    assert second.identity == f"met|{OTHER}", "the entry already published is not published again"
    reason = await redis.hget(keys.feed_state(SOURCE.id), "guid_unreliable")
    assert isinstance(reason, bytes)
    assert reason.startswith(b"duplicate:")

    (third,) = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("1", "Appeal for witnesses", "https://news.example/appeal"), ("1", "Cadets wanted", OTHER),
        ("1", "Man shot", STORY),
    ), FETCHED + timedelta(minutes=10)))
    assert third.identity == "met|https://news.example/appeal"


@pytest.mark.redis
async def test_a_feed_with_stable_guids_is_never_marked(redis: Redis, settings: Settings) -> None:
    """On a real Redis: new entries, edits and links that change their tracking keep GUID identities, unmarked."""
    keys = settings.keys
    await publish_changed(redis, keys, SOURCE.id, updates(linked_document(("g1", "Man shot", STORY))))
    published = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("g2", "Cadets wanted", OTHER), ("g1", "Man shot, now stable", STORY + "?utm_campaign=2")
    ), FETCHED + timedelta(minutes=5)))
    assert sorted(u.identity for u in published) == ["met|g1", "met|g2"]
    assert not await redis.hexists(keys.feed_state(SOURCE.id), "guid_unreliable")
    assert await redis.hgetall(keys.feed_links(SOURCE.id)) == {STORY.encode(): b"g1", OTHER.encode(): b"g2"}


@pytest.mark.redis
async def test_the_link_index_is_bounded(redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real Redis: the link index keeps links across documents (a push of one entry forgets nothing) and is cut
    back to the current document once it outgrows its bound."""
    monkeypatch.setattr("services.poller.diff.LINKS_KEPT", 4)
    keys = settings.keys
    for n in range(3):
        document_n = linked_document(*((f"g{n}{i}", f"Story {n}{i}", f"https://news.example/{n}/{i}") for i in (1, 2)))
        await publish_changed(redis, keys, SOURCE.id, updates(document_n, FETCHED + timedelta(minutes=n)))
        expected = {0: 2, 1: 4, 2: 2}[n]  # 6 fields would exceed the bound of 4: only the current document stays
        assert await redis.hlen(keys.feed_links(SOURCE.id)) == expected


@pytest.mark.redis
async def test_a_live_page_pushed_one_update_at_a_time_is_not_a_guid_change(redis: Redis, settings: Settings) -> None:
    """On a real Redis: updates that share a live page's link, the newest pushed alone by a hub, keep their GUIDs."""
    keys = settings.keys
    live = "https://news.example/live/walthamstow"
    await publish_changed(redis, keys, SOURCE.id, updates(linked_document(("live-1", "Police at scene", live))))
    await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("live-2", "Man taken to hospital", live), ("live-1", "Police at scene", live)
    ), FETCHED + timedelta(minutes=5)))
    (pushed,) = await publish_changed(redis, keys, SOURCE.id, updates(linked_document(
        ("live-3", "Cordon in place", live)
    ), FETCHED + timedelta(minutes=10)))
    assert pushed.identity == "met|live-3"
    assert not await redis.hexists(keys.feed_state(SOURCE.id), "guid_unreliable")
