"""Consumer groups: created where FastStream would not, and asked how much work they still have."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.names import STAGE_INPUTS, Keys


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
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def trim(redis: Redis, keys: Keys, retention_s: int, now_ms: int) -> dict[str, int]:
    """Trim each stream to its retention, never past an entry some group has not yet read or acknowledged.

    `MAXLEN` is not used: it trims regardless of consumers and would silently drop unread and pending entries.
    Returns how many entries each stream lost.
    """
    trimmed: dict[str, int] = {}
    for name in ("raw", "updates", "changes", "deadletter"):
        stream = keys.stream(name)
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:
            continue  # no such stream
        floor = (now_ms - retention_s * 1000, 0)
        for group in groups:
            # Everything up to the last delivered id has been read; of that, only pending entries are unfinished.
            floor = min(floor, _stream_id(group["last-delivered-id"]))
            if int(group["pending"]):
                oldest = await redis.xpending(stream, group["name"])
                floor = min(floor, _stream_id(oldest["min"]))
        if floor > (0, 0):
            trimmed[name] = await redis.xtrim(stream, minid=f"{floor[0]}-{floor[1]}", approximate=False)
    return trimmed


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
