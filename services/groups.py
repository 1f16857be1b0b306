"""Consumer groups: created where FastStream would not, asked how far behind they are, and protected from trimming.

Retention: a stream keeps an entry while it is younger than `stream_retention_s` or among the newest
`stream_max_len`, and, past both, for as long as some consumer group has not read or acknowledged it: a slow or
stopped group holds the stream back and is reported (its lag), never skipped. Back-pressure: a publisher waits while a
pipeline stage has more than `max_backlog` entries to finish (`BackPressure`), so the streams do not grow without
bound behind a stage that cannot keep up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.names import STAGE_INPUTS, Keys
from services.turns import PARKED
from services.wire import as_text

log = structlog.get_logger(__name__)

# The streams livedesk's stages consume; `deadletter` has no group and is trimmed by age alone.
CONSUMED_STREAMS = ("raw", "updates", "changes")
# Entries read at once while finding exactly where a length cap falls (after the bulk trim, a node's worth at most).
_TRIM_CHUNK = 1000
# Unread entries counted at most one by one, when Redis cannot say how many a group has left (after deletions).
_COUNT_LIMIT = 10_000


async def ensure_groups(redis: Redis, keys: Keys, stages: Iterable[str]) -> None:
    """Create each consuming stage's group at the start of its stream, before any subscriber starts.

    FastStream creates groups at `$`, so entries written before the first consumer started would never be read.
    """
    for stage in stages:
        if stage not in STAGE_INPUTS:
            continue
        stream, group = STAGE_INPUTS[stage]
        try:
            await redis.xgroup_create(keys.stream(stream), group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


async def backlog(redis: Redis, keys: Keys, stages: Iterable[str] | None = None) -> dict[str, int]:
    """Per stage (every consuming stage, or those of `stages`): entries its group has not yet read plus entries read
    but not yet acknowledged; a stage whose group does not exist yet has the whole stream to read."""
    work: dict[str, int] = {}
    for stage, (stream, group) in STAGE_INPUTS.items():
        if stages is not None and stage not in stages:
            continue
        try:
            infos = await redis.xinfo_groups(keys.stream(stream))
        except ResponseError:
            work[stage] = 0  # no stream yet: nothing was ever written to it
            continue
        for info in infos:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == group:
                lag = info.get("lag")
                # lag is unknown (None) after some trims or deletions; count the stream as not drained then.
                work[stage] = int(info["pending"]) + (int(lag) if lag is not None else 1)
        work.setdefault(stage, await redis.xlen(keys.stream(stream)))
    return work


def _stream_id(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = as_text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def _id_text(entry_id: tuple[int, int]) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


@dataclass(frozen=True)
class GroupLag:
    """How far one consumer group is behind on one stream."""

    stream: str  # the stream's short name: raw, updates, changes
    group: str
    unread: int  # entries not yet delivered to any consumer of the group
    pending: int  # entries delivered and not yet acknowledged
    oldest_ms: int | None  # the id time of the oldest entry it has not finished; None when it has finished all
    failed: int = 0  # of the pending ones, those that failed in a batch and wait to be retried (`services.turns`)

    @property
    def behind(self) -> int:
        return self.unread + self.pending

    def as_report(self, now_ms: int) -> dict[str, object]:
        """A JSON-ready summary: the group, its unread and pending entries, and how old the oldest of them is."""
        oldest_s = None if self.oldest_ms is None else round(max(now_ms - self.oldest_ms, 0) / 1000, 1)
        return {"stream": self.stream, "group": self.group, "unread": self.unread, "pending": self.pending,
                "failed_to_retry": self.failed, "oldest_unfinished_s": oldest_s}


async def _group_lag(redis: Redis, stream_key: str, name: str,
                     info: Mapping[Any, Any]) -> tuple[GroupLag, tuple[int, int]]:
    """The lag of one group (`info`: its XINFO GROUPS row), and the id of the oldest entry it still needs (an entry
    newer than every entry when it needs none)."""
    group, pending = as_text(info["name"]), int(info["pending"])
    last = _stream_id(info["last-delivered-id"])
    first_unread: Any = await redis.xrange(stream_key, min=f"({_id_text(last)}", max="+", count=1)
    lag = info.get("lag")
    if lag is None:  # Redis cannot tell after some deletions: count, up to a limit
        rows: Any = await redis.xrange(stream_key, min=f"({_id_text(last)}", max="+", count=_COUNT_LIMIT)
        lag = len(rows)
    needed = (last[0], last[1] + 1)  # everything up to the last delivered entry has been read
    if first_unread:
        needed = _stream_id(first_unread[0][0])
    failed = 0
    if pending:
        summary: Any = await redis.xpending(stream_key, group)
        if summary["min"] is not None:  # acknowledged since XINFO counted it: nothing pending after all
            needed = min(needed, _stream_id(summary["min"]))
        failed = sum(int(c["pending"]) for c in summary["consumers"] or [] if as_text(c["name"]) == PARKED)
    unfinished = pending or first_unread
    return GroupLag(name, group, int(lag), pending, needed[0] if unfinished else None, failed), needed


async def group_lags(redis: Redis, keys: Keys, streams: Iterable[str] = CONSUMED_STREAMS) -> list[GroupLag]:
    """Every consumer group of `streams` (the stages' and any subscriber's), with how far behind it is."""
    lags: list[GroupLag] = []
    for name in streams:
        try:
            infos = await redis.xinfo_groups(keys.stream(name))
        except ResponseError:
            continue  # no such stream
        for info in infos:
            lags.append((await _group_lag(redis, keys.stream(name), name, info))[0])
    return lags


async def trim(redis: Redis, keys: Keys, retention_s: int, now_ms: int, *,
               max_len: int | None = None) -> dict[str, int]:
    """Trim each stream to its retention: entries older than `retention_s` and, with `max_len`, entries beyond the
    newest `max_len`, but never an entry some group has not yet read or acknowledged. A group that holds a stream
    past its retention or its cap is logged with its lag. `deadletter` has no group and no cap: it is trimmed by age.

    `MAXLEN` is not used: it trims regardless of consumers and would silently drop unread and pending entries.
    Returns how many entries each stream lost.
    """
    trimmed: dict[str, int] = {}
    retained_from = (now_ms - retention_s * 1000, 0)  # the oldest entry retention alone keeps
    for name in (*CONSUMED_STREAMS, "deadletter"):
        stream = keys.stream(name)
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:
            continue  # no such stream
        lags = [await _group_lag(redis, stream, name, info) for info in groups]
        needed = min((group_needs for _, group_needs in lags), default=None)  # None: no group needs anything
        removed = 0
        if retained_from > (0, 0):
            floor = retained_from if needed is None else min(retained_from, needed)
            removed += await redis.xtrim(stream, minid=_id_text(floor), approximate=False)
        over_cap, length = False, 0
        if max_len is not None and name != "deadletter":
            removed += await _trim_to_length(redis, stream, max_len, needed)
            length = await redis.xlen(stream)
            over_cap = length > max_len
        trimmed[name] = removed
        for lag, _ in lags:
            if lag.oldest_ms is not None and (lag.oldest_ms < retained_from[0] or over_cap):
                log.warning("stream kept past its retention for a consumer group", length=length,
                            retention_s=retention_s, max_len=max_len, **lag.as_report(now_ms))
    return trimmed


async def _trim_to_length(redis: Redis, stream: str, max_len: int, needed: tuple[int, int] | None) -> int:
    """Remove the oldest entries beyond the newest `max_len`, none from `needed` on; returns how many.

    In bulk first, as Redis trims cheaply: whole macro nodes before `needed`, at most the excess (`MINID ~ … LIMIT`,
    nothing read). Then exactly, reading the ids of what is left over the cap before `needed` (less than a node's
    worth, unless a node straddles `needed`), so the cap holds to the entry.
    """
    excess = await redis.xlen(stream) - max_len
    if excess <= 0:
        return 0
    if needed is None:  # no group: nothing to protect
        return await redis.xtrim(stream, maxlen=max_len, approximate=False)
    removed = await redis.xtrim(stream, minid=_id_text(needed), approximate=True, limit=excess)
    while (excess := await redis.xlen(stream) - max_len) > 0:
        rows: Any = await redis.xrange(stream, min="-", max=f"({_id_text(needed)}", count=min(excess, _TRIM_CHUNK))
        if not rows:
            break  # everything beyond the cap is still needed by some group
        last = _stream_id(rows[-1][0])
        removed += await redis.xtrim(stream, minid=_id_text((last[0], last[1] + 1)), approximate=False)
        if len(rows) < min(excess, _TRIM_CHUNK):
            break  # the rest is needed
    return removed


class BackPressure:
    """Holds a publisher back while the pipeline is behind: while the group of some stage (dedup, tracker, notifier;
    those of `stages`) has more than `max_backlog` entries unread or unacknowledged. A stage whose group does not
    exist is not running here and holds nothing back; nor do subscribers' own groups (a stopped subscriber must not
    stop the desk: trimming keeps its entries and reports its lag). `max_backlog` 0 turns it off.

    The groups are asked at most every `check_every_s`, so asking before every publish costs nothing.
    """

    def __init__(self, redis: Redis, keys: Keys, max_backlog: int, *, stages: Iterable[str] = tuple(STAGE_INPUTS),
                 check_every_s: float = 1.0, who: str = "publisher") -> None:
        self._redis = redis
        self._keys = keys
        self._max_backlog = max_backlog
        self._stages = [stage for stage in stages if stage in STAGE_INPUTS]
        self._check_every_s = check_every_s
        self._who = who
        self._checked_at = float("-inf")
        self._behind: dict[str, int] = {}
        self._holding_since: float | None = None
        self._reported_at = 0.0

    async def behind(self) -> dict[str, int]:
        """The stages past `max_backlog`, with how many entries each has to finish; empty when none is."""
        if self._max_backlog <= 0:
            return {}
        if time.monotonic() - self._checked_at >= self._check_every_s:
            self._behind = await self._measure()
            self._checked_at = time.monotonic()
            self._report()
        return self._behind

    async def wait(self) -> float:
        """Return once no stage is past `max_backlog`; returns the seconds waited."""
        started = time.monotonic()
        while True:  # polling: the backlog shrinks in Redis, with nothing here to wake on
            if not await self.behind():
                return time.monotonic() - started
            await asyncio.sleep(self._check_every_s)

    async def _measure(self) -> dict[str, int]:
        over: dict[str, int] = {}
        for stage in self._stages:
            stream, group = STAGE_INPUTS[stage]
            try:
                infos = await self._redis.xinfo_groups(self._keys.stream(stream))
            except ResponseError:
                continue  # no stream yet: nothing waits on it
            for info in infos:
                if as_text(info["name"]) == group:
                    lag, _ = await _group_lag(self._redis, self._keys.stream(stream), stream, info)
                    if lag.behind > self._max_backlog:
                        over[stage] = lag.behind
        return over

    def _report(self) -> None:
        """Log when holding back starts and ends, and once a minute while it lasts."""
        now = time.monotonic()
        if self._behind and self._holding_since is None:
            self._holding_since, self._reported_at = now, now
            log.warning("pipeline behind: holding back", who=self._who, max_backlog=self._max_backlog,
                        **{f"{stage}_backlog": n for stage, n in self._behind.items()})
        elif self._behind and self._holding_since is not None and now - self._reported_at >= 60:
            self._reported_at = now
            log.warning("pipeline still behind: holding back", who=self._who, held_s=round(now - self._holding_since),
                        **{f"{stage}_backlog": n for stage, n in self._behind.items()})
        elif not self._behind and self._holding_since is not None:
            log.info("pipeline caught up: going on", who=self._who, held_s=round(now - self._holding_since, 1))
            self._holding_since = None


async def prune_consumers(redis: Redis, keys: Keys, idle_ms: int) -> int:
    """Forget consumers of the stages' groups that hold nothing and have been idle for `idle_ms`.

    Every process has its own consumer name, so names of stopped processes pile up. A consumer that still holds
    pending entries is kept: deleting it would discard them (the reclaimer takes them over first).
    """
    pruned = 0
    for stream, group in STAGE_INPUTS.values():
        try:
            consumers = await redis.xinfo_consumers(keys.stream(stream), group)
        except ResponseError:
            continue  # no stream or group yet
        for consumer in consumers:
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) >= idle_ms:
                await redis.xgroup_delconsumer(keys.stream(stream), group, consumer["name"])
                pruned += 1
    return pruned
