"""A Redis Cluster failover mid-run: the master that serves the deployment's slot is killed (SIGKILL) while the demo
archive is being replayed, its replica takes over, and the stage workers (two per stage) follow it and finish the
story as an undisturbed run tells it, every event once.

What a failover keeps: Redis replicates asynchronously, so the replica may lack the last writes the master
acknowledged. The whole deployment lives in one slot, hence on one master with one replication stream, and the
replica holds a prefix of that stream: a failover rewinds the deployment to a consistent earlier moment, a stage's
writes together with its acknowledgements. Entries whose handling is rewound are pending or unread again and are
handled again (every stage is idempotent), so the stages need no `WAIT`. What a rewind can lose is a write whose
author remembers it elsewhere: here the snapshot the test publishes, which it will not publish again, so the test
waits for the replica to hold it (`WAIT`) before the kill. A poller needs no such wait: the record that it saw an
entry is written in the entry's own transaction, so a rewind loses both and the next poll publishes it again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from services.cli import DEMO_ARCHIVE
from services.connection import connect
from services.groups import backlog, ensure_groups
from services.names import Keys
from services.replay import REPLAY_STAGES, EventReader, replay
from services.settings import Settings
from services.stage import StageContext
from services.tracker.store import IncidentStore
from services.wire import entry_data
from tests.cluster.replicated import ReplicatedCluster, replicated_cluster
from tests.cluster.servers import RedisServer
from tests.cluster.workers import Worker, start_worker
from tests.support.pipeline import ArchivePlayer
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

WORKERS_PER_STAGE = 2
PLAYED_BEFORE_THE_KILL = 7  # of the archive's 14 snapshots; the 7th is still being handled when the master dies
REPLICATED_WITHIN_MS = 2000
TEST_TIMEOUT_S = 90  # the whole run, the undisturbed replay included; it takes about 30 s


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedCluster]:
    """Three masters with a replica each; every test kills a master of its own (`prefix_with_replica`)."""
    with replicated_cluster(tmp_path_factory.mktemp("replicated")) as cluster:
        yield cluster


def replicated_now(master: RedisServer) -> int:
    """`WAIT` on `master`: how many replicas hold every write it has acknowledged so far."""
    with SyncRedis(port=master.port, socket_timeout=REPLICATED_WITHIN_MS / 1000 + 5) as direct:
        return int(direct.wait(1, REPLICATED_WITHIN_MS))


async def test_a_command_sent_while_its_master_is_down_waits_for_the_replica(replicated: ReplicatedCluster) -> None:
    """A command sent the moment its slot's master dies is answered by the promoted replica, not failed (redis-py's
    own tries are spent within milliseconds; `connect`'s client backs off between rounds of them)."""
    key = f"{{{replicated.prefix_with_replica('client')}}}:probe"
    redis = connect(replicated.url)
    try:
        await redis.set(key, "before the kill")
        master = replicated.master_of(key)
        replica = replicated.replica_of(master)
        assert replicated_now(master) == 1
        master.kill()
        seen = await redis.get(key)
        await redis.set(key, "after the kill")
    finally:
        await redis.aclose()
    assert seen == b"before the kill"
    # The node asked may learn of the promotion a little after the client was answered by the new master.
    await eventually(lambda: replicated.master_of(key) is replica, timeout_s=10,
                     what="the replica serving the slot, in the cluster's view")


async def test_stage_workers_follow_a_failover_to_the_replica(
    settings: Settings, redis_url: str, replicated: ReplicatedCluster, tmp_path: Path
) -> None:
    """SIGKILL of the slot's master mid-replay: its replica is promoted, the same workers (and the publisher) carry on
    against it, and the run ends with the undisturbed run's events (none twice) and incidents, and every entry
    published before the kill."""
    prefix = replicated.prefix_with_replica("livedesk")
    keys = Keys(prefix)
    redis = connect(replicated.url)
    workers: list[Worker] = []
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            undisturbed = await replay(DEMO_ARCHIVE, settings, redis_url)
            await ensure_groups(redis, keys, REPLAY_STAGES)
            workers = [start_worker(stage, replicated.url, prefix, f"{stage}-{n}", tmp_path)
                       for stage in REPLAY_STAGES for n in range(WORKERS_PER_STAGE)]
            await eventually(lambda: all(worker.started() for worker in workers), timeout_s=60,
                             what="every worker reading its stream")
            player = ArchivePlayer(redis, StageContext(settings.model_copy(update={"key_prefix": prefix}), redis),
                                   DEMO_ARCHIVE)
            # A snapshot at a time, each drained before the next (test_cluster_replay says why).
            for _ in range(PLAYED_BEFORE_THE_KILL - 1):
                await player.play(1)
            await player.play(1, drain=False)

            master = replicated.master_of(keys.raw)
            replica = replicated.replica_of(master)
            # The player will not publish its snapshots again (the module docstring): it waits for them to be
            # replicated. The workers, busy with the last one, are not waited for.
            published_replicated = replicated_now(master)
            published = entry_data(await redis.xrange(keys.raw))
            told = entry_data(await redis.xrange(keys.changes))
            master.kill()
            # The next snapshot is published while the slot has no master: the publisher waits for one as well.
            publishing = asyncio.create_task(player.play(1))
            promoted = await asyncio.to_thread(replicated.wait_failover, keys.raw, master)
            await publishing
            while player.remaining:
                await player.play(1)

            events = await EventReader(redis, keys).new_events()
            incidents = await IncidentStore(redis, keys).all()
            pending = await backlog(redis, keys, REPLAY_STAGES)
            kept = entry_data(await redis.xrange(keys.raw))
    finally:
        codes = {worker.consumer: worker.stop() for worker in workers}
        await redis.aclose()
    logs = "\n".join(f"--- {worker.consumer}\n{worker.log_tail()}" for worker in workers)
    assert published_replicated == 1, "the published snapshots reached the replica before the kill"
    assert promoted is replica
    assert codes == {worker.consumer: 0 for worker in workers}, logs
    assert set(published) <= set(kept), "every entry published before the kill is on the new master"
    assert len(told) < len(events), "the story went on after the failover"
    assert pending == {"dedup": 0, "tracker": 0}
    assert [e.model_dump_json() for e in events] == [e.model_dump_json() for e in undisturbed.events], logs
    assert [i.model_dump_json() for i in incidents] == [i.model_dump_json() for i in undisturbed.incidents]
    assert [id for id, n in Counter(e.event_id for e in events).items() if n > 1] == [], "no event twice"
    # The clients' own retries rode out the failover: no read or handler failed for it.
    failures = [line for worker in workers for line in worker.lines() if line.get("level") in ("error", "critical")]
    assert failures == [], logs
