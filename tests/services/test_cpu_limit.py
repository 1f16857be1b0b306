"""`services.cpu_limit`: work past its CPU time is interrupted with an error naming it, a regex match included."""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest

from services.cpu_limit import CPUTimeExceeded, cpu_limit
from services.errors import PermanentError

# Backtracks for ever (2^40 ways to split the a's) on a text that does not end as it wants.
CATASTROPHIC = re.compile(r"(a+)+$")
NO_MATCH = "a" * 40 + "b"


def test_a_regex_match_past_the_limit_is_interrupted() -> None:
    started = time.process_time()
    with pytest.raises(CPUTimeExceeded, match=r"^update u_1: reading its facts: more than 0.3 s of CPU$"), \
            cpu_limit(0.3, "update u_1: reading its facts"):
        CATASTROPHIC.match(NO_MATCH)
    assert time.process_time() - started < 3
    assert issubclass(CPUTimeExceeded, PermanentError), "dead-lettered at once, never retried"


def test_the_timer_and_the_handler_are_put_back() -> None:
    previous = signal.getsignal(signal.SIGVTALRM)
    with cpu_limit(5, "quick work"):
        sum(range(1000))
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGVTALRM) is previous
    # Disarmed: spending CPU past the limit afterwards raises nothing.
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass


def test_no_limit_with_zero_or_off_the_main_thread() -> None:
    with cpu_limit(0, "unbounded"):
        assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
    armed: list[tuple[float, float]] = []

    def elsewhere() -> None:
        with cpu_limit(0.05, "in a thread"):
            armed.append(signal.getitimer(signal.ITIMER_VIRTUAL))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert armed == [(0.0, 0.0)], "signals reach only the main thread: no timer armed for another"
