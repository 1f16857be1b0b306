"""Stream order across copies of a stage.

Copies of a stage (workers on one consumer group) read a stream's batches one after another but handle them side by
side, and the story livedesk tells depends on the order evidence arrives in: an IOPC statement merged after a
newspaper's report of it is credited differently than before it. So a copy takes its turn: before the part of its
work that depends on the entries before its batch (judging, clustering, queueing), it waits until no earlier entry of
the stream is still being handled by another copy. Work that depends on no other entry (reading an update's facts)
is done before waiting, so it still runs side by side.

An earlier pending entry is not waited for when it
- is pending on this copy (one of its own failures, waiting to be retried),
- is parked (`park`: it failed in another copy's batch, and waits for the reclaimer),
- was delivered more than once (taken over after a failure or a death: a retry, out of order by nature), or
- has been held for `turn_wait_ms` (its copy died or is stuck): a dead copy costs the others that long, once.
With one copy per stage nothing is ever waited for; `turn_wait_ms=0` turns waiting off (throughput over order).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

import structlog
from redis.asyncio import Redis

from services.wire import as_text

log = structlog.get_logger(__name__)

# The consumer that holds entries which failed in a batch until the reclaimer retries them: no copy waits for them.
PARKED = "parked"
_PAGE = 100  # pending entries read at a time
_MAX_PAGES = 20  # more pending entries than this before a batch are stale or parked ones: not worth reading on
_FIRST_PAUSE_S = 0.002
_LONGEST_PAUSE_S = 0.05


class Turn:
    """Waits for the batches of `stream` read before one's own (by other copies on `group`) to be done."""

    def __init__(self, redis: Redis, stream: str, group: str, consumer: str, wait_ms: int) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._wait_ms = wait_ms

    async def wait(self, first_id: str) -> None:
        """Return once no entry before `first_id` is held by another copy that may still be handling it (see the
        module docstring); never later than `turn_wait_ms` from now."""
        if self._wait_ms <= 0:
            return
        deadline = time.monotonic() + self._wait_ms / 1000
        pause = _FIRST_PAUSE_S
        waited = False
        while await self._held_before(first_id):
            if time.monotonic() >= deadline:
                # Entries held before these and kept fresh (by a claim keeper) for this long:
                # the copy holding them is stuck or slow, and this batch goes on rather than wait for it.
                log.warning("stopped waiting for earlier entries", stream=self._stream, group=self._group,
                            entry_id=first_id, waited_ms=self._wait_ms)
                return
            waited = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE_S)
        if waited:
            log.debug("took turn", stream=self._stream, group=self._group, entry_id=first_id)

    async def park(self, entry_ids: Collection[str]) -> None:
        """Hand `entry_ids` (pending on this copy: they failed) to the `PARKED` consumer, where the reclaimer finds
        them as before and no copy waits for them. JUSTID leaves their delivery counts as they are."""
        if entry_ids:
            await self._redis.xclaim(self._stream, self._group, PARKED, 0, list(entry_ids), justid=True)

    async def _held_before(self, first_id: str) -> bool:
        start = "-"
        for _ in range(_MAX_PAGES):
            rows = await self._redis.xpending_range(self._stream, self._group, min=start, max=f"({first_id}",
                                                    count=_PAGE)
            for row in rows:
                if (as_text(row["consumer"]) not in (self._consumer, PARKED) and int(row["times_delivered"]) == 1
                        and int(row["time_since_delivered"]) < self._wait_ms):
                    return True
            if len(rows) < _PAGE:
                return False
            start = f"({as_text(rows[-1]['message_id'])}"
        return False
