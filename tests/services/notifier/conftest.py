"""A notifier on a real Redis: the fan-out router on a real broker and the deliverers, with quick retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta

import pytest
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from schemas import ChangeEvent, EventType, Evidence
from schemas.subscriptions import Hook
from services.groups import ensure_groups
from services.notifier.deliver import Deliverers
from services.notifier.hooks import HookRegistry, make_hook
from services.notifier.send import build_hook_client
from services.notifier.stage import build_router
from services.settings import Settings
from services.stage import DeadLetterMiddleware, StageContext
from services.wire import JSONMessageFormat, entry_fields

SECRET = "test-secret-0123456789"
T0 = datetime(2025, 10, 24, 9, 0, tzinfo=UTC)


def change(incident: str, version: int, kind: EventType = EventType.condition_updated) -> ChangeEvent:
    """The `version`th change of `incident`."""
    at = T0 + timedelta(minutes=version)
    return ChangeEvent(event_id=f"{incident}-v{version}", type=kind, incident_id=incident, version=version,
                       field="casualties", reported_at=at, detected_at=at, summary=f"{incident} change {version}",
                       evidence=[Evidence(source_id="echo", guid=f"g{version}", url=f"https://echo.example/{version}",
                                          title="Echo")])


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Retries in tens of milliseconds, reclaiming after half a second."""
    return settings.model_copy(update={"hook_retry_base_s": 0.05, "hook_retry_max_s": 0.2, "reclaim_idle_ms": 500,
                                       "hook_timeout_s": 5.0})


async def add_hook(redis: Redis, settings: Settings, hook_id: str, url: str, **fields: object) -> Hook:
    hook = make_hook(settings, {"id": hook_id, "url": url, "secret": SECRET, **fields})
    await HookRegistry(redis, settings.keys).upsert([hook])
    return hook


async def publish(redis: Redis, settings: Settings, events: Iterable[ChangeEvent]) -> None:
    for event in events:
        await redis.xadd(settings.keys.changes, entry_fields(event))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_notifier(redis: Redis, settings: Settings) -> AsyncIterator[Deliverers]:
    """The notifier stage as `livedesk run` would run it: broker with the fan-out router, and the deliverers."""
    ctx = StageContext(settings, redis)
    await ensure_groups(redis, settings.keys, ["notifier"])
    broker = RedisBroker(settings.redis_url or "", message_format=JSONMessageFormat,
                         middlewares=[DeadLetterMiddleware.factory(redis, settings.keys, settings.max_deliveries)])
    broker.include_router(build_router(ctx))
    client = build_hook_client(settings)
    deliverers = Deliverers(ctx, client, refresh_s=0.1)
    async with broker:
        await broker.start()
        task = asyncio.create_task(deliverers.run())
        try:
            yield deliverers
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()
