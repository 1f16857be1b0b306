"""A Redis restart mid-run: the server is killed (SIGKILL) while the demo archive is being replayed and started again on
its append-only file; the stage workers wait for it with backoff, reconnect, finish the story as an undisturbed run
tells it, and nothing the server acknowledged is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.cli import DEMO_ARCHIVE
from services.connection import connect
from services.groups import ensure_groups
from services.names import Keys
from services.replay import REPLAY_STAGES, EventReader, replay
from services.settings import Settings
from services.stage import StageContext
from services.tracker.store import IncidentStore
from services.wire import entry_data
from tests.cluster.servers import redis_server
from tests.cluster.workers import Worker, start_worker
from tests.support.pipeline import ArchivePlayer
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

PREFIX = "livedesk"
PLAYED_BEFORE_THE_KILL = 7  # of the archive's 14 snapshots; the 7th is still being handled when the server dies
OUTAGE_S = 3.0
# A worker that spun on a dead connection would burn most of a core through the outage; one that backs off sleeps.
MAX_CPU_WHILE_WAITING_S = 1.0
TEST_TIMEOUT_S = 180
STREAMS = ("raw", "updates", "changes")


async def test_stage_workers_ride_out_a_redis_restart(settings: Settings, redis_url: str, tmp_path: Path) -> None:
    """SIGKILL of the server mid-replay, then a restart on its append-only file: the same workers finish with the
    undisturbed run's events and incidents, keep every entry acknowledged before the kill, and never spin."""
    undisturbed = await replay(DEMO_ARCHIVE, settings, redis_url)
    async with asyncio.timeout(TEST_TIMEOUT_S):
        with redis_server(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always") as server:
            redis = connect(server.url)
            keys = Keys(PREFIX)
            workers: list[Worker] = []
            try:
                await ensure_groups(redis, keys, REPLAY_STAGES)
                workers = [start_worker(stage, server.url, PREFIX, stage, tmp_path) for stage in REPLAY_STAGES]
                await eventually(lambda: all(worker.started() for worker in workers), timeout_s=60,
                                 what="every worker reading its stream")
                player = ArchivePlayer(redis, StageContext(settings.model_copy(update={"key_prefix": PREFIX}), redis),
                                       DEMO_ARCHIVE)
                await player.play(PLAYED_BEFORE_THE_KILL - 1)
                await player.play(1, drain=False)
                acknowledged = {name: entry_data(await redis.xrange(keys.stream(name))) for name in STREAMS}

                server.kill()
                cpu_before = [worker.cpu_s() for worker in workers]
                # The next snapshot is published while the server is down: the publisher waits for it as well.
                publishing = asyncio.create_task(player.play(1))
                await asyncio.sleep(OUTAGE_S)
                cpu_waiting = [worker.cpu_s() - before for worker, before in zip(workers, cpu_before, strict=True)]
                alive_through_the_outage = [worker.process.poll() is None for worker in workers]
                server.start()

                await publishing
                while player.remaining:
                    await player.play(1)
                events = await EventReader(redis, keys).new_events()
                incidents = await IncidentStore(redis, keys).all()
                now = {name: entry_data(await redis.xrange(keys.stream(name))) for name in STREAMS}
            finally:
                codes = [worker.stop() for worker in workers]
                await redis.aclose()
    logs = "\n".join(f"--- {worker.consumer}\n{worker.log_tail()}" for worker in workers)
    assert alive_through_the_outage == [True] * len(workers), logs
    assert all(cpu < MAX_CPU_WHILE_WAITING_S for cpu in cpu_waiting), f"CPU s while the server was down: {cpu_waiting}"
    assert codes == [0] * len(workers), logs
    for name, entries in acknowledged.items():
        assert set(entries) <= set(now[name]), f"{name}: every entry the server acknowledged before the kill is kept"
    assert len(acknowledged["changes"]) < len(events), "the story went on after the restart"
    assert [e.model_dump_json() for e in events] == [e.model_dump_json() for e in undisturbed.events], logs
    assert [i.model_dump_json() for i in incidents] == [i.model_dump_json() for i in undisturbed.incidents]
    # The clients' own backoff rode out the outage: no read or handler failed for it.
    failures = [line for worker in workers for line in worker.lines() if line.get("level") in ("error", "critical")]
    assert failures == [], logs
