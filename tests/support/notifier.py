"""The notifier stage in the test's process, wired as `livedesk run` wires it: the fan-out router on a broker from
`services.app.build_broker` (with its dead-letter middleware), and the deliverers POSTing to the hooks through the
hook HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from redis.asyncio import Redis

from services.notifier.deliver import Deliverers
from services.notifier.send import build_hook_client
from services.settings import Settings
from services.stage import StageContext
from tests.support.pipeline import running_stages

# Settings under which a failed delivery is tried again within a fifth of a second and a dead worker's entries are
# taken over after half a second, for tests that watch retries and restarts.
QUICK_RETRIES = {"hook_retry_base_s": 0.05, "hook_retry_max_s": 0.2, "reclaim_idle_ms": 500, "hook_timeout_s": 5.0}


@contextlib.asynccontextmanager
async def running_notifier(redis: Redis, settings: Settings, *, alongside: Iterable[str] = (),
                           refresh_s: float = 0.1) -> AsyncIterator[Deliverers]:
    """The notifier of `settings` on `redis` until the block ends: its groups made, the `notifier` router (and those
    of the stages `alongside`, e.g. dedup and the tracker) consuming on a broker of its own, and the deliverers
    reading the hook registry every `refresh_s`.

    On the way out, even when the block raises, the deliverers are cancelled and awaited (they wait for their hook
    workers) before the hook client is closed and the broker stopped, all before the caller closes `redis`. A
    deliverers task that had already failed raises its error at the end of a block that did not.
    """
    ctx = StageContext(settings, redis)
    async with (running_stages(ctx, settings.redis_url or "", [*alongside, "notifier"]),
                build_hook_client(settings) as client):
        deliverers = Deliverers(ctx, client, refresh_s=refresh_s)
        task = asyncio.create_task(deliverers.run(), name="hooks")
        try:
            yield deliverers
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled() and (failure := task.exception()) is not None:
            raise failure
