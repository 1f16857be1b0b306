"""Where the scheduler's per-feed state lives in Redis, and the policy built from the settings."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from services.names import Keys
from services.poller.schedule import FeedSchedule, ScheduleDecision, SchedulePolicy, mark_hot
from services.settings import Settings
from services.wire import as_optional_text


def schedule_policy(settings: Settings) -> SchedulePolicy:
    """The scheduling policy of `settings` (misconfiguration raises at start-up)."""
    return SchedulePolicy(
        min_interval_s=settings.poll_min_interval_s,
        max_interval_s=settings.poll_max_interval_s,
        default_interval_s=settings.poll_interval_s,
        hot_interval_s=settings.poll_hot_interval_s,
        hot_quiet_s=settings.poll_hot_quiet_s,
        backoff_base_s=settings.poll_backoff_base_s,
    )


def _encode(state: FeedSchedule) -> str:
    return json.dumps(
        {
            "consecutive_errors": state.consecutive_errors,
            "entry_times": [t.isoformat() for t in state.entry_times],
            "entries_per_day": state.entries_per_day,
            "last_interval_s": state.last_interval_s,
        }
    )


def _time(value: Any) -> datetime | None:
    text = as_optional_text(value)
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None  # a damaged time is no time: the feed is simply not hot (or pushed)


def decode_schedule(text: Any, hot_until: Any, push_until: Any) -> FeedSchedule:
    """The schedule state from the feed state hash's `schedule`, `hot_until` and `push_until` fields."""
    data = json.loads(text) if text else {}
    return FeedSchedule(
        consecutive_errors=int(data.get("consecutive_errors", 0)),
        entry_times=tuple(datetime.fromisoformat(t) for t in data.get("entry_times", [])),
        entries_per_day=data.get("entries_per_day"),
        hot_until=_time(hot_until),
        push_until=_time(push_until),
        last_interval_s=data.get("last_interval_s"),
    )


async def load_schedule(redis: Redis, keys: Keys, feed_id: str) -> FeedSchedule:
    """The feed's scheduling state; `hot_until` is written by the tracker (`mark_feed_hot`), `push_until` by the
    WebSub callback."""
    text, hot_until, push_until = await redis.hmget(keys.feed_state(feed_id), ["schedule", "hot_until", "push_until"])
    return decode_schedule(text, hot_until, push_until)


def schedule_fields(decision: ScheduleDecision) -> dict[str, str]:
    """The feed state hash's fields that record `decision`."""
    return {
        "schedule": _encode(decision.state),
        "next_due": decision.next_due.isoformat(),
        "schedule_reason": decision.reason,
        "interval_s": f"{decision.interval_s:.0f}",
    }


async def mark_feed_hot(redis: Redis, keys: Keys, feed_id: str, changed_at: datetime, policy: SchedulePolicy) -> None:
    """An incident this feed reported on changed at `changed_at`: poll the feed at the hot interval for a while.

    A feed that is not in the registry (a replay's source) is left alone: no state is written for it.
    """
    if not await redis.hexists(keys.feeds, feed_id):
        return
    state = await load_schedule(redis, keys, feed_id)
    hot = mark_hot(state, changed_at, policy)
    if hot.hot_until is not None and hot.hot_until != state.hot_until:
        await redis.hset(keys.feed_state(feed_id), "hot_until", hot.hot_until.isoformat())
        # Due at most a hot interval from now, so a feed scheduled far ahead is looked at soon.
        soon = changed_at.timestamp() + policy.hot_interval_s
        await redis.zadd(keys.feeds_due, {feed_id: soon}, xx=True, lt=True)
