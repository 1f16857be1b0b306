"""Whom a condition is about, when the sentence names no one (`casualties._Text.latest_before`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas import Role
from services.tracker.casualties import _FEMALE, _MALE, _Mention, _Text, _was_harmed

_NOUNS = ("man", "woman", "boy", "girl", "teenager", "officer")


def walked_back(mentions: list[_Mention], index: int, excluded: frozenset[str], harmed: bool) -> _Mention | None:
    """The answer by walking back from sentence `index`, one mention at a time."""
    for mention in reversed([m for m in mentions if m.sentence < index]):
        if mention.noun not in excluded and (not harmed or _was_harmed(mention)):
            return mention
    return None


@st.composite
def texts(draw: st.DrawFn) -> tuple[int, list[_Mention]]:
    sentences = draw(st.integers(1, 12))
    found = draw(st.lists(st.tuples(st.integers(0, sentences - 1), st.sampled_from(_NOUNS), st.sampled_from(Role)),
                          max_size=30))
    mentions = [_Mention(sentence, n, n + 1, noun, role, noun)
                for n, (sentence, noun, role) in enumerate(sorted(found, key=lambda m: m[0]))]
    return sentences, mentions


@given(texts())
def test_the_latest_person_before_a_sentence_is_the_one_walking_back_finds(text: tuple[int, list[_Mention]]) -> None:
    sentences, mentions = text
    read = _Text([f"sentence {i}." for i in range(sentences)], mentions)
    for index in range(sentences + 1):
        for excluded in (frozenset[str](), _MALE, _FEMALE):
            for harmed in (False, True):
                assert read.latest_before(index, excluded, harmed) == walked_back(mentions, index, excluded, harmed)
