"""Fact extractors with a fault: the shipped rules, except on a text carrying a marker, where a rule raises or the
process dies."""

from __future__ import annotations

import os
import signal
import time

from services.tracker.extract import extract
from services.tracker.facts import Facts

MARKER = "[rule-breaker]"


def rules_with_a_failing_rule(title: str, text: str) -> Facts:
    """`extract`, but a text carrying `MARKER` makes it raise, as a rule with a bug would on an input it mishandles."""
    if MARKER in text:
        raise IndexError(f"casualty rule: no group 3 in a match on {MARKER!r}")
    return extract(title, text)


KILLER = "[process-killer]"


def rules_that_kill_the_process(title: str, text: str) -> Facts:
    """`extract`, but a text carrying `KILLER` kills the process on the spot, as running out of memory or a crash in
    native code would: no exception, nothing to catch."""
    if KILLER in text:
        os.kill(os.getpid(), signal.SIGKILL)
    return extract(title, text)


ENDLESS = "[endless-rule]"


def rules_with_an_endless_rule(title: str, text: str) -> Facts:
    """`extract`, but a text carrying `ENDLESS` is read for a minute of CPU, as a rule gone superlinear on a huge
    text would be read for hours (a minute, so that a test of a broken limit fails instead of hanging)."""
    deadline = time.process_time() + 60
    while ENDLESS in text and time.process_time() < deadline:
        pass
    return extract(title, text)
