"""Fact extraction: what one title + text states about an incident. Pure functions, no I/O.

Contract: `extract(title, text)` returns the `Facts` the text states, each value with the sentence that stated it
(at most 300 characters) as its evidence snippet. The title counts as the first sentence. A field the text says
nothing about is None or empty. Where a text states one field several times the latest-stated value wins ("initially
critical … now non-life-threatening" is `stable`), except counts, which are cumulative and take the highest number
stated. A text that is not about an incident (sport, weather, recruitment, awards) gives `is_incident=False` and
nothing but its `places`.

The rules are keyword and pattern tables (`services.tracker.patterns`, `services.tracker.places`) for UK police and
news phrasing and common US phrasing: honest about what they match and nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from schemas import Category, InvestigationBody, InvestigationKind, InvestigationStatus, Location, Role
from services.tracker import patterns as p
from services.tracker.facts import CasualtyFact, Facts, InvestigationFact, Stated, StatementFact
from services.tracker.places import find_places, find_street

V = TypeVar("V")

SNIPPET_CHARS = 300
_SPACE = re.compile(r"\s+")
# A sentence ends at . ! or ? (perhaps inside a closing quote) before a capital, digit or opening quote; a line break
# always ends one, so headings and paragraphs stay apart.
_SENTENCE_BREAK = re.compile(r"\s*\n\s*|(?:(?<=[.!?])|(?<=[.!?][\"”’']))\s+(?=[\"“‘'(]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Insp|Det|Supt|Sgt|Con|No|approx|Jr|Sr|Lt|Col|Capt|Gov|Sen)|"
                           r"\b(?:[A-Z]\.){2,})\.?$")
# Where mentions of one person give different roles, the strongest wins: a man shot by police stays the subject.
_ROLE_RANK = {Role.subject: 5, Role.officer: 4, Role.suspect: 3, Role.bystander: 2, Role.victim: 1, Role.unknown: 0}


@dataclass(frozen=True)
class _Hit(Generic[V]):
    """One rule match: where (sentence index, offsets) and what it states."""

    sentence: int
    start: int
    end: int
    value: V


def split_sentences(title: str, text: str) -> list[str]:
    """The title, then the sentences of `text`, whitespace collapsed; empty pieces dropped."""
    sentences = [_SPACE.sub(" ", title).strip()] if title.strip() else []
    for piece in _SENTENCE_BREAK.split(text):
        piece = _SPACE.sub(" ", piece).strip()
        if not piece:
            continue
        if len(sentences) > (1 if title.strip() else 0) and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def _snip(sentence: str) -> str:
    return sentence if len(sentence) <= SNIPPET_CHARS else sentence[: SNIPPET_CHARS - 1].rstrip() + "…"


def _negated(sentence: str, start: int) -> bool:
    """Whether one of the four words before `start` negates what follows ("not being treated as terror-related")."""
    words = re.findall(r"[\w']+", sentence[:start])[-4:]
    return p.NEGATION.search(" ".join(words)) is not None


def _hits(rules: Sequence[p.Rule[V]], sentences: Sequence[str]) -> list[_Hit[V]]:
    """Every match of `rules`, in text order; an earlier rule's match shadows later rules' overlapping matches."""
    hits: list[_Hit[V]] = []
    for i, sentence in enumerate(sentences):
        taken: list[tuple[int, int]] = []
        for rule in rules:
            for m in rule.pattern.finditer(sentence):
                if any(m.start() < end and start < m.end() for start, end in taken):
                    continue
                if rule.negatable and _negated(sentence, m.start()):
                    continue
                taken.append(m.span())
                hits.append(_Hit(i, m.start(), m.end(), rule.value))
    return sorted(hits, key=lambda h: (h.sentence, h.end))


def _latest(rules: Sequence[p.Rule[V]], sentences: Sequence[str]) -> Stated[V] | None:
    hits = _hits(rules, sentences)
    return Stated(hits[-1].value, _snip(sentences[hits[-1].sentence])) if hits else None


# --- is it an incident, and of what kind -----------------------------------------------------------------------------


def _has_event(sentences: Sequence[str]) -> bool:
    """Whether the text reports something happening to someone: a casualty, a police event, a person's condition."""
    cue = any(not _negated(sentence, m.start()) for sentence in sentences for m in p.EVENT_CUE.finditer(sentence))
    # A stated condition is an event even when negated: "no longer life-threatening" is still about a casualty.
    return cue or bool(_hits(p.CONDITION_RULES, sentences))


def _off_topic(sentences: Sequence[str]) -> bool:
    cues = {m.group().lower() for sentence in sentences for m in p.OFF_TOPIC_CUE.finditer(sentence)}
    return len(cues) >= 2


def _category(sentences: Sequence[str]) -> Stated[Category] | None:
    """The first category named; a generic assault gives way to any more specific kind named in the same text."""
    hits = sorted(_hits(p.CATEGORY_RULES, sentences), key=lambda h: (h.sentence, h.start))
    specific = [h for h in hits if h.value is not Category.assault]
    chosen = specific[0] if specific else hits[0] if hits else None
    return Stated(chosen.value, _snip(sentences[chosen.sentence])) if chosen else None


# --- where -----------------------------------------------------------------------------------------------------------


def _location(sentences: Sequence[str]) -> tuple[Stated[Location] | None, frozenset[str]]:
    """The most specific place named (first named among equals), its street if given, and every place named."""
    names: set[str] = set()
    best: tuple[int, str, str | None, str] | None = None
    street: str | None = None
    for sentence in sentences:
        for _, place in find_places(sentence):
            names.add(place.name.lower())
            if best is None or place.rank > best[0]:
                best = (place.rank, place.name, place.region, sentence)
        found_street = find_street(sentence)
        if found_street:
            names.add(found_street.lower())
            street = street or found_street
    if best is not None:
        _, name, region, sentence = best
        return Stated(Location(name=name, region=region, street=street), _snip(sentence)), frozenset(names)
    if street is not None:
        snippet = next(s for s in sentences if street in s)
        return Stated(Location(name=street), _snip(snippet)), frozenset(names)
    return None, frozenset(names)


# --- who -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mention:
    sentence: int
    start: int
    end: int
    label: str
    role: Role


def _label(m: re.Match[str]) -> str:
    noun = p.PERSON_NOUNS[m.group("noun").lower()]
    age = m.group("age") or m.group("aged")
    if age:
        years = p.NUMBER_WORDS.get(age.lower()) or int(age)
        noun = f"{years}-year-old {noun}"
    ordinal = m.group("ord")
    return f"{ordinal.lower()} {noun}" if ordinal else noun


def _role(before: str, after: str, police_shooting: bool) -> Role:
    """The role the words nearest a mention give: the first cue after it, else the last cue before it."""
    after_cue = p.ROLE_CUE.search(after)
    before_cues = list(p.ROLE_CUE.finditer(before))
    cue = after_cue or (before_cues[-1] if before_cues else None)
    if cue is None or cue.lastgroup is None:
        return Role.unknown
    if cue.lastgroup == "suspect":
        return Role.suspect
    if cue.lastgroup == "bystander":
        return Role.bystander
    return Role.subject if police_shooting else Role.victim


def _mentions(sentences: Sequence[str], police_shooting: bool) -> list[_Mention]:
    """Every person mentioned, with the role the words around the mention give them."""
    mentions: list[_Mention] = []
    for i, sentence in enumerate(sentences):
        found = list(p.PERSON.finditer(sentence))
        for k, m in enumerate(found):
            label = _label(m)
            if label.split()[-1] in p.OFFICER_LABELS:
                # An officer is a casualty only when hurt; an officer who acted is not one.
                if p.OFFICER_HURT.search(sentence):
                    mentions.append(_Mention(i, m.start(), m.end(), label, Role.officer))
                continue
            before = sentence[found[k - 1].end() if k else 0 : m.start()]
            after = sentence[m.end() : found[k + 1].start() if k + 1 < len(found) else len(sentence)]
            mentions.append(_Mention(i, m.start(), m.end(), label, _role(before, after, police_shooting)))
    return _resolve_ages(mentions)


def _resolve_ages(mentions: list[_Mention]) -> list[_Mention]:
    """"The man" after "a 34-year-old man" is the same person: bare nouns take the one aged label of that noun."""
    aged: dict[str, set[str]] = {}
    for m in mentions:
        if "-year-old " in m.label and m.label.split()[0] not in p.ORDINALS:
            aged.setdefault(m.label.rsplit(" ", 1)[-1], set()).add(m.label)
    resolved = []
    for m in mentions:
        candidates = aged.get(m.label, set())
        label = next(iter(candidates)) if len(candidates) == 1 else m.label
        resolved.append(_Mention(m.sentence, m.start, m.end, label, m.role))
    return resolved


def _owner(hit: _Hit[V], mentions: Sequence[_Mention], sentence: str) -> str | None:
    """Whom a stated condition is about: the nearest person before it in its sentence, else the first after it;
    else, unless the sentence is about several people, the last person of an earlier sentence ("He remains in
    hospital"), else an unnamed person."""
    same = [m for m in mentions if m.sentence == hit.sentence]
    before = [m for m in same if m.start <= hit.start]
    if before:
        return before[-1].label
    if same:
        return same[0].label
    if p.PLURAL_PEOPLE.search(sentence):
        return None
    earlier = [m for m in mentions if m.sentence < hit.sentence]
    return earlier[-1].label if earlier else "person"


def _by_owner(hits: list[_Hit[V]], mentions: Sequence[_Mention], sentences: Sequence[str]) -> dict[str, Stated[V]]:
    stated: dict[str, Stated[V]] = {}
    for hit in hits:  # in text order, so a later statement replaces an earlier one
        owner = _owner(hit, mentions, sentences[hit.sentence])
        if owner is not None:
            stated[owner] = Stated(hit.value, _snip(sentences[hit.sentence]))
    return stated


def _casualties(sentences: Sequence[str]) -> list[CasualtyFact]:
    police_shooting = any(p.POLICE_SHOOTING.search(s) for s in sentences)
    mentions = _mentions(sentences, police_shooting)
    conditions = _by_owner(_hits(p.CONDITION_RULES, sentences), mentions, sentences)
    life_changing = _by_owner(_hits(p.LIFE_CHANGING_RULES, sentences), mentions, sentences)
    roles: dict[str, Role] = {}
    for m in mentions:  # the strongest role any mention gives
        current = roles.get(m.label)
        if current is None or _ROLE_RANK[m.role] > _ROLE_RANK[current]:
            roles[m.label] = m.role
    labels = list(dict.fromkeys([*roles, *conditions, *life_changing]))
    return [
        CasualtyFact(label, roles.get(label, Role.unknown), conditions.get(label), life_changing.get(label))
        for label in labels
        if roles.get(label, Role.unknown) is not Role.unknown or label in conditions or label in life_changing
    ]


# --- how many --------------------------------------------------------------------------------------------------------


def _number(m: re.Match[str]) -> int:
    """The count a match states: its number or ordinal; else none ("no arrests") or one ("a man was arrested")."""
    groups = m.groupdict()
    if groups.get("ord"):
        return p.ORDINALS[groups["ord"].lower()]
    if groups.get("n"):
        word = groups["n"].lower()
        return p.NUMBER_WORDS[word] if word in p.NUMBER_WORDS else int(word)
    return 0 if p.NEGATION.match(m.group()) else 1


def _count(patterns: Iterable[re.Pattern[str]], sentences: Sequence[str]) -> Stated[int] | None:
    """The highest count stated: counts are cumulative, so "a second man has been arrested" means two."""
    best: Stated[int] | None = None
    for sentence in sentences:
        for pattern in patterns:
            for m in pattern.finditer(sentence):
                if _negated(sentence, m.start()):
                    continue
                value = _number(m)
                if best is None or value > best.value:
                    best = Stated(value, _snip(sentence))
    return best



# --- investigations --------------------------------------------------------------------------------------------------


def _investigations_in(sentence: str) -> Iterable[tuple[InvestigationBody, InvestigationKind | None, bool]]:
    """(body, kind or None when unsaid, closed) for each investigation the sentence reports as opened or closed."""
    closed = p.CLOSED.search(sentence) is not None
    if p.HEDGED.search(sentence) and not closed:
        return
    if p.IOPC.search(sentence) and p.INVESTIGATION.search(sentence):
        opened = p.OPENED.search(sentence)
        if closed or (opened and not _negated(sentence, opened.start())):
            kind = (InvestigationKind.criminal if p.CRIMINAL.search(sentence)
                    else InvestigationKind.misconduct if p.MISCONDUCT.search(sentence) else None)
            yield InvestigationBody.IOPC, kind, closed
    elif p.MURDER.search(sentence):
        yield InvestigationBody.police, InvestigationKind.murder, closed
    elif p.CRIMINAL.search(sentence) or p.POLICE_INVESTIGATING.search(sentence):
        yield InvestigationBody.police, InvestigationKind.criminal, closed
    if p.FIRE_INVESTIGATION.search(sentence):
        yield InvestigationBody.fire_service, InvestigationKind.fire, closed
    if p.HSE.search(sentence) and p.INVESTIGATION.search(sentence):
        yield InvestigationBody.HSE, InvestigationKind.other, closed
    if p.INQUEST.search(sentence):
        yield InvestigationBody.coroner, InvestigationKind.inquest, closed


_DEFAULT_KIND = {InvestigationBody.IOPC: InvestigationKind.independent}


def _investigations(sentences: Sequence[str]) -> list[InvestigationFact]:
    """One fact per body: the latest-stated status, the most recently named kind."""
    found: dict[InvestigationBody, InvestigationFact] = {}
    for sentence in sentences:
        for body, kind, closed in _investigations_in(sentence):
            previous = found.get(body)
            kind = kind or (previous.kind if previous else _DEFAULT_KIND.get(body, InvestigationKind.other))
            status = InvestigationStatus.closed if closed else InvestigationStatus.open
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
    before = p.SPEAKER_BEFORE.search(flat[max(0, quote.start() - 120) : quote.start()])
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
    location, places = _location(sentences)
    event = _has_event(sentences)
    category = _category(sentences)
    # Sport and weather name shots and floods; without a casualty or police event they are not incidents.
    if (category is None or _off_topic(sentences)) and not event:
        return Facts(is_incident=False, places=places)
    return Facts(
        is_incident=True,
        category=category,
        location=location,
        places=places,
        casualties=_casualties(sentences),
        dead=_count(p.DEAD_PATTERNS, sentences),
        injured=_count(p.INJURED_PATTERNS, sentences),
        investigations=_investigations(sentences),
        cordon=_latest(p.CORDON_RULES, sentences),
        public_risk=_latest(p.PUBLIC_RISK_RULES, sentences),
        arrests=_count(p.ARREST_PATTERNS, sentences),
        charges=_count(p.CHARGE_PATTERNS, sentences),
        statements=_statements(text),
    )

