"""Clustering features, one named case each: places (street, within, nearby, elsewhere), category, words, time."""

from __future__ import annotations

import gc
import weakref
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from schemas import Authority, Casualty, Category, Incident, Location, Role, Update, Verdict
from services.tracker import cluster
from services.tracker.cluster import JOIN_SCORE, Report, best_of, score
from services.tracker.facts import CasualtyFact, Facts, Stated
from services.tracker.places import find_places, resolve_town
from services.tracker.words import (
    Frequencies,
    cosine,
    counts,
    names,
    norm,
    rare_names,
    site_furniture,
    weighted,
    with_report,
)

T0 = datetime(2016, 8, 19, 9, tzinfo=UTC)
# Document frequencies of a small news corpus: the generic words are common, names are rare.
FREQUENCIES = {"armed": 40, "nightclub": 3, "everett": 1, "jalen": 1, "tavern": 2, "parking": 30, "lot": 30}


def vector(text: str) -> dict[str, float]:
    return weighted(counts("", text), FREQUENCIES, 100)


def incident(location: Location | None, *, text: str = "", places: tuple[str, ...] = (),
             category: Category = Category.shooting, days_ago: float = 0, dead: int | None = 3,
             injured: int | None = 2, people: tuple[str, ...] = ()) -> Incident:
    at = T0 - timedelta(days=days_ago)
    return Incident(incident_id="i_1", version=1, title="t", opened_at=at, updated_at=at, category=category,
                    location=location, places=[p.lower() for p in places], sources=["echo"], dead=dead, injured=injured,
                    casualties=[Casualty(label=label, role=Role.victim) for label in people],
                    terms=with_report({}, vector(text)))


def report(location: Location | None, *, text: str = "", places: tuple[str, ...] = (),
           category: Category | None = Category.shooting, days_later: float = 0, source: str = "wire",
           dead: int | None = None, injured: int | None = None, people: tuple[str, ...] = (),
           rare: tuple[str, ...] = ()) -> Report:
    at = T0 + timedelta(days=days_later)
    update = Update(update_id="u_1", verdict=Verdict.new, source_id=source, authority=Authority.news,
                    identity=f"{source}|g", fingerprint="f", guid="g", title="", text=text, reported_at=at,
                    fetched_at=at)
    facts = Facts(is_incident=True, category=Stated(category, "") if category else None,
                  location=Stated(location, "") if location else None, places=frozenset(p.lower() for p in places),
                  dead=Stated(dead, "") if dead is not None else None,
                  injured=Stated(injured, "") if injured is not None else None,
                  casualties=[CasualtyFact(label, Role.victim) for label in people])
    return Report(update, facts, vector(text), frozenset(rare))


def located(name: str, region: str | None = None, street: str | None = None) -> Location:
    town = resolve_town(name, region)
    return Location(name=name, region=region or (town.region if town else None), street=street,
                    lat=town.lat if town else None, lon=town.lon if town else None)


WILKINSBURG = Location(name="Wilkinsburg", region="Pennsylvania")
CHICAGO = Location(name="Chicago", region="Illinois")
CASES = [
    # (name, incident, report, joins, reason fragment)
    ("same-street", incident(Location(name="Luton", region="Bedfordshire", street="Dunstable Road")),
     report(Location(name="Dunstable Road")), True, "same street: dunstable road"),
    ("same-neighbourhood", incident(Location(name="Walthamstow", region="London")),
     report(Location(name="Walthamstow", region="London")), True, "same place: Walthamstow"),
    ("within-the-city", incident(Location(name="Handsworth", region="Birmingham"), text="armed nightclub everett"),
     report(Location(name="Birmingham", region="West Midlands"), text="armed nightclub everett"), True,
     "within: Birmingham"),
    ("nearby-suburb", incident(located("Olathe", "Kansas"), text="tavern everett jalen"),
     report(located("Kansas City", "Missouri"), text="tavern everett jalen"), True, "nearby: Kansas City is"),
    ("same-big-city-alone-is-not-enough", incident(Location(name="Chicago", region="Illinois")),
     report(Location(name="Chicago", region="Illinois")), False, "same city: Chicago"),
    ("same-big-city-and-names", incident(Location(name="Chicago", region="Illinois"), text="jalen everett tavern"),
     report(Location(name="Chicago", region="Illinois"), text="jalen everett tavern"), True, "words in common"),
    ("elsewhere", incident(Location(name="Walthamstow", region="London"), text="jalen everett tavern"),
     report(Location(name="Handsworth", region="Birmingham"), text="jalen everett tavern"), False, "another place"),
    ("two-towns-in-one-state", incident(located("Tampa", "Florida"), text="armed parking lot"),
     report(located("Miami", "Florida"), text="armed parking lot"), False, "another place: Miami (Florida)"),
    ("one-street-name-in-two-towns",
     incident(located("Tampa", "Florida", street="Church Road"), text="armed parking lot"),
     report(located("Miami", "Florida", street="Church Road"), text="armed parking lot"), False, "another place"),
    ("a-neighbourhood-the-gazetteer-does-not-place", incident(located("Chicago", "Illinois"), text="jalen everett"),
     report(Location(name="South Shore", region="Illinois"), text="jalen everett"), True, "another place: South Shore"),
    ("same-big-city-and-toll", incident(Location(name="Chicago", region="Illinois")),
     report(Location(name="Chicago", region="Illinois"), dead=3, injured=2), True, "same toll: 3 dead, 2 injured"),
    ("same-big-city-another-toll", incident(Location(name="Chicago", region="Illinois")),
     report(Location(name="Chicago", region="Illinois"), dead=1, injured=2), False, "same city: Chicago"),
    ("other-category-despite-the-words", incident(Location(name="Walthamstow", region="London"), text="everett tavern"),
     report(Location(name="Walthamstow", region="London"), text="everett tavern", category=Category.stabbing),
     False, "other category"),
    ("a-terror-attack-told-as-a-shooting", incident(Location(name="Orlando", region="Florida"), text="pulse mateen",
                                                    category=Category.terrorism),
     report(Location(name="Orlando", region="Florida"), text="pulse mateen"), True, "words in common"),
    ("unrelated-places-words-count-once", incident(Location(name="Babe Green"), text="parking lot nightclub"),
     report(Location(name="Bace Green"), text="parking lot nightclub"), False, "words in common"),
    ("other-category", incident(Location(name="Walthamstow", region="London")),
     report(Location(name="Walthamstow", region="London"), category=Category.fire), False, "other category"),
    ("follow-up-with-the-names", incident(Location(name="Tulsa", region="Oklahoma"), text="jalen everett tavern"),
     report(Location(name="Tulsa", region="Oklahoma"), text="jalen everett tavern", days_later=30), True,
     "words in common"),
    ("follow-up-about-the-same-people", incident(Location(name="Tulsa", region="Oklahoma"), text="jalen everett",
                                                 people=("17-year-old boy",)),
     report(Location(name="Tulsa", region="Oklahoma"), text="jalen everett", days_later=30, people=("boy",)),
     True, "words in common"),
    ("follow-up-about-other-people", incident(Location(name="Tulsa", region="Oklahoma"), text="jalen everett",
                                              people=("17-year-old boy",)),
     report(Location(name="Tulsa", region="Oklahoma"), text="jalen everett", days_later=30,
            people=("woman in her 70s",)), False, "about other people: woman in her 70s"),
    ("follow-up-without-them", incident(Location(name="Walthamstow", region="London"), text="jalen everett"),
     report(Location(name="Walthamstow", region="London"), text="parking lot", days_later=30), False,
     "after the incident's time window"),
    ("late-follow-up-naming-the-people",
     incident(WILKINSBURG, text="stafford derrick cookout", places=("Wilkinsburg",)),
     report(WILKINSBURG, text="stafford derrick cookout", days_later=300, rare=("stafford", "derrick")), True,
     "a follow-up naming derrick, stafford"),
    ("late-follow-up-one-name-is-not-enough",
     incident(WILKINSBURG, text="stafford derrick cookout", places=("Wilkinsburg",)),
     report(WILKINSBURG, text="stafford derrick cookout", days_later=300, rare=("stafford",)), False,
     "after the incident's time window"),
    ("late-follow-up-its-place-is-no-name",
     incident(WILKINSBURG, text="stafford wilkinsburg cookout", places=("Wilkinsburg",)),
     report(WILKINSBURG, text="stafford wilkinsburg cookout", days_later=300, places=("Wilkinsburg",),
            rare=("stafford", "wilkinsburg")), False, "after the incident's time window"),
    ("late-follow-up-years-later",
     incident(WILKINSBURG, text="stafford derrick cookout", places=("Wilkinsburg",)),
     report(WILKINSBURG, text="stafford derrick cookout", days_later=800, rare=("stafford", "derrick")), False,
     "after the incident's time window"),
    ("late-follow-up-in-a-big-city-needs-more-names",
     incident(CHICAGO, text="stafford derrick cookout"),
     report(CHICAGO, text="stafford derrick cookout", days_later=300, rare=("stafford", "derrick")), False,
     "after the incident's time window"),
    ("late-follow-up-in-a-big-city-naming-many",
     incident(CHICAGO, text="stafford derrick cookout jalen everett"),
     report(CHICAGO, text="stafford derrick cookout jalen everett", days_later=300,
            rare=("stafford", "derrick", "cookout", "jalen", "everett")), True, "a follow-up naming cookout"),
    ("same-source-no-place", incident(Location(name="Leyton", region="London")),
     report(None, source="echo"), True, "same source, no place named"),
]


@pytest.mark.parametrize(("existing", "new", "joins", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_clustering_features(existing: Incident, new: Report, joins: bool, reason: str) -> None:
    match = score(existing, new)
    assert (match.score >= JOIN_SCORE) is joins, match
    assert any(reason in r for r in match.reasons), match.reasons
    assert (best_of([score(existing, new)]) is not None) is joins


def test_words_weigh_names_over_generic_news_words() -> None:
    assert counts("Man shot by police", "Police said the man was shot outside the Tavern.") == Counter({"tavern": 1})
    # Every report from a state names it: the place rules weigh where it happened, the words what.
    assert counts("Man shot in Tampa, Florida", "TAMPA, Fla. (AP) —") == Counter({"tampa": 2})
    names = vector("jalen everett tavern")
    assert cosine(names, vector("everett jalen")) > 0.5
    assert cosine(vector("armed parking lot"), vector("armed parking lot nightclub")) < cosine(
        vector("everett jalen tavern"), vector("everett jalen tavern armed"))


def test_an_incident_keeps_its_heaviest_words_only() -> None:
    profile: dict[str, float] = {}
    for n in range(100):
        profile = with_report(profile, {f"word{n}": 1.0, "everett": 1.0})
    assert len(profile) == 60
    assert max(profile, key=profile.__getitem__) == "everett"


@pytest.mark.parametrize(("sentence", "expected"), [
    ("A man was shot in Olathe on Friday.", ("Olathe", "Kansas")),
    ("OLATHE, Kan. — A man was shot.", ("Olathe", "Kansas")),
    ("A shooting in Alton, Illinois left two dead.", ("Alton", "Illinois")),
    ("Police were called to Soho Road in Handsworth, Birmingham.", ("Handsworth", "Birmingham")),
], ids=["guess-resolved", "dateline-resolved", "place-and-state", "street-named-after-a-place-is-no-place"])
def test_towns_resolve_to_their_state_with_coordinates(sentence: str, expected: tuple[str, str]) -> None:
    (first, *_) = [place for _, place in find_places(sentence, headline=True)]
    assert (first.name, first.region) == expected
    if first.country == "US":
        assert first.lat is not None
        assert first.lon is not None


def test_rare_names_are_those_few_reports_used() -> None:
    """A name is rare at most `RARE_SHARE` of the reports used it, or `RARE_MIN_REPORTS` while they are few; a number
    or a word the text does not write as a name is none, nor is a word half of its own source's reports used (a
    site's name)."""
    found = Counter({"stafford": 1, "marksville": 1, "officer": 1, "866": 1, "gazette": 1, "verification": 1})
    text = "Police said Stafford of Marksville called an Officer on 866 1234, the Gazette says, pending verification."
    used = {"stafford": 2, "marksville": 5, "officer": 400, "866": 1, "gazette": 2}
    source = Frequencies({"stafford": 1, "gazette": 2}, reports=3)
    assert rare_names(found, text, Frequencies(used, 1000), source) == {"stafford", "marksville"}
    assert rare_names(found, text, Frequencies(used, 100), source) == {"stafford"}
    everything_rare = rare_names(found, text, Frequencies({}, 10), Frequencies({}, 0))
    assert everything_rare == {"stafford", "marksville", "officer", "gazette"}


def test_names_are_words_written_capitalised_within_a_sentence() -> None:
    """A follow-up's names are what its lead capitalises mid-sentence; a sentence's or a quote's first word is none."""
    lead = "MARKSVILLE, La. — Officer Derrick Stafford was indicted. He shot Jeremy Mardis, police said. “We are sad.”"
    assert names(lead) == {"la", "derrick", "stafford", "jeremy", "mardis"}


def test_site_furniture_is_what_most_of_a_sources_reports_use() -> None:
    """A word at least `SITE_FURNITURE_SHARE` of a source's earlier reports used is furniture, once it has
    `SITE_MIN_REPORTS`; before that, nothing is."""
    found = Counter({"registration": 1, "peckham": 1, "tavern": 1})
    source = Frequencies({"registration": 5, "tavern": 1}, reports=6)
    assert site_furniture(found, source) == {"registration"}
    assert site_furniture(found, Frequencies({"registration": 2}, reports=2)) == set()


@pytest.mark.parametrize(("a", "b", "same"), [
    ("Habersham", "Habersham County", True), ("Winston", "Winston-Salem", True), ("Hickman Co.", "Hickman", True),
    ("Salem", "Winston-Salem", False), ("Washington", "Washington Park", False),
])
def test_one_place_under_two_names(a: str, b: str, same: bool) -> None:
    """A county and its name are one place, and so is a name a feed cut at its hyphen; other names are not."""
    assert cluster._same_name(a, b) is same


WALTHAMSTOW = Location(name="Walthamstow", region="London")
_BEFORE = incident(WALTHAMSTOW, text="jalen everett tavern", places=("Walthamstow",), people=("17-year-old boy",))


@pytest.mark.parametrize(("change", "reason"), [
    ({"location": Location(name="Handsworth", region="Birmingham")}, "another place"),
    ({"places": ["walthamstow", "hoe street"]}, "same street: hoe street"),
    # Three reports' worth of the same words: as like the report as one, however long the vector.
    ({"terms": {word: 3 * weight for word, weight in vector("armed parking lot").items()}},
     "words in common: lot, parking, armed (similarity 0.40)"),
    ({"opened_at": T0 - timedelta(days=60), "updated_at": T0 - timedelta(days=60)},
     "after the incident's time window, about other people: woman in her 70s"),
    ({"opened_at": T0 + timedelta(days=5), "updated_at": T0 + timedelta(days=5)}, "before the incident's time window"),
], ids=["location", "places", "words", "time", "opened-later"])
def test_a_changed_incident_is_scored_as_it_is_now(change: dict[str, object], reason: str) -> None:
    """An incident scored before and changed since (the same id and version, a new object) is scored by its new
    location, places, words and times, however recently the old one was scored; the old one scores as before."""
    new = report(WALTHAMSTOW, text="jalen everett tavern armed parking lot", places=("Hoe Street",),
                 people=("woman in her 70s",))
    before = score(_BEFORE, new)
    after = score(_BEFORE.model_copy(update=change), new)
    assert any(reason in r for r in after.reasons), after.reasons
    assert (after.score, after.reasons) != (before.score, before.reasons)
    assert (score(_BEFORE, new).score, score(_BEFORE, new).reasons) == (before.score, before.reasons)


def test_an_incident_taking_the_memory_of_one_scored_before_is_scored_as_itself() -> None:
    """Incidents scored and dropped one after another (a new object often takes the `id` of one just freed) are each
    scored by their own place; scoring keeps none of them alive."""
    new = report(WALTHAMSTOW)
    ids: list[int] = []
    for n in range(40):
        place = WALTHAMSTOW if n % 2 else Location(name="Handsworth", region="London")
        existing = incident(place)
        ids.append(id(existing))
        reasons = score(existing, new).reasons
        assert any(("same place: Walthamstow" if n % 2 else "another place: Walthamstow") in r for r in reasons)
        held = weakref.ref(existing)
        del existing
        gc.collect()
        assert held() is None
    assert len(set(ids)) < len(ids)  # the case this is about did occur


def test_cosine_uses_the_norms_it_is_given() -> None:
    """Norms known already (`norm`) give the cosine computed without them, to the bit; given ones are used as given."""
    a, b = vector("jalen everett tavern armed"), vector("everett jalen parking lot nightclub")
    assert cosine(a, b, norm(a), norm(b)) == cosine(a, b) == cosine(b, a, norm(b), norm(a))
    assert norm(a) == pytest.approx(1.0)
    assert cosine(a, b, 2.0, 3.0) == pytest.approx(cosine(a, b) / 6)
