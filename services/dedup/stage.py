"""The dedup stage: every raw entry gets one verdict (new, revision, duplicate) or is dropped as an exact repeat.

Consumes `raw` (group `dedup`), publishes `Update`s on `updates`. Identity and content version come from the
poller (design §2.1–2.2); this stage finds copies across outlets (§2.3): exact ones by a story key, near ones by
MinHash with LSH bands kept in Redis, so every dedup worker shares one index and a restart keeps it.

Everything dedup remembers expires with the window (`LIVEDESK_DEDUP_WINDOW_S`), so its memory is bounded by the
number of entries in one window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from datasketch import LeanMinHash
from faststream.redis import RedisRouter
from faststream.redis.annotations import RedisStreamMessage
from redis.asyncio import Redis

from schemas import RawUpdate, Update, Verdict
from services.dedup import shingles
from services.dedup.judge import NearMatch, Seen, Version, judge, story_key
from services.errors import TransientError
from services.names import STAGE_INPUTS, Keys
from services.settings import Settings
from services.stage import StageContext, subscribe_stream
from services.wire import DATA_FIELD, as_optional_text, as_text

log = structlog.get_logger(__name__)

_MAX_ATTEMPTS = 5
_DEFAULTS = Settings.model_fields

# Check-and-set in one step: the verdict is published and the keys that decide the next verdict are recorded
# together, so a crash can only lead to the same verdict again (absorbed downstream), and two workers racing on
# copies of one text cannot both call theirs `new`: each LSH band the verdict was decided on must hold exactly as
# many recent updates as when it was read. Returns published | repeat | conflict.
# KEYS: entry, story, updates, stats, signature, band... ARGV: see `_commit` (17: how many bands to check, then
# their expected counts).
_PUBLISH_VERDICT = """
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'repeat', 1)
  return 'repeat'
end
if (redis.call('HGET', KEYS[1], 'current') or '') ~= ARGV[1] then return 'conflict' end
local owner = redis.call('GET', KEYS[2]) or ''
if owner ~= ARGV[4] then return 'conflict' end
local bands = #KEYS - 5
for i = 1, tonumber(ARGV[17]) do
  if redis.call('ZCOUNT', KEYS[5 + i], ARGV[13], '+inf') ~= tonumber(ARGV[17 + i]) then return 'conflict' end
end
redis.call('XADD', KEYS[3], '*', ARGV[7], ARGV[6])
redis.call('HSET', KEYS[1], 'current', ARGV[2], ARGV[3], '1')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if owner == '' then redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[8]) end
redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
if ARGV[10] == '1' then
  redis.call('HSET', KEYS[5], 'sig', ARGV[14], 'identity', ARGV[15], 'source', ARGV[16])
  redis.call('PEXPIRE', KEYS[5], ARGV[8])
  for i = 1, bands do
    redis.call('ZADD', KEYS[5 + i], ARGV[12], ARGV[11])
    -- Only members an hour past the window go: a concurrent judge may have counted anything newer (its clock and
    -- its read-to-commit time differ from ours), and removing what it counted would let its count match again.
    redis.call('ZREMRANGEBYSCORE', KEYS[5 + i], '-inf', '(' .. (tonumber(ARGV[13]) - 3600000))
    redis.call('PEXPIRE', KEYS[5 + i], ARGV[8])
  end
end
return 'published'
"""


@dataclass(frozen=True)
class DedupPolicy:
    """How long dedup remembers, and from which similarity a text is a near-copy."""

    window_s: int = _DEFAULTS["dedup_window_s"].default
    near_threshold: float = _DEFAULTS["dedup_near_threshold"].default

    @classmethod
    def of(cls, settings: Settings) -> DedupPolicy:
        return cls(settings.dedup_window_s, settings.dedup_near_threshold)


@dataclass(frozen=True)
class _NearIndex:
    """The LSH bands of one text and how many recent updates each held when read (for the check-and-set)."""

    signature: bytes
    bands: list[str]
    counts: list[int]
    now_ms: int  # when it was judged: what the window is measured from
    since_ms: int


# Everything a verdict is decided on, in one round trip: the entry's current version, whether this version was judged
# before, the story's owner, and, for an entry seen for the first time, each band's recent members (counted, for the
# check-and-set) with their stored signatures. KEYS: entry, story, band... ARGV: known field, since_ms, signature key
# prefix.
_READ = """
local current = redis.call('HGET', KEYS[1], 'current')
local known = redis.call('HEXISTS', KEYS[1], ARGV[1])
local owner = redis.call('GET', KEYS[2])
local counts, found, seen = {}, {}, {}
if not current and known == 0 then
  for i = 3, #KEYS do
    local members = redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[2], '+inf')
    counts[#counts + 1] = #members
    for _, id in ipairs(members) do
      if not seen[id] then
        seen[id] = true
        local stored = redis.call('HMGET', ARGV[3] .. id, 'sig', 'identity', 'source')
        if stored[1] then found[#found + 1] = {id, stored[1], stored[2], stored[3]} end
      end
    end
  end
end
return {current, known, owner, counts, found}
"""


@dataclass(frozen=True)
class _Read:
    seen: Seen
    index: _NearIndex | None


async def _read(redis: Redis, keys: Keys, raw: RawUpdate, story: str, known_field: str,
                signature: LeanMinHash | None, bands: list[str], policy: DedupPolicy, now_ms: int) -> _Read:
    """What dedup knows about `raw` (its `signature` and LSH `bands` computed by the caller): its entry, its exact
    story, and the closest recent near-copy from another source at or above the threshold."""
    since_ms = now_ms - policy.window_s * 1000
    current_text, known, owner, counts, found = await redis.eval(
        _READ, 2 + len(bands), keys.dedup_entry(raw.identity), keys.dedup_story(story),
        *(keys.dedup_band(band) for band in bands), known_field, since_ms, keys.dedup_signature(""),
    )
    best: NearMatch | None = None
    for candidate, sig, identity, source in found:
        if as_text(source) == raw.source_id or as_text(identity) == raw.identity:
            continue  # the same outlet: its own follow-ups share its boilerplate and are not corroboration
        assert signature is not None  # candidates come only from this text's bands
        similarity = shingles.similarity(signature, shingles.decode(sig))
        if similarity >= policy.near_threshold and (best is None or similarity > best.similarity):
            best = NearMatch(as_text(candidate), as_text(identity), as_text(source), similarity)
    current = Version.decode(as_optional_text(current_text))
    index = (
        _NearIndex(shingles.encode(signature), bands, [int(c) for c in counts], now_ms, since_ms)
        if signature is not None else None
    )
    seen = Seen(current, as_optional_text(owner), bool(known), best,
                await _previous_text(redis, keys, current) if current and not known else None)
    return _Read(seen, index)


async def _previous_text(redis: Redis, keys: Keys, version: Version | None) -> tuple[str, str] | None:
    """Title and text of the version an entry had, read back from `raw` (None once trimmed)."""
    if version is None or not version.raw_id:
        return None
    rows: Any = await redis.xrange(keys.raw, version.raw_id, version.raw_id)
    if not rows:
        return None
    previous = RawUpdate.model_validate_json(rows[0][1][DATA_FIELD.encode()])
    return previous.entry.title, previous.entry.text


async def process(redis: Redis, keys: Keys, raw: RawUpdate, *, raw_id: str = "",
                  policy: DedupPolicy = DedupPolicy()) -> Update | None:
    """Judge one raw entry (`raw_id`: its id on `raw`) and publish its verdict atomically.

    Returns:
        What was published; None for an exact repeat or a version older than the one judged (counted as `repeat`).
    """
    story = story_key(raw)
    known_field = f"v:{raw.fingerprint}"
    signature = shingles.signature(raw.entry.title, raw.entry.text)
    # Too short a text has no signature: too little to tell a copy from a coincidence, so exact copies only.
    bands = shingles.band_keys(signature, policy.near_threshold) if signature is not None else []
    for _ in range(_MAX_ATTEMPTS):
        now_ms = int(time.time() * 1000)
        read = await _read(redis, keys, raw, story, known_field, signature, bands, policy, now_ms)
        seen, index = read.seen, read.index
        update = judge(raw, seen)
        if update is None:
            await redis.hincrby(keys.dedup_stats, "repeat", 1)
            return None
        outcome = await _commit(redis, keys, raw, update, seen, story, known_field, raw_id, index, policy)
        if outcome == "published":
            return update
        if outcome == "repeat":
            return None
    raise TransientError(f"dedup: {raw.identity} kept conflicting with concurrent workers; retried later")


async def _commit(redis: Redis, keys: Keys, raw: RawUpdate, update: Update, seen: Seen, story: str,
                  known_field: str, raw_id: str, index: _NearIndex | None, policy: DedupPolicy) -> str:
    indexed = index is not None and update.verdict is not Verdict.duplicate
    # The bands a first version was judged on are checked (`counts`); a revision's are only written.
    bands, counts = (index.bands, index.counts) if index is not None else ([], [])
    outcome = await redis.eval(
        _PUBLISH_VERDICT,
        5 + len(bands),
        keys.dedup_entry(raw.identity),
        keys.dedup_story(story),
        keys.updates,
        keys.dedup_stats,
        keys.dedup_signature(update.update_id),
        *(keys.dedup_band(band) for band in bands),
        seen.current.encode() if seen.current else "",
        Version.of(raw, raw_id).encode(),
        known_field,
        seen.story_owner or "",
        f"{update.update_id}|{raw.identity}",
        update.model_dump_json(),
        DATA_FIELD,
        policy.window_s * 1000,
        update.verdict.value,
        "1" if indexed else "0",
        update.update_id,
        index.now_ms if index is not None else 0,
        index.since_ms if index is not None else 0,
        index.signature if index is not None else b"",
        raw.identity,
        raw.source_id,
        len(counts),
        *counts,
    )
    return as_text(outcome)


def build_router(ctx: StageContext) -> RedisRouter:
    """The dedup stage's router. A factory, because stream names depend on the configured key prefix."""
    router = RedisRouter()
    stream, group = STAGE_INPUTS["dedup"]
    policy = DedupPolicy.of(ctx.settings)

    @subscribe_stream(router, ctx, ctx.keys.stream(stream), group)
    async def dedup(raw: RawUpdate, message: RedisStreamMessage) -> None:
        ids = message.raw_message.get("message_ids") or []
        raw_id = as_text(ids[0]) if ids else ""
        update = await process(ctx.redis, ctx.keys, raw, raw_id=raw_id, policy=policy)
        log.info(
            "raw judged",
            source_id=raw.source_id,
            identity=raw.identity,
            verdict=update.verdict.value if update else "repeat",
            update_id=update.update_id if update else None,
            reason=update.reason if update else "exact repeat",
        )

    return router
