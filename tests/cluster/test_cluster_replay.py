"""Two worker processes per stage, given the whole demo archive at once, tell exactly the story one process tells:
on one server, and on a real Redis Cluster of three masters, where every key of the deployment lives in one slot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from schemas import ChangeEvent, Incident
from services.cli import DEMO_ARCHIVE
from services.connection import connect
from services.groups import backlog, ensure_groups
from services.names import Keys
from services.replay import REPLAY_STAGES, EventReader, ReplayResult, delete_prefix, replay
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
# Small reads: the copies of a stage then hold batches of one burst side by side.
BATCH_SIZE = "3"


@dataclass
class Told:
    events: list[ChangeEvent]
    incidents: list[Incident]
    keys: list[bytes]  # every key of the deployment
    work: dict[str, int]  # entries each worker handled


def handled(worker: Worker) -> int:
    """Entries the worker handled, by its own log lines (dedup: one per verdict; tracker: one per update)."""
    wanted = {"dedup": {"raw judged"}, "tracker": {"update merged", "update opens no incident"}}[worker.stage]
    return sum(1 for line in worker.lines() if line.get("event") in wanted)


async def told_by_copies(redis: Redis, url: str, settings: Settings, prefix: str, log_dir: Path) -> Told:
    """Publish the whole demo archive at once (as pollers catching up on many feeds would) to `WORKERS_PER_STAGE`
    worker processes per stage, and read what they told once they are done."""
    keys = Keys(prefix)
    workers: list[Worker] = []
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            await ensure_groups(redis, keys, REPLAY_STAGES)
            workers = [start_worker(stage, url, prefix, f"{stage}-{n}", log_dir, LIVEDESK_BATCH_SIZE=BATCH_SIZE)
                       for stage in REPLAY_STAGES for n in range(WORKERS_PER_STAGE)]
            await eventually(lambda: all(worker.started() for worker in workers), timeout_s=60,
                             what="every worker reading its stream")
            player = ArchivePlayer(redis, StageContext(settings.model_copy(update={"key_prefix": prefix}), redis),
                                   DEMO_ARCHIVE)
            await player.play()
            told = Told(await EventReader(redis, keys).new_events(), await IncidentStore(redis, keys).all(),
                        [key async for key in redis.scan_iter(match=keys.everything, count=500)],
                        {worker.consumer: handled(worker) for worker in workers})
            assert await backlog(redis, keys, REPLAY_STAGES) == {"dedup": 0, "tracker": 0}
    finally:
        codes = {worker.consumer: worker.stop() for worker in workers}
    logs = "\n".join(f"--- {worker.consumer}\n{worker.log_tail()}" for worker in workers)
    assert codes == {worker.consumer: 0 for worker in workers}, logs
    assert all(told.work.values()), f"every worker took a share: {told.work}"
    failures = [line for worker in workers for line in worker.lines() if line.get("level") in ("error", "critical")]
    assert not failures, logs
    return told


def assert_same_story(told: Told, one_process: ReplayResult) -> None:
    assert one_process.events, "the demo archive tells a story"
    assert [e.model_dump_json() for e in told.events] == [e.model_dump_json() for e in one_process.events]
    assert [i.model_dump_json() for i in told.incidents] == [i.model_dump_json() for i in one_process.incidents]


async def test_two_workers_per_stage_tell_what_one_process_tells(
    settings: Settings, redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """Copies of a stage take the batches of one burst side by side, and still handle them in stream order: the
    same events (byte for byte) and incidents as `replay` in one process."""
    one_process = await replay(DEMO_ARCHIVE, settings, redis_url)
    told = await told_by_copies(redis, redis_url, settings, key_prefix, tmp_path)
    assert_same_story(told, one_process)


async def test_two_workers_per_stage_on_a_cluster_tell_what_one_server_tells(
    settings: Settings, redis_url: str, cluster_url: str, tmp_path: Path
) -> None:
    """The same on a cluster; all keys in one slot; clean exits."""
    on_one_server = await replay(DEMO_ARCHIVE, settings, redis_url)
    redis = connect(cluster_url)
    try:
        told = await told_by_copies(redis, cluster_url, settings, PREFIX, tmp_path)
    finally:
        await delete_prefix(redis, PREFIX)
        await redis.aclose()
    assert_same_story(told, on_one_server)
    assert len(told.keys) > 20
    assert {key_slot(key) for key in told.keys} == {key_slot(Keys(PREFIX).raw.encode())}, "one slot for everything"
