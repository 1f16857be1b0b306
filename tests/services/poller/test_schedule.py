"""The scheduling policy: each rule of `next_check`, their precedence, and its header helpers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.errors import ConfigurationError, FeedError, FetchError
from services.poller.schedule import (
    FeedSchedule,
    PollOutcome,
    SchedulePolicy,
    cache_lifetime_s,
    error_kind,
    mark_hot,
    next_check,
    parse_retry_after,
)

NOW = datetime(2025, 10, 24, 12, 0, tzinfo=UTC)
HTTP_NOW = "Fri, 24 Oct 2025 12:00:00 GMT"
POLICY = SchedulePolicy()
NO_JITTER = 0.5  # the middle of [0, 1) spreads by nothing
UP = 1.05  # a Retry-After is only spread upwards: +5% at NO_JITTER
BUSY = tuple(NOW - timedelta(seconds=36 * i) for i in range(100))  # one entry every 36 s
HOT = FeedSchedule(hot_until=NOW + timedelta(minutes=30))
PUSHED = FeedSchedule(push_until=NOW + timedelta(days=5))
OK = PollOutcome(status=304)  # a 304 before any document: the rate is still unknown
TIMEOUT = PollOutcome(status=None, error="transient")


def unchanged(**fields: Any) -> PollOutcome:
    """A 304 carrying `fields`: with no document read yet, the rate stays unknown and only hints decide."""
    return PollOutcome(status=304, **fields)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def every(hours: float, count: int) -> tuple[datetime, ...]:
    """`count` entry times, one every `hours`, the newest now."""
    return tuple(ago(hours=hours * i) for i in range(count))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Fri, 24 Oct 2025 12:05:00 GMT", 300.0),
        ("Friday, 24-Oct-25 12:05:00 GMT", 300.0),
        ("Fri Oct 24 12:05:00 2025", 300.0),
        ("Fri, 24 Oct 2025 11:00:00 GMT", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
    ids=["seconds", "zero", "imf-fixdate", "rfc850", "asctime", "past-date", "negative", "fraction", "word", "empty"],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    """Retry-After is read as delay-seconds or any of the three HTTP-date forms; anything else is ignored."""
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Cache-Control": "public, max-age=600"}, 600.0),
        ({"cache-control": 'max-age="600"'}, 600.0),
        ({"CACHE-CONTROL": "MAX-AGE=600", "Age": "100"}, 500.0),
        ({"Cache-Control": "max-age=600, max-age=60"}, 600.0),
        ({"Cache-Control": "max-age=600", "Expires": "Fri, 24 Oct 2025 12:01:00 GMT"}, 600.0),
        ({"Expires": "Fri, 24 Oct 2025 12:10:00 GMT"}, 600.0),
        ({"Expires": "Fri, 24 Oct 2025 12:10:00 GMT", "Date": "Fri, 24 Oct 2025 11:00:00 GMT"}, 4200.0),
        ({"Expires": "0"}, 0.0),
        ({"Expires": "Fri, 24 Oct 2025 11:00:00 GMT"}, 0.0),
        ({"Cache-Control": "no-cache", "Expires": "Fri, 24 Oct 2025 13:00:00 GMT"}, 0.0),
        ({"Cache-Control": "private"}, None),
    ],
    ids=[
        "none",
        "max-age",
        "quoted",
        "any-case-minus-age",
        "first-max-age",
        "max-age-beats-expires",
        "expires",
        "expires-from-date",
        "invalid-expires-stale",
        "expired",
        "no-cache",
        "no-lifetime",
    ],
)
def test_cache_lifetime(headers: dict[str, str], expected: float | None) -> None:
    """Freshness follows RFC 9111: max-age over Expires, Age subtracted, Expires measured from Date."""
    assert cache_lifetime_s(headers, NOW) == expected


@pytest.mark.parametrize(
    ("state", "outcome", "interval", "reason"),
    [
        (FeedSchedule(), OK, 300.0, "default"),
        (FeedSchedule(), PollOutcome(), 3600.0, "max"),
        (FeedSchedule(), PollOutcome(entry_times=every(1, 48)), 1800.0, "adaptive"),
        (FeedSchedule(), PollOutcome(entry_times=BUSY), 60.0, "adaptive"),
        (FeedSchedule(), PollOutcome(entry_times=every(24, 3)), 3600.0, "max"),
        (FeedSchedule(), PollOutcome(entry_times=(ago(days=30),)), 3600.0, "max"),
        (FeedSchedule(), unchanged(headers={"Cache-Control": "max-age=900"}), 900.0, "cache-control"),
        (FeedSchedule(), unchanged(headers={"Expires": "Fri, 24 Oct 2025 12:20:00 GMT"}), 1200.0, "expires"),
        (FeedSchedule(), unchanged(ttl_s=1200), 1200.0, "ttl"),
        (FeedSchedule(), unchanged(update_period_s=1800), 1800.0, "update-period"),
        (FeedSchedule(), unchanged(headers={"Cache-Control": "max-age=30"}), 300.0, "default"),
        (FeedSchedule(), unchanged(ttl_s=86_400), 3600.0, "max"),
        (FeedSchedule(), unchanged(ttl_s=600, headers={"Cache-Control": "max-age=900"}), 900.0, "cache-control"),
        (HOT, unchanged(ttl_s=3600, headers={"Cache-Control": "max-age=3600"}), 60.0, "hot"),
        (FeedSchedule(hot_until=NOW), OK, 300.0, "default"),
        (PUSHED, PollOutcome(entry_times=BUSY), 3600.0, "push"),
        (dataclasses.replace(PUSHED, hot_until=NOW + timedelta(minutes=30)), OK, 3600.0, "push"),
        (FeedSchedule(push_until=NOW), OK, 300.0, "default"),
        (PUSHED, unchanged(headers={"Retry-After": "7200"}), 7200 * UP, "retry-after"),
        (FeedSchedule(), unchanged(headers={"Retry-After": "7200"}), 7200 * UP, "retry-after"),
        (HOT, unchanged(headers={"Retry-After": "600"}), 600 * UP, "retry-after"),
        (FeedSchedule(), unchanged(headers={"Retry-After": "10"}), 300.0, "default"),
        (FeedSchedule(), unchanged(ttl_s=1800, headers={"Retry-After": "900"}), 1800.0, "ttl"),
    ],
    ids=[
        "unknown-rate-default",
        "empty-feed-max",
        "hourly-feed-half-hour",
        "busy-feed-clamped-to-min",
        "daily-feed-clamped-to-max",
        "quiet-feed-max",
        "cache-control-floor",
        "expires-floor",
        "ttl-floor",
        "update-period-floor",
        "short-hint-ignored",
        "hint-capped-at-max",
        "largest-hint-wins",
        "hot-overrides-hints",
        "hot-expired",
        "pushed-busy-feed-polled-at-max",
        "push-overrides-hot",
        "push-lease-ended",
        "retry-after-beyond-max-when-pushed",
        "retry-after-beyond-max",
        "retry-after-beats-hot",
        "short-retry-after-no-effect",
        "retry-after-below-hint",
    ],
)
def test_success(state: FeedSchedule, outcome: PollOutcome, interval: float, reason: str) -> None:
    """After a good poll the interval follows precedence: Retry-After, push, hot, cache hints as a floor, adaptive
    rate."""
    decision = next_check(state, outcome, POLICY, NOW, NO_JITTER)
    assert decision.reason == reason
    assert decision.interval_s == pytest.approx(interval)
    assert decision.next_due == NOW + timedelta(seconds=decision.interval_s)


@pytest.mark.parametrize(
    ("errors", "outcome", "interval", "reason"),
    [
        (0, TIMEOUT, 60.0, "backoff"),
        (1, TIMEOUT, 120.0, "backoff"),
        (3, PollOutcome(status=500, error="transient"), 480.0, "backoff"),
        (5, PollOutcome(status=404, error="permanent"), 1920.0, "backoff"),
        (7, TIMEOUT, 3600.0, "backoff"),
        (9, TIMEOUT, 3600.0, "dead"),
        (10_000, TIMEOUT, 3600.0, "dead"),
        (0, PollOutcome(status=429, error="rate_limited"), 60.0, "backoff"),
        (0, PollOutcome(status=429, error="rate_limited", headers={"Retry-After": "900"}), 900 * UP, "retry-after"),
        (3, PollOutcome(status=503, error="transient", headers={"Retry-After": "30"}), 480.0, "backoff"),
        (9, PollOutcome(status=503, error="transient", headers={"Retry-After": "7200"}), 7200 * UP, "retry-after"),
        (0, PollOutcome(status=429, error="rate_limited", headers={"Retry-After": "864000"}), 86_400.0, "retry-after"),
        (
            0,
            PollOutcome(status=503, error="transient", headers={"Retry-After": "Fri, 24 Oct 2025 14:00:00 GMT"}),
            7200 * UP,
            "retry-after",
        ),
    ],
    ids=[
        "first-error",
        "second-error-doubles",
        "fourth-error",
        "permanent-backs-off-too",
        "backoff-capped-at-max",
        "dead-after-ten",
        "dead-forever-no-overflow",
        "429-without-retry-after",
        "429-retry-after",
        "backoff-beats-shorter-retry-after",
        "retry-after-beyond-max-when-dead",
        "retry-after-hard-cap",
        "retry-after-http-date",
    ],
)
def test_error(errors: int, outcome: PollOutcome, interval: float, reason: str) -> None:
    """A failed poll backs off exponentially to the maximum, never gives up, never returns before Retry-After."""
    decision = next_check(FeedSchedule(consecutive_errors=errors), outcome, POLICY, NOW, NO_JITTER)
    assert decision.reason == reason
    assert decision.interval_s == pytest.approx(interval)
    assert decision.state.consecutive_errors == errors + 1


def test_hot_feed_still_backs_off_on_errors() -> None:
    """A hot feed that keeps failing is not hammered at the hot interval."""
    state = FeedSchedule(consecutive_errors=4, hot_until=NOW + timedelta(minutes=30))
    assert next_check(state, TIMEOUT, POLICY, NOW, NO_JITTER).interval_s == 960.0


def test_success_resets_errors_and_keeps_state() -> None:
    """A good poll resets the error count and records the interval and the entry rate."""
    state = FeedSchedule(consecutive_errors=12, hot_until=NOW - timedelta(hours=1))
    decision = next_check(state, PollOutcome(entry_times=every(1, 48)), POLICY, NOW, NO_JITTER)
    assert decision.state.consecutive_errors == 0
    assert decision.state.last_interval_s == decision.interval_s
    assert decision.state.entries_per_day == pytest.approx(24.0)
    assert decision.state.hot_until == state.hot_until


def test_rate_accumulates_across_polls() -> None:
    """Entry times are merged without duplicates, the newest kept, undated new entries dated now, old ones dropped."""
    policy = SchedulePolicy(max_tracked_entries=5)
    first = next_check(FeedSchedule(), PollOutcome(entry_times=every(1, 3)), policy, NOW, NO_JITTER).state
    later = NOW + timedelta(hours=1)
    future = later + timedelta(days=2)
    outcome = PollOutcome(entry_times=(*every(1, 3), future), new_entries=3)
    second = next_check(first, outcome, policy, later, NO_JITTER).state
    assert second.entry_times == (ago(hours=2), ago(hours=1), NOW, future)
    third = next_check(second, PollOutcome(entry_times=(future,), new_entries=3), policy, later, NO_JITTER).state
    assert third.entry_times == (ago(hours=1), NOW, later, later, future)
    week_on = next_check(second, PollOutcome(status=304), policy, later + timedelta(days=8), NO_JITTER)
    assert (week_on.state.entry_times, week_on.state.entries_per_day, week_on.reason) == ((future,), 0.0, "max")


def test_undated_new_entries_count_as_now() -> None:
    """New entries without dates still make a feed look busy."""
    decision = next_check(FeedSchedule(), PollOutcome(new_entries=24), POLICY, NOW, NO_JITTER)
    assert decision.state.entries_per_day == pytest.approx(23 * 24)  # 23 gaps within the 1 h minimum span
    assert decision.interval_s == pytest.approx(86_400 / (23 * 24) / 2)


@pytest.mark.parametrize(
    ("outcome", "jitter", "interval"),
    [
        (OK, 0.0, 270.0),
        (OK, 0.75, 315.0),
        (PollOutcome(entry_times=BUSY), 0.0, 60.0),
        (TIMEOUT, 0.0, 60.0),
        (unchanged(ttl_s=86_400), 0.99, 3600.0),
        (unchanged(headers={"Retry-After": "1000"}), 0.0, 1000.0),
        (unchanged(headers={"Retry-After": "1000"}), 0.5, 1050.0),
    ],
    ids=["low", "high", "never-below-min", "backoff-min", "never-above-max", "retry-after-exact", "retry-after-up"],
)
def test_jitter(outcome: PollOutcome, jitter: float, interval: float) -> None:
    """Jitter spreads by ±10% within [min, max], deterministically, and only upwards from a Retry-After."""
    assert next_check(FeedSchedule(), outcome, POLICY, NOW, jitter).interval_s == pytest.approx(interval)


def test_mark_hot_extends_never_shortens() -> None:
    """An incident change keeps the feed hot for the quiet period; a late older change does not cool it."""
    hot = mark_hot(FeedSchedule(), NOW, POLICY)
    assert hot.hot_until == NOW + timedelta(seconds=3600)
    assert mark_hot(hot, ago(minutes=10), POLICY) is hot
    assert mark_hot(hot, NOW + timedelta(minutes=5), POLICY).hot_until == NOW + timedelta(minutes=65)


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (FetchError("f", "HTTP 429"), 429, "rate_limited"),
        (FetchError("f", "HTTP 503"), 503, "transient"),
        (FetchError("f", "timed out"), None, "transient"),
        (FeedError("f", "HTTP 404"), 404, "permanent"),
    ],
    ids=["429", "5xx", "network", "4xx"],
)
def test_error_kind(exc: FetchError | FeedError, status: int | None, kind: str) -> None:
    """The error tree maps onto scheduling kinds, with 429 singled out."""
    assert error_kind(exc, status) == kind


@pytest.mark.parametrize(
    "changes",
    [
        {"min_interval_s": 0},
        {"max_interval_s": 30},
        {"hard_cap_s": 60},
        {"hot_interval_s": 10},
        {"jitter_fraction": 1.0},
        {"backoff_base_s": 0},
        {"dead_after_errors": 0},
    ],
    ids=["zero-min", "max-below-min", "cap-below-max", "hot-below-min", "jitter-too-big", "zero-base", "zero-dead"],
)
def test_bad_policy_refused(changes: dict[str, float]) -> None:
    """An inconsistent policy fails at start-up, not at the first poll."""
    with pytest.raises(ConfigurationError):
        SchedulePolicy(**changes)  # type: ignore[arg-type]  # the table mixes int and float knobs


@pytest.mark.parametrize(
    ("now", "jitter"), [(NOW.replace(tzinfo=None), 0.5), (NOW, 1.0), (NOW, -0.1)], ids=["naive", "one", "negative"]
)
def test_bad_inputs_refused(now: datetime, jitter: float) -> None:
    """A naive clock or an out-of-range jitter draw is a caller bug."""
    with pytest.raises(ValueError, match="next_check"):
        next_check(FeedSchedule(), OK, POLICY, now, jitter)


retry_after = st.one_of(
    st.none(),
    st.integers(0, 10**7).map(str),
    st.integers(-(10**6), 10**7).map(lambda s: (NOW + timedelta(seconds=s)).strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.text(max_size=10),
)
outcomes = st.builds(
    PollOutcome,
    status=st.sampled_from([None, 200, 304, 404, 429, 500, 503]),
    error=st.sampled_from([None, "transient", "permanent", "rate_limited"]),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Retry-After": retry_after.filter(lambda v: v is not None),
            "Cache-Control": st.integers(0, 10**7).map(lambda s: f"max-age={s}"),
            "Expires": st.sampled_from(["0", "Sat, 25 Oct 2025 12:00:00 GMT", "Fri, 24 Oct 2025 11:00:00 GMT"]),
        },
    ),
    ttl_s=st.none() | st.integers(0, 10**7),
    update_period_s=st.none() | st.integers(1, 10**8),
    new_entries=st.integers(0, 500),
    entry_times=st.lists(st.integers(-(10**7), 10**6).map(lambda s: NOW - timedelta(seconds=s)), max_size=30).map(
        tuple
    ),
)
states = st.builds(
    FeedSchedule,
    consecutive_errors=st.integers(0, 10**6),
    entries_per_day=st.none() | st.floats(0, 10**5),
    hot_until=st.none() | st.integers(-7200, 7200).map(lambda s: NOW + timedelta(seconds=s)),
)


@given(state=states, outcome=outcomes, jitter=st.floats(0, 1, exclude_max=True))
def test_interval_always_bounded(state: FeedSchedule, outcome: PollOutcome, jitter: float) -> None:
    """Every decision is in the future, within [min, 24 h], and above max only because of a Retry-After."""
    decision = next_check(state, outcome, POLICY, NOW, jitter)
    assert decision.next_due > NOW
    assert POLICY.min_interval_s <= decision.interval_s <= POLICY.hard_cap_s
    if decision.interval_s > POLICY.max_interval_s:
        assert decision.reason == "retry-after"
        assert "Retry-After" in outcome.headers
    if outcome.error is not None:
        assert decision.state.consecutive_errors == state.consecutive_errors + 1
        assert decision.reason in ("backoff", "dead", "retry-after")
