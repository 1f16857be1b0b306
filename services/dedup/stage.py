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

from schemas import RawUpdate, Update, Verdict
from services.cpu_limit import cpu_limit
from services.dedup import shingles
from services.dedup.judge import NearMatch, Seen, Version, judge, story_key, story_value
from services.errors import TransientError
from services.identity import normalise_text
from services.names import STAGE_INPUTS, Keys
from services.settings import Settings
from services.stage import InTurn, StageContext, subscribe_stream_batches
from services.tracker.places import load_gazetteer
from services.wire import DATA_FIELD, as_optional_text, as_text

log = structlog.get_logger(__name__)

_MAX_STALLED_ROUNDS = 5  # rounds in a row in which other workers won every check-and-set
_DEFAULTS = Settings.model_fields

# The near-copy index lives in time buckets, each one hash that expires as a whole when the window has passed it:
# `b<band>` → the ids of the updates with that LSH band judged in the bucket (12 bytes each, concatenated) and
# `s<id>` → that update's `shingles.compact` signature followed by its source id. One field per band instead of one
# sorted set per band, and truncated signatures, keep the index at about a third of the memory; and a read names a
# handful of bucket keys rather than one key per band. Both scripts get the buckets a judge reads in KEYS, oldest
# first, and an entry's bands packed in one ARGV (8 bytes each).
_INDEX = """
local function band_fields(bands)
  local fields = {}
  for i = 1, #bands, 8 do fields[#fields + 1] = 'b' .. string.sub(bands, i, i + 7) end
  return fields
end
-- The members of band `fields` in buckets KEYS[first..last] ({bucket key index, ids, bucket position}), and the
-- last bucket's values of those fields.
local function near_members(first, last, fields)
  local members, newest = {}, nil
  if #fields == 0 then return members, newest end
  for k = first, last do
    local values = redis.call('HMGET', KEYS[k], unpack(fields))
    for _, value in ipairs(values) do
      if value then members[#members + 1] = {k, value, k - first} end
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
-- The stored value of each update that `members` name, once each: {12-byte id, compact signature .. source}.
local function candidates(members)
  local seen, found = {}, {}
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
  return found
end
-- Index update `id` in `bucket`: its stored value under 's<id>', its id appended to each of its band fields
-- (`values`: their values now).
local function index(bucket, expires_at_ms, id, stored, fields, values)
  local writes = {'s' .. id, stored}
  for i, field in ipairs(fields) do
    writes[#writes + 1] = field
    writes[#writes + 1] = (values[i] or '') .. id
  end
  redis.call('HSET', bucket, unpack(writes))
  redis.call('PEXPIREAT', bucket, expires_at_ms)
end
"""

# A batch in one call, in order. What Redis alone can decide is settled here, up to the first entry that needs
# judging in Python: an exact repeat is counted (anywhere in the batch: a known version stays known), and an entry
# with nothing like it (no version of it judged, no copy of its text, nothing in its bands) is published as `new`
# with its keys recorded, atomically. From the first entry that has something like it (a revision, a copy), every
# entry is only read: its reply is what was read (its current version, the story's owner, a digest of its band
# members and their stored values), and Python judges and commits them in order. So `updates` gets the verdicts in
# the order of `raw`, as one-by-one processing gives them, and a replay publishes the same updates in the same order
# however its batches fall.
# KEYS: updates, stats, buckets..., then each entry's entry key and story key.
# ARGV: number of buckets, window ms, the newest bucket's expiry (ms), the data field, then 7 per entry: known field,
# packed bands, version, story value, its `new` update, its 12-byte id, its index value ('' when not indexed).
# Returns per entry: 'published' | 'repeat' | {current version, story owner, members digest, candidates}.
_SETTLE = _INDEX + """
local last = 2 + tonumber(ARGV[1])
local held, results = false, {}
local counts = {new = 0, ['repeat'] = 0}
for n = 0, (#ARGV - 4) / 7 - 1 do
  local a, k = 4 + 7 * n, last + 1 + 2 * n
  local entry, story, fields = KEYS[k], KEYS[k + 1], band_fields(ARGV[a + 2])
  if redis.call('HEXISTS', entry, ARGV[a + 1]) == 1 then
    counts['repeat'] = counts['repeat'] + 1
    results[n + 1] = 'repeat'
  else
    local current = redis.call('HGET', entry, 'current')
    local owner = redis.call('GET', story)
    local members, newest = {}, nil
    if not current then members, newest = near_members(3, last, fields) end
    if current or owner or #members > 0 or held then
      held = true
      results[n + 1] = {current, owner, digest(members), candidates(members)}
    else
      redis.call('XADD', KEYS[1], '*', ARGV[4], ARGV[a + 5])
      redis.call('HSET', entry, 'current', ARGV[a + 3], ARGV[a + 1], '1')
      redis.call('PEXPIRE', entry, ARGV[2])
      redis.call('SET', story, ARGV[a + 4], 'PX', ARGV[2])
      if ARGV[a + 7] ~= '' then index(KEYS[last], ARGV[3], ARGV[a + 6], ARGV[a + 7], fields, newest) end
      counts.new = counts.new + 1
      results[n + 1] = 'published'
    end
  end
end
for verdict, count in pairs(counts) do
  if count > 0 then redis.call('HINCRBY', KEYS[2], verdict, count) end
end
return results
"""

# Check-and-set for the entries judged in Python, in batch order: each verdict is published and the keys that decide
# the next verdict are recorded together, so a crash can only lead to the same verdict again (absorbed downstream),
# and two workers racing on copies of one text cannot both call theirs `new`: the entry's version and the story's
# owner must be those read, and the updates sharing a band with it exactly those read (same digest; '' skips the
# check: a revision's bands are only written). The first entry whose check fails ends the call: it and every later
# entry are judged again, so `updates` keeps the batch's order. The newest bucket is written.
# KEYS: updates, stats, buckets..., then each entry's entry key and story key.
# ARGV: number of buckets, window ms, the newest bucket's expiry (ms), the data field, then 11 per entry: current
# version read ('' none), new version, known field, story owner read ('' none), story value, update, verdict, 12-byte
# id, packed bands, members digest, index value ('' when not indexed).
# Returns per entry: published | repeat | conflict | not tried (after a conflict).
_PUBLISH_VERDICTS = _INDEX + """
local last = 2 + tonumber(ARGV[1])
local results = {}
for n = 0, (#ARGV - 4) / 11 - 1 do
  local a, k = 4 + 11 * n, last + 1 + 2 * n
  local entry, story = KEYS[k], KEYS[k + 1]
  if redis.call('HEXISTS', entry, ARGV[a + 3]) == 1 then
    redis.call('HINCRBY', KEYS[2], 'repeat', 1)
    results[n + 1] = 'repeat'
  else
    local fields, newest, fresh = band_fields(ARGV[a + 9]), nil, true
    local owner = redis.call('GET', story) or ''
    if (redis.call('HGET', entry, 'current') or '') ~= ARGV[a + 1] or owner ~= ARGV[a + 4] then fresh = false end
    if fresh and ARGV[a + 10] ~= '' then
      local members
      members, newest = near_members(3, last, fields)
      fresh = digest(members) == ARGV[a + 10]
    end
    if not fresh then
      results[n + 1] = 'conflict'
      for rest = n + 2, (#ARGV - 4) / 11 do results[rest] = 'not tried' end
      return results
    end
    redis.call('XADD', KEYS[1], '*', ARGV[4], ARGV[a + 6])
    redis.call('HSET', entry, 'current', ARGV[a + 2], ARGV[a + 3], '1')
    redis.call('PEXPIRE', entry, ARGV[2])
    if owner == '' then redis.call('SET', story, ARGV[a + 5], 'PX', ARGV[2]) end
    redis.call('HINCRBY', KEYS[2], ARGV[a + 7], 1)
    if ARGV[a + 11] ~= '' then
      index(KEYS[last], ARGV[3], ARGV[a + 8], ARGV[a + 11], fields,
            newest or redis.call('HMGET', KEYS[last], unpack(fields)))
    end
    results[n + 1] = 'published'
  end
end
return results
"""
_BUCKETS_PER_WINDOW = 4  # a bucket spans a quarter of the window: what expires late is at most a quarter of it


@dataclass(frozen=True)
class DedupPolicy:
    """How long dedup remembers, from which similarity a text is a near-copy, and the CPU time comparing two versions
    of an entry may take (`services.cpu_limit`; 0: no limit)."""

    window_s: int = _DEFAULTS["dedup_window_s"].default
    near_threshold: float = _DEFAULTS["dedup_near_threshold"].default
    cpu_s: float = _DEFAULTS["extract_cpu_s"].default

    @classmethod
    def of(cls, settings: Settings) -> DedupPolicy:
        return cls(settings.dedup_window_s, settings.dedup_near_threshold, settings.extract_cpu_s)


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
    as_new: Update  # its verdict if nothing like it was seen: what `_SETTLE` publishes without asking Python
    index_id: bytes  # how the index names its update: the 12 bytes of the update id
    index_value: bytes  # what the index stores for it (compact signature, then source id); empty without a signature

    @classmethod
    def all_of(cls, batch: Sequence[tuple[RawUpdate, str]], policy: DedupPolicy) -> list[_Item]:
        """The items of a batch; signatures and bands are computed for the whole batch at once."""
        normalised = [normalise_text(raw.entry.text) for raw, _ in batch]
        signatures = shingles.signatures([raw.entry.text for raw, _ in batch], normalised=normalised)
        # Too short a text has no signature: too little to tell a copy from a coincidence, so exact copies only.
        bands = iter(shingles.packed_bands_of([s for s in signatures if s is not None], policy.near_threshold))
        items = []
        for (raw, raw_id), text, signature in zip(batch, normalised, signatures, strict=True):
            as_new = judge(raw, Seen(current=None))
            assert as_new is not None  # nothing seen: always a verdict
            items.append(cls(
                raw, raw_id, story_key(raw, normalised=text), f"v:{raw.fingerprint}", signature,
                next(bands) if signature is not None else b"", as_new,
                bytes.fromhex(as_new.update_id.removeprefix("u_")),
                shingles.compact(signature) + raw.source_id.encode() if signature is not None else b"",
            ))
        return items


@dataclass(frozen=True)
class _Read:
    seen: Seen
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
                        policy: DedupPolicy = DedupPolicy(), in_turn: InTurn | None = None) -> Judged:
    """Judge raw entries (each with its id on `raw`) and publish each verdict atomically, as `process` does.

    One script call settles, in batch order, exact repeats and the texts with nothing like them (`new`) up to the
    first entry that has something like it; that entry and the rest are judged in Python from what the call read
    and committed, in order, with one check-and-set each in one pipeline. Entries of one batch that decide each
    other's verdict are caught by the check-and-set, as concurrent workers are, and go round again, so the verdicts,
    and their order on `updates`, are the ones one-by-one processing in batch order gives. `in_turn` is awaited
    once the texts are read (shingles and signatures), before judging (`services.stage.InTurn`).
    """
    items = _Item.all_of(batch, policy)
    if in_turn is not None:
        await in_turn()
    updates: list[Update | None] = [None] * len(items)
    pending = list(range(len(items)))
    # Every round settles at least the first pending entry unless another worker got in first, so a batch of
    # entries that each decide the next one's verdict takes as many rounds as it needs; only rounds that settle
    # nothing count against the limit.
    stalled = 0
    while pending and stalled < _MAX_STALLED_ROUNDS:
        left = len(pending)
        buckets = _Buckets.at(int(time.time() * 1000), policy, keys)
        replies = await _settle(redis, keys, [items[i] for i in pending], buckets, policy)
        held: list[tuple[int, list[Any]]] = []
        for i, reply in zip(pending, replies, strict=True):
            if reply == b"published":
                updates[i] = items[i].as_new
            elif reply != b"repeat":
                held.append((i, reply))
        pending = []
        if not held:
            break
        reads = await _reads(redis, keys, [(items[i], reply) for i, reply in held], policy)
        verdicts = [(i, _judged(items[i].raw, read.seen, policy), read)
                    for (i, _), read in zip(held, reads, strict=True)]
        to_commit = [(i, update, read) for i, update, read in verdicts if update is not None]
        outcomes = await _commit_all(redis, keys, [(items[i], update, read) for i, update, read in to_commit],
                                     buckets, repeats=len(verdicts) - len(to_commit), policy=policy)
        for (i, update, _), outcome in zip(to_commit, outcomes, strict=True):
            if outcome == "published":
                updates[i] = update
            elif outcome in ("conflict", "not tried"):
                pending.append(i)
        stalled = stalled + 1 if len(pending) == left else 0
    return Judged(updates, pending)


def _judged(raw: RawUpdate, seen: Seen, policy: DedupPolicy) -> Update | None:
    """`judge`, in at most the policy's CPU time: judging a new version reads the facts of both."""
    with cpu_limit(policy.cpu_s, f"raw entry {raw.identity} ({len(raw.entry.text):,} characters): comparing it with "
                                 "the version before"):
        return judge(raw, seen)


async def _settle(redis: Redis, keys: Keys, items: list[_Item], buckets: _Buckets, policy: DedupPolicy) -> list[Any]:
    """`_SETTLE` on `items`: per item b'published', b'repeat', or what was read for judging it in Python."""
    entry_keys: list[str] = []
    args: list[str | bytes | int] = [len(buckets.keys), policy.window_s * 1000, buckets.newest_expires_at_ms,
                                     DATA_FIELD]
    for item in items:
        entry_keys += [keys.dedup_entry(item.raw.identity), keys.dedup_story(item.story)]
        args += [item.known_field, item.bands, Version.of(item.raw, item.raw_id).encode(),
                 story_value(item.as_new.update_id, item.raw), item.as_new.model_dump_json(), item.index_id,
                 item.index_value]
    replies: list[Any] = await redis.register_script(_SETTLE)(
        keys=[keys.updates, keys.dedup_stats, *buckets.keys, *entry_keys], args=args
    )
    return replies


async def _reads(redis: Redis, keys: Keys, held: list[tuple[_Item, list[Any]]], policy: DedupPolicy) -> list[_Read]:
    """What `_SETTLE` read for each held item, with the previous text of each entry that has a version (one
    pipeline)."""
    interpreted = [_interpret(item, reply, policy) for item, reply in held]
    previous = await _previous_texts(redis, keys, [seen.current for seen, _ in interpreted])
    return [
        _Read(replace(seen, previous=text), digest)
        for (seen, digest), text in zip(interpreted, previous, strict=True)
    ]


def _interpret(item: _Item, reply: list[Any], policy: DedupPolicy) -> tuple[Seen, str]:
    """`_SETTLE`'s reply for a held `item`: what was seen (without the previous text) and the band members' digest."""
    current_text, owner, digest, found = reply
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
    return Seen(current, as_optional_text(owner), near=best), as_text(digest)


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


async def _commit_all(redis: Redis, keys: Keys, judged: list[tuple[_Item, Update, _Read]], buckets: _Buckets, *,
                      repeats: int, policy: DedupPolicy) -> list[str]:
    """Publish each verdict with the keys it was decided on (`_PUBLISH_VERDICTS`), in order, in one call; count the
    `repeats` judged without a verdict. Returns each entry's outcome: published | repeat | conflict | not tried."""
    entry_keys: list[str] = []
    args: list[str | bytes | int] = [len(buckets.keys), policy.window_s * 1000, buckets.newest_expires_at_ms,
                                     DATA_FIELD]
    for item, update, read in judged:
        raw, seen = item.raw, read.seen
        entry_keys += [keys.dedup_entry(raw.identity), keys.dedup_story(item.story)]
        args += [
            seen.current.encode() if seen.current else "",
            Version.of(raw, item.raw_id).encode(),
            item.known_field,
            seen.story_owner or "",
            story_value(update.update_id, raw),
            update.model_dump_json(),
            update.verdict.value,
            item.index_id,
            item.bands,
            # A revision's bands were not read: nothing to check them against.
            read.digest if seen.current is None else "",
            # A duplicate is not indexed: its original stands for the text.
            item.index_value if update.verdict is not Verdict.duplicate else b"",
        ]
    outcomes: list[str] = []
    if judged:
        replies = await redis.register_script(_PUBLISH_VERDICTS)(
            keys=[keys.updates, keys.dedup_stats, *buckets.keys, *entry_keys], args=args
        )
        outcomes = [as_text(outcome) for outcome in replies]
    if repeats:
        await redis.hincrby(keys.dedup_stats, "repeat", repeats)
    return outcomes


def build_router(ctx: StageContext) -> RedisRouter:
    """The dedup stage's router. A factory, because stream names depend on the configured key prefix."""
    router = RedisRouter()
    stream, group = STAGE_INPUTS["dedup"]
    policy = DedupPolicy.of(ctx.settings)
    load_gazetteer()  # comparing two versions of an entry reads their facts (`revisions`)

    async def dedup_batch(batch: list[tuple[RawUpdate, str]], in_turn: InTurn) -> list[str]:
        judged = await process_batch(ctx.redis, ctx.keys, batch, policy=policy, in_turn=in_turn)
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
