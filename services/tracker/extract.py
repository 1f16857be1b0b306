"""Fact extraction: what one title + text states about an incident. Pure functions, no I/O.

Contract: `extract(title, text)` returns the `Facts` the text states, each value with the sentence that stated it
(at most 300 characters) as its evidence snippet. The title counts as the first sentence. A field the text says
nothing about is None or empty. Where a text states one field several times the latest-stated value wins ("initially
critical … now non-life-threatening" is `stable`), except that a value the text marks as background ("he was initially
in a critical condition", "a cordon was initially put in place") counts only when nothing current is stated.
Counts are cumulative and take the highest number stated, or of people listed together ("a father and son were found
shot dead"), in the first `STORY_SENTENCES` sentences; where neither is, they are the people stated dead (or hurt and
alive) one by one, the first and those the text sets beside them (`casualties.deaths`, `casualties.wounded`), marked
`inferred`; so is a single arrest or charge named without a number. A death is final: no later sentence makes the
person alive again. A text that is not about an incident (sport, weather, recruitment, awards) gives
`is_incident=False` and nothing but its `places`.

The rules are keyword and pattern tables (`services.tracker.patterns`, `services.tracker.places`) for UK police and
news phrasing and common US phrasing: honest about what they match and nothing more.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TypeVar

from schemas import Category, Condition, InvestigationBody, InvestigationKind, InvestigationStatus, Location
from services.tracker import patterns as p
from services.tracker.casualties import Hit, casualties, deaths, settled, wounded
from services.tracker.facts import CasualtyFact, Facts, InvestigationFact, Stated, StatementFact
from services.tracker.places import UK, US, Place, find_places, find_street, in_context

V = TypeVar("V")

SNIPPET_CHARS = 300
# How many sentences (the title first) tell the story itself; later ones often give background ("20 people were shot
# in the city last weekend").
LEAD_SENTENCES = 4
# How many sentences count casualties: a long article ends with background on other incidents ("SANTA CRUZ COUNTY
# HOMICIDES 2016 Jan. 5: … shot to death"), a sidebar or a city's weekend toll.
STORY_SENTENCES = 10
LOCATION_LEAD_SENTENCES = 3  # the headline and the first two sentences
_SPACE = re.compile(r"\s+")
# A sentence ends at . ! or ? (perhaps inside a closing quote) before a capital, digit or opening quote; a line break
# always ends one, so headings and paragraphs stay apart.
_SENTENCE_BREAK = re.compile(r"\s*\n\s*|(?:(?<=[.!?])|(?<=[.!?][\"”’']))\s+(?=[\"“‘'(]?[A-Z0-9])")
# A US state after a place is abbreviated ("MACON, Ga. (AP) —"), and ends no sentence.
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Insp|Det|Supt|Sgt|Con|No|approx|Jr|Sr|Lt|Col|Capt|Gov|Sen)|"
                           r"\b(?:[A-Z]\.){2,}|,\s(?:Ala|Ariz|Ark|Calif|Colo|Conn|Del|Fla|Ga|Ill|Ind|Kan|Kans|Ky|La|Md|"
                           r"Mass|Mich|Minn|Miss|Mo|Mont|Neb|Nev|Okla|Ore|Pa|Tenn|Vt|Va|Wash|Wis|Wisc|Wyo))\.?$")


# Enough of a sentence's end to find `_ABBREVIATION` in: its matches are a few characters long, save a run of
# initials ("U.S."), which has no space in it and so never reaches back past the last piece joined to the sentence.
_ABBREVIATION_REACH = 16


def split_sentences(title: str, text: str) -> list[str]:
    """The title, then the sentences of `text`, whitespace collapsed; empty pieces dropped."""
    head = [_SPACE.sub(" ", title).strip()] if title.strip() else []
    sentences: list[list[str]] = []  # each sentence of `text` as the pieces it is joined from
    for piece in _SENTENCE_BREAK.split(text):
        piece = _SPACE.sub(" ", piece).strip()
        if not piece:
            continue
        if sentences and _ends_in_abbreviation(sentences[-1]):
            sentences[-1].append(piece)
        else:
            sentences.append([piece])
    return head + [" ".join(pieces) for pieces in sentences]


def _ends_in_abbreviation(pieces: Sequence[str]) -> bool:
    """Whether the sentence `" ".join(pieces)` ends in an abbreviation (`_ABBREVIATION`), reading only as many of
    its last pieces as `_ABBREVIATION_REACH` needs: a sentence joined from thousands of pieces is not reread at each."""
    last = len(pieces) - 1
    tail = pieces[last]
    while len(tail) < _ABBREVIATION_REACH and last > 0:
        last -= 1
        tail = f"{pieces[last]} {tail}"
    return _ABBREVIATION.search(tail) is not None


def _snip(sentence: str) -> str:
    return sentence if len(sentence) <= SNIPPET_CHARS else sentence[: SNIPPET_CHARS - 1].rstrip() + "…"


_WORD = re.compile(r"[\w']+")


def _words_before(sentence: str, start: int, count: int) -> list[str]:
    """The last `count` words of `sentence[:start]` (`_WORD`), read from a window before `start` that is widened
    until it holds a word more than that (its first may be cut), or the whole prefix."""
    width = 64
    while True:
        low = max(0, start - width)
        words = _WORD.findall(sentence, low, start)
        if low == 0 or len(words) > count:
            return words[-count:]
        width *= 2


def _negated(sentence: str, start: int, *, conditional: bool = False) -> bool:
    """Whether one of the four words before `start` negates what follows ("not being treated as terror-related");
    `conditional` counts "if" and "whether" too ("not able to say if the man had died")."""
    words = " ".join(_words_before(sentence, start, 4))
    return p.NEGATION.search(words) is not None or (conditional and p.CONDITIONAL.search(words) is not None)


# How far past its start `CLAUSE_BREAK` reads to match ("subsequently" and the word boundary after it), with room
# to spare: a break that starts further than this before a point is found alike in the sentence and in the sentence
# cut at that point.
_CLAUSE_BREAK_REACH = 32


class _Clauses:
    """The clause breaks (`patterns.CLAUSE_BREAK`) of one sentence, each found once and looked up by position, so
    that a sentence with thousands of matches is not rescanned for each; read only as far as a lookup needs."""

    def __init__(self, sentence: str) -> None:
        self.sentence = sentence
        self._unread: Iterator[re.Match[str]] | None = p.CLAUSE_BREAK.finditer(sentence)
        self.starts: list[int] = []
        self.ends: list[int] = []
        # Whether a clause (start, end) says it is background (`patterns.HISTORICAL`): many matches share one.
        self.historical: dict[tuple[int, int], bool] = {}

    def _read_past(self, position: int) -> None:
        """Read breaks up to the first that starts at or after `position`, or the last."""
        while self._unread is not None and (not self.starts or self.starts[-1] < position):
            found = next(self._unread, None)
            if found is None:
                self._unread = None
            else:
                self.starts.append(found.start())
                self.ends.append(found.end())

    def start_before(self, end: int) -> int:
        """Where the clause of a match ending at `end` starts: the end of the last break found in the sentence cut
        at `end` (0 if none). Cut, a break can end where a longer one went on ("where" of "whereas")."""
        self._read_past(end)
        found = bisect_left(self.starts, end - _CLAUSE_BREAK_REACH)
        resume = self.ends[found - 1] if found else 0
        # Breaks further back are found alike in the whole and the cut sentence; the rest are found in the cut one.
        last = resume
        for m in p.CLAUSE_BREAK.finditer(self.sentence, max(resume, end - _CLAUSE_BREAK_REACH), end):
            last = m.end()
        return last

    def end_after(self, end: int) -> int:
        """Where the clause of a match ending at `end` ends: the start of the first break at or after `end`, as
        `CLAUSE_BREAK.search(sentence, end)` finds it (the sentence's length if none)."""
        self._read_past(end)
        following = bisect_left(self.starts, end)
        if following and self.ends[following - 1] > end:
            # A break runs across `end`: the positions inside it after `end` were never tried on their own.
            for position in range(end, self.ends[following - 1]):
                if p.CLAUSE_BREAK.match(self.sentence, position):
                    return position
        return self.starts[following] if following < len(self.starts) else len(self.sentence)


@lru_cache(maxsize=1024)
def _clauses(sentence: str) -> _Clauses:
    """The clauses of `sentence`, remembered across the rule tables a text's sentences are read for."""
    return _Clauses(sentence)


def _historical(sentence: str, start: int, end: int) -> bool:
    """Whether the clause of a match marks it as background ("he was initially in a critical condition", "had been
    in a critical condition", "was taken to hospital in a critical condition when …")."""
    clauses = _clauses(sentence)
    clause_start, clause_end = clauses.start_before(end), clauses.end_after(end)
    historical = clauses.historical.get((clause_start, clause_end))
    if historical is None:
        historical = p.HISTORICAL.search(sentence[clause_start:clause_end]) is not None
        clauses.historical[clause_start, clause_end] = historical
    return historical or _led_as_background(sentence, clause_start, start)


# `patterns.HISTORICAL_LEAD` spans a dozen words at most, so in a sentence (its spaces single, as `split_sentences`
# leaves them) a match of it starts after the last this many spaces before its end, or nowhere.
_HISTORICAL_LEAD_WORDS = 24
_SHORT_CLAUSE_CHARS = 200  # searched whole: quicker than counting its spaces


def _led_as_background(sentence: str, clause_start: int, start: int) -> bool:
    """Whether the clause from `clause_start` ends at `start` in words that make what follows background
    (`patterns.HISTORICAL_LEAD`), reading only the clause's last words: one long clause is not reread for each of
    its matches."""
    if start - clause_start <= _SHORT_CLAUSE_CHARS:
        return p.HISTORICAL_LEAD.search(sentence[clause_start:start]) is not None
    low = start
    for _ in range(_HISTORICAL_LEAD_WORDS):
        low = sentence.rfind(" ", clause_start, low)
        if low < 0:
            return p.HISTORICAL_LEAD.search(sentence[clause_start:start]) is not None
    # Right after a space, a word starts alike in the sentence and in the clause cut out of it.
    return p.HISTORICAL_LEAD.search(sentence, low + 1, start) is not None


def _overlaps(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    """Whether (start, end) overlaps one of `spans` (in order, no two overlapping): one that starts before `end` and
    ends after `start`. A lookup, not a pass over them all."""
    # Spans in order of start that do not overlap end in order too, so the last to start before `end` ends last.
    before = bisect_left(spans, (end,))
    return before > 0 and spans[before - 1][1] > start


def _hits(rules: Sequence[p.Rule[V]], sentences: Sequence[str]) -> list[Hit[V]]:
    """Every match of `rules`, in text order; an earlier rule's match shadows later rules' overlapping matches."""
    hits: list[Hit[V]] = []
    screens = [p.screen(rule.pattern) for rule in rules]
    folded_sentences = [p.folded(sentence) for sentence in sentences]
    # Each sentence is tried only with the rules that could match it.
    tried = p.by_sentence(screens, folded_sentences)
    for i, (sentence, folded) in enumerate(zip(sentences, folded_sentences, strict=True)):
        taken: list[tuple[int, int]] = []  # in order
        for k in tried[i]:
            rule, screen = rules[k], screens[k]
            for m in screen.unscreened_places(sentence, folded):  # positions only are read
                if _overlaps(taken, m.start(), m.end()):
                    continue
                if rule.negatable and _negated(sentence, m.start(), conditional=isinstance(rule.value, Condition)):
                    continue
                insort(taken, m.span())
                # A death is final: never background to a later condition.
                historical = rule.value is not Condition.deceased and _historical(sentence, m.start(), m.end())
                hits.append(Hit(i, m.start(), m.end(), rule.value, historical))
    return sorted(hits, key=lambda h: (h.sentence, h.end))


def _latest(rules: Sequence[p.Rule[V]], sentences: Sequence[str]) -> Stated[V] | None:
    """The latest value stated, background values only where there is nothing else."""
    hits = settled(_hits(rules, sentences))
    return Stated(hits[-1].value, _snip(sentences[hits[-1].sentence])) if hits else None


# --- is it an incident, and of what kind -----------------------------------------------------------------------------


def _has_event(sentences: Sequence[str], conditions: Sequence[Hit[Condition]]) -> bool:
    """Whether the text reports something happening to someone: a casualty, a police event, a person's condition
    (`conditions`: the text's `CONDITION_RULES` hits)."""
    cue = any(not _negated(sentence, m.start()) for sentence in sentences for m in p.finditer(p.EVENT_CUE, sentence))
    # A stated condition is an event even when negated: "no longer life-threatening" is still about a casualty.
    return cue or bool(conditions)


def _off_topic(sentences: Sequence[str]) -> bool:
    cues = {m.group().lower() for sentence in sentences for m in p.finditer(p.OFF_TOPIC_CUE, sentence)}
    return len(cues) >= 2


def _category(sentences: Sequence[str]) -> Stated[Category] | None:
    """The first category named; a generic assault, and a fire service at work, give way to any more specific kind
    named in the same text ("firefighter shot" is a shooting)."""
    hits = sorted(_hits(p.CATEGORY_RULES, sentences), key=lambda h: (h.sentence, h.start))
    specific = [h for h in hits if h.value is not Category.assault
                and not p.FIRE_SERVICE.match(sentences[h.sentence][h.start : h.end])]
    specific = specific or [h for h in hits if h.value is not Category.assault]
    chosen = specific[0] if specific else hits[0] if hits else None
    return Stated(chosen.value, _snip(sentences[chosen.sentence])) if chosen else None


# --- where -----------------------------------------------------------------------------------------------------------


def _location(sentences: Sequence[str], headline: bool) -> tuple[Stated[Location] | None, frozenset[str]]:
    """The most specific place named (first named among equals), its street if given, and every place named. In a
    text that names more US places than UK ones, UK names are homonyms ("Aberdeen, South Dakota") or noise."""
    found = [(i, place, sentence) for i, sentence in enumerate(sentences)
             for _, place in find_places(sentence, headline=i == 0 and headline)]
    placed = in_context([place for _, place, _ in found])
    found = [(i, place, sentence) for (i, _, sentence), place in zip(found, placed, strict=True)]
    countries = Counter(place.country for _, place, _ in found)
    if countries[US] > countries[UK]:
        found = [(i, place, sentence) for i, place, sentence in found if place.country != UK]
    names = {place.name.lower() for _, place, _ in found}
    # The headline and the lead say where it happened; a place named only further down is more often background
    # ("it comes hours after a man was shot in Walthamstow").
    lead = [(place, sentence) for i, place, sentence in found if i < LOCATION_LEAD_SENTENCES]
    best: tuple[Place, str] | None = None
    for place, sentence in lead or [(place, sentence) for _, place, sentence in found]:
        if best is None or place.rank > best[0].rank:
            best = (place, sentence)
    street: str | None = None
    for sentence in sentences:
        found_street = find_street(sentence)
        if found_street:
            names.add(found_street.lower())
            street = street or found_street
    if best is not None:
        place, sentence = best
        location = Location(name=place.name, region=place.region, street=street, lat=place.lat, lon=place.lon)
        return Stated(location, _snip(sentence)), frozenset(names)
    if street is not None:
        snippet = next(s for s in sentences if street in s)
        return Stated(Location(name=street), _snip(snippet)), frozenset(names)
    return None, frozenset(names)


# --- how many --------------------------------------------------------------------------------------------------------


def _number(m: re.Match[str]) -> int:
    """The count a match states: its number or ordinal; else none ("no arrests") or one ("a man was arrested")."""
    groups = m.groupdict()
    if groups.get("ord"):
        return p.ORDINALS[groups["ord"].lower()]
    if groups.get("n"):
        word = groups["n"].lower()
        return p.NUMBER_WORDS.get(word) or p.MULTIPLES.get(word) or int(word)
    return 0 if p.NEGATION.match(m.group()) else 1


@lru_cache(maxsize=4096)
def _tally(sentence: str) -> bool:
    """Whether `sentence` counts over a period (`patterns.TALLY`); asked of each sentence by every count."""
    return p.screen(p.TALLY).first_place(sentence, p.folded(sentence)) is not None


def _stated_matches(patterns: Iterable[re.Pattern[str]],
                    sentences: Sequence[str]) -> Iterator[tuple[str, re.Pattern[str], re.Match[str]]]:
    """Each match of `patterns` with its sentence and its pattern, in order, that no negation turns around; sentences
    counting over a period (`patterns.TALLY`: "so far this year") are skipped. A match's strings may be folded
    (`patterns.Screen.places`): read them ignoring case, or cut the sentence at its positions."""
    screens = [p.screen(pattern) for pattern in patterns]
    folded_sentences = [p.folded(sentence) for sentence in sentences]
    for sentence, folded, tried in zip(sentences, folded_sentences, p.by_sentence(screens, folded_sentences),
                                       strict=True):
        if not tried or _tally(sentence):
            continue
        for k in tried:
            screen = screens[k]
            for m in screen.unscreened_places(sentence, folded):
                if not _negated(sentence, m.start()):
                    yield sentence, screen.pattern, m


def _count(patterns: Iterable[re.Pattern[str]], sentences: Sequence[str]) -> Stated[int] | None:
    """The highest count stated: counts are cumulative, so "a second man has been arrested" means two."""
    best: Stated[int] | None = None
    for sentence, _, m in _stated_matches(patterns, sentences):
        if _an_age(sentence, m):
            continue
        value = _number(m) + bool(m.groupdict().get("self"))
        if best is None or value > best.value:
            # "A man has been arrested" names one arrest, not the total: like a count of people named one by one, it
            # never lowers a count.
            best = Stated(value, _snip(sentence), inferred=value == 1 and not _states_a_number(m))
    return best


# A number right after a name is an age: "Dennie Reeves, 66 and Ginger Reeves, 64 were found dead".
_AFTER_A_NAME = re.compile(
    r"\b[A-Z][a-z]+\s+(?!(?:Shot|Killed|Dead|Wounded|Injured|Hurt|Stabbed)\b)[A-Z][\w'’-]*(?:\s+(?:Jr|Sr)\.?)?,\s*$"
)


def _an_age(sentence: str, m: re.Match[str]) -> bool:
    number = m.groupdict().get("n") or ""
    return number.isdigit() and bool(_AFTER_A_NAME.search(sentence, 0, m.start("n")))


def _states_a_number(m: re.Match[str]) -> bool:
    return any(m.groupdict().get(group) for group in ("n", "ord"))


def _higher(a: Stated[int] | None, b: Stated[int] | None) -> Stated[int] | None:
    return b if a is None or (b is not None and b.value > a.value) else a


def _listed_dead(sentences: Sequence[str]) -> Stated[int] | None:
    """The most people a sentence lists and states dead together ("a man, his wife and two sons were found dead"),
    a killer named last among them ("… then himself") included."""
    best: Stated[int] | None = None
    for sentence, pattern, m in _stated_matches((*p.LISTED_DEAD, p.NAMED_DEAD), sentences):
        if pattern is p.NAMED_DEAD:
            # Names are told by their capitals: read from the sentence, not from a match's folded strings.
            listed = len(p.NAMED_PERSON.findall(sentence, m.start("list"), m.end("list")))
        else:
            listed = _listed(m) + bool(m.groupdict().get("self"))
        best = _higher(best, Stated(listed, _snip(sentence)))
    return best


# People shot besides the dead: "two other people were shot", "two others", "three more".
_NOT_THE_DEAD = re.compile(r"\b(?:others?|more)\b", re.IGNORECASE)
_TWO_OR_MORE = re.compile(r"\b(?:couple|parents|children|kids)\b", re.IGNORECASE)


def _listed(m: re.Match[str]) -> int:
    """How many people the `list` group of a match names: one per item, or its number; a couple, parents or
    children without a number are two."""
    return sum(_number(item) if item.group("n") else 2 if _TWO_OR_MORE.search(item.group()) else 1
               for item in p.LISTED_PERSON.finditer(m.group("list")))


def _dead(sentences: Sequence[str], people: Sequence[CasualtyFact]) -> Stated[int] | None:
    """The highest number of dead stated, or listed ("a father and son were killed"); where the text states neither,
    the people it states dead one by one ("a man was shot dead")."""
    counted = _higher(_count(p.DEAD_PATTERNS, sentences), _listed_dead(sentences))
    if counted is not None:
        return counted
    return deaths(people)


def _injured(sentences: Sequence[str], dead: Stated[int] | None, people: Sequence[CasualtyFact]) -> Stated[int] | None:
    """The highest number of injured stated. The people an ordinal counts on include the dead: "a man was shot dead …
    a second man was injured" is one injured. Where no number of injured is stated, the people the title or lead
    says were shot or stabbed (by number or listed), less the dead: "seven shot, one dead" is six injured, but "two
    other people were shot" are not the dead. Where nothing gives a number above none, the people hurt one by one
    (`casualties.wounded`: "no one else was hurt" leaves the man shot), else one who shot themselves."""
    best: Stated[int] | None = None
    dead_labels = {c.label for c in people if c.condition and c.condition.value is Condition.deceased}
    for sentence, _, m in _stated_matches(p.INJURED_PATTERNS, sentences):
        value = _number(m)
        if m.groupdict().get("ord"):
            # "Three people were shot dead and a fourth person wounded": the ones before it are the dead.
            others = len({label for label in dead_labels if not label.startswith(m.group("ord").lower())})
            value -= max(others, dead.value if dead and value > dead.value else 0)
        best = _higher(best, Stated(value, _snip(sentence)))
    died = dead.value if dead else 0
    for sentence, pattern, m in _stated_matches((*p.HIT_PATTERNS, p.LISTED_HIT), sentences[:LEAD_SENTENCES]):
        hit = _listed(m) if pattern is p.LISTED_HIT else _number(m)
        alive = hit if _NOT_THE_DEAD.search(m.group()) else hit - died
        if alive > 0:
            best = _higher(best, Stated(alive, _snip(sentence)))
    if best is not None and best.value > 0:
        return best
    # "No one else was hurt" leaves the person the text names hurt.
    return wounded(people, deaths_stated=died > 0) or _shot_themselves(sentences[:LEAD_SENTENCES], died) or best


def _shot_themselves(sentences: Sequence[str], died: int) -> Stated[int] | None:
    """One person hurt where the lead tells of someone who shot themselves and of no death ("a teen shot himself in
    the leg")."""
    if died:
        return None
    sentence = next((s for s in sentences if p.search(p.SELF_INFLICTED, s) and not _tally(s)), None)
    return Stated(1, _snip(sentence), inferred=True) if sentence is not None else None


# --- investigations --------------------------------------------------------------------------------------------------


def _stated(pattern: re.Pattern[str], sentence: str) -> re.Match[str] | None:
    """The first match of `pattern` in `sentence` that no negation turns around."""
    return next((m for m in p.finditer(pattern, sentence) if not _negated(sentence, m.start())), None)


def _investigations_in(sentence: str) -> Iterable[tuple[InvestigationBody, InvestigationKind | None, bool | None]]:
    """(body, kind or None when unsaid, closed) for each investigation the sentence reports as opened or closed;
    closed is None where the sentence rules the investigation out ("it is not a criminal investigation", "no inquest
    will be held", "not being treated as suspicious")."""
    closed = _stated(p.CLOSED, sentence) is not None
    ongoing = not closed and p.search(p.CLOSED, sentence) is not None  # "has not concluded its investigation"
    if p.search(p.HEDGED, sentence) and not closed:
        return
    if p.search(p.IOPC, sentence) and p.search(p.INVESTIGATION, sentence):
        opened = p.search(p.OPENED, sentence)
        if closed or ongoing or (opened and not _negated(sentence, opened.start())):
            kind = (InvestigationKind.criminal if _stated(p.CRIMINAL, sentence)
                    else InvestigationKind.misconduct if p.search(p.MISCONDUCT, sentence) else None)
            yield InvestigationBody.IOPC, kind, closed
    elif p.search(p.NOT_SUSPICIOUS, sentence):
        yield InvestigationBody.police, None, None
    elif _stated(p.MURDER, sentence):
        yield InvestigationBody.police, InvestigationKind.murder, closed
    elif _stated(p.CRIMINAL, sentence) or p.search(p.POLICE_INVESTIGATING, sentence):
        yield InvestigationBody.police, InvestigationKind.criminal, closed
    elif p.search(p.MURDER, sentence) or p.search(p.CRIMINAL, sentence):
        yield InvestigationBody.police, None, None
    elif (_stated(p.INVESTIGATION_LAUNCHED, sentence)
          and not any(p.search(found, sentence) for *_, found in _OTHER_BODIES)):
        yield InvestigationBody.police, None, closed
    for body, kind, pattern in _OTHER_BODIES:
        found = p.search(pattern, sentence)
        if found is None or (body is InvestigationBody.HSE and not p.search(p.INVESTIGATION, sentence)):
            continue
        yield body, kind, None if _negated(sentence, found.start()) else closed


_OTHER_BODIES = (
    (InvestigationBody.fire_service, InvestigationKind.fire, p.FIRE_INVESTIGATION),
    (InvestigationBody.HSE, InvestigationKind.other, p.HSE),
    (InvestigationBody.coroner, InvestigationKind.inquest, p.INQUEST),
)
# The patterns one of which a sentence matches when `_investigations_in` finds an investigation in it.
_NAMING_AN_INVESTIGATION = (p.IOPC, p.NOT_SUSPICIOUS, p.MURDER, p.CRIMINAL, p.POLICE_INVESTIGATING,
                            p.INVESTIGATION_LAUNCHED, *(pattern for *_, pattern in _OTHER_BODIES))
_DEFAULT_KIND = {InvestigationBody.IOPC: InvestigationKind.independent,
                 InvestigationBody.police: InvestigationKind.criminal}


def _investigations(sentences: Sequence[str]) -> list[InvestigationFact]:
    """One fact per body: the latest-stated status, the most recently named kind; ruled out, none."""
    found: dict[InvestigationBody, InvestigationFact] = {}
    if not p.anywhere(_NAMING_AN_INVESTIGATION, sentences):
        return []
    for sentence in sentences:
        for body, kind, closed in _investigations_in(sentence):
            previous = found.get(body)
            if closed is None:
                found.pop(body, None)
                continue
            status = InvestigationStatus.closed if closed else InvestigationStatus.open
            if kind is None and previous is not None and previous.status is status:
                continue  # "An investigation has been launched", after the murder investigation was named
            kind = kind or (previous.kind if previous else _DEFAULT_KIND.get(body, InvestigationKind.other))
            found[body] = InvestigationFact(body, kind, status, _snip(sentence))
    return list(found.values())


# --- who said what ---------------------------------------------------------------------------------------------------


def _clean_speaker(raw: str | None) -> str | None:
    """The speaker's name or title: `Chief Superintendent X, who leads…` → `Chief Superintendent X`."""
    if raw is None:
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    # Skip a leading clause such as "Speaking at the scene," and keep the first part that names someone.
    named = [part for part in parts if not p.NOT_A_NAME.match(part)]
    speaker = p.LEADING_ARTICLE.sub("", (named or parts or [""])[0])
    return None if not speaker or p.PRONOUN.match(speaker) else speaker


def _speaker(flat: str, quote: re.Match[str]) -> str | None:
    """Who said `quote`: named right after it (`"…," said X`) or right before it (`X said: "…"`)."""
    tail = flat[quote.end() : quote.end() + 120]
    # After a quote that ends its sentence ("….") the next words start a new sentence, not an attribution.
    if quote.group("quote").rstrip()[-1:] in {",", "?", "!", "—", "-"} or tail.startswith(","):
        after = p.SPEAKER_AFTER.match(tail)
        if after:
            return _clean_speaker(after.group("after") or after.group("before_verb"))
    before = p.SPEAKER_BEFORE.search(flat[max(0, quote.start() - 200) : quote.start()])
    return _clean_speaker(before.group("speaker")) if before else None


def _statements(text: str) -> list[StatementFact]:
    """Quoted speech of four words or more, with its speaker when the text attributes it."""
    flat = _SPACE.sub(" ", text)
    statements: list[StatementFact] = []
    previous_end = None
    for m in p.QUOTE.finditer(flat):
        quote = m.group("quote").strip().rstrip(",")
        if len(quote.split()) < 4:
            continue  # scare quotes and single words
        speaker = _speaker(flat, m)
        # A second quote straight after an attributed one continues it: `"…," said X. "…"`
        continues = previous_end is not None and m.start() - previous_end <= 160 and statements[-1].speaker is not None
        if speaker is None and continues:
            first = statements[-1].quote
            # The comma before "said" ended a sentence of speech.
            joined = f"{first} {quote}" if first[-1:] in {".", "?", "!"} else f"{first}. {quote}"
            statements[-1] = StatementFact(statements[-1].speaker, joined)
        else:
            statements.append(StatementFact(speaker, quote))
        previous_end = m.end()
    return statements


# --- entry point -----------------------------------------------------------------------------------------------------


def extract(title: str, text: str) -> Facts:
    """Everything `title` and `text` state about an incident (see the module docstring for the contract)."""
    sentences = split_sentences(title, text)
    location, places = _location(sentences, headline=bool(title.strip()))
    conditions = _hits(p.CONDITION_RULES, sentences)
    event = _has_event(sentences, conditions)
    category = _category(sentences)
    # Sport and weather name shots and floods; without a casualty or police event they are not incidents.
    if (category is None or _off_topic(sentences)) and not event:
        return Facts(is_incident=False, places=places)
    snippets = [_snip(sentence) for sentence in sentences]
    people = casualties(
        sentences, snippets, conditions, _hits(p.LIFE_CHANGING_RULES, sentences),
        headline=bool(title.strip()),
    )
    story = sentences[:STORY_SENTENCES]
    counted = [person for person in people if person.first_sentence < STORY_SENTENCES]
    dead = _dead(story, counted)
    return Facts(
        is_incident=True,
        category=category,
        location=location,
        places=places,
        casualties=people,
        dead=dead,
        injured=_injured(story, dead, counted),
        investigations=_investigations(sentences),
        cordon=_latest(p.CORDON_RULES, sentences),
        public_risk=_latest(p.PUBLIC_RISK_RULES, sentences),
        # Nobody is charged without being arrested first (or summoned, rarely for violence).
        arrests=_higher(_count(p.ARREST_PATTERNS, sentences), charges := _count(p.CHARGE_PATTERNS, sentences)),
        charges=charges,
        statements=_statements(text),
    )

