"""Benchmark: the dedup stage alone on a real Redis, with a full window, against a bare redis-py relay (issue #4).

Run from the repo root (nothing outside a fresh `livedesk-bench:<hex>` prefix is touched; it is deleted afterwards):

    python -m tests.benchmarks.bench_dedup [--window 100000] [--measure 20000] [--copies 0.2] [--workers 1]
                                           [--redis-url redis://127.0.0.1:6379/0]

1. Fill: `--window` synthetic news texts (a fraction `--copies` of them near-copies of earlier ones, from other
   outlets) are judged by `process`, filling the entry, story, signature and LSH band keys; the memory those keys
   take is read with MEMORY USAGE (every key) and reported per 100,000 updates.
2. Measure: `--measure` further raw entries are put on `raw` and the real dedup stage (the FastStream router, batch
   reads, acknowledgements) drains them in `--workers` processes; then a bare relay (XREADGROUP a batch → XADD each →
   XACK, pipelined) does the same number on its own streams. Prints updates/s of each and their ratio (target: dedup
   >= 50% of the relay), and the CPU each spends per update, in its own process(es) and in Redis: what the stage's
   rate costs in cores, on this machine or a bigger one.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType

from redis.asyncio import Redis

from schemas import Authority, FeedEntry, RawUpdate
from services.app import build_broker
from services.connection import connect
from services.dedup import process
from services.dedup.stage import DedupPolicy
from services.groups import backlog, ensure_groups
from services.heap import frozen_survivors
from services.identity import content_fingerprint, entry_identity
from services.logs import configure_logging
from services.names import Keys
from services.replay import delete_prefix
from services.settings import Settings
from services.stage import StageContext
from services.wire import DATA_FIELD

_VOCABULARY = (
    "police officers called address street man woman boy girl hospital condition critical stable arrested charged "
    "suspicion murder stabbing shooting fire crews scene cordon inquiries witnesses appeal footage residents area "
    "morning evening night council spokesperson said statement investigation watchdog ambulance service paramedics "
    "treated injuries serious minor road closed vehicle collision driver pedestrian court remanded custody bail"
)
WORDS = _VOCABULARY.split()


def _text(rng: random.Random, sentences: int = 8) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 18))).capitalize() + "." for _ in range(sentences)
    )


def _raw(n: int, text: str, at: datetime) -> RawUpdate:
    entry = FeedEntry(guid=f"g{n}", title=f"Report {n}", text=text, published=at)
    source = f"outlet{n % 500}"
    return RawUpdate(source_id=source, authority=Authority.news, feed_url=f"https://{source}.example.org/rss",
                     entry=entry, identity=entry_identity(source, entry), fingerprint=content_fingerprint(entry),
                     fetched_at=at)


def _corpus(start: int, count: int, copies: float, rng: random.Random) -> list[RawUpdate]:
    texts: list[str] = []
    now = datetime.now(UTC)
    items = []
    for n in range(start, start + count):
        if texts and rng.random() < copies:
            text = f"{_text(rng, 1)} {rng.choice(texts)} {_text(rng, 1)}"  # an outlet's own intro and sign-off
        else:
            text = _text(rng)
            texts.append(text)
        items.append(_raw(n, text, now - timedelta(seconds=start + count - n)))
    return items


async def _fill(redis: Redis, keys: Keys, items: list[RawUpdate], policy: DedupPolicy, concurrency: int = 32) -> float:
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await process(redis, keys, item, policy=policy)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _memory(redis: Redis, prefix: str) -> tuple[int, int]:
    """Bytes and number of the dedup keys under `prefix` (MEMORY USAGE of every key, pipelined)."""
    total = count = 0
    batch: list[bytes] = []

    async def measure() -> int:
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.memory_usage(key, samples=0)  # every element: a bucket hash holds thousands, unalike
            return sum(size or 0 for size in await pipe.execute())

    async for key in redis.scan_iter(match=f"{Keys(prefix).root}:dedup:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            total, count, batch = total + await measure(), count + len(batch), []
    total, count = total + await measure(), count + len(batch)
    return total, count


def _stage_worker(url: str, prefix: str, n: int, go: EventType, done: EventType, cpu: Queue[float]) -> None:
    """One dedup worker process (its own consumer in the group): waits for `go`, drains `raw` with the real stage
    (FastStream router, batch reads, acknowledgements), reports its CPU seconds in between."""
    settings = Settings(_env_file=None, redis_url=url, key_prefix=prefix,
                        consumer=f"bench-{os.getpid()}-{n}", log_format="json", log_level="error")
    configure_logging(settings)

    async def run() -> None:
        ctx = StageContext(settings, connect(url))
        async with build_broker(ctx, url, ["dedup"]) as broker:
            while not go.is_set():  # noqa: ASYNC110 - a process event
                await asyncio.sleep(0.005)
            started = time.process_time()
            await broker.start()
            while not done.is_set():  # noqa: ASYNC110 - a process event
                await asyncio.sleep(0.02)
            cpu.put(time.process_time() - started)
        await ctx.redis.aclose()

    with frozen_survivors():  # as `livedesk worker` runs its stage
        asyncio.run(run())


async def _server_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _dedup_stage(redis: Redis, settings: Settings, url: str, items: list[RawUpdate],
                       workers: int) -> tuple[float, float, float]:
    """Seconds for `workers` dedup processes to drain `items` from `raw`, their CPU seconds, the server's."""
    keys = settings.keys
    async with redis.pipeline(transaction=False) as pipe:
        for item in items:
            pipe.xadd(keys.raw, {DATA_FIELD: item.model_dump_json()})
        await pipe.execute()
    await ensure_groups(redis, keys, ["dedup"])
    spawn = multiprocessing.get_context("spawn")
    go, done, cpu = spawn.Event(), spawn.Event(), spawn.Queue()
    processes = [spawn.Process(target=_stage_worker, args=(url, settings.key_prefix, n, go, done, cpu))
                 for n in range(workers)]
    for worker in processes:
        worker.start()
    await asyncio.sleep(3)  # imports and connections, before the clock starts
    server_before, started = await _server_cpu(redis), time.perf_counter()
    go.set()
    while (await backlog(redis, keys))["dedup"]:  # noqa: ASYNC110 - the state is in Redis
        await asyncio.sleep(0.02)
    elapsed, server = time.perf_counter() - started, await _server_cpu(redis) - server_before
    done.set()
    client = sum(cpu.get(timeout=30) for _ in processes)
    for worker in processes:
        worker.join(timeout=30)
    return elapsed, client, server


async def _relay(redis: Redis, prefix: str, items: list[RawUpdate], batch: int) -> tuple[float, float, float]:
    """Seconds for a bare relay to move `items`, its CPU seconds, the server's."""
    source, sink, group = f"{prefix}:relay:in", f"{prefix}:relay:out", "relay"
    async with redis.pipeline(transaction=False) as pipe:
        for item in items:
            pipe.xadd(source, {DATA_FIELD: item.model_dump_json()})
        await pipe.execute()
    await redis.xgroup_create(source, group, id="0")
    server_before, cpu_before, started = await _server_cpu(redis), time.process_time(), time.perf_counter()
    done = 0
    while done < len(items):
        rows = await redis.xreadgroup(group, "c", {source: ">"}, count=batch, block=1000)
        assert isinstance(rows, list)  # RESP2's reply: [[stream, [(entry id, fields), ...]]], [] when none came
        for _, entries in rows:
            async with redis.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    pipe.xadd(sink, fields)
                    pipe.xack(source, group, entry_id)
                await pipe.execute()
            done += len(entries)
    elapsed, client = time.perf_counter() - started, time.process_time() - cpu_before
    return elapsed, client, await _server_cpu(redis) - server_before


async def bench(args: argparse.Namespace) -> None:
    prefix = f"livedesk-bench:{uuid.uuid4().hex[:12]}"
    settings = Settings(_env_file=None, redis_url=args.redis_url, key_prefix=prefix,
                        consumer=f"bench-{os.getpid()}", log_format="json", log_level="error")
    configure_logging(settings)
    keys, policy, rng = Keys(prefix), DedupPolicy.of(settings), random.Random(7)
    redis = connect(args.redis_url)
    try:
        print(f"dedup benchmark: window {args.window} updates ({args.copies:.0%} near-copies), measured "
              f"{args.measure}, prefix {prefix}")
        fill_s = await _fill(redis, keys, _corpus(0, args.window, args.copies, rng), policy)
        used, count = await _memory(redis, prefix)
        print(f"fill      {args.window / fill_s:8.0f} updates/s (process(), 32 concurrent)  "
              f"{count} keys, {used / 1e6:.1f} MB = {used / args.window * 100_000 / 1e6:.1f} MB per 100,000 updates")
        measured = _corpus(args.window, args.measure, args.copies, rng)
        stage_s, stage_cpu, stage_server = await _dedup_stage(redis, settings, args.redis_url, measured, args.workers)
        relay_s, relay_cpu, relay_server = await _relay(redis, prefix, measured, settings.batch_size)
        stage_rate, relay_rate = args.measure / stage_s, args.measure / relay_s
        per_update = 1e6 / args.measure
        print(f"dedup     {stage_rate:8.0f} updates/s  (the stage: {args.workers} worker process(es), FastStream "
              f"router, batch {settings.batch_size})  CPU per update: {stage_cpu * per_update:.0f} µs in the "
              f"workers + {stage_server * per_update:.0f} µs in Redis")
        print(f"relay     {relay_rate:8.0f} updates/s  (bare redis-py XREADGROUP → XADD → XACK)  CPU per update: "
              f"{relay_cpu * per_update:.0f} µs in the relay + {relay_server * per_update:.0f} µs in Redis")
        print(f"ratio     dedup / relay = {stage_rate / relay_rate:.2f}  (target >= 0.50: "
              f"{'MET' if stage_rate / relay_rate >= 0.5 else 'NOT MET'})")
        stage_total, cores = (stage_cpu + stage_server) / args.measure, os.cpu_count() or 1
        print(f"cores     dedup at half the relay's rate needs {stage_total * relay_rate / 2:.1f} cores busy "
              f"(CPU per update x rate); this machine has {cores}")
    finally:
        print(f"cleanup   deleted {await delete_prefix(redis, prefix)} keys under {prefix}:")
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=100_000)
    parser.add_argument("--measure", type=int, default=20_000)
    parser.add_argument("--copies", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=1, help="dedup worker processes sharing the group")
    parser.add_argument("--redis-url", default=os.environ.get("LIVEDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
