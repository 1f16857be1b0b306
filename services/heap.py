"""Garbage collection for a long-running stage process: what has lived through a full collection is left out of the
next ones.

CPython's cyclic collector looks at every container object in a full collection, and the process stands still while
it does. A stage worker holds a few hundred thousand long-lived ones (the gazetteer, compiled rules, the incidents the
tracker keeps parsed), and it makes almost no cyclic garbage: over a load test, full collections freed a few hundred
objects in all. Yet each stalled every stage in the process for 40–160 ms, growing with the incidents held, and those
stalls, not the work, decided the p99 latency from `raw` to `changes` at any steady rate above about 40% of what one
process can take (`tests/benchmarks/bench_pipeline.py --capacity`).

So after each full collection its survivors are frozen (`gc.freeze`): they are still freed by reference counting as
ever, but later collections no longer look at them, and a full collection costs only what survived since the one
before. Cyclic garbage among frozen objects would be kept, so every `THAW_EVERY_S` the next full collection looks at
everything again (`gc.unfreeze` first): it is freed within that time, at the cost of one long pause per period.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

THAW_EVERY_S = 600.0  # between full collections over everything: what bounds how long cyclic garbage is kept
_OLDEST = 2  # the generation a full collection collects


class SurvivorFreezer:
    """The `gc.callbacks` hook that freezes a full collection's survivors, and thaws everything before the first full
    collection once `thaw_every_s` have passed since the last such thaw (by `clock`)."""

    def __init__(self, thaw_every_s: float = THAW_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._thaw_every_s = thaw_every_s
        self._clock = clock
        self._thawed_at = clock()
        self.full_passes = 0  # full collections that looked at everything

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != _OLDEST:
            return
        if phase == "start" and self._clock() - self._thawed_at >= self._thaw_every_s:
            # The objects move back into the oldest generation, which the collection about to run looks at whole.
            gc.unfreeze()
            self._thawed_at = self._clock()
            self.full_passes += 1
        elif phase == "stop":
            gc.freeze()  # after a full collection every survivor is in the oldest generation: all of them


@contextmanager
def frozen_survivors(thaw_every_s: float = THAW_EVERY_S,
                     clock: Callable[[], float] = time.monotonic) -> Iterator[SurvivorFreezer]:
    """Within the body, full collections leave out what survived the one before (`SurvivorFreezer`); it starts with
    what is alive now (the imports). On the way out everything is thawed and the hook removed."""
    freezer = SurvivorFreezer(thaw_every_s, clock)
    gc.collect()
    gc.freeze()
    gc.callbacks.append(freezer)
    try:
        yield freezer
    finally:
        gc.callbacks.remove(freezer)
        gc.unfreeze()
