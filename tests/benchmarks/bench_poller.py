"""Benchmark: one round of the livedesk poller over N loopback feeds, against a bare httpx loop (issue #3, Proof).

Run from the repo root (a Redis must be reachable; nothing outside a fresh `livedesk-bench:<hex>` prefix is touched,
and that prefix is deleted afterwards):

    python -m tests.benchmarks.bench_poller [--feeds 10000] [--changed 0.1] [--redis-url redis://127.0.0.1:6379/0]
                                            [--in-flight 100] [--mode poll|run] [--log-level info]

A raw asyncio HTTP/1.1 server runs in a child process on 127.0.0.1 (so its CPU is not counted) and serves
`/f/<i>`: a small RSS document with an ETag, or 304 to a matching If-None-Match. Each side (poller, bare loop) first
does an unmeasured warm-up round to learn the ETags; then a fraction `--changed` of the feeds get a new entry, and each
side does one measured round: those feeds answer 200 with the new body, the rest 304.

Modes: `poll` (default) calls `Poller.poll(source)` for every feed, at most `--in-flight` at once; `run` runs the real
scheduler loop `Poller.run()` (leases, due set, per-host slots, next-check) until every feed has been polled once.

Figures (measured round only):
    round           wall time of the whole round (target: < 30 s for 10,000 feeds)
    polls/s         feeds polled per second of wall time
    parses/s        changed feeds (200 + parse + diff + publish) per second of wall time
    CPU/poll        process CPU (user+sys, all threads; Redis and the feed server excluded) per poll
    peak RSS        the process's maximum resident set so far (resource ru_maxrss)
    ratio           polls/s of livedesk / polls/s of the bare loop (target: >= 0.5, i.e. within 2x)
The targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from redis.asyncio import Redis

from schemas import FeedSource
from services.logs import configure_logging
from services.poller import fetch
from services.poller.fetch import build_client
from services.poller.stage import Poller
from services.replay import delete_prefix
from services.settings import Settings
from services.stage import StageContext

ROUND_LIMIT_S = 600.0  # no round may take longer than this


# --- the feed server (child process) -----------------------------------------------------------------------------

def _serve() -> None:
    """Serve /f/<i> with ETags; GET /_bump?n=N&k=K gives K of the N feeds (a fixed random sample) a new entry."""
    generation: dict[str, int] = {}

    def answer(path: str, if_none_match: str | None) -> bytes:
        if path.startswith("/_bump?"):
            args = dict(part.split("=") for part in path[7:].split("&"))
            for i in random.Random(7).sample(range(int(args["n"])), int(args["k"])):
                generation[str(i)] = generation.get(str(i), 0) + 1
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        feed = path.rsplit("/", 1)[-1]
        gen = generation.get(feed, 0)
        etag = f'"{feed}-{gen}"'
        if if_none_match == etag:
            return f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n".encode()
        items = "".join(f"<item><guid>{feed}-{g}</guid><title>Item {g} of {feed}</title><description>Text {g}"
                        f"</description><pubDate>Fri, 24 Oct 2025 09:{g % 60:02d}:00 GMT</pubDate></item>"
                        for g in range(gen, gen + 5))
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>{feed}</title>{items}</channel></rss>'
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nETag: {etag}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return (head + body).encode()

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:  # GETs only: no request bodies
                head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                self.transport.write(answer(lines[0].split(" ")[1], headers.get("if-none-match")))

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin

    asyncio.run(main())


# --- the two clients ---------------------------------------------------------------------------------------------

async def _bounded(items: list[FeedSource], limit: int, work: Callable[[FeedSource], Awaitable[object]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(source: FeedSource) -> None:
        async with semaphore:
            await work(source)

    async with asyncio.timeout(ROUND_LIMIT_S), asyncio.TaskGroup() as group:  # one failure cancels the rest
        for source in items:
            group.create_task(one(source))


async def _scheduler_round(poller: Poller, redis: Redis, settings: Settings, sources: list[FeedSource]) -> None:
    """Make every feed due now, run the real `Poller.run()` until none is due any more, then stop it."""
    start = datetime.now(UTC).timestamp()
    await redis.zadd(settings.keys.feeds_due, {s.id: start - 1 for s in sources})
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(ROUND_LIMIT_S):
            while await redis.zcount(settings.keys.feeds_due, "-inf", start) > 0:  # noqa: ASYNC110 - state in Redis
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Bare:
    """The baseline: the same conditional GETs, same client settings and concurrency, no processing."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.etags: dict[str, str] = {}
        self.bodies = 0

    async def get(self, source: FeedSource) -> None:
        headers = {"If-None-Match": self.etags[source.id]} if source.id in self.etags else {}
        async with self.client.stream("GET", source.url, headers=headers) as response:
            if response.status_code == 200:
                await response.aread()
                self.bodies += 1
                self.etags[source.id] = response.headers.get("etag", "")


async def _measure(label: str, round_: Callable[[], Awaitable[object]], feeds: int, parses: int) -> float:
    wall, cpu = time.perf_counter(), time.process_time()
    await round_()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<9} round {wall:7.2f} s  polls/s {feeds / wall:8.0f}  parses/s {parses / wall:7.0f}  "
          f"CPU/poll {cpu / feeds * 1e3:6.3f} ms  (CPU {cpu:.2f} s)  peak RSS {rss_mb:6.0f} MB")
    return feeds / wall


async def bench(args: argparse.Namespace, settings: Settings, base: str) -> None:
    n, k, prefix = args.feeds, round(args.feeds * args.changed), settings.key_prefix
    sources = [FeedSource(id=f"bench-{i:05d}", name=f"Bench {i}", url=f"{base}/f/{i}") for i in range(n)]
    print(f"{n} feeds on {base}, {k} changed ({args.changed:.0%}), {args.in_flight} in flight, mode {args.mode}, "
          f"pool {fetch.MAX_CONNECTIONS}/{fetch.MAX_KEEPALIVE_CONNECTIONS} (max/keep-alive), prefix {prefix}")
    redis = Redis.from_url(args.redis_url)
    try:
        async with build_client(settings) as poller_client, build_client(settings) as bare_client:
            poller = Poller(StageContext(settings, redis), sources, poller_client)
            bare = Bare(bare_client)
            if args.mode == "run":
                async def livedesk_round() -> None:
                    await _scheduler_round(poller, redis, settings, sources)
            else:
                await poller._registry.upsert(sources, due=datetime.now(UTC))

                async def livedesk_round() -> None:
                    await _bounded(sources, args.in_flight, poller.poll)

            async def bare_round() -> None:
                await _bounded(sources, args.in_flight, bare.get)

            t = time.perf_counter()
            await livedesk_round()
            await bare_round()
            print(f"warm-up   (both sides, all 200) {time.perf_counter() - t:.2f} s")
            (await bare_client.get(f"{base}/_bump?n={n}&k={k}")).raise_for_status()
            bare.bodies = 0
            livedesk = await _measure("livedesk", livedesk_round, n, k)
            baseline = await _measure("bare", bare_round, n, bare.bodies)
        ratio = livedesk / baseline
        seen = sum([await redis.hlen(settings.keys.feed_seen(s.id)) for s in sources[:: max(1, n // 100)]])
        print(f"ratio     polls/s livedesk / bare = {ratio:.2f} (bare changed bodies {bare.bodies}/{k}; "
              f"sampled seen-entries {seen})")
        scaled_s = n / livedesk * 10_000 / n
        print(f"targets   round < 30 s for 10,000 feeds: {'MET' if scaled_s < 30 else 'NOT MET'} "
              f"(scaled {scaled_s:.1f} s); within 2x of bare: {'MET' if ratio >= 0.5 else 'NOT MET'}")
    finally:
        print(f"cleanup   deleted {await delete_prefix(redis, prefix)} keys under {prefix}:")
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.1, help="fraction of feeds changed in the measured round")
    parser.add_argument("--redis-url", default=os.environ.get("LIVEDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--in-flight", type=int, default=100, help="concurrent polls (both sides)")
    parser.add_argument("--pool", type=int, default=0,
                        help="what-if: override build_client's max (keep-alive) connections on both sides")
    parser.add_argument("--mode", choices=("poll", "run"), default="poll")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve()
    elif not 0 < args.feeds <= 100_000 or not 0 <= args.changed <= 1:
        parser.error("--feeds must be in 1..100000 and --changed in 0..1")
    else:
        _run(args)


def _run(args: argparse.Namespace) -> None:
    """Start the feed server, silence the logs (still rendered, as in production), run the benchmark, stop it all."""
    settings = Settings(
        _env_file=None,
        redis_url=args.redis_url, key_prefix=f"livedesk-bench:{uuid.uuid4().hex[:12]}",
        consumer=f"bench-{os.getpid()}", poll_max_in_flight=args.in_flight, poll_per_host=args.in_flight,
        poll_host_gap_s=0.0, allow_private_hosts=True,  # the feed server is on loopback
        log_format="json", log_level=args.log_level,
    )
    if args.pool:  # what-if: a bigger connection pool than build_client's, on both sides
        fetch.MAX_CONNECTIONS = fetch.MAX_KEEPALIVE_CONNECTIONS = args.pool
    configure_logging(settings)
    with open(os.devnull, "w") as devnull, subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.bench_poller", "--serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as server:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        assert server.stdin is not None
        assert server.stdout is not None
        try:
            asyncio.run(bench(args, settings, f"http://127.0.0.1:{server.stdout.readline().strip()}"))
        finally:
            server.stdin.close()  # the server exits when its stdin closes
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
