"""A subscriber process killed inside its loop body: its event is not lost, another process's consumer takes it over."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent, EventType
from services import client as livedesk
from services.names import Keys
from services.wire import entry_fields

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[3]
# Reads one event in group `alerts` and dies in the middle of handling it, before the loop asks for the next.
DOOMED = """
import asyncio, os, sys
from services import client as livedesk

async def main() -> None:
    async with livedesk.subscribe(sys.argv[1], "alerts", key_prefix=sys.argv[2], start="0") as events:
        async for event in events:
            print("handling", event.event_id, flush=True)
            os._exit(1)

asyncio.run(main())
"""


async def test_an_event_a_killed_process_was_handling_is_reclaimed(redis_url: str, redis: Redis,
                                                                   key_prefix: str) -> None:
    """The event stays pending on the dead process's consumer and comes out of another consumer after min idle."""
    at = datetime(2025, 10, 24, 9, 20, tzinfo=UTC)
    event = ChangeEvent(event_id="e_1", type=EventType.public_risk_updated, incident_id="i_1", version=2,
                        field="public_risk", after="none", reported_at=at, detected_at=at, summary="no wider risk")
    await redis.xadd(Keys(key_prefix).changes, entry_fields(event))  # type: ignore[arg-type]  # redis-py's fields: an invariant dict
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", DOOMED, redis_url, key_prefix, cwd=ROOT,
                                                   stdout=asyncio.subprocess.PIPE)
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "handling e_1" in stdout.decode().splitlines()

    async with livedesk.Client(redis=redis, key_prefix=key_prefix) as desk, \
            desk.subscribe("alerts", consumer="survivor", min_idle_ms=300, block_ms=100) as events:
        assert (await asyncio.wait_for(anext(events), 10)) == event
        await events.ack()
    assert int((await redis.xpending(Keys(key_prefix).changes, "alerts"))["pending"]) == 0
