"""Which incident an update is about: the evidence an editor weighs, scored, with the reasons kept.

Features: the place (a street counts more than a neighbourhood or a small town, which counts more than a big city;
places in different regions count against), the category, the time (reports of one incident arrive over days; a
later follow-up, such as a charge or an inquest, must share the incident's distinctive words; one naming its
people may come years later), and those words (TF-IDF cosine with the incident's reports, `services.tracker.words`:
names, streets and venues weigh, "police" and "said" do not). An update joins the best-scoring incident from
`JOIN_SCORE`, or opens its own.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, lru_cache

from schemas import Authority, Casualty, Category, Incident, Location, Role, Update, Verdict
from services.tracker.casualties import may_be_one_person
from services.tracker.facts import CasualtyFact, Facts, Stated
from services.tracker.places import CITY, GAZETTEER, NATION
from services.tracker.words import cosine, norm, shared

# Reports of one incident arrive over days: within this of its newest evidence an update may join on any feature.
WINDOW = timedelta(days=3)
# A follow-up weeks later (a charge, a funeral, an inquest) joins only when it shares the incident's words.
FOLLOW_UP_WINDOW = timedelta(days=120)
FOLLOW_UP_SIMILARITY = 0.3
# A follow-up that names the incident's people or venue (rare words other than its places: "Derrick Stafford",
# "Vice Lords") joins for longer: trials and sentences come months or years later. A big city has so many incidents
# that a few rare words in common are chance (measured on gva-dev: 2 words, 5 in a big city, two years).
NAMED_FOLLOW_UP_WINDOW = timedelta(days=730)
NAMED_FOLLOW_UP_WORDS = 2
NAMED_FOLLOW_UP_WORDS_IN_A_CITY = 5
JOIN_SCORE = 3
NEARBY_KM = 40  # two places this close may be one incident's (a suburb and its city)
# Word similarity → points: a near-identical account, the same names and places, a few distinctive words shared.
_SIMILARITY_POINTS = ((0.4, 3), (0.15, 2), (0.1, 1))
_PLACELESS_TWO_POINTS = 0.25  # the similarity for two points when either side names no place
_UNLIKE = 0.05  # below this two accounts with words enough to compare share nothing distinctive: a point against
_WORDS_TO_COMPARE = 8
_AGED = re.compile(r"\d+-year-old |\bin \w+ \d+s$")
_STREET_NAME = re.compile(r" (?:street|road|avenue|lane|close|drive|way|grove|gardens|crescent|terrace|square|parade)$")
# Names too wide to tie two reports together on their own.
BROAD_PLACES = frozenset(
    {
        "london", "east london", "north london", "south london", "west london", "central london", "greater london",
        "england", "scotland", "wales", "northern ireland", "uk", "united kingdom", "britain", "great britain",
    }
)


@dataclass(frozen=True)
class Report:
    """What clustering knows of one update: its facts and the weighted words of its title and lead."""

    update: Update
    facts: Facts
    words: dict[str, float]
    rare: frozenset[str] = frozenset()  # its names few other reports used (`words.rare_names`)

    # What scoring reads of the report beyond its fields, the same against every candidate.

    @cached_property
    def own_places(self) -> set[str]:
        """`specific_places` of the report."""
        return specific_places(self.facts.places, self.facts)

    @cached_property
    def norm(self) -> float:
        return norm(self.words)

    @cached_property
    def place(self) -> _Place | None:
        return _Place(self.facts.location.value) if self.facts.location else None

    @cached_property
    def place_words(self) -> frozenset[str]:
        return _words_of(self.facts.places)

    @cached_property
    def people_by_age(self) -> tuple[str, ...]:
        return _by_age(self.facts.casualties)


@dataclass(frozen=True)
class Match:
    incident: Incident
    score: int
    reasons: tuple[str, ...]


class _Place:
    """A location with what the place rules ask of it worked out once: its names in lower case, its street."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.name = location.name.lower()
        self.bare_name = _COUNTY.sub("", self.name)  # "habersham" for "Habersham County"
        self.named_as_street = _STREET_NAME.search(self.name) is not None
        self.street = location.street.lower() if location.street else self.name if self.named_as_street else None
        self.areas = frozenset(name.lower() for name in (location.name, location.region) if name)
        self.wide = _is_wide(location.name)


class _Candidate:
    """What scoring reads of an incident beyond its fields, worked out once however many reports it is scored
    against (`_candidate`). Incidents are immutable: a changed one is a new object, with a `_Candidate` of its own."""

    def __init__(self, incident: Incident) -> None:
        # Only a weak reference: the incident stays no longer than its owners keep it, and takes its entry with it.
        key = id(incident)
        self.incident = weakref.ref(incident, lambda ref: _forget_candidate(key, ref))
        self.earliest = incident.opened_at - WINDOW  # before this, a report is not about it
        self.active_until = incident.updated_at + WINDOW
        self.follow_up_until = incident.opened_at + FOLLOW_UP_WINDOW
        self.named_until = incident.opened_at + NAMED_FOLLOW_UP_WINDOW

    def _of(self) -> Incident:
        incident = self.incident()
        assert incident is not None  # asked only while the incident is being scored
        return incident

    @cached_property
    def norm(self) -> float:
        return norm(self._of().terms)

    @cached_property
    def place(self) -> _Place | None:
        location = self._of().location
        return _Place(location) if location else None

    @cached_property
    def specific_places(self) -> frozenset[str]:
        return frozenset(specific_places(self._of().places))

    @cached_property
    def places(self) -> frozenset[str]:
        return frozenset(self._of().places)

    @cached_property
    def place_words(self) -> frozenset[str]:
        return _words_of(self._of().places)

    @cached_property
    def people_by_age(self) -> tuple[str, ...]:
        return _by_age(self._of().casualties)


# Candidates of the incidents alive, by `id`: an entry goes with its incident (a new object may then take the id).
_candidates: dict[int, _Candidate] = {}


def _candidate(incident: Incident) -> _Candidate:
    """The `_Candidate` of this very incident object."""
    known = _candidates.get(id(incident))
    if known is None or known.incident() is not incident:
        known = _candidates[id(incident)] = _Candidate(incident)
    return known


def _forget_candidate(key: int, ref: weakref.ref[Incident]) -> None:
    known = _candidates.get(key)
    if known is not None and known.incident is ref:
        del _candidates[key]


def _words_of(places: frozenset[str] | list[str]) -> frozenset[str]:
    return frozenset(word for place in places for word in place.split())


def specific_places(places: frozenset[str] | list[str], facts: Facts | None = None) -> set[str]:
    """The places that can tie reports together: not regions or countries."""
    broad = set(BROAD_PLACES)
    if facts and facts.location and facts.location.value.region:
        broad.add(facts.location.value.region.lower())
    # A state or a nation ("Florida", "Scotland") is as broad as a region.
    return {place.lower() for place in places if not _is_state_or_nation(place)} - broad


@lru_cache(maxsize=4096)  # asked of every place of every candidate
def _is_state_or_nation(name: str) -> bool:
    known = GAZETTEER.get(name) or GAZETTEER.get(name.title())
    return known is not None and known.rank == NATION


def _is_wide(name: str) -> bool:
    """A big city (or a state, a nation): many incidents at once, so sharing it says little."""
    known = GAZETTEER.get(name)
    return known is not None and known.rank in (CITY, NATION)


def _place_points(incident: Incident, seen: _Candidate, report: Report, reasons: list[str]) -> tuple[int, bool]:
    """Points for where the report and the incident happened, and whether they name unrelated places."""
    own_places = report.own_places
    points, apart = 0, False
    if not own_places and report.update.source_id in incident.sources:
        points += 2
        reasons.append("same source, no place named")
    shared_places = own_places & seen.specific_places
    mine, theirs = report.place, seen.place
    if mine and theirs:
        here, there = mine.location, theirs.location
        street = mine.street
        if street is not None and street == theirs.street and _may_be_one_place(mine, theirs):
            points += 3
            reasons.append(f"same street: {street}")
            shared_places.discard(street)
        elif _same_bare_name(mine.bare_name, theirs.bare_name):
            points += 1 if theirs.wide else 2
            reasons.append(f"same {'city' if theirs.wide else 'place'}: {there.name}")
        elif (not mine.wide and theirs.wide and mine.name in seen.places
              and (here.region is None or here.region.lower() in theirs.areas)):
            # A place within the city the incident is placed in, which its reports named ("Soho Road in Handsworth"
            # under "Birmingham"); a place they only mentioned in passing is no such evidence.
            points += 2
            reasons.append(f"same place: {here.name}, as its reports name it")
            shared_places.discard(mine.name)
        elif _within(mine, theirs):
            # Handsworth (Birmingham) and Birmingham (West Midlands): one lies within the other. Two towns in one
            # state are not: most states have several shootings a week.
            points += 1
            reasons.append(f"within: {here.name}, {there.name}")
        elif (distance := _distance_km(here, there)) is not None and distance <= NEARBY_KM:
            # A suburb and the city next to it (Olathe, Kansas and Kansas City, Missouri).
            points += 1
            reasons.append(f"nearby: {here.name} is {distance:.0f} km from {there.name}")
        elif here.region and there.region:
            # Two places of one region may still be one incident's: a neighbourhood the gazetteer does not place
            # in its city ("South Shore", Chicago), a county and a town in it. The words decide, unless both places
            # are towns the gazetteer knows to lie far apart (Tampa and Miami).
            same_region = here.region.lower() == there.region.lower()
            points, apart = points - (1 if same_region else 3), not same_region or distance is not None
            reasons.append(f"another place: {here.name} ({here.region}) vs {there.name} ({there.region})")
        else:
            # A place of unknown region parts the report from the incident too: a village the gazetteer does not
            # know is as much another place as a town it knows. (Letting the words decide instead helped on US
            # news, where most such "places" are words taken for one, "at Least 7 Years", but tied unknown UK
            # towns together on police boilerplate.)
            apart = True
        shared_places.discard(theirs.name)
    if not shared_places:
        return points, apart
    named_streets = {place for place in shared_places if _STREET_NAME.search(place)}
    if named_streets and points < 3 and not apart:
        # A street named as the place by one report and as the street of the other's place.
        points += 3
        reasons.append("same street: " + ", ".join(sorted(named_streets)))
    else:
        points += min(len(shared_places), 2)
        reasons.append("shared places: " + ", ".join(sorted(shared_places)))
    return points, False


_COUNTY = re.compile(r"\s+(?:county|co\.?|parish)$", re.IGNORECASE)


def _same_name(a: str, b: str) -> bool:
    """Whether two place names name one place: "Habersham" and "Habersham County"; "Winston" and "Winston-Salem",
    as feeds cut a headline at its first hyphen."""
    return _same_bare_name(_COUNTY.sub("", a.lower()), _COUNTY.sub("", b.lower()))


def _same_bare_name(a: str, b: str) -> bool:
    """`_same_name` of two names already in lower case without "County" (`_Place.bare_name`)."""
    return a == b or a.startswith(f"{b}-") or b.startswith(f"{a}-")


def _distance_km(a: Location, b: Location) -> float | None:
    """Great-circle distance between two located places (None unless both have coordinates)."""
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    lat_a, lat_b, dlon = math.radians(a.lat), math.radians(b.lat), math.radians(b.lon - a.lon)
    cos = math.sin(lat_a) * math.sin(lat_b) + math.cos(lat_a) * math.cos(lat_b) * math.cos(dlon)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def _within(a: _Place, b: _Place) -> bool:
    """One place is named as the other's region ("Handsworth, Birmingham" and "Birmingham")."""
    return a.name in b.areas or b.name in a.areas


def _may_be_one_place(a: _Place, b: _Place) -> bool:
    """Whether a street named by both is one street: the same place, a report naming only the street, places within
    each other or close by. "Church Road" is in hundreds of towns."""
    if a.name == b.name or a.named_as_street or b.named_as_street or _within(a, b):
        return True
    distance = _distance_km(a.location, b.location)
    return distance is not None and distance <= NEARBY_KM


def _word_points(incident: Incident, report: Report, similarity: float, reasons: list[str]) -> int:
    # Where one side names no place, the words are all there is: a few boilerplate words in common ("call 101
    # quoting", "anyone with footage") must not be enough.
    placed = report.facts.location is not None and incident.location is not None
    for floor, points in _SIMILARITY_POINTS:
        if similarity >= (floor if placed or points != 2 else _PLACELESS_TWO_POINTS):
            reasons.append(f"words in common: {', '.join(shared(report.words, incident.terms))} "
                           f"(similarity {similarity:.2f})")
            return points
    if similarity < _UNLIKE and min(len(report.words), len(incident.terms)) >= _WORDS_TO_COMPARE:
        reasons.append(f"no distinctive words in common (similarity {similarity:.2f})")
        return -1
    return 0


_OTHER = Category.other  # looked up once: asked of every candidate, and an enum's member is slow to look up


def score(incident: Incident, report: Report) -> Match:
    """How strongly the report belongs to `incident`, and why."""
    facts, reported_at = report.facts, report.update.reported_at
    seen = _candidate(incident)
    if reported_at < seen.earliest:
        return Match(incident, 0, ("before the incident's time window",))
    similarity = cosine(report.words, incident.terms, report.norm, seen.norm)
    reasons: list[str] = []
    if reported_at > seen.active_until:
        names = _names_in_common(incident, seen, report)
        in_a_city = seen.place is not None and seen.place.wide
        named = (len(names) >= (NAMED_FOLLOW_UP_WORDS_IN_A_CITY if in_a_city else NAMED_FOLLOW_UP_WORDS)
                 and reported_at <= seen.named_until)
        if not named and (reported_at > seen.follow_up_until or similarity < FOLLOW_UP_SIMILARITY):
            return Match(incident, 0, (f"after the incident's time window (similarity {similarity:.2f})",))
        if others := _other_people(seen, report):
            # A follow-up weeks later is about the incident's people; one about others is another incident there.
            return Match(incident, 0, (f"after the incident's time window, about other people: {others}",))
        if named:
            reasons.append(f"a follow-up naming {', '.join(names[:4])}")
    points, apart = _place_points(incident, seen, report, reasons)
    told, theirs = (facts.category.value if facts.category else None), incident.category
    if told is not None and theirs is not _OTHER and told is not _OTHER:
        if told is theirs:
            points += 1
            reasons.append(f"same category: {theirs.value}")
        elif not _compatible(told, theirs):
            points -= 3
            reasons.append(f"other category: {told.value} vs {theirs.value}")
    # Two reports naming unrelated places share words by the way incidents are told ("Babe Green", "Bace Green"):
    # the words alone do not make them one.
    word_points = _word_points(incident, report, similarity, reasons)
    points += min(word_points, 1) if apart else word_points
    points += _toll_points(incident, facts, reasons)
    return Match(incident, points, tuple(reasons))


# Kinds one incident may be told as: a terror attack is a shooting, a stabbing or an explosion. (An assault is not
# a shooting by another name: within a text the specific kind wins already, so two texts that differ name two.)
_COMPATIBLE = frozenset(
    {frozenset({Category.terrorism, kind}) for kind in (Category.shooting, Category.stabbing, Category.explosion,
                                                        Category.assault)}
)


def _names_in_common(incident: Incident, seen: _Candidate, report: Report) -> list[str]:
    """The rare words the report shares with the incident that name no place of either: its people, its venue."""
    if incident.terms.keys().isdisjoint(report.rare):
        return []  # most candidates share none: the places' words are not worth collecting
    return sorted((report.rare & incident.terms.keys()) - seen.place_words - report.place_words)


def _compatible(a: Category, b: Category) -> bool:
    return frozenset({a, b}) in _COMPATIBLE


def _other_people(seen: _Candidate, report: Report) -> str:
    """The people of the report, when both it and the incident name people by age and none can be the other's
    ("a 15-year-old boy" against "a man in his 40s"); "" otherwise."""
    theirs, mine = seen.people_by_age, report.people_by_age
    if not theirs or not mine or any(may_be_one_person(a, b) for a in mine for b in theirs):
        return ""
    return ", ".join(mine)


def _by_age(casualties: Iterable[Casualty | CasualtyFact]) -> tuple[str, ...]:
    """The labels of the people other than suspects that give an age ("a 15-year-old boy", "a man in his 40s")."""
    return tuple(c.label for c in casualties if c.role is not Role.suspect and _AGED.search(c.label))


def _toll_points(incident: Incident, facts: Facts, reasons: list[str]) -> int:
    """A point for the same toll of two or more people ("3 dead, 2 injured" both times): few incidents of one place
    and time share it. (The same people by age, "a 17-year-old boy", were tried: too many incidents share them.)"""
    stated = []
    for name, mine, theirs in (("dead", facts.dead.value if facts.dead else None, incident.dead),
                               ("injured", facts.injured.value if facts.injured else None, incident.injured)):
        if mine is not None and theirs is not None:
            if mine != theirs:
                return 0
            stated.append((name, mine))
    if sum(mine for _, mine in stated) < 2:
        return 0  # none stated on both sides, or too few people to tell incidents apart
    reasons.append("same toll: " + ", ".join(f"{mine} {name}" for name, mine in stated))
    return 1


def best_of(matches: list[Match]) -> Match | None:
    """The match a report joins among scored ones (None below `JOIN_SCORE`)."""
    joinable = [m for m in matches if m.score >= JOIN_SCORE]
    if not joinable:
        return None
    # Highest score, then the most recently active incident, then id: deterministic whatever the candidate order.
    return max(joinable, key=lambda m: (m.score, m.incident.updated_at, m.incident.incident_id))


def same_incident(incident: Incident, other: Incident) -> Match:
    """How strongly two incidents are one: `other`'s reports taken together, scored as one report against
    `incident` (its place, category, places and words), at the time it was first reported."""
    opened = other.opened_at
    as_update = Update(update_id=f"u_{other.incident_id}", verdict=Verdict.new, source_id=other.sources[0],
                       authority=Authority.news, identity=f"{other.incident_id}|merged", fingerprint="-",
                       guid=other.incident_id, title=other.title, text="", reported_at=opened, fetched_at=opened)
    facts = Facts(is_incident=True, places=frozenset(other.places),
                  category=Stated(other.category, "") if other.category is not Category.other else None,
                  location=Stated(other.location, "") if other.location else None,
                  dead=Stated(other.dead, "") if other.dead is not None else None,
                  injured=Stated(other.injured, "") if other.injured is not None else None)
    return score(incident, Report(as_update, facts, other.terms))


def to_merge(matches: list[Match], best: Match, join: Callable[[Incident], Incident]) -> list[Match]:
    """Other incidents the report joins as well, that are one incident with the best match once the report has
    joined it (`join`: the best match with the report merged in; it tells what ties them, "Hoe Street in
    Walthamstow"): found to be one, they are merged. The join is made only when another incident matches too."""
    others = [m for m in matches if m is not best and m.score >= JOIN_SCORE]
    if not others:
        return []
    joined = join(best.incident)
    return [m for m in others if same_incident(joined, m.incident).score >= JOIN_SCORE]
