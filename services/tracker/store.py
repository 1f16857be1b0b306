"""Incident state in Redis: loading candidates, and committing a new state with its events in one step."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from schemas import ChangeEvent, Decision, Incident, IncidentVersion, Update
from services.names import Keys
from services.tracker.merge import public_state
from services.tracker.words import Frequencies
from services.wire import DATA_FIELD, as_text, entry_data

# Value of the item index for an entry the tracker read and found not to be about an incident.
NOT_AN_INCIDENT = "-"

# Compare-and-set, then write the state, index it and append its events, all in one script: a crash before it
# leaves everything as it was (the update is retried), a crash after it leaves a retry that finds the evidence
# already merged and nothing to emit. No event is lost and none is told twice.
# The place indexes are checked too: if an incident appeared at one of the update's places since the candidates were
# read (another worker opened it), the clustering decision is stale and the update is clustered again.
# The revision is recorded in the incident's history with the state, so `incidents show --at` can tell what was
# believed when, and why each update joined.
# The place and source indexes are sorted sets scored by each incident's newest evidence, and lose what is older than
# the update's horizon by `KEPT_PAST_THE_HORIZON`: they hold the incidents a report may still join there, not the
# whole history. The incident is also indexed under the update's most distinctive words (word sets: added to while
# they are small enough to find anything, never checked).
# The words the update used are counted (`_COUNT_WORDS`) once it is committed.
# KEYS: incident, changes, incident index, item index, source index, history, word hashes (all sources, the update's
#       source), place indexes..., word sets...
# ARGV: expected rev, state, data field, score, incident id, identity, update id, check places (0|1),
#       number of place indexes, horizon, pruned before, word set limit, number of candidates, candidates...,
#       number of events, events..., history record, field counting reports, words used...
_COMMIT = """
local rev = redis.call('HGET', KEYS[1], 'rev') or '0'
if rev ~= ARGV[1] then return 0 end
local last_place = 8 + tonumber(ARGV[9])
local candidates = tonumber(ARGV[13])
if ARGV[8] == '1' then
  local known = {[ARGV[5]] = true}
  for i = 1, candidates do known[ARGV[13 + i]] = true end
  for i = 9, last_place do
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[10], '+inf')) do
      if not known[member] then return 0 end
    end
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'rev', tonumber(rev) + 1, 'by', ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[11])
redis.call('HSET', KEYS[4], ARGV[6], ARGV[5], ARGV[7], ARGV[5])
for i = 9, last_place do
  redis.call('ZADD', KEYS[i], ARGV[4], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[11])
end
for i = last_place + 1, #KEYS do
  if redis.call('SCARD', KEYS[i]) <= tonumber(ARGV[12]) then redis.call('SADD', KEYS[i], ARGV[5]) end
end
local first_event = 14 + candidates
local events = tonumber(ARGV[first_event])
for i = 1, events do redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[first_event + i]) end
redis.call('XADD', KEYS[6], '*', ARGV[3], ARGV[first_event + events + 1])
local reports_field = first_event + events + 2
if #ARGV > reports_field then
  for _, key in ipairs({KEYS[7], KEYS[8]}) do
    for i = reports_field + 1, #ARGV do redis.call('HINCRBY', key, ARGV[i], 1) end
    redis.call('HINCRBY', key, ARGV[reports_field], 1)
  end
end
return 1
"""
# How long past an update's horizon an incident stays in the place and source indexes: a straggler (an update
# reported long before the newest) still finds what it may join.
KEPT_PAST_THE_HORIZON = timedelta(days=120)
# A word shared by more incidents than this ties none of them to a new report (`load_candidates`); its set
# stops growing one past it.
WORD_SET_LIMIT = 50

WORDS_REPORTS_FIELD = "__reports__"

# One more report using each of ARGV[2..] in each word hash of KEYS; ARGV[1] is the field counting the reports.
_COUNT_WORDS = """
for _, key in ipairs(KEYS) do
  for i = 2, #ARGV do redis.call('HINCRBY', key, ARGV[i], 1) end
  redis.call('HINCRBY', key, ARGV[1], 1)
end
return 1
"""

# Each incident of KEYS as {rev, by, state}, its state left out (false) when its revision and the update that wrote
# it (`by`) are ARGV[i] ("rev by"), the ones the caller already holds parsed: a worker rereads only what changed
# since it last looked.
_LOAD_CHANGED = """
local found = {}
for i, key in ipairs(KEYS) do
  local row = redis.call('HMGET', key, 'rev', 'by', 'state')
  if row[1] and (row[1] .. ' ' .. (row[2] or '')) == ARGV[i] then row[3] = false end
  found[i] = row
end
return found
"""

# The tracker's candidates in one step: the incidents the caller names, as `_LOAD_CHANGED` reads them, and the
# incidents indexed under any of a report's words, leaving out the sets of more than the limit (a word that many
# incidents share ties none of them to the report).
# KEYS: the named incidents, then word sets. ARGV: number of named incidents, their "rev by" held (as
# `_LOAD_CHANGED`), their ids, the word set limit, the prefix of incident keys.
# Answers the rows of the named incidents in order, then {id, rev, by} of each other incident found under the words
# (a dozen, most of them held by the caller already: their states are read only where it does not). Their keys are
# made here from the prefix, in the deployment's slot as every key is: the caller could not name them.
_LOAD_CANDIDATES = """
local named = tonumber(ARGV[1])
local limit = tonumber(ARGV[2 * named + 2])
local prefix = ARGV[#ARGV]
local found, known = {}, {}
for i = 1, named do
  local row = redis.call('HMGET', KEYS[i], 'rev', 'by', 'state')
  if row[1] and (row[1] .. ' ' .. (row[2] or '')) == ARGV[i + 1] then row[3] = false end
  found[i] = row
  known[ARGV[named + i + 1]] = true
end
for i = named + 1, #KEYS do
  if redis.call('SCARD', KEYS[i]) <= limit then
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
      if not known[member] then
        known[member] = true
        local row = redis.call('HMGET', prefix .. member, 'rev', 'by')
        found[#found + 1] = {member, row[1], row[2]}
      end
    end
  end
end
return found
"""

# Two incidents found to be one, in one step: both revisions checked, the survivor stored with both incidents'
# evidence, the other pointing at it and out of the incident index, the survivor indexed under the other's places
# and words, the events appended, and both histories told.
# KEYS: survivor, absorbed, changes, incident index, survivor history, absorbed history, place indexes..., word
#       sets...
# ARGV: survivor rev, absorbed rev, survivor state, absorbed state, data field, survivor score, survivor id,
#       absorbed id, number of events, events..., survivor record, absorbed record, number of place indexes, word set
#       limit, update id
_COMMIT_MERGE = """
if (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[2], 'rev') or '0') ~= ARGV[2] then return 0 end
local events = tonumber(ARGV[9])
local by = ARGV[14 + events]
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'rev', tonumber(ARGV[1]) + 1, 'by', by)
redis.call('HSET', KEYS[2], 'state', ARGV[4], 'rev', tonumber(ARGV[2]) + 1, 'by', by)
redis.call('ZREM', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
local last_place = 6 + tonumber(ARGV[12 + events])
for i = 7, last_place do redis.call('ZADD', KEYS[i], ARGV[6], ARGV[7]) end
for i = last_place + 1, #KEYS do
  if redis.call('SCARD', KEYS[i]) <= tonumber(ARGV[13 + events]) then redis.call('SADD', KEYS[i], ARGV[7]) end
end
for i = 1, events do redis.call('XADD', KEYS[3], '*', ARGV[5], ARGV[9 + i]) end
redis.call('XADD', KEYS[5], '*', ARGV[5], ARGV[10 + events])
redis.call('XADD', KEYS[6], '*', ARGV[5], ARGV[11 + events])
return 1
"""
@dataclass(frozen=True)
class FirstLook:
    """What the tracker reads before clustering an update (`IncidentStore.first_look`)."""

    everywhere: Frequencies  # of the update's words, over all sources
    of_source: Frequencies  # and over its source's reports
    decision: str | None  # `item_decision` of the entry it is linked by
    at_places: list[str]  # `incidents_at` its places


def _frequencies(words: list[str], values: list[Any]) -> Frequencies:
    """The frequencies an HMGET of `words` and then `WORDS_REPORTS_FIELD` answered."""
    used = {word: int(value) for word, value in zip(words, values, strict=False) if value is not None}
    return Frequencies(used, int(values[-1] or 0))


def _members(replies: list[Any]) -> list[str]:
    """The members of several sorted sets read at once, each once, in order."""
    return sorted({as_text(member) for members in replies for member in members})


_FOLLOWED_MERGES = 8  # an incident merged into one merged into another…: never a loop, but bounded anyway


class IncidentStore:
    """Reads and writes incidents under one key prefix.

    With `remember` > 0 the store keeps that many parsed incidents, each with the revision it was read at and the
    update that wrote it, and rereads an incident's state only when either moved on: the tracker loads the same few
    dozen candidates for report after report, and parsing them was most of its time. Every commit adds one to the
    revision; the writer is compared too because a Redis failover can rewind a deployment to an earlier moment, after
    which another update may commit the same revision number.
    """

    def __init__(self, redis: Redis, keys: Keys, remember: int = 0) -> None:
        self._redis = redis
        self._keys = keys
        self._remember = remember
        self._parsed: OrderedDict[str, tuple[Incident, int, str]] = OrderedDict()  # id → incident, rev, writer

    async def item_decision(self, name: str) -> str | None:
        """What the tracker decided for an entry identity or update id: an incident id, NOT_AN_INCIDENT, or None."""
        found = await self._redis.hget(self._keys.item_index, name)
        return as_text(found) if found else None

    async def incidents_at(self, places: Iterable[str], since: datetime) -> list[str]:
        """Ids of incidents whose reports name any of `places` and whose newest evidence is from `since` on (an
        inverted index, never a scan)."""
        keys = [self._keys.place(place) for place in sorted(set(places))]
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrangebyscore(key, since.timestamp(), "+inf")
            found = await pipe.execute()
        return _members(found)

    async def first_look(self, words: Iterable[str], source_id: str, item: str, places: Iterable[str],
                         since: datetime) -> FirstLook:
        """`word_frequencies(words, source_id)`, `item_decision(item)` and `incidents_at(places, since)` in one
        round trip: what the tracker reads before clustering an update."""
        wanted = sorted(set(words))
        place_keys = [self._keys.place(place) for place in sorted(set(places))]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._keys.item_index, item)
            if wanted:
                pipe.hmget(self._keys.tracker_words, [*wanted, WORDS_REPORTS_FIELD])
                pipe.hmget(self._keys.source_words(source_id), [*wanted, WORDS_REPORTS_FIELD])
            for key in place_keys:
                pipe.zrangebyscore(key, since.timestamp(), "+inf")
            decision, *replies = await pipe.execute()
        everywhere, of_source = ((_frequencies(wanted, replies[0]), _frequencies(wanted, replies[1])) if wanted
                                 else (Frequencies({}, 0), Frequencies({}, 0)))
        return FirstLook(everywhere, of_source, as_text(decision) if decision else None,
                         _members(replies[2:] if wanted else replies))

    async def word_frequencies(self, words: Iterable[str], source_id: str) -> tuple[Frequencies, Frequencies]:
        """In how many reports the tracker read each of `words`, and how many reports it read: over all sources, and
        over `source_id`'s alone."""
        wanted = sorted(set(words))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._keys.tracker_words, [*wanted, WORDS_REPORTS_FIELD])
            pipe.hmget(self._keys.source_words(source_id), [*wanted, WORDS_REPORTS_FIELD])
            everywhere, of_source = await pipe.execute()
        return _frequencies(wanted, everywhere), _frequencies(wanted, of_source)

    async def record_not_an_incident(self, update: Update, used: Iterable[str] = ()) -> None:
        """Remember that `update` opened no incident, so that its copies need not wait for it, and count one more
        report of its source using each of the words it `used` (the document frequencies of `services.tracker.words`,
        over all sources and over this one), atomically."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.item_index,
                      mapping={update.identity: NOT_AN_INCIDENT, update.update_id: NOT_AN_INCIDENT})
            if words := sorted(set(used)):
                keys = [self._keys.tracker_words, self._keys.source_words(update.source_id)]
                pipe.eval(_COUNT_WORDS, len(keys), *keys, WORDS_REPORTS_FIELD, *words)
            await pipe.execute()

    async def incidents_of_source(self, source_id: str, since: datetime) -> list[str]:
        """Ids of incidents `source_id` reported on with evidence newer than `since`."""
        members = await self._redis.zrangebyscore(self._keys.source_incidents(source_id), since.timestamp(), "+inf")
        return sorted(as_text(m) for m in members)

    async def load(self, incident_ids: Iterable[str]) -> dict[str, tuple[Incident, int]]:
        """Each incident found, with the revision to pass to `commit`. An incident merged into another is
        answered with the one it was merged into (under the id asked for)."""
        wanted = list(dict.fromkeys(incident_ids))
        return await self._following_merges(wanted, await self._load_stored(wanted))

    async def load_candidates(self, incident_ids: Iterable[str],
                              words: Iterable[str]) -> tuple[list[str], dict[str, tuple[Incident, int]]]:
        """`incident_ids` and the incidents indexed under any of `words` (but those of a word more than
        `WORD_SET_LIMIT` incidents share), sorted by id, and `load` of them: in one round trip when this store holds
        the current state of every incident found under the words, else two."""
        named = sorted(set(incident_ids))
        word_keys = [self._keys.word_incidents(word) for word in sorted(set(words))]
        keys = [*map(self._keys.incident, named), *word_keys]
        if not keys:
            return [], {}
        rows = await self._redis.eval(_LOAD_CANDIDATES, len(keys), *keys, len(named), *self._held(named), *named,
                                      WORD_SET_LIMIT, self._keys.incident(""))
        found = self._parsed_rows(named, rows[:len(named)])
        others = [(as_text(incident_id), rev, by) for incident_id, rev, by in rows[len(named):]]
        unheld = []
        for incident_id, rev, by in others:
            if rev is None:
                continue
            if self._held_version(incident_id) == f"{as_text(rev)} {as_text(by) if by else ''}":
                found[incident_id] = self._parsed[incident_id][:2]
                self._parsed.move_to_end(incident_id)
            else:
                unheld.append(incident_id)
        found |= await self._load_stored(unheld)  # a second round trip, only for what it does not hold
        candidates = sorted({*named, *(incident_id for incident_id, *_ in others)})
        return candidates, await self._following_merges(candidates, found)

    async def _following_merges(self, wanted: list[str],
                                found: dict[str, tuple[Incident, int]]) -> dict[str, tuple[Incident, int]]:
        """`load`'s answer for `wanted`, from the incidents `found` (by id): an incident merged into another is
        answered with the one it was merged into, read as needed."""
        for _ in range(_FOLLOWED_MERGES):
            survivors = {incident.merged_into for incident, _ in found.values() if incident.merged_into} - set(found)
            if not survivors:
                break
            found |= await self._load_stored(sorted(survivors))
        loaded: dict[str, tuple[Incident, int]] = {}
        for incident_id in wanted:
            current = found.get(incident_id)
            for _ in range(_FOLLOWED_MERGES):
                if current is None or current[0].merged_into is None:
                    break
                current = found.get(current[0].merged_into)
            if current is not None and current[0].merged_into is None:
                loaded[incident_id] = current
        return loaded

    async def _load_stored(self, ids: list[str]) -> dict[str, tuple[Incident, int]]:
        if not ids:
            return {}
        if not self._remember:
            async with self._redis.pipeline(transaction=False) as pipe:
                for incident_id in ids:
                    pipe.hmget(self._keys.incident(incident_id), ["rev", "by", "state"])
                rows = await pipe.execute()
        else:
            rows = await self._redis.eval(_LOAD_CHANGED, len(ids), *map(self._keys.incident, ids), *self._held(ids))
        return self._parsed_rows(ids, rows)

    def _held(self, ids: list[str]) -> list[str]:
        """`_held_version` of each of `ids`."""
        return [self._held_version(incident_id) for incident_id in ids]

    def _held_version(self, incident_id: str) -> str:
        """The "rev by" of the state this store holds parsed for `incident_id` ("": none): the form in which the
        load scripts compare it with the stored one, and `load_candidates` with the revisions they answer."""
        held = self._parsed.get(incident_id)
        return f"{held[1]} {held[2]}" if held else ""

    def _parsed_rows(self, ids: list[str], rows: list[Any]) -> dict[str, tuple[Incident, int]]:
        """The incidents of `ids` from their rows (rev, by, state: no state when the one held is current), parsing
        and holding each state sent."""
        found: dict[str, tuple[Incident, int]] = {}
        for incident_id, (rev, by, state) in zip(ids, rows, strict=True):
            if rev is None:
                continue
            if state:
                incident = Incident.model_validate_json(state)
                found[incident_id] = (incident, int(rev))
                self._hold(incident_id, incident, int(rev), as_text(by) if by else "")
            elif incident_id in self._parsed:
                incident, held_rev, _ = self._parsed[incident_id]
                found[incident_id] = (incident, held_rev)
                self._parsed.move_to_end(incident_id)
        return found

    def _hold(self, incident_id: str, incident: Incident, rev: int, by: str) -> None:
        """Keep an incident just parsed, the most recently read last, forgetting the least recent past `remember`."""
        if not self._remember:
            return
        self._parsed[incident_id] = (incident, rev, by)
        self._parsed.move_to_end(incident_id)
        while len(self._parsed) > self._remember:
            self._parsed.popitem(last=False)

    async def recent(self, limit: int) -> list[Incident]:
        """The `limit` incidents with the newest evidence, newest first."""
        ids = [as_text(m) for m in await self._redis.zrevrange(self._keys.incident_index, 0, max(limit, 1) - 1)]
        loaded = await self.load(ids)
        return [loaded[i][0] for i in ids if i in loaded]

    async def all(self) -> list[Incident]:
        """Every incident, oldest activity first (for replay output and the console; not for the hot path)."""
        ids = [as_text(m) for m in await self._redis.zrange(self._keys.incident_index, 0, -1)]
        loaded = await self.load(ids)
        return [loaded[i][0] for i in ids if i in loaded]

    async def commit(
        self,
        incident: Incident,
        expected_rev: int,
        events: list[ChangeEvent],
        update: Update,
        places: Iterable[str],
        candidates: list[str] | None,
        decision: Decision,
        words: Iterable[str] = (),
        horizon: datetime | None = None,
        used: Iterable[str] = (),
    ) -> bool:
        """Store `incident`, append `events`, record the revision with its `decision` in the incident's history, and
        count the words the update `used` (as `record_not_an_incident` does), atomically; the incident is indexed under
        `words`.

        False when another worker changed the incident first, or, when `candidates` (the incidents considered at
        the update's places, those with evidence from `horizon` on: `incidents_at`) is given, when an incident not
        among them has appeared at those places since. Without a `horizon`, every incident at those places counts
        and none is pruned from the indexes.
        """
        since = horizon.timestamp() if horizon else 0.0
        pruned_before = (horizon - KEPT_PAST_THE_HORIZON).timestamp() if horizon else 0.0
        keys = [
            self._keys.incident(incident.incident_id),
            self._keys.changes,
            self._keys.incident_index,
            self._keys.item_index,
            self._keys.source_incidents(update.source_id),
            self._keys.incident_history(incident.incident_id),
            self._keys.tracker_words,
            self._keys.source_words(update.source_id),
            *(place_keys := [self._keys.place(place) for place in sorted(set(places))]),
            *(self._keys.word_incidents(word) for word in sorted(set(words))),
        ]
        record = IncidentVersion(
            incident_id=incident.incident_id, rev=expected_rev + 1, version=incident.version,
            believed_at=update.fetched_at, decision=decision, events=[event.summary for event in events],
            state=public_state(incident),
        )
        args: list[str | int | float] = [
            str(expected_rev),
            incident.model_dump_json(),
            DATA_FIELD,
            incident.updated_at.timestamp(),
            incident.incident_id,
            update.identity,
            update.update_id,
            "1" if candidates is not None else "0",
            len(place_keys),
            since,
            pruned_before,
            WORD_SET_LIMIT,
            len(candidates or []),
            *(candidates or []),
            len(events),
            *(event.model_dump_json() for event in events),
            record.model_dump_json(),
            WORDS_REPORTS_FIELD,
            *sorted(set(used)),
        ]
        done = await self._redis.eval(_COMMIT, len(keys), *keys, *args)
        if done:
            # What was just written need not be read back: the next report about it is most often about to come.
            self._hold(incident.incident_id, incident, expected_rev + 1, update.update_id)
        return bool(done)

    async def commit_merge(self, survivor: Incident, survivor_rev: int, absorbed: Incident, absorbed_rev: int,
                           events: list[ChangeEvent], update: Update, decision: Decision) -> bool:
        """Store two incidents found to be one (`merge.merge_incidents`), atomically; False when either changed
        since it was read."""
        keys = [
            self._keys.incident(survivor.incident_id),
            self._keys.incident(absorbed.incident_id),
            self._keys.changes,
            self._keys.incident_index,
            self._keys.incident_history(survivor.incident_id),
            self._keys.incident_history(absorbed.incident_id),
            *(place_keys := [self._keys.place(place) for place in sorted(set(absorbed.places))]),
            *(self._keys.word_incidents(word) for word in sorted(absorbed.terms)),
        ]

        def record(incident: Incident, rev: int, told: list[ChangeEvent]) -> str:
            return IncidentVersion(
                incident_id=incident.incident_id, rev=rev + 1, version=incident.version, believed_at=update.fetched_at,
                decision=decision, events=[event.summary for event in told], state=public_state(incident),
            ).model_dump_json()

        args: list[str | int | float] = [
            str(survivor_rev), str(absorbed_rev), survivor.model_dump_json(), absorbed.model_dump_json(), DATA_FIELD,
            survivor.updated_at.timestamp(), survivor.incident_id, absorbed.incident_id,
            len(events), *(event.model_dump_json() for event in events),
            record(survivor, survivor_rev, events), record(absorbed, absorbed_rev, []),
            len(place_keys), WORD_SET_LIMIT, update.update_id,
        ]
        done = bool(await self._redis.eval(_COMMIT_MERGE, len(keys), *keys, *args))
        if done:
            self._hold(survivor.incident_id, survivor, survivor_rev + 1, update.update_id)
            self._hold(absorbed.incident_id, absorbed, absorbed_rev + 1, update.update_id)
        return done

    async def history(self, incident_id: str) -> list[IncidentVersion]:
        """Every stored revision of the incident, and of the incidents merged into it, in the order they were
        believed (empty for an unknown incident)."""
        own = await self._history_of(incident_id)
        if not own:
            return []
        loaded = (await self.load([incident_id])).get(incident_id)
        # An incident merged into another has only its own history; the survivor's holds both.
        others = loaded[0].merged_from if loaded and loaded[0].incident_id == incident_id else []
        combined = own + [version for other in others for version in await self._history_of(other)]
        return sorted(combined, key=lambda version: (version.believed_at, version.incident_id != incident_id,
                                                     version.rev))

    async def _history_of(self, incident_id: str) -> list[IncidentVersion]:
        rows = await self._redis.xrange(self._keys.incident_history(incident_id))
        return [IncidentVersion.model_validate_json(data) for _, data in entry_data(rows)]


def believed_at(history: list[IncidentVersion], at: datetime) -> IncidentVersion | None:
    """The revision livedesk held at `at`: the last one believed at or before it (None before the first)."""
    held = [version for version in history if version.believed_at <= at]
    return max(held, key=lambda version: (version.believed_at, version.rev)) if held else None
