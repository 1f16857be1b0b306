"""How change events and incidents read to a person in a terminal."""

from __future__ import annotations

import json
from typing import Any

from schemas import ChangeEvent, EventType, Incident, IncidentVersion

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


def _when(value: Any) -> str:
    return str(value)[:16].replace("T", " ") + "Z" if value else "-"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _place(location: dict[str, Any] | None) -> str:
    if not location:
        return "no place"
    return ", ".join(str(location[part]) for part in ("street", "name", "region") if location.get(part))


def incident_line(incident: Incident) -> str:
    """`i_3f2a…  v7  shooting  Hoe Street, Walthamstow, London  dead - injured 1 arrests -  4 sources  Man shot…`."""
    state = incident.model_dump(mode="json")
    return (f"{incident.incident_id}  v{incident.version:<3} {incident.category.value:<14} "
            f"{_place(state['location'])}  dead {_count(incident.dead)} injured {_count(incident.injured)} "
            f"arrests {_count(incident.arrests)}  {len(incident.sources)} source(s)  {incident.title}")


def history_lines(believed: IncidentVersion, history: list[IncidentVersion]) -> list[str]:
    """The state of `believed`, then each revision of `history`: when, why its update joined, what it changed."""
    state = believed.state
    casualties = "; ".join(
        f"{c['label']} ({c['role']}): {c['condition']}" + (", life-changing" if c.get("life_changing") else "")
        for c in state.get("casualties", [])
    ) or "-"
    investigations = "; ".join(
        f"{i['body']} {i['kind']} ({i['status']})" for i in state.get("investigations", [])
    ) or "-"
    lines = [
        f"{believed.incident_id}  version {believed.version} (revision {believed.rev}), "
        f"as believed at {_when(believed.believed_at.isoformat())}",
        f"  {state.get('category', 'other')} in {_place(state.get('location'))}: {state.get('title', '')}",
        f"  opened {_when(state.get('opened_at'))}, newest evidence {_when(state.get('updated_at'))}",
        f"  dead {_count(state.get('dead'))} · injured {_count(state.get('injured'))} · arrests "
        f"{_count(state.get('arrests'))} · charges {_count(state.get('charges'))} · cordon "
        f"{state.get('cordon') or '-'} · public risk {state.get('public_risk') or '-'}",
        f"  casualties: {casualties}",
        f"  investigations: {investigations}",
        f"  sources: {', '.join(state.get('sources', [])) or '-'}",
        *(f"  conflict on {c['field']}: {c['held']['source_id']} said {json.dumps(c['held']['value'])} (held); "
          + "; ".join(f"{p['source_id']} said {json.dumps(p['value'])}" for p in c["contradicted_by"])
          for c in state.get("conflicts", [])),
        "history:",
    ]
    for version in history:
        decision = version.decision
        scored = f" (score {decision.score})" if decision.score is not None else ""
        merged_in = f"[{version.incident_id}] " if version.incident_id != believed.incident_id else ""
        lines.append(f"  {merged_in}r{version.rev:<3} v{version.version:<3} {_when(version.believed_at.isoformat())}  "
                     f"{decision.how}{scored}: {decision.reason}  [{decision.source_id} {decision.verdict}]")
        lines += [f"        · {summary}" for summary in version.events]
    return lines
