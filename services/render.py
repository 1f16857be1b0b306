"""How a change event reads to a person in a terminal: one line each."""

from __future__ import annotations

from schemas import ChangeEvent, EventType

_MARKS = {
    EventType.incident_opened: "●",
    EventType.condition_updated: "♥",
    EventType.investigation_opened: "⚖",
    EventType.investigation_closed: "⚖",
    EventType.cordon_updated: "⛔",
    EventType.public_risk_updated: "⚠",
}


def event_line(event: ChangeEvent) -> str:
    """`2025-10-24 09:20Z  i_3f2a…  v3  ♥ condition of man: critical → stable  [met-police]`."""
    when = event.reported_at.strftime("%Y-%m-%d %H:%MZ")
    sources = ",".join(dict.fromkeys(e.source_id for e in event.evidence))
    mark = _MARKS.get(event.type, "·")
    return f"{when}  {event.incident_id[:10]}  v{event.version:<3} {mark} {event.summary}  [{sources}]"
