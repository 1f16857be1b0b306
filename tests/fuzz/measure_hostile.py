"""What hostile input costs, next to ordinary input of the same size measured in the same run. Prints figures and
asserts nothing.

    python -m tests.fuzz.measure_hostile [--quick]

Each document is parsed by `parse_feed` in a fresh process (tests.support.measure): CPU seconds and how far the
process's resident size rose, each also as a ratio to a plain feed of about the same size. Then what a parser
process adds to ordinary feeds (gva-dev snapshots); fetches of hostile bodies from a loopback server with the
default 10 MB cap; the documents that take feedparser's quadratic paths, through a ParserPool with the poller's
default limits; and the tracker's extractor on texts of the parse boundary's maximum length. `--quick` skips the
last two, the slow ones.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from services.poller.parse import MAX_TEXT_CHARS, parse_feed
from services.poller.parser_pool import ParserPool
from services.settings import Settings
from tests.fuzz.test_fuzz_extract import QUADRATIC_TEXTS
from tests.support import hostile_feeds as hostile
from tests.support.bounded_calls import BoundedCalls
from tests.support.hostile_server import HostileServer, static, streamed
from tests.support.measure import Measured, measure

MB = 2**20


def _row(name: str, size: int, measured: Measured, baseline: Measured | None) -> str:
    outcome = f"{measured.error}: {measured.message[:70]}" if measured.error else "parsed"
    ratio = ""
    if baseline is not None:
        cpu = measured.cpu_s / max(baseline.cpu_s, 1e-3)
        rss = measured.rss_growth_bytes / max(baseline.rss_growth_bytes, MB)
        ratio = f"{cpu:7.2f}× {rss:7.2f}×"
    return (f"{name:34s} {size / MB:8.2f} {measured.cpu_s:8.2f} {measured.rss_growth_bytes / MB:8.1f} {ratio:17s} "
            f"{outcome}")


def parse_costs(folder: Path) -> None:
    print(f"\n{'document':34s} {'MB':>8s} {'CPU s':>8s} {'RSS +MB':>8s} {'vs plain (CPU, RSS)':17s} outcome")
    documents: dict[str, Callable[[], bytes]] = {
        "plain feed, 1 MB (baseline)": lambda: hostile.many_entries(7_000),
        "billion laughs (10^9 laughs)": hostile.billion_laughs,
        "quadratic blow-up (1 GB expanded)": lambda: hostile.quadratic_blowup(50_000, 20_000),
        "attribute flood (100,000)": lambda: hostile.attribute_flood(100_000),
        "10,000 entries": lambda: hostile.many_entries(10_000),
        "1 MB title": lambda: hostile.huge_title(1_000_000),
        "invalid UTF-8": hostile.invalid_utf8,
        "elements nested 20,000 deep": lambda: hostile.deep_nesting(20_000),
    }
    baseline: Measured | None = None
    for name, build in documents.items():
        body = build()
        path = folder / "document.xml"
        path.write_bytes(body)
        measured = measure("tests.support.hostile_calls:parse_file", str(path), timeout_s=600, trace=False,
                           memory_limit_bytes=4 * 2**30)
        print(_row(name, len(body), measured, baseline), flush=True)
        baseline = baseline or measured


def parser_pool_costs() -> None:
    print("\nfeedparser's quadratic paths: in this process at two sizes (the slope), then through a ParserPool "
          "with the poller's default limits")
    pool = ParserPool(1)
    try:
        for name, build, small in [("long style attribute", hostile.long_style_markup, 10_000),
                                   ("unclosed comments", hostile.unclosed_comment_markup, 20_000),
                                   ("almost-an-email author", hostile.long_author, 8_000)]:
            times = []
            for size in (small, 2 * small):
                started = time.process_time()
                parse_feed(build(size), feed=name)
                times.append(time.process_time() - started)
            body = build(50 * small)
            started = time.monotonic()
            try:
                pool.parse(body, feed=name)
                outcome = "parsed"
            except Exception as error:
                outcome = str(error)
            print(f"  {name:24s} n={small}: {times[0]:.2f} s, 2n: {times[1]:.2f} s ({times[1] / times[0]:.1f}×); "
                  f"50n ({len(body) / MB:.2f} MB) in the pool: {time.monotonic() - started:.1f} s, {outcome}",
                  flush=True)
    finally:
        pool.close()


def pool_overhead() -> None:
    """What parsing in a parser process costs over parsing in this one, on ordinary feeds."""
    snapshots = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "gva-dev" / "snapshots"
    bodies = [path.read_bytes() for path in sorted(snapshots.iterdir())[:500]]
    started = time.perf_counter()
    for body in bodies:
        parse_feed(body, feed="snapshot")
    here_s = time.perf_counter() - started
    pool = ParserPool(1)
    try:
        pool.parse(bodies[0], feed="warm-up")
        started = time.perf_counter()
        for body in bodies:
            pool.parse(body, feed="snapshot")
        pooled_s = time.perf_counter() - started
    finally:
        pool.close()
    size_kb = sum(map(len, bodies)) / len(bodies) / 1024
    print(f"\n{len(bodies)} gva-dev snapshots ({size_kb:.1f} kB on average), one at a time: "
          f"{here_s / len(bodies) * 1000:.2f} ms each in this process, {pooled_s / len(bodies) * 1000:.2f} ms in a "
          f"parser process ({pooled_s / here_s:.2f}×)")


def fetch_costs() -> None:
    cap = Settings().http_max_body_bytes
    print(f"\nfetches from a loopback server, cap {cap / MB:.0f} MB")
    print(f"  {'body':38s} {'wall s':>7s} {'peak MB':>8s} {'RSS +MB':>8s}")
    with HostileServer() as server:
        server.routes |= {
            "/plain.xml": static(b" " * (cap - 1024)),
            "/chunked.xml": streamed(2**30, declare_length=False),
            "/declared.xml": streamed(2**30, declare_length=True),
            "/endless.xml": streamed(None, declare_length=False),
        }
        for name, path in [("a body just under the cap (baseline)", "/plain.xml"), ("1 GB, chunked", "/chunked.xml"),
                           ("1 GB, Content-Length", "/declared.xml"), ("never ends", "/endless.xml")]:
            measured = measure("tests.support.hostile_calls:fetch_url", server.url(path), cap, 30.0, timeout_s=120)
            peak = (measured.peak_bytes or 0) / MB
            print(f"  {name:38s} {measured.wall_s:7.2f} {peak:8.1f} {measured.rss_growth_bytes / MB:8.1f}  "
                  f"{measured.error or 'fetched'}", flush=True)


def extractor_costs() -> None:
    article = ("A 24-year-old man was shot by police in Walthamstow, east London, on Friday. He is in a critical "
               "condition in hospital. The IOPC has launched an independent investigation. ")
    texts = {"an article (baseline)": (article * (MAX_TEXT_CHARS // len(article) + 1))[:MAX_TEXT_CHARS]}
    texts |= QUADRATIC_TEXTS
    print(f"\nthe tracker's extractor on texts of {MAX_TEXT_CHARS:,} characters (CPU s, limit 120 s)")
    baseline = None
    with BoundedCalls("tests.support.hostile_calls:extract_summary", 120) as extract:
        for name, text in texts.items():
            started = time.monotonic()
            outcome = extract("title", text)
            took_s = time.monotonic() - started
            baseline = baseline or took_s
            status = "over 120 s" if outcome.over_limit else (outcome.error or "extracted")
            print(f"  {name:28s} {took_s:7.2f} s {took_s / baseline:7.1f}×  {status}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the parser pool and the extractor")
    quick = parser.parse_args().quick
    with tempfile.TemporaryDirectory() as folder:
        parse_costs(Path(folder))
    pool_overhead()
    fetch_costs()
    if not quick:
        parser_pool_costs()
        extractor_costs()


if __name__ == "__main__":
    main()
