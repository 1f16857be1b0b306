"""The dedup stage: every raw entry gets one verdict (new, revision, duplicate) or is dropped as an exact repeat.

Consumes `raw` (group `dedup`), publishes `Update`s on `updates`. Identity and content version come from the
poller (design §2.1–2.2); this stage finds copies across outlets (§2.3): exact ones by a story key, near ones by
MinHash with LSH bands kept in Redis, so every dedup worker shares one index and a restart keeps it.

Everything dedup remembers expires with the window (`LIVEDESK_DEDUP_WINDOW_S`), so its memory is bounded by the
number of entries in one window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from faststream.redis import RedisRouter
from faststream.redis.annotations import RedisStreamMessage
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from schemas import RawUpdate, Update, Verdict
from services.dedup import shingles
from services.dedup.judge import NearMatch, Seen, Version, judge, story_key
from services.errors import TransientError
from services.identity import normalise_text
from services.names import STAGE_INPUTS, Keys
from services.settings import Settings
from services.stage import StageContext, subscribe_stream_batches
from services.wire import DATA_FIELD, as_optional_text, as_text

log = structlog.get_logger(__name__)

_MAX_ATTEMPTS = 5
_DEFAULTS = Settings.model_fields

# The near-copy index lives in time buckets, each one hash that expires as a whole when the window has passed it:
# `b<band>` → the ids of the updates with that LSH band judged in the bucket (12 bytes each, concatenated) and
# `s<id>` → that update's `shingles.compact` signature followed by its source id. One field per band instead of one
# sorted set per band, and truncated signatures, keep the index at about a third of the memory; and a read names a
# handful of bucket keys rather than one key per band. KEYS of both scripts end with the buckets a judge reads,
# oldest first; ARGV carries the bands packed (8 bytes each).
_NEAR_MEMBERS = """
local function band_fields(bands)
  local fields = {}
  for i = 1, #bands, 8 do fields[#fields + 1] = 'b' .. string.sub(bands, i, i + 7) end
  return fields
end
-- The members of `bands` in KEYS[first_bucket..] (bucket position, their ids), and the newest bucket's values.
local function near_members(first_bucket, bands)
  local fields, members, newest = band_fields(bands), {}, nil
  if #fields == 0 then return members, newest end
  for k = first_bucket, #KEYS do
    local values = redis.call('HMGET', KEYS[k], unpack(fields))
    for _, value in ipairs(values) do
      if value then members[#members + 1] = {k, value, k - first_bucket} end
    end
    newest = values
  end
  return members, newest
end
local function digest(members)
  local parts = {}
  for i, member in ipairs(members) do parts[i] = member[3] .. ':' .. member[2] end
  return redis.sha1hex(table.concat(parts, '|'))
end
"""

# Everything a verdict is decided on, in one round trip: the entry's current version, whether this version was judged
# before, the story's owner, and, for an entry seen for the first time, the updates sharing a band with it (a digest
# of them, for the check-and-set) and their stored signatures and sources.
# KEYS: entry, story, bucket... ARGV: known field, packed bands.
_READ = _NEAR_MEMBERS + """
local current = redis.call('HGET', KEYS[1], 'current')
local known = redis.call('HEXISTS', KEYS[1], ARGV[1])
local owner = redis.call('GET', KEYS[2])
local members_digest, found, seen = '', {}, {}
if not current and known == 0 then
  local members = near_members(3, ARGV[2])
  members_digest = digest(members)
  for _, member in ipairs(members) do
    for j = 1, #member[2], 12 do
      local id = string.sub(member[2], j, j + 11)
      if not seen[id] then
        seen[id] = true
        local stored = redis.call('HGET', KEYS[member[1]], 's' .. id)
        if stored then found[#found + 1] = {id, stored} end
      end
    end
  end
end
return {current, known, owner, members_digest, found}
"""

# Check-and-set in one step: the verdict is published and the keys that decide the next verdict are recorded
# together, so a crash can only lead to the same verdict again (absorbed downstream), and two workers racing on
# copies of one text cannot both call theirs `new`: the updates sharing a band with it must be exactly those read
# (same digest; '' skips the check: a revision's bands are only written). The newest bucket is written.
# Returns published | repeat | conflict.
# KEYS: entry, story, updates, stats, bucket... ARGV: see `_commit`.
_PUBLISH_VERDICT = _NEAR_MEMBERS + """
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'repeat', 1)
  return 'repeat'
end
if (redis.call('HGET', KEYS[1], 'current') or '') ~= ARGV[1] then return 'conflict' end
local owner = redis.call('GET', KEYS[2]) or ''
if owner ~= ARGV[4] then return 'conflict' end
local newest_values = nil
if ARGV[13] ~= '' then
  local members, newest = near_members(5, ARGV[12])
  if digest(members) ~= ARGV[13] then return 'conflict' end
  newest_values = newest
end
redis.call('XADD', KEYS[3], '*', ARGV[7], ARGV[6])
redis.call('HSET', KEYS[1], 'current', ARGV[2], ARGV[3], '1')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if owner == '' then redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[8]) end
redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
if ARGV[10] == '1' then
  local bucket = KEYS[#KEYS]
  local fields = band_fields(ARGV[12])
  local values = newest_values or redis.call('HMGET', bucket, unpack(fields))
  local writes = {'s' .. ARGV[11], ARGV[14]}
  for i, field in ipairs(fields) do
    writes[#writes + 1] = field
    writes[#writes + 1] = (values[i] or '') .. ARGV[11]
  end
  redis.call('HSET', bucket, unpack(writes))
  redis.call('PEXPIREAT', bucket, ARGV[15])
end
return 'published'
"""
_BUCKETS_PER_WINDOW = 4  # a bucket spans a quarter of the window: what expires late is at most a quarter of it


@dataclass(frozen=True)
class DedupPolicy:
    """How long dedup remembers, and from which similarity a text is a near-copy."""

    window_s: int = _DEFAULTS["dedup_window_s"].default
    near_threshold: float = _DEFAULTS["dedup_near_threshold"].default

    @classmethod
    def of(cls, settings: Settings) -> DedupPolicy:
        return cls(settings.dedup_window_s, settings.dedup_near_threshold)


@dataclass(frozen=True)
class _Buckets:
    """The index buckets a judge at some time reads (their keys, oldest first), and when the newest, which it
    writes, expires."""

    keys: list[str]
    newest_expires_at_ms: int

    @classmethod
    def at(cls, now_ms: int, policy: DedupPolicy, keys: Keys) -> _Buckets:
        window_ms = policy.window_s * 1000
        span_ms = max(window_ms // _BUCKETS_PER_WINDOW, 1)
        first, last = (now_ms - window_ms) // span_ms, now_ms // span_ms
        # A bucket is read while its end is inside some judge's window: until a window after it ends.
        return cls([keys.dedup_near(n) for n in range(first, last + 1)], (last + 1) * span_ms + window_ms)


@dataclass(frozen=True)
class _Item:
    """One raw entry with what is computed once, however often its verdict is retried."""

    raw: RawUpdate
    raw_id: str  # its id on `raw`
    story: str
    known_field: str
    signature: shingles.Signature | None
    bands: bytes  # its LSH band keys, packed (8 bytes each); empty without a signature

    @classmethod
    def of(cls, raw: RawUpdate, raw_id: str, policy: DedupPolicy) -> _Item:
        normalised = normalise_text(raw.entry.text)
        signature = shingles.signature(raw.entry.title, raw.entry.text, normalised=normalised)
        # Too short a text has no signature: too little to tell a copy from a coincidence, so exact copies only.
        bands = shingles.packed_bands(signature, policy.near_threshold) if signature is not None else b""
        return cls(raw, raw_id, story_key(raw, normalised=normalised), f"v:{raw.fingerprint}", signature, bands)


@dataclass(frozen=True)
class _Read:
    seen: Seen
    buckets: _Buckets
    digest: str  # of the band members read, for the check-and-set; '' when they were not read (a revision)


@dataclass(frozen=True)
class Judged:
    """What `process_batch` did with each entry of a batch, in the batch's order."""

    updates: list[Update | None]  # what was published; None for a repeat, a late version, or an unfinished entry
    unfinished: list[int]  # positions whose verdict kept conflicting with concurrent workers: retry them later


async def process(redis: Redis, keys: Keys, raw: RawUpdate, *, raw_id: str = "",
                  policy: DedupPolicy = DedupPolicy()) -> Update | None:
    """Judge one raw entry (`raw_id`: its id on `raw`) and publish its verdict atomically.

    Returns:
        What was published; None for an exact repeat or a version older than the one judged (counted as `repeat`).

    Raises:
        TransientError: the verdict kept conflicting with concurrent workers; the entry should be retried later.
    """
    judged = await process_batch(redis, keys, [(raw, raw_id)], policy=policy)
    if judged.unfinished:
        raise TransientError(f"dedup: {raw.identity} kept conflicting with concurrent workers; retried later")
    return judged.updates[0]


async def process_batch(redis: Redis, keys: Keys, batch: Sequence[tuple[RawUpdate, str]], *,
                        policy: DedupPolicy = DedupPolicy()) -> Judged:
    """Judge raw entries (each with its id on `raw`) and publish each verdict atomically, as `process` does.

    The whole batch is read in one pipeline and committed, in order, in another (redis-py checks the scripts are
    loaded before each: SCRIPT EXISTS, one more short round trip). Entries of one batch that decide
    each other's verdict (two versions of one entry, two copies of one text) are caught by the commit's
    check-and-set, as concurrent workers are, and judged again in the next round, so the verdicts are the ones
    one-by-one processing in batch order gives.
    """
    items = [_Item.of(raw, raw_id, policy) for raw, raw_id in batch]
    updates: list[Update | None] = [None] * len(items)
    pending = list(range(len(items)))
    for _ in range(_MAX_ATTEMPTS):
        now_ms = int(time.time() * 1000)
        reads = await _read_all(redis, keys, [items[i] for i in pending], policy, now_ms)
        verdicts = [(i, judge(items[i].raw, read.seen), read) for i, read in zip(pending, reads, strict=True)]
        to_commit = [(i, update, read) for i, update, read in verdicts if update is not None]
        outcomes = await _commit_all(redis, keys, [(items[i], update, read) for i, update, read in to_commit],
                                     repeats=len(verdicts) - len(to_commit), policy=policy)
        pending = []
        for (i, update, _), outcome in zip(to_commit, outcomes, strict=True):
            if outcome == "published":
                updates[i] = update
            elif outcome == "conflict":
                pending.append(i)
        if not pending:
            break
    return Judged(updates, pending)


async def _read_all(redis: Redis, keys: Keys, items: list[_Item], policy: DedupPolicy, now_ms: int) -> list[_Read]:
    """What dedup knows about each item, in one pipeline (and one more for the previous texts of revisions)."""
    buckets = _Buckets.at(now_ms, policy, keys)
    script = redis.register_script(_READ)
    async with redis.pipeline(transaction=False) as pipe:
        for item in items:
            await script(
                keys=[keys.dedup_entry(item.raw.identity), keys.dedup_story(item.story), *buckets.keys],
                args=[item.known_field, item.bands],
                client=pipe,
            )
        replies = await pipe.execute()
    interpreted = [_interpret(item, reply, policy) for item, reply in zip(items, replies, strict=True)]
    previous = await _previous_texts(
        redis, keys, [seen.current if seen.current and not seen.known else None for seen, _ in interpreted]
    )
    return [
        _Read(replace(seen, previous=text), buckets, digest)
        for (seen, digest), text in zip(interpreted, previous, strict=True)
    ]


def _interpret(item: _Item, reply: list[Any], policy: DedupPolicy) -> tuple[Seen, str]:
    """The `_READ` script's reply for `item`: what was seen (without the previous text) and the band members' digest.
    """
    current_text, known, owner, digest, found = reply
    best: NearMatch | None = None
    raw = item.raw
    for member, stored in found:
        assert item.signature is not None  # candidates come only from this text's bands
        cut = shingles.COMPACT.itemsize * len(item.signature)  # the stored value: compact signature, then source
        source = stored[cut:].decode()
        if source == raw.source_id:
            continue  # the same outlet: its own follow-ups share its boilerplate and are not corroboration
        similarity = shingles.compact_similarity(item.signature, stored[:cut])
        if similarity >= policy.near_threshold and (best is None or similarity > best.similarity):
            best = NearMatch(f"u_{member.hex()}", source, similarity)
    current = Version.decode(as_optional_text(current_text))
    return Seen(current, as_optional_text(owner), bool(known), best), as_text(digest)


async def _previous_texts(redis: Redis, keys: Keys, versions: list[Version | None]) -> list[tuple[str, str] | None]:
    """Title and text of each version an entry had, read back from `raw` (None once trimmed, or for no version)."""
    wanted = [(n, version.raw_id) for n, version in enumerate(versions) if version is not None and version.raw_id]
    texts: list[tuple[str, str] | None] = [None] * len(versions)
    if not wanted:
        return texts
    async with redis.pipeline(transaction=False) as pipe:
        for _, raw_id in wanted:
            pipe.xrange(keys.raw, raw_id, raw_id)
        replies = await pipe.execute()
    for (n, _), rows in zip(wanted, replies, strict=True):
        if rows:
            previous = RawUpdate.model_validate_json(rows[0][1][DATA_FIELD.encode()])
            texts[n] = previous.entry.title, previous.entry.text
    return texts


async def _commit_all(redis: Redis, keys: Keys, judged: list[tuple[_Item, Update, _Read]], *, repeats: int,
                      policy: DedupPolicy) -> list[str]:
    """Publish each verdict with the keys it was decided on (`_PUBLISH_VERDICT`), in order, in one round trip;
    count the `repeats` judged without a verdict. Returns each commit's outcome: published | repeat | conflict."""
    script = redis.register_script(_PUBLISH_VERDICT)
    async with redis.pipeline(transaction=False) as pipe:
        for item, update, read in judged:
            await _commit(script, pipe, keys, item, update, read, policy)
        if repeats:
            pipe.hincrby(keys.dedup_stats, "repeat", repeats)
        replies = await pipe.execute()
    return [as_text(outcome) for outcome in replies[: len(judged)]]


async def _commit(script: AsyncScript, pipe: Pipeline, keys: Keys, item: _Item, update: Update, read: _Read,
                  policy: DedupPolicy) -> None:
    raw, seen, signature = item.raw, read.seen, item.signature
    indexed = signature is not None and update.verdict is not Verdict.duplicate
    await script(
        keys=[keys.dedup_entry(raw.identity), keys.dedup_story(item.story), keys.updates, keys.dedup_stats,
              *read.buckets.keys],
        args=[
            seen.current.encode() if seen.current else "",
            Version.of(raw, item.raw_id).encode(),
            item.known_field,
            seen.story_owner or "",
            f"{update.update_id}|{raw.identity}",
            update.model_dump_json(),
            DATA_FIELD,
            policy.window_s * 1000,
            update.verdict.value,
            "1" if indexed else "0",
            bytes.fromhex(update.update_id.removeprefix("u_")),  # 12 bytes: how the index names an update
            item.bands,
            # A revision's bands were not read: nothing to check them against.
            read.digest if seen.current is None else "",
            shingles.compact(signature) + raw.source_id.encode() if indexed and signature is not None else b"",
            read.buckets.newest_expires_at_ms,
        ],
        client=pipe,
    )


def build_router(ctx: StageContext) -> RedisRouter:
    """The dedup stage's router. A factory, because stream names depend on the configured key prefix."""
    router = RedisRouter()
    stream, group = STAGE_INPUTS["dedup"]
    policy = DedupPolicy.of(ctx.settings)

    async def dedup_batch(batch: list[tuple[RawUpdate, str]]) -> list[str]:
        judged = await process_batch(ctx.redis, ctx.keys, batch, policy=policy)
        for (raw, _), update in zip(batch, judged.updates, strict=True):
            _log_verdict(raw, update)
        unfinished = {batch[n][1] for n in judged.unfinished}
        return [entry_id for _, entry_id in batch if entry_id not in unfinished]

    async def dedup_one(raw: RawUpdate, message: RedisStreamMessage) -> None:
        ids = message.raw_message.get("message_ids") or []
        raw_id = as_text(ids[0]) if ids else ""
        _log_verdict(raw, await process(ctx.redis, ctx.keys, raw, raw_id=raw_id, policy=policy))

    subscribe_stream_batches(router, ctx, ctx.keys.stream(stream), group, RawUpdate, dedup_batch, dedup_one)
    return router


def _log_verdict(raw: RawUpdate, update: Update | None) -> None:
    # Debug: a verdict per entry is thousands of lines a second under load; `livedesk health` counts them.
    log.debug(
        "raw judged",
        source_id=raw.source_id,
        identity=raw.identity,
        verdict=update.verdict.value if update else "repeat",
        update_id=update.update_id if update else None,
        reason=update.reason if update else "exact repeat or late version",
    )
