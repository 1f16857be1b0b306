"""An incident's facts as a function of its evidence: the merge rules of design.md §3.

Every field's value is derived from all the evidence ever seen for it (the incident's `provenance`), never from the
order the evidence arrived in. That one choice gives the rules their guarantees:
- the newest evidence decides (official outranks news, news outranks blog, within the same minute), so a late
  straggler is recorded as provenance and changes nothing;
- counts are the highest reported since the newest official figure, which may correct them downwards (a figure
  stated, not a count inferred from the people named one by one);
- sources of equal rank that state different values in the same minute are a conflict: the value first stated holds
  and the conflict is recorded on the incident (`Incident.conflicts`), so the field never flips between them;
- evidence is a set, so the same update processed twice, or any order of the same updates, gives the same state.
"""

from __future__ import annotations

import json
from functools import total_ordering
from typing import Any

from schemas import (
    Authority,
    Casualty,
    Category,
    Condition,
    Conflict,
    Cordon,
    Incident,
    Investigation,
    Location,
    Provenance,
    PublicRisk,
    Role,
    Update,
)
from services.tracker.facts import Facts

CASUALTY = "casualties."
INVESTIGATION = "investigations."
_COUNTS = ("dead", "injured", "arrests", "charges")


def rank(evidence: Provenance) -> tuple[Any, ...]:
    """Total order of evidence: newer first by the minute, then authority, then a deterministic tie-break."""
    minute = evidence.reported_at.replace(second=0, microsecond=0)
    return (
        minute,
        evidence.authority.rank,
        evidence.reported_at,
        evidence.source_id,
        evidence.guid,
        _Said(evidence.value),
    )


@total_ordering
class _Said:
    """The value a piece of evidence stated, ordered by its canonical JSON, which is written out only when two pieces
    of evidence tie on everything else in their rank (rarely: ranks are compared in every merge)."""

    __slots__ = ("_json", "_value")

    def __init__(self, value: Any) -> None:
        self._value = value
        self._json: str | None = None

    @property
    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self._value, sort_keys=True)
        return self._json

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Said) and self.json == other.json

    def __lt__(self, other: _Said) -> bool:
        return self.json < other.json

    def __hash__(self) -> int:
        return hash(self.json)


def newest(evidence: list[Provenance]) -> Provenance:
    """The evidence that decides a field: the highest-ranked."""
    return max(evidence, key=rank)


def _tier(evidence: Provenance) -> tuple[Any, ...]:
    """What ranks evidence as equals: the minute it was published and its authority."""
    return evidence.reported_at.replace(second=0, microsecond=0), evidence.authority.rank


def _said(evidence: Provenance) -> str:
    return json.dumps(evidence.value, sort_keys=True)


def decisive(evidence: list[Provenance]) -> tuple[Provenance, list[Provenance]]:
    """The evidence that decides a field, and the evidence of equal rank that contradicts it (empty: no conflict).

    Equal rank is the newest minute at the highest authority. Within it each entry counts once, by its latest
    version (an outlet correcting itself is not a conflict). When those entries disagree, the value first stated in
    that minute holds: a contradiction arriving later records a conflict instead of flipping the field, and the
    choice depends on the evidence alone, not on the order it arrived in.
    """
    top = newest(evidence)
    entries: dict[tuple[str, str], Provenance] = {}
    for item in evidence:
        if _tier(item) == _tier(top):
            key = (item.source_id, item.guid)
            if key not in entries or rank(item) > rank(entries[key]):
                entries[key] = item
    if len({_said(item) for item in entries.values()}) < 2:
        return top, []
    first = min(entries.values(), key=lambda item: (item.reported_at, item.source_id, item.guid))
    return first, sorted((item for item in entries.values() if _said(item) != _said(first)), key=rank)


def _count(evidence: list[Provenance]) -> Provenance:
    """The evidence behind a count: the highest since the newest official figure (which may lower it; a count inferred
    from the people an official text names one by one is no figure)."""
    official = [e for e in evidence if e.authority is Authority.official and not e.inferred]
    floor = newest(official) if official else None
    since = [e for e in evidence if floor is None or rank(e) > rank(floor)]
    return max([*since, *([floor] if floor else [])], key=lambda e: (e.value, rank(e)))


def observe(update: Update, facts: Facts) -> dict[str, Provenance]:
    """Field path → the evidence this update gives for it."""

    def said(value: Any, snippet: str, inferred: bool = False) -> Provenance:
        return Provenance(
            value=value,
            inferred=inferred,
            source_id=update.source_id,
            guid=update.guid,
            url=update.url,
            authority=update.authority,
            reported_at=update.reported_at,
            snippet=snippet[:300],
        )

    seen: dict[str, Provenance] = {}
    if facts.category:
        seen["category"] = said(facts.category.value.value, facts.category.snippet)
    if facts.location:
        seen["location"] = said(facts.location.value.model_dump(mode="json"), facts.location.snippet)
    for name in _COUNTS:
        stated = getattr(facts, name)
        if stated is not None:
            seen[name] = said(stated.value, stated.snippet, stated.inferred)
    if facts.cordon:
        seen["cordon"] = said(facts.cordon.value.value, facts.cordon.snippet)
    if facts.public_risk:
        seen["public_risk"] = said(facts.public_risk.value.value, facts.public_risk.snippet)
    for person in facts.casualties:
        path = f"{CASUALTY}{person.label}."
        snippet = person.condition.snippet if person.condition else ""
        seen[path + "role"] = said(person.role.value, snippet)
        if person.condition:
            seen[path + "condition"] = said(person.condition.value.value, person.condition.snippet)
        if person.life_changing:
            seen[path + "life_changing"] = said(person.life_changing.value, person.life_changing.snippet)
    for found in facts.investigations:
        seen[INVESTIGATION + found.body.value] = said(
            {"kind": found.kind.value, "status": found.status.value}, found.snippet
        )
    return seen


def derive(incident: Incident) -> Incident:
    """The incident with every field recomputed from its provenance."""
    evidence = incident.provenance
    conflicts: list[Conflict] = []

    def value_of(path: str, candidates: list[Provenance] | None = None) -> Any:
        found = evidence.get(path) if candidates is None else candidates
        if not found:
            return None
        held, contradicting = decisive(found)
        if contradicting:
            conflicts.append(Conflict(field=path, held=held, contradicted_by=contradicting))
        return held.value

    categories = [e for e in evidence.get("category", []) if e.value != Category.other.value]
    casualty_labels = sorted(
        {path[len(CASUALTY) :].rsplit(".", 1)[0] for path in evidence if path.startswith(CASUALTY)},
        # First reported first; the label breaks ties, so any order of the same evidence gives the same list.
        key=lambda label: (min(e.reported_at for p, es in evidence.items() if p.startswith(f"{CASUALTY}{label}.")
                               for e in es), label),
    )
    category = value_of("category", categories)
    location = _known_details(_finest(value_of("location"), evidence.get("location", [])), evidence.get("location", []))
    casualties = [
        Casualty(
            label=label,
            role=Role(value_of(f"{CASUALTY}{label}.role") or Role.unknown),
            condition=Condition(value_of(f"{CASUALTY}{label}.condition") or Condition.unknown),
            life_changing=value_of(f"{CASUALTY}{label}.life_changing"),
        )
        for label in casualty_labels
    ]
    investigations = [
        Investigation(body=path[len(INVESTIGATION) :], **value_of(path))
        for path in sorted(evidence, key=lambda p: (min(e.reported_at for e in evidence[p]), p))
        if path.startswith(INVESTIGATION)
    ]
    cordon, public_risk = value_of("cordon"), value_of("public_risk")
    return incident.model_copy(
        update={
            "category": Category(category) if category else Category.other,
            "location": Location(**location) if location else None,
            "casualties": casualties,
            "investigations": investigations,
            "cordon": Cordon(cordon) if cordon else None,
            "public_risk": PublicRisk(public_risk) if public_risk else None,
            **{name: _count(evidence[name]).value if evidence.get(name) else None
               for name in _COUNTS if name != "injured"},
            "injured": _injured(evidence, casualties),
            "conflicts": sorted(conflicts, key=lambda conflict: conflict.field),
        }
    )


def _injured(evidence: dict[str, list[Provenance]], casualties: list[Casualty]) -> int | None:
    """The injured count; one counted from the people named one by one loses those stated dead since: a person
    stabbed is injured until stated dead, then dead and no longer injured."""
    if not evidence.get("injured"):
        return None
    held = _count(evidence["injured"])
    if not held.inferred:
        return int(held.value)
    counted_at = min(e.reported_at for e in evidence["injured"] if e.inferred and e.value == held.value)
    died_since = sum(
        1 for person in casualties
        if person.condition is Condition.deceased
        and min(e.reported_at for e in evidence[f"{CASUALTY}{person.label}.condition"]
                if e.value == Condition.deceased.value) > counted_at
    )
    return max(0, int(held.value) - died_since)


def _finest(location: dict[str, Any] | None, evidence: list[Provenance]) -> dict[str, Any] | None:
    """A report naming only the city ("Birmingham") does not move the incident out of the part of it the others
    named ("Handsworth, Birmingham"): the newest place stated within the held one stays."""
    if location is None:
        return None
    within = [e for e in evidence if (e.value.get("region") or "").lower() == location["name"].lower()]
    return dict(newest(within).value) if within else location


def _known_details(location: dict[str, Any] | None, evidence: list[Provenance]) -> dict[str, Any] | None:
    """A report naming the place without its street ("Eccles New Road reopened") or region does not unsay them:
    the newest street and region stated for the same place stay."""
    if location is None:
        return None
    for detail in ("street", "region"):
        same_place = [e for e in evidence if e.value.get("name") == location["name"] and e.value.get(detail)]
        if not location.get(detail) and same_place:
            location = {**location, detail: newest(same_place).value[detail]}
    return location


def with_evidence(provenance: dict[str, list[Provenance]], seen: dict[str, Provenance]) -> dict[str, list[Provenance]]:
    merged = {path: list(items) for path, items in provenance.items()}
    for path, item in seen.items():
        known = merged.setdefault(path, [])
        if item not in known:
            known.append(item)
            known.sort(key=rank)
    return merged
