"""Fact extraction rules (services.tracker.extract), and the facts the bundled walthamstow replay archive states."""

from __future__ import annotations

import calendar
import html
import itertools
import re
import tomllib
from bisect import insort
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from schemas import (
    Authority,
    Category,
    Condition,
    Cordon,
    FeedSource,
    InvestigationBody,
    InvestigationKind,
    InvestigationStatus,
    PublicRisk,
    Role,
)
from services.identity import canonical_link
from services.tracker import patterns as p
from services.tracker.casualties import (
    _OBJECT_GAP,
    _PRONOUN,
    _SEVERAL,
    _THE_VICTIM,
    _Mention,
    _Sentence,
    _several,
    _WordMatches,
)
from services.tracker.extract import (
    _ABBREVIATION,
    SNIPPET_CHARS,
    _Clauses,
    _ends_in_abbreviation,
    _led_as_background,
    _overlaps,
    _words_before,
    extract,
    split_sentences,
)
from services.tracker.facts import Facts
from services.tracker.places import _capitalised_before

ARCHIVE = Path(services.__file__).parent / "demo" / "walthamstow"
SNAPSHOT_NAME = re.compile(r"^(?P<at>\d{8}T\d{6}Z)--(?P<source>[a-z0-9-]+)\.xml$")


def _condition(facts: Facts, label: str = "man") -> Condition | None:
    person = next((c for c in facts.casualties if c.label == label), None)
    return person.condition.value if person and person.condition else None


def _life_changing(facts: Facts, label: str = "man") -> bool | None:
    person = next((c for c in facts.casualties if c.label == label), None)
    return person.life_changing.value if person and person.life_changing else None


# --- is it an incident -----------------------------------------------------------------------------------------------

INCIDENT_CASES = [
    ("Man shot by police in Walthamstow", "A man has been shot by armed officers at a house.", True),
    ("", "A teenager was stabbed outside a shop in Hackney on Tuesday evening.", True),
    ("", "Police were called to reports of a disturbance. A woman was taken to hospital.", True),
    ("", "Police are appealing for help to find a missing pensioner who was last seen on Monday.", True),
    ("Late winner for the holders",
     "Substitute Danny Reeve fired a low shot into the bottom corner in the 89th minute of the match to reach the "
     "semi-finals.", False),
    ("Weekend forecast", "Heavy showers could bring localised flooding, the Met Office says, with temperatures "
                         "falling to 8C.", False),
    ("Met recruiting", "The Met is recruiting 500 new officers. Applications close on Friday.", False),
    ("", "Walthamstow firefighters have been shortlisted for a community award at the annual ceremony.", False),
    ("", "The council has published its budget for the coming year.", False),
    ("", "His condition is described as critical.", True),
]


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    INCIDENT_CASES,
    ids=["police-shooting", "stabbing", "no-category-but-casualty", "missing-person", "sport-with-a-shot",
         "weather-with-flooding", "recruitment", "award-with-firefighters", "council-budget",
         "condition-described-as"],
)
def test_is_incident(title: str, text: str, expected: bool) -> None:
    """A text is an incident when it names a kind of incident or a casualty or police event, not sport or weather."""
    facts = extract(title, text)
    assert facts.is_incident is expected
    if not expected:
        assert facts.category is None
        assert facts.casualties == []


# --- category --------------------------------------------------------------------------------------------------------

CATEGORY_CASES = [
    ("A man was shot in Peckham last night.", Category.shooting),
    ("A firearm was discharged during the operation.", Category.shooting),
    ("Officers opened fire on the car.", Category.shooting),
    ("Gunshots were heard in the street.", Category.shooting),
    ("A teenager was stabbed outside a shop.", Category.stabbing),
    ("A knife attack left a man injured.", Category.stabbing),
    ("A man was attacked and stabbed in the street.", Category.stabbing),
    ("A woman was assaulted in the early hours.", Category.assault),
    ("Firefighters tackled a blaze at a block of flats.", Category.fire),
    ("A fire broke out at a warehouse.", Category.fire),
    ("An explosion damaged several houses.", Category.explosion),
    ("A cyclist was hit by a car on the high road.", Category.collision),
    ("Three people were hurt in a crash on the motorway.", Category.collision),
    ("Homes were flooded after the river burst its banks.", Category.flood),
    ("Police are appealing for help to find a missing teenager.", Category.missing_person),
    ("Counter Terrorism Policing is leading the investigation into the attack.", Category.terrorism),
    ("A man was stabbed. The attack is not being treated as terror-related.", Category.stabbing),
    ("No shots were fired, but a man was assaulted.", Category.assault),
    ("Police were called to a disturbance and a man was taken to hospital.", None),
    ("A firefighter was shot while attending a call.", Category.shooting),
    ("Firefighters were called to the flat on Friday.", Category.fire),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    CATEGORY_CASES,
    ids=["shot", "firearm-discharged", "opened-fire-is-not-fire", "gunshots", "stabbed", "knife-attack",
         "stabbing-beats-generic-attack", "assault", "blaze", "fire-broke-out", "explosion", "hit-by-a-car", "crash",
         "flood", "missing", "terrorism", "negated-terrorism", "negated-shots", "no-category",
         "firefighter-shot-is-a-shooting", "fire-service-alone-is-a-fire"],
)
def test_category(text: str, expected: Category | None) -> None:
    """The first non-negated kind of incident named is the category; a generic attack yields to a specific kind."""
    facts = extract("", text)
    assert (facts.category.value if facts.category else None) is expected


def test_category_snippet_is_the_stating_sentence() -> None:
    """The evidence snippet of a value is the sentence that stated it."""
    facts = extract("Update from the scene", "Officers remain at the scene. A man was stabbed on Friday.")
    assert facts.category is not None
    assert facts.category.snippet == "A man was stabbed on Friday."


# --- location --------------------------------------------------------------------------------------------------------

LOCATION_CASES = [
    ("A man was shot at a house in Walthamstow, east London.", ("Walthamstow", "London", None),
     {"walthamstow", "east london", "london"}),
    ("A man was stabbed in east London.", ("east London", "London", None), {"east london", "london"}),
    ("A woman was hit by a car on Hoe Street in Walthamstow.", ("Walthamstow", "London", "Hoe Street"),
     {"walthamstow", "hoe street"}),
    ("A 17-year-old boy was shot in Chicago, Illinois.", ("Chicago", "Illinois", None), {"chicago", "illinois"}),
    ("A fire broke out at a flat in Manchester.", ("Manchester", "Greater Manchester", None), {"manchester"}),
    ("Police in London said a man was stabbed in Hackney.", ("Hackney", "London", None), {"london", "hackney"}),
    ("A man was stabbed in Smallbridge on Friday.", ("Smallbridge", None, None), {"smallbridge"}),
    ("A man was stabbed in October outside a shop.", None, set()),
    ("MACON, Ga. (AP) — A man was shot on Friday.", ("Macon", "Georgia", None), {"macon"}),
    ("CORPUS CHRISTI (KIII NEWS) - A man was shot on Friday.", ("Corpus Christi", "Texas", None), {"corpus christi"}),
    ("Deputy Chief Kerr Putney said a man was shot in Charlotte, North Carolina.",
     ("Charlotte", "North Carolina", None), {"charlotte", "north carolina"}),
    ("Police in Chicago said a man was shot near Zacks.", ("Chicago", "Illinois", None), {"chicago", "zacks"}),
    ("Five people were shot at Wes Craven's party in Smallbridge.", ("Smallbridge", None, None), {"smallbridge"}),
    ("Two men were shot at a party in Smallbridge House Party Club.", ("Smallbridge", None, None), {"smallbridge"}),
    ("A boy was shot in Chicago, Illinois. His family moved from Aberdeen last year.", ("Chicago", "Illinois", None),
     {"chicago", "illinois"}),
    ("Police: 3 killed, 2 injured in Md. shooting", ("Maryland", "United States", None), {"maryland"}),
]


@pytest.mark.parametrize(
    ("text", "expected", "places"),
    LOCATION_CASES,
    ids=["area-with-part-of-city", "part-of-city-only", "street", "us-city-state", "uk-city",
         "most-specific-wins", "unknown-place-by-pattern", "month-is-not-a-place", "us-dateline",
         "us-dateline-with-station", "surname-is-not-a-place", "known-city-beats-a-guess", "possessive-is-no-place",
         "trailing-words-are-no-place", "uk-homonym-in-a-us-text", "ap-state-abbreviation"],
)
def test_location(text: str, expected: tuple[str, str | None, str | None] | None, places: set[str]) -> None:
    """The location is the most specific place named, with its region and street; places lists every place."""
    facts = extract("", text)
    got = facts.location.value if facts.location else None
    assert (got.name, got.region, got.street) == expected if got else expected is None
    assert facts.places == frozenset(places)


@pytest.mark.parametrize(("title", "place"), [("Macon man shot in face", "Macon"),
                                              ("Little boy who shot himself is on life support", None),
                                              ("Running Teen Slipped in Mud, Fell and Shot Buddy: Police", None),
                                              ("Teen Slipped and Shot Buddy in Joliet: Police", "Joliet")])
def test_a_headline_may_start_with_its_place(title: str, place: str | None) -> None:
    """A headline may start with its place; in title case, "in Mud" is a place only if GeoNames knows the town."""
    facts = extract(title, "")
    assert (facts.location.value.name if facts.location else None) == place


@pytest.mark.parametrize(("title", "text", "expected"), [
    ("Two shot at Whitehaven apartment complex", "Police in Memphis, Tennessee said two men were shot in Whitehaven.",
     ("Memphis", "Tennessee")),
    ("Teen shot in Chelsea", "CHELSEA, Mass. (AP) — A teen was shot in Chelsea, police said.",
     ("Chelsea", "Massachusetts")),
    ("Man shot in Chelsea", "A man was shot in Chelsea, west London.", ("Chelsea", "England")),
    ("Gunman kills three in Aberdeen", "Police in South Dakota said the shooting happened at a home.",
     ("Aberdeen", "South Dakota")),
    ("Illinois State Police release new details of Manchester mass shooting", "Five people were killed.",
     ("Manchester", None)),
    ("Woman stabbed in Manchester", "Georgia Smith, 23, was stabbed outside a bar.",
     ("Manchester", "Greater Manchester")),
], ids=["no-such-town-in-the-state", "the-states-town", "a-uk-text-keeps-the-uk-town", "a-british-city-in-a-us-state",
        "a-british-city-the-state-lacks", "a-given-name-is-no-state"])
def test_a_town_is_looked_up_where_the_text_is(title: str, text: str, expected: tuple[str, str]) -> None:
    """A town named alone is the one in the state (or country) the rest of the text names; one that state does not
    have is no more than a guess, so the city the text names wins."""
    facts = extract(title, text)
    assert facts.location is not None
    assert (facts.location.value.name, facts.location.value.region) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("A man was shot in Iredell County on Friday.", ("Iredell County", "North Carolina")),
    ("A man was shot in Washington County. Deputies in Ohio said he was 20.", ("Washington County", "Ohio")),
    ("A man was shot in Washington County on Friday.", ("Washington County", None)),
    ("A woman was stabbed in Jefferson Parish.", ("Jefferson Parish", "Louisiana")),
], ids=["the-only-state-with-that-county", "the-state-the-text-names", "a-county-of-many-states-unplaced", "a-parish"])
def test_a_county_is_placed_in_its_state(text: str, expected: tuple[str, str | None]) -> None:
    """A county is the state's the text names that has one of that name, else the only state with one; "Washington
    County" is no county of Washington state."""
    facts = extract("", text)
    assert facts.location is not None
    assert (facts.location.value.name, facts.location.value.region) == expected


def test_a_known_place_inside_another_name_is_that_other_place() -> None:
    """"Brighton Park" (Chicago) is not Brighton, England: a known name followed by Park, Heights, Beach … names
    another place, looked up as a guess."""
    facts = extract("1 dead, 4 wounded in Brighton Park shooting", "CHICAGO (AP) — One man was killed.")
    assert facts.location is not None
    assert (facts.location.value.name, facts.location.value.region) == ("Brighton Park", "Illinois")
    assert "brighton" not in facts.places


# --- casualties ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("A police officer was shot and seriously injured by a suspect who later killed himself.",
     [("officer", Condition.serious), ("suspect", Condition.deceased)]),
    ("A man was shot by a gunman who then died.", [("man", None), ("suspect", Condition.deceased)]),
    ("The boy was wounded in the arm. She was killed.", [("boy", None), ("woman", Condition.deceased)]),
    ("The woman was wounded in the arm. She was later killed.", [("woman", Condition.deceased)]),
], ids=["the-suspect-who-killed-himself", "the-gunman-who-died", "she-is-not-the-boy", "she-is-the-woman"])
def test_whose_condition_it_is(text: str, expected: list[tuple[str, Condition | None]]) -> None:
    """A condition stated after a suspect's noun is the suspect's, not the victim's; "she" is no boy."""
    found = [(c.label, c.condition.value if c.condition else None) for c in extract("", text).casualties]
    assert found == expected


CASUALTY_CASES = [
    ("A 17-year-old boy was stabbed in the street.", [("17-year-old boy", Role.victim)]),
    ("A man, aged 34, was found injured. The man was taken to hospital.", [("34-year-old man", Role.victim)]),
    ("A teenager was hurt.", [("teenager", Role.victim)]),
    ("A man has been shot by armed police officers.", [("man", Role.subject)]),
    ("Armed officers shot a man in Tottenham.", [("man", Role.subject)]),
    ("A police officer was injured during the arrest.", [("officer", Role.officer)]),
    # A suspect arrested unhurt is counted in arrests, not listed as a casualty.
    ("A 19-year-old man was arrested on suspicion of murder.", []),
    ("A man was stabbed and police arrested a woman nearby.", [("man", Role.victim)]),
    ("A woman, a passer-by, was hurt in the crash.", [("woman", Role.bystander)]),
    ("A man was stabbed. A second man was also injured.", [("man", Role.victim), ("second man", Role.victim)]),
    ("A man walking his dog alerted the police.", []),
    ("A 21-year-old man accidentally shot a 9-year-old girl at their home.", [("9-year-old girl", Role.victim)]),
    ("A man was shot and killed the day after.", [("man", Role.victim)]),
    ("Man shot 3 times in Hackney, police said.", [("man", Role.victim)]),
    ("A man was fatally shot a block from his home.", [("man", Role.victim)]),
    ("A 14-year-old boy was injured after getting accidentally shot by another teen.",
     [("14-year-old boy", Role.victim)]),
    ("A girl shot herself in the head while her mother and another woman were home.", [("girl", Role.victim)]),
    ("Police say another toddler pulled the trigger and shot the boy in the leg.", [("boy", Role.victim)]),
    ("A man faces a child neglect charge after a boy shot himself.", [("boy", Role.victim)]),
    ("A minor was injured in a shooting.", [("child", Role.victim)]),
    ("Police say a 2-year-old is dead and a 15-month-old is injured.",
     [("2-year-old person", Role.victim), ("15-month-old baby", Role.victim)]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    CASUALTY_CASES,
    ids=["aged-label", "aged-after-noun", "teenager", "shot-by-police-is-subject", "officers-shot-a-man",
         "injured-officer", "suspect", "victim-and-suspect", "bystander", "second-person", "witness-is-no-casualty",
         "who-shot-someone-is-no-victim", "shot-and-killed-is-passive", "shot-n-times-is-no-shooter",
         "shot-after-an-adverb-is-passive", "the-agent-of-a-passive-hit-is-no-victim",
         "a-cue-before-stops-at-while", "who-pulled-the-trigger-is-no-victim", "who-faces-a-charge-is-no-victim",
         "a-minor", "an-age-in-months"],
)
def test_casualty_labels_and_roles(text: str, expected: list[tuple[str, Role]]) -> None:
    """People are labelled in normal form, with the role the words nearest each mention give."""
    assert [(c.label, c.role) for c in extract("", text).casualties] == expected


CONDITION_CASES = [
    ("A man is in a critical condition in hospital.", Condition.critical),
    ("A man was taken to hospital with life-threatening injuries.", Condition.critical),
    ("A man is fighting for his life.", Condition.critical),
    ("A man is in a serious but stable condition.", Condition.serious),
    ("A man was seriously injured.", Condition.serious),
    ("A man was taken to hospital. His injuries are non-life-threatening.", Condition.stable),
    ("A man was shot. His injuries are not life-threatening.", Condition.stable),
    ("A man was stabbed. His injuries are not thought to be life-threatening.", Condition.stable),
    ("The man is no longer in a life-threatening condition.", Condition.stable),
    ("A man is in a stable condition.", Condition.stable),
    ("A man was treated for minor injuries.", Condition.minor),
    ("A man was hurt but his injuries are not thought to be serious.", Condition.minor),
    ("A man has been discharged from hospital.", Condition.discharged),
    ("A man died in hospital.", Condition.deceased),
    ("A man was pronounced dead at the scene.", Condition.deceased),
    ("A man was fatally stabbed.", Condition.deceased),
    ("A man was shot. He is in a critical condition.", Condition.critical),
    ("A man was initially taken to hospital in a critical condition, though his state has since improved and is "
     "now described as non-life-threatening.", Condition.stable),
    ("A man was in a critical condition. Thankfully, his condition has since improved. He is now stable.",
     Condition.stable),
    ("A man was in a stable condition but later died.", Condition.deceased),
    ("A police firearm was discharged and a man was shot.", None),
    ("A man remains in hospital.", None),
    ("A man was stabbed. His condition is now stable. He was initially in a critical condition.", Condition.stable),
    ("A man was shot. His injuries are not life-threatening, police said, although he was initially fighting for his "
     "life.", Condition.stable),
    ("A man was stabbed. He is in a stable condition. He had been in a critical condition.", Condition.stable),
    ("A man is in a stable condition. He was in a critical condition at first.", Condition.stable),
    ("A man is in a stable condition. He was taken to hospital in a critical condition when he was found.",
     Condition.stable),
    ("A man was taken to hospital with life-threatening injuries.", Condition.critical),
    ("A man was in a stable condition. He died in hospital earlier today.", Condition.deceased),
    ("A man was stabbed. His condition is described as serious.", Condition.serious),
    ("A man was stabbed. His condition was last night described as critical.", Condition.critical),
    ("A man was hurt. His injuries are serious but not life-threatening.", Condition.serious),
    ("A man was listed in fair condition at a local hospital.", Condition.stable),
    ("Police were not able to say if the man had died.", None),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    CONDITION_CASES,
    ids=["critical-condition", "life-threatening", "fighting-for-life", "serious-but-stable", "seriously-injured",
         "non-life-threatening", "not-life-threatening", "not-thought-life-threatening", "no-longer",
         "stable-condition", "minor-injuries", "not-serious-is-minor", "discharged", "died", "pronounced-dead",
         "fatally", "pronoun-refers-back", "latest-in-sentence-wins", "latest-sentence-wins", "later-death-wins",
         "firearm-discharged-is-no-condition", "no-condition", "background-initially-at-the-end",
         "background-after-although", "background-had-been", "background-at-first", "background-taken-when",
         "background-alone-still-counts", "death-earlier-today-is-no-background", "described-as-serious",
         "described-as-critical-last-night", "serious-but-not-life-threatening", "us-fair-condition",
         "question-is-no-death"],
)
def test_condition(text: str, expected: Condition | None) -> None:
    """The condition is the latest current one the text states for the person, with negation honoured."""
    assert _condition(extract("", text)) is expected


LIFE_CHANGING_CASES = [
    ("A man's injuries are described as potentially life-changing.", True),
    ("A man suffered life-changing injuries.", True),
    ("A man was hurt; his injuries are not thought to be life-changing.", False),
    ("A man was taken to hospital.", None),
]


@pytest.mark.parametrize(
    ("text", "expected"), LIFE_CHANGING_CASES, ids=["potentially", "plain", "negated", "unsaid"]
)
def test_life_changing(text: str, expected: bool | None) -> None:
    """"Life-changing" marks the person's injuries as life-changing; a negation marks them as not."""
    assert _life_changing(extract("", text)) is expected


PEOPLE_CASES = [
    ("", "A man has died after being stabbed in Hackney. A 20-year-old man has been charged with murder.",
     [("man", Role.victim, Condition.deceased)]),
    ("Teen stabbed", "A 17-year-old boy was stabbed in Hackney.", [("17-year-old boy", Role.victim, None)]),
    ("Man stabbed in Hackney", "A man in his 30s was stabbed on Friday. He is in a critical condition.",
     [("man in his 30s", Role.victim, Condition.critical)]),
    ("Teen stabbed", "A 17-year-old boy was stabbed. A 16-year-old boy has been arrested.",
     [("17-year-old boy", Role.victim, None)]),
    ("Child shot", "A 7-year-old girl was shot in the leg.", [("7-year-old girl", Role.victim, None)]),
    ("", "Two people were stabbed in Hackney. One man is in a critical condition, the other is stable.",
     [("man", Role.victim, Condition.critical), ("other person", Role.victim, Condition.stable)]),
    ("", "Two men were stabbed. One man is in a critical condition and the other man is stable.",
     [("man", Role.victim, Condition.critical), ("other man", Role.victim, Condition.stable)]),
    ("", "A boy, 3, was wounded in an accidental shooting.", [("3-year-old boy", Role.victim, None)]),
    ("", "A man is facing charges in the shooting death of a boy.",
     [("boy", Role.unknown, Condition.deceased)]),
    ("Man dies after stabbing", "The man, aged 24, died in hospital. A 19-year-old man was arrested.",
     [("24-year-old man", Role.victim, Condition.deceased)]),
    ("", "A 24-year-old man was stabbed. A 19-year-old man was arrested. The victim died in hospital.",
     [("24-year-old man", Role.victim, Condition.deceased)]),
    ("Teenager in hospital after stabbing", "A 16-year-old boy is in a stable condition. A 15-year-old boy was also "
     "treated for minor injuries.",
     [("16-year-old boy", Role.victim, Condition.stable), ("15-year-old boy", Role.victim, Condition.minor)]),
    ("", "Two men were stabbed. The other man, 28, suffered injuries that are not life-threatening.",
     [("28-year-old man", Role.victim, Condition.stable)]),
]


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    PEOPLE_CASES,
    ids=["victim-and-charged-man-are-two", "title-teen-is-the-17-year-old", "title-man-is-the-man-in-his-30s",
         "title-teen-is-the-victim-not-the-suspect", "title-child-is-the-7-year-old", "one-critical-the-other-stable",
         "the-other-man", "comma-age", "death-of-an-object", "title-man-dies-is-the-victim-not-the-suspect",
         "the-victim-died-not-the-suspect-named-since",
         "title-teen-is-the-first-teen-named", "the-other-man-with-an-age"],
)
def test_people(title: str, text: str, expected: list[tuple[str, Role, Condition | None]]) -> None:
    """Each person once, under the most specific label the text gives; a victim is never folded into a suspect."""
    facts = extract(title, text)
    assert [(c.label, c.role, c.condition.value if c.condition else None) for c in facts.casualties] == expected


# --- counts ----------------------------------------------------------------------------------------------------------

COUNT_CASES = [
    ("Two men were injured in the attack.", "injured", 2),
    ("Four dead after a fire in a block of flats.", "dead", 4),
    ("Three people were killed and 12 injured in the crash.", "dead", 3),
    ("Three people were killed and 12 injured in the crash.", "injured", 12),
    ("A man was stabbed. A second man was also injured.", "injured", 2),
    ("The crash killed two people.", "dead", 2),
    ("No one was injured in the house fire.", "injured", 0),
    ("Armed officers respond to 4,000 calls a year and a man was shot.", "injured", 1),
    ("A man was shot and taken to hospital.", "injured", 1),
    ("A man was shot on Friday. The man later died in hospital.", "injured", None),
    ("A man and a woman were stabbed. The woman is in a stable condition.", "injured", 2),
    ("A 15-year-old boy was shot in the leg. A 16-year-old has been arrested.", "injured", 1),
    ("Police are investigating a quadruple shooting in West Philadelphia.", "injured", 4),
    ("Victims identified in triple homicide in Lookout Valley.", "dead", 3),
    ("Two boys were shot in Old Town. They were among at least 13 people shot in Chicago since Tuesday morning.",
     "injured", 2),
    ("Man claims self-defense after shooting five people at his home.", "injured", 5),
    ("5 recovering after drive-by shooting outside Liberty City store", "injured", 5),
    ("A 19-year-old man was arrested on suspicion of murder.", "arrests", 1),
    ("Three people have been arrested after the stabbing.", "arrests", 3),
    ("A man was stabbed. A second man has been arrested.", "arrests", 2),
    ("Police have made five arrests after the disorder.", "arrests", 5),
    ("No arrests have been made after the stabbing.", "arrests", 0),
    ("A man was stabbed and police say the suspect has not been arrested.", "arrests", None),
    ("A man has been charged with murder after the stabbing.", "charges", 1),
    ("Two men have been charged after the stabbing.", "charges", 2),
    ("A man was stabbed after a group charged at him.", "charges", None),
    ("A man was shot dead in Hackney. A second man was injured.", "dead", 1),
    ("A man was shot dead in Hackney. A second man was injured.", "injured", 1),
    ("A teenager was shot and killed on Friday.", "dead", 1),
    ("A man was stabbed and taken to hospital, where he died.", "dead", 1),
    ("A man was shot dead. A woman was also killed.", "dead", 2),
    ("A man was shot dead. The 26-year-old man was named by police.", "dead", 1),
    ("A man has died after being stabbed in Hackney. A 20-year-old man has been charged with murder.", "charges", 1),
    ("A man was shot. He is in a critical condition.", "dead", None),
    ("Three people were shot, one fatally.", "dead", 1),
    ("Three people were shot, one fatally.", "injured", 2),
    ("Two people were stabbed. One man is in a critical condition, the other is stable.", "injured", 2),
    ("Seven shot, one dead in overnight violence.", "injured", 6),
    ("Two men were shot dead.", "injured", None),
    ("Two people were killed, including a 17-year-old boy who was shot dead.", "dead", 2),
    ("A gunman opened fire, killing 62-year-old Jane Doe outside her home.", "dead", None),
    ("A man was shot dead on Sunday. More than 750 people have been killed so far this year in Chicago.", "dead", 1),
    ("Two men were shot. In 2015, 344 people were killed in the city.", "injured", 2),
    ("A man was shot. The suspect was booked into the county jail.", "arrests", 1),
    ("A man was shot. A 20-year-old man turned himself in on Monday.", "arrests", 1),
    ("Two men have been charged with murder after the shooting.", "arrests", 2),
    ("A flat caught fire. Seven people, including a woman, were treated for smoke inhalation.", "injured", 7),
    ("A gunfight at a biker club kills 1, wounds 12 in Fresno.", "dead", 1),
    ("A gunfight at a biker club kills 1, wounds 12 in Fresno.", "injured", 12),
    ("One teenager is dead and another is being treated for life-threatening injuries.", "dead", 1),
    ("Two of the family members found dead were victims of homicide.", "dead", 2),
    ("Mother, 2 children found dead on Navajo Nation", "dead", 3),
    ("A father and son were found shot to death inside their home.", "dead", 2),
    ("Police say a man killed his wife, 2 sons, then himself.", "dead", 4),
    ("A man killed his ex-girlfriend and their son before killing himself.", "dead", 3),
    ("Police were called and found the 7-year-old girl and her father, 56, dead at home.", "dead", 2),
    ("Teen shoots, kills 14", "dead", None),
    ("Six men have been indicted for the attempted murders of five teenagers.", "dead", None),
    ("Dennie Reeves, 66 and Ginger Reeves, 64 were found dead inside a home.", "dead", 2),
    ("The club's annual dance turned into a gun battle, leaving one dead and a dozen others wounded.", "dead", 1),
    ("A teenager was shot dead in Hackney. The 17-year-old boy died at the scene. Last month a man died in a crash "
     "on the same road.", "dead", 1),
    ("A man was shot in Hackney on Friday. The 23-year-old died in hospital.", "injured", None),
    ("A 16-year-old boy and a 19-year-old man were each shot in the leg, police said.", "injured", 2),
    ("A man and his wife were shot at their home. The man died in hospital.", "injured", 1),
    ("Image 1 of 9 7-year-old girl and her mother were shot on the West Side.", "injured", 2),
    ("A teen shot himself in the leg in a Bluffton neighborhood.", "injured", 1),
    ("A man was seriously injured in the shooting. No one else was hurt.", "injured", 1),
    ("Police are working a double homicide at an apartment complex. Two other people were shot and wounded.",
     "injured", 2),
    ("Police say four people were hit in an overnight shooting in Shelby.", "injured", 4),
    ("Three people were shot to death and a fourth person was critically wounded.", "injured", 1),
    ("A gunman killed three men and wounded another in Lookout Valley.", "injured", 1),
    ("The shooting left three people dead and another injured.", "injured", 1),
    ("Broadway was killed. Three other men were subsequently injured.", "injured", 3),
    ("Three people were fatally injured in the crash.", "injured", None),
    ("Three of the victims died and the remaining victim, a woman, was taken to a hospital in critical condition.",
     "injured", 1),
    ("A shooting left a 7-year-old girl dead and her grandmother wounded.", "dead", 1),
    ("A shooting left a 7-year-old girl dead and her grandmother wounded.", "injured", 1),
    ("Police said the shooting left two people dead and a teen injured.", "injured", 1),
    ("He shot two of the robbers, killing one of them and wounding the other.", "injured", 1),
    ("Both men were pronounced dead. Two other gunshot victims arrived at the hospital by car.", "injured", 2),
    ("A man was shot dead. 0:47 Driver shot to death on Blackstone Pause 0:43 Three killed in crash", "dead", 1),
    ("A man was shot dead in Miami. August 1982: Eight people killed at a Miami welding shop.", "dead", 1),
    ("Officer claims self-defense in shooting that killed 6-y - WAFB 9 News", "dead", None),
    ("Violent night in St. Louis leaves one dead, nine others wounded", "injured", None),
    ("Police say a man shot his family, killing 3, then killed himself.", "dead", 4),
    ("Police say a man killed 2 before turning the gun on himself in an attempted suicide.", "dead", 2),
    ("Five members of a family, including three children, were found shot dead at their home.", "dead", 5),
    ("Two people were killed in the shooting. A woman was shot in the house.", "injured", None),
    ("A 17-year-old was injured in a Friday afternoon shooting, police said.", "injured", 1),
    ("Officials say two teens, ages 14 and 16, were shot by a 20-year-old.", "injured", 2),
    ("Police are investigating two people in their 20s shot this morning.", "injured", 2),
    ("Police were called. Three juveniles are recovering after being hit by buckshot.", "injured", 3),
    ("A girl was shot dead. Three other people were treated at a hospital and released.", "injured", 3),
    ("Police said a man and his son killed a neighbor.", "dead", None),
    ("Police said a man who shot his wife and son was found dead.", "dead", 1),
    ("So far this year a man, his wife and two sons were killed in the city.", "dead", 1),
    ("In Fort Worth, two people were killed.", "dead", 2),
    ("Chicago sees about 500 people killed annually. A man was shot dead.", "dead", 1),
    ("One man was killed and two others were shot.", "injured", 2),
    ("A man and his two sons were shot and killed.", "dead", 3),
    ("Nicholas Lee Powers, 30; Demario Laquan Burnett, 21; and Jerry Trivon Coleman, 31 all died of gunshot wounds.",
     "dead", 3),
    ("Police said John Smith, 30, shot Jane Doe, 25, who died.", "dead", 1),
    ("A man has been arrested for the killing of two men in May.", "dead", 2),
    ("Police say all five members of the Short family died of gunshot wounds.", "dead", 5),
    ("Police say a grandfather and six grandchildren were found dead.", "dead", 7),
    ("John Lewis, 24, was killed. Three other males were also shot.", "injured", 3),
    ("Three state troopers who entered the home were wounded.", "injured", 3),
    ("A man was shot in the leg. Three shootings left six people wounded over the course of three hours.", "injured",
     1),
    ("A boy was shot in the arm. In other Sunday attacks, at least eight people were shot.", "injured", 1),
]


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    COUNT_CASES,
    ids=["injured-words", "dead-headline", "dead-and-injured-dead", "dead-and-injured-injured", "second-injured",
         "killed-n", "no-one-injured", "thousands-are-not-casualties", "one-casualty-counts-one",
         "shot-then-died-is-not-injured", "people-hurt-one-by-one", "the-arrested-are-not-injured",
         "quadruple-shooting", "triple-homicide", "a-city-toll-is-no-count", "shooting-n-people",
         "n-recovering",
         "one-arrest", "arrests-n", "second-arrest", "n-arrests", "no-arrests", "negated-arrest", "one-charge",
         "charges-n", "charged-at-is-not-a-charge", "one-shot-dead", "second-man-injured-after-a-death",
         "singular-shot-and-killed", "singular-died", "two-singular-deaths", "one-death-two-labels",
         "charged-man-is-no-death", "critical-is-no-death", "n-shot-one-fatally-dead", "n-shot-one-fatally-injured",
         "two-stabbed-injured", "seven-shot-one-dead", "all-shot-dead-none-injured", "number-beats-singular-deaths",
         "an-age-is-not-a-count", "a-tally-this-year-is-not-this-incident", "a-tally-in-a-year-is-not-injured",
         "booked-into-jail-is-an-arrest", "turned-himself-in-is-an-arrest", "the-charged-were-arrested",
         "injured-with-an-aside", "kills-n-wounds-n-dead", "kills-n-wounds-n-injured", "one-teenager-is-dead",
         "n-of-the-family-members", "listed-dead-with-a-number", "listed-dead-found-shot-to-death",
         "listed-killed-then-himself", "listed-killed-before-killing-himself", "listed-dead-with-an-age",
         "a-number-ending-a-headline-is-a-cut-age", "attempted-murders-are-no-deaths", "people-named-with-ages",
         "an-annual-event-is-no-tally", "one-death-under-two-labels-and-an-earlier-death",
         "the-dead-victim-under-another-label-is-not-injured", "listed-hit", "listed-hit-less-the-dead",
         "no-number-before-an-age", "shot-himself", "no-one-else-leaves-the-one-named",
         "other-people-shot-are-not-the-dead", "n-hit", "an-ordinal-after-the-dead",
         "wounded-another", "and-another-injured", "an-adverb-before-injured", "fatally-injured-is-no-injury",
         "the-remaining-victim", "left-a-person-dead", "and-her-grandmother-wounded", "and-a-teen-injured",
         "wounding-the-other", "n-other-gunshot-victims", "a-video-playlist-is-no-count",
         "an-earlier-incident-by-its-date", "a-number-hyphened-to-a-cut-word", "a-violent-night-is-a-tally",
         "killing-n-then-himself", "an-attempted-suicide-is-no-death", "n-members-of-a-family",
         "where-a-number-died-only-people-with-a-condition-are-hurt", "a-person-named-by-an-age-alone",
         "n-hit-with-ages-aside", "n-hit-in-their-20s", "n-juveniles-recovering", "treated-at-a-hospital",
         "who-killed-is-no-listed-dead", "whom-he-shot-is-no-listed-dead", "a-listed-tally-is-no-count",
         "a-place-is-no-name-before-an-age", "killed-annually-is-a-tally", "two-others-are-not-the-dead",
         "listed-shot-and-killed", "people-named-with-ages-died", "a-shooter-named-with-an-age-is-no-death",
         "the-killing-of-n", "n-members-of-a-named-family", "listed-grandchildren",
         "n-other-males-shot", "n-people-who-did-something-were-wounded",
         "several-shootings-summed-are-a-tally", "other-attacks-are-a-tally"],
)
def test_counts(text: str, field: str, expected: int | None) -> None:
    """Counts come from numbers (digits or words), ordinals and deaths stated one by one; the highest stated wins,
    a negation counts nothing, and the dead among people shot are not injured."""
    stated = getattr(extract("", text), field)
    assert (stated.value if stated else None) == expected


US_CASES = [
    ("A 24-year-old man was shot and killed Saturday night in Chicago, Illinois, police said. A second victim, a "
     "woman, was transported to a local hospital in critical condition. A suspect was taken into custody.",
     [("24-year-old man", Role.victim, Condition.deceased), ("woman", Role.victim, Condition.critical)], 1, 1),
    ("Two people were killed and three others wounded in a shooting in Houston, Texas.", [], 3, None),
    ("A man is in stable condition after being stabbed in Dallas, TX.", [("man", Role.victim, Condition.stable)],
     1, None),
]


@pytest.mark.parametrize(
    ("text", "casualties", "injured", "arrests"), US_CASES, ids=["shot-and-killed", "plural-only", "state-code"]
)
def test_us_phrasing(
    text: str, casualties: list[tuple[str, Role, Condition]], injured: int | None, arrests: int | None
) -> None:
    """Common US phrasing: "shot and killed", "in critical condition", "taken into custody", "City, ST"."""
    facts = extract("", text)
    assert [(c.label, c.role, c.condition.value if c.condition else None) for c in facts.casualties] == casualties
    assert (facts.injured.value if facts.injured else None) == injured
    assert (facts.arrests.value if facts.arrests else None) == arrests
    assert facts.location is not None
    assert facts.location.value.region in {"Illinois", "Texas", "TX"}


# --- investigations --------------------------------------------------------------------------------------------------

_IOPC, _POLICE = InvestigationBody.IOPC, InvestigationBody.police
_OPEN, _CLOSED = InvestigationStatus.open, InvestigationStatus.closed
INVESTIGATION_CASES = [
    ("A man was shot. The IOPC has launched an independent investigation.",
     [(_IOPC, InvestigationKind.independent, _OPEN)]),
    ("A man was shot. The Independent Office for Police Conduct has started its own investigation.",
     [(_IOPC, InvestigationKind.independent, _OPEN)]),
    ("A man was shot. The police watchdog is investigating.", [(_IOPC, InvestigationKind.independent, _OPEN)]),
    ("A man was shot. A mandatory referral has been made to the IOPC.", []),
    ("A man was shot. The IOPC will assess whether an investigation is needed.", []),
    ("A man was shot. The IOPC has concluded its investigation.", [(_IOPC, InvestigationKind.independent, _CLOSED)]),
    ("A man was shot. The IOPC has launched a criminal investigation into the officer.",
     [(_IOPC, InvestigationKind.criminal, _OPEN)]),
    ("A man was stabbed. A murder investigation has been launched.", [(_POLICE, InvestigationKind.murder, _OPEN)]),
    ("A man was stabbed. Detectives have launched an investigation.",
     [(_POLICE, InvestigationKind.criminal, _OPEN)]),
    ("A blaze broke out. The cause of the fire is being investigated.",
     [(InvestigationBody.fire_service, InvestigationKind.fire, _OPEN)]),
    ("A worker was injured. The Health and Safety Executive is investigating.",
     [(InvestigationBody.HSE, InvestigationKind.other, _OPEN)]),
    ("A man died. An inquest will be opened next week.",
     [(InvestigationBody.coroner, InvestigationKind.inquest, _OPEN)]),
    ("A man died. The inquest concluded on Friday.", [(InvestigationBody.coroner, InvestigationKind.inquest, _CLOSED)]),
    ("Officers opened fire and a man was shot.", []),
    ("A man was found injured. It is not a criminal investigation.", []),
    ("A man died. No murder investigation has been launched.", []),
    ("A man died. Police have not launched a criminal investigation.", []),
    ("A man died. Police are investigating. The death is not being treated as suspicious.", []),
    ("A man died. The death is not being treated as suspicious. Detectives have since launched a murder "
     "investigation.", [(_POLICE, InvestigationKind.murder, _OPEN)]),
    ("A man died. No inquest will be held.", []),
    ("A man was shot. The IOPC has not concluded its investigation.", [(_IOPC, InvestigationKind.independent, _OPEN)]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    INVESTIGATION_CASES,
    ids=["iopc-launched", "iopc-long-name-started", "police-watchdog", "referral-is-not-investigation",
         "hedged", "iopc-closed", "iopc-criminal", "murder", "police", "fire", "hse", "inquest-open",
         "inquest-closed", "opened-fire-is-no-investigation", "not-a-criminal-investigation",
         "no-murder-investigation", "not-launched", "not-suspicious-rules-out", "later-murder-investigation",
         "no-inquest", "not-concluded-is-open"],
)
def test_investigations(
    text: str, expected: list[tuple[InvestigationBody, InvestigationKind, InvestigationStatus]]
) -> None:
    """Investigations are reported by body, kind and status; referrals, maybes and negations are not
    investigations."""
    assert [(i.body, i.kind, i.status) for i in extract("", text).investigations] == expected


# --- cordon and public risk ------------------------------------------------------------------------------------------

CORDON_CASES = [
    ("A man was stabbed. A cordon is in place.", Cordon.in_place),
    ("A man was stabbed. A cordon remains in place around the address.", Cordon.in_place),
    ("A man was stabbed. A crime scene is in place.", Cordon.in_place),
    ("A man was stabbed. Road closures remain in place.", Cordon.in_place),
    ("A man was stabbed. The cordon has been lifted.", Cordon.lifted),
    ("A man was stabbed. The road has reopened.", Cordon.lifted),
    ("A man was stabbed. Police lifted the cordon on Saturday.", Cordon.lifted),
    ("A man was stabbed. A cordon was put in place and has since been lifted.", Cordon.lifted),
    ("A man was stabbed. The cordon was lifted. A new cordon is in place.", Cordon.in_place),
    ("A man was stabbed. The cordon has not been lifted.", Cordon.in_place),
    ("A man was stabbed. The road will be reopened later.", None),
    ("A man was stabbed.", None),
    ("A man was stabbed. The cordon has been lifted. A cordon was initially put in place around the shop.",
     Cordon.lifted),
    ("A man was stabbed. A cordon was initially put in place.", Cordon.in_place),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    CORDON_CASES,
    ids=["in-place", "remains", "crime-scene", "road-closures", "lifted", "road-reopened", "police-lifted",
         "latest-in-sentence", "latest-sentence", "not-lifted", "future-is-not-lifted", "unsaid",
         "background-in-place-at-the-end", "background-alone-still-counts"],
)
def test_cordon(text: str, expected: Cordon | None) -> None:
    """The cordon's state is the latest current one the text states; a negated or future lifting is not a
    lifting."""
    facts = extract("", text)
    assert (facts.cordon.value if facts.cordon else None) is expected


RISK_CASES = [
    ("A man was shot. There is no wider risk to the public.", PublicRisk.none),
    ("A man was shot. Police said there is no ongoing risk.", PublicRisk.none),
    ("A man was shot. There is not believed to be any wider threat.", PublicRisk.none),
    ("A man was shot. There's no ongoing danger to people in the area.", PublicRisk.none),
    ("A man was shot. We do not believe there is any risk to the public.", PublicRisk.none),
    ("A man was shot. The public are urged to avoid the area.", None),
    ("A man was shot. The gunman is armed and dangerous and should not be approached.", PublicRisk.ongoing),
    ("A man was shot. The gunman poses a risk to the public.", PublicRisk.ongoing),
    ("A man was shot. People were asked to stay away. There is now no wider risk to the public.", PublicRisk.none),
    ("A man was shot. There was no risk at first, but residents are urged to stay indoors.", PublicRisk.ongoing),
    ("A man was shot.", None),
    ("A man was shot. There is no wider risk to the public. Residents were initially urged to stay indoors.",
     PublicRisk.none),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    RISK_CASES,
    ids=["no-wider-risk", "no-ongoing-risk", "not-believed", "no-ongoing-danger", "do-not-believe",
         "avoid-the-area-is-traffic-advice", "armed-and-dangerous", "risk-to-public", "latest-none", "latest-ongoing",
         "unsaid", "background-urged-at-the-end"],
)
def test_public_risk(text: str, expected: PublicRisk | None) -> None:
    """The risk to the public is the latest stated; "no wider risk to the public" is none, not ongoing."""
    facts = extract("", text)
    assert (facts.public_risk.value if facts.public_risk else None) is expected


# --- statements ------------------------------------------------------------------------------------------------------

STATEMENT_CASES = [
    ('A man was stabbed. "We are determined to find who did this," said Detective Chief Inspector Sam Hale.',
     [("Detective Chief Inspector Sam Hale", "We are determined to find who did this")]),
    ('A man was stabbed. A Met Police spokesperson said: "Officers remain at the scene and enquiries continue."',
     [("Met Police spokesperson", "Officers remain at the scene and enquiries continue.")]),
    ("A man was stabbed. “It was terrifying to see,” one neighbour said.",
     [("neighbour", "It was terrifying to see")]),
    ('A man was shot. "Our thoughts are with his family," said Chief Superintendent Dana Whitlock, who leads '
     'policing in the area. "We will support the investigation in every way we can."',
     [("Chief Superintendent Dana Whitlock",
       "Our thoughts are with his family. We will support the investigation in every way we can.")]),
    ('A man was shot. "Our thoughts are with the family of the man." Police said the road would reopen.',
     [(None, "Our thoughts are with the family of the man.")]),
    ('A man was shot. He said: "I heard three loud bangs and then screaming."',
     [(None, "I heard three loud bangs and then screaming.")]),
    ("A man was shot. Residents described a 'bang' and \"chaos\" in the street.", []),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    STATEMENT_CASES,
    ids=["said-after", "said-before-colon", "curly-quotes-speaker-first", "continued-quote",
         "next-sentence-is-not-attribution", "pronoun-is-no-speaker", "scare-quotes"],
)
def test_statements(text: str, expected: list[tuple[str | None, str]]) -> None:
    """Quoted speech is a statement, with its speaker when the text names one next to the quote."""
    assert [(s.speaker, s.quote) for s in extract("", text).statements] == expected


# --- sentences and snippets ------------------------------------------------------------------------------------------


def test_split_sentences_title_first_and_line_breaks() -> None:
    """The title is the first sentence; line breaks and sentence ends split; abbreviations do not."""
    sentences = split_sentences("Headline", "Dr. Lee said it was rare. He left.\nKey Takeaways\nA man was shot.")
    assert sentences == ["Headline", "Dr. Lee said it was rare.", "He left.", "Key Takeaways", "A man was shot."]


def test_snippet_is_trimmed() -> None:
    """A snippet is at most SNIPPET_CHARS characters, however long the stating sentence."""
    text = "A man was shot in Walthamstow " + "after a long stand-off with officers " * 20 + "on Friday."
    facts = extract("", text)
    assert facts.category is not None
    assert len(facts.category.snippet) <= SNIPPET_CHARS


def test_not_an_incident_keeps_only_places() -> None:
    """A text that is not about an incident states nothing but the places it names."""
    facts = extract("Leyton win the derby", "The match in Leyton ended 2-1 after a late goal and a shot on target.")
    assert facts == Facts(is_incident=False, places=frozenset({"leyton"}))


# --- the walthamstow archive -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One entry as one snapshot served it, in plain text (the test's own stand-in for the poller's parser)."""

    snapshot: str
    fetched_at: datetime
    source_id: str
    guid: str
    link: str
    title: str
    text: str
    published: datetime
    updated: datetime


def _plain(fragment: str) -> str:
    # Whitespace collapsed to single spaces, as the production parse boundary does: headings run into sentences.
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _time(entry: Any, key: str) -> datetime:
    parsed = entry.get(f"{key}_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _snapshots() -> list[tuple[Path, Any]]:
    return [(path, feedparser.parse(path.read_bytes())) for path in sorted((ARCHIVE / "snapshots").iterdir())]


def _entries() -> list[Entry]:
    entries = []
    for path, feed in _snapshots():
        name = SNAPSHOT_NAME.match(path.name)
        assert name, path.name
        fetched_at = datetime.strptime(name["at"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        for raw in feed.entries:
            body = raw.content[0].value if raw.get("content") else raw.summary
            entries.append(Entry(path.name, fetched_at, name["source"], raw.id, raw.link, raw.title, _plain(body),
                                 _time(raw, "published"), _time(raw, "updated")))
    return entries


@pytest.fixture(scope="module")
def archive_entries() -> list[Entry]:
    return _entries()


def _first_version(entries: list[Entry], guid_part: str) -> Entry:
    return next(e for e in entries if guid_part in e.guid)


def test_sources_toml_lists_five_sources_of_three_authorities() -> None:
    """sources.toml loads with tomllib and holds at least five valid sources of at least three authorities."""
    with (ARCHIVE / "sources.toml").open("rb") as f:
        sources = [FeedSource.model_validate(s) for s in tomllib.load(f)["source"]]
    ids = [s.id for s in sources]
    assert len(sources) >= 5
    assert len(set(ids)) == len(ids)
    assert len({s.authority for s in sources}) >= 3
    assert {"met-police", "iopc", "comedyinyoureye"} <= set(ids)
    assert {s.id: s.authority for s in sources}["comedyinyoureye"] is Authority.blog


def test_snapshots_cover_two_days_in_rss_and_atom() -> None:
    """At least ten well-formed snapshots of known sources over two days, in both RSS 2.0 and Atom."""
    with (ARCHIVE / "sources.toml").open("rb") as f:
        known = {s["id"] for s in tomllib.load(f)["source"]}
    snapshots = _snapshots()
    assert len(snapshots) >= 10
    days, versions = set(), set()
    for path, feed in snapshots:
        name = SNAPSHOT_NAME.match(path.name)
        assert name, path.name
        assert name["source"] in known, path.name
        assert not feed.bozo, (path.name, feed.get("bozo_exception"))
        days.add(name["at"][:8])
        versions.add(feed.version)
    assert len(days) == 2
    assert "rss20" in versions
    assert "atom10" in versions


def test_no_entry_is_served_before_it_is_published(archive_entries: list[Entry]) -> None:
    """Every entry's published and updated times are at or before the instant of the snapshot serving it."""
    for e in archive_entries:
        assert e.published <= e.updated <= e.fetched_at, (e.snapshot, e.guid)


def test_feeds_keep_earlier_entries(archive_entries: list[Entry]) -> None:
    """A later snapshot of a feed still holds every entry an earlier snapshot of that feed held."""
    by_snapshot: dict[str, set[str]] = defaultdict(set)
    for e in archive_entries:
        by_snapshot[e.snapshot].add(e.guid)
    by_source: dict[str, list[str]] = defaultdict(list)
    for snapshot in sorted(by_snapshot):
        by_source[snapshot.split("--", 1)[1]].append(snapshot)
    for snapshots in by_source.values():
        for earlier, later in itertools.pairwise(snapshots):
            assert by_snapshot[earlier] <= by_snapshot[later], (earlier, later)


def test_every_entry_is_about_this_incident_or_none(archive_entries: list[Entry]) -> None:
    """Incident entries all state a police shooting of one man at Walthamstow; the rest are not incidents."""
    not_incidents = set()
    for e in archive_entries:
        facts = extract(e.title, e.text)
        assert facts.places <= {"walthamstow", "east london", "london"}, e.guid
        if not facts.is_incident:
            not_incidents.add(e.guid)
            continue
        assert facts.category, e.guid
        assert facts.category.value is Category.shooting, e.guid
        assert facts.location
        assert (facts.location.value.name, facts.location.value.region) == ("Walthamstow", "London")
        assert [(c.label, c.role) for c in facts.casualties] == [("man", Role.subject)], e.guid
        assert facts.injured is not None
        assert (facts.injured.value, facts.injured.inferred) == (1, True), e.guid  # the man, counted one by one
        assert (facts.dead, facts.arrests, facts.charges) == (None, None, None), e.guid
    assert len(not_incidents) == 2  # the cadets notice and the football report


def test_revised_entry_changes_critical_to_stable(archive_entries: list[Entry]) -> None:
    """The police entry is revised in place: same guid, later updated time, critical becomes stable, life-changing."""
    versions = {e.text: e for e in archive_entries if "firearms-discharge-walthamstow" in e.guid}
    assert len(versions) == 2
    first, second = sorted(versions.values(), key=lambda e: e.updated)
    assert first.guid == second.guid
    assert first.published == second.published < second.updated
    before, after = extract(first.title, first.text), extract(second.title, second.text)
    assert (_condition(before), _life_changing(before)) == (Condition.critical, None)
    assert (_condition(after), _life_changing(after)) == (Condition.stable, True)


def test_syndicated_copies_state_identical_facts(archive_entries: list[Entry]) -> None:
    """The agency text two outlets carry: same title and text, different sources, guids and links, same facts."""
    copies = {(e.source_id, e.guid): e for e in archive_entries if e.title.startswith("Police watchdog investigating")}
    assert len(copies) == 2
    one, two = copies.values()
    assert one.source_id != two.source_id
    assert one.guid != two.guid
    assert canonical_link(one.link) != canonical_link(two.link)
    assert (one.title, one.text) == (two.title, two.text)
    assert extract(one.title, one.text) == extract(two.title, two.text)


def test_straggler_is_old_news_served_late(archive_entries: list[Entry]) -> None:
    """The straggler was published before the condition improved, is first served after, and still says critical."""
    straggler = _first_version(archive_entries, "walthamstow-man-critical-condition")
    improved = min(e.updated for e in archive_entries if _condition(extract(e.title, e.text)) is Condition.stable)
    assert straggler.published < improved < straggler.fetched_at
    assert _condition(extract(straggler.title, straggler.text)) is Condition.critical


def test_blog_restates_the_current_facts(archive_entries: list[Entry]) -> None:
    """The long blog post, published late on day two, extracts stable, life-changing, IOPC, lifted, no risk."""
    blog = next(e for e in archive_entries if e.source_id == "comedyinyoureye")
    facts = extract(blog.title, blog.text)
    assert (_condition(facts), _life_changing(facts)) == (Condition.stable, True)
    assert [(i.body, i.kind, i.status) for i in facts.investigations] == [
        (InvestigationBody.IOPC, InvestigationKind.independent, InvestigationStatus.open)
    ]
    assert facts.cordon
    assert facts.cordon.value is Cordon.lifted
    assert facts.public_risk
    assert facts.public_risk.value is PublicRisk.none
    assert facts.statements == []


def _replay_changes(entries: list[Entry]) -> list[tuple[str, str, Any, Any]]:
    """A minimal stand-in for the tracker's merge rules: per field the value of the newest evidence; copies and
    unchanged versions are skipped. Returns (entry guid, field, before, after) for every change, in replay order."""
    seen_versions: set[tuple[str, str, str]] = set()
    seen_texts: set[tuple[str, str]] = set()
    evidence: dict[str, tuple[datetime, Any]] = {}
    changes = []
    for e in sorted(entries, key=lambda e: (e.fetched_at, e.snapshot)):
        version = (e.source_id, e.guid, e.text)
        if version in seen_versions:
            continue
        seen_versions.add(version)
        if (e.title, e.text) in seen_texts:  # a copy of another outlet's text corroborates, adds nothing
            continue
        seen_texts.add((e.title, e.text))
        facts = extract(e.title, e.text)
        if not facts.is_incident:
            continue
        stated: dict[str, Any] = {
            "category": facts.category and facts.category.value,
            "location": facts.location and facts.location.value.name,
            "cordon": facts.cordon and facts.cordon.value,
            "public_risk": facts.public_risk and facts.public_risk.value,
        }
        for c in facts.casualties:
            stated[f"casualty.{c.label}"] = c.role
            stated[f"condition.{c.label}"] = c.condition and c.condition.value
            stated[f"life_changing.{c.label}"] = c.life_changing and c.life_changing.value
        for i in facts.investigations:
            stated[f"investigation.{i.body.value}"] = (i.kind, i.status)
        for field, value in stated.items():
            if value is None:
                continue
            current = evidence.get(field)
            if current is None or e.updated > current[0]:
                evidence[field] = (e.updated, value)
                if current is None or current[1] != value:
                    changes.append((e.guid.rsplit("/", 1)[-1], field, current and current[1], value))
    return changes


def test_archive_changes_each_fact_once_in_order(archive_entries: list[Entry]) -> None:
    """Replayed with newest-evidence-wins merging, the archive changes exactly the designed facts, in order."""
    opened = "ele-2025-10-24-walthamstow-police-shooting"
    police = "man-taken-to-hospital-after-police-firearms-discharge-walthamstow"
    assert _replay_changes(archive_entries) == [
        (opened, "category", None, Category.shooting),
        (opened, "location", None, "Walthamstow"),
        (opened, "casualty.man", None, Role.subject),
        (police, "condition.man", None, Condition.critical),
        ("armed-police-shoot-man-walthamstow", "cordon", None, Cordon.in_place),
        ("iopc-investigating-after-man-shot-by-police-in-walthamstow", "investigation.IOPC", None,
         (InvestigationKind.independent, InvestigationStatus.open)),
        (police, "condition.man", Condition.critical, Condition.stable),
        (police, "life_changing.man", None, True),
        ("ele-2025-10-25-walthamstow-cordon-lifted", "cordon", Cordon.in_place, Cordon.lifted),
        ("walthamstow-police-firearms-discharge-update", "public_risk", None, PublicRisk.none),
    ]


def test_archive_statements(archive_entries: list[Entry]) -> None:
    """Three attributed statements in the archive: a neighbour, the local police commander, the IOPC director."""
    quotes = {(s.speaker, s.quote[:30]) for e in archive_entries for s in extract(e.title, e.text).statements
              if extract(e.title, e.text).is_incident}
    assert quotes == {
        ("neighbour", "We heard a bang and then a lot"),
        ("Chief Superintendent Dana Whitlock", "Our thoughts at this time are "),
        ("IOPC Regional Director Amanda Rowe", "Our thoughts are with the man "),
    }


def test_a_long_list_of_people_is_read_in_bounded_time() -> None:
    """The list rules never backtrack exponentially: a page repeating "his wife, " forty times (a word two branches
    could match had doubled the time per item) is read at once."""
    import signal

    def too_slow(*_: object) -> None:
        raise TimeoutError("a list rule backtracked")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(10)
    try:
        facts = extract("", "Police said " + "his wife, " * 40 + "and more were at home.")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert facts.dead is None


# --- long sentences are read once ------------------------------------------------------------------------------------
# Each lookup that spares rereading a sentence finds what the plain search over the cut sentence finds.

SENTENCE_WORDS = ("whereas", "where", "and", "however", "subsequently", "now", "then", "had", "been", "was", "were",
                  "taken", "rushed", "to", "the", "city", "hospital", "hospitals", "in", "with", "a", "an", "critical",
                  "initially", "not", "no", "man", "shot", "Kerr", "Putney", "Deputy", "Chief", "Mr", "Mr.", "St.",
                  "Ga.", "U.S.", "A.", ",", ";", "(", ")", "-", "—", "it's", "’", "é", "Ω", "12")
sentence_words = st.lists(st.one_of(st.sampled_from(SENTENCE_WORDS), st.text(max_size=4)), max_size=30)


def _single_spaced(words: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(words)).strip()


@settings(max_examples=200, deadline=None)
@given(sentence_words)
def test_a_clause_is_bounded_where_a_search_of_the_cut_sentence_bounds_it(words: list[str]) -> None:
    """The clause of a match ending anywhere starts after the last break in the sentence cut there (a cut "whereas"
    is a "where") and ends at the first break searched for from there."""
    sentence = _single_spaced(words)
    clauses = _Clauses(sentence)
    for end in range(len(sentence) + 1):
        breaks = list(p.CLAUSE_BREAK.finditer(sentence, 0, end))
        after = p.CLAUSE_BREAK.search(sentence, end)
        assert clauses.start_before(end) == (breaks[-1].end() if breaks else 0), end
        assert clauses.end_after(end) == (after.start() if after else len(sentence)), end


@settings(max_examples=200, deadline=None)
@given(sentence_words)
def test_the_words_before_a_match_and_its_background_lead_are_read_as_in_the_cut_sentence(words: list[str]) -> None:
    """The four words before any point, and whether a clause ends in a background lead ("had been in a"), are what a
    search of the sentence cut there finds."""
    # After a long clause, only the clause's last words are read.
    filler = "man shot " * 30
    sentence = filler + _single_spaced(words)
    for start in range(len(filler) - 20, len(sentence) + 1):
        assert _words_before(sentence, start, 4) == re.findall(r"[\w']+", sentence[:start])[-4:], start
        for clause_start in (0, start // 2, len(filler), start):
            expected = p.HISTORICAL_LEAD.search(sentence[clause_start:start]) is not None
            assert _led_as_background(sentence, clause_start, start) == expected, (clause_start, start)


def test_a_background_lead_is_found_after_a_long_clause() -> None:
    """A clause hundreds of words long still ends in its lead: "… was rushed to the city hospital in a" critical
    condition."""
    sentence = "man shot " * 300 + "was rushed to the city hospital in a critical condition"
    led, not_led = sentence.index("critical"), sentence.index("city")
    assert _led_as_background(sentence, 0, led)
    assert not _led_as_background(sentence, 0, not_led)
    assert p.HISTORICAL_LEAD.search(sentence[:led])
    assert not p.HISTORICAL_LEAD.search(sentence[:not_led])


@settings(max_examples=200, deadline=None)
@given(sentence_words)
def test_the_capitalised_word_before_a_place_is_the_one_a_search_of_the_cut_sentence_finds(words: list[str]) -> None:
    """"Kerr" before "Putney" (a man's name, not the place) is found from any point as in the sentence cut there."""
    sentence = " ".join(words)
    for start in range(len(sentence) + 1):
        before = re.search(r"([A-Z][\w'’-]*)\s+$", sentence[:start])
        assert _capitalised_before(sentence, start) == (before.group(1) if before else None), start


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(SENTENCE_WORDS), min_size=1, max_size=4), min_size=1, max_size=8))
def test_a_sentence_ends_in_an_abbreviation_as_its_whole_text_does(pieces: list[list[str]]) -> None:
    """Whether a sentence joined from pieces ends in an abbreviation ("MACON," then "Ga." on the next line) is read
    from its last pieces as from the whole sentence."""
    joined = [" ".join(words) for words in pieces]
    assert _ends_in_abbreviation(joined) == (_ABBREVIATION.search(" ".join(joined)) is not None)


def test_a_sentence_of_a_thousand_datelines_is_one_sentence() -> None:
    """Every "Ga." ends no sentence, however many are joined to it."""
    assert split_sentences("", "MACON, Ga. " * 1000) == [("MACON, Ga. " * 1000).strip()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6)), max_size=40))
def test_held_spans_overlap_what_one_of_them_overlaps(spans: list[tuple[int, int]]) -> None:
    """Spans taken one by one, each only where it overlaps none taken before, are told apart by a lookup as a pass
    over them all tells them apart (empty spans included)."""
    held: list[tuple[int, int]] = []
    for start, length in spans:
        end = start + length
        overlaps = any(start < other_end and other_start < end for other_start, other_end in held)
        assert _overlaps(held, start, end) == overlaps, (start, end, held)
        if not overlaps:
            insort(held, (start, end))


# --- whose a condition is: each lookup finds what the search of the cut sentence finds --------------------------------

OWNER_WORDS = ("he", "she", "shed", "hers", "the", "a", "his", "victim", "victims", "suspect", "suspects", "gunman",
               "gunmen", "two", "three", "one", "a dozen", "12", "1234", "people", "men", "women", "were", "have",
               "been", "all", "also", "other", "more", "killed", "died", "man", "boy", "woman", "in", "-", ",", ".",
               "x-in", "in-depth", "shootings", "South", "ſhe", "İn")
owner_words = st.lists(st.one_of(st.sampled_from(OWNER_WORDS), st.text(max_size=3)), max_size=24)
owner_separators = st.lists(st.sampled_from([" ", " ", " ", "", "  ", "\n", "-", " \t "]), min_size=24, max_size=24)


def _joined(words: list[str], separators: list[str]) -> str:
    return "".join(word + separator for word, separator in zip(words, separators, strict=False))


@settings(max_examples=200, deadline=None)
@given(owner_words, owner_separators)
def test_a_word_pattern_is_found_before_a_point_where_a_search_of_the_cut_sentence_finds_it(
        words: list[str], separators: list[str]) -> None:
    """A suspect noun, a pronoun or "the victim" is found between any two points where the search of the sentence cut
    at the second finds one, and at the same place, with the same word ("she" of a cut "shed")."""
    sentence = "the victim was shot by a man " * 8 + _joined(words, separators)
    for pattern, count in ((p.SUSPECT_NOUN, 1), (_PRONOUN, 1), (_THE_VICTIM, 2)):
        found = _WordMatches(pattern, sentence, count)
        for end in range(len(sentence) + 1):
            for start in (0, end // 2, max(0, end - 5), end, end + 3):
                expected = pattern.search(sentence, start, end)
                actual = found.search(start, end)
                assert (actual and (actual.start(), actual.group())) == (expected and (expected.start(),
                                                                                        expected.group())), (start, end)


@settings(max_examples=200, deadline=None)
@given(owner_words, owner_separators)
def test_a_count_before_a_point_is_the_one_a_search_of_the_cut_sentence_finds(
        words: list[str], separators: list[str]) -> None:
    """A count of people right before any point ("two people were" killed) is found, from its number on, as the
    search of the sentence cut there finds it, however many words of a count come before it."""
    sentence = _joined(words, separators) + "two people were " * 6 + _joined(words[::-1], separators)
    for end in range(len(sentence) + 1):
        expected = _SEVERAL.search(sentence[:end])
        actual = _several(sentence, end)
        assert _count_found(actual) == _count_found(expected), end


def _count_found(m: re.Match[str] | None) -> tuple[tuple[int, int], str] | None:
    return (m.span(), m["n"]) if m else None


@settings(max_examples=200, deadline=None)
@given(owner_words, owner_separators)
def test_the_person_right_after_a_death_is_the_first_only_an_article_apart(
        words: list[str], separators: list[str]) -> None:
    """The person named right after a death ("killed a boy") is the first mention after it with at most an article
    between, as reading every later mention finds."""
    sentence = _joined(words, separators)
    mentions = [_Mention(0, m.start(), m.end(), m.group(), Role.victim)
                for m in re.finditer(r"\b(?:man|boy|woman|people|victim)\b|\ba dozen\b", sentence, re.I)]
    here = _Sentence(sentence, mentions)
    for position in range(len(sentence) + 1):
        expected = next((m for m in mentions
                         if m.start >= position and _OBJECT_GAP.fullmatch(sentence[position : m.start])), None)
        assert here.object_at(position) == expected, position


@settings(max_examples=300, deadline=None)
@given(owner_words, owner_separators)
def test_a_tally_of_shootings_is_read_as_without_the_stop_at_another_in(
        words: list[str], separators: list[str]) -> None:
    """`patterns.TALLY` stops the words of "in … shootings" before another "in": a sentence matches just as with
    any words between."""
    sentence = _joined(words, separators)
    unbounded = re.compile(r"\bin (?:[A-Z][\w-]* )*shootings\b", re.I)
    bounded = re.compile(r"\bin (?:(?!in )[A-Z](?:\w|-(?!in ))* )*shootings\b", re.I)
    assert bounded.pattern in p.TALLY.pattern
    assert (bounded.search(sentence) is None) == (unbounded.search(sentence) is None)


playlist_words = st.lists(st.one_of(st.sampled_from(["0:47", "12:30", "1:05", "x0:47", "10:4", "Pause", "pause",
                                                     "Pauses", "shot", "a", ".", ":"]), st.text(max_size=3)),
                          max_size=16)


@settings(max_examples=300, deadline=None)
@given(playlist_words, owner_separators)
def test_a_playlist_is_read_as_without_the_stop_at_another_time(words: list[str], separators: list[str]) -> None:
    """`patterns.TALLY` stops the words after a playlist's time ("0:47 … Pause") before the next time: a sentence
    matches just as with any words between."""
    sentence = _joined(words, separators)
    unbounded = re.compile(r"\b\d{1,2}:\d\d\s+[^.]*\bPause\b", re.I)
    bounded = re.compile(r"\b\d{1,2}:\d\d\s+(?:(?!\b\d{1,2}:\d\d\s)[^.])*\bPause\b", re.I)
    assert bounded.pattern in p.TALLY.pattern
    assert (bounded.search(sentence) is None) == (unbounded.search(sentence) is None)
