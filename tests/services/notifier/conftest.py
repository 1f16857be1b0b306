"""The notifier's tests on a real Redis: change events, hooks and quick retries; the running notifier itself is
`tests.support.notifier`'s."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent, EventType, Evidence
from schemas.subscriptions import Hook
from services.notifier.hooks import HookRegistry, make_hook
from services.settings import Settings
from services.wire import entry_fields
from tests.support.notifier import QUICK_RETRIES
from tests.support.notifier import running_notifier as running_notifier  # the delivery tests import it from here

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
    return settings.model_copy(update=QUICK_RETRIES)


async def add_hook(redis: Redis, settings: Settings, hook_id: str, url: str, **fields: object) -> Hook:
    hook = make_hook(settings, {"id": hook_id, "url": url, "secret": SECRET, **fields})
    await HookRegistry(redis, settings.keys).upsert([hook])
    return hook


async def publish(redis: Redis, settings: Settings, events: Iterable[ChangeEvent]) -> None:
    for event in events:
        await redis.xadd(settings.keys.changes, entry_fields(event))  # type: ignore[arg-type]
