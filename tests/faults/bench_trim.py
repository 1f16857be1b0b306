"""What safe trimming and back-pressure cost, against the unsafe or bare command in the same run.

    python -m tests.faults.bench_trim [--entries 100000] [--size 1000] [--url redis://127.0.0.1:6379/0]

- The length cap: `services.groups.trim(max_len=...)` removing half of a stream every group has finished (whole
  nodes in bulk, then the rest to the entry) against `XTRIM MAXLEN =` on an identical copy, which ignores consumers.
- A back-pressure check (`BackPressure.behind`, what a poller asks at most once a second) and a `group_lags` report
  with the three stage groups present, against one PING.

Prints figures; checks only that both trims left the same length. Everything runs under a private key prefix,
deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from services.connection import connect
from services.groups import BackPressure, ensure_groups, group_lags, trim
from services.names import Keys
from services.replay import delete_prefix


async def _fill(redis: Redis, stream: str, entries: int, size: int) -> None:
    body = "x" * size
    for start in range(0, entries, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(min(1000, entries - start)):
                pipe.xadd(stream, {"__data__": body})
            await pipe.execute()


async def _finish(redis: Redis, stream: str, group: str) -> None:
    """Read and acknowledge everything, as a caught-up stage has."""
    while True:
        rows: Any = await redis.xreadgroup(group, "bench", {stream: ">"}, count=5000)
        if not rows:
            return
        ids = [entry_id for _, entries in rows for entry_id, _ in entries]
        await redis.xack(stream, group, *ids)


async def _timed(call: object) -> float:
    started = time.perf_counter()
    await call  # type: ignore[misc]  # an awaitable of any kind
    return time.perf_counter() - started


async def run(url: str, entries: int, size: int) -> None:
    redis = connect(url)
    prefix = f"bench-trim:{uuid.uuid4().hex[:8]}"
    keys, baseline = Keys(prefix), Keys(f"{prefix}:baseline")
    try:
        for k in (keys, baseline):
            await ensure_groups(redis, k, ["dedup", "tracker", "notifier"])
            await _fill(redis, k.raw, entries, size)
            await _finish(redis, k.raw, "dedup")
        cap = entries // 2
        now_ms = int(time.time() * 1000)
        safe_s = await _timed(trim(redis, keys, 86_400, now_ms, max_len=cap))
        bare_s = await _timed(redis.xtrim(baseline.raw, maxlen=cap, approximate=False))
        if not await redis.xlen(keys.raw) == await redis.xlen(baseline.raw) == cap:
            raise SystemExit("the two trims left different lengths: the figures compare different work")
        print(f"length cap, {entries - cap} of {entries} entries of {size} B removed: trim {safe_s * 1000:.0f} ms, "
              f"XTRIM MAXLEN {bare_s * 1000:.0f} ms (ratio {safe_s / bare_s:.2f})")

        rounds = 200
        pressure = BackPressure(redis, keys, max_backlog=10_000, check_every_s=0)
        check_s = sum([await _timed(pressure.behind()) for _ in range(rounds)]) / rounds
        report_s = sum([await _timed(group_lags(redis, keys)) for _ in range(rounds)]) / rounds
        ping_s = sum([await _timed(redis.ping()) for _ in range(rounds)]) / rounds
        print(f"back-pressure check {check_s * 1e6:.0f} µs, lag report {report_s * 1e6:.0f} µs, PING "
              f"{ping_s * 1e6:.0f} µs (ratios {check_s / ping_s:.1f}, {report_s / ping_s:.1f}); a poller checks at "
              "most once a second")
    finally:
        for k in (keys, baseline):
            await delete_prefix(redis, k.prefix)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1000, help="bytes of payload per entry")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.entries, args.size))


if __name__ == "__main__":
    main()
