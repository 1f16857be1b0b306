"""The phrase tables fact extraction reads: compiled patterns and the value each one states.

Every table is ordered: where two rules match overlapping text in one sentence, the earlier rule wins. That is how a
negated or qualified phrase beats the bare phrase inside it ("not life-threatening" beats "life-threatening",
"serious but stable" beats "stable", "no wider risk to the public" beats "risk to the public").

Matching goes through `finditer` and `search` here, which skip a text that cannot match: most patterns need one of a
few words ("arrest", "cordon"), most sentences have none of them, and looking for a word costs far less than running
the pattern (see `needles`).
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]  # the engine's own lower case
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from re import _casefix  # type: ignore[attr-defined]  # the characters with more than one case equivalent
from re import _compiler as sre_compile  # type: ignore[attr-defined]  # compiles a syntax tree (`caseless`)
from re import _constants as sre  # type: ignore[attr-defined]  # the syntax tree `needles` reads; no stubs
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Generic, TypeVar

from schemas import Category, Condition, Cordon, PublicRisk

V = TypeVar("V")

_I = re.IGNORECASE

# --- matching: skip what cannot match --------------------------------------------------------------------------------

# A pattern with more needles than this is run as it is: checking them all would cost about as much.
_MAX_NEEDLES = 32
# The characters other than A–Z that the regex engine, ignoring case, takes for an ASCII letter, and that
# `str.lower` does not turn into it (re-derived by a test: `re.fullmatch("[a-z]", c, re.I)` over every code point).
_CASE_EQUIVALENTS = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def fold(text: str) -> str:
    """`text` in lower case as the regex engine compares it ignoring case: a needle of a pattern's match is in the
    folded text wherever the pattern matches, with or without IGNORECASE."""
    return text.lower() if text.isascii() else text.translate(_CASE_EQUIVALENTS).lower()


def needles(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Strings, in lower case, one of which every match of `pattern` contains, read from its syntax tree: the texts
    a run of literal parts can spell ("fatally (?:shot|stabbed)" spells "fatally shot" or "fatally stabbed"), or
    for alternatives one string of each; None when no such set is known (or it is too large to be worth checking).
    So a text whose folded form (`fold`) contains none of them has no match."""
    try:
        found = _required(sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # a syntax tree this code does not read: no prefilter, the pattern always runs
        return None
    if not found:
        return None
    # A needle inside another makes the longer one redundant: any text holding the longer holds it.
    kept = {n for n in found if not any(other != n and other in n for other in found)}
    return tuple(sorted(kept)) if len(kept) <= _MAX_NEEDLES else None


_MAX_SPELLINGS = 64  # texts a run of literal parts may spell, beyond which it is cut


def _required(items: Sequence[Any]) -> frozenset[str] | None:
    """What a match of the sequence `items` must contain: the most selective of its literal runs and its items'."""
    best: frozenset[str] | None = None
    run: frozenset[str] = frozenset({""})

    def take(candidate: frozenset[str] | None) -> None:
        nonlocal best
        if candidate and "" not in candidate and (best is None or _selectivity(candidate) > _selectivity(best)):
            best = candidate

    for op, av in items:
        spelt = _spellings(op, av)
        if spelt is not None and len(run) * len(spelt) <= _MAX_SPELLINGS:
            run = frozenset(a + b for a in run for b in spelt)  # anchors and literal groups keep a run going
            continue
        take(run)
        run = spelt if spelt is not None else frozenset({""})
        if spelt is not None:
            continue
        if op is sre.SUBPATTERN:
            take(_required(av[3]))
        elif op is sre.ATOMIC_GROUP:
            take(_required(av))
        elif op is sre.BRANCH:
            branches = [_required(branch) for branch in av[1]]
            if all(branches):
                take(frozenset().union(*branches))  # type: ignore[arg-type]  # all are sets here
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT) and av[0] >= 1:
            take(_required(av[2]))
        # Anything else (classes, any character, lookarounds, backreferences) requires no particular text.
    take(run)
    return best


def _spellings(op: Any, av: Any) -> frozenset[str] | None:
    """Every text an item can match (folded), when they are few and fixed: a literal, an anchor (nothing), a
    one-letter class such as [Kk], an optional or alternative part made of those, or a group of them."""
    if op is sre.LITERAL:
        return _spelling(av)
    if op is sre.AT:
        return frozenset({""})
    if op is sre.IN and av and all(kind is sre.LITERAL for kind, _ in av):  # a class of characters: [Kk], [—-]
        chars = [_spelling(code) for _, code in av]
        return None if None in chars else frozenset().union(*chars)  # type: ignore[arg-type]  # none is None
    if op is sre.SUBPATTERN:
        return _spelt(av[3])
    if op is sre.BRANCH:
        branches = [_spelt(branch) for branch in av[1]]
        if all(branch is not None for branch in branches):
            spelt = frozenset().union(*branches)  # type: ignore[arg-type]  # none is None here
            return spelt if len(spelt) <= _MAX_SPELLINGS else None
        return None
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT) and av[1] == 1:
        body = _spelt(av[2])
        return None if body is None else body if av[0] == 1 else body | {""}
    return None


def _spelling(code: int) -> frozenset[str] | None:
    """How a literal character is folded; beyond ASCII only one without case ("—", "’"), which no other character
    matches, ignoring case or not."""
    char = chr(code)
    return frozenset({char.lower()}) if char.isascii() or char.lower() == char == char.upper() else None


def _spelt(items: Sequence[Any]) -> frozenset[str] | None:
    """Every text a sequence of items can match, when each item's are few and fixed (`_spellings`)."""
    spelt = frozenset({""})
    for op, av in items:
        part = _spellings(op, av)
        if part is None or len(spelt) * len(part) > _MAX_SPELLINGS:
            return None
        spelt = frozenset(a + b for a in spelt for b in part)
    return spelt


def _selectivity(found: frozenset[str]) -> tuple[int, int]:
    """Which requirement skips more texts, and costs less to check: the shorter its shortest needle, the more texts
    hold one, up to words of six letters or so; then the fewer needles, the better."""
    return min(6, *(len(n) for n in found)), -len(found)


# --- matching: the folded text, without IGNORECASE -------------------------------------------------------------------

# The regex engine ignoring case compares every character through its case: an alternative of many words costs each
# position a comparison per word. Without IGNORECASE it skips a word at its first letter, and finds a pattern's first
# letters without trying every position: the same pattern runs several times faster over the folded text.

# Lower-case letters the engine, ignoring case, takes for others too ("µ" and "μ", "σ" and "ς"), by code.
_EXTRA_CASES: dict[int, tuple[int, ...]] = _casefix._EXTRA_CASES


class _CaseSensitive(Exception):
    """The pattern's syntax tree holds a part whose matches the folded text would not keep."""


def caseless(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """`pattern`, which ignores case, compiled to run without IGNORECASE over a text's `fold`: it matches there where
    `pattern` matches in the text, its groups spanning the same positions (folding keeps every character's place).
    None for a pattern that does not ignore case, or not everywhere (`(?-i:…)`), or by other rules than `fold`'s
    (ASCII, LOCALE), that names a letter with case beyond ASCII, or refers back to a group: those run as they are."""
    if not pattern.flags & re.IGNORECASE or pattern.flags & (re.ASCII | re.LOCALE):
        return None
    try:
        tree = sre_parse.parse(pattern.pattern, pattern.flags)
        _lower_case(tree.data)
        tree.state.flags &= ~re.IGNORECASE
        compiled: re.Pattern[str] = sre_compile.compile(tree, pattern.flags & ~re.IGNORECASE)
        return compiled
    except Exception:  # a part the folded text would not keep, or a syntax tree this code does not read
        return None


def _lower_case(items: list[Any]) -> None:
    """Rewrite a sequence of the syntax tree, in place, to match the folded text as the original ignoring case."""
    for index, (op, av) in enumerate(items):
        if op in (sre.LITERAL, sre.NOT_LITERAL):
            items[index] = (op, _lower_code(av))
        elif op is sre.IN:
            items[index] = (op, _lower_class(av))
        elif op is sre.SUBPATTERN:
            _, add_flags, del_flags, body = av
            if (add_flags | del_flags) & re.IGNORECASE:
                raise _CaseSensitive("case switched in a group")
            _lower_case(body.data)
        elif op is sre.BRANCH:
            for branch in av[1]:
                _lower_case(branch.data)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            _lower_case(av[2].data)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _lower_case(av[1].data)
        elif op is sre.ATOMIC_GROUP:
            _lower_case(av.data)
        elif op not in (sre.AT, sre.ANY, sre.CATEGORY):
            raise _CaseSensitive(f"{op} is not read")  # backreferences among others


def _lower_code(code: int) -> int:
    """A literal character as the folded text holds it, in lower case. Beyond ASCII a letter qualifies when the
    engine, ignoring case, takes for it exactly the characters that fold to its lower case ("é" for "É"): those
    whose one lower case is its own, with no other equivalent (not "µ", also "μ"; not "σ", also "ς")."""
    char = chr(code)
    if char.isascii():
        return ord(char.lower())
    lower = char.lower()
    if lower == char == char.upper():
        return code
    if len(lower) == 1 and _sre.unicode_tolower(code) == ord(lower) and ord(lower) not in _EXTRA_CASES:
        return ord(lower)
    raise _CaseSensitive(f"{char!r} has other case equivalents")


def _lower_class(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """A character class that also holds the lower case of each ASCII capital it holds (the folded text has none)."""
    lowered: list[tuple[Any, Any]] = []
    for op, av in items:
        if op is sre.LITERAL:
            lowered.append((op, _lower_code(av)))
        elif op is sre.RANGE:
            low, high = av
            if high > 0x7F and any(chr(code).lower() != chr(code).upper() for code in range(max(low, 0x80), high + 1)):
                raise _CaseSensitive("a range of characters with case beyond ASCII")
            capitals = (max(low, ord("A")), min(high, ord("Z")))
            lowered.append((op, av))
            if capitals[0] <= capitals[1]:
                lowered.append((op, (capitals[0] + 32, capitals[1] + 32)))
        elif op in (sre.NEGATE, sre.CATEGORY):
            lowered.append((op, av))
        else:
            raise _CaseSensitive(f"{op} in a class is not read")
    return lowered


@dataclass(frozen=True)
class Screen:
    """A pattern with its needles (`needles`): what to check before running it over many texts; and the pattern as
    it runs over the folded text (`caseless`), when it can."""

    pattern: re.Pattern[str]
    needles: tuple[str, ...] | None
    on_folded: re.Pattern[str] | None = None

    def could_match(self, folded_text: str) -> bool:
        """False only when the pattern cannot match the text whose `fold` is `folded_text`."""
        return self.needles is None or any(map(folded_text.__contains__, self.needles))

    def places(self, text: str, folded_text: str) -> Iterator[re.Match[str]]:
        """The matches of the pattern in `text`, whose `fold` is `folded_text`. Where the pattern runs over the
        folded text, a match's positions (of its groups too) are those in `text` but its strings are folded: read
        them only as the pattern would read them, ignoring case, or cut `text` at the positions."""
        if not self.could_match(folded_text):
            return iter(())
        return self.unscreened_places(text, folded_text)

    def unscreened_places(self, text: str, folded_text: str) -> Iterator[re.Match[str]]:
        """`places`, for a text already known to pass `could_match` (`by_sentence`)."""
        return self.on_folded.finditer(folded_text) if self.on_folded else self.pattern.finditer(text)

    def first_place(self, text: str, folded_text: str) -> re.Match[str] | None:
        """The first of `places`, or None."""
        if not self.could_match(folded_text):
            return None
        return self.on_folded.search(folded_text) if self.on_folded else self.pattern.search(text)


def by_sentence(screens: Sequence[Screen], folded_sentences: Sequence[str]) -> list[list[int]]:
    """For each of `folded_sentences` (each sentence's `fold`), the positions in `screens` of those that could match
    it, in order: `could_match` of each pair, read off one search for each needle over the whole text instead of
    one per sentence (most patterns could match a sentence or two of an article, if any). A pattern none of whose
    needles is in the text costs one search per needle, as screening the whole text would."""
    tried: list[list[int]] = [[] for _ in folded_sentences]
    everything = "\n".join(folded_sentences)
    starts, start = [], 0
    for sentence in folded_sentences:
        starts.append(start)
        start += len(sentence) + 1
    for k, screen in enumerate(screens):
        if screen.needles is None:
            for row in tried:
                row.append(k)
            continue
        found: set[int] = set()
        for needle in screen.needles:
            at = everything.find(needle)
            while at >= 0:
                i = bisect_right(starts, at) - 1
                if at + len(needle) <= starts[i] + len(folded_sentences[i]):
                    found.add(i)
                    # Once in a sentence is enough: go on from the next one.
                    at = everything.find(needle, starts[i + 1]) if i + 1 < len(starts) else -1
                else:  # across two sentences: in neither
                    at = everything.find(needle, at + 1)
        for i in found:
            tried[i].append(k)
    return tried


# Each pattern's screen, made on first use; keyed by `id`, so each entry keeps its pattern to be checked against.
_screens: dict[int, Screen] = {}
_FOLDED_KEPT = 4096  # texts whose folded form is remembered: a text is matched against many patterns in a row
_folded: dict[str, str] = {}


def screen(pattern: re.Pattern[str]) -> Screen:
    """The screen of `pattern`."""
    found = _screens.get(id(pattern))
    if found is None or found.pattern is not pattern:
        found = _screens[id(pattern)] = Screen(pattern, needles(pattern), caseless(pattern))
    return found


def folded(text: str) -> str:
    """`fold(text)`, remembered for the last few thousand texts."""
    found = _folded.get(text)
    if found is None:
        if len(_folded) >= _FOLDED_KEPT:
            _folded.clear()
        found = _folded[text] = fold(text)
    return found


def anywhere(patterns: Iterable[re.Pattern[str]], texts: Sequence[str]) -> bool:
    """False only when none of `patterns` can match any of `texts` (the sentences of one text, say): a gate before
    work that only their matches would start."""
    everything = folded("\n".join(texts))
    return any(screen(pattern).could_match(everything) for pattern in patterns)


def finditer(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)`, skipping a text it cannot match."""
    return pattern.finditer(text) if screen(pattern).could_match(folded(text)) else iter(())


def search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """`pattern.search(text)`, skipping a text it cannot match."""
    return pattern.search(text) if screen(pattern).could_match(folded(text)) else None


@dataclass(frozen=True)
class Rule(Generic[V]):
    """A phrase that states `value`; `negatable` rules are dropped when a negation comes just before the match."""

    value: V
    pattern: re.Pattern[str]
    negatable: bool = False


def _rule(value: V, pattern: str, *, negatable: bool = False, flags: int = _I) -> Rule[V]:
    return Rule(value, re.compile(pattern, flags), negatable)


# --- numbers ---------------------------------------------------------------------------------------------------------

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "a dozen": 12,
}
ORDINALS = {"second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
            "tenth": 10}
# Digits without thousands separators: "4,000 calls a year" is not a casualty count.
NUM = r"(?:\d{1,3}(?!\d|,\d{3})|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
ORD = "(?:" + "|".join(ORDINALS) + ")"
# "A quadruple shooting", "a triple homicide": how many people one event hit.
MULTIPLES = {"double": 2, "triple": 3, "quadruple": 4, "quintuple": 5}
_MULTIPLE = "(?:" + "|".join(MULTIPLES) + ")"

# --- people ----------------------------------------------------------------------------------------------------------

# The nouns a report uses for one person, and the label each is normalised to.
PERSON_NOUNS = {
    "man": "man", "woman": "woman", "boy": "boy", "girl": "girl", "teenager": "teenager", "teen": "teenager",
    "youth": "teenager", "child": "child", "baby": "baby", "toddler": "toddler", "pensioner": "pensioner",
    "cyclist": "cyclist", "motorcyclist": "motorcyclist", "pedestrian": "pedestrian", "driver": "driver",
    "passenger": "passenger", "police officer": "officer", "policeman": "officer", "policewoman": "officer",
    "officer": "officer", "pc": "officer", "firefighter": "firefighter", "paramedic": "paramedic", "person": "person",
    "minor": "child", "juvenile": "teenager",
}
OFFICER_LABELS = frozenset({"officer", "firefighter", "paramedic"})
# "A minor was injured", not "minor injuries".
_PERSON_NOUN = "|".join(sorted((re.escape(n) for n in PERSON_NOUNS), key=len, reverse=True)).replace(
    "minor", r"minor(?!\s+(?:injur|wound|hurt|cuts?\b|burns?\b|damage|offen|crash|incident|collision|road))"
)
PERSON = re.compile(
    rf"\b(?:(?P<other>the\s+other|another)\s+|(?P<ord>{ORD})\s+)?"
    rf"(?:(?P<age>\d{{1,3}}|{'|'.join(NUMBER_WORDS)})[- ]year[- ]old\s+)?"
    rf"(?P<noun>{_PERSON_NOUN})\b"
    rf"(?:,?\s+aged\s+(?P<aged>\d{{1,3}})|,\s+(?P<comma_age>\d{{1,3}}),|"
    r"\s+in\s+(?P<pronoun>his|her|their)\s+(?:early\s+|mid[- ]?|late\s+)?(?P<decade>[1-9]0)[’']?s\b)?",
    _I,
)
# A person named by an age alone: "a 17-year-old was injured", "the 16-year-old, who was shot".
AGED_PERSON = re.compile(
    r"(?<!\bby )\b(?:an?|the)\s+(?P<age>\d{1,3})[- ](?P<unit>year|month|week)[- ]old\b"
    r"(?=\s*[,.]|\s+(?:was|is|were|has|had|remains|remained|died|suffered|sustained|who|underwent)\b)",
    _I,
)
# "One man is critical, the other is stable": the other of two people, unnamed by any noun.
OTHER_PERSON = re.compile(
    r"\b(?:the\s+other(?:\s+(?:one|victim))?|another\s+victim|the\s+(?:remaining|surviving|lone|sole)\s+"
    r"(?:victim|survivor))\b"
    r"(?=\s*,|\s+(?:is|was|has|had|remains|remained|suffered|sustained|received|died|survived|will)\b)",
    _I,
)
# Kinds of person a generic noun covers: "teen" in a title is the "17-year-old boy" of the text.
TEEN_AGES = range(13, 20)
CHILD_AGES = range(0, 13)
# Several people: a condition stated of them belongs to no one person ("two people were killed").
PLURAL_PEOPLE = re.compile(
    r"\b(?:people|persons|men|women|children|boys|girls|teenagers|teens|youths|officers|pedestrians|passengers|"
    r"adults|others|victims|casualties|residents|patients)\b",
    _I,
)
_PEOPLE = (
    r"(?:(?:young|teenage|adult|elderly|male|female|state|police|sheriff's)\s+)?"
    r"(?:people|persons|men|women|children|boys|girls|teenagers|teens|youths|officers|police officers|pedestrians|"
    r"passengers|adults|others|victims|casualties|residents|patients|firefighters|man|woman|person|boy|girl|child|"
    r"teenager|teen|youth|victim|juvenile|student|adult|toddler|baby|infant|juveniles|students|partygoers|bystanders|"
    r"customers|relatives|males|females|troopers|deputies|agents|guards|employees|workers|kids)"
    # "Three state troopers who entered the home were wounded".
    r"(?:\s+who\s+[a-z]+(?:\s+[a-z]+){0,4}?(?=\s+(?:were|are|have|had)\b))?"
)

# What a sentence says about a person near its mention (the text up to the next person).
SUSPECT_CUE = re.compile(
    r"\b(?:arrested|suspects?|charged|wanted|detained|in custody|gunman|attacker|pulled the trigger|"
    r"faces? (?:an? )?(?:[\w-]+ ){0,3}charges?)\b", _I
)
# Who did it, named by no person noun.
SUSPECT_NOUN = re.compile(r"\b(?:suspects?|gunm[ae]n|shooters?|attackers?|assailants?|killers?)\b", _I)
# A cue before a person stops at these: "she shot herself while her mother and another woman were home".
CUE_BREAK = re.compile(r"\b(?:while|whereas|although|though|but)\b|;", _I)
# The agent of a passive hit is who did it: "accidentally shot by another teen", "stabbed by a man".
BY_AGENT = re.compile(
    r"\b(?:shot|stabbed|wounded|killed|hit|attacked|struck|injured)\s+(?:\w+\s+)?by\s+"
    r"(?:(?:a|an|the|his|her|their|young|younger|older|little)\s+)*$",
    _I,
)
# Shooting someone, in the active voice: after a person, they shot ("a 21-year-old man accidentally shot her");
# before one, that person was shot ("officers shot a man").
SHOOTER_CUE = re.compile(
    r"(?<!\band )\b(?:shot|shoots|stabbed|stabs|killed|kills)\s+(?:and\s+killed\s+)?"
    r"(?:(?:her|him|them|his|their|an?)\b|$)",
    _I,
)
# Before the shooter cue, what makes it passive after all: "was fatally shot a block from his home".
PASSIVE_BEFORE = re.compile(r"\b(?:was|were|is|are|been|being|be|got|gets)\b", _I)
BYSTANDER_CUE = re.compile(r"\b(?:passer-?by|bystanders?|caught in the crossfire)\b", _I)
INJURY_CUE = re.compile(
    r"\b(?:shot|stabbed|injur(?:ed|ies|y)|wounded|hurt|hospital|died|dies|dead|killed|attacked|assaulted|hit by|"
    r"struck by|treated|critical|life[- ]threatening|condition)\b",
    _I,
)
# The cue nearest a mention of a person decides the role; its group name says which cue it was.
ROLE_CUE = re.compile(
    "|".join(
        f"(?P<{name}>{cue.pattern})"
        for name, cue in (("suspect", SUSPECT_CUE), ("shooter", SHOOTER_CUE), ("bystander", BYSTANDER_CUE),
                          ("hurt", INJURY_CUE))
    ),
    _I,
)
# A person shot by police is the subject of a police action, not a victim of crime.
POLICE_SHOOTING = re.compile(
    r"\bshot by (?:armed |specialist |firearms )*(?:police|officers|an? (?:police )?officer|the met)\b|"
    r"\b(?:police|officers?) (?:have |has |had )?(?:shot|opened fire|fired)\b|"
    r"\bpolice (?:shooting|firearms? discharge)|"
    r"\bpolice (?:firearm|weapon|gun)s? (?:was|were|had been|has been) discharged\b|"
    r"\b(?:police|officers) discharged\b",
    _I,
)
# An officer counts as a casualty only when the text says the officer was hurt, not when an officer acted.
OFFICER_HURT = re.compile(
    r"\b(?:injured|wounded|hurt)\s+(?:police\s+)?officers?\b|"
    r"\bofficers?\b[^.]{0,30}?\b(?:was|were|has been|have been|had been)\s+(?:also\s+|seriously\s+|critically\s+)?"
    r"(?:injured|hurt|wounded|stabbed|shot|assaulted|attacked|taken to hospital|killed)\b",
    _I,
)

# --- is this about an incident at all --------------------------------------------------------------------------------

EVENT_CUE = re.compile(
    r"\b(?:injur(?:ed|ies)|wounded|hurt|taken to hospital|in hospital|died|killed|kills|pronounced dead|arrest(?:ed|s)|"
    r"charged with|cordon|paramedics|ambulance|emergency services|police were called|officers were called|victims?|"
    r"casualt(?:y|ies)|(?:critical|serious|stable) condition|life[- ]threatening|fighting for (?:his |her |their )?"
    r"li(?:fe|ves)|discharged from hospital|evacuated|appeal for witnesses)\b",
    _I,
)
# Words of the stories a feed carries besides incidents: sport, weather, recruitment, awards.
OFF_TOPIC_CUE = re.compile(
    r"\b(?:match|goals?|striker|midfielder|goalkeeper|league|fixtures?|tournament|semi-finals?|quarter-finals?|"
    r"championship|kick-off|scored|penalty|referee|season|forecast|showers|sunny|temperatures?|Met Office|"
    r"recruit(?:s|ment|ing)?|applications|apply|vacanc(?:y|ies)|careers?|awards?|ceremony|nominated|shortlisted|"
    r"cadets?)\b",
    _I,
)

# --- category --------------------------------------------------------------------------------------------------------

# Fire services attend crashes and are shot at too: naming them is a fire only when nothing else is named.
FIRE_SERVICE = re.compile(r"^(?:firefighters?|fire crews?|fire engines?|fire brigade|fire service)$", _I)
CATEGORY_RULES: tuple[Rule[Category], ...] = (
    _rule(Category.terrorism, r"\b(?:terror(?:ism|ist)?(?:[- ]related)?|counter[- ]terror(?:ism)?)\b", negatable=True),
    _rule(Category.shooting,
          r"\b(?:shot|shots|shoot|shoots|shooting|shootings|gunshots?|gunfire|gunman|gunmen|opened fire|open fire|"
          r"(?:firearms?|weapons?|guns?) (?:was |were |had been |has been )?discharged|"
          r"discharged (?:a|his|her|their) (?:firearm|weapon|gun)|firearms? discharge)\b",
          negatable=True),
    _rule(Category.stabbing, r"\b(?:stabbed|stabbing|stabbings|stab wounds?|knife attack|knifed)\b", negatable=True),
    _rule(Category.explosion, r"\b(?:explosions?|exploded|blast|detonated|detonation)\b", negatable=True),
    _rule(Category.fire,
          r"\b(?:blaze|fire broke out|caught fire|on fire|set alight|set on fire|arson|firefighters?|fire crews?|"
          r"fire engines?|fire brigade|fire service|wildfire|inferno|engulfed in flames|"
          r"(?:house|flat|building|car|vehicle|grass|warehouse|kitchen|chimney|forest) fire|"
          r"(?:a|the) fire (?:at|in|on|broke|was|is|has|had|spread))\b",
          negatable=True),
    _rule(Category.collision,
          r"\b(?:collisions?|crash(?:ed|es)?|(?:hit|struck|knocked down|run over) by an? "
          r"(?:car|van|lorry|bus|vehicle|train|tram|motorbike|motorcycle|taxi)|road traffic accident|car accident|"
          r"pile-up)\b",
          negatable=True),
    _rule(Category.flood, r"\b(?:flood(?:ing|ed|s|water|waters)?|flash floods?|burst (?:its|their) banks)\b",
          negatable=True),
    _rule(Category.missing_person,
          r"\b(?:missing person|reported missing|gone missing|been missing|missing since|last seen|"
          r"missing (?:man|woman|boy|girl|teenager|teen|child|person|pensioner))\b"),
    _rule(Category.assault,
          r"\b(?:assault(?:ed|s)?|attacked|punched|beaten up|glassed|brawl|fight broke out)\b", negatable=True),
)

# --- condition of a person -------------------------------------------------------------------------------------------

# Words that may sit between a negation and what it negates: "not thought to be life-threatening".
_HEDGE = r"(?:\s+(?:thought|believed|considered|described|said|understood|deemed|assessed|to|be|as|in|a|being|now|" \
         r"currently|yet|any|longer))*"
# "His condition is now described as critical", "condition was initially said to be serious".
_CONDITION_IS = (r"\bcondition(?:\s+(?:is|was|has|had|been|being|remains?|remained|described|assessed|listed|said|"
                 r"thought|believed|understood|reported|as|to|be|now|still|currently|initially|first|originally|"
                 r"earlier|previously|also|last|night))+\s+")
CONDITION_RULES: tuple[Rule[Condition], ...] = (
    _rule(Condition.serious, r"\bserious(?:ly)?(?:\s+(?:injured|hurt|wounded|condition|injuries))?,?\s+but\s+"
                             r"(?:stable|(?:not|non)[\s-]+life[- ]threatening)\b"),
    _rule(Condition.critical, r"\bcritical but stable\b"),
    _rule(Condition.stable, rf"\b(?:non|not|no\s+longer|no){_HEDGE}[\s-]+(?:life[- ]threatening|critical)\b"),
    _rule(Condition.minor,
          rf"\bnot{_HEDGE}\s+(?:serious|seriously (?:hurt|injured))\b|\b(?:minor|slight) injur(?:y|ies)\b|"
          r"\bslightly (?:hurt|injured)\b|\bwalking wounded\b"),
    _rule(Condition.discharged,
          r"\b(?:discharged|released|allowed home) from hospital\b|"
          r"\b(?:has|have) (?:since |now )?(?:gone|returned) home\b"),
    _rule(Condition.deceased,
          r"\b(?:died|dies|pronounced (?:dead|deceased)|declared dead|"
          r"(?:was|were|been|being) (?:also |later |reportedly |allegedly )?(?:killed|murdered|slain)|"
          r"(?:shot|stabbed) dead|"
          r"(?:shot|stabbed|beaten) (?:and killed|to death)|fatally (?:shot|stabbed|injured|wounded|hurt)|"
          r"dead at the scene|lost (?:his|her|their) li(?:fe|ves)|passed away|death of|"
          r"(?:found|left|lying|lay|is|was|now|confirmed) dead|dead (?:after|following|from)|"
          r"kill(?:ed|s|ing) (?:him|her|them)sel(?:f|ves)|took (?:his|her|their) own li(?:fe|ves)|"
          r"killed(?=\s*[,;:]|\s*$)|"
          r"killed (?:in|after|during|at|on|by|when|while|outside|inside|near)(?! (?:self[- ]defen[cs]e|the line)))\b",
          negatable=True),
    _rule(Condition.deceased,
          rf"\b(?:kill(?:s|ed|ing)|fatally (?:shoots|shooting|stabs|stabbing))(?=\s+(?:an?|the|his|her|their)\s+"
          rf"(?:[\w-]+\s+)?(?:{_PERSON_NOUN})\b)",
          negatable=True),
    _rule(Condition.critical,
          r"\bcritical(?:ly)? (?:condition|ill|injured|hurt|wounded)\b|\bin a critical\b|"
          rf"{_CONDITION_IS}critical\b|\bremains? critical\b|"
          r"\blife[- ]threatening\b|\bfighting for (?:his |her |their )?li(?:fe|ves)\b"),
    _rule(Condition.serious,
          r"\bserious(?:ly)? (?:condition|injur(?:ed|ies|y)|hurt|wounded|ill)\b|\bin a serious\b|"
          rf"{_CONDITION_IS}serious\b"),
    # US hospitals grade patients good, fair, serious or critical: good and fair are not life-threatening.
    _rule(Condition.stable,
          r"\b(?:listed|reported|upgraded|described)\s+(?:in|as|to)\s+(?:good|fair|satisfactory)(?:\s+condition)?\b|"
          r"\b(?:good|fair)\s+condition\s+(?:at|in)\s+(?:an?\s+|the\s+)?(?:[\w-]+\s+){0,3}?hospital\b"),
    _rule(Condition.stable, r"\bstable\b"),
)
# Words that mark a stated value as background, superseded by what the text says now ("he was initially critical").
# They count within the clause of the match: after the last clause break before it, up to the next one.
CLAUSE_BREAK = re.compile(
    r"[,;:()]|\s[—–-]\s|\b(?:but|though|although|however|while|whereas|where|and|since|now|later|subsequently|then|"
    r"who|which|before|after|until|currently|still)\b",
    _I,
)
HISTORICAL = re.compile(
    r"\b(?:initially|at first|originally|previously|at the time|when|(?:was|were|had(?: been)?) first|"
    r"earlier(?!\s+(?:today|tonight|this|that|on|in|last|yesterday)\b))\b",
    _I,
)
# A clause that ends in these words right before the match states how things were then ("had been in a critical
# condition", "was taken to hospital in a critical condition").
HISTORICAL_LEAD = re.compile(
    r"\b(?:had\s+been|(?:was|were)\s+(?:\w+\s+)?(?:taken|rushed|airlifted|flown|transported|brought)\s+to\s+"
    r"(?:\w+\s+){0,3}?hospitals?)\s+(?:(?:in|with|suffering(?:\s+from)?|described\s+as|said\s+to\s+be)\s+)?"
    r"(?:an?\s+)?$",
    _I,
)
LIFE_CHANGING_RULES: tuple[Rule[bool], ...] = (
    _rule(False, rf"\bnot{_HEDGE}\s+life[- ]changing\b"),
    _rule(True, r"\blife[- ]chang(?:ing|ed)\b"),
)

# --- cordon and public risk ------------------------------------------------------------------------------------------

_ROADS = r"(?:road|roads|street|streets)"
CORDON_RULES: tuple[Rule[Cordon], ...] = (
    _rule(Cordon.in_place, r"\bcordons?\b[^.;]{0,60}?\b(?:has|have) not (?:yet )?been (?:lifted|removed)\b"),
    _rule(Cordon.lifted,
          r"\bcordons?\b[^.;]{0,120}?\b(?:(?:has|have|had)\s+(?:now\s+|since\s+|also\s+)*been|(?:was|were|is|are)"
          r"(?:\s+now)?)\s+(?:lifted|removed|stood down|taken down)\b"),
    _rule(Cordon.lifted, r"\bcordons?\s+(?:now\s+)?(?:lifted|removed)\b", negatable=True),  # headline style
    _rule(Cordon.lifted,
          r"\b(?:lifted|removed|stood down|took down)\s+(?:the\s+|a\s+|their\s+)?(?:police\s+)?cordons?\b"),
    _rule(Cordon.lifted,
          rf"\b{_ROADS}\b[^.;]{{0,60}}?\b(?:(?:has|have|had)\s+(?:now\s+|since\s+)*(?:been\s+)?|(?:was|were|is)\s+"
          r"(?:now\s+)?)?(?<!\bbe )re-?opened\b",
          negatable=True),
    _rule(Cordon.lifted, r"\bscene has (?:now )?been (?:released|stood down)\b"),
    _rule(Cordon.in_place,
          r"\bcordons?\b[^.;]{0,80}?\b(?:in place|remains?|remained|set up|put up|erected|established)\b|"
          r"\bcordoned off\b|\bcrime scene (?:is|was|remains) in place\b|"
          r"\broad closures? (?:remain|remains|are|is) in place\b|"
          rf"\b{_ROADS} (?:remain|remains|were|have been) closed\b"),
)
_RISK = r"(?:risk|threat|danger)"
_RISK_ADJ = r"(?:(?:wider|ongoing|further|continuing|immediate|current|known|apparent|other)\s+)*"
PUBLIC_RISK_RULES: tuple[Rule[PublicRisk], ...] = (
    _rule(PublicRisk.none, rf"\bno\s+{_RISK_ADJ}{_RISK}\b"),
    _rule(PublicRisk.none,
          rf"\bnot\s+(?:believed|thought|considered|understood)\s+to\s+be\s+(?:an?\s+|any\s+)?{_RISK_ADJ}{_RISK}\b"),
    _rule(PublicRisk.none, rf"\b(?:is|was|are)\s+not\s+(?:an?\s+|any\s+)?{_RISK_ADJ}{_RISK}\b"),
    _rule(PublicRisk.none,
          rf"\bdo(?:es)?\s+not\s+(?:believe|think)\s+(?:that\s+)?(?:there\s+is\s+)?(?:an?\s+|any\s+)?{_RISK_ADJ}{_RISK}\b"),
    _rule(PublicRisk.none, r"\bnot looking for anyone else\b|\bisolated incident\b"),
    # "Asked to avoid the area" is traffic and cordon advice, not a risk: only staying indoors is.
    _rule(PublicRisk.ongoing,
          r"\b(?:public|people|residents|motorists|everyone)\b[^.]{0,40}?\b(?:urged|asked|advised|told|warned)\s+to\s+"
          r"(?:stay indoors|remain indoors|keep (?:their )?windows)",
          negatable=True),
    _rule(PublicRisk.ongoing, r"\bdo not approach\b|\bshould not be approached\b|\barmed and dangerous\b|"
                              r"\b(?:still|remains?) at large\b",
          negatable=True),
    _rule(PublicRisk.ongoing, rf"\b{_RISK}\s+to\s+(?:the\s+)?(?:wider\s+)?(?:public|community|residents)\b",
          negatable=True),
)

# Words that turn the phrase right after them around: "no shots were fired", "not being treated as terror-related".
NEGATION = re.compile(r"\b(?:not|no|never|nobody|without|ruled out)\b|n't\b", _I)
# Words that make what follows a question, not a statement: "not able to say if the man had died".
CONDITIONAL = re.compile(r"\b(?:if|whether|unclear|unknown)\b", _I)

# --- counts ----------------------------------------------------------------------------------------------------------

# Kinds of person, kin first: "his wife", "her grandmother", "a toddler".
_KIN = (
    # Each word one way only: a word two branches match makes a long list backtrack exponentially.
    r"(?:father|mother|son|daughter|(?:ex-)?(?:girlfriend|boyfriend|wife|husband)|fianc[eé]e?|brother|"
    r"sister|grand(?:mother|father|son|daughter|child)|step(?:father|mother|son|daughter)|nephew|niece|cousin|aunt|uncle|"
    r"parent|child|kid|toddler|baby|infant|couple|man|woman|boy|girl|teen|teenager|adult|friend|roommate|neighbou?r)"
)
_BE = r"(?:(?:were|was|have|has|had|are|is|been|being|also|all|now|since|reportedly)\s+)*"
# Patterns without a number group state one person, or none when they start with a negation ("no one was hurt").
INJURED_PATTERNS = (
    re.compile(r"\bno(?: one| other people|body)? (?:else )?(?:was|were|has been|have been) (?:injured|hurt)\b", _I),
    # "Seven people, including the woman, were treated for smoke inhalation".
    re.compile(rf"\b(?P<n>{NUM})\s+(?:(?:other|more|further)\s+)?(?:{_PEOPLE}\b(?:,[^.]{{0,40}}?,)?\s+)?{_BE}"
               r"(?:(?!fatally\b)\w+ly\s+)?"  # "critically", "subsequently"
               r"(?:injured|hurt|wounded|hospitali[sz]ed|taken to (?:a |the )?(?:local |area )?hospitals?|"
               r"transported to (?:a |the )?(?:local |area )?hospitals?|treated for|"
               r"treated (?:at (?:a |the )?(?:local |area )?hospitals?|and released))\b", _I),
    re.compile(rf"\b(?:injur(?:es|ed|ing)|wound(?:s|ed|ing))\s+(?P<n>{NUM})\b"
               r"(?![-\s]*(?:hours?|days?|minutes?|years?|months?)\b)(?!-[a-z])(?!\s*$)", _I),
    # "5 recovering after drive-by shooting".
    re.compile(rf"\b(?P<n>{NUM})\s+(?:{_PEOPLE}\s+)?(?:are\s+|were\s+)?recovering\b", _I),
    re.compile(rf"\ba\s+(?P<ord>{ORD})\s+(?:{_PERSON_NOUN}|victim)\s+{_BE}(?:(?!fatally\b)\w+ly\s+)?"
               r"(?:injured|hurt|wounded|stabbed|shot|taken to hospital)\b(?!\s+(?:dead|to death|and killed))", _I),
    # One more hurt beside the dead: "killing three men and wounding another", "one dead and another injured".
    # "Two other gunshot victims arrived at the hospital": others than the dead.
    re.compile(rf"\b(?P<n>{NUM})\s+(?:other|more)\s+(?:gunshot|shooting|stabbing)\s+victims\b", _I),
    # "Left a girl dead and her grandmother wounded", "two dead and a teen injured", "killing one and wounding the
    # other".
    re.compile(r"\b(?:injur(?:ed|ing)|wound(?:ed|ing)|hurt(?:ing)?)\s+(?:another|the other)\b"
               r"(?!\s+(?:\w+\s+)?(?:dead|to death))|"
               rf"\band\s+(?:another|an?|his|her|their)\s+(?:[\w-]+\s+)?(?:{_PERSON_NOUN}|{_KIN}|victim)\s+"
               r"(?:(?:was|is|also)\s+)*(?:(?!fatally\b)\w+ly\s+)?(?:injured|hurt|wounded)\b|"
               rf"\band\s+another\s+(?:(?:{_PERSON_NOUN}|victim)\s+)?(?:{_BE}(?:(?!fatally\b)\w+ly\s+)?)?"
               r"(?:injured|hurt|wounded)\b", _I),
)
DEAD_PATTERNS = (
    # "Five members of a family, including three children, were found shot dead".
    re.compile(rf"\b(?P<n>{NUM})\s+(?:(?:other|more)\s+)?(?:(?:{_PEOPLE}|(?:family\s+)?members(?:\s+of\s+(?:a|the|his|"
               r"her|their)\s+(?:[A-Z]\w+\s+)?family)?)\b(?:,[^.]{0,40}?,)?\s+)?"
               rf"{_BE}(?:found\s+)?(?:killed|died|dead|confirmed dead|"
               r"pronounced dead|lost their lives|(?:shot|stabbed|beaten) (?:dead|to death|and killed)|"
               r"fatally (?:shot|stabbed|injured|wounded))\b", _I),
    # "Three people were shot, one fatally", "two of them died", "two of the family members found dead".
    re.compile(rf"\b(?P<n>{NUM})\s+(?:of\s+(?:them|whom|those|the(?:\s+\w+){{1,2}}?)\s+)?{_BE}(?:later\s+|found\s+)?"
               r"(?:fatally|died|killed|dead)\b", _I),
    # Not at the end of a headline: feeds cut "kills 14-year-old" at the hyphen.
    # A killer who then killed himself is one more dead: "killing 3, then killed himself".
    re.compile(rf"(?<!attempted )\b(?:kill(?:s|ed|ing)|killings?\s+of|murder(?:s|ed|ing)?(?:\s+of)?|deaths\s+of)\s+"
               rf"(?P<n>{NUM})\b"
               r"(?![-\s]*(?:hours?|days?|minutes?|years?|months?)\b)(?!-[a-z])(?!\s*$)"
               r"(?P<self>[^.]{0,60}?\b(?:then|before)\s+(?:killing|killed|kills|shooting|shot|shoots|turning|turned|"
               r"turns)\s+(?:the\s+gun\s+on\s+)?(?:him|her)self\b(?![^.]{0,30}\battempted suicide))?", _I),
    re.compile(rf"\bdeath toll\s+(?:has\s+)?(?:risen|rose|rises|stands|stood|is)\s+(?:to|at)\s+(?P<n>{NUM})\b", _I),
    re.compile(rf"\ba\s+(?P<ord>{ORD})\s+(?:{_PERSON_NOUN})\s+{_BE}(?:died|killed)\b", _I),
    re.compile(rf"\b(?P<n>{_MULTIPLE})[- ](?:homicide|murder|killing|fatal shooting)s?\b", _I),
    # "A shooting left a 7-year-old girl dead".
    re.compile(rf"\bleft\s+(?:an?|the|his|her|their)\s+(?:[\w-]+\s+){{0,2}}?(?:{_PERSON_NOUN}|{_KIN})\s+dead\b", _I),
)
# People named one after another and stated dead together: "a father and son were found shot to death", "Mother, 2
# children found dead", "killed his wife, son and daughter, then himself". Each item counts one, or its number.
_LISTED = (
    rf"\b(?:(?:his|her|their|a|an|the)\s+)?(?:(?P<n>{NUM})\s+(?!\d))?(?:(?:young|adult|teenage|infant|elderly)\s+)?"
    rf"(?:(?:\d{{1,3}}|{'|'.join(NUMBER_WORDS)})[- ](?:year|month)[- ]old(?:\s+{_KIN}(?:s|ren)?)?|{_KIN}(?:s|ren)?)\b"
    # An age after the person: "her father, 56, …" (", 2 sons" is the next person).
    r"(?:,\s*\d{1,3}\b,?(?=\s*(?:,|&|\b(?:and|were|are|was|dead|killed|found)\b)))?"
)
LISTED_PERSON = re.compile(_LISTED, _I)
_ITEM = _LISTED.replace("(?P<n>", "(?:")
_AND = r"(?:\s*,\s*(?:and\s+|then\s+)?|\s+and\s+(?:then\s+)?|\s+then\s+|\s*&\s*)"
_SELF = r"(?:him|her|them)sel(?:f|ves)"
# The people a verb acted on are not listed as its subjects: "a man who shot his wife and son was found dead".
_NOT_AN_OBJECT = (r"(?<!\bshot )(?<!\bkilled )(?<!\bshooting )(?<!\bkilling )(?<!\bstabbed )"
                  r"(?<!\bhis )(?<!\bher )(?<!\btheir )(?<!\ba )(?<!\ban )(?<!\bthe )")  # a list starts at its article
# Done to them, not by them: an auxiliary ("were killed"), or no object after the verb ("Woman, boyfriend killed in
# …"; not "a man and his son killed a neighbor").
_AUXILIARY = r"(?:were|are|was|is|have|has|had|been|being|both|all|each|also|later|now|found)"
_AN_OBJECT = r"\s+(?:a|an|the|his|her|their|its|two|three|\d+|one|him|them|it)\b"


def _passive(verbs: str) -> str:
    return rf"\s+(?:(?:{_AUXILIARY}\s+)+(?:{verbs})\b|(?:{verbs})\b(?!{_AN_OBJECT}))"


LISTED_DEAD = (
    re.compile(rf"{_NOT_AN_OBJECT}(?P<list>{_ITEM}(?:{_AND}{_ITEM})+)"
               + _passive(r"(?:(?:shot|stabbed|beaten|burned)\s+(?:and\s+)?)?(?:dead|killed|to death|slain|murdered)"),
               _I),
    re.compile(rf"\b(?:killed|killing|kills|murdered|murdering|murder of|deaths of|bodies of)\s+"
               rf"(?P<list>{_ITEM}(?:{_AND}{_ITEM})+)(?P<self>(?:{_AND}{_SELF}|\s+before\s+(?:killing|shooting|"
               rf"turning\s+the\s+gun\s+on)\s+{_SELF})(?![^.]{{0,30}}\battempted suicide))?", _I),
)

# People named with their ages and stated dead together: "Dennie Reeves, 66 and Ginger Reeves, 64 were found dead",
# "Nicholas Lee Powers, 30; Demario Laquan Burnett, 21; and Jerry Trivon Coleman, 31 all died".
_NAMED = r"(?-i:[A-Z][a-z'’-]+(?:\s+(?:[A-Z][a-z'’-]+|[A-Z]\.|\"[A-Z][a-z]+\")){1,3}),\s*\d{1,3}\b"
NAMED_PERSON = re.compile(_NAMED)
NAMED_DEAD = re.compile(
    rf"(?P<list>{_NAMED}(?:\s*[,;]?\s*(?:and\s+)?{_NAMED})+),?\s+(?:(?:were|are|both|all|have|had|been|later)\s+)*"
    r"(?:found\s+(?:shot\s+)?dead|died|(?:shot\s+(?:and\s+)?)?killed|shot\s+(?:dead|to\s+death))\b",
    _I,
)

# People named one after another and stated hit together: "a 16-year-old boy and a 19-year-old man were each shot".
LISTED_HIT = re.compile(
    rf"{_NOT_AN_OBJECT}(?P<list>{_ITEM}(?:{_AND}{_ITEM})+)" + _passive(r"shot|stabbed|wounded|injured|hurt")
    + r"(?!\s+(?:dead|to death|and killed))",
    _I,
)
# A person who shot themselves: "a teen shot himself in the leg", "a self-inflicted gunshot wound".
SELF_INFLICTED = re.compile(rf"\b(?:shot|shoots|shooting|stabbed)\s+{_SELF}\b|\bself-inflicted\b", _I)
# People shot or stabbed, the dead among them included: "seven shot, one dead" leaves six injured. Two or more only:
# one person shot is no count ("a man was shot"), and "one shot" may be a gunshot.
HIT_PATTERNS = (
    # "Two other people were shot": others than the dead.
    # "Two teens, ages 14 and 16, were shot", "two people in their 20s shot".
    re.compile(rf"(?<!\ba )(?<!\bthe )\b(?P<n>{NUM})\s+(?:(?:other|more)\s+)?"
               rf"(?:{_PEOPLE}\b(?:,[^.]{{0,30}}?,|\s+in\s+their\s+\S+)?\s+)?{_BE}"
               r"(?:shot|stabbed|gunned down|hit(?!\s+by\s+an?\b))\b(?!\s+(?:dead|to death|and killed|glass))", _I),
    re.compile(rf"\b(?P<n>{_MULTIPLE})[- ](?:shooting|stabbing)s?\b", _I),
    # "Man claims self-defense after shooting five people".
    re.compile(rf"\b(?:shot|shooting|shoots|stabbed|stabbing|stabs|wounding|wounded)\s+(?:at least\s+)?(?P<n>{NUM})\s+"
               rf"(?:other\s+)?{_PEOPLE}\b", _I),
)
ARREST_PATTERNS = (
    re.compile(r"\b(?:no arrests?|no one|nobody|no-one)\s+(?:has|have|had)?\s*(?:yet\s+)?(?:been\s+)?"
               r"(?:made|arrested)\b", _I),
    re.compile(rf"\b(?P<n>{NUM})\s+(?:(?:other|more|further)\s+)?(?:{_PEOPLE}\b(?:,[^.]{{0,40}}?,)?\s+)?{_BE}"
               r"(?:been\s+)?arrested\b", _I),
    re.compile(rf"\b(?P<n>{NUM})\s+arrests?\b", _I),
    re.compile(rf"\ba\s+(?P<ord>{ORD})\s+(?:\S+\s+){{0,2}}?(?:{_PERSON_NOUN})\b[^.]{{0,60}}?\barrested\b", _I),
    re.compile(rf"\b(?:an?|the)\s+(?:\S+\s+){{0,2}}?(?:{_PERSON_NOUN})\b[^.]{{0,80}}?\b(?:was|has been|had been|is)\s+"
               r"(?:also\s+|since\s+|now\s+)*arrested\b", _I),
    re.compile(rf"\barrested\s+(?:an?|the)\s+(?:\S+\s+){{0,2}}?(?:{_PERSON_NOUN})\b", _I),
    re.compile(r"\barrested on suspicion\b|\btaken into custody\b", _I),
    # US phrasing: "booked into the county jail", "turned himself in", "is being held in custody".
    re.compile(r"\bbooked into\b|\bturned (?:himself|herself|themselves) in\b|\bapprehended\b|"
               r"\b(?:is|was|are|were|remains?|remained|being held|held)\s+in\s+(?:police\s+)?custody\b", _I),
)
CHARGE_PATTERNS = (
    re.compile(rf"\b(?P<n>{NUM})\s+(?:(?:other|more|further)\s+)?(?:{_PEOPLE}\b(?:,[^.]{{0,40}}?,)?\s+)?{_BE}"
               r"(?:been\s+)?charged\b", _I),
    re.compile(rf"\ba\s+(?P<ord>{ORD})\s+(?:\S+\s+){{0,2}}?(?:{_PERSON_NOUN})\b[^.]{{0,60}}?\bcharged\b", _I),
    re.compile(r"\bcharged (?:with|in connection with)\b", _I),
)

# A sentence counting over a period, not one incident: "more than 750 people have been killed so far this year",
# "344 were killed in Baltimore last year".
TALLY = re.compile(
    r"\b(?:so far )?this year\b|\blast year\b|\bthis month\b|\blast month\b|\bsince (?:january|the (?:start|beginning) "
    r"of)\b|\bin (?:19|20)\d\d\b|\b(?:a|per|each) year\b|\bannual (?:toll|total|count|tally)\b|\bannually\b|"
    # An earlier incident told by its date: "August 1982: eight people killed".
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december) (?:19|20)\d\d\b|"
    # A video playlist beside the story: "0:47 Driver shot to death … Pause 0:43 …". The words after a time stop
    # before the next time: a match reaching past one also matches from it, and a sentence of thousands of times is
    # not read to its end from each.
    r"\b\d{1,2}:\d\d\s+(?:(?!\b\d{1,2}:\d\d\s)[^.])*\bPause\b|\bPause\s+\d{1,2}:\d\d\b|"
    # A city's toll over days: "among at least 13 people shot since Tuesday", "70 wounded over the holiday weekend",
    # "6 wounded in South Side shootings".
    r"\bamong (?:at least |more than )?(?:\d+|[a-z]+) (?:people|others|victims)\b|"
    r"\bsince (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\bover the (?:\w+ )?weekend\b|"
    r"\bin recent (?:days|weeks|months)\b|\b(?:weekend|separate|citywide) shootings\b|\bviolent (?:night|weekend)\b|"
    # The words between "in" and "shootings" stop before another "in" that could begin a match (at a word, or after
    # a hyphen): a match that ran through one still matches from it, so a sentence matches just as it would without
    # the stop, but each "in" of a long sentence no longer reads every word up to its end.
    r"\bin (?:(?!in )[A-Z](?:\w|-(?!in ))* )*shootings\b|"
    # Several incidents summed: "three shootings left six people wounded", "4 others injured in 3 overnight shooting
    # incidents", "in other Sunday attacks, at least eight people were shot".
    rf"\b(?:{NUM}|several|multiple) (?:(?:separate|overnight|different|unrelated) )*(?:shootings|(?:shooting )?"
    r"incidents|attacks)\b|\bin other (?:\w+ )?(?:attacks|shootings|incidents|violence)\b",
    re.I,
)

# --- investigations --------------------------------------------------------------------------------------------------

# Investigations someone only might open: "the IOPC will assess whether to investigate".
HEDGED = re.compile(r"\b(?:whether|will assess|would assess|to assess|to decide|considering|could open)\b", _I)
IOPC = re.compile(r"\b(?:IOPC|Independent Office for Police Conduct|police watchdog)\b", _I)
INVESTIGATION = re.compile(r"\binvestigat(?:ion|ions|ing|ors?)\b|\binquiry\b", _I)
OPENED = re.compile(
    r"\b(?:launch(?:ed|es|ing)?|open(?:ed|s|ing)?|start(?:ed|s|ing)?|beg(?:un|an|ins)|commenc(?:ed|es)|lead(?:s|ing)?|"
    r"carrying out|conducting|under ?way|investigating|independent investigation)\b",
    _I,
)
CLOSED = re.compile(
    r"\b(?:concluded|completed|closed|finished|ended)\s+(?:its|their|the|an?|his|her)?\s*(?:\w+\s+)?"
    r"(?:investigation|inquiry|inquest)\b|"
    r"\b(?:investigation|inquiry|inquest)s?\s+(?:has\s+|have\s+|was\s+|had\s+)?(?:now\s+)?(?:been\s+)?"
    r"(?:concluded|completed|closed|finished|ended)\b",
    _I,
)
CRIMINAL = re.compile(r"\bcriminal investigation\b", _I)
# A death police say is not suspicious is no crime: no criminal or murder investigation, whatever "police are
# investigating" said before.
NOT_SUSPICIOUS = re.compile(
    r"\bnot\s+(?:being\s+|been\s+)?(?:treated|considered|regarded|thought|believed)\s+(?:as\s+|to\s+be\s+)?"
    r"suspicious\b|\bno\s+suspicious\s+circumstances\b|\bnot\s+suspicious\b|\bno\s+(?:foul\s+play|third[- ]party)\b",
    _I,
)
MISCONDUCT = re.compile(r"\bmisconduct\b", _I)
MURDER = re.compile(r"\bmurder (?:investigation|inquiry)\b", _I)
# "An investigation has been launched": by the police unless the sentence names another body; the kind unsaid.
INVESTIGATION_LAUNCHED = re.compile(
    r"\b(?:an|a police)\s+investigation\s+(?:has\s+(?:now\s+)?been|was|had\s+been|is\s+being)\s+"
    r"(?:launched|opened|started|carried\s+out)\b",
    _I,
)
POLICE_INVESTIGATING = re.compile(
    r"\b(?:police|detectives|officers|the met|the force)\s+(?:have\s+|has\s+|had\s+)?(?:now\s+)?"
    r"(?:launched|opened|started|begun)\s+an?\s+(?:\w+\s+)?(?:investigation|inquiry)\b|"
    r"\b(?:police|detectives|officers)\s+(?:are|were|is)\s+(?:now\s+)?investigating\b",
    _I,
)
FIRE_INVESTIGATION = re.compile(
    r"\bfire investigat(?:ion|ors?)\b|\bcause of the (?:fire|blaze)\b[^.]{0,40}?\binvestigat", _I
)
HSE = re.compile(r"\b(?:Health and Safety Executive|HSE)\b", re.I)
INQUEST = re.compile(r"\binquest\b|\bcoroner'?s? investigation\b", _I)

# --- quoted speech ---------------------------------------------------------------------------------------------------

QUOTE = re.compile(r"[\"“](?P<quote>[^\"“”]{20,}?)[\"”]")
# `"…," said Chief Superintendent X, who…` or `"…," Chief Superintendent X said.`
SPEAKER_AFTER = re.compile(
    r"^\s*,?\s*(?:(?:said|says|added|explained|stated)\s+(?P<after>[^.,;:\"“”]{2,80})|"
    r"(?P<before_verb>(?:[A-Z]|(?:one|a|an|the)\s)[^.,;:\"“”]{1,80}?)\s+(?:said|says|added)\b)"
)
# `A Met Police spokesperson said: "…"`
SPEAKER_BEFORE = re.compile(
    r"(?P<speaker>(?:[Aa]n?\s+|[Tt]he\s+)?[A-Z][^.;:\"“”]{1,150}?)\s+(?:said|says|added|stated|explained)"
    r"(?:\s+in\s+a\s+statement)?\s*[:,]\s*$"
)
LEADING_ARTICLE = re.compile(r"^(?:a|an|the|one)\s+", _I)
# Parts of an attribution that do not name the speaker: "Speaking at the scene, X said", "X, who leads…, said".
NOT_A_NAME = re.compile(r"^\w+ing\b|^(?:who|which|whose)\b", _I)
PRONOUN = re.compile(r"^(?:he|she|they|it|we|i|you)$", _I)
