"""The dedup stage: one verdict per distinct text, repeats dropped, copies called duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.typing import StreamRangeResponse

from schemas import Authority, FeedEntry, RawUpdate, Update, Verdict
from services.dedup import Seen, Version, judge, process
from services.identity import content_fingerprint, entry_identity
from services.names import Keys
from services.wire import entry_data

# A version fetched long before the ones the tests judge.
OLD = Version("old", 0)
AGENCY_TEXT = " ".join(["Armed officers were called to an address in Walthamstow on Friday morning."] * 6)


def raw(source: str, guid: str, title: str, text: str) -> RawUpdate:
    entry = FeedEntry(guid=guid, title=title, text=text, published=datetime(2025, 10, 24, 9, tzinfo=UTC))
    return RawUpdate(
        source_id=source, authority=Authority.news, feed_url=f"https://{source}.example.org/rss", entry=entry,
        identity=entry_identity(source, entry), fingerprint=content_fingerprint(entry),
        fetched_at=datetime(2025, 10, 24, 9, 5, tzinfo=UTC),
    )


class TestJudge:
    def test_unseen_entry_is_new(self) -> None:
        """Nothing seen before: verdict new."""
        update = judge(raw("a", "1", "t", "x"), Seen(None, None))
        assert update is not None
        assert update.verdict is Verdict.new

    def test_same_fingerprint_is_a_repeat(self) -> None:
        """Same identity, same content: dropped (None)."""
        first = raw("a", "1", "t", "x")
        assert judge(first, Seen(Version(first.fingerprint, 0))) is None

    def test_new_fingerprint_is_a_revision(self) -> None:
        """Same identity, new content: revision, pointing at the version it replaces."""
        update = judge(raw("a", "1", "t", "y"), Seen(OLD))
        assert update is not None
        assert (update.verdict, update.previous_fingerprint) == (Verdict.revision, "old")

    def test_undated_edit_dates_from_when_it_was_seen(self) -> None:
        """A revision whose entry kept its old dates is evidence from its fetch time, so it can outrank the old one."""
        edited = raw("a", "1", "t", "y")
        update = judge(edited, Seen(OLD))
        assert update is not None
        assert update.reported_at == edited.fetched_at > edited.entry.published  # type: ignore[operator]

    def test_dated_edit_keeps_its_updated_time(self) -> None:
        """A revision that says when it was updated keeps that time."""
        edited = raw("a", "1", "t", "y")
        stamped = edited.model_copy(update={"entry": edited.entry.model_copy(
            update={"updated": datetime(2025, 10, 24, 9, 3, tzinfo=UTC)})})
        update = judge(stamped, Seen(OLD))
        assert update is not None
        assert update.reported_at == datetime(2025, 10, 24, 9, 3, tzinfo=UTC)

    def test_a_version_fetched_before_the_current_one_is_stale(self) -> None:
        """An older version arriving after a newer one (a retry, a second worker) tells nothing."""
        late = raw("a", "1", "t", "the old text")
        newer = Version("newer", int(late.fetched_at.timestamp() * 1000) + 60_000)
        assert judge(late, Seen(newer)) is None

    def test_a_version_seen_before_is_a_repeat_even_when_replaced(self) -> None:
        """A server alternating old and new documents does not make the old text a revision again."""
        old = raw("a", "1", "t", "the old text")
        assert judge(old, Seen(Version("newer", 0), known=True)) is None

    def test_known_story_from_another_entry_is_a_duplicate(self) -> None:
        """The same text under another identity is a duplicate of the first."""
        update = judge(raw("b", "9", "t", "x"), Seen(None, "u_first|a|1"))
        assert update is not None
        assert (update.verdict, update.duplicate_of) == (Verdict.duplicate, "u_first")


def _published(rows: StreamRangeResponse | None) -> list[Update]:
    return [Update.model_validate_json(data) for _, data in entry_data(rows)]


@pytest.mark.redis
async def test_verdicts_on_a_real_server(redis: Redis, key_prefix: str) -> None:
    """new, exact repeat dropped, syndicated copy duplicate, edit revision; only three entries published."""
    keys = Keys(key_prefix)
    original = raw("echo", "e1", "Man shot by police in Walthamstow", AGENCY_TEXT)
    copy = raw("wire", "w7", "Police shoot man in east London", AGENCY_TEXT)
    edited = raw("echo", "e1", original.entry.title, AGENCY_TEXT + " He is now in a stable condition.")
    verdicts = [await process(redis, keys, item) for item in (original, original, copy, edited)]
    assert [v.verdict if v else None for v in verdicts] == [Verdict.new, None, Verdict.duplicate, Verdict.revision]
    published = _published(await redis.xrange(keys.updates))
    assert [u.update_id for u in published] == [v.update_id for v in verdicts if v]
    assert published[1].duplicate_of == published[0].update_id


@pytest.mark.redis
async def test_old_version_processed_after_new_tells_nothing(redis: Redis, key_prefix: str) -> None:
    """v2 then a late v1 of one entry: v1 is neither a revision nor published, so the state cannot go back."""
    keys = Keys(key_prefix)
    v1 = raw("echo", "e1", "Man shot", "He is in a critical condition.")
    v2 = raw("echo", "e1", "Man shot", "His condition is not life-threatening.")
    v2 = v2.model_copy(update={"fetched_at": v1.fetched_at + timedelta(minutes=5)})
    assert [await process(redis, keys, item) is not None for item in (v2, v1, v2)] == [True, False, False]
    assert await redis.xlen(keys.updates) == 1


@pytest.mark.redis
async def test_racing_copies_get_one_new_verdict(redis: Redis, key_prefix: str) -> None:
    """Concurrent judges of two copies of one text never both say `new`."""
    import asyncio

    keys = Keys(key_prefix)
    copies = [raw(f"outlet{n}", f"g{n}", f"title {n}", AGENCY_TEXT) for n in range(6)]
    results = await asyncio.gather(*(process(redis, keys, c) for c in copies))
    assert sorted(r.verdict.value for r in results if r) == ["duplicate"] * 5 + ["new"]
