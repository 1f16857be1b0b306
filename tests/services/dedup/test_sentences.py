"""Sentence splitting (services.dedup.sentences): where one sentence of a news text ends and the next begins."""

from __future__ import annotations

import pytest

from services.dedup.sentences import split_sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        pytest.param("Mr. Smith was arrested. He was later released.", 2, id="title-abbreviation"),
        pytest.param("St. Mary's Road was closed. Police said it has reopened.", 2, id="saint"),
        pytest.param("Det. Insp. J. K. Smith said it was awful.", 1, id="ranks-and-initials"),
        pytest.param("He was shot at 10 a.m. Police arrived later.", 2, id="am-ends-sentence"),
        pytest.param("He was shot at 10 a.m. Friday in Leyton.", 1, id="am-before-a-day"),
        pytest.param("The U.S. Embassy said nothing.", 1, id="dotted-initialism"),
        pytest.param("No. 10 said nothing.", 1, id="number-abbreviation"),
        pytest.param('She said: "He is fighting for his life." Police made no comment.', 2, id="closing-quote"),
        pytest.param('"Help!" she shouted. Nobody came.', 2, id="exclamation-in-quote"),
        pytest.param("Cordon lifted\nThe road has reopened", 2, id="line-break"),
    ],
)
def test_split_sentences(text: str, sentences: int) -> None:
    """Sentence breaks survive news abbreviations, initials, times and quotes."""
    assert len(split_sentences(text)) == sentences, split_sentences(text)
