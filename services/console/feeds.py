"""The feeds route: every feed with its health, as `livedesk feeds list --json` shows it."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from schemas.console import FeedHealth, FeedList
from services.console.http import Handler, model_response, only
from services.names import Keys
from services.poller.feeds import FeedRegistry


async def feed_health(redis: Redis, keys: Keys) -> FeedList:
    """Every registered feed, by id, with what the pollers recorded about it and its scheduling."""
    registry = FeedRegistry(redis, keys)
    now = datetime.now(UTC)
    feeds: list[FeedHealth] = []
    for source in await registry.all():
        state = await registry.status(source.id)
        schedule = await registry.scheduling(source.id)
        # The due list, not the time the last poll chose: `feeds poll`, a hot incident or a lease move it.
        due = await registry.next_due(source.id)
        feeds.append(FeedHealth(
            id=source.id, name=source.name, authority=source.authority.value, url=source.url,
            configured_url=source.configured_url,
            last_polled_at=state.get("last_polled_at") or None,
            last_status=state.get("last_status") or None,
            last_error=state.get("last_error") or None,
            interval_s=state.get("interval_s") or None,
            schedule_reason=state.get("schedule_reason") or None,
            next_due=due.astimezone(UTC) if due else None,
            hot=schedule.hot_until is not None and schedule.hot_until > now,
            pushed=schedule.push_until is not None and schedule.push_until > now,
            gone=state.get("gone") == "1",
            guid_unreliable=state.get("guid_unreliable") or None,
            error_count=int(state.get("error_count") or 0),
            entries_per_day=schedule.entries_per_day,
        ))
    return FeedList(feeds=feeds)


def feeds_handler(redis: Redis, keys: Keys) -> Handler:
    async def route(request: Request) -> Response:
        only(request, ())
        return model_response(await feed_health(redis, keys))

    return route
