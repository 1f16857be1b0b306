"""Benchmark: the tracker stage on a real Redis holding 10,000 incidents, against a bare redis-py relay (issue #5).

Run from the repo root (nothing outside a fresh `livedesk-bench:<hex>` prefix is touched; it is deleted afterwards):

    python -m tests.benchmarks.bench_tracker [--incidents 10000] [--measure 5000] [--latency-updates 1000]
                                             [--rate 0] [--gva ARCHIVE | --no-gva] [--profile FILE]
                                             [--redis-url redis://127.0.0.1:6379/0]

1. Fill: `--incidents` synthetic first reports of UK and US incidents (shootings, stabbings, fires, crashes,
   assaults in London areas, UK and US cities and towns, some on a named street; from local outlets and, for a few,
   police forces) are tracked by `services.tracker.stage.process` on an `IncidentStore`, 32 at once. Each takes a
   (place, category) of its own within a week, and details of its own (street, venue, victim's name, a neighbour's
   words, a police reference), so each should open an incident: prints how many did, names a few that joined
   another instead, and reads back the number stored (the `incidents` index). A transient failure (a concurrent
   commit) is tried again, as the stage's redelivery would. Then what a later update has to read: the size of the
   place index sets and of a stored incident, and the candidates one update loads.
2. Measure: `--measure` further updates (follow-ups of tracked incidents: factual revisions of the same entry,
   other outlets' reports with new facts, police follow-ups naming no place; new incidents; copies and cosmetic
   edits, which change no fact) are put on `updates` at once, and the real tracker stage (FastStream router via
   `services.app.build_broker`, in a worker process of its own) drains them: updates/s, and CPU per update in the
   worker (`time.process_time`) and in Redis (INFO cpu `used_cpu_user` + `used_cpu_sys`, so other clients of a
   shared server count too). Then `--latency-updates` more are put on `updates` one at a time, at `--rate` per
   second (default: half the rate just measured), while the same worker runs: latency is the server time from an
   update's XADD on `updates` to its first change event's XADD on `changes` (the tracker's commit script), both read
   from the stream entry ids (the ms part of an id is the server's clock when it was added); an event is matched to
   its update by (evidence source, evidence guid, `detected_at`), every measured update having a `fetched_at` of its
   own. Updates that change nothing (copies, cosmetic edits) have no event and no latency. Baseline, same run: a
   bare relay (XREADGROUP a batch → XADD each → XACK, pipelined) moves the same updates between two streams of its
   own: its rate, CPU and latency at the same pace, and tracker / relay.
3. Replay: the wall time of `services.replay.replay` over the whole archive `--gva` (default
   /work/shared/corpora/gva-dev when present; `--no-gva` skips it), as `livedesk replay` runs it (dedup and tracker
   stages in this process), and articles (raw entries published) per second.

Notes. The place indexes (`place-incidents:<name>`) hold the incidents with evidence in the last
`FOLLOW_UP_WINDOW` (plus `KEPT_PAST_THE_HORIZON` for stragglers), and a word set stops growing past `WORD_SET_LIMIT`:
the candidates an update loads grow with the incidents recently active at its places, not with the history kept.
The fill gives no two incidents of one kind in one week the same street, which would tie them
(`services.tracker.cluster`).

`--profile FILE` runs the worker under cProfile during the drain and prints the ten functions of `services/` with the
most cumulative time (the profiler slows the worker: its rates are not the benchmark's).
Figures are printed, never asserted. A run killed before its clean-up leaves its keys under the prefix it printed
first; delete them with `python -m tests.benchmarks.bench_tracker --delete livedesk-bench:<hex>`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import multiprocessing
import os
import pstats
import queue
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from schemas import Authority, Category, ChangeEvent, RevisionDiff, RevisionKind, Update, Verdict
from services.app import build_broker
from services.connection import connect
from services.errors import TransientError
from services.groups import backlog, ensure_groups
from services.heap import frozen_survivors
from services.identity import update_id
from services.logs import configure_logging
from services.names import Keys
from services.replay import delete_prefix, read_archive, replay
from services.settings import Settings
from services.stage import StageContext, raise_if_cancelled
from services.tracker.cluster import WINDOW, specific_places
from services.tracker.extract import extract
from services.tracker.places import CITY, GAZETTEER, UK, US
from services.tracker.stage import places_horizon, process
from services.tracker.store import IncidentStore
from services.wire import DATA_FIELD, as_text, entry_data

GVA_DEV = Path("/work/shared/corpora/gva-dev")
FILL_CONCURRENCY = 32
# Two reports of one kind at one place this far apart never belong together (the clustering window is 3 days).
SLOT = timedelta(days=7)
START = datetime(2025, 9, 1, 6, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]

# --- places ----------------------------------------------------------------------------------------------------------


def _words(block: str) -> list[str]:
    return block.split()


_UK_TOWN_START = _words("Ash Brad Brook Burn Castle Clay Cold Cran Dart Deep Elm Fair Fern Glen Hart Hazel Holm "
                        "Kings Lang Mill March Oak Red Rother Stan Stock Stone Thorn White Wood Bram Hol Kel Mor Pen "
                        "Ray Sel Tam Wen Yar")
_UK_TOWN_END = _words("ford ton bury ley wick ham field worth well by thorpe combe mouth stead den hurst borough "
                      "bridge")
_US_TOWN_START = _words("Spring Maple Cedar Pine River Lake Green Clear Rock Elk Bear Sun Cotton Iron Silver Willow "
                        "Walnut Cherry Laurel Marsh Hick Law Gar Frank")
_US_TOWN_END = _words("ville dale burg port view ridge land wood creek")
_US_STATES = _words("Alabama Arizona Arkansas California Colorado Florida Georgia Idaho Illinois Indiana Iowa Kansas "
                    "Kentucky Louisiana Michigan Minnesota Mississippi Missouri Nebraska Nevada Ohio Oklahoma Oregon "
                    "Tennessee Texas Utah Virginia Wisconsin")
_STREET_NAMES = _words("High Station Church Park Victoria Green Manor Queens Kings Mill Albert Grange Chapel "
                       "Springfield Windsor Oak Elm Cedar Maple Pine Main Market Bridge Brook Hoe Grove Hill Forest "
                       "Harbour Cromwell Nelson Stanley Clarence Marlborough Beech Willow Ash Lime Poplar Holly "
                       "Orchard Meadow Walnut Lincoln Jefferson Franklin Washington Madison Abbey Alexandra Balmoral "
                       "Beaconsfield Belmont Birch Blenheim Cambridge Canal Cherry Chestnut Clifton Coronation Cross "
                       "Dale Derwent Devonshire Dover Eastfield Elmfield Fairfield Ferndale Gladstone Glebe Granville "
                       "Hawthorn Heath Highfield Hillside Kingsway Lansdowne Larch Laurel Lodge Melbourne Mount "
                       "Newton Osborne Palmerston Primrose Princes Railway Regent Rosebery Salisbury School Spring "
                       "Sycamore Trinity Vicarage Warwick Wellington Westfield Whitehall York")
# A street named like a place ("Poplar Street") is a place too, to the extractor.
_STREETS = [f"{name} {kind}" for name in _STREET_NAMES if name not in GAZETTEER
            for kind in _words("Street Road Avenue Lane Drive Close Way Grove Crescent Terrace Gardens Row")]


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    state: str | None  # US only: named after the town ("in Cedarville, Ohio"), a region, never part of the place


def _place_pool(rng: random.Random) -> list[Place]:
    """Every place of the gazetteer at city level or finer but London itself, and made-up towns the extractor finds
    by pattern ("in Thornbury", "in Cedarville, Ohio"); each town name once, in one country."""
    known = [Place(p.name, p.country or UK, p.region if p.country == US else None) for p in GAZETTEER.values()
             if p.rank >= CITY and p.country in (UK, US) and p.name != "London"]
    taken = {p.name for p in known} | set(GAZETTEER)
    towns: list[Place] = []
    for start in _UK_TOWN_START:
        for end in _UK_TOWN_END:
            if (name := start + end) not in taken:
                taken.add(name)
                towns.append(Place(name, UK, None))
    for start in _US_TOWN_START:
        for end in _US_TOWN_END:
            if (name := start + end) not in taken:
                taken.add(name)
                towns.append(Place(name, US, rng.choice(_US_STATES)))
    return known + towns


def _usable(places: list[Place], rng: random.Random) -> tuple[list[Place], list[str]]:
    """The places whose first report the extractor places there, and the names of those it does not."""
    kept, dropped = [], []
    for place in places:
        story = Story(0, place, Category.shooting, None, "man", 30, "probe", False, START)
        facts = extract(*_opening(story, random.Random(0)))
        if facts.location is not None and facts.location.value.name == place.name:
            kept.append(place)
        else:
            dropped.append(place.name)
    rng.shuffle(kept)
    return kept, dropped


# --- stories ---------------------------------------------------------------------------------------------------------

_UK_OUTLETS = [f"{town.lower()}-{kind}" for town in ("essex", "kent", "surrey", "yorkshire", "lancashire", "devon",
                                                     "hampshire", "sussex", "norfolk", "cheshire", "midlands",
                                                     "london", "bristol", "tyneside", "cumbria", "somerset")
               for kind in ("echo", "gazette", "chronicle", "live", "news", "herald", "post", "standard")]
_US_OUTLETS = [f"{call}-{kind}" for call in ("wxia", "kxan", "wgn", "wsb", "kcra", "wfaa", "koat", "wral", "kare",
                                             "wlky", "wbal", "kmov", "wtae", "ksdk", "wkyc", "kpho")
               for kind in ("tv", "news", "com", "online", "13", "7", "4", "2")]
_UK_POLICE = ["met-police", "gmp", "west-midlands-police", "merseyside-police", "west-yorkshire-police",
              "thames-valley-police", "kent-police", "essex-police", "avon-somerset-police", "police-scotland"]
_US_POLICE = ["chicago-pd", "houston-pd", "atlanta-pd", "dallas-pd", "memphis-pd", "detroit-pd", "columbus-pd",
              "phoenix-pd"]
_VICTIMS = ("man", "woman", "teenager", "boy", "girl", "man", "man", "woman")
_FIRST = {"man": _words("James Daniel Kyle Jordan Marcus Liam Tyrone Connor Reece Ahmed Darius Lewis Nathan Callum "
                        "Tremaine Javier Malik Dwayne Ethan Owen"),
          "woman": _words("Sarah Chloe Jade Leanne Aaliyah Megan Shanice Priya Kayla Tamika Rosa Gemma Latoya Holly "
                          "Destiny Amber Keisha Natalie Imani Courtney")}
_LAST = _words("Okafor Walsh Brennan Mensah Doyle Kowalski Barnes Whitfield Achterberg Haddad Pryce Gallagher "
               "McAllister Nwosu Fairbanks Delgado Thornton Abernathy Castellano Pemberton Rourke Oyelaran Lindqvist "
               "Mahoney Petrakis Quigley Sandoval Trevelyan Vasquez Winthrop Yardley Zielinski")
# Where exactly, "outside ...": a venue named after someone tells one incident from another, as real ones do.
_VENUES = ("the {last} Arms", "{last}'s barbers", "the {last} Tavern", "{last} Motors", "the {last} Centre",
           "{last}'s Kitchen", "a kebab shop", "a petrol station", "a block of flats")
_US_VENUES = ("{last}'s Liquor", "the {last} Motel", "{last} Tire and Auto", "the {last} Apartments",
              "{last}'s Sports Bar", "{last} Family Market", "a gas station", "a strip mall", "a nightclub")
_WITNESSES = ("I heard shouting and then screaming, it was terrifying", "You don't expect this on your own doorstep",
              "There were police everywhere within minutes", "He is a lovely lad, everyone round here knows him",
              "It has been getting worse around here for months", "I just hope whoever did this is caught",
              "We saw the lights and came out to see what was going on", "My kids play out on this street")
_DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
_TIMES = ("morning", "afternoon", "evening", "night")
_DETECTIVES = ("Detective Inspector Sarah Cole", "Detective Chief Inspector Mark Hughes", "Chief Inspector Aisha Khan",
               "Detective Sergeant Paul Reid", "Superintendent Helen Marsh", "Inspector Raj Patel")
_US_DETECTIVES = ("Sgt. Maria Lopez", "Lt. James Carter", "Chief Daniel Ortiz", "Capt. Denise Holloway",
                  "Sheriff Tom Brantley", "Officer Kevin Nguyen")
_APPEALS = ("We are keen to hear from anyone who was in the area at the time",
            "This was a shocking incident and we are working hard to establish what happened",
            "I would urge anyone with doorbell or dashcam footage to come forward",
            "We understand the concern this will cause in the community and patrols have been increased",
            "We are treating this as an isolated incident but we need the public's help")
_UK_CALLS = ("Police were called at {h}.{mm}pm.", "Emergency services were called shortly after {h}.{mm}pm.",
             "Officers attended at around {h}.{mm}pm following reports of a disturbance.",
             "The alarm was raised at about {h}.{mm}pm.")
_UK_ENDS = ("Anyone with information is asked to call 101 quoting CAD {ref}.",
            "Witnesses, or anyone with footage, should contact police quoting reference {ref}.",
            "Information can be given anonymously to Crimestoppers, quoting log {ref}.",
            "Detectives are reviewing CCTV and want to hear from anyone who can help, quoting {ref}.")
_US_CALLS = ("Officers were called to the scene shortly after {h} p.m.", "Deputies responded around {h}:{mm} p.m.",
             "A 911 call came in at about {h}:{mm} p.m.", "Police said they were dispatched just before {h} p.m.")
_US_ENDS = ("No arrests have been made.", "No arrests have been made, and no suspect description was released.",
            "No arrests have been made. Investigators did not say what led to the violence.",
            "No arrests have been made. Police asked anyone with video from the area to contact them.")
_VERBS = {Category.shooting: "shot", Category.stabbing: "stabbed", Category.assault: "assaulted",
          Category.fire: "hurt in a house fire", Category.collision: "hit by a car"}
_NOUNS = {Category.shooting: "shooting", Category.stabbing: "stabbing", Category.assault: "assault",
          Category.fire: "house fire", Category.collision: "crash"}
_CRIMES = {Category.shooting: "attempted murder", Category.stabbing: "attempted murder",
           Category.assault: "grievous bodily harm", Category.fire: "arson with intent to endanger life",
           Category.collision: "causing serious injury by dangerous driving"}
CATEGORIES = tuple(_VERBS)


@dataclass
class Story:
    """One synthetic incident: where, what, who, first reported by whom and when, and the details that tell it
    apart from others (a named victim, a venue, a street, a police reference) which later reports repeat."""

    n: int
    place: Place
    category: Category
    street: str | None
    victim: str
    age: int
    source: str
    police: bool
    at: datetime
    opening: Update | None = None
    versions: int = 0
    name: str | None = field(init=False)
    venue: str | None = field(init=False)
    witness: str = field(init=False)
    weekday: int = field(init=False)
    ref: int = field(init=False)
    hour: int = field(init=False)
    minute: int = field(init=False)

    def __post_init__(self) -> None:
        pick = random.Random(self.n)
        named = self.victim in ("man", "woman") and pick.random() < 0.8
        self.name = f"{pick.choice(_FIRST[self.victim])} {pick.choice(_LAST)}" if named else None
        venue = pick.choice(_US_VENUES if self.us else _VENUES).format(last=pick.choice(_LAST))
        self.venue = venue if pick.random() < 0.6 else None
        witness = f"{pick.choice(_FIRST[pick.choice(('man', 'woman'))])} {pick.choice(_LAST)}"
        self.witness = (f" A neighbour, {witness}, said: \"{pick.choice(_WITNESSES)}.\"" if pick.random() < 0.5
                        else "")
        self.weekday, self.ref = pick.randrange(7), pick.randint(1000, 9999)
        self.hour, self.minute = pick.randint(1, 11), pick.randint(10, 59)

    @property
    def us(self) -> bool:
        return self.place.country == US

    @property
    def where(self) -> str:
        return f"{self.place.name}, {self.place.state}" if self.place.state else self.place.name

    @property
    def person(self) -> str:
        """The victim as the text names them: "a 17-year-old boy", "a woman in her 40s"."""
        if self.victim in ("teenager", "boy", "girl"):
            return f"{_a(self.age).lower()}-year-old {self.victim}"
        return f"a {self.victim} in {self.possessive} {self.age // 10 * 10}s"

    @property
    def pronoun(self) -> str:
        return "She" if self.victim in ("woman", "girl") else "He"

    @property
    def possessive(self) -> str:
        return "her" if self.pronoun == "She" else "his"

    @property
    def day(self) -> str:
        return _DAYS[self.weekday]

    @property
    def guid(self) -> str:
        return f"{self.source}-{self.n}"

    @property
    def named(self) -> str:
        """A sentence naming the victim, or nothing."""
        return f" The {self.victim} has been named locally as {self.name}, {self.age}." if self.name else ""

    def fill(self, template: str) -> str:
        return template.format(h=self.hour, mm=self.minute, ref=self.ref)


def _a(age: int) -> str:
    """ "A 17", "An 18"."""
    return f"{'An' if age in (8, 11, 18) or 80 <= age < 90 else 'A'} {age}"


def _scene(story: Story) -> str:
    """Where exactly: "on Hoe Street outside the Red Lion pub in Leyton"."""
    street = f"on {story.street} " if story.street else ""
    venue = f"outside {story.venue} " if story.venue else ""
    return f"{street}{venue}in {story.where}"


def _opening(story: Story, rng: random.Random) -> tuple[str, str]:
    """The first report: title and text."""
    verb, person = _VERBS[story.category], story.person
    when = f"on {story.day} {rng.choice(_TIMES)}"
    victim = story.victim if story.victim != "teenager" else "teen"
    if story.us:
        title = rng.choice((f"{story.place.name} {victim} {verb}", f"{victim.capitalize()} {verb} in {story.where}"))
        dateline = f"{story.place.name.upper()}, {story.place.state} (AP) — " if rng.random() < 0.5 else ""
        first = f"{dateline}{person.capitalize()} was {verb} {_scene(story)} {when}, police said."
        condition = rng.choice(("critical", "serious", "stable"))
        rest = (f"{story.fill(rng.choice(_US_CALLS))} {story.pronoun} was taken to a hospital in {condition} "
                f"condition.{story.named}{story.witness} {rng.choice(_US_ENDS)}")
    else:
        title = rng.choice((f"{victim.capitalize()} {verb} in {story.place.name}",
                            f"{story.place.name}: {victim} {verb}",
                            f"Police appeal after {_NOUNS[story.category]} in {story.place.name}"))
        first = f"{person.capitalize()} was {verb} {_scene(story)} {when}."
        condition = rng.choice(("critical", "serious", "life-threatening", "stable"))
        rest = (f"{story.fill(rng.choice(_UK_CALLS))} {story.pronoun} was taken to hospital, where "
                f"{story.possessive} condition is described as {condition}.{story.named}{story.witness} "
                f"{'A cordon is in place. ' if rng.random() < 0.6 else ''}No arrests have been made. "
                f"{story.fill(rng.choice(_UK_ENDS))}")
    return title, f"{first} {rest}"


def _revision(story: Story, rng: random.Random) -> tuple[str, str]:
    """The same entry, edited with news: the victim's new condition, arrests, perhaps the cordon lifted."""
    title, text = _opening(story, random.Random(story.n))
    outcome = rng.choice((f"The {story.victim} has since died in hospital.",
                          "The victim remains in hospital in a stable condition.",
                          f"The {story.victim} is now in a critical condition."))
    arrest = rng.choice((f"{_a(rng.randint(16, 45))}-year-old man has been arrested",
                         "Two men have been arrested")) + f" on suspicion of {_CRIMES[story.category]}."
    lifted = " The cordon has since been lifted." if rng.random() < 0.5 else ""
    text = text.replace("No arrests have been made", f"UPDATE: {outcome} {arrest}{lifted} Police said inquiries "
                        "continue", 1)
    return title, text


def _report(story: Story, rng: random.Random) -> tuple[str, str]:
    """Another outlet's report of the same incident, with facts of its own, the incident's details and a quote."""
    charged = rng.random() < 0.3
    news = (f"{_a(rng.randint(16, 45))}-year-old man has been charged with {_CRIMES[story.category]}" if charged
            else rng.choice(("Two men have", "A man has", "Three teenagers have")) + " been arrested")
    title = f"{'Charge' if charged else 'Arrest'} after {story.place.name} {_NOUNS[story.category]}"
    victim = f"{story.name}, {story.age}," if story.name else story.person
    detective = rng.choice(_US_DETECTIVES if story.us else _DETECTIVES)
    text = (f"{news} after {victim} was {_VERBS[story.category]} {_scene(story)} on {story.day}. The victim "
            f"remains in hospital in a {rng.choice(('critical', 'serious', 'stable'))} condition. {detective} said: "
            f"\"{rng.choice(_APPEALS)}.\"")
    return title, text


def _police_follow_up(story: Story, rng: random.Random) -> tuple[str, str]:
    """A police force's follow-up that names no place: it joins what the force has been reporting on."""
    verb = _VERBS[story.category]
    victim = story.name or f"The {story.victim}"
    title = f"Update: {_NOUNS[story.category]} investigation, reference {story.ref}"
    text = (f"{victim}, who was {verb} on {story.day}, remains in hospital. {story.pronoun} is now in a stable "
            f"condition. {_a(rng.randint(16, 45))}-year-old man has been charged with {_CRIMES[story.category]} and "
            f"will appear in court on Monday.")
    return title, text


def _fingerprint(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:24]


def _update(source: str, guid: str, title: str, text: str, at: datetime, fetched: datetime, *,
            police: bool = False, verdict: Verdict = Verdict.new, **extra: object) -> Update:
    identity, fingerprint = f"{source}|{guid}", _fingerprint(title, text)
    return Update.model_validate({
        "update_id": update_id(identity, fingerprint), "verdict": verdict, "source_id": source,
        "authority": Authority.official if police else Authority.news, "identity": identity,
        "fingerprint": fingerprint, "guid": guid, "url": f"https://{source}.example/news/{guid}", "title": title,
        "text": text, "reported_at": at, "fetched_at": fetched, **extra,
    })


def _stories(places: list[Place], count: int, first: int, first_slot: int, rng: random.Random) -> list[Story]:
    """`count` incidents, each of its own (place, category) within a week: slot after slot a week apart. Half name
    a street, never one named by another incident of the same kind that week: a shared street and category alone
    make two reports one incident (see the notes above), which would leave fewer incidents than reports."""
    combos = [(place, category) for category in CATEGORIES for place in places]
    stories: list[Story] = []
    streets: dict[tuple[int, Category], list[str]] = {}
    for i in range(count):
        place, category = combos[i % len(combos)]
        unused = streets.setdefault((i // len(combos), category), rng.sample(_STREETS, len(_STREETS)))
        street = unused.pop() if unused and rng.random() < 0.5 else None
        at = START + (first_slot + i // len(combos)) * SLOT + timedelta(minutes=rng.randint(0, 24 * 60))
        police = rng.random() < 0.1
        source = rng.choice((_US_POLICE if place.country == US else _UK_POLICE) if police
                            else (_US_OUTLETS if place.country == US else _UK_OUTLETS))
        victim = "man" if category is Category.collision and rng.random() < 0.5 else rng.choice(_VICTIMS)
        age = rng.randint(13, 19) if victim in ("teenager", "boy", "girl") else rng.randint(20, 79)
        story = Story(first + i, place, category, street, victim, age, source, police, at)
        title, text = _opening(story, random.Random(story.n))
        story.opening = _update(source, story.guid, title, text, at, at + timedelta(minutes=3), police=police)
        stories.append(story)
    return stories


# What the measured updates are, and how often (weights).
MIX = {"revision": 25, "report": 25, "new": 20, "duplicate": 15, "cosmetic": 10, "police": 5}


def _measured(stories: list[Story], places: list[Place], count: int, first: int, fresh_slot: int,
              rng: random.Random) -> tuple[list[Update], dict[str, int]]:
    """`count` updates of the mix, each with a `fetched_at` of its own (it keys its change events to it)."""
    police_stories = [s for s in stories if s.police]
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    fresh = iter(_stories(places, kinds.count("new"), first, fresh_slot, rng))
    updates: list[Update] = []
    tally = dict.fromkeys(MIX, 0)
    fetched_base = datetime.now(UTC).replace(microsecond=0)
    for n, kind in enumerate(kinds):
        tally[kind] += 1
        fetched = fetched_base + timedelta(microseconds=first + n)
        if kind == "new":
            opening = next(fresh).opening
            assert opening is not None
            updates.append(opening.model_copy(update={"fetched_at": fetched}))
            continue
        story = rng.choice(police_stories if kind == "police" else stories)
        assert story.opening is not None
        at = story.at + timedelta(minutes=rng.randint(60, 40 * 60))
        if kind == "revision":
            story.versions += 1
            title, text = _revision(story, random.Random(f"{story.n}/{story.versions}"))
            updates.append(_update(story.source, story.guid, title, text, at, fetched, police=story.police,
                                   verdict=Verdict.revision, previous_fingerprint=story.opening.fingerprint,
                                   replaces=story.opening.update_id,
                                   revision=RevisionDiff(kind=RevisionKind.factual, reason="numbers changed")))
        elif kind == "cosmetic":
            title, text = story.opening.title, story.opening.text.replace(". ", ".  ", 1) + " "
            updates.append(_update(story.source, story.guid, title, text + "(Edited.)", at, fetched,
                                   police=story.police, verdict=Verdict.revision,
                                   previous_fingerprint=story.opening.fingerprint, replaces=story.opening.update_id,
                                   revision=RevisionDiff(kind=RevisionKind.cosmetic, reason="wording only")))
        elif kind == "duplicate":
            source = rng.choice(_US_OUTLETS if story.us else _UK_OUTLETS)
            updates.append(_update(source, f"{source}-copy-{first + n}", story.opening.title, story.opening.text, at,
                                   fetched, verdict=Verdict.duplicate, duplicate_of=story.opening.update_id,
                                   similarity=1.0))
        elif kind == "report":
            source = rng.choice(_US_OUTLETS if story.us else _UK_OUTLETS)
            title, text = _report(story, rng)
            updates.append(_update(source, f"{source}-{first + n}", title, text, at, fetched))
        else:  # police
            title, text = _police_follow_up(story, rng)
            updates.append(_update(story.source, f"{story.source}-{first + n}", title, text, at, fetched,
                                   police=True))
    return updates, tally


# --- 1. fill ---------------------------------------------------------------------------------------------------------


@dataclass
class Fill:
    seconds: float = 0.0
    opened: int = 0  # incident_opened events
    missed: list[str] = field(default_factory=list)  # first reports that opened no incident
    retried: int = 0  # transient failures (a concurrent commit), tried again as the stage's redelivery would
    errors: list[str] = field(default_factory=list)  # failures that stayed


async def _fill(store: IncidentStore, stories: list[Story], attempts: int = 5) -> Fill:
    """Track every first report, 32 at once; a transient failure is tried again later, up to `attempts` times."""
    work = iter(stories)
    fill = Fill()

    async def worker() -> None:
        for story in work:
            raise_if_cancelled()  # redis-py may swallow a cancellation (Ctrl-C) that lands inside a command
            assert story.opening is not None
            for attempt in range(1, attempts + 1):
                try:
                    events = await process(store, story.opening)
                    break
                except TransientError as error:
                    fill.retried += 1
                    if attempt == attempts:
                        fill.errors.append(f"{type(error).__name__}: {error}")
                        events = []
                    await asyncio.sleep(0.05 * attempt)
            if any(e.type.value == "incident_opened" for e in events):
                fill.opened += 1
            else:
                fill.missed.append(f"{story.opening.title} [{story.category.value}, {story.where}]")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(FILL_CONCURRENCY)))
    fill.seconds = time.perf_counter() - started
    return fill


async def _index_sizes(redis: Redis, prefix: str) -> list[int]:
    """SCARD of every place set (the tracker's index of incidents by place)."""
    sizes: list[int] = []
    batch: list[bytes] = []

    async def measure() -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.zcard(key)
            sizes.extend(await pipe.execute())
        batch.clear()

    async for key in redis.scan_iter(match=f"{Keys(prefix).root}:place-incidents:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            await measure()
    await measure()
    return sizes


async def _state_sizes(redis: Redis, keys: Keys, sample: int, rng: random.Random) -> list[int]:
    ids = [as_text(m) for m in await redis.zrange(keys.incident_index, 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for incident_id in rng.sample(ids, min(sample, len(ids))):
            pipe.hstrlen(keys.incident(incident_id), "state")
        return list(await pipe.execute())


async def _candidates(store: IncidentStore, updates: Sequence[Update]) -> list[int]:
    """How many incidents each update's clustering loads, as `process` looks them up (by place, or by source)."""
    counts: list[int] = []
    for update in updates:
        if update.verdict is Verdict.duplicate or (update.revision and update.revision.kind is RevisionKind.cosmetic):
            continue
        facts = extract(update.title, update.text)
        places = specific_places(facts.places, facts)
        found = (await store.incidents_at(places, places_horizon(update)) if places
                 else await store.incidents_of_source(update.source_id, update.reported_at - WINDOW))
        counts.append(len(found))
    return counts


# --- 2. measure: the tracker stage in a worker process ---------------------------------------------------------------


def _stage_worker(url: str, prefix: str, go: EventType, requests: Queue[str], replies: Queue[float],
                  profile: str | None) -> None:
    """The tracker stage in a process of its own (its own consumer in the group): waits for `go`, runs the real
    router; answers `cpu` with its CPU seconds since `go`, `unprofile` by saving the profile, `stop` by stopping."""
    settings = Settings(_env_file=None, redis_url=url, key_prefix=prefix,
                        consumer=f"bench-{os.getpid()}", log_format="json", log_level="error")
    configure_logging(settings)
    profiler = cProfile.Profile() if profile else None

    async def run() -> None:
        ctx = StageContext(settings, connect(url))
        async with build_broker(ctx, url, ["tracker"]) as broker:
            while not go.is_set():  # noqa: ASYNC110 - a process event
                await asyncio.sleep(0.005)
            started = time.process_time()
            if profiler:
                profiler.enable()
            await broker.start()
            parent = multiprocessing.parent_process()
            while True:
                try:
                    request = requests.get_nowait()
                except queue.Empty:
                    if parent is not None and not parent.is_alive():
                        break  # the benchmark was killed: stop, leaving its keys to `--delete`
                    await asyncio.sleep(0.02)
                    continue
                if request == "cpu":
                    replies.put(time.process_time() - started)
                elif request == "unprofile" and profiler and profile:
                    profiler.disable()
                    profiler.dump_stats(profile)
                    replies.put(0.0)
                elif request == "stop":
                    break
        await ctx.redis.aclose()

    with frozen_survivors():  # as `livedesk worker` runs its stage
        asyncio.run(run())


async def _server_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _command_usec(redis: Redis) -> dict[str, tuple[int, int]]:
    """Calls and µs per command since the server started (INFO commandstats: every client's, not only ours)."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(row["calls"]), int(row["usec"])) for name, row in stats.items()}


def _command_delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    delta = {name: (calls - before.get(name, (0, 0))[0], usec - before.get(name, (0, 0))[1])
             for name, (calls, usec) in after.items()}
    return {name: row for name, row in delta.items() if row[0] > 0}


async def _last_id(redis: Redis, stream: str) -> str:
    rows = await redis.xrevrange(stream, count=1)
    return as_text(rows[0][0]) if rows else "0-0"


def _ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


async def _paced(redis: Redis, stream: str, payloads: Sequence[str], rate: float) -> list[str]:
    """XADD each payload to `stream` at `rate` per second (evenly spaced); their entry ids."""
    ids: list[str] = []
    started = time.perf_counter()
    for n, payload in enumerate(payloads):
        raise_if_cancelled()
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        ids.append(as_text(await redis.xadd(stream, {DATA_FIELD: payload})))
    return ids


async def _drained(redis: Redis, keys: Keys, timeout_s: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await backlog(redis, keys))["tracker"]:
        raise_if_cancelled()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the tracker did not drain `updates` in {timeout_s:.0f} s")
        await asyncio.sleep(0.02)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class StageRun:
    seconds: float = 0.0
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    events: int = 0
    commands: dict[str, tuple[int, int]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    latency_updates: int = 0
    latency_rate: float = 0.0
    latency_seconds: float = 0.0
    latency_worker_cpu: float = 0.0
    dead_letters: int = 0


async def _tracker_stage(redis: Redis, settings: Settings, url: str, measured: list[Update], timed: list[Update],
                         rate: float, profile: str | None) -> StageRun:
    """Drain `measured` (all on `updates` before the clock starts) with the real stage in a worker process; then put
    `timed` on `updates` at `rate`/s (0: half the drain rate) and time each to its first change event."""
    keys, run = settings.keys, StageRun()
    async with redis.pipeline(transaction=False) as pipe:
        for update in measured:
            pipe.xadd(keys.updates, {DATA_FIELD: update.model_dump_json()})
        await pipe.execute()
    await ensure_groups(redis, keys, ["tracker"])
    changes_before = await redis.xlen(keys.changes)
    spawn = multiprocessing.get_context("spawn")
    go, requests, replies = spawn.Event(), spawn.Queue(), spawn.Queue()
    worker = spawn.Process(target=_stage_worker, args=(url, settings.key_prefix, go, requests, replies, profile))
    worker.start()
    try:
        await asyncio.sleep(3)  # imports and connections, before the clock starts
        commands_before = await _command_usec(redis)
        server_before, started = await _server_cpu(redis), time.perf_counter()
        go.set()
        await _drained(redis, keys)
        run.seconds, run.server_cpu = time.perf_counter() - started, await _server_cpu(redis) - server_before
        run.commands = _command_delta(commands_before, await _command_usec(redis))
        requests.put("cpu")
        run.worker_cpu = replies.get(timeout=60)
        run.events = await redis.xlen(keys.changes) - changes_before
        if profile:
            requests.put("unprofile")
            replies.get(timeout=120)
        if timed:
            run.latency_rate = rate or max(1.0, len(measured) / run.seconds / 2)
            await _latency(redis, keys, timed, run)
            requests.put("cpu")
            run.latency_worker_cpu = replies.get(timeout=60) - run.worker_cpu
        run.dead_letters = await redis.xlen(keys.deadletter)
    finally:
        requests.put("stop")
        worker.join(timeout=30)
        if worker.is_alive():
            worker.terminate()
    return run


async def _latency(redis: Redis, keys: Keys, timed: list[Update], run: StageRun) -> None:
    """Put `timed` on `updates` at the run's rate while the worker runs; record XADD → first change event."""
    last = await _last_id(redis, keys.changes)
    started = time.perf_counter()
    ids = await _paced(redis, keys.updates, [u.model_dump_json() for u in timed], run.latency_rate)
    await _drained(redis, keys)
    run.latency_seconds, run.latency_updates = time.perf_counter() - started, len(timed)
    added = {(u.source_id, u.guid, u.fetched_at): _ms(entry_id) for u, entry_id in zip(timed, ids, strict=True)}
    told: dict[tuple[str, str, datetime], int] = {}
    for entry_id, data in entry_data(await redis.xrange(keys.changes, min=f"({last}", max="+")):
        event = ChangeEvent.model_validate_json(data)
        key = (event.evidence[0].source_id, event.evidence[0].guid, event.detected_at)
        told.setdefault(key, _ms(entry_id))
    run.latency_ms = [float(told[key] - at) for key, at in added.items() if key in told]


# --- the baseline: a bare relay --------------------------------------------------------------------------------------


async def _relay_loop(redis: Redis, source: str, sink: str, group: str, count: int, batch: int) -> None:
    done = 0
    while done < count:
        rows: Any = await redis.xreadgroup(group, "c", {source: ">"}, count=batch, block=1000)
        for _, entries in rows:
            async with redis.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    pipe.xadd(sink, fields)
                    pipe.xack(source, group, entry_id)
                await pipe.execute()
            done += len(entries)


async def _relay(redis: Redis, prefix: str, measured: list[Update], timed: list[Update], batch: int,
                 rate: float) -> tuple[float, float, float, list[float]]:
    """Seconds for a bare relay to move `measured`, its CPU seconds, the server's; then the latency of each of
    `timed` put on its input at `rate`/s."""
    source, sink, group = f"{prefix}:relay:in", f"{prefix}:relay:out", "relay"
    async with redis.pipeline(transaction=False) as pipe:
        for update in measured:
            pipe.xadd(source, {DATA_FIELD: update.model_dump_json()})
        await pipe.execute()
    await redis.xgroup_create(source, group, id="0")
    server_before, cpu_before, started = await _server_cpu(redis), time.process_time(), time.perf_counter()
    await _relay_loop(redis, source, sink, group, len(measured), batch)
    elapsed, client = time.perf_counter() - started, time.process_time() - cpu_before
    server = await _server_cpu(redis) - server_before
    latency: list[float] = []
    if timed:
        last = await _last_id(redis, sink)
        relay = asyncio.create_task(_relay_loop(redis, source, sink, group, len(timed), batch))
        ids = await _paced(redis, source, [u.model_dump_json() for u in timed], rate)
        await relay
        out = [_ms(entry_id) for entry_id, _ in entry_data(await redis.xrange(sink, min=f"({last}", max="+"))]
        latency = [float(o - _ms(i)) for i, o in zip(ids, out, strict=True)]  # one consumer: order is kept
    return elapsed, client, server, latency


# --- 3. the gva replay -----------------------------------------------------------------------------------------------


async def _gva(redis: Redis, settings: Settings, url: str, archive: Path) -> None:
    snapshots = len(read_archive(archive).snapshots)
    prefix = f"{settings.key_prefix}:gva"
    keys = Keys(prefix)
    started = time.perf_counter()
    result = await replay(archive, settings, url, key_prefix=prefix, keep=True)
    elapsed = time.perf_counter() - started
    raw, updates = await redis.xlen(keys.raw), await redis.xlen(keys.updates)
    print(f"replay    {archive}: {elapsed:.1f} s wall for {snapshots} snapshots, {raw} articles (raw entries) → "
          f"{updates} updates → {len(result.events)} events, {len(result.incidents)} incidents; "
          f"{raw / elapsed:.1f} articles/s")
    print(f"          feed errors {len(result.feed_errors)}, dead letters {len(result.dead_letters)}"
          + (f" (first: {result.dead_letters[0]})" if result.dead_letters else ""))


# --- the profile ------------------------------------------------------------------------------------------------------


def _print_profile(path: str, top: int = 10) -> None:
    stats = pstats.Stats(path)
    services = str(ROOT / "services") + os.sep
    rows = [(ct, nc, tt, f"{Path(file).relative_to(ROOT)}:{line} {name}")
            for (file, line, name), (_, nc, tt, ct, _) in stats.stats.items()  # type: ignore[attr-defined]
            if file.startswith(services)]
    total = max((ct for ct, *_ in rows), default=0.0)
    print(f"profile   worker under cProfile during the drain, top {top} functions of services/ by cumulative time "
          f"(largest: {total:.1f} s):")
    for ct, nc, tt, where in sorted(rows, reverse=True)[:top]:
        print(f"          {ct:7.2f} s cum  {tt:6.2f} s own  {nc:8d} calls  {where}")


# --- the run ----------------------------------------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "none"
    mean = statistics.fmean(values)
    return (f"mean {mean:.{1 if mean < 100 else 0}f}, p50 {_percentile(values, 0.5):.0f}, "
            f"p99 {_percentile(values, 0.99):.0f}, max {max(values):.0f}")


async def bench(args: argparse.Namespace, prefix: str) -> None:
    settings = Settings(_env_file=None, redis_url=args.redis_url, key_prefix=prefix,
                        consumer=f"bench-{os.getpid()}", log_format="json", log_level="error")
    configure_logging(settings)
    keys, rng = settings.keys, random.Random(7)
    redis = connect(args.redis_url)
    store = IncidentStore(redis, keys)
    try:
        print(f"tracker benchmark: {args.incidents} incidents, measured {args.measure} + {args.latency_updates} "
              f"(latency) updates, prefix {prefix}")
        places, dropped = _usable(_place_pool(rng), rng)
        stories = _stories(places, args.incidents, 0, 0, rng)
        uk = sum(s.place.country == UK for s in stories)
        in_uk = sum(p.country == UK for p in places)
        left_out = f"; left out, as the extractor places them elsewhere: {', '.join(dropped)}" if dropped else ""
        print(f"places    {len(places)} ({in_uk} UK, {len(places) - in_uk} US{left_out}) × {len(CATEGORIES)} "
              f"categories, "
              f"a week apart after {len(places) * len(CATEGORIES)}; "
              f"{uk} UK and {len(stories) - uk} US incidents")
        fill = await _fill(store, stories)
        stored = await redis.zcard(keys.incident_index)
        print(f"fill      {len(stories) / fill.seconds:8.0f} updates/s (process(), {FILL_CONCURRENCY} concurrent)  "
              f"{len(stories)} first reports: {fill.opened} opened an incident, {len(fill.missed)} joined another "
              f"or opened none, {len(fill.errors)} failed ({fill.retried} transient failures tried again); "
              f"{stored} incidents stored (read back)")
        for title in fill.missed[:5]:
            print(f"          opened none: {title}")
        for error in fill.errors[:5]:
            print(f"          failed: {error}")
        sizes = await _index_sizes(redis, prefix)
        states = await _state_sizes(redis, keys, 500, rng)
        print(f"index     {len(sizes)} place sets, incidents per set: {_spread([float(s) for s in sizes])}; "
              f"an incident's state: {_spread([float(s) for s in states])} bytes")

        last_slot = (args.incidents - 1) // (len(places) * len(CATEGORIES))
        measured, tally = _measured(stories, places, args.measure, args.incidents, last_slot + 1, rng)
        timed, _ = _measured(stories, places, args.latency_updates, args.incidents + args.measure, last_slot + 2,
                             rng)
        candidates = await _candidates(store, rng.sample(measured, min(500, len(measured))))
        print(f"measured  mix: {', '.join(f'{kind} {n}' for kind, n in tally.items())}; incidents one update loads "
              f"to cluster (a sample of {len(candidates)} that read facts): {_spread([float(c) for c in candidates])}")

        run = await _tracker_stage(redis, settings, args.redis_url, measured, timed, args.rate, args.profile)
        relay_s, relay_cpu, relay_server, relay_latency = await _relay(
            redis, prefix, measured, timed, settings.batch_size, run.latency_rate or 1.0)
        stage_rate, relay_rate = args.measure / run.seconds, args.measure / relay_s
        per_update = 1e6 / args.measure
        print(f"tracker   {stage_rate:8.0f} updates/s  (the stage: 1 worker process, FastStream router, reads of "
              f"{settings.batch_size}; {run.events} change events)  CPU per update: {run.worker_cpu * per_update:.0f}"
              f" µs in the worker + {run.server_cpu * per_update:.0f} µs in Redis"
              + ("  [under cProfile]" if args.profile else ""))
        busiest = sorted(run.commands.items(), key=lambda item: -item[1][1])[:6]
        print("          Redis time per update by command (INFO commandstats, whole server): " + ", ".join(
            f"{name} {usec / args.measure:.0f} µs ({calls / args.measure:.1f} calls)"
            for name, (calls, usec) in busiest))
        print(f"relay     {relay_rate:8.0f} updates/s  (bare redis-py XREADGROUP → XADD → XACK)  CPU per update: "
              f"{relay_cpu * per_update:.0f} µs in the relay + {relay_server * per_update:.0f} µs in Redis")
        print(f"ratio     tracker / relay = {stage_rate / relay_rate:.3f}")
        if run.latency_updates:
            told = len(run.latency_ms)
            print(f"latency   {run.latency_updates} updates put on `updates` one by one at {run.latency_rate:.0f}/s "
                  f"(drained in {run.latency_seconds:.1f} s); {told} changed an incident: XADD on `updates` → first "
                  f"event on `changes`, ms: p50 {_percentile(run.latency_ms, 0.5):.0f}, "
                  f"p99 {_percentile(run.latency_ms, 0.99):.0f}, max {max(run.latency_ms):.0f}" if told else
                  f"latency   {run.latency_updates} updates, none changed an incident")
            print(f"          worker CPU {run.latency_worker_cpu / run.latency_updates * 1e6:.0f} µs per update at "
                  f"that pace; relay at the same pace, ms: p50 {_percentile(relay_latency, 0.5):.0f}, "
                  f"p99 {_percentile(relay_latency, 0.99):.0f}, max {max(relay_latency):.0f}")
        if run.dead_letters:
            print(f"errors    {run.dead_letters} entries dead-lettered by the tracker")
        if args.profile:
            _print_profile(args.profile)
        if args.gva and not args.no_gva:
            await _gva(redis, settings, args.redis_url, Path(args.gva))
    finally:
        print(f"cleanup   deleted {await delete_prefix(redis, prefix)} keys under {prefix}:")
        await redis.aclose()


async def _delete(url: str, prefix: str) -> None:
    if not prefix.startswith("livedesk-bench:"):
        raise SystemExit(f"refusing to delete {prefix!r}: not a livedesk-bench:<hex> prefix")
    redis = connect(url)
    try:
        print(f"cleanup   deleted {await delete_prefix(redis, prefix)} keys under {prefix}:")
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--measure", type=int, default=5_000, help="updates drained from a full `updates` stream")
    parser.add_argument("--latency-updates", type=int, default=1_000, help="updates put on `updates` at --rate")
    parser.add_argument("--rate", type=float, default=0.0, help="updates/s of the latency phase; 0: half the drain's")
    parser.add_argument("--gva", default=str(GVA_DEV) if GVA_DEV.is_dir() else None, help="replay archive to time")
    parser.add_argument("--no-gva", action="store_true", help="skip the replay")
    parser.add_argument("--profile", metavar="FILE", help="profile the tracker worker during the drain into FILE")
    parser.add_argument("--delete", metavar="PREFIX", help="only delete the keys a killed run left under PREFIX")
    parser.add_argument("--redis-url", default=os.environ.get("LIVEDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if args.delete:
        asyncio.run(_delete(args.redis_url, args.delete))
        return
    prefix = f"livedesk-bench:{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(bench(args, prefix))
    except KeyboardInterrupt:  # may land outside the clean-up's reach (in a task of the fill): clean up here
        asyncio.run(_delete(args.redis_url, prefix))
        raise


if __name__ == "__main__":
    main()
