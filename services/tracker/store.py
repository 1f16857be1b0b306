"""Incident state in Redis: loading candidates, and committing a new state with its events in one step."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from schemas import ChangeEvent, Incident, Update
from services.names import Keys
from services.wire import DATA_FIELD

# Compare-and-set on the incident's revision, then write the state, index it and append its events, all in one
# script: a crash before it leaves everything as it was (the update is retried), a crash after it leaves a retry
# that finds the evidence already merged and nothing to emit. No event is lost and none is told twice.
_COMMIT = """
local rev = redis.call('HGET', KEYS[1], 'rev') or '0'
if rev ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'rev', tonumber(rev) + 1)
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
local events = tonumber(ARGV[6])
for i = 1, events do redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[6 + i]) end
local item = 6 + events
redis.call('HSET', KEYS[4], ARGV[item + 1], ARGV[5], ARGV[item + 2], ARGV[5])
for i = 5, #KEYS do redis.call('SADD', KEYS[i], ARGV[5]) end
return 1
"""


class IncidentStore:
    """Reads and writes incidents under one key prefix."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def linked_incident(self, update: Update) -> str | None:
        """The incident this update's entry (or, for a copy, its original) was already merged into."""
        names = [update.identity] + ([update.duplicate_of] if update.duplicate_of else [])
        for found in await self._redis.hmget(self._keys.item_index, names):
            if found:
                return found.decode() if isinstance(found, bytes) else str(found)
        return None

    async def incidents_at(self, places: Iterable[str]) -> list[str]:
        """Ids of incidents whose reports name any of `places` (an inverted index, never a scan)."""
        keys = [self._keys.place(place) for place in sorted(set(places))]
        if not keys:
            return []
        members = await self._redis.sunion(keys)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def load(self, incident_ids: Iterable[str]) -> dict[str, tuple[Incident, int]]:
        """Each incident found, with the revision to pass to `commit`."""
        ids = list(dict.fromkeys(incident_ids))
        async with self._redis.pipeline(transaction=False) as pipe:
            for incident_id in ids:
                pipe.hmget(self._keys.incident(incident_id), ["state", "rev"])
            rows = await pipe.execute()
        loaded: dict[str, tuple[Incident, int]] = {}
        for incident_id, (state, rev) in zip(ids, rows, strict=True):
            if state is not None:
                loaded[incident_id] = (Incident.model_validate_json(state), int(rev))
        return loaded

    async def all(self) -> list[Incident]:
        """Every incident, oldest activity first (for replay output and the console; not for the hot path)."""
        members = await self._redis.zrange(self._keys.incident_index, 0, -1)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        loaded = await self.load(ids)
        return [loaded[i][0] for i in ids if i in loaded]

    async def commit(
        self, incident: Incident, expected_rev: int, events: list[ChangeEvent], update: Update, places: Iterable[str]
    ) -> bool:
        """Store `incident` and append `events` atomically; False when another worker changed it first."""
        keys = [
            self._keys.incident(incident.incident_id),
            self._keys.changes,
            self._keys.incident_index,
            self._keys.item_index,
            *(self._keys.place(place) for place in sorted(set(places))),
        ]
        args: list[str | int | float] = [
            str(expected_rev),
            incident.model_dump_json(),
            DATA_FIELD,
            incident.updated_at.timestamp(),
            incident.incident_id,
            len(events),
            *(event.model_dump_json() for event in events),
            update.identity,
            update.update_id,
        ]
        done = await self._redis.eval(_COMMIT, len(keys), *keys, *args)
        return bool(done)
