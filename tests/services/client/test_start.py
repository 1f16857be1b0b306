"""Where a new consumer group starts: the `start` argument as a Redis stream id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.client import start_id


@pytest.mark.parametrize(("start", "expected"), [
    ("$", "$"), ("0", "0"), ("1761297600000-3", "1761297600000-3"), (" 1761297600000 ", "1761297600000"),
])
def test_strings_are_stream_ids(start: str, expected: str) -> None:
    """`$`, `0` and stream ids (with or without a sequence) are passed through."""
    assert start_id(start) == expected


def test_a_time_starts_just_before_its_millisecond() -> None:
    """A datetime includes events written in its own millisecond, whatever its timezone."""
    at = datetime(2025, 10, 24, 9, 20, tzinfo=UTC)
    ms = int(at.timestamp() * 1000)
    assert start_id(at) == f"{ms - 1}-18446744073709551615"
    assert start_id(at.astimezone(timezone(timedelta(hours=2)))) == start_id(at)
    assert start_id(datetime(1970, 1, 1, tzinfo=UTC)) == "0"


@pytest.mark.parametrize("start", [">", "yesterday", "12-ab", "", datetime(2025, 1, 1)])
def test_anything_else_is_refused(start: str | datetime) -> None:
    """Other text and naive datetimes raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="start="):
        start_id(start)
