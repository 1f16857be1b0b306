"""Fuzzing the parse boundary with mutated corpus documents: every document gives a ParsedFeed within the bounds of
the normalised form, or a one-line FeedError; none crashes, none goes past its per-document CPU time or memory.

Each document is parsed by a ParserPool process, so the limits are the kernel's: a hang or a blow-up shows as that
document's refusal (and fails the test) instead of stopping the suite. Examples are derandomised: every run parses
the same documents.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from services.errors import FeedError
from services.poller.parse import (
    MAX_ENTRIES,
    MAX_REF_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_WARNINGS,
    ParsedFeed,
)
from services.poller.parser_pool import ParserPool
from tests.fuzz.mutations import corpus_documents, mutated_documents

CPU_S_PER_DOCUMENT = 10
MEMORY_PER_DOCUMENT = 256 * 2**20
# What a refusal says when a limit stopped the parse rather than the document being unusable.
LIMIT_HIT = ("took more than", "needed more than", "did not finish", "parser process died")

_pool: ParserPool | None = None


@pytest.fixture(scope="module", autouse=True)
def parsers() -> Iterator[ParserPool]:
    global _pool
    _pool = ParserPool(1, cpu_s=CPU_S_PER_DOCUMENT, cpu_s_per_mb=0, memory_bytes=MEMORY_PER_DOCUMENT)
    yield _pool
    _pool.close()
    _pool = None


def check_outcome(document: bytes) -> None:
    """Parse `document` under the limits; assert the outcome is a bounded ParsedFeed or a plain FeedError."""
    assert _pool is not None
    try:
        parsed = _pool.parse(document, feed="fuzz")
    except FeedError as error:
        reason = error.reason
    else:
        check_bounds(parsed)
        return
    assert reason, "a refusal gives its reason"
    assert "\n" not in reason
    assert not any(hit in reason for hit in LIMIT_HIT), f"{reason} ({len(document)} bytes)"


def check_bounds(parsed: ParsedFeed) -> None:
    assert len(parsed.entries) <= MAX_ENTRIES
    assert len(parsed.warnings) <= MAX_WARNINGS + 1
    assert all("\n" not in warning for warning in parsed.warnings)
    for entry in parsed.entries:
        assert len(entry.title) <= MAX_TITLE_CHARS
        assert entry.title == " ".join(entry.title.split())
        assert len(entry.text) <= MAX_TEXT_CHARS
        assert len(entry.guid or "") <= MAX_REF_CHARS
        assert len(entry.link or "") <= MAX_REF_CHARS
        entry.model_dump_json()  # nothing that cannot be written (lone surrogates, say)


def test_the_corpus_is_there() -> None:
    assert len(corpus_documents()) >= 2_200


@settings(max_examples=500, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_documents())
def test_mutated_corpus_documents_give_a_feed_or_a_feed_error_within_their_limits(document: bytes) -> None:
    check_outcome(document)
