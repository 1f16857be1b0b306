"""The dedup stage: every raw entry gets one verdict (new, revision, duplicate) or is dropped as an exact repeat.

Consumes `raw` (group `dedup`), publishes `Update`s on `updates`. Identity and content version come from the
poller (design §2.1–2.2); this stage adds exact cross-source copies (§2.3 in its simplest form: the same text
published under another identity is a `duplicate` that corroborates but carries no new fact).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import structlog
from faststream.redis import RedisRouter
from redis.asyncio import Redis

from schemas import RawUpdate, Update, Verdict
from services.identity import normalise_text, update_id
from services.names import STAGE_INPUTS, Keys
from services.stage import StageContext, subscribe_stream
from services.wire import DATA_FIELD, as_optional_text, as_text

log = structlog.get_logger(__name__)

# Below this many words a body is too generic to call two entries copies of each other by text alone,
# so the title is part of the story key.
_STORY_MIN_WORDS = 40
_MAX_ATTEMPTS = 5

# Check-and-set in one step: the verdict is published and the keys that decide the next verdict are recorded
# together, so a crash can only lead to the same verdict again (absorbed downstream), and two workers racing on
# copies of one text cannot both call theirs `new`. Returns published | repeat | conflict.
# KEYS: versions, stories, updates, known. ARGV: identity, expected current version, new current version, story,
# expected story owner, payload, data field, new story owner, known field.
_PUBLISH_VERDICT = """
if redis.call('HEXISTS', KEYS[4], ARGV[9]) == 1 then return 'repeat' end
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 'conflict' end
local owner = redis.call('HGET', KEYS[2], ARGV[4]) or ''
if owner ~= ARGV[5] then return 'conflict' end
redis.call('XADD', KEYS[3], '*', ARGV[7], ARGV[6])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[9], '1')
if owner == '' then redis.call('HSET', KEYS[2], ARGV[4], ARGV[8]) end
return 'published'
"""


def story_key(raw: RawUpdate) -> str:
    """Key shared by copies of one text across outlets (agency copy, syndication), whatever their titles."""
    text = normalise_text(raw.entry.text)
    basis = text if len(text.split()) >= _STORY_MIN_WORDS else normalise_text(raw.entry.title) + "\n" + text
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Version:
    """The content version of an entry that was last judged, and when it was fetched."""

    fingerprint: str
    fetched_ms: int

    def encode(self) -> str:
        return f"{self.fingerprint} {self.fetched_ms}"

    @classmethod
    def decode(cls, value: str | None) -> Version | None:
        if not value:
            return None
        fingerprint, _, fetched_ms = value.partition(" ")
        return cls(fingerprint, int(fetched_ms or 0))

    @classmethod
    def of(cls, raw: RawUpdate) -> Version:
        return cls(raw.fingerprint, int(raw.fetched_at.timestamp() * 1000))


@dataclass(frozen=True)
class Seen:
    """What the dedup keys say about a raw entry before it is judged."""

    current: Version | None  # the entry's latest judged version
    story_owner: str | None = None  # "update_id|identity" of the first entry with this story
    known: bool = False  # this very version was judged before (perhaps not as the latest)

    @property
    def previous_fingerprint(self) -> str | None:
        return self.current.fingerprint if self.current else None


def judge(raw: RawUpdate, seen: Seen) -> Update | None:
    """The verdict on `raw` given what was seen before; None when it tells nothing new. Pure.

    Nothing new is an exact repeat (a version judged before, even one an edit has since replaced: a server
    alternating old and new documents) or a version fetched before the one already judged (it arrived late).
    """
    if seen.known or seen.previous_fingerprint == raw.fingerprint:
        return None
    if seen.current is not None and seen.current.fetched_ms > Version.of(raw).fetched_ms:
        return None
    duplicate_of: str | None = None
    if seen.previous_fingerprint is not None:
        verdict = Verdict.revision
    elif seen.story_owner is not None and seen.story_owner.split("|", 1)[1] != raw.identity:
        verdict, duplicate_of = Verdict.duplicate, seen.story_owner.split("|", 1)[0]
    else:
        verdict = Verdict.new
    return Update(
        update_id=update_id(raw.identity, raw.fingerprint),
        verdict=verdict,
        source_id=raw.source_id,
        authority=raw.authority,
        identity=raw.identity,
        fingerprint=raw.fingerprint,
        previous_fingerprint=seen.previous_fingerprint,
        duplicate_of=duplicate_of,
        guid=raw.identity.split("|", 1)[1],
        url=raw.entry.link,
        title=raw.entry.title,
        text=raw.entry.text,
        reported_at=_evidence_time(raw, verdict),
        fetched_at=raw.fetched_at,
    )


def _evidence_time(raw: RawUpdate, verdict: Verdict) -> datetime:
    """When the update's evidence was published.

    Many feeds edit an entry without touching its dates; such a revision would carry the time of the version it
    replaces and could not outrank it. Unless the entry says when it was updated, a revision dates from when it
    was first seen.
    """
    entry = raw.entry
    dated_edit = entry.updated is not None and (entry.published is None or entry.updated > entry.published)
    if verdict is Verdict.revision and not dated_edit:
        return max(raw.reported_at, raw.fetched_at)
    return raw.reported_at


async def process(redis: Redis, keys: Keys, raw: RawUpdate) -> Update | None:
    """Judge one raw entry and publish its verdict atomically; returns what was published (None: nothing new)."""
    story = story_key(raw)
    known_field = f"{raw.identity}|{raw.fingerprint}"
    for _ in range(_MAX_ATTEMPTS):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.versions, raw.identity)
            pipe.hget(keys.stories, story)
            pipe.hexists(keys.known_versions, known_field)
            current, owner, known = await pipe.execute()
        seen = Seen(Version.decode(as_optional_text(current)), as_optional_text(owner), bool(known))
        update = judge(raw, seen)
        if update is None:
            return None
        outcome = await redis.eval(
            _PUBLISH_VERDICT,
            4,
            keys.versions,
            keys.stories,
            keys.updates,
            keys.known_versions,
            raw.identity,
            seen.current.encode() if seen.current else "",
            Version.of(raw).encode(),
            story,
            seen.story_owner or "",
            update.model_dump_json(),
            DATA_FIELD,
            f"{update.update_id}|{raw.identity}",
            known_field,
        )
        if as_text(outcome) == "published":
            return update
        if as_text(outcome) == "repeat":
            return None
    raise RuntimeError(f"dedup: {raw.identity} kept conflicting with concurrent workers")



def build_router(ctx: StageContext) -> RedisRouter:
    """The dedup stage's router. A factory, because stream names depend on the configured key prefix."""
    router = RedisRouter()
    stream, group = STAGE_INPUTS["dedup"]

    @subscribe_stream(router, ctx, ctx.keys.stream(stream), group)
    async def dedup(raw: RawUpdate) -> None:
        update = await process(ctx.redis, ctx.keys, raw)
        log.info(
            "raw judged",
            source_id=raw.source_id,
            identity=raw.identity,
            verdict=update.verdict.value if update else "repeat",
            update_id=update.update_id if update else None,
        )

    return router
