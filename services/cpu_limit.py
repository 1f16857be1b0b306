"""A bound on the CPU time of synchronous work: past it, the work is interrupted with an error.

The stages read facts from texts in their own process (a few ms for an article). A text built to take one of the
rules down a path that is slower than linear would hold the worker, and then each copy that takes the entry over
after it, for good: the entry never fails, so it is never dead-lettered. Bounded, it fails with `CPUTimeExceeded`,
a permanent error, and is dead-lettered with it while the stream flows on.

The kernel counts the process's user CPU time (ITIMER_VIRTUAL) and signals the main thread when the bound is
reached; the handler raises there. Python's regex engine checks for signals as it matches, so a long match is
interrupted too. Signals reach only the main thread: elsewhere the work runs unbounded.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from services.errors import PermanentError


class CPUTimeExceeded(PermanentError):
    """The work took more than its CPU time."""


@contextmanager
def cpu_limit(seconds: float, what: str) -> Iterator[None]:
    """Run the body with at most `seconds` of CPU time (none with 0), or raise `CPUTimeExceeded` naming `what`.

    The body must not await: the time of other tasks would count against it, and the error could reach them."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if armed:  # a signal that comes as the body ends is too late to matter
            raise CPUTimeExceeded(f"{what}: more than {seconds:g} s of CPU")

    previous = signal.signal(signal.SIGVTALRM, interrupt)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
