"""Which incident an update is about: a first, explainable clustering on place, category and time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from schemas import Category, Incident, Update
from services.tracker.facts import Facts

# Reports of one incident arrive over days, not weeks; outside this window a shared place is a coincidence.
WINDOW = timedelta(days=3)
# A shared specific place alone reaches it, so two separate stabbings in one town within the window become one
# incident: a first clustering, which people, times and the words of the text will refine.
JOIN_SCORE = 2
# Names too wide to tie two reports together on their own.
BROAD_PLACES = frozenset(
    {
        "london", "east london", "north london", "south london", "west london", "central london", "greater london",
        "england", "scotland", "wales", "northern ireland", "uk", "united kingdom", "britain", "great britain",
    }
)


@dataclass(frozen=True)
class Match:
    incident: Incident
    score: int
    reasons: tuple[str, ...]


def specific_places(places: frozenset[str] | list[str], facts: Facts | None = None) -> set[str]:
    """The places that can tie reports together: not regions or countries."""
    broad = set(BROAD_PLACES)
    if facts and facts.location and facts.location.value.region:
        broad.add(facts.location.value.region.lower())
    return {place.lower() for place in places} - broad


def score(incident: Incident, update: Update, facts: Facts) -> Match:
    """How strongly `update` belongs to `incident`, and why."""
    reasons: list[str] = []
    points = 0
    if not (incident.opened_at - WINDOW <= update.reported_at <= incident.updated_at + WINDOW):
        return Match(incident, 0, ("outside the time window",))
    own_places = specific_places(facts.places, facts)
    if not own_places and update.source_id in incident.sources:
        points += 2
        reasons.append("same source, no place named")
    shared = own_places & specific_places(incident.places)
    if incident.location and facts.location and incident.location.name.lower() == facts.location.value.name.lower():
        points += 2
        reasons.append(f"same place: {incident.location.name}")
        shared.discard(incident.location.name.lower())
    if shared:
        points += len(shared)
        reasons.append("shared places: " + ", ".join(sorted(shared)))
    if facts.category and incident.category is not Category.other and facts.category.value is not Category.other:
        if facts.category.value is incident.category:
            points += 1
            reasons.append(f"same category: {incident.category.value}")
        else:
            points -= 2
            reasons.append(f"other category: {facts.category.value.value} vs {incident.category.value}")
    return Match(incident, points, tuple(reasons))


def best_match(candidates: list[Incident], update: Update, facts: Facts) -> Match | None:
    """The candidate `update` joins, or None when it should open an incident of its own."""
    matches = [score(incident, update, facts) for incident in candidates]
    joinable = [m for m in matches if m.score >= JOIN_SCORE]
    if not joinable:
        return None
    # Highest score, then the most recently active incident, then id: deterministic whatever the candidate order.
    return max(joinable, key=lambda m: (m.score, m.incident.updated_at, m.incident.incident_id))
