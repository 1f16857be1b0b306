"""Screening patterns by the text their matches must contain: a text is skipped only when a pattern cannot match."""

from __future__ import annotations

import re
import string
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tracker import casualties, extract, places
from services.tracker import patterns as p


def every_pattern() -> list[re.Pattern[str]]:
    """Every compiled pattern the extractor's modules define, alone or in their tables."""
    found: list[re.Pattern[str]] = []
    for module in (p, extract, casualties, places):
        for value in vars(module).values():
            items = value if isinstance(value, tuple) else (value,)
            found += [item.pattern if isinstance(item, p.Rule) else item for item in items
                      if isinstance(item, re.Pattern | p.Rule)]
    return found


PATTERNS = every_pattern()


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"\bcordons?\b", ("cordon",)),
    (r"\b(?:shot|stabbed) dead\b", ("shot dead", "stabbed dead")),  # a run spells each alternative
    (r"fatally (?:shot|stabbed)?", ("fatally ",)),  # an optional part ends no run
    (r"\bkill(?:ed|s)?\b|\bmurder", ("kill", "murder")),
    (r"\b(?:an?\s+)?arrest", ("arrest",)),  # an optional part requires nothing
    (r"(?:police\s+)?(?:officer|PC)s?", ("officer", "pc")),
    (r"\bno(?:\s+\w+)?\s+risk\b", ("risk",)),  # the longest run wins over the short one
    (r"[Cc]ordon", ("cordon",)),
    (r"(?=\s+was)\bhit\b", ("hit",)),  # a lookahead is not part of the match: nothing is required of it
    (r"\d+(?:—|-)\d", ("-", "—")),  # characters without case count beyond ASCII
    (r"(?:a|b)?\w+", None),  # nothing required
    (r"fianc[eé]", ("fianc",)),
])
def test_needles_are_read_from_the_syntax_tree(pattern: str, expected: tuple[str, ...] | None) -> None:
    """The needles of a pattern are the literal runs one of which every match holds, in lower case; none when a match
    may hold no particular text."""
    assert p.needles(re.compile(pattern, re.IGNORECASE)) == expected


def test_the_case_equivalents_are_those_of_the_regex_engine() -> None:
    """Every character beyond ASCII that the regex engine, ignoring case, takes for an ASCII letter folds to it."""
    letter = re.compile("[a-z]", re.IGNORECASE)
    equivalent = [chr(code) for code in range(128, sys.maxunicode + 1) if letter.fullmatch(chr(code))]
    assert equivalent, "the engine knows some (the Kelvin sign, the dotted capital I)"
    for char in equivalent:
        assert p.fold(char) in string.ascii_lowercase, f"{char!r} (U+{ord(char):04X}) folds to {p.fold(char)!r}"


def test_a_text_of_case_equivalents_is_not_skipped() -> None:
    """"KİLLED" with a dotted capital I and a Kelvin sign matches "killed" ignoring case: the screen lets it through."""
    pattern = re.compile(r"\bkilled\b", re.IGNORECASE)
    text = "The man was \u212a\u0130LLED outside"
    assert pattern.search(text)
    assert p.search(pattern, text) is not None


ODD_WORDS = ("the", "a", "man", "woman", "was", "were", "police", "shot", "dead", "killed", "two", "3", "in", "at", ",",
             ".", "-", "—", "’", "\u0130", "\u212a")
VOCABULARY = sorted({needle for pattern in PATTERNS for needle in p.needles(pattern) or ()} | set(ODD_WORDS))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=6)), max_size=14),
       st.lists(st.sampled_from(VOCABULARY), max_size=3))
def test_a_screened_pattern_finds_what_the_pattern_finds(words: list[str], capitalised: list[str]) -> None:
    """On texts made of the patterns' own words (some in capitals), odd characters among them, every pattern finds
    through its screen exactly what it finds alone."""
    text = " ".join(words + [word.upper() for word in capitalised])
    for pattern in PATTERNS:
        expected = [m.span() for m in pattern.finditer(text)]
        assert [m.span() for m in p.finditer(pattern, text)] == expected, pattern.pattern
        assert (p.search(pattern, text) is None) == (not expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=4)), max_size=6), max_size=8),
       st.sampled_from(["", " ", "\n", "ing "]))
def test_the_screens_by_sentence_are_those_that_could_match_each_sentence(sentences: list[list[str]],
                                                                            glue: str) -> None:
    """`by_sentence` reads off the whole text which screens could match each sentence: for every sentence exactly
    those `could_match` lets through, in order, whether a needle recurs, spans two sentences or is cut by one."""
    folded = [p.fold(glue.join(words)) for words in sentences]
    screens = [p.screen(pattern) for pattern in PATTERNS]
    expected = [[k for k, screen in enumerate(screens) if screen.could_match(sentence)] for sentence in folded]
    assert p.by_sentence(screens, folded) == expected


def test_a_needle_across_two_sentences_is_in_neither() -> None:
    """The sentences are searched joined by newlines: a needle that holds one ("a\\nb") found across the join of two
    sentences is in neither of them, and one found inside a sentence that holds a newline is in that sentence."""
    joined = p.Screen(re.compile("a\nb"), ("a\nb",))
    assert p.by_sentence([joined], ["xa", "by", "a\nb", "z"]) == [[], [], [0], []]
    assert p.by_sentence([joined], ["xa", "b"]) == [[], []]


def test_every_table_pattern_has_a_screen_or_runs_as_it_is() -> None:
    """Most table patterns are screened (the reason the extractor is fast); those that are not still run."""
    screened = [pattern for pattern in PATTERNS if p.screen(pattern).needles is not None]
    assert len(screened) >= 0.8 * len(PATTERNS)
    unscreened = next(pattern for pattern in PATTERNS if p.screen(pattern).needles is None)
    assert p.screen(unscreened).could_match("")


@pytest.mark.parametrize(("pattern", "flags"), [
    (r"\bshot\b", 0),  # case matters: no folded form
    (r"(?P<list>(?-i:[A-Z][a-z]+)), \d+", re.IGNORECASE),  # case matters in part
    (r"\b(\w+) \1\b", re.IGNORECASE),  # a backreference
    (r"\b5 µg\b", re.IGNORECASE),  # a letter the engine takes for two others ("µ", "μ", "Μ"): they fold apart
    (r"\bΣ\b", re.IGNORECASE),  # "σ", "ς": one capital, two lower cases
    (r"\bkid\b", re.IGNORECASE | re.ASCII),  # ASCII rules: the Kelvin sign is no "k" there, yet folds to one
])
def test_a_pattern_the_folded_text_would_not_keep_runs_as_it_is(pattern: str, flags: int) -> None:
    assert p.caseless(re.compile(pattern, flags)) is None


def test_a_pattern_ignoring_case_runs_over_the_folded_text() -> None:
    """Capitals in literals and classes are read in lower case; the groups are the same."""
    pattern = re.compile(r"\b(?P<n>[A-C]\d|Two) (?:Men|[^X\s]oys) Shot—(?=Dead)", re.IGNORECASE)
    folded_form = p.caseless(pattern)
    assert folded_form is not None
    assert not folded_form.flags & re.IGNORECASE
    text = "Police said TWO men shot—dead, b7 boys SHOT—DEAD and two xoys shot—dead"
    matches = [(m.span(), m.span("n")) for m in folded_form.finditer(p.fold(text))]
    assert matches == [(m.span(), m.span("n")) for m in pattern.finditer(text)]
    assert len(matches) == 2


def test_a_letter_with_one_case_equivalent_beyond_ascii_is_read_in_lower_case() -> None:
    pattern = re.compile(r"\bhis fiancé\b", re.IGNORECASE)
    folded_form = p.caseless(pattern)
    assert folded_form is not None
    text = "His fiancé and HIS FIANCÉ, not his fiance"
    assert [m.span() for m in folded_form.finditer(p.fold(text))] == [m.span() for m in pattern.finditer(text)]
    assert len(folded_form.findall(p.fold(text))) == 2


CASE_ODDITIES = ("\u0130", "\u0131", "\u017f", "\u212a", "é", "É", "ß", "ǅ", "ﬁ", "µ", "μ", "Σ", "ς")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(VOCABULARY), st.sampled_from(CASE_ODDITIES), st.text(max_size=6)),
                max_size=14),
       st.lists(st.sampled_from(VOCABULARY), max_size=3))
def test_a_pattern_finds_over_the_folded_text_what_it_finds_in_the_text(words: list[str],
                                                                       capitalised: list[str]) -> None:
    """Every pattern that runs over the folded text matches there where it matches in the text, its groups spanning
    the same positions, also among characters whose case the regex engine and `str.lower` treat apart."""
    text = " ".join(words + [word.upper() for word in capitalised])
    folded_text = p.fold(text)
    for pattern in PATTERNS:
        screen = p.screen(pattern)
        if screen.on_folded is None:
            continue
        expected = [m.regs for m in pattern.finditer(text)]
        assert [m.regs for m in screen.places(text, folded_text)] == expected, pattern.pattern
        assert (screen.first_place(text, folded_text) is None) == (not expected)


def test_most_patterns_that_ignore_case_run_over_the_folded_text() -> None:
    """The reason the extractor's alternatives of many words are fast (`patterns.caseless`)."""
    ignoring_case = [pattern for pattern in PATTERNS if pattern.flags & re.IGNORECASE]
    folded_forms = [pattern for pattern in ignoring_case if p.screen(pattern).on_folded is not None]
    assert len(folded_forms) >= 0.9 * len(ignoring_case)


def test_a_text_spelt_with_case_equivalents_is_read_as_the_letters_they_stand_for() -> None:
    """"ſecond", "ſix", "gİrl", "thırd": the engine ignoring case takes them for "second", "six", "girl", "third",
    and so do the labels and counts read from its matches."""
    odd = extract.extract("Shooting in Leyton", "A ſecond man was shot dead. ſix people were shot. A gİrl, and a "
                                                "thırd man were stabbed.")
    plain = extract.extract("Shooting in Leyton", "A second man was shot dead. six people were shot. A girl, and a "
                                                  "third man were stabbed.")
    assert [c.label for c in odd.casualties] == [c.label for c in plain.casualties] == ["second man", "girl",
                                                                                        "third man"]
    assert odd.injured is not None
    assert plain.injured is not None
    assert odd.injured.value == plain.injured.value == 5  # six shot, one of them dead
