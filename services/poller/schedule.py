"""When to poll a feed next: one pure function, `next_check` (design §7.4, after miniflux `Feed.ScheduleNextCheck`).

No I/O, no clock, no global randomness: the caller passes `now` and a `jitter` draw, so every decision is
reproducible in a table test. Precedence, politeness first:

1. `Retry-After` (RFC 9110 §10.2.3) is a floor over everything else, errors and hot feeds included; it alone may go
   past `max_interval_s`, up to `hard_cap_s` (a server asking for a week gets the cap: a feed is never given up).
2. An error backs off: `backoff_base_s * 2**(n-1)` for the n-th error in a row, capped at `max_interval_s`; after
   `dead_after_errors` the feed stays at the maximum and the reason says "dead", for reporting.
3. A feed with a verified WebSub subscription (now < `push_until`) is polled at `max_interval_s`, as a fallback: its
   hub pushes every change as it happens, faster than any poll.
4. A hot feed (now < `hot_until`) is polled at `hot_interval_s`, overriding the cache hints below: they describe a
   document's usual freshness, not a breaking story, and one GET a minute is still polite.
5. Cache hints (`Cache-Control: max-age` or `Expires`, RFC 9111 §4.2.1; RSS `<ttl>`; `sy:updatePeriod`) are a floor
   under the adaptive interval, never above `max_interval_s`.
6. Adaptive: half the feed's mean gap between entries (`1 day / entries_per_day / 2`); `default_interval_s` while the
   rate is unknown.

Everything except Retry-After is clamped to [`min_interval_s`, `max_interval_s`] and spread by ±`jitter_fraction`
(Retry-After only upwards: never earlier than the server asked).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from services.errors import ConfigurationError, LivedeskError, PermanentError

ErrorKind = Literal["transient", "permanent", "rate_limited"]
DAY_S = 86_400.0
_DELAY = re.compile(r"\s*(\d+)\s*")
_MAX_AGE = re.compile(r'^\s*max-age\s*=\s*"?(\d+)"?\s*$', re.IGNORECASE)


@dataclass(frozen=True)
class SchedulePolicy:
    """The knobs of `next_check`, all in seconds; `__post_init__` refuses an inconsistent policy at start-up."""

    min_interval_s: float = 60.0
    max_interval_s: float = 3_600.0
    default_interval_s: float = 300.0
    hot_interval_s: float = 60.0
    hot_quiet_s: float = 3_600.0
    backoff_base_s: float = 60.0
    dead_after_errors: int = 10
    hard_cap_s: float = DAY_S
    jitter_fraction: float = 0.1
    rate_window_s: float = 7 * DAY_S
    rate_min_span_s: float = 3_600.0
    max_tracked_entries: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.min_interval_s <= self.max_interval_s <= self.hard_cap_s:
            raise ConfigurationError("schedule: need 0 < min_interval_s <= max_interval_s <= hard_cap_s")
        if not self.min_interval_s <= self.hot_interval_s <= self.max_interval_s:
            raise ConfigurationError("schedule: hot_interval_s must lie within [min_interval_s, max_interval_s]")
        if not 0 <= self.jitter_fraction < 1:
            raise ConfigurationError("schedule: jitter_fraction must be in [0, 1)")
        if min(self.backoff_base_s, self.default_interval_s, self.hot_quiet_s, self.rate_window_s) <= 0:
            raise ConfigurationError("schedule: durations must be positive")
        if min(self.dead_after_errors, self.max_tracked_entries, self.rate_min_span_s) < 1:
            raise ConfigurationError("schedule: counts and rate_min_span_s must be at least 1")


@dataclass(frozen=True)
class FeedSchedule:
    """What the scheduler remembers about one feed between polls.

    Attributes:
        consecutive_errors: Failed polls in a row; 0 after any success.
        entry_times: Publish times of recent entries (sorted, aware, at most `max_tracked_entries`).
        entries_per_day: The publishing rate estimated from `entry_times`; None until a document has been read.
        hot_until: Set by the incident tracker (see `mark_hot`); the feed is hot while now < hot_until.
        push_until: End of the lease of a verified WebSub subscription (set by the callback); None when not pushed.
        last_interval_s: The interval chosen last time, None before the first decision.
    """

    consecutive_errors: int = 0
    entry_times: tuple[datetime, ...] = ()
    entries_per_day: float | None = None
    hot_until: datetime | None = None
    last_interval_s: float | None = None
    push_until: datetime | None = None


@dataclass(frozen=True)
class PollOutcome:
    """What one poll said that matters for scheduling.

    Attributes:
        status: The HTTP status; None when no response came (timeout, refused, DNS).
        error: None on success (200 or 304), else the kind from `error_kind`.
        headers: The response headers (any case); Retry-After, Cache-Control, Expires, Date and Age are read.
        ttl_s: RSS `<ttl>` in seconds (`ParsedFeed.ttl_s`).
        update_period_s: `sy:updatePeriod / sy:updateFrequency` in seconds (`ParsedFeed.update_period_s`).
        new_entries: New entries found in this document.
        entry_times: Publish (or update) times of the dated entries in the document; undated new entries count as
            published now.
    """

    status: int | None = 200
    error: ErrorKind | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ttl_s: float | None = None
    update_period_s: float | None = None
    new_entries: int = 0
    entry_times: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class ScheduleDecision:
    """When to poll next and why; `state` is what to store for the next call."""

    next_due: datetime
    interval_s: float
    reason: str
    state: FeedSchedule


def error_kind(exc: LivedeskError, status: int | None) -> ErrorKind:
    """The scheduling kind of a poll failure: 429 is "rate_limited", the error tree decides the rest."""
    if status == 429:
        return "rate_limited"
    return "permanent" if isinstance(exc, PermanentError) else "transient"


def mark_hot(state: FeedSchedule, changed_at: datetime, policy: SchedulePolicy) -> FeedSchedule:
    """The state after an incident this feed reported changed at `changed_at`: hot until it has been quiet long enough.

    Never shortens an existing hot period (an older change arriving late must not cool a feed down).
    """
    until = changed_at + timedelta(seconds=policy.hot_quiet_s)
    if state.hot_until is not None and state.hot_until >= until:
        return state
    return dataclasses.replace(state, hot_until=until)


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # RFC 9110 §5.6.7: an HTTP-date is always UTC; the asctime form parses without a zone.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date).

    Returns:
        The delay, >= 0 (a date in the past is 0); None when the value is neither form.
    """
    if match := _DELAY.fullmatch(value):
        return float(match.group(1))
    when = _http_date(value)
    return None if when is None else max(0.0, (when - now).total_seconds())


def _freshness(lowered: Mapping[str, str], now: datetime) -> tuple[float, str] | None:
    directives = [d.strip() for d in lowered.get("cache-control", "").split(",") if d.strip()]
    age_text = lowered.get("age", "").strip()
    age = float(age_text) if age_text.isdigit() else 0.0
    if any(d.lower() in ("no-store", "no-cache") for d in directives):
        return 0.0, "cache-control"
    for directive in directives:
        if match := _MAX_AGE.match(directive):
            return max(0.0, float(match.group(1)) - age), "cache-control"
    if "expires" not in lowered:
        return None
    expires = _http_date(lowered["expires"])
    if expires is None:
        return 0.0, "expires"
    date = _http_date(lowered.get("date", "")) or now
    return max(0.0, (expires - date).total_seconds() - age), "expires"


def cache_lifetime_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long the response stays fresh from `now` (RFC 9111 §4.2.1, §4.2.3), as a private cache would see it.

    `max-age` wins over `Expires` (§5.3); the first `max-age` is used when repeated (§4.2.1); `Age` is subtracted.
    `Expires` is measured from the response's `Date` when it has one, so a server with a wrong clock still means
    what it says; an invalid `Expires` (such as "0") means already stale (§5.3). `no-store`/`no-cache` mean 0.

    Returns:
        Seconds >= 0, or None when the headers say nothing about freshness.
    """
    found = _freshness(_lower(headers), now)
    return None if found is None else found[0]


def _track_rate(
    state: FeedSchedule, outcome: PollOutcome, policy: SchedulePolicy, now: datetime
) -> tuple[tuple[datetime, ...], float]:
    """Recent entry times merged with this document's, and entries per day over the span they cover."""
    undated = max(0, outcome.new_entries - len(outcome.entry_times))
    seen = set(state.entry_times)
    # Times are stored as served (a future date is kept, not clipped to now, or it would be re-added at every poll).
    fresh = [t for t in outcome.entry_times if t not in seen]
    merged = sorted([*state.entry_times, *fresh, *[now] * min(undated, policy.max_tracked_entries)])
    window_start = now - timedelta(seconds=policy.rate_window_s)
    kept = tuple(t for t in merged if t >= window_start)[-policy.max_tracked_entries :]
    if len(kept) < 2:
        return kept, 0.0
    # Gaps over the span from the oldest kept entry to now: exact for a regular feed, falling for a feed gone quiet,
    # and right on the first poll (a feed showing its last 20 entries covers hours or weeks). The span is bounded
    # below so two entries a minute apart do not look like a torrent.
    span_s = min(policy.rate_window_s, max(policy.rate_min_span_s, (now - kept[0]).total_seconds()))
    return kept, (len(kept) - 1) * DAY_S / span_s


def _success_interval(
    state: FeedSchedule, outcome: PollOutcome, policy: SchedulePolicy, now: datetime
) -> tuple[float, str]:
    if state.push_until is not None and now < state.push_until:
        return policy.max_interval_s, "push"
    if state.hot_until is not None and now < state.hot_until:
        return policy.hot_interval_s, "hot"
    rate = state.entries_per_day
    if rate is None:
        interval, reason = policy.default_interval_s, "default"
    elif rate > 0:
        interval, reason = DAY_S / rate / 2, "adaptive"
    else:
        interval, reason = policy.max_interval_s, "max"
    hints: list[tuple[float | None, str]] = [(outcome.ttl_s, "ttl"), (outcome.update_period_s, "update-period")]
    if (freshness := _freshness(_lower(outcome.headers), now)) is not None:
        hints.append(freshness)
    for hint, name in hints:
        if hint is not None and hint > interval:
            interval, reason = hint, name
    return (policy.max_interval_s, "max") if interval > policy.max_interval_s else (interval, reason)


def next_check(
    state: FeedSchedule, outcome: PollOutcome, policy: SchedulePolicy, now: datetime, jitter: float
) -> ScheduleDecision:
    """Decide when to poll a feed next, from its state and the outcome of the poll that just ended.

    Args:
        state: The feed's stored schedule state.
        outcome: What the poll returned (success or failure).
        policy: The knobs.
        now: The current time, timezone-aware.
        jitter: A uniform draw in [0, 1); 0.5 means no spread. The same inputs always give the same decision.

    Returns:
        A decision with now < next_due, interval_s in [min_interval_s, hard_cap_s] (above max_interval_s only for a
        Retry-After), a short reason ("retry-after", "backoff", "dead", "push", "hot", "cache-control", "expires",
        "ttl", "update-period", "adaptive", "default", "max") and the state to store: errors reset on success and
        counted on failure, the entry rate updated from the document.

    Raises:
        ValueError: `now` is naive or `jitter` is outside [0, 1).
    """
    if now.tzinfo is None or not 0 <= jitter < 1:
        raise ValueError("next_check needs an aware `now` and a jitter in [0, 1)")
    if outcome.error is not None:
        errors = state.consecutive_errors + 1
        state = dataclasses.replace(state, consecutive_errors=errors)
        if errors >= policy.dead_after_errors:
            base, reason = policy.max_interval_s, "dead"
        else:
            # The exponent is bounded before it is used, so a feed dead for years cannot overflow a float.
            base, reason = policy.backoff_base_s * 2.0 ** min(errors - 1, 60), "backoff"
    else:
        state = dataclasses.replace(state, consecutive_errors=0)
        # A 304 before any document was read says nothing about the rate; otherwise the window still slides.
        if outcome.status != 304 or state.entries_per_day is not None:
            times, rate = _track_rate(state, outcome, policy, now)
            state = dataclasses.replace(state, entry_times=times, entries_per_day=rate)
        base, reason = _success_interval(state, outcome, policy, now)
    spread = 1 + policy.jitter_fraction * (2 * jitter - 1)
    interval = min(policy.max_interval_s, max(policy.min_interval_s, base * spread))
    retry_text = _lower(outcome.headers).get("retry-after")
    retry_after = parse_retry_after(retry_text, now) if retry_text is not None else None
    if retry_after is not None and retry_after >= interval:
        # Only upwards: the server said "not before", and many clients told the same instant would come back at once.
        delayed = retry_after * (1 + policy.jitter_fraction * jitter)
        interval = min(policy.hard_cap_s, max(policy.min_interval_s, delayed))
        reason = "retry-after"
    state = dataclasses.replace(state, last_interval_s=interval)
    return ScheduleDecision(now + timedelta(seconds=interval), interval, reason, state)
