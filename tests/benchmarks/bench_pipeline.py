"""Load test: the whole pipeline (dedup → tracker → notifier fan-out) in one process on a real Redis, at a steady rate
and at a burst, against a bare redis-py relay through the same hops, measured in the same run.

Run from the repo root (nothing outside a fresh `livedesk-bench:<hex>` prefix is touched; it is deleted afterwards):

    python -m tests.benchmarks.bench_pipeline [--quick] [--warm 1000] [--burst 3000]
                                              [--rate 500] [--steady-s 10] [--corpus DIR | --no-corpus]
                                              [--capacity] [--profile FILE] [--redis-url redis://127.0.0.1:6379/0]

The pipeline runs in one worker process of its own: the dedup, tracker and notifier routers on one broker
(`services.app.build_broker`), reading and acknowledging in batches of `LIVEDESK_BATCH_SIZE`. One webhook is
registered whose filter passes every event, so the notifier queues every change (its deliveries, which are HTTP, are
not part of this test). This process writes `raw` entries and watches.

The entries (`Mix`): first reports of incidents (UK police releases, UK and US news, in the style of the
Walthamstow demo archive: a place, a street, a victim's age and condition, cordons, arrests, the IOPC), later
reports of them by other outlets, edits of earlier entries with news in them (a condition, an arrest, a cordon
lifted), edits that change only the wording, copies of a report by another outlet (exact, or with a sign-off of its
own), an entry served again unchanged, and crawled news articles from `--corpus` (default
/work/shared/corpora/gva-dev when present: long and noisy, so fact extraction does its real work). Every entry has a
`fetched_at` of its own, which its change events carry as `detected_at`.

Phases:
1. Warm-up (`--warm` entries, not timed): incidents, word frequencies and the dedup index exist before measuring.
2. Burst: `--burst` entries written at once; the time until every stage has read and acknowledged everything gives
   the sustained updates/s (raw entries per second through all stages).
3. Steady: entries written at `--rate` per second for `--steady-s` seconds (stopped early, and said so, when the
   backlog passes five seconds' worth); latency per entry is the server time from its XADD on `raw` to its first
   change event's XADD on `changes` (the ms part of a stream id is the server's clock), p50/p99/p999. Entries that
   change no incident (copies, repeats, cosmetic edits) have no change event and no latency.
   With `--capacity`, more steady phases follow at 40, 60, 80 and 90% of the burst's rate, and the highest rate at
   which p99 stayed under the target (and under it at every slower rate) is printed: the load one process can take
   with alerts still prompt.
4. Baseline: a bare relay in a process of its own, three hops (XREADGROUP a batch → XADD each → XACK, pipelined)
   from a stream of its own through two more to a fourth, moves the same payloads: its burst rate and its latency
   at the same steady rate. The ratio is pipeline / relay.

Also printed: the lag of each stage's group (`services.groups.backlog`, sampled every 100 ms: the largest and the
mean), the RSS of the pipeline process (now and peak) and of the relay's, the Redis memory used, CPU per entry in
the pipeline process and in Redis, and the accounting: every `raw` entry is an update or a counted repeat, every
stage drained, every change queued once for the hook, no dead letters. `--quick` is a smoke run (a few hundred
entries, seconds). `--profile FILE` profiles the pipeline process through the burst and prints the functions of
`services/` with the most cumulative time (its rates are then not the benchmark's). Figures are printed, never
asserted. A run killed before its clean-up leaves its keys under the prefix it printed first; delete them with
`python -m tests.benchmarks.bench_pipeline --delete livedesk-bench:<hex>`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import itertools
import multiprocessing
import os
import pstats
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from schemas import Authority, ChangeEvent, FeedEntry, RawUpdate
from services.app import build_broker
from services.connection import connect
from services.groups import backlog, ensure_groups
from services.heap import frozen_survivors
from services.identity import content_fingerprint, entry_identity
from services.logs import configure_logging
from services.names import Keys
from services.notifier.hooks import HookRegistry, make_hook
from services.poller.parse import parse_feed
from services.replay import delete_prefix, read_archive
from services.settings import Settings
from services.stage import StageContext, raise_if_cancelled
from services.tracker.extract import extract
from services.tracker.places import AREA, CITY, GAZETTEER, UK, US
from services.wire import DATA_FIELD, as_text, entry_data

CORPUS = Path("/work/shared/corpora/gva-dev")
ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dedup", "tracker", "notifier")
HOOK_ID = "bench"
TARGET_RATE = 2000.0  # updates/s sustained through all stages in one process
TARGET_P99_MS = 100.0  # at the steady rate
STEADY_TICK_S = 0.01  # the steady phase writes what is due every tick, in one pipeline
LAG_SAMPLE_S = 0.1
BEHIND_S = 5.0  # the steady phase stops once the backlog holds this many seconds of entries
CAPACITY_FRACTIONS = (0.4, 0.6, 0.8, 0.9)  # `--capacity`: steady rates tried, as fractions of the burst's rate

# --- the entries -----------------------------------------------------------------------------------------------------

# Streets of two names and a kind, each story its own: two incidents on one street name in one region are tied by it.
_STREET_FIRST = ("Hoe", "Lea", "Mark", "Selborne", "Granville", "Palmer", "Beacon", "Trinity", "Orchard", "Chestnut",
                 "Cromwell", "Albert", "Victoria", "Mill", "Brook", "Hazel", "Elm", "Rowan", "Willow", "Ash")
_STREET_SECOND = ("Bridge", "House", "Field", "Hill", "Gate", "Wood", "Water", "Stone", "Dale", "Moor", "Bank",
                  "Cross", "Well", "Ford", "Vale", "Lodge", "Mead", "Holt", "Heath", "Brook")
_STREET_KINDS = ("Street", "Road", "Avenue", "Lane", "Close", "Drive", "Grove", "Crescent", "Terrace")


def _street(n: int) -> str:
    first, second = _STREET_FIRST[n % len(_STREET_FIRST)], _STREET_SECOND[n // len(_STREET_FIRST) % len(_STREET_SECOND)]
    return f"{first} {second} {_STREET_KINDS[n // 400 % len(_STREET_KINDS)]}"
_OUTLETS_UK = ("east-london-echo", "city-wire", "evening-standard", "local-gazette", "metro-news", "north-chronicle",
               "south-herald", "west-post", "midlands-live", "northern-echo")
_OUTLETS_US = ("wgn-news", "kxan", "wsb-tv", "kcra", "wfaa", "wral", "kare11", "wlky", "wbal", "ksdk")
_POLICE_UK, _POLICE_US = "met-police", "city-police-dept"
_VICTIMS = ("man", "woman", "teenager", "man", "boy", "man", "woman")
_FIRST_NAMES = ("Dana", "Mark", "Aisha", "Paul", "Helen", "Raj", "Sarah", "Tom", "Priya", "Gareth", "Nicola", "Femi")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SURNAMES = ("Whitlock", "Okafor", "Brennan", "Mensah", "Kowalski", "Haddad", "Pryce", "Delgado", "Thornton",
             "Castellano", "Pemberton", "Oyelaran", "Lindqvist", "Petrakis", "Sandoval", "Trevelyan")
_KINDS = {  # category: (what happened to the victim, the incident's noun, what an arrest is on suspicion of)
    "shooting": ("shot", "shooting", "attempted murder"),
    "stabbing": ("stabbed", "stabbing", "attempted murder"),
    "fire": ("injured in a house fire", "house fire", "arson with intent to endanger life"),
    "collision": ("hit by a car", "crash", "causing serious injury by dangerous driving"),
    "police shooting": ("shot by police", "police shooting", "possession of a firearm"),
}
# What UK incidents are, in turn: police shootings are rare (each is referred to the IOPC in the same words).
_UK_KINDS = ("stabbing", "shooting", "fire", "stabbing", "collision", "shooting", "stabbing", "fire", "collision",
             "stabbing", "shooting", "collision", "stabbing", "fire", "shooting", "stabbing", "collision", "fire",
             "stabbing", "police shooting")
_QUOTES = ("I heard shouting and then screaming, it was terrifying",
           "You don't expect this on your own doorstep, it is usually so quiet here",
           "There were police everywhere within minutes and they taped off the whole road",
           "We understand the concern this will cause in the community and patrols have been increased",
           "I would urge anyone with doorbell or dashcam footage to come forward")


@dataclass
class Story:
    """One incident, and the entries told about it so far (guid → title, text)."""

    n: int
    kind: str
    place: str
    state: str | None
    street: str
    victim: str
    age: int
    at: datetime
    entries: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    edits: int = 0

    @property
    def us(self) -> bool:
        return self.state is not None

    @property
    def pronoun(self) -> str:
        return "She" if self.victim == "woman" else "He"

    @property
    def person(self) -> str:
        age = self.age if self.victim != "teenager" else min(self.age, 19)
        noun = "boy" if self.victim in ("boy", "teenager") else self.victim
        return f"{'an' if age in (8, 11, 18) or 80 <= age < 90 else 'a'} {age}-year-old {noun}"

    @property
    def where(self) -> str:
        return f"{self.place}, {self.state}" if self.state else self.place


def _first_report(story: Story, rng: random.Random) -> tuple[str, str, str]:
    """(source, title, text) of an incident's first report: a police release (UK) or a news report with a dateline
    (US)."""
    verb, noun, _ = _KINDS[story.kind]
    day, ref = _DAYS[story.n % 7], 1000 + story.n
    condition = rng.choice(("life-threatening", "critical", "serious", "not life-threatening"))
    if story.us:
        title = f"{story.victim.capitalize()} {verb} on {story.street} in {story.place}"
        text = (f"{story.place.upper()}, {story.state} (AP) — {story.person.capitalize()} was {verb} on "
                f"{story.street} in {story.where} on {day} night, police said. Officers were called to the scene "
                f"shortly after {story.n % 11 + 1} p.m. {story.pronoun} was taken to a hospital in "
                f"{'critical' if condition != 'not life-threatening' else 'stable'} condition. "
                f"No arrests have been made. Police asked anyone with video from the area to contact them.")
        return _OUTLETS_US[story.n % len(_OUTLETS_US)], title, text
    title = f"{story.victim.capitalize()} taken to hospital after {noun} in {story.place}"
    text = (f"Officers were called at approximately {story.n % 12 + 10}:{story.n % 50 + 10}hrs on {day} to reports "
            f"of a {noun} on {story.street} in {story.place}. {story.person.capitalize()} was found with injuries. "
            f"{story.pronoun} was taken to hospital, where {'her' if story.pronoun == 'She' else 'his'} condition "
            f"is assessed as {condition}. A cordon is in place while enquiries continue. No arrests have been made. "
            f"Anyone with information is asked to call 101 quoting CAD {ref}.")
    if story.kind == "police shooting":
        rank = ("Chief Superintendent", "Detective Superintendent", "Commander", "Superintendent")[story.n % 4]
        name = f"{_FIRST_NAMES[story.n % len(_FIRST_NAMES)]} {_SURNAMES[story.n // 7 % len(_SURNAMES)]}"
        text += (" A mandatory referral has been made to the Independent Office for Police Conduct (IOPC). "
                 f"{rank} {name}, who leads policing in {story.place}, said: \"{_QUOTES[story.n % len(_QUOTES)]}.\"")
    return _POLICE_UK, title, text


def _other_report(story: Story, rng: random.Random) -> tuple[str, str, str]:
    """(source, title, text) of another outlet's report, with a fact or two of its own and a quote."""
    verb, noun, crime = _KINDS[story.kind]
    source = rng.choice(_OUTLETS_US if story.us else _OUTLETS_UK)
    news = rng.choice((f"A {rng.randint(17, 45)}-year-old man has been arrested on suspicion of {crime}.",
                       f"{story.pronoun} remains in hospital in a stable condition.",
                       f"{story.pronoun} is now in a critical condition, police said.",
                       "Police said there is no wider risk to the public.",
                       "The cordon has since been lifted."))
    title = f"{noun.capitalize()} in {story.place}: {story.person} {verb} on {story.street}"
    text = (f"{story.person.capitalize()} was {verb} on {story.street} in {story.where} on {_DAYS[story.n % 7]}. "
            f"{news} A neighbour, {rng.choice(('Jo', 'Sam', 'Alex', 'Chris'))} "
            f"{rng.choice(_SURNAMES)}, said: \"{rng.choice(_QUOTES)}.\" Detectives are reviewing CCTV and want to hear "
            f"from anyone who was in the area at the time.")
    if story.kind == "police shooting" and rng.random() < 0.5:
        text += " The IOPC has launched an independent investigation."
    return source, title, text


def _edited(story: Story, text: str, rng: random.Random) -> str:
    """The text of an entry edited with news: a condition, an arrest or charge, a cordon lifted."""
    _, _, crime = _KINDS[story.kind]
    story.edits += 1
    news = rng.choice((f"UPDATE: The {story.victim} has since died in hospital.",
                       f"UPDATE: {story.pronoun} is now in a stable condition.",
                       f"UPDATE: Two men have been arrested on suspicion of {crime}.",
                       f"UPDATE: A {rng.randint(18, 50)}-year-old man has been charged with {crime}.",
                       "UPDATE: The cordon has now been lifted and there is no wider risk to the public."))
    return f"{text} {news} (Edit {story.edits}.)"


def _fingerprint(source: str, guid: str) -> str:
    return hashlib.sha256(f"{source}/{guid}".encode()).hexdigest()[:12]


def corpus_articles(root: Path | None, wanted: int) -> list[tuple[str, str, str, str]]:
    """Up to `wanted` (source, guid, title, text) from the snapshots of a replay archive, in time order."""
    if root is None or wanted <= 0 or not root.is_dir():
        return []
    archive = read_archive(root)
    found: list[tuple[str, str, str, str]] = []
    for snapshot in archive.snapshots:
        source = archive.sources[snapshot.source_id]
        parsed = parse_feed(snapshot.path.read_bytes(), feed=source.id, base_url=source.url)
        for entry in parsed.entries:
            if entry.text:
                found.append((source.id, entry.guid or entry.link or entry.title, entry.title, entry.text))
        if len(found) >= wanted:
            break
    return found[:wanted]


# What the entries are, and how often (weights). `corpus` is a `first` report without a corpus.
MIX = {"first": 25, "report": 20, "edit": 15, "cosmetic": 5, "copy": 15, "near copy": 5, "repeat": 8, "corpus": 7}
# Later reports, edits and copies are about the incidents first reported most recently.
FOLLOWED = 40
# First reports this far apart: a place (some two hundred, in turn) comes round again after the tracker's clustering
# window (3 days), so each story is an incident of its own, as most are; over the tracker's 120-day place horizon a
# place gathers a few dozen incidents at most, as a busy district or city would.
STORY_GAP = timedelta(minutes=30)


@lru_cache(maxsize=1)
def places() -> list[tuple[str, str | None]]:
    """(place, US state or None) of the incidents: the London areas, UK cities and US cities of the tracker's
    gazetteer whose first report the extractor places there, in a fixed shuffled order."""
    candidates = [(place.name, place.region if place.country == US else None) for place in GAZETTEER.values()
                  if place.country in (UK, US) and place.rank in (AREA, CITY) and place.name != "London"]
    usable = []
    for name, state in candidates:
        story = Story(0, "stabbing", name, state, _street(0), "man", 30, datetime(2025, 1, 1, tzinfo=UTC))
        _, title, text = _first_report(story, random.Random(0))
        found = extract(title, text).location
        if found is not None and found.value.name == name:
            usable.append((name, state))
    random.Random(3).shuffle(usable)
    return usable


@dataclass
class Entry:
    kind: str
    raw: RawUpdate


class Mix:
    """A deterministic stream of raw entries (see MIX), each fetched at a `fetched_at` of its own. About `expected`
    entries will be taken: the first reports are dated so that the last is about now."""

    def __init__(self, expected: int, articles: list[tuple[str, str, str, str]], seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self._articles = iter(articles)
        self._stories: list[Story] = []
        self._sent: list[RawUpdate] = []  # every entry written, for copies and repeats
        self._versions: dict[tuple[str, str], RawUpdate] = {}  # the latest of each entry
        self._count = 0
        self._start = datetime.now(UTC).replace(microsecond=0) - STORY_GAP * (expected * MIX["first"] // 100 + 10)

    def take(self, n: int) -> list[Entry]:
        return [self._next() for _ in range(n)]

    def _next(self) -> Entry:
        rng = self._rng
        # The news already holds a few incidents when the stream starts: later reports are about one of them.
        started = len(self._stories) >= FOLLOWED
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0] if started else "first"
        entry: Entry | None = None
        if kind == "corpus":
            article = next(self._articles, None)
            if article is not None:
                source, guid, title, text = article
                entry = Entry(kind, self._raw(source, guid, title, text, Authority.news, self._start))
            else:
                kind = "first"
        entry = entry or self._make(kind, rng)
        self._sent.append(entry.raw)
        self._versions[(entry.raw.source_id, entry.raw.entry.guid or "")] = entry.raw
        return entry

    def _make(self, kind: str, rng: random.Random) -> Entry:
        if kind == "first":
            n = len(self._stories)
            place, state = places()[n % len(places())]
            what = ("shooting", "stabbing")[n % 2] if state else _UK_KINDS[n % len(_UK_KINDS)]
            story = Story(n, what, place, state, _street(n), _VICTIMS[n % len(_VICTIMS)], rng.randint(15, 60),
                          self._start + STORY_GAP * n)
            self._stories.append(story)
            source, title, text = _first_report(story, rng)
            return self._told(kind, story, source, f"{source}-{n}", title, text)
        story = rng.choice(self._stories[-FOLLOWED:])
        if kind == "report":
            source, title, text = _other_report(story, rng)
            return self._told(kind, story, source, f"{source}-{story.n}-{self._count}", title, text)
        if kind in ("edit", "cosmetic"):
            (source, guid), (title, text) = rng.choice(list(story.entries.items()))
            if kind == "edit":
                text = _edited(story, text, rng)
            else:  # a reworded title: a new version of the entry that states nothing new
                title = title.removesuffix(" - latest") if title.endswith(" - latest") else f"{title} - latest"
            return self._told(kind, story, source, guid, title, text)
        original = rng.choice(self._sent[-FOLLOWED * 5:])
        if kind == "repeat":  # the same version of an entry served again
            latest = self._versions[(original.source_id, original.entry.guid or "")]
            return Entry(kind, self._raw(latest.source_id, latest.entry.guid or "", latest.entry.title,
                                        latest.entry.text, latest.authority, latest.entry.published,
                                        latest.entry.updated))
        source = rng.choice(_OUTLETS_UK + _OUTLETS_US)
        sign_off = f" (Reporting by {rng.choice(_SURNAMES)} for {source}.)" if kind == "near copy" else ""
        return Entry(kind, self._raw(source, f"{source}-copy-{self._count}", original.entry.title,
                                    original.entry.text + sign_off, Authority.news, original.entry.published))

    def _told(self, kind: str, story: Story, source: str, guid: str, title: str, text: str) -> Entry:
        """A report of `story`, or a new version of one: published a few minutes after the one before."""
        edited = (source, guid) in story.entries
        story.entries[(source, guid)] = (title, text)
        authority = Authority.official if source in (_POLICE_UK, _POLICE_US) else Authority.news
        at = story.at + timedelta(minutes=5 * (len(story.entries) + story.edits))
        previous = self._versions.get((source, guid))
        published = previous.entry.published if edited and previous else at
        return Entry(kind, self._raw(source, guid, title, text, authority, published, at if edited else None))

    def _raw(self, source: str, guid: str, title: str, text: str, authority: Authority,
             published: datetime | None, updated: datetime | None = None) -> RawUpdate:
        self._count += 1
        # Each entry its own fetch time: its change events carry it as `detected_at`, which ties them to it.
        fetched = datetime.now(UTC) + timedelta(microseconds=self._count)
        entry = FeedEntry(guid=guid, link=f"https://{source}.example.org/news/{_fingerprint(source, guid)}",
                          title=title, text=text, published=published, updated=updated)
        return RawUpdate(source_id=source, authority=authority, feed_url=f"https://{source}.example.org/rss",
                         entry=entry, identity=entry_identity(source, entry), fingerprint=content_fingerprint(entry),
                         fetched_at=fetched)


# --- the processes ---------------------------------------------------------------------------------------------------


def _pipeline_worker(url: str, prefix: str, tuning: dict[str, Any], stop: EventType, profile: str | None,
                     profile_stop: EventType) -> None:
    """The dedup, tracker and notifier stages on one broker in this process, until `stop` (`tuning`: settings such as
    the batch size); with `profile`, under cProfile until `profile_stop`, then the profile is saved there."""
    settings = Settings(_env_file=None, redis_url=url, key_prefix=prefix, consumer=f"bench-{os.getpid()}",
                        log_format="json", log_level="error", **tuning)
    configure_logging(settings)
    profiler = cProfile.Profile() if profile else None

    async def run() -> None:
        ctx = StageContext(settings, connect(url))
        async with build_broker(ctx, url, STAGES) as broker:
            if profiler:
                profiler.enable()
            await broker.start()
            parent = multiprocessing.parent_process()
            profiling = profiler is not None
            while not stop.is_set():
                if parent is not None and not parent.is_alive():
                    break  # the benchmark was killed: stop, leaving its keys to `--delete`
                if profiling and profiler and profile and profile_stop.is_set():
                    profiler.disable()
                    profiler.dump_stats(profile)
                    profiling = False
                await asyncio.sleep(0.02)
        await ctx.redis.aclose()

    with frozen_survivors():  # as `livedesk run` and `livedesk worker` run their stages
        asyncio.run(run())


def _relay_worker(url: str, streams: list[str], group: str, batch: int, stop: EventType) -> None:
    """A bare redis-py relay: one task per hop, each moving entries from one stream to the next in batches."""

    async def hop(redis: Redis, source: str, sink: str) -> None:
        while not stop.is_set():
            rows: Any = await redis.xreadgroup(group, "relay", {source: ">"}, count=batch, block=100)
            for _, entries in rows:
                async with redis.pipeline(transaction=False) as pipe:
                    for _, fields in entries:
                        pipe.xadd(sink, fields)
                    pipe.xack(source, group, *(entry_id for entry_id, _ in entries))
                    await pipe.execute()

    async def run() -> None:
        redis = connect(url)
        await asyncio.gather(*(hop(redis, a, b) for a, b in itertools.pairwise(streams)))
        await redis.aclose()

    asyncio.run(run())


def _process_figures(pid: int) -> tuple[float, int, int]:
    """CPU seconds, RSS and peak RSS (bytes) of process `pid`, from /proc (Linux); zeros elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
    except OSError:
        return 0.0, 0, 0
    ticks = os.sysconf("SC_CLK_TCK")

    def kb(name: str) -> int:
        return int(status.get(name, "0 kB").split()[0]) * 1024

    return (int(stat[11]) + int(stat[12])) / ticks, kb("VmRSS"), kb("VmHWM")


async def _server_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- measuring -------------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    entries: int = 0  # written
    kinds: Counter[str] = field(default_factory=Counter)  # of the entries written (`MIX`)
    finished: int = 0  # entries every stage was done with: all of them, unless the phase timed out
    seconds: float = 0.0  # from the first entry written until every stage drained (or the timeout)
    writing_s: float = 0.0  # writing the entries
    drained: bool = True
    behind: bool = False  # the steady phase stopped early: the backlog grew past BEHIND_S
    latency_ms: list[float] = field(default_factory=list)
    lags: dict[str, list[int]] = field(default_factory=dict)
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    offered: float | None = None  # entries/s asked of a steady phase (None: all at once)

    @property
    def rate(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0

    @property
    def written_rate(self) -> float:
        """Entries/s actually written (a steady phase may fall short of what it was asked)."""
        return self.entries / self.writing_s if self.writing_s else 0.0

    @property
    def held(self) -> bool:
        """Whether the p99 latency target held: change events measured, p99 below it, the backlog never too long."""
        return bool(self.latency_ms) and _percentile(self.latency_ms, 0.99) < TARGET_P99_MS and not self.behind


def capacity_at_target(phases: Sequence[Phase]) -> float | None:
    """The highest steady rate (as written) at which the p99 target held, and every slower rate held too; None when
    the slowest did not."""
    best = None
    for phase in sorted(phases, key=lambda p: p.offered or 0.0):
        if not phase.held:
            break
        best = phase.written_rate
    return best


@dataclass
class Accounts:
    """Whether every entry was accounted for, stage by stage."""

    raw: int = 0
    updates: int = 0
    repeats: int = 0
    repeats_sent: int = 0
    changes: int = 0
    queued: int = 0  # on the hook's queue
    dead_letters: int = 0
    backlog: dict[str, int] = field(default_factory=dict)
    verdicts: Counter[str] = field(default_factory=Counter)
    incidents: int = 0
    place_sets: list[int] = field(default_factory=list)  # incidents indexed under each place: a report's candidates
    state_sizes: list[int] = field(default_factory=list)  # bytes of each incident's stored state

    @property
    def complete(self) -> bool:
        return (self.raw == self.updates + self.repeats and self.repeats >= self.repeats_sent
                and not any(self.backlog.values()) and self.queued == self.changes and not self.dead_letters)


@dataclass
class Result:
    prefix: str
    mix: Counter[str]
    phases: list[Phase]
    relay: list[Phase]
    accounts: Accounts
    capacity: list[Phase] = field(default_factory=list)  # `--capacity`: steady phases at fractions of the burst rate
    worker_rss: tuple[int, int] = (0, 0)  # now, peak
    relay_rss: tuple[int, int] = (0, 0)
    redis_memory: int = 0


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


async def _last_id(redis: Redis, stream: str) -> str:
    rows = await redis.xrevrange(stream, count=1)
    return as_text(rows[0][0]) if rows else "0-0"


class Lags:
    """Samples each stage's backlog every LAG_SAMPLE_S while a phase runs."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis, self._keys = redis, keys
        self.samples: dict[str, list[int]] = {stage: [] for stage in STAGES}
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            for stage, work in (await backlog(self._redis, self._keys, STAGES)).items():
                self.samples[stage].append(work)
            await asyncio.sleep(LAG_SAMPLE_S)

    def __enter__(self) -> Lags:
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()


async def _drained(redis: Redis, keys: Keys, timeout_s: float) -> bool:
    """Wait until every stage has read and acknowledged everything (seen twice in a row); False after `timeout_s`."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while quiet < 2:
        raise_if_cancelled()
        if time.monotonic() > deadline:
            return False
        quiet = quiet + 1 if not any((await backlog(redis, keys, STAGES)).values()) else 0
        await asyncio.sleep(0.01)
    return True


async def _write(redis: Redis, stream: str, payloads: Sequence[str]) -> list[str]:
    """XADD each payload, pipelined; their entry ids."""
    if not payloads:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for payload in payloads:
            pipe.xadd(stream, {DATA_FIELD: payload})
        return [as_text(entry_id) for entry_id in await pipe.execute()]


async def _paced(redis: Redis, stream: str, payloads: Sequence[str], rate: float,
                 behind: Callable[[], bool]) -> tuple[list[str], bool]:
    """Write `payloads` at `rate` per second (what is due each tick, in one pipeline); stop early when `behind()`.
    The ids written, and whether it stopped early."""
    ids: list[str] = []
    started = time.perf_counter()
    while len(ids) < len(payloads):
        raise_if_cancelled()
        due = min(len(payloads), int((time.perf_counter() - started) * rate) + 1)
        ids += await _write(redis, stream, payloads[len(ids):due])
        if behind():
            return ids, True
        await asyncio.sleep(STEADY_TICK_S)
    return ids, False


async def _latencies(redis: Redis, keys: Keys, after: str,
                     written: dict[tuple[str, str, datetime], int]) -> list[float]:
    """Per written entry (source, guid, fetched_at → its `raw` id ms) that changed an incident: ms from its XADD on
    `raw` to its first change event's XADD on `changes`."""
    told: dict[tuple[str, str, datetime], int] = {}
    for entry_id, data in entry_data(await redis.xrange(keys.changes, min=f"({after}", max="+")):
        event = ChangeEvent.model_validate_json(data)
        evidence = event.evidence[0] if event.evidence else None
        if evidence is not None:
            told.setdefault((evidence.source_id, evidence.guid, event.detected_at), _ms(entry_id))
    return [float(told[key] - at) for key, at in written.items() if key in told]


async def _pipeline_phase(redis: Redis, keys: Keys, name: str, entries: list[Entry], rate: float | None,
                          worker_pid: int, timeout_s: float) -> Phase:
    """Write `entries` at once (`rate` None) or at `rate`/s, wait until drained; what it measured."""
    phase = Phase(name, offered=rate)
    payloads = [entry.raw.model_dump_json() for entry in entries]
    after = await _last_id(redis, keys.changes)
    cpu_before, server_before = _process_figures(worker_pid)[0], await _server_cpu(redis)
    started = time.perf_counter()
    with Lags(redis, keys) as lags:
        if rate is None:
            ids = await _write(redis, keys.raw, payloads)
        else:
            ceiling = rate * BEHIND_S
            ids, phase.behind = await _paced(redis, keys.raw, payloads, rate,
                                             lambda: sum(s[-1] for s in lags.samples.values() if s) > ceiling)
        phase.writing_s = time.perf_counter() - started
        phase.drained = await _drained(redis, keys, timeout_s)
    phase.seconds, phase.entries, phase.lags = time.perf_counter() - started, len(ids), lags.samples
    phase.kinds = Counter(entry.kind for entry in entries[: len(ids)])
    # An entry is finished once dedup dropped it as a repeat or the tracker acknowledged its update (the notifier's
    # lag is counted in change events, not entries).
    left = await backlog(redis, keys, ["dedup", "tracker"])
    phase.finished = len(ids) if phase.drained else max(0, len(ids) - left["dedup"] - left["tracker"])
    phase.worker_cpu = _process_figures(worker_pid)[0] - cpu_before
    phase.server_cpu = await _server_cpu(redis) - server_before
    written = {(e.raw.source_id, e.raw.entry.guid or "", e.raw.fetched_at): _ms(i)
               for e, i in zip(entries, ids, strict=False)}
    phase.latency_ms = await _latencies(redis, keys, after, written)
    return phase


async def _relay_phases(redis: Redis, url: str, prefix: str, burst: list[str], steady: list[str], rate: float,
                        batch: int, timeout_s: float) -> tuple[list[Phase], tuple[int, int]]:
    """The bare relay's burst and steady phases over the same payloads, in a process of its own; its RSS."""
    # Under the prefix's own root, so that deleting the prefix deletes them too.
    streams, group = [f"{Keys(prefix).root}:relay:{hop}" for hop in range(len(STAGES) + 1)], "relay"
    for stream in streams[:-1]:
        await redis.xgroup_create(stream, group, id="$", mkstream=True)

    async def drained() -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            infos = [await redis.xinfo_groups(stream) for stream in streams[:-1]]
            if all(int(i[0]["pending"]) == 0 and (i[0].get("lag") or 0) == 0 for i in infos):
                return True
            await asyncio.sleep(0.01)
        return False

    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    worker = spawn.Process(target=_relay_worker, args=(url, streams, group, batch, stop))
    worker.start()
    phases: list[Phase] = []
    try:
        await asyncio.sleep(1.0)  # imports and connections, before the clock starts
        for name, payloads, pace in (("burst", burst, None), ("steady", steady, rate)):
            phase = Phase(name)
            after = await _last_id(redis, streams[-1])
            started = time.perf_counter()
            if pace is None:
                ids = await _write(redis, streams[0], payloads)
            else:
                ids, phase.behind = await _paced(redis, streams[0], payloads, pace, lambda: False)
            phase.drained = await drained()
            phase.seconds, phase.entries = time.perf_counter() - started, len(ids)
            phase.finished = len(ids) if phase.drained else 0
            out = [_ms(entry_id) for entry_id, _ in entry_data(await redis.xrange(streams[-1], min=f"({after}"))]
            # One consumer per hop: the order is kept, so the n-th out is the n-th in.
            phase.latency_ms = [float(o - _ms(i)) for i, o in zip(ids, out, strict=False)]
            phases.append(phase)
        rss = _process_figures(worker.pid or 0)[1:]
    finally:
        stop.set()
        worker.join(timeout=10)
        if worker.is_alive():
            worker.terminate()
    return phases, rss


async def _accounts(redis: Redis, keys: Keys, mix: Counter[str]) -> Accounts:
    accounts = Accounts(raw=await redis.xlen(keys.raw), updates=await redis.xlen(keys.updates),
                        changes=await redis.xlen(keys.changes), dead_letters=await redis.xlen(keys.deadletter),
                        queued=await redis.xlen(keys.hook_queue(HOOK_ID)), repeats_sent=mix["repeat"],
                        backlog=await backlog(redis, keys, STAGES))
    stats = await redis.hgetall(keys.dedup_stats)
    accounts.verdicts = Counter({as_text(k): int(v) for k, v in stats.items()})
    accounts.repeats = accounts.verdicts["repeat"]
    accounts.incidents = await redis.zcard(keys.incident_index)
    async with redis.pipeline(transaction=False) as pipe:
        for incident_id in await redis.zrange(keys.incident_index, 0, -1):
            pipe.hstrlen(keys.incident(as_text(incident_id)), "state")
        accounts.state_sizes = list(await pipe.execute())
    async for key in redis.scan_iter(match=keys.place("*"), count=1000):
        accounts.place_sets.append(await redis.zcard(key))
    return accounts


async def run(url: str, prefix: str, *, warm: int, burst: int, rate: float, steady_s: float,
              corpus: Path | None, batch_size: int = 50, timeout_s: float = 120.0,
              reclaim_idle_ms: int | None = None, profile: str | None = None,
              capacity: Sequence[float] = ()) -> Result:
    """Run every phase on `prefix` (its keys are deleted at the end) and return the figures. `reclaim_idle_ms`
    (default: the setting's) bounds how long an entry a stage left pending waits before it is tried again.
    `capacity`: after the steady phase, one more of `steady_s` at each of these fractions of the burst's rate."""
    settings = Settings(_env_file=None, redis_url=url, key_prefix=prefix,
                        consumer=f"bench-{os.getpid()}", log_format="json", log_level="error",
                        batch_size=batch_size)
    keys, redis = settings.keys, connect(url)
    steady_count = int(rate * steady_s)
    # The capacity phases' rates are known only after the burst: `rate` stands in for it. Taking more entries than
    # this only dates the last first reports a little later, and makes first reports once the articles run out.
    total = warm + burst + steady_count + int(sum(capacity) * rate * steady_s)
    mix = Mix(total, corpus_articles(corpus, total * MIX["corpus"] // 100 + 1))
    warm_entries, burst_entries, steady_entries = mix.take(warm), mix.take(burst), mix.take(steady_count)
    spawn = multiprocessing.get_context("spawn")
    stop, profile_stop = spawn.Event(), spawn.Event()
    worker = None
    try:
        await ensure_groups(redis, keys, STAGES)
        await HookRegistry(redis, keys).upsert([make_hook(settings, {
            "id": HOOK_ID, "url": "http://127.0.0.1:9/bench", "secret": "bench-secret-" + uuid.uuid4().hex})])
        tuning: dict[str, Any] = {"batch_size": batch_size}
        if reclaim_idle_ms:
            tuning["reclaim_idle_ms"] = reclaim_idle_ms
        worker = spawn.Process(target=_pipeline_worker, args=(url, prefix, tuning, stop, profile, profile_stop))
        worker.start()
        pid = worker.pid or 0
        await asyncio.sleep(1.0)
        warmed = await _pipeline_phase(redis, keys, "warm-up", warm_entries, None, pid, timeout_s)
        burst_phase = await _pipeline_phase(redis, keys, "burst", burst_entries, None, pid, timeout_s)
        profile_stop.set()
        steady = await _pipeline_phase(redis, keys, "steady", steady_entries, rate, pid, timeout_s)
        swept = []
        for fraction in capacity:
            pace = max(1.0, burst_phase.rate * fraction)
            swept.append(await _pipeline_phase(redis, keys, f"{fraction:.0%} of burst", mix.take(int(pace * steady_s)),
                                               pace, pid, timeout_s))
        worker_rss = _process_figures(pid)[1:]
        written = sum((phase.kinds for phase in [warmed, burst_phase, steady, *swept]), Counter[str]())
        accounts = await _accounts(redis, keys, written)
        redis_memory = int((await redis.info("memory"))["used_memory"])
        stop.set()
        worker.join(timeout=30)
        relay, relay_rss = await _relay_phases(
            redis, url, prefix, [e.raw.model_dump_json() for e in burst_entries],
            [e.raw.model_dump_json() for e in steady_entries], rate, batch_size, timeout_s)
        return Result(prefix, written, [warmed, burst_phase, steady], relay, accounts, swept, worker_rss, relay_rss,
                      redis_memory)
    finally:
        stop.set()
        if worker is not None and worker.pid is not None:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
        await delete_prefix(redis, prefix)
        await redis.aclose()


# --- printing --------------------------------------------------------------------------------------------------------


def _latency(values: Sequence[float]) -> str:
    if not values:
        return "no change events"
    return (f"p50 {_percentile(values, 0.5):.0f}, p99 {_percentile(values, 0.99):.0f}, "
            f"p999 {_percentile(values, 0.999):.0f}, max {max(values):.0f} ms ({len(values)} entries)")


def _lags(phase: Phase) -> str:
    return ", ".join(f"{stage} max {max(s, default=0)} mean {statistics.fmean(s) if s else 0:.0f}"
                     for stage, s in phase.lags.items())


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def report(result: Result, profile: str | None = None) -> None:
    warm, burst, steady = result.phases
    relay_burst, relay_steady = result.relay
    print(f"mix       {', '.join(f'{kind} {n}' for kind, n in sorted(result.mix.items(), key=lambda i: -i[1]))}")
    print(f"warm-up   {warm.entries} entries in {warm.seconds:.1f} s ({warm.rate:.0f}/s)"
          + ("" if warm.drained else "  NOT DRAINED"))
    for phase in (burst, steady):
        per_entry = 1e6 / phase.entries if phase.entries else 0.0
        shape = "all at once" if phase is burst else (
            f"written at {phase.entries / max(phase.writing_s, 1e-9):.0f}/s"
            + (f" (STOPPED EARLY: the backlog passed {BEHIND_S:.0f} s of entries)" if phase.behind else ""))
        print(f"{phase.name:9} {phase.entries} entries {shape}: {phase.rate:.0f} updates/s through dedup, tracker "
              f"and notifier in one process ({phase.seconds:.1f} s to drain)" + (
                  "" if phase.drained else f"  NOT DRAINED: {phase.finished} finished in the time allowed"))
        print(f"          latency raw → changes: {_latency(phase.latency_ms)}")
        print(f"          stage lag (entries): {_lags(phase)}")
        print(f"          CPU per entry: {phase.worker_cpu * per_entry:.0f} µs in the pipeline process + "
              f"{phase.server_cpu * per_entry:.0f} µs in Redis")
    print(f"relay     burst {relay_burst.rate:.0f} updates/s through {len(STAGES)} hops (bare redis-py XREADGROUP → "
          f"XADD → XACK, batches of the same size); steady latency: {_latency(relay_steady.latency_ms)}")
    ratio = burst.rate / relay_burst.rate if relay_burst.rate else 0.0
    print(f"ratio     pipeline / relay = {ratio:.3f} (burst)")
    print(f"memory    pipeline process RSS {_mb(result.worker_rss[0])} (peak {_mb(result.worker_rss[1])}); relay "
          f"process {_mb(result.relay_rss[0])}; Redis used_memory {_mb(result.redis_memory)} (whole server)")
    a = result.accounts
    sets = a.place_sets or [0]
    sizes = a.state_sizes or [0]
    print(f"incidents {a.incidents} stored, state {statistics.fmean(sizes) / 1e3:.1f} kB mean, "
          f"{max(sizes) / 1e3:.0f} kB largest; incidents indexed per place (the candidates a report there loads): "
          f"mean {statistics.fmean(sets):.1f}, max {max(sets)}, over {len(a.place_sets)} places")
    print(f"accounts  raw {a.raw} = updates {a.updates} + repeats {a.repeats} ({a.repeats_sent} sent); verdicts "
          f"{dict(sorted(a.verdicts.items()))}; backlog {a.backlog}; changes {a.changes}, queued for the hook "
          f"{a.queued}; dead letters {a.dead_letters}: {'every entry accounted for' if a.complete else 'INCOMPLETE'}")
    if result.capacity:
        _report_capacity(result.capacity)
    met_rate = burst.rate >= TARGET_RATE
    p99 = _percentile(steady.latency_ms, 0.99)
    print(f"targets   >= {TARGET_RATE:.0f} updates/s sustained: {'MET' if met_rate else 'NOT MET'} "
          f"({burst.rate:.0f}); p99 < {TARGET_P99_MS:.0f} ms at {steady.written_rate:.0f}/s: "
          f"{'MET' if steady.held else 'NOT MET'} ({p99:.0f} ms)")
    if profile:
        _print_profile(profile)


def _report_capacity(phases: Sequence[Phase]) -> None:
    for phase in phases:
        print(f"capacity  {phase.name}: {phase.written_rate:.0f}/s for {phase.seconds:.1f} s, latency "
              f"{_latency(phase.latency_ms)}, lag {_lags(phase)}: p99 < {TARGET_P99_MS:.0f} ms "
              + ("held" if phase.held else "NOT held" + (" (stopped early: behind)" if phase.behind else "")))
    best = capacity_at_target(phases)
    print(f"capacity  p99 < {TARGET_P99_MS:.0f} ms "
          + (f"held up to {best:.0f} updates/s" if best else "held at none of the rates tried"))


def _print_profile(path: str, top: int = 25) -> None:
    stats = pstats.Stats(path)
    services = str(ROOT / "services") + os.sep
    rows = [(ct, nc, tt, f"{Path(file).relative_to(ROOT)}:{line} {name}")
            for (file, line, name), (_, nc, tt, ct, _) in stats.stats.items()  # type: ignore[attr-defined]
            if file.startswith(services)]
    print(f"profile   the pipeline process under cProfile through warm-up and burst, top {top} functions of "
          "services/ by cumulative time:")
    for ct, nc, tt, where in sorted(rows, reverse=True)[:top]:
        print(f"          {ct:7.2f} s cum  {tt:6.2f} s own  {nc:8d} calls  {where}")


async def _delete(url: str, prefix: str) -> None:
    if not prefix.startswith("livedesk-bench:"):
        raise SystemExit(f"refusing to delete {prefix!r}: not a livedesk-bench:<hex> prefix")
    redis = connect(url)
    try:
        print(f"cleanup   deleted {await delete_prefix(redis, prefix)} keys under {prefix}:")
    finally:
        await redis.aclose()


QUICK = {"warm": 100, "burst": 300, "rate": 100.0, "steady_s": 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: " + ", ".join(
        f"--{name.replace('_', '-')} {value:g}" for name, value in QUICK.items()))
    parser.add_argument("--warm", type=int, default=1000, help="entries through the pipeline before measuring")
    parser.add_argument("--burst", type=int, default=3000, help="entries written at once")
    parser.add_argument("--rate", type=float, default=500.0, help="entries/s of the steady phase")
    parser.add_argument("--steady-s", type=float, default=10.0, help="seconds of the steady phase")
    parser.add_argument("--batch-size", type=int, default=50, help="LIVEDESK_BATCH_SIZE of the stages and the relay")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="longest wait for a phase to drain")
    parser.add_argument("--corpus", default=str(CORPUS) if CORPUS.is_dir() else None,
                        help="replay archive whose articles are part of the mix")
    parser.add_argument("--no-corpus", action="store_true", help="synthetic entries only")
    parser.add_argument("--profile", metavar="FILE", help="profile the pipeline process through the burst into FILE")
    parser.add_argument("--capacity", action="store_true", help="after the steady phase, one more at each of "
                        + ", ".join(f"{f * 100:.0f}%%" for f in CAPACITY_FRACTIONS) + " of the burst's rate, "
                        "to find the highest rate at which the p99 target holds")
    parser.add_argument("--delete", metavar="PREFIX", help="only delete the keys a killed run left under PREFIX")
    parser.add_argument("--redis-url", default=os.environ.get("LIVEDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if args.delete:
        asyncio.run(_delete(args.redis_url, args.delete))
        return
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    prefix = f"livedesk-bench:{uuid.uuid4().hex[:12]}"
    corpus = None if args.no_corpus or not args.corpus else Path(args.corpus)
    print(f"pipeline benchmark: warm-up {args.warm}, burst {args.burst}, steady "
          f"{args.rate:g}/s for {args.steady_s:g} s, corpus {corpus or 'none'}, batch {args.batch_size}, "
          f"prefix {prefix}")
    try:
        result = asyncio.run(run(args.redis_url, prefix, warm=args.warm, burst=args.burst,
                                 rate=args.rate, steady_s=args.steady_s, corpus=corpus, batch_size=args.batch_size,
                                 timeout_s=args.timeout_s, profile=args.profile,
                                 capacity=CAPACITY_FRACTIONS if args.capacity else ()))
    except KeyboardInterrupt:
        asyncio.run(_delete(args.redis_url, prefix))
        raise
    report(result, args.profile)
    print(f"cleanup   deleted the keys under {prefix}:")


if __name__ == "__main__":
    main()
