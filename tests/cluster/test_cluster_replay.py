"""The stages on a real Redis Cluster of three masters: the demo archive, consumed by two worker processes per stage,
tells exactly the story one server tells, and every key of the deployment lives in one slot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.crc import key_slot

from services.cli import DEMO_ARCHIVE
from services.connection import connect
from services.groups import backlog, ensure_groups
from services.names import Keys
from services.replay import REPLAY_STAGES, EventReader, delete_prefix, replay
from services.settings import Settings
from services.stage import StageContext
from services.tracker.store import IncidentStore
from tests.cluster.workers import Worker, start_worker
from tests.support.pipeline import ArchivePlayer
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

WORKERS_PER_STAGE = 2
PREFIX = "livedesk"  # the default: `Keys` makes it the hash tag `{livedesk}`
TEST_TIMEOUT_S = 180


def handled(worker: Worker) -> int:
    """Entries the worker handled, by its own log lines (dedup: one per verdict; tracker: one per update)."""
    wanted = {"dedup": {"raw judged"}, "tracker": {"update merged", "update opens no incident"}}[worker.stage]
    return sum(1 for line in worker.lines() if line.get("event") in wanted)


async def test_two_workers_per_stage_on_a_cluster_tell_what_one_server_tells(
    settings: Settings, redis_url: str, cluster_url: str, tmp_path: Path
) -> None:
    """Same events (byte for byte) and incidents as `replay` on one server; all keys in one slot; clean exits."""
    on_one_server = await replay(DEMO_ARCHIVE, settings, redis_url)
    assert on_one_server.events, "the demo archive tells a story"
    redis = connect(cluster_url)
    keys = Keys(PREFIX)
    workers: list[Worker] = []
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            await ensure_groups(redis, keys, REPLAY_STAGES)
            workers = [start_worker(stage, cluster_url, PREFIX, f"{stage}-{n}", tmp_path)
                       for stage in REPLAY_STAGES for n in range(WORKERS_PER_STAGE)]
            await eventually(lambda: all(worker.started() for worker in workers), timeout_s=60,
                             what="every worker reading its stream")
            player = ArchivePlayer(redis, StageContext(settings.model_copy(update={"key_prefix": PREFIX}), redis),
                                   DEMO_ARCHIVE)
            # A snapshot at a time, each drained before the next, as `livedesk demo` plays it and as feeds arrive
            # live. Entries published together are handled in parallel by the workers of a stage, and then the
            # story depends on which was faster (at full speed the Echo's report of the IOPC investigation can be
            # merged before the IOPC's own, and the story credits the Echo): that is not what this test is about.
            while player.remaining:
                await player.play(1)
            events = await EventReader(redis, keys).new_events()
            incidents = await IncidentStore(redis, keys).all()
            assert await backlog(redis, keys, REPLAY_STAGES) == {"dedup": 0, "tracker": 0}
            stored = [key async for key in redis.scan_iter(match=keys.everything, count=500)]
    finally:
        codes = {worker.consumer: worker.stop() for worker in workers}
        await delete_prefix(redis, PREFIX)
        await redis.aclose()
    logs = "\n".join(f"--- {worker.consumer}\n{worker.log_tail()}" for worker in workers)
    assert codes == {worker.consumer: 0 for worker in workers}, logs
    assert [e.model_dump_json() for e in events] == [e.model_dump_json() for e in on_one_server.events], logs
    assert [i.model_dump_json() for i in incidents] == [i.model_dump_json() for i in on_one_server.incidents]
    assert len(stored) > 20
    assert {key_slot(key) for key in stored} == {key_slot(keys.raw.encode())}, "one slot for everything"
    work = {worker.consumer: handled(worker) for worker in workers}
    assert all(work.values()), f"every worker took a share: {work}"
