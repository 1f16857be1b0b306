"""What a hook receives: the body of one delivery in the hook's format, and its idempotency key.

`json` (the default): a hook that does not coalesce gets each `ChangeEvent` alone, as the bare event object (the
`changes` stream's own schema); a hook with a coalescing window always gets `{"incident_id": ..., "events": [...]}`,
even for a single event, so one hook's payloads have one shape. `slack`: `{"text": ...}` for a Slack incoming webhook
(or anything that speaks its format): the incident id, then each event's summary line with its evidence link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas import ChangeEvent, EventType, Evidence
from schemas.subscriptions import Hook, HookFormat


def delivery_id(events: Sequence[ChangeEvent]) -> str:
    """The `Idempotency-Key` of a delivery: the event id for one event; for several, the first event's id joined with
    their count and a digest of all their ids, so the same events always make the same key."""
    if len(events) == 1:
        return events[0].event_id
    digest = hashlib.sha256("\n".join(e.event_id for e in events).encode()).hexdigest()[:12]
    return f"{events[0].event_id}+{len(events)}.{digest}"


def render(hook: Hook, events: Sequence[ChangeEvent]) -> bytes:
    """The request body for `events` (one incident's, oldest first; more than one only for a coalescing hook)."""
    if not events:
        raise ValueError(f"hook {hook.hook_id}: nothing to render")
    if hook.format is HookFormat.slack:
        payload: object = {"text": slack_text(events)}
    elif hook.coalesce_s > 0:
        payload = {"incident_id": events[0].incident_id, "events": [e.model_dump(mode="json") for e in events]}
    else:
        payload = events[0].model_dump(mode="json")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _escape(text: str) -> str:
    # Slack's mrkdwn reserves these three; everything else is sent as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(evidence: Sequence[Evidence]) -> str:
    for item in evidence:
        if item.url:
            return f" — <{item.url}|{_escape(item.title or item.source_id)}>"
    return ""


def slack_text(events: Sequence[ChangeEvent]) -> str:
    """The incident id, then one line per event: its summary and a link to its first evidence with a URL."""
    lines = [f"*livedesk* incident `{events[0].incident_id}`"]
    lines += [f"• {_escape(e.summary)}{_link(e.evidence)}" for e in events]
    return "\n".join(lines)


def sample_event(now: datetime | None = None) -> ChangeEvent:
    """The event `livedesk hooks test` sends: plainly a test, on an incident id no real incident has."""
    at = now or datetime.now(UTC)
    return ChangeEvent(
        event_id=f"test-{int(at.timestamp())}", type=EventType.condition_updated, incident_id="i_test",
        version=1, field="casualties", subject="man", before="critical", after="stable", reported_at=at,
        detected_at=at, summary="livedesk test delivery: condition of man: critical → stable",
        evidence=[Evidence(source_id="livedesk", guid="test", url="https://example.org/livedesk-test",
                           title="livedesk test")],
    )
