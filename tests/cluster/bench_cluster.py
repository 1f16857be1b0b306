"""Benchmark: copies of a stage, one server against a Redis Cluster, one deployment against several.

Run from the repo root (it starts its own `redis-server`s on free loopback ports, in a temporary folder, and kills
them at the end; nothing else is touched):

    python -m tests.cluster.bench_cluster [--dedup-updates 10000] [--tracker-updates 600] [--workers 1,2]

Each run starts `livedesk worker STAGE` processes (as an operator would) on a fresh key prefix, waits until they
read, then puts the updates on the stage's input stream in one pipeline and times the drain, from the first XADD
until the group has read and acknowledged everything. Printed per run: updates/s, its ratio to the first run
(one server, one worker: the baseline), CPU per update in the workers and in each Redis process (a cluster's nodes
apart), and what the busiest Redis process would allow if it were the only limit (1 s of its CPU / its CPU per
update). Figures are printed, never asserted; on a machine with few cores the workers and the servers share them.

- dedup: distinct synthetic news texts on `raw` (every one judged `new` after a band lookup).
- tracker: reports of stabbings in distinct made-up places on `updates` (every one opens an incident).
- deployments: three key prefixes whose hash tags fall on the three nodes of the cluster, one dedup worker each,
  against the same three prefixes on one server: where a cluster adds capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel
from redis import Redis as SyncRedis
from redis.crc import key_slot

from schemas import Authority, FeedEntry, RawUpdate, Update, Verdict
from services.connection import connect, is_cluster, node_url
from services.groups import backlog, ensure_groups
from services.identity import content_fingerprint, entry_identity
from services.names import STAGE_INPUTS, Keys
from services.wire import entry_fields
from tests.cluster.servers import redis_cluster, redis_server
from tests.cluster.workers import Worker, start_worker

_VOCABULARY = ("police officers called address street man woman boy girl hospital condition critical stable arrested "
               "charged suspicion murder stabbing shooting fire crews scene cordon inquiries witnesses appeal footage "
               "residents area morning evening night council spokesperson said statement investigation watchdog "
               "ambulance service paramedics treated injuries serious minor road closed vehicle collision driver "
               "pedestrian")
WORDS = _VOCABULARY.split()


def raw_updates(count: int, rng: random.Random) -> list[BaseModel]:
    at = datetime.now(UTC)
    made: list[BaseModel] = []
    for n in range(count):
        text = " ".join(" ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + "." for _ in range(8))
        entry = FeedEntry(guid=f"g{n}", title=f"Report {n}", text=text, published=at - timedelta(seconds=n))
        source = f"outlet{n % 50}"
        made.append(RawUpdate(source_id=source, authority=Authority.news, feed_url=f"https://{source}.example.org/",
                              entry=entry, identity=entry_identity(source, entry),
                              fingerprint=content_fingerprint(entry), fetched_at=at))
    return made


def place(n: int) -> str:
    consonants, vowels = "bcdfghklmnprstvw", "aeiou"
    return "".join([consonants[n % 16], vowels[n // 16 % 5], consonants[n // 80 % 16], vowels[n // 1280 % 5]]
                   ).capitalize() + " Green"


def tracker_updates(count: int, rng: random.Random) -> list[BaseModel]:
    del rng
    at = datetime(2025, 10, 24, 9, tzinfo=UTC)
    return [Update(update_id=f"u{n}", verdict=Verdict.new, source_id="wire", authority=Authority.news,
                   identity=f"wire|g{n}", fingerprint="f", guid=f"g{n}", title=f"Man stabbed in {place(n)}",
                   text=f"A man was stabbed in {place(n)} on Friday. He is in a critical condition.",
                   reported_at=at + timedelta(seconds=n), fetched_at=at) for n in range(count)]


@dataclass
class Run:
    label: str
    updates: int
    seconds: float
    worker_cpu_s: float
    server_cpu_s: dict[int, float]  # Redis process (port) → CPU seconds during the drain

    @property
    def rate(self) -> float:
        return self.updates / self.seconds


def _server_cpu(ports: Iterable[int]) -> dict[int, float]:
    found = {}
    for port in ports:
        with SyncRedis(port=port) as client:
            info = client.info("cpu")
            found[port] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return found


def _ports(url: str) -> list[int]:
    port = int(node_url(url).rsplit(":", 1)[1].split("/")[0])
    if not is_cluster(url):
        return [port]
    with SyncRedis(port=port) as client:
        return sorted(int(node.rsplit(":", 1)[1].split("@")[0]) for node in client.cluster("NODES"))


def _node_of(url: str, key: str) -> int:
    """The port of the node that serves `key`."""
    port = int(node_url(url).rsplit(":", 1)[1].split("/")[0])
    with SyncRedis(port=port) as client:
        slot = key_slot(key.encode())
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
    raise LookupError(key)


async def drain(label: str, url: str, stage: str, prefixes: list[str], workers_per_prefix: int,
                items: list[BaseModel], log_dir: Path) -> Run:
    """Start the workers, put `items` on every prefix's input stream, time until every group has finished."""
    redis = connect(url)
    workers: list[Worker] = []
    try:
        stream, _ = STAGE_INPUTS[stage]
        for prefix in prefixes:
            await ensure_groups(redis, Keys(prefix), [stage])
        workers = [start_worker(stage, url, prefix, f"{stage}-{uuid.uuid4().hex[:6]}", log_dir,
                                LIVEDESK_LOG_LEVEL="info", LIVEDESK_RECLAIM_IDLE_MS="600000")
                   for prefix in prefixes for _ in range(workers_per_prefix)]
        deadline = time.monotonic() + 60
        while not all(worker.started() for worker in workers):
            if time.monotonic() > deadline or any(w.process.poll() is not None for w in workers):
                raise RuntimeError("a worker did not start: " + "\n".join(w.log_tail() for w in workers))
            await asyncio.sleep(0.05)
        ports = _ports(url)
        cpu_before, servers_before = [w.cpu_s() for w in workers], _server_cpu(ports)
        started = time.perf_counter()
        for prefix in prefixes:
            async with redis.pipeline(transaction=False) as pipe:
                for item in items:
                    pipe.xadd(Keys(prefix).stream(stream), entry_fields(item))  # type: ignore[arg-type]
                await pipe.execute()
        for prefix in prefixes:
            while (await backlog(redis, Keys(prefix), [stage]))[stage]:  # noqa: ASYNC110 - the state is in Redis
                await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        worker_cpu = sum(w.cpu_s() - before for w, before in zip(workers, cpu_before, strict=True))
        servers = {port: used - servers_before[port] for port, used in _server_cpu(ports).items()}
        return Run(label, len(items) * len(prefixes), seconds, worker_cpu, servers)
    finally:
        for worker in workers:
            worker.stop()
        for prefix in prefixes:
            async for key in redis.scan_iter(match=Keys(prefix).everything, count=1000):
                await redis.unlink(key)
        await redis.aclose()


def report(runs: list[Run]) -> None:
    base = runs[0].rate
    for run in runs:
        per_node = " / ".join(f"{1e6 * s / run.updates:.0f}" for s in run.server_cpu_s.values())
        busiest = max(run.server_cpu_s.values()) / run.updates
        print(f"{run.label:<44} {run.rate:8.0f} updates/s  x{run.rate / base:4.2f}   CPU per update: "
              f"{1e6 * run.worker_cpu_s / run.updates:5.0f} µs workers, {per_node} µs Redis "
              f"(busiest Redis alone would allow {1 / busiest if busiest else float('inf'):,.0f}/s)")


async def bench(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    counts = [int(n) for n in args.workers.split(",")]
    dedup_items, tracker_items = raw_updates(args.dedup_updates, rng), tracker_updates(args.tracker_updates, rng)
    with tempfile.TemporaryDirectory(prefix="livedesk-bench-") as folder:
        root = Path(folder)
        with redis_server(root / "one") as one, redis_cluster(root / "cluster") as cluster:
            targets = [("one server", one.url), ("cluster of 3", cluster)]
            for stage, items in (("dedup", dedup_items), ("tracker", tracker_items)):
                runs = [await drain(f"{stage}: {name}, {n} worker(s)", url, stage, [f"bench-{uuid.uuid4().hex[:8]}"],
                                    n, items, root) for name, url in targets for n in counts]
                print(f"\n{stage}: {len(items)} updates per run; baseline = the first line")
                report(runs)
            spread: list[str] = []  # one prefix per node: their hash tags fall on different nodes
            while len({_node_of(cluster, Keys(p).raw) for p in spread}) < 3:
                candidate = f"desk-{uuid.uuid4().hex[:6]}"
                if _node_of(cluster, Keys(candidate).raw) not in {_node_of(cluster, Keys(p).raw) for p in spread}:
                    spread.append(candidate)
            runs = [await drain(f"dedup: {name}, 3 deployments x 1 worker", url, "dedup", spread, 1, dedup_items, root)
                    for name, url in targets]
            print(f"\ndeployments: 3 key prefixes x {len(dedup_items)} updates, one dedup worker each; baseline = the "
                  "first line")
            report(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dedup-updates", type=int, default=10_000)
    parser.add_argument("--tracker-updates", type=int, default=600)
    parser.add_argument("--workers", default="1,2", help="worker processes per stage, comma-separated")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
