"""Merging one update into an incident, and the change events that tell what it changed. Pure functions.

The incident's facts follow from its evidence (`services.tracker.evidence`); a change event is the difference
between the state before and after one update.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from schemas import (
    ChangeEvent,
    EventType,
    Evidence,
    Incident,
    ItemRef,
    Location,
    Statement,
    Update,
    Verdict,
)
from services.identity import normalise_text
from services.tracker.casualties import may_be_one_person
from services.tracker.evidence import CASUALTY, INVESTIGATION, derive, newest, observe, with_evidence
from services.tracker.facts import Facts
from services.tracker.words import with_report

_COUNT_EVENTS = {
    "dead": EventType.casualties_updated,
    "injured": EventType.casualties_updated,
    "arrests": EventType.arrests_updated,
    "charges": EventType.charges_updated,
}


def _add_unique(items: list[Any], new: Iterable[Any]) -> list[Any]:
    result = list(items)
    for item in new:
        if item not in result:
            result.append(item)
    return result


def _new_statements(incident: Incident, update: Update, facts: Facts) -> list[Statement]:
    known = {normalise_text(s.quote) for s in incident.statements}
    fresh: list[Statement] = []
    for found in facts.statements:
        if normalise_text(found.quote) in known:
            continue
        known.add(normalise_text(found.quote))
        fresh.append(
            Statement(
                speaker=found.speaker,
                quote=found.quote,
                source_id=update.source_id,
                guid=update.guid,
                reported_at=update.reported_at,
            )
        )
    return fresh


def open_incident(incident_id: str, update: Update, facts: Facts) -> tuple[Incident, list[ChangeEvent]]:
    """A new incident from its first update, announced by one `incident_opened` event carrying the whole state."""
    empty = Incident(
        incident_id=incident_id,
        version=1,
        title=update.title,
        opened_at=update.reported_at,
        updated_at=update.reported_at,
    )
    incident = _absorb(empty, update, facts)
    summary = f"incident opened: {incident.category.value}"
    if incident.location:
        summary += f" in {incident.location.name}"
    event = _event(
        incident,
        update,
        EventType.incident_opened,
        field=None,
        subject=None,
        before=None,
        after=public_state(incident),
        snippet=update.title,
        summary=f"{summary} — {update.title}",
    )
    return incident, [event]


def merge(incident: Incident, update: Update, facts: Facts) -> tuple[Incident, list[ChangeEvent]]:
    """`incident` with `update` merged in, and one event per real change, numbered from the current version."""
    if update.verdict is Verdict.duplicate:
        # A copy corroborates: it is recorded as an item of the incident, but it states nothing new.
        return _record_item(incident, update), []
    # Additions that carry no value to compare (a source, a quote) are told only while they are news: evidence older
    # than what the incident already knows is recorded, never announced.
    is_news = update.reported_at >= incident.updated_at
    after = _absorb(incident, update, _as_known_people(incident, facts))
    changes = list(_diff(incident, after))
    if is_news:
        changes += [
            (EventType.statement_added, "statements", s.speaker, None, s.quote, s.quote, _statement_summary(s))
            for s in after.statements[len(incident.statements) :]
        ]
        if update.source_id not in incident.sources:
            changes.append(
                (EventType.source_added, "sources", None, None, update.source_id, update.title,
                 f"new source: {update.source_id}")
            )
    events: list[ChangeEvent] = []
    for offset, (kind, field, subject, before, value, snippet, summary) in enumerate(changes, start=1):
        versioned = after.model_copy(update={"version": incident.version + offset})
        events.append(_event(versioned, update, kind, field, subject, before, value, snippet, summary))
    return after.model_copy(update={"version": incident.version + len(changes)}), events


def _as_known_people(incident: Incident, facts: Facts) -> Facts:
    """The report's people under the labels the incident knows them by: "a 34-year-old man" in a report is the
    incident's "man" when he is the only person of the incident he may be (and the other way round)."""
    known = [person.label for person in incident.casualties]
    taken = {person.label for person in facts.casualties}
    renamed = []
    for person in facts.casualties:
        candidates = [label for label in known if may_be_one_person(person.label, label)]
        if person.label not in known and len(candidates) == 1 and candidates[0] not in taken:
            taken.add(candidates[0])
            person = replace(person, label=candidates[0])
        renamed.append(person)
    return replace(facts, casualties=renamed)


def merge_incidents(survivor: Incident, absorbed: Incident, update: Update) -> tuple[Incident, Incident,
                                                                                     list[ChangeEvent]]:
    """Two incidents found to be one (`update` tied them together): the survivor with both incidents' evidence, the
    absorbed one pointing at it, and the survivor's events: `incidents_merged`, then every fact the union changed.

    The facts follow from the evidence, so the merged state is the one the survivor would have had had every report
    joined it from the start.
    """
    combined = derive(
        survivor.model_copy(
            update={
                "provenance": _union(survivor.provenance, absorbed.provenance),
                "items": _add_unique(survivor.items, absorbed.items),
                "sources": _add_unique(survivor.sources, absorbed.sources),
                "places": _add_unique(survivor.places, absorbed.places),
                "statements": survivor.statements + [s for s in absorbed.statements
                                                     if normalise_text(s.quote) not in _quotes(survivor)],
                "opened_at": min(survivor.opened_at, absorbed.opened_at),
                "updated_at": max(survivor.updated_at, absorbed.updated_at),
                "merged_from": _add_unique(survivor.merged_from, [absorbed.incident_id, *absorbed.merged_from]),
                "terms": with_report(survivor.terms, absorbed.terms),
            }
        )
    )
    changes: list[Change] = [
        (EventType.incidents_merged, "incident", absorbed.incident_id, None, absorbed.incident_id, update.title,
         f"merged with {absorbed.incident_id}: {absorbed.title}"),
        *_diff(survivor, combined),
    ]
    events = [
        _event(combined.model_copy(update={"version": survivor.version + offset}), update, *change)
        for offset, change in enumerate(changes, start=1)
    ]
    merged = combined.model_copy(update={"version": survivor.version + len(changes)})
    return merged, absorbed.model_copy(update={"merged_into": survivor.incident_id}), events


def _union(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> dict[str, list[Any]]:
    merged = {path: list(items) for path, items in a.items()}
    for path, items in b.items():
        for item in items:
            merged = with_evidence(merged, {path: item})
    return merged


def _quotes(incident: Incident) -> set[str]:
    return {normalise_text(s.quote) for s in incident.statements}


def _record_item(incident: Incident, update: Update) -> Incident:
    return incident.model_copy(
        update={
            "items": _add_unique(incident.items, [ItemRef(source_id=update.source_id, guid=update.guid)]),
            "sources": _add_unique(incident.sources, [update.source_id]),
        }
    )


def _absorb(incident: Incident, update: Update, facts: Facts) -> Incident:
    recorded = _record_item(incident, update)
    return derive(
        recorded.model_copy(
            update={
                "provenance": with_evidence(incident.provenance, observe(update, facts)),
                "places": _add_unique(incident.places, sorted(facts.places)),
                "statements": incident.statements + _new_statements(incident, update, facts),
                "opened_at": min(incident.opened_at, update.reported_at),
                "updated_at": max(incident.updated_at, update.reported_at),
            }
        )
    )


Change = tuple[EventType, str | None, str | None, Any, Any, str, str]


def _snippet(incident: Incident, path: str) -> str:
    return newest(incident.provenance[path]).snippet if incident.provenance.get(path) else ""


def _diff(before: Incident, after: Incident) -> Iterable[Change]:
    """The changes from `before` to `after`, in a fixed order of fields."""
    if before.category != after.category:
        yield (EventType.category_updated, "category", None, before.category.value, after.category.value,
               _snippet(after, "category"), _moved("category", before.category, after.category))
    if before.location != after.location and after.location is not None:
        old = before.location.model_dump(mode="json") if before.location else None
        yield (EventType.location_updated, "location", None, old, after.location.model_dump(mode="json"),
               _snippet(after, "location"), _moved("location", _place(before.location), _place(after.location)))
    yield from _diff_casualties(before, after)
    for name in ("dead", "injured"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            yield (EventType.casualties_updated, name, None, old, new, _snippet(after, name), _moved(name, old, new))
    yield from _diff_investigations(before, after)
    if before.cordon != after.cordon:
        yield (EventType.cordon_updated, "cordon", None, _value(before.cordon), _value(after.cordon),
               _snippet(after, "cordon"), _moved("cordon", before.cordon, after.cordon))
    if before.public_risk != after.public_risk:
        yield (EventType.public_risk_updated, "public_risk", None, _value(before.public_risk),
               _value(after.public_risk), _snippet(after, "public_risk"),
               _moved("public risk", before.public_risk, after.public_risk))
    for name in ("arrests", "charges"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            yield (_COUNT_EVENTS[name], name, None, old, new, _snippet(after, name), _moved(name, old, new))


def _diff_casualties(before: Incident, after: Incident) -> Iterable[Change]:
    known = {c.label: c for c in before.casualties}
    for person in after.casualties:
        path = f"{CASUALTY}{person.label}."
        previous = known.get(person.label)
        if previous is None:
            yield (EventType.casualty_added, "casualties", person.label, None, person.model_dump(mode="json"),
                   _snippet(after, path + "condition") or _snippet(after, path + "role"),
                   f"casualty added: {person.label} ({person.role.value}, {person.condition.value})")
            continue
        if previous.condition != person.condition:
            yield (EventType.condition_updated, "condition", person.label, previous.condition.value,
                   person.condition.value, _snippet(after, path + "condition"),
                   _moved(f"condition of {person.label}", previous.condition, person.condition))
        if previous.life_changing != person.life_changing:
            yield (EventType.condition_updated, "life_changing", person.label, previous.life_changing,
                   person.life_changing, _snippet(after, path + "life_changing"),
                   f"injuries of {person.label} {'life-changing' if person.life_changing else 'not life-changing'}")


def _diff_investigations(before: Incident, after: Incident) -> Iterable[Change]:
    known = {i.body: i for i in before.investigations}
    for found in after.investigations:
        path = f"{INVESTIGATION}{found.body.value}"
        previous = known.get(found.body)
        opened = found.status.value == "open"
        # A murder investigation replacing a criminal one is an investigation opened, with the one it replaces.
        changed = previous is None or previous.status != found.status or (opened and previous.kind != found.kind)
        if changed and (previous is not None or opened):
            kind = EventType.investigation_opened if opened else EventType.investigation_closed
            yield (kind, "investigations", found.body.value, previous.model_dump(mode="json") if previous else None,
                   found.model_dump(mode="json"), _snippet(after, path),
                   f"{found.body.value} {found.kind.value} investigation {'opened' if opened else 'closed'}")


def _shown(value: Any) -> str:
    if value is None:
        return "not reported"
    return str(getattr(value, "value", value)).replace("_", " ")


def _moved(what: str, before: Any, after: Any) -> str:
    """`cordon: in place → lifted`."""
    return f"{what}: {_shown(before)} → {_shown(after)}"


def _statement_summary(statement: Statement, limit: int = 120) -> str:
    quote = statement.quote if len(statement.quote) <= limit else statement.quote[: limit - 1].rstrip() + "…"
    return f"statement by {statement.speaker or 'unnamed speaker'}: “{quote}”"


def _value(member: Any) -> Any:
    return member.value if member is not None else None


def _place(location: Location | None) -> str | None:
    if location is None:
        return None
    return ", ".join(part for part in (location.street, location.name, location.region) if part)


def public_state(incident: Incident) -> dict[str, Any]:
    """The incident as subscribers see it in `incident_opened`: its facts, without the evidence bookkeeping."""
    return incident.model_dump(mode="json", exclude={"provenance", "places", "terms", "merged_into"})


def event_id(incident_id: str, kind: EventType, subject: str | None, after: Any, update_id: str) -> str:
    """Deterministic: the same change, caused by the same evidence, always has the same id."""
    basis = json.dumps([incident_id, kind.value, subject, after, update_id], sort_keys=True, default=str)
    return "e_" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def _event(
    incident: Incident,
    update: Update,
    kind: EventType,
    field: str | None,
    subject: str | None,
    before: Any,
    after: Any,
    snippet: str,
    summary: str,
) -> ChangeEvent:
    return ChangeEvent(
        event_id=event_id(incident.incident_id, kind, f"{field}:{subject}", after, update.update_id),
        type=kind,
        incident_id=incident.incident_id,
        version=incident.version,
        field=field,
        subject=subject,
        before=before,
        after=after,
        reported_at=update.reported_at,
        detected_at=update.fetched_at,
        evidence=[
            Evidence(source_id=update.source_id, guid=update.guid, url=update.url, title=update.title,
                     snippet=snippet[:300])
        ],
        summary=summary,
    )


__all__ = ["event_id", "merge", "merge_incidents", "open_incident", "public_state"]
