"""Fuzzing the tracker's fact extractor (the rules behind services.tracker.extractors) with texts made of incident
phrasing, numbers, names, punctuation and arbitrary characters: no text makes it raise, go past its per-text CPU
time, or state a snippet longer than its contract allows.

Each text is extracted in a child process under a CPU limit (tests.support.bounded_calls), so a catastrophic
pattern shows as that text going past its limit instead of stopping the suite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.poller.parse import MAX_TEXT_CHARS
from services.tracker.extract import SNIPPET_CHARS
from tests.support.bounded_calls import BoundedCalls

CPU_S_PER_TEXT = 10

PHRASES = (
    "A man was shot by police", "in Walthamstow, east London,", "on Friday.", "He is in a critical condition",
    "now stable", "non-life-threatening but possibly life-changing", "The IOPC has launched an independent "
    "investigation.", "A cordon remains in place", "was lifted", "There is no wider risk to the public.",
    "two men were injured", "four dead", "three people were killed and 12 wounded", "a 17-year-old boy",
    "was arrested on suspicion of murder", "has been charged", "police said", '"We are appalled," he said.',
    "MACON, Ga. (AP) —", "SANTA CRUZ COUNTY HOMICIDES 2016 Jan. 5:", "not being treated as terror-related",
    "initially", "had been", "Mr.", "St.", "No.", "U.S.", "who entered the home", "a father and son",
    "shot dead", "fighting for life", "died in hospital", "a stabbing", "a fire broke out", "collision",
    "Chicago", "Texas", "Birmingham", "1,000", "4,000 calls a year", "twenty", "a dozen", "double shooting",
)


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Phrases and arbitrary text joined by arbitrary separators, a piece of it perhaps repeated."""
    pieces = draw(st.lists(st.sampled_from(PHRASES) | st.text(max_size=40), max_size=40))
    separators = st.sampled_from([" ", ". ", ", ", "\n", " — ", "", '" ', "; ", "... "])
    text = "".join(piece + draw(separators) for piece in pieces)
    if text and draw(st.booleans()):
        start = draw(st.integers(0, len(text) - 1))
        piece = text[start:start + draw(st.integers(1, 60))]
        at = draw(st.integers(0, len(text)))
        text = text[:at] + piece * draw(st.integers(2, 4_000 // len(piece) + 2)) + text[at:]
    return text


@pytest.fixture(scope="module")
def extractor() -> Iterator[BoundedCalls]:
    with BoundedCalls("tests.support.hostile_calls:extract_summary", CPU_S_PER_TEXT) as calls:
        yield calls


_extractor: list[BoundedCalls] = []


@pytest.fixture(autouse=True)
def _bind(extractor: BoundedCalls) -> Iterator[None]:
    _extractor.append(extractor)
    yield
    _extractor.pop()


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(title=st.sampled_from(PHRASES) | st.text(max_size=200), text=texts())
def test_any_text_gives_facts_within_its_cpu_limit(title: str, text: str) -> None:
    outcome = _extractor[-1](title, text)
    assert outcome.error is None, outcome.error
    assert not outcome.over_limit, f"more than {CPU_S_PER_TEXT} s of CPU for a text of {len(text)} characters"
    assert outcome.value["longest_snippet"] <= SNIPPET_CHARS
    assert all(isinstance(count, int) and count >= 0 for count in outcome.value["counts"])


# Texts as long as the parse boundary lets through (MAX_TEXT_CHARS), each built to take a path of the extractor that
# was once quadratic (20-35 s of CPU each); an ordinary article of that length takes about 0.4 s.
QUADRATIC_TEXTS = {
    # _historical (extract.py) listed every clause break up to each match: one long sentence with many matches.
    "one-long-sentence": ("man shot and wounded and " * 4_000)[:MAX_TEXT_CHARS] + ".",
    # _historical (extract.py) searched a clause with no break for a background lead ("had been in a") at each match.
    "one-long-clause": ("man shot " * 12_000)[:MAX_TEXT_CHARS] + ".",
    # _part_of_a_name / _title_cased (places.py) reread the sentence for each capitalised candidate place.
    "capitalised-words": " ".join(["Walthamstow"] * 8_000)[:MAX_TEXT_CHARS],
    # split_sentences searched the growing sentence for an abbreviation at every piece it joined to it.
    "abbreviation-datelines": ("MACON, Ga. " * 9_000)[:MAX_TEXT_CHARS],
    # _owner (casualties.py) searched the sentence from its start for a count, a suspect, a pronoun at each condition.
    "many-counted-deaths": ("two people were killed " * 5_000)[:MAX_TEXT_CHARS],
    "many-unowned-conditions": ("was taken to hospital in a critical condition " * 3_000)[:MAX_TEXT_CHARS],
    # _owner (casualties.py) listed every person of the sentence before and after each condition.
    "many-people-found-dead": ("a man, his wife and two sons were found dead " * 3_000)[:MAX_TEXT_CHARS],
    # patterns.TALLY read every word from each "in" to the end of the sentence, looking for "in … shootings".
    "many-people-in-a-condition": ("a man in a critical condition " * 4_000)[:MAX_TEXT_CHARS],
    # patterns.TALLY read every word from each time to the end of the sentence, looking for a playlist's "Pause".
    "many-playlist-times": ("0:47 a man was shot " * 6_000)[:MAX_TEXT_CHARS],
    # _owner (casualties.py) walked back over every earlier person to each "the victim" naming no one (3 s here; 12 s
    # for twice as much).
    "victims-after-suspects": ("A man was held. " * 4_000)[:MAX_TEXT_CHARS // 2]
                              + ("The victim died. " * 4_000)[:MAX_TEXT_CHARS // 2],
}


@pytest.mark.parametrize("name", list(QUADRATIC_TEXTS))
def test_a_text_at_the_parse_boundary_limit_is_extracted_within_a_few_seconds(name: str) -> None:
    with BoundedCalls("tests.support.hostile_calls:extract_summary", 3) as extract:
        outcome = extract("title", QUADRATIC_TEXTS[name])
    assert outcome.error is None, outcome.error
    assert not outcome.over_limit, f"{name}: more than 3 s of CPU"
