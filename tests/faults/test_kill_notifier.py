"""Notifier workers SIGKILLed mid-work, again and again, while change events arrive: every hook still gets every
event, signed, each incident's events first delivered in version order; a few repeats (at least once, keyed), nothing
dead-lettered, every queue drained."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas import ChangeEvent
from services.groups import backlog, ensure_groups
from services.names import Keys
from services.notifier.deliver import GROUP
from services.notifier.signing import verify
from services.settings import Settings
from tests.cluster.workers import start_worker
from tests.faults.test_kill_workers import MIN_KILLS_PER_STAGE, Chaos, Worker
from tests.services.notifier.conftest import SECRET, add_hook, change, publish
from tests.support.notifier import QUICK_RETRIES
from tests.support.receivers import Receiver, Reply
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

INCIDENTS = 40
VERSIONS = 8  # per incident: 320 events in all
FEED_S = 6.0  # the events arrive over this long, while the kills happen
KILL_EVERY_S = 0.7
# More than the kill test's: a kill every KILL_EVERY_S, half of them at workers holding changes. A change held by
# max_deliveries killed workers in a row is dead-lettered as one that kills its workers (a replacement's reclaimer
# takes over the oldest idle entry first, and may be killed holding it), so this test raises max_deliveries above it.
MAX_KILLS = 8
PARALLEL_INCIDENTS = 4  # per hook and worker: deliveries a kill can cut off after the receiver took them
# A dead worker's entries are taken over after this long. A live worker keeps what it holds fresh three times as
# often, but on a busy 2-core machine a process starting up can hold the others off the CPU for most of a second: an
# idle time much shorter than this would let live workers take entries from each other (delivered twice, though no
# kill cut them off).
RECLAIM_IDLE_MS = 2000
# Fast retries, as the delivery tests use. A live copy of the router waits its turn behind a dead one's changes for
# less than RECLAIM_IDLE_MS, or its own batch, idle that long, would be taken over from it too (a delivery more each
# time, towards dead-lettering it as abandoned).
NOTIFIER_ENV = {f"LIVEDESK_{name.upper()}": str(value) for name, value in QUICK_RETRIES.items()} | {
    "LIVEDESK_RECLAIM_IDLE_MS": str(RECLAIM_IDLE_MS), "LIVEDESK_TURN_WAIT_MS": str(RECLAIM_IDLE_MS // 5),
    "LIVEDESK_HOOK_PARALLEL_INCIDENTS": str(PARALLEL_INCIDENTS), "LIVEDESK_MAX_DELIVERIES": str(MAX_KILLS + 2)}
# One receiver answers at once; the other takes tens of milliseconds a request, so kills land mid-delivery.
HOOKS = {"prompt": Reply(), "slow": Reply(stall_s=0.03)}


@dataclass
class NotifierChaos(Chaos):
    """`Chaos` for notifier workers, which hold two kinds of work: entries of `changes` not yet fanned out (group
    `notifier`) and events of a hook's queue not yet delivered (group `deliver`). Kills take turns at the two."""

    hook_ids: tuple[str, ...] = ()
    log_dir: Path = Path()

    def start(self, stage: str, extra_env: dict[str, str] | None = None) -> Worker:
        """A worker started as `tests.cluster.workers.start_worker` starts one: its log kept in `log_dir`."""
        self.started += 1
        consumer = f"{stage}-{self.started}"
        started = start_worker(stage, self.redis_url, self.prefix, consumer, self.log_dir,
                               **{**NOTIFIER_ENV, **(extra_env or {})})
        worker = Worker(stage, consumer, started.process)
        self.workers.setdefault(stage, []).append(worker)
        return worker

    async def held(self, worker: Worker) -> Counter[str]:
        """What `worker` holds: `changes` entries, and hook events by hook id."""
        keys = Keys(self.prefix)
        held: Counter[str] = Counter(changes=await super().held_by(worker))
        for hook_id in self.hook_ids:
            try:
                rows = await self.redis.xpending_range(keys.hook_queue(hook_id), GROUP, "-", "+", 10,
                                                       consumername=worker.consumer)
            except ResponseError:  # no deliverer has made the queue's group yet
                rows = []
            held[hook_id] = len(rows)
        return held

    async def run(self, stage: str) -> None:
        """Every `KILL_EVERY_S`, SIGKILL a worker of `stage` holding the kind of work whose turn it is (hook events,
        then changes, and so on) and start a replacement; `kills` counts the kills of each kind that landed (the
        dead worker still held that work)."""
        for kind in itertools.islice(itertools.cycle(("hooks", "changes")), MAX_KILLS):
            await asyncio.sleep(KILL_EVERY_S)
            victim = None
            while victim is None:
                for worker in [w for w in self.workers[stage] if w.process.poll() is None]:
                    if _holds(kind, await self.held(worker)):
                        victim = worker
                        break
                else:
                    await asyncio.sleep(0.002)
            victim.process.kill()
            await asyncio.to_thread(victim.process.wait, 10)
            self.workers[stage].remove(victim)
            self.dead.append(victim)
            if _holds(kind, await self.held(victim)):  # nothing is taken over before `reclaim_idle_ms`
                self.kills[kind] += 1
            self.start(stage)


def _holds(kind: str, held: Counter[str]) -> bool:
    return held["changes"] > 0 if kind == "changes" else held.total() > held["changes"]


def bursts(rng: random.Random) -> Iterator[list[ChangeEvent]]:
    """Every incident's versions 1..VERSIONS, as the tracker writes them: a merge emits one to three consecutive
    changes of one incident at once, and the incidents' merges interleave."""
    next_version = {f"i_{n:02}": 1 for n in range(INCIDENTS)}
    while next_version:
        incident = rng.choice(sorted(next_version))
        first = next_version[incident]
        last = min(first + rng.randint(0, 2), VERSIONS)
        yield [change(incident, version) for version in range(first, last + 1)]
        if last == VERSIONS:
            del next_version[incident]
        else:
            next_version[incident] = last + 1


async def feed(redis: Redis, settings: Settings) -> list[ChangeEvent]:
    """Publish every burst on `changes`, spread over `FEED_S`; returns the events in the order published."""
    published: list[ChangeEvent] = []
    all_bursts = list(bursts(random.Random(11)))
    for burst in all_bursts:
        await publish(redis, settings, burst)
        published += burst
        await asyncio.sleep(FEED_S / len(all_bursts))
    return published


async def drained(redis: Redis, keys: Keys, hook_ids: tuple[str, ...]) -> bool:
    """Whether every change has been fanned out and every hook's queue delivered (a queue is a work list: emptied)."""
    if (await backlog(redis, keys, ["notifier"]))["notifier"]:
        return False
    for hook_id in hook_ids:
        queue = keys.hook_queue(hook_id)
        if await redis.xlen(queue) or (await redis.xpending(queue, GROUP))["pending"]:
            return False
    return True


def first_deliveries_by_incident(keys: list[str], events: dict[str, ChangeEvent]) -> dict[str, list[int]]:
    """Per incident, the versions of its events in the order the receiver first accepted each."""
    versions: dict[str, list[int]] = {}
    for key in dict.fromkeys(keys):  # first acceptance of each key, in order
        event = events[key]
        versions.setdefault(event.incident_id, []).append(event.version)
    return versions


def delivered_keys(receiver: Receiver) -> list[str]:
    """The Idempotency-Keys of the requests `receiver` accepted whole, in the order it answered them. A request cut
    short by its sender's death is not a delivery: no worker heard the answer, so the event is sent again."""
    return [r.key for r in receiver.accepted() if r.whole]


async def test_killed_notifier_workers_lose_no_delivery(settings: Settings, redis: Redis, redis_url: str,
                                                         key_prefix: str, tmp_path: Path) -> None:
    """Two notifier workers, one SIGKILLed while it holds changes or hook events (several times, a replacement
    started each time), as 320 change events arrive: each of two hooks accepted every event, signed, and each
    incident's events first in version order; repeats are within what the kills cut off; nothing dead-lettered;
    every group and queue drained; the survivors exit 0 on SIGTERM."""
    keys = Keys(key_prefix)
    hook_ids = tuple(HOOKS)
    await ensure_groups(redis, keys, ["notifier"])
    started = time.monotonic()
    with Receiver(then=HOOKS["prompt"]) as prompt, Receiver(then=HOOKS["slow"]) as slow:
        receivers = {"prompt": prompt, "slow": slow}
        for hook_id, receiver in receivers.items():
            await add_hook(redis, settings, hook_id, receiver.url)
        chaos = NotifierChaos(redis, redis_url, key_prefix, hook_ids=hook_ids, log_dir=tmp_path)
        try:
            for _ in range(2):
                chaos.start("notifier")
            killer = asyncio.create_task(chaos.run("notifier"))
            try:
                async with asyncio.timeout(90):
                    events = await feed(redis, settings)
                    every_id = {event.event_id for event in events}
                    await eventually(lambda: all(set(delivered_keys(r)) == every_id for r in receivers.values()),
                                     timeout_s=60, what="every hook got every event")
                    await eventually(lambda: drained(redis, keys, hook_ids), timeout_s=30, what="all drained")
            finally:
                killer.cancel()
                await asyncio.gather(killer, return_exceptions=True)
            if not killer.cancelled() and (failure := killer.exception()) is not None:
                raise failure
            exits = await asyncio.to_thread(chaos.stop_all)
        finally:
            chaos.stop_all()
    elapsed_s = time.monotonic() - started
    delivered = {hook_id: delivered_keys(receiver) for hook_id, receiver in receivers.items()}

    cut_short = {hook_id: sum(not r.whole for r in receiver.requests) for hook_id, receiver in receivers.items()}
    repeats = {hook_id: len(keys) - len(set(keys)) for hook_id, keys in delivered.items()}
    print(f"\nnotifier chaos: {len(events)} events to {len(HOOKS)} hooks in {elapsed_s:.1f} s; {len(chaos.dead)} "
          f"kills, landed mid-work {dict(chaos.kills)}; repeats {repeats}; requests cut short {cut_short}; "
          f"{chaos.started} worker processes started")

    assert chaos.kills.total() >= MIN_KILLS_PER_STAGE, f"several kills must land mid-work: {dict(chaos.kills)}"
    assert chaos.kills["hooks"], f"some kills must land mid-delivery: {dict(chaos.kills)}"
    assert chaos.kills["changes"], f"some kills must land mid-fan-out: {dict(chaos.kills)}"
    assert all(code == 0 for code in exits.values()), f"surviving workers must stop cleanly: {exits}"
    # A worker has at most PARALLEL_INCIDENTS requests of a hook in flight: a kill cuts off at most that many (sent
    # again: at least once, and the Idempotency-Key lets the receiver drop the repeat).
    most_cut_off = len(chaos.dead) * PARALLEL_INCIDENTS
    by_id = {event.event_id: event for event in events}
    for hook_id, receiver in receivers.items():
        assert set(delivered[hook_id]) == set(by_id), f"hook {hook_id}: every event, no other"
        assert all(verify(SECRET, r.headers["x-livedesk-timestamp"], r.body, r.headers["x-livedesk-signature"])
                   for r in receiver.requests if r.whole), f"hook {hook_id}: every request signed"
        for incident, versions in first_deliveries_by_incident(delivered[hook_id], by_id).items():
            assert versions == list(range(1, VERSIONS + 1)), f"hook {hook_id}, {incident}: in version order"
        assert repeats[hook_id] <= most_cut_off, f"hook {hook_id}: few repeats"
        assert cut_short[hook_id] <= most_cut_off, f"hook {hook_id}: requests cut short only by kills"
    assert await redis.xlen(keys.deadletter) == 0, "no delivery given up"
