"""The notifier's pure parts: signatures, retry policy, Retry-After, payload formats."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from schemas import ChangeEvent, EventType, Evidence
from schemas.subscriptions import Hook, HookFormat
from services.notifier.formats import delivery_id, render
from services.notifier.policy import Verdict, backoff_s, next_wait_s, retry_after_s, verdict
from services.notifier.signing import sign, verify

SECRET = "s" * 32
NOW = datetime(2025, 10, 24, 9, 0, tzinfo=UTC)


def event(n: int, incident: str = "i_1", url: str | None = "https://news.example.org/a") -> ChangeEvent:
    return ChangeEvent(event_id=f"e{n}", type=EventType.condition_updated, incident_id=incident, version=n,
                       field="casualties", reported_at=NOW, detected_at=NOW, summary=f"condition of man: step {n} <&>",
                       evidence=[Evidence(source_id="echo", guid="g", url=url, title="Echo")])


def hook(**fields: object) -> Hook:
    return Hook.model_validate({"hook_id": "h1", "url": "http://127.0.0.1/hook", "secret": SECRET,
                                "created_at": NOW, **fields})


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now", "valid"),
    [
        (SECRET, "1000", b'{"a":1}', 1000, True),
        (SECRET, "1000", b'{"a":1}', 1299, True),
        (SECRET, "1000", b'{"a":1}', 1301, False),  # older than the tolerance: a replay
        (SECRET, "1000", b'{"a":1}', 699, False),  # from the future beyond the tolerance
        ("t" * 32, "1000", b'{"a":1}', 1000, False),  # another secret
        (SECRET, "1000", b'{"a":2}', 1000, False),  # body changed
        (SECRET, "1001", b'{"a":1}', 1000, False),  # timestamp changed
        (SECRET, "abc", b'{"a":1}', 1000, False),  # not a timestamp
    ],
)
def test_verify_accepts_only_the_signed_body_at_its_time(secret: str, timestamp: str, body: bytes, now: float,
                                                         valid: bool) -> None:
    """verify checks secret, body and timestamp together, within the replay window."""
    signature = sign(SECRET, 1000, b'{"a":1}')
    assert signature.startswith("sha256=")
    assert len(signature) == 7 + 64
    assert verify(secret, timestamp, body, signature, tolerance_s=300, now=now) is valid


@pytest.mark.parametrize("signature", ["", "sha256=", "sha1=abc", "sha256=" + "0" * 64, "é"])
def test_verify_refuses_malformed_signatures(signature: str) -> None:
    """A malformed or wrong signature is invalid, never an exception."""
    assert not verify(SECRET, 1000, b"{}", signature, now=1000)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Verdict.delivered), (204, Verdict.delivered), (None, Verdict.retry), (500, Verdict.retry),
     (503, Verdict.retry), (408, Verdict.retry), (409, Verdict.retry), (425, Verdict.retry), (429, Verdict.retry),
     (400, Verdict.permanent), (401, Verdict.permanent), (404, Verdict.permanent), (410, Verdict.permanent),
     (301, Verdict.permanent)],
)
def test_verdict_by_status(status: int | None, expected: Verdict) -> None:
    """2xx delivers; network errors, 5xx and 408/409/425/429 retry; other answers are permanent."""
    assert verdict(status) is expected


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "ceiling"),
    [(1, 0.5, 60, 0.5), (2, 0.5, 60, 1.0), (4, 0.5, 60, 4.0), (10, 0.5, 60, 60.0), (500, 1.0, 600, 600.0)],
)
def test_backoff_is_full_jitter_under_the_capped_exponential(attempt: int, base: float, cap: float,
                                                             ceiling: float) -> None:
    """Waits are uniform in [0, min(cap, base·2^(n-1))]: never above the ceiling, spread across it."""
    rng = random.Random(7)
    waits = [backoff_s(attempt, base, cap, rng) for _ in range(400)]
    assert all(0 <= w <= ceiling for w in waits)
    assert max(waits) > 0.8 * ceiling
    assert min(waits) < 0.2 * ceiling


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [(429, "3", 3.0), (503, "120", 120.0), (429, "Fri, 24 Oct 2025 09:00:30 GMT", 30.0),
     (429, "Fri, 24 Oct 2025 08:00:00 GMT", 0.0), (429, "soon", None), (500, "3", None), (429, None, None)],
)
def test_retry_after_in_seconds_or_http_date(status: int, value: str | None, expected: float | None) -> None:
    """Retry-After counts on 429 and 503 only, in seconds or as an HTTP date (a past date is no wait)."""
    assert retry_after_s(status, value, NOW) == expected


def test_a_receivers_retry_after_replaces_the_backoff_even_above_the_cap() -> None:
    """What the receiver asked for wins over the jittered backoff."""
    assert next_wait_s(1, 900.0, 1.0, 600.0, random.Random(1)) == 900.0
    assert next_wait_s(1, None, 1.0, 600.0, random.Random(1)) <= 1.0


def test_json_payloads_bare_event_or_coalesced_list() -> None:
    """Without coalescing the body is the bare ChangeEvent; with it, the incident id and its events."""
    alone = json.loads(render(hook(), [event(1)]))
    assert ChangeEvent.model_validate(alone) == event(1)
    together = json.loads(render(hook(coalesce_s=5), [event(1), event(2)]))
    assert together["incident_id"] == "i_1"
    assert [e["event_id"] for e in together["events"]] == ["e1", "e2"]


def test_slack_payload_lists_summaries_with_incident_and_evidence_link() -> None:
    """The slack format is one text: incident id, each summary (escaped) with its evidence link."""
    text = json.loads(render(hook(format=HookFormat.slack), [event(1), event(2, url=None)]))["text"]
    assert "i_1" in text
    assert "• condition of man: step 1 &lt;&amp;&gt; — <https://news.example.org/a|Echo>" in text
    assert text.endswith("• condition of man: step 2 &lt;&amp;&gt;")


def test_delivery_ids_are_deterministic() -> None:
    """One event's key is its id; a coalesced payload's key depends on exactly its events."""
    assert delivery_id([event(1)]) == "e1"
    assert delivery_id([event(1), event(2)]) == delivery_id([event(1), event(2)])
    assert delivery_id([event(1), event(2)]) != delivery_id([event(1), event(3)])
    assert delivery_id([event(1), event(2)]).startswith("e1+2.")
