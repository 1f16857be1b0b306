"""Finding the gazetteer's names in a sentence: by the first word of each name, exactly as one pattern of all names."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from services.dedup import stage as dedup_stage
from services.settings import Settings
from services.stage import StageContext
from services.tracker import places
from services.tracker import stage as tracker_stage

NAMES = sorted(places.GAZETTEER)
# Pieces that sit against a name and change whether it stands as a word: digits, underscores, letters, apostrophes.
JOINERS = (" ", " ", ", ", "-", "'s ", "5", "_", "x", ". ", "\n", "é")


def test_names_sharing_a_first_word_are_tried_longest_first() -> None:
    """"New York" and "New Haven" are tried at "New", the longer of two names that both match wins."""
    sentence = "Police in New York City and West Virginia, not New Yorkshire or 7London."
    found = [m.group() for m in places._known_places(sentence)]
    assert found == [m.group() for m in places._KNOWN.finditer(sentence)]
    assert "New York City" in found or "New York" in found
    assert "London" not in found


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(JOINERS)), min_size=1, max_size=12),
       st.integers(min_value=0, max_value=2**32))
def test_the_names_found_are_those_the_pattern_of_all_names_finds(named: list[tuple[str, str]], seed: int) -> None:
    """On sentences of names, cut and joined every which way, `_known_places` finds the matches `_KNOWN` finds."""
    rng = random.Random(seed)
    sentence = "".join(name[rng.randrange(0, 3) if rng.random() < 0.2 else 0 :] + joiner for name, joiner in named)
    expected = [(m.span(), m.group()) for m in places._KNOWN.finditer(sentence)]
    assert [(m.span(), m.group()) for m in places._known_places(sentence)] == expected


@pytest.mark.parametrize("build_router", [tracker_stage.build_router, dedup_stage.build_router],
                         ids=["tracker", "dedup"])
def test_the_stages_that_read_facts_load_the_gazetteer_when_built(
        build_router: Callable[[StageContext], object]) -> None:
    """Not at the first update, which would wait about a second for it, under its CPU bound."""
    places._towns.cache_clear()
    places._counties.cache_clear()
    build_router(StageContext(Settings(_env_file=None), Redis()))
    assert places._towns.cache_info().currsize == 1
    assert places._counties.cache_info().currsize == 1
    assert places.resolve_town("Olathe", "Kansas") is not None
