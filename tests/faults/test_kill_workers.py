"""Stage workers SIGKILLed mid-batch, again and again, while a replay runs: the same events and incidents as an
undisturbed replay, no event lost and none told twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas import Authority, ChangeEvent, EventType, Update, Verdict
from services.cli import DEMO_ARCHIVE
from services.groups import backlog, ensure_groups
from services.names import STAGE_INPUTS, Keys
from services.poller.diff import publish_changed, raw_updates
from services.poller.parse import parse_feed
from services.replay import read_archive, replay, wait_drained
from services.settings import Settings
from services.tracker.store import IncidentStore
from services.wire import entry_data, entry_fields
from tests.faults.failing_rules import KILLER

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dedup", "tracker")
WORKERS_PER_STAGE = 2
# Above the longest a live worker takes over one entry, so only a dead worker's entries are taken over; small, so
# each kill costs the replay about a second.
RECLAIM_IDLE_MS = 1000
# At most; the chaos stops killing a stage after this many. Fewer than a worker's max_deliveries (5): an entry taken
# over more often than that is dead-lettered as one that kills its workers.
KILLS_PER_STAGE = 4
MIN_KILLS_PER_STAGE = 3
COOL_DOWN_S = 0.3  # between two kills of one stage


def update(guid: str, place: str, extra: str = "") -> Update:
    """A first report of a stabbing in `place`: an incident of its own."""
    at = datetime(2025, 10, 24, 9, tzinfo=UTC)
    return Update(update_id=f"u_{guid}", verdict=Verdict.new, source_id="wire", authority=Authority.news,
                  identity=f"wire|{guid}", fingerprint=f"f-{guid}", guid=guid, title=f"Man stabbed in {place}",
                  text=f"A man was stabbed in {place} on Friday. He is in a critical condition.{extra}",
                  reported_at=at, fetched_at=at)


@dataclass
class Worker:
    stage: str
    consumer: str
    process: subprocess.Popen[bytes]


@dataclass
class Chaos:
    """Keeps `WORKERS_PER_STAGE` worker processes per stage running and SIGKILLs one of a stage's workers while it
    holds entries it has read and not acknowledged, then starts a replacement."""

    redis: Redis
    redis_url: str
    prefix: str
    workers: dict[str, list[Worker]] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)
    dead: list[Worker] = field(default_factory=list)
    started: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def start(self, stage: str, extra_env: dict[str, str] | None = None) -> Worker:
        self.started += 1
        consumer = f"{stage}-{self.started}"
        env = {
            **os.environ,
            "LIVEDESK_REDIS_URL": self.redis_url,
            "LIVEDESK_KEY_PREFIX": self.prefix,
            "LIVEDESK_CONSUMER": consumer,
            "LIVEDESK_RECLAIM_IDLE_MS": str(RECLAIM_IDLE_MS),
            "LIVEDESK_BATCH_SIZE": "2",
            "LIVEDESK_LOG_LEVEL": "warning",
            **(extra_env or {}),
        }
        process = subprocess.Popen([sys.executable, "-m", "services", "worker", stage], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker = Worker(stage, consumer, process)
        self.workers.setdefault(stage, []).append(worker)
        return worker

    async def held_by(self, worker: Worker) -> int:
        stream, group = STAGE_INPUTS[worker.stage]
        rows = await self.redis.xpending_range(Keys(self.prefix).stream(stream), group, "-", "+", 10,
                                               consumername=worker.consumer)
        return len(rows)

    async def run(self, stage: str) -> None:
        """Kill a random one of `stage`'s workers that holds unacknowledged entries, up to `KILLS_PER_STAGE` times."""
        while self.kills[stage] < KILLS_PER_STAGE:
            live = [w for w in self.workers[stage] if w.process.poll() is None]
            # Frozen, a worker holds what it holds: look at every worker of the stage while none of them can act.
            for worker in live:
                worker.process.send_signal(signal.SIGSTOP)
            try:
                holders = [w for w in live if await self.held_by(w)]
                victim = self.rng.choice(holders) if holders else None
                if victim is not None:
                    victim.process.send_signal(signal.SIGKILL)
            finally:
                for worker in live:
                    worker.process.send_signal(signal.SIGCONT)
            if victim is None:
                await asyncio.sleep(0.002)
                continue
            await asyncio.to_thread(victim.process.wait, 10)
            self.workers[stage].remove(victim)
            self.dead.append(victim)
            if await self.held_by(victim):  # died holding entries: a kill mid-batch
                self.kills[stage] += 1
            self.start(stage)
            await asyncio.sleep(COOL_DOWN_S)

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every live worker; returns each one's exit code (None: it had to be killed)."""
        live = [w for workers in self.workers.values() for w in workers if w.process.poll() is None]
        for worker in live:
            worker.process.send_signal(signal.SIGCONT)
            worker.process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for worker in live:
            try:
                codes[worker.consumer] = worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
                codes[worker.consumer] = None
        return codes


@contextlib.asynccontextmanager
async def chaos_on(redis: Redis, redis_url: str, prefix: str) -> AsyncIterator[Chaos]:
    chaos = Chaos(redis, redis_url, prefix)
    try:
        yield chaos
    finally:
        for workers in chaos.workers.values():
            for worker in workers:
                if worker.process.poll() is None:
                    worker.process.kill()
                    worker.process.wait()


async def publish_snapshots(redis: Redis, keys: Keys) -> int:
    """Publish the demo archive's snapshots as a replay does, in time order, each once the one before it has gone
    through dedup and the tracker (a paced replay, as `livedesk demo` runs one); returns how many entries.

    Paced, because the events depend on the order evidence arrives in (a late "critical" after "stable" is no
    change): copies of a stage keep stream order (`services.turns`), but a killed worker's entries are taken over as
    retries, after entries read later. Within a snapshot the order does not matter to this archive."""
    archive = read_archive(DEMO_ARCHIVE)
    published = 0
    for snapshot in archive.snapshots:
        source = archive.sources[snapshot.source_id]
        parsed = parse_feed(snapshot.path.read_bytes(), feed=f"{source.id} ({snapshot.path.name})",
                            base_url=source.url)
        published += len(await publish_changed(redis, keys, source.id, raw_updates(source, parsed.entries,
                                                                                     snapshot.at)))
        await wait_drained(redis, keys, timeout_s=60)
    return published


async def test_killed_workers_change_no_event_and_no_incident(settings: Settings, redis: Redis, redis_url: str,
                                                               key_prefix: str) -> None:
    """Dedup and tracker workers SIGKILLed mid-batch several times each during a replay: the events (ids, order,
    content) and the final incidents are those of an undisturbed replay; no event id twice; nothing dead-lettered."""
    undisturbed = await replay(DEMO_ARCHIVE, settings, redis_url)
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, STAGES)
    started = time.monotonic()
    async with chaos_on(redis, redis_url, key_prefix) as chaos:
        for stage in STAGES:
            for _ in range(WORKERS_PER_STAGE):
                chaos.start(stage)
        killers = [asyncio.create_task(chaos.run(stage)) for stage in STAGES]
        try:
            async with asyncio.timeout(120):
                published = await publish_snapshots(redis, keys)
        finally:
            for killer in killers:
                killer.cancel()
            await asyncio.gather(*killers, return_exceptions=True)
        exits = await asyncio.to_thread(chaos.stop_all)
    elapsed_s = time.monotonic() - started
    print(f"\nchaos replay: {published} raw entries, {elapsed_s:.1f} s, kills mid-batch {dict(chaos.kills)}, "
          f"{chaos.started} worker processes started")

    assert all(chaos.kills[stage] >= MIN_KILLS_PER_STAGE for stage in STAGES), (
        f"each stage must be killed mid-batch several times: {dict(chaos.kills)}")
    assert all(code == 0 for code in exits.values()), f"surviving workers must stop cleanly: {exits}"
    events = [ChangeEvent.model_validate_json(data) for _, data in entry_data(await redis.xrange(keys.changes))]
    ids = [event.event_id for event in events]
    assert len(set(ids)) == len(ids), "no event told twice"
    assert ids == [event.event_id for event in undisturbed.events], "the same events, in the same order"
    assert [e.model_dump_json() for e in events] == [e.model_dump_json() for e in undisturbed.events]
    incidents = await IncidentStore(redis, keys).all()
    assert [i.model_dump_json() for i in incidents] == [i.model_dump_json() for i in undisturbed.incidents]
    assert await redis.xlen(keys.deadletter) == 0, "no entry given up"


async def test_an_entry_that_kills_its_worker_is_dead_lettered(redis: Redis, redis_url: str, key_prefix: str) -> None:
    """An update whose handling kills the tracker process: each restarted worker that takes it over dies, until it has
    been delivered max_deliveries times; then it is dead-lettered unhandled and the updates behind it go through."""
    keys = Keys(key_prefix)
    await ensure_groups(redis, keys, ["tracker"])
    sent = [update("before", "Hackney Wick"), update("fatal", "Ilford", f" {KILLER}"), update("after", "Stratford")]
    for item in sent:
        await redis.xadd(keys.updates, entry_fields(item))  # type: ignore[arg-type]
    env = {"LIVEDESK_TRACKER_EXTRACTOR": "tests.faults.failing_rules:rules_that_kill_the_process",
           "LIVEDESK_MAX_DELIVERIES": "3", "LIVEDESK_RECLAIM_IDLE_MS": "500", "LIVEDESK_BATCH_SIZE": "5"}
    chaos = Chaos(redis, redis_url, key_prefix)
    deaths = 0
    async with chaos_on(redis, redis_url, key_prefix):
        async with asyncio.timeout(90):
            worker = chaos.start("tracker", env)
            while await redis.xlen(keys.deadletter) == 0 or (await backlog(redis, keys, ["tracker"]))["tracker"]:
                if worker.process.poll() is not None:  # a supervisor's restart, as `restart: always` does
                    deaths += 1
                    worker = chaos.start("tracker", env)
                await asyncio.sleep(0.05)
        assert worker.process.poll() is None, "the last worker lives on"
        chaos.stop_all()
    assert deaths == 3, "one death per delivery up to max_deliveries"
    (dead,) = [json.loads(data) for _, data in entry_data(await redis.xrange(keys.deadletter))]
    assert (dead["deliveries"], json.loads(dead["payload"])["update_id"]) == (4, "u_fatal")
    assert "AbandonedError" in dead["error"]
    events = [ChangeEvent.model_validate_json(data) for _, data in entry_data(await redis.xrange(keys.changes))]
    assert sorted(e.evidence[0].guid for e in events if e.type is EventType.incident_opened) == ["after", "before"]
