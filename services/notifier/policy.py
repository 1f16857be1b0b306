"""When a webhook delivery is retried, and after how long: pure functions, table-tested.

2xx is success. 408, 409, 425, 429 and every 5xx may work later, and so may a network error or a timeout (no
status); any other status (3xx, 4xx) will fail the same way again and goes to the dead letters at once. Waits grow
exponentially with full jitter (a uniform draw between 0 and the capped exponential), so many hooks failing together
do not retry in step; a receiver's `Retry-After` (on 429 and 503) replaces the draw, even above the cap.
"""

from __future__ import annotations

import random
from datetime import datetime
from enum import StrEnum

from services.poller.schedule import parse_retry_after

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class Verdict(StrEnum):
    delivered = "delivered"
    retry = "retry"
    permanent = "permanent"


def verdict(status: int | None) -> Verdict:
    """What a receiver's answer means; `None` is no answer at all (network error, timeout)."""
    if status is None:
        return Verdict.retry
    if 200 <= status < 300:
        return Verdict.delivered
    if status >= 500 or status in _RETRYABLE_4XX:
        return Verdict.retry
    return Verdict.permanent


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """The wait after failed attempt number `attempt` (1 for the first): uniform in [0, min(cap, base·2^(attempt-1))]
    ("full jitter")."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt - 1, 0), 60))
    return rng.uniform(0.0, ceiling)


def retry_after_s(status: int | None, value: str | None, now: datetime) -> float | None:
    """The wait a receiver asked for: its `Retry-After` (seconds or an HTTP date) on a 429 or 503, else None."""
    if status not in _RETRY_AFTER_STATUSES or not value:
        return None
    return parse_retry_after(value.strip(), now)


def next_wait_s(attempt: int, asked_s: float | None, base_s: float, cap_s: float, rng: random.Random) -> float:
    """How long to wait before the next attempt: what the receiver asked for if it did, else the jittered backoff."""
    return asked_s if asked_s is not None else backoff_s(attempt, base_s, cap_s, rng)
