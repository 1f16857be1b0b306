"""Where a new consumer group starts reading the `changes` stream: `"$"`, `"0"`, a stream id or a time."""

from __future__ import annotations

import re
from datetime import datetime

# `$`: only events written from now on. `0`: every event the stream still holds. `<ms>-<seq>` or `<ms>`: the events
# after that stream id. A timezone-aware datetime: the events written at or after that instant.
Start = str | datetime

_STREAM_ID = re.compile(r"^\d+(-\d+)?$")
# The largest sequence number of a stream id: `<ms - 1>-<this>` is the last id before millisecond `ms`.
_MAX_SEQUENCE = 2**64 - 1


def start_id(start: Start) -> str:
    """The id to create (or reset) a consumer group at, which Redis treats as the last id already delivered.

    A stream id is exclusive, like Redis' own last-delivered id: pass the id of the last event you finished and the
    group resumes after it. A datetime is inclusive: an event written in its very millisecond is delivered, so the
    group is placed just before `<ms>-0`. Raises ValueError for anything else, including a naive datetime (whose
    meaning would depend on the machine's timezone).
    """
    if isinstance(start, datetime):
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start={start!r}: give a timezone-aware datetime (e.g. with tzinfo=UTC)")
        ms = int(start.timestamp() * 1000)
        return "0" if ms <= 0 else f"{ms - 1}-{_MAX_SEQUENCE}"
    text = start.strip()
    if text == "$" or _STREAM_ID.match(text):
        return text
    raise ValueError(f"start={start!r}: expected '$', '0', a stream id such as '1761297600000-0', or a datetime")
