"""Running one call in a fresh Python process and measuring what it cost: wall and CPU time, the peak of memory
allocated while it ran (tracemalloc) and the process's peak resident size.

A process of its own keeps the figures clean (nothing else allocates there) and keeps a regression from hurting the
test run: the child's address space is capped, and a call that does not finish in time is killed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import asyncio, importlib, inspect, json, resource, sys, time, tracemalloc

spec = json.loads(sys.argv[1])
module, _, name = spec["target"].partition(":")
function = getattr(importlib.import_module(module), name)
# Capped above what is mapped now, after the imports: a runaway allocation fails here instead of on the machine.
with open("/proc/self/statm") as statm:
    mapped, resident = (int(pages) * resource.getpagesize() for pages in statm.read().split()[:2])
resource.setrlimit(resource.RLIMIT_AS, (mapped + spec["memory_limit_bytes"], resource.RLIM_INFINITY))
try:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets the peak resident size to the current one: the imports' peak is not the call's
except OSError:
    pass
if spec["trace"]:
    tracemalloc.start()
wall, cpu = time.perf_counter(), time.process_time()
outcome = {}
try:
    result = function(*spec["args"])
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    outcome["value"] = result
except BaseException as error:
    outcome["error"] = type(error).__name__
    outcome["message"] = str(error)
outcome["wall_s"] = time.perf_counter() - wall
outcome["cpu_s"] = time.process_time() - cpu
outcome["peak_bytes"] = tracemalloc.get_traced_memory()[1] if spec["trace"] else None
tracemalloc.stop()
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
outcome["rss_growth_bytes"] = peak - resident
print(json.dumps(outcome, default=str))
"""


@dataclass(frozen=True)
class Measured:
    """What a call returned or raised, and what it cost."""

    value: Any
    error: str | None  # the exception's class name, None when it returned
    message: str
    wall_s: float
    cpu_s: float
    # The most memory Python held at once during the call (tracemalloc; None when not traced, as tracing slows
    # allocation-heavy calls several times over).
    peak_bytes: int | None
    rss_growth_bytes: int  # how far the process's peak resident size rose above its size before the call

    def describe(self) -> str:
        """One line of figures, for the test's output."""
        result = f"{self.error}: {self.message}" if self.error else "returned"
        traced = f"peak {self.peak_bytes / 2**20:.1f} MB allocated, " if self.peak_bytes is not None else ""
        return (f"{self.wall_s:.2f} s wall, {self.cpu_s:.2f} s CPU, {traced}"
                f"resident +{self.rss_growth_bytes / 2**20:.0f} MB; {result}")[:400]


def measure(target: str, *args: Any, timeout_s: float = 60.0, memory_limit_bytes: int = 2**30,
            trace: bool = True) -> Measured:
    """Call `target` ("package.module:function") with JSON-able `args` in a fresh interpreter and measure it.

    The function may be a coroutine function (it is run with asyncio.run). Its return value must be JSON-able.
    `memory_limit_bytes` caps the address space the call may add; `trace=False` measures resident size only.

    Raises:
        AssertionError: the call did not finish within `timeout_s` (the process is killed), or the process died.
    """
    spec = {"target": target, "args": list(args), "memory_limit_bytes": memory_limit_bytes, "trace": trace}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{target}{tuple(args)!r} did not finish within {timeout_s} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"{target} died (exit {done.returncode}): {done.stderr[-2000:]}")
    outcome = json.loads(lines[-1])
    return Measured(
        value=outcome.get("value"),
        error=outcome.get("error"),
        message=outcome.get("message", ""),
        wall_s=outcome["wall_s"],
        cpu_s=outcome["cpu_s"],
        peak_bytes=outcome["peak_bytes"],
        rss_growth_bytes=outcome["rss_growth_bytes"],
    )
