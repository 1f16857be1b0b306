"""The real pipeline in the test's process: stages on a broker, and a replay archive published a snapshot at a time
(the parse → diff → publish path `services.replay` takes), so a test can watch a replay in progress."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from redis.asyncio import Redis

from services.app import build_broker
from services.groups import ensure_groups
from services.poller.diff import publish_changed, raw_updates
from services.poller.parse import parse_feed
from services.replay import Snapshot, read_archive, wait_drained
from services.stage import StageContext


@contextlib.asynccontextmanager
async def running_stages(ctx: StageContext, url: str, stages: Iterable[str]) -> AsyncIterator[None]:
    """`stages` (e.g. dedup and tracker) consuming on a broker of their own until the block ends."""
    chosen = list(stages)
    await ensure_groups(ctx.redis, ctx.keys, chosen)
    async with build_broker(ctx, url, chosen) as broker:
        await broker.start()
        yield


class ArchivePlayer:
    """Publishes the snapshots of a replay archive in time order, as many at a time as the test asks."""

    def __init__(self, redis: Redis, ctx: StageContext, root: Path) -> None:
        self._redis = redis
        self._keys = ctx.keys
        self._archive = read_archive(root)
        self._next = 0

    @property
    def remaining(self) -> list[Snapshot]:
        return self._archive.snapshots[self._next:]

    async def play(self, count: int | None = None, *, drain: bool = True) -> list[Snapshot]:
        """Publish the next `count` snapshots (all that are left with None); with `drain`, wait until dedup and the
        tracker have handled them."""
        chosen = self.remaining if count is None else self.remaining[:count]
        for snapshot in chosen:
            source = self._archive.sources[snapshot.source_id]
            parsed = parse_feed(snapshot.path.read_bytes(), feed=source.id, base_url=source.url)
            await publish_changed(self._redis, self._keys, source.id,
                                  raw_updates(source, parsed.entries, snapshot.at))
            self._next += 1
        if drain:
            await wait_drained(self._redis, self._keys, timeout_s=30)
        return chosen

    async def play_until(self, source_id: str, at: str) -> list[Snapshot]:
        """Publish up to and including the snapshot of `source_id` at `at` (its name's instant, `20251024T134000Z`)."""
        names = [f"{s.at:%Y%m%dT%H%M%SZ}--{s.source_id}" for s in self.remaining]
        return await self.play(names.index(f"{at}--{source_id}") + 1)
