"""A fact extractor with a rule that raises on one text: the shipped rules, except on a text carrying `MARKER`."""

from __future__ import annotations

from services.tracker.extract import extract
from services.tracker.facts import Facts

MARKER = "[rule-breaker]"


def rules_with_a_failing_rule(title: str, text: str) -> Facts:
    """`extract`, but a text carrying `MARKER` makes it raise, as a rule with a bug would on an input it mishandles."""
    if MARKER in text:
        raise IndexError(f"casualty rule: no group 3 in a match on {MARKER!r}")
    return extract(title, text)
