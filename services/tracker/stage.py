"""The tracker stage's router: consumes `updates` (group `tracker`), stores incidents, publishes on `changes`."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog
from faststream.redis import RedisRouter

from schemas import ChangeEvent, Decision, Incident, ItemRef, RevisionKind, Update, Verdict
from services.cpu_limit import cpu_limit
from services.errors import TransientError
from services.names import STAGE_INPUTS
from services.poller.scheduling_state import mark_feed_hot, schedule_policy
from services.stage import InTurn, StageContext, subscribe_stream_batches
from services.tracker.cluster import (
    FOLLOW_UP_WINDOW,
    WINDOW,
    Match,
    Report,
    best_of,
    same_incident,
    specific_places,
    to_merge,
)
from services.tracker.cluster import score as score_of
from services.tracker.extract import extract
from services.tracker.extractors import Extractor, load_extractor
from services.tracker.facts import Facts, only_added
from services.tracker.merge import merge, merge_incidents, open_incident
from services.tracker.places import load_gazetteer
from services.tracker.store import NOT_AN_INCIDENT, FirstLook, IncidentStore
from services.tracker.words import counts, rare_names, site_furniture, weighted, with_report

log = structlog.get_logger(__name__)

_MAX_ATTEMPTS = 8
_MAX_MERGES = 32  # incidents one report may merge, one pair at a time
_INDEXED_WORDS = 8  # an incident is found again under each report's most distinctive words
_WORDS_TO_OPEN = 6  # an incident naming no place opens on this many distinctive words: what finds it again
# Parsed incidents a tracker worker keeps between reports (`IncidentStore`): the candidates of the stories running
# now, a few kB to a few hundred kB each.
_PARSED_INCIDENTS_HELD = 2_000


class ConcurrentUpdateError(TransientError):
    """Other workers kept changing the same incident; the update stays pending and is retried."""


class OriginalNotYetTrackedError(TransientError):
    """A copy arrived before the entry it copies was tracked; it is retried once the original has been."""


def new_incident_id(update: Update) -> str:
    """Deterministic, so a replay of the same archive names its incidents the same way."""
    return "i_" + hashlib.sha256(update.update_id.encode()).hexdigest()[:16]


def _linked_by(update: Update) -> str:
    """The item whose tracker decision links this update to an incident: its entry, or for a copy its original."""
    return update.duplicate_of if update.verdict is Verdict.duplicate and update.duplicate_of else update.identity


def _linked_incident(update: Update, decision: str | None) -> str | None:
    """The incident this update belongs to by identity, given the `decision` recorded for `_linked_by(update)`."""
    if update.verdict is Verdict.duplicate and update.duplicate_of:
        if decision is None:
            raise OriginalNotYetTrackedError(f"update {update.update_id}: original {update.duplicate_of} not tracked")
        return None if decision == NOT_AN_INCIDENT else decision
    return None if decision in (None, NOT_AN_INCIDENT) else decision


async def heat_sources(ctx: StageContext, incident: Incident, update: Update) -> None:
    """Every feed that reports on a changing incident is polled at the hot interval until the incident is quiet."""
    await heat(ctx, dict.fromkeys(incident.sources, update.fetched_at))


async def heat(ctx: StageContext, changed: Mapping[str, datetime]) -> None:
    """Mark each feed of `changed` hot from when an incident it reported on changed (`heat_sources`, for a batch: a
    feed's latest change stands for its earlier ones, as a hot period is never shortened). Feeds that are not in the
    registry (a replay's sources) are left alone, found in one round trip."""
    if not changed:
        return
    policy = schedule_policy(ctx.settings)
    registered = await ctx.redis.hmget(ctx.keys.feeds, list(changed))
    for (source_id, changed_at), known in zip(changed.items(), registered, strict=True):
        if known is not None:
            await mark_feed_hot(ctx.redis, ctx.keys, source_id, changed_at, policy)


def places_horizon(update: Update) -> datetime:
    """How far back the incidents at an update's places are its candidates: those it may join on any evidence but
    names. An older one it names (a trial years on) is found under the distinctive words both share."""
    return update.reported_at - FOLLOW_UP_WINDOW


async def process(store: IncidentStore, update: Update, extractor: Extractor = extract) -> list[ChangeEvent]:
    """Merge one update into its incident (or open one) and return the events committed with it; `extractor` reads
    the update's facts (`services.tracker.extractors`)."""
    return (await track(store, update, extractor)).events


@dataclass(frozen=True)
class Tracked:
    """What tracking one update committed: its events, and the incident as committed (None when nothing was)."""

    events: list[ChangeEvent]
    incident: Incident | None = None


@dataclass(frozen=True)
class Reading:
    """What an update's own text states: its facts and its words. It depends on no other update, so copies of the
    tracker read their batches side by side before taking their turn (`services.turns`)."""

    facts: Facts
    found: Counter[str]


def _restates(update: Update) -> bool:
    # A copy, or an edit that changed no fact, states nothing new: it is only recorded, so there is no text to read.
    return update.verdict is Verdict.duplicate or (
        update.revision is not None and update.revision.kind is RevisionKind.cosmetic
    )


def read_update(update: Update, extractor: Extractor = extract, cpu_s: float = 0) -> Reading:
    """The facts and words of `update` (none for one that restates another), in at most `cpu_s` of CPU (0: no limit;
    past it, `CPUTimeExceeded`)."""
    if _restates(update):
        return Reading(Facts(), Counter())
    with cpu_limit(cpu_s, f"update {update.update_id} ({update.source_id}, {len(update.text):,} characters): reading "
                          "its facts"):
        return Reading(extractor(update.title, update.text), counts(update.title, update.text))


async def track(store: IncidentStore, update: Update, extractor: Extractor = extract,
                reading: Reading | None = None) -> Tracked:
    """`process`, also returning the incident it committed; `reading` is `read_update(update, extractor)` when it
    was read already."""
    restates = _restates(update)
    reading = reading or read_update(update, extractor)
    facts, found = reading.facts, reading.found
    places = specific_places(facts.places, facts)
    horizon = places_horizon(update)
    looked = await store.first_look(found, update.source_id, _linked_by(update), places, horizon)
    everywhere, of_source = looked.everywhere, looked.of_source
    unused: FirstLook | None = looked  # what else was read with the frequencies: for the first round only
    furniture = site_furniture(found, of_source)
    read = Counter({word: count for word, count in found.items() if word not in furniture})
    report = Report(update, facts, weighted(read, everywhere.used, everywhere.reports),
                    rare_names(read, update.text, everywhere, of_source))
    distinctive = sorted(report.words, key=lambda word: (-report.words[word], word))[:_INDEXED_WORDS]
    attempts = merges = 0
    while attempts < _MAX_ATTEMPTS:
        attempts += 1
        look, unused = unused, None  # a later round (a merge, a commit that lost a race) reads afresh
        linked = _linked_incident(update, look.decision if look else await store.item_decision(_linked_by(update)))
        if linked is None and restates:
            # A copy or cosmetic edit of an entry that was not about an incident. Its own copies look it up: recorded
            # as no incident, they are dropped too instead of waiting for it forever (OriginalNotYetTrackedError).
            # An entry already in an incident keeps it: a copy of another text does not take it out.
            if await store.item_decision(update.identity) in (None, NOT_AN_INCIDENT):
                await store.record_not_an_incident(update)
            return Tracked([])
        if linked:
            candidate_ids: list[str] | None = None
            loaded = await store.load([linked])
        else:
            # An update that names no place of its own (a police follow-up) is matched against what its source
            # has been reporting on; any update, against the incidents that share its most distinctive words.
            candidate_ids, loaded = await store.load_candidates(
                (look.at_places if look else await store.incidents_at(places, horizon)) if places
                else await store.incidents_of_source(update.source_id, update.reported_at - WINDOW),
                distinctive,
            )
        # An incident merged into another is loaded as that one: each incident once, by its own id.
        loaded = {incident.incident_id: (incident, rev) for incident, rev in loaded.values()} | (
            {linked: loaded[linked]} if linked and linked in loaded else {}
        )
        current: Incident | None
        score: int | None = None
        stated = facts
        if linked and linked in loaded:
            current, rev = loaded[linked]
            how = "copy" if update.verdict is Verdict.duplicate else "same entry"
            reason = "copy of a merged entry" if how == "copy" else "an edit of an entry already merged"
            if update.revision is not None:
                stated = only_added(facts, update.revision.added)
        else:
            matches = [score_of(incident, report) for incident, _ in loaded.values()]
            match = best_of(matches)
            if (merges < _MAX_MERGES and match is not None
                    and (others := to_merge(matches, match, lambda best: merge(best, update, facts)[0]))):
                if await _merge(store, loaded, match, others[0], update):
                    # A report may tie several incidents together: each merge is progress, not a failed attempt.
                    attempts, merges = attempts - 1, merges + 1
                continue  # clustered again, against the merged incident
            current, rev = loaded[match.incident.incident_id] if match else (None, 0)
            how = "matched" if match else "opened"
            reason = "; ".join(match.reasons) if match else _opening_reason(facts)
            score = match.score if match else None
        if current is None:
            if not facts.is_incident or (facts.location is None and not _anchored_without_a_place(report)):
                # Without a place there is little to anchor a new incident to and for later reports to be matched
                # against: only someone hurt or killed, and words distinctive enough to find it again.
                await store.record_not_an_incident(update, used=found)
                log.info("update opens no incident", update_id=update.update_id, title=update.title,
                         reason="not about an incident" if not facts.is_incident else "names no place")
                return Tracked([])
            incident, events = open_incident(new_incident_id(update), update, facts)
            incident = incident.model_copy(update={"terms": with_report({}, report.words)})
        else:
            incident, events = merge(current, update, stated)
            if incident == current:
                return Tracked([])
            if ItemRef(source_id=update.source_id, guid=update.guid) not in current.items:
                incident = incident.model_copy(update={"terms": with_report(current.terms, report.words)})
        decision = _decision(update, how, reason, score)
        committed = await store.commit(incident, rev, events, update, places, candidate_ids if places else None,
                                       decision, words=distinctive, horizon=horizon, used=found)
        if committed:
            log.info(
                "update merged",
                update_id=update.update_id,
                verdict=update.verdict.value,
                incident_id=incident.incident_id,
                version=incident.version,
                events=[event.type.value for event in events],
                reason=reason,
            )
            return Tracked(events, incident)
    raise ConcurrentUpdateError(f"update {update.update_id}: incident kept changing under it")


def _decision(update: Update, how: str, reason: str, score: int | None) -> Decision:
    """The clustering decision an incident's history keeps for `update`: how it joined (opened, matched, merged …),
    why, and the score."""
    return Decision(update_id=update.update_id, source_id=update.source_id, guid=update.guid,
                    verdict=update.verdict.value, how=how, reason=reason, score=score)


async def _merge(store: IncidentStore, loaded: dict[str, tuple[Incident, int]], best: Match, other: Match,
                 update: Update) -> bool:
    """Merge two incidents `update` joins both of, found to be one; the one first reported survives. False when
    another worker changed either first."""
    (survivor, survivor_rev), (absorbed, absorbed_rev) = sorted(
        (loaded[best.incident.incident_id], loaded[other.incident.incident_id]),
        key=lambda pair: (pair[0].opened_at, pair[0].incident_id),
    )
    merged, pointer, events = merge_incidents(survivor, absorbed, update)
    tie = same_incident(survivor, absorbed)
    decision = _decision(update, "merged", score=tie.score,
                         reason=f"{absorbed.incident_id} is this incident: {'; '.join(tie.reasons)} (the update "
                                f"matched both: {'; '.join(best.reasons)} / {'; '.join(other.reasons)})")
    if not await store.commit_merge(merged, survivor_rev, pointer, absorbed_rev, events, update, decision):
        return False
    log.info("incidents merged", survivor=survivor.incident_id, absorbed=absorbed.incident_id,
             update_id=update.update_id, reason=decision.reason)
    return True


def _anchored_without_a_place(report: Report) -> bool:
    facts = report.facts
    hurt = bool(facts.casualties) or facts.dead is not None or facts.injured is not None
    return hurt and len(report.words) >= _WORDS_TO_OPEN


def _opening_reason(facts: Facts) -> str:
    category = facts.category.value.value if facts.category else "other"
    place = facts.location.value.name if facts.location else "no place"
    return f"no matching incident: a {category} in {place}"


def build_router(ctx: StageContext) -> RedisRouter:
    """The tracker stage's router. A factory, because stream names depend on the configured key prefix."""
    router = RedisRouter()
    stream, group = STAGE_INPUTS["tracker"]
    store = IncidentStore(ctx.redis, ctx.keys, remember=_PARSED_INCIDENTS_HELD)
    extractor = load_extractor(ctx.settings.tracker_extractor)
    cpu_s = ctx.settings.extract_cpu_s
    load_gazetteer()

    async def track_batch(batch: list[tuple[Update, str]], in_turn: InTurn) -> list[str]:
        # In stream order, one at a time: an update's clustering depends on the ones before it. One that fails stays
        # pending (its id is not returned) and is retried alone by the reclaimer, where failures are counted towards
        # dead-lettering it; the rest of the batch goes on.
        readings: dict[str, Reading | Exception] = {}
        for update, entry_id in batch:
            try:
                readings[entry_id] = read_update(update, extractor, cpu_s)
            except Exception as error:  # logged below, as any failure
                readings[entry_id] = error
        await in_turn()
        done: list[str] = []
        changed: dict[str, datetime] = {}
        for update, entry_id in batch:
            reading = readings[entry_id]
            try:
                if isinstance(reading, Exception):
                    raise reading
                tracked = await track(store, update, extractor, reading)
            except Exception as error:  # any failure of one update: the reclaimer retries it alone
                log.warning("update failed", update_id=update.update_id, source_id=update.source_id,
                            entry_id=entry_id, error=f"{type(error).__name__}: {error}")
                continue
            if tracked.events and tracked.incident is not None:
                for source_id in tracked.incident.sources:
                    changed[source_id] = max(changed.get(source_id, update.fetched_at), update.fetched_at)
            done.append(entry_id)
        await heat(ctx, changed)
        return done

    async def track_one(update: Update) -> None:
        tracked = await track(store, update, extractor, read_update(update, extractor, cpu_s))
        if tracked.events and tracked.incident is not None:
            await heat_sources(ctx, tracked.incident, update)

    subscribe_stream_batches(router, ctx, ctx.keys.stream(stream), group, Update, track_batch, track_one)
    return router
