"""The dedup stage on a real server: near-copies across outlets, revisions explained, repeats counted, keys bounded
by the window, and the demo archive's verdicts."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from schemas import Authority, FeedEntry, RawUpdate, RevisionKind, Update, Verdict
from services.cli import DEMO_ARCHIVE
from services.cpu_limit import CPUTimeExceeded
from services.dedup import DedupPolicy, process
from services.dedup.stage import process_batch
from services.identity import content_fingerprint, entry_identity
from services.names import Keys
from services.replay import replay
from services.settings import Settings
from services.wire import DATA_FIELD, as_text, entry_data

pytestmark = pytest.mark.redis

STORY = (
    "Armed officers were called to an address in Hoe Street, Walthamstow, at about 9am on Friday after reports "
    "of a man with a gun. A man in his thirties was shot by police and taken to hospital, where his condition is "
    "described as critical. The Independent Office for Police Conduct has been informed and a cordon remains in "
    "place while officers carry out inquiries. Residents were asked to avoid the area for the rest of the day. "
    "A spokesperson for the Metropolitan Police said the man had been seen on a bus in Forest Road shortly before "
    "the first call, and that a firearm had been recovered from the scene. Neighbours described hearing two shots "
    "and seeing armed officers run along the pavement towards the junction with the High Street. Anyone who has "
    "footage of the area between 8am and 10am is asked to contact police quoting the reference 1234 of 24 October. "
    "Waltham Forest Council said the market in the High Street would open as usual on Saturday, and that extra "
    "staff would be on hand to support residents who had been affected by what they saw. Local schools were not "
    "affected and remained open throughout the day, the council added in a statement published on its website."
)
OTHER_STORY = (
    "Firefighters were called to a house in Leyton Road on Tuesday evening after smoke was seen coming from an "
    "upstairs window. Two people were treated at the scene for smoke inhalation and a woman was taken to hospital. "
    "The cause of the fire is being investigated by the London Fire Brigade, which said the blaze was under control "
    "by midnight."
)


def raw(source: str, guid: str, title: str, text: str, minute: int = 5) -> RawUpdate:
    entry = FeedEntry(guid=guid, title=title, text=text, published=datetime(2025, 10, 24, 9, tzinfo=UTC))
    return RawUpdate(
        source_id=source, authority=Authority.news, feed_url=f"https://{source}.example.org/rss", entry=entry,
        identity=entry_identity(source, entry), fingerprint=content_fingerprint(entry),
        fetched_at=datetime(2025, 10, 24, 9, minute, tzinfo=UTC),
    )


def near_copy(text: str) -> str:
    """An agency copy as an outlet runs it: its own first line, the body, its own sign-off."""
    return f"Breaking news from east London. {text} Contact our newsdesk with any information."


async def published(redis: Redis, keys: Keys) -> list[Update]:
    return [Update.model_validate_json(data) for _, data in entry_data(await redis.xrange(keys.updates))]


async def test_a_near_copy_from_another_outlet_is_a_duplicate_with_its_reason(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    original = await process(redis, keys, raw("echo", "e1", "Man shot by police in Walthamstow", STORY))
    copy = await process(redis, keys, raw("wire", "w1", "Police shoot man in east London", near_copy(STORY)))
    unrelated = await process(redis, keys, raw("wire", "w2", "House fire in Leyton", OTHER_STORY))
    assert original is not None
    assert copy is not None
    assert unrelated is not None
    assert (original.verdict, copy.verdict, unrelated.verdict) == (Verdict.new, Verdict.duplicate, Verdict.new)
    assert copy.duplicate_of == original.update_id
    assert copy.similarity is not None
    assert copy.similarity >= DedupPolicy().near_threshold
    assert "near-copy" in copy.reason
    assert original.update_id in copy.reason
    assert original.reason == "first time this text is seen"


async def test_near_copies_from_the_same_outlet_are_not_duplicates(redis: Redis, key_prefix: str) -> None:
    """An outlet's own follow-up reuses its own paragraphs: that is a new entry, not corroboration."""
    keys = Keys(key_prefix)
    await process(redis, keys, raw("echo", "e1", "Man shot by police in Walthamstow", STORY))
    follow_up = await process(redis, keys, raw("echo", "e2", "Walthamstow shooting: latest", near_copy(STORY)))
    assert follow_up is not None
    assert follow_up.verdict is Verdict.new


FURNITURE = (
    "Just One More Thing... We have sent you a verification email. Please check your email and click on the link to "
    "activate your profile. If you do not receive the verification message within a few minutes of signing up, "
    "please check your Spam or Junk folder. Close"
)


async def test_one_text_under_unrelated_titles_is_page_furniture_not_a_copy(redis: Redis, key_prefix: str) -> None:
    """A crawler that took a site's sign-up notice for the article gives every story the same text: the titles
    tell them apart. An exact copy retitled by another outlet still shares words of its title, and is a copy."""
    keys = Keys(key_prefix)
    first = await process(redis, keys, raw("ajc", "a1", "Atlanta News: 4 shot in northwest Atlanta", FURNITURE))
    other = await process(redis, keys, raw("ajc", "a2", "Killeen 2-year-old shoots himself", FURNITURE))
    copy = await process(redis, keys, raw("wire", "w1", "Four shot in northwest Atlanta on Monday", FURNITURE))
    assert first is not None
    assert other is not None
    assert copy is not None
    assert (first.verdict, other.verdict, copy.verdict) == (Verdict.new, Verdict.new, Verdict.duplicate)
    assert "page furniture" in other.reason
    assert copy.duplicate_of == first.update_id


async def test_racing_near_copies_get_one_new_verdict(redis: Redis, key_prefix: str) -> None:
    """Concurrent judges of near-copies (not exact: each outlet adds its own lines) never give two `new`."""
    keys = Keys(key_prefix)
    copies = [raw(f"outlet{n}", f"g{n}", f"title {n}", f"Report {n}. {STORY} Outlet {n} sign-off.") for n in range(6)]
    results = await asyncio.gather(*(process(redis, keys, c) for c in copies))
    assert sorted(r.verdict.value for r in results if r) == ["duplicate"] * 5 + ["new"]


async def test_a_revision_carries_its_diff_and_kind(redis: Redis, key_prefix: str) -> None:
    """An edit read back against its previous version on `raw`: sentences added/removed, factual or cosmetic."""
    keys = Keys(key_prefix)

    async def judge_on_raw(item: RawUpdate) -> Update | None:
        raw_id = await redis.xadd(keys.raw, {DATA_FIELD: item.model_dump_json()})
        return await process(redis, keys, item, raw_id=as_text(raw_id))

    first = raw("echo", "e1", "Man shot by police in Walthamstow", STORY, minute=5)
    factual = raw("echo", "e1", first.entry.title,
                  STORY.replace("described as critical", "now described as stable"), minute=10)
    cosmetic = raw("echo", "e1", first.entry.title,
                   factual.entry.text.replace("Hoe Street, Walthamstow", "Hoe Street , Walthamstow"), minute=15)
    results = [await judge_on_raw(item) for item in (first, factual, cosmetic)]
    assert [r.verdict if r else None for r in results] == [Verdict.new, Verdict.revision, Verdict.revision]
    assert results[1] is not None
    assert results[1].revision is not None
    assert results[1].revision.kind is RevisionKind.factual
    assert any("stable" in s for s in results[1].revision.added)
    assert any("critical" in s for s in results[1].revision.removed)
    assert results[1].replaces == results[0].update_id  # type: ignore[union-attr]
    assert results[2] is not None
    assert results[2].revision is not None
    assert results[2].revision.kind is RevisionKind.cosmetic


async def test_comparing_versions_past_the_cpu_limit_fails_naming_the_entry(redis: Redis, key_prefix: str) -> None:
    """Judging a new version reads the facts of both: bounded by the policy's CPU time, past which it fails with a
    permanent error naming the entry (the stage dead-letters it); the first version, with nothing to compare, is
    judged as before."""
    keys = Keys(key_prefix)
    strict = DedupPolicy(cpu_s=0.001)
    # Long enough that reading it takes many of the kernel's CPU time ticks (a few ms each), however fast the machine.
    long_story = " ".join([STORY] * 80)
    first = raw("echo", "e1", "Man shot by police in Walthamstow", long_story, minute=5)
    edited = raw("echo", "e1", first.entry.title, long_story.replace("described as critical", "now stable"), minute=10)
    ids = [as_text(await redis.xadd(keys.raw, {DATA_FIELD: item.model_dump_json()})) for item in (first, edited)]
    judged = await process_batch(redis, keys, [(first, ids[0])], policy=strict)
    assert [u.verdict if u else None for u in judged.updates] == [Verdict.new]
    with pytest.raises(CPUTimeExceeded, match=rf"^raw entry {re.escape(edited.identity)} \("):
        await process_batch(redis, keys, [(edited, ids[1])], policy=strict)
    judged = await process_batch(redis, keys, [(edited, ids[1])], policy=DedupPolicy())
    assert [u.verdict if u else None for u in judged.updates] == [Verdict.revision]


async def test_repeats_are_counted_and_every_key_expires_with_the_window(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    policy = DedupPolicy(window_s=3600)
    item = raw("echo", "e1", "Man shot by police in Walthamstow", STORY)
    for _ in range(3):
        await process(redis, keys, item, policy=policy)
    await process(redis, keys, raw("wire", "w1", "Police shoot man", near_copy(STORY)), policy=policy)
    stats = {as_text(k): int(v) for k, v in (await redis.hgetall(keys.dedup_stats)).items()}
    assert stats == {"new": 1, "repeat": 2, "duplicate": 1}
    dedup_keys = [key async for key in redis.scan_iter(match=f"{key_prefix}:dedup:*")]
    expiring = [key for key in dedup_keys if key != keys.dedup_stats.encode()]
    near = [key for key in expiring if b":near:" in key]
    assert near
    ttls = {key: await redis.pttl(key) for key in expiring}
    assert all(0 < ttl <= 3600 * 1000 for key, ttl in ttls.items() if key not in near)
    # The near-copy index expires by time bucket (a quarter of the window): a window after the bucket ends.
    assert all(0 < ttls[key] <= 3600 * 1000 * 5 // 4 for key in near), "everything dedup remembers expires"


async def test_demo_archive_verdicts(settings: Settings, redis_url: str, redis: Redis) -> None:
    """The demo's syndicated copy is a duplicate, its in-place edit a factual revision; re-served entries are
    dropped and counted."""
    prefix = f"{settings.key_prefix}:demo"
    await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=prefix, keep=True)
    keys = Keys(prefix)
    updates = await published(redis, keys)
    by_guid = {u.guid: u for u in updates}
    copy = by_guid["https://citywire.example.net/london/2025/10/24/police-watchdog-investigating-man-shot-walthamstow"]
    assert copy.verdict is Verdict.duplicate
    assert copy.duplicate_of in {u.update_id for u in updates if u.verdict is Verdict.new}
    revisions = [u for u in updates if u.verdict is Verdict.revision]
    assert revisions, "the demo edits an entry in place"
    assert all(r.revision is not None and r.revision.kind is RevisionKind.factual for r in revisions)
    # Every raw entry delivered again (a restart re-serving old entries): no new verdict, each one counted.
    raw_rows = entry_data(await redis.xrange(keys.raw))
    repeats_before = int(await redis.hget(keys.dedup_stats, "repeat") or 0)
    for _, data in raw_rows:
        await process(redis, keys, RawUpdate.model_validate_json(data))
    assert len(await published(redis, keys)) == len(updates)
    assert int(await redis.hget(keys.dedup_stats, "repeat") or 0) == repeats_before + len(raw_rows)


async def test_a_batch_gives_the_verdicts_of_one_by_one_processing(redis: Redis, key_prefix: str) -> None:
    """Entries of one batch that decide each other's verdict (an entry and its edit, a text and its copies, a repeat)
    are judged as they would be one at a time, and published on `updates` in the same order: a replay gives the same
    updates in the same order however its batches fall. (The copy after the edit was read before the edit was
    committed: its check fails, and it and the entry after it are judged again.)"""
    first = raw("echo", "e1", "Man shot by police in Walthamstow", STORY, minute=5)
    items = [
        first,
        raw("wire", "w1", "Police shoot man in east London", near_copy(STORY), minute=6),
        raw("echo", "e1", first.entry.title, STORY.replace("described as critical", "now stable"), minute=7),
        first,
        raw("post", "p1", "Walthamstow shooting", STORY, minute=8),
        raw("fire", "f1", "House fire in Leyton", OTHER_STORY, minute=9),
        raw("wire", "w2", "Another outlet's copy", f"From the wires. {STORY} Ends.", minute=10),
        raw("fire", "f2", "Fire in Leyton: update", OTHER_STORY.replace("midnight", "1am"), minute=11),
    ]
    one_by_one, batched = Keys(f"{key_prefix}:single"), Keys(f"{key_prefix}:batch")
    expected = [await process(redis, one_by_one, item) for item in items]
    judged = await process_batch(redis, batched, [(item, "") for item in items])
    assert judged.unfinished == []
    assert [u.model_dump() if u else None for u in judged.updates] == [
        u.model_dump() if u else None for u in expected
    ]
    assert [u.verdict if u else None for u in judged.updates] == [
        Verdict.new, Verdict.duplicate, Verdict.revision, None, Verdict.duplicate, Verdict.new, Verdict.duplicate,
        Verdict.new,
    ]
    in_order = [u.update_id for u in judged.updates if u]
    assert [u.update_id for u in await published(redis, batched)] == in_order
    assert [u.update_id for u in await published(redis, one_by_one)] == in_order


async def test_a_batch_of_entries_each_deciding_the_next_is_judged_whole(redis: Redis, key_prefix: str) -> None:
    """A story edited again and again, every version in one batch: each version's verdict waits for the one before
    it, so the batch settles one more per round, and still settles whole (none left for the reclaimer's minute)."""
    versions = [raw("echo", "e1", "Man shot by police in Walthamstow",
                    STORY.replace("described as critical", f"described as critical after {n} operations"), minute=n)
                for n in range(12)]
    one_by_one, batched = Keys(f"{key_prefix}:single"), Keys(f"{key_prefix}:batch")
    expected = [await process(redis, one_by_one, version) for version in versions]
    judged = await process_batch(redis, batched, [(version, "") for version in versions])
    assert judged.unfinished == []
    assert [u.verdict if u else None for u in judged.updates] == [Verdict.new] + [Verdict.revision] * 11
    assert [u.model_dump() if u else None for u in judged.updates] == [
        u.model_dump() if u else None for u in expected
    ]
