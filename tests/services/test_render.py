"""How incidents read in a terminal (`livedesk incidents show`)."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import Decision, IncidentVersion
from services.render import history_lines

T0 = datetime(2025, 10, 24, 9, tzinfo=UTC)


def _evidence(source: str, value: str) -> dict[str, object]:
    return {"value": value, "source_id": source, "guid": f"{source}-1", "authority": "news",
            "reported_at": T0.isoformat()}


def test_a_conflict_is_shown_with_the_value_held_and_the_contradiction() -> None:
    state = {"category": "stabbing", "location": {"name": "Leyton", "region": "London"}, "title": "Man stabbed",
             "casualties": [{"label": "man", "role": "victim", "condition": "stable", "life_changing": None}],
             "conflicts": [{"field": "casualties.man.condition", "held": _evidence("echo", "stable"),
                            "contradicted_by": [_evidence("wire", "critical")]}]}
    version = IncidentVersion(
        incident_id="i_1", rev=2, version=3, believed_at=T0,
        decision=Decision(update_id="u_1", source_id="wire", guid="w1", verdict="new", how="matched",
                          reason="same place: Leyton", score=3),
        events=["condition of man: critical → stable"], state=state,
    )
    lines = history_lines(version, [version])
    assert '  conflict on casualties.man.condition: echo said "stable" (held); wire said "critical"' in lines
    assert "  stabbing in Leyton, London: Man stabbed" in lines
    assert any(line.strip().startswith("r2") and "matched (score 3): same place: Leyton  [wire new]" in line
               for line in lines)
    assert "        · condition of man: critical → stable" in lines


def test_revisions_of_a_merged_incident_are_marked_with_their_incident() -> None:
    decision = Decision(update_id="u_2", source_id="wire", guid="w1", verdict="new", how="opened", reason="r")
    own = IncidentVersion(incident_id="i_1", rev=1, version=1, believed_at=T0, decision=decision, state={})
    absorbed = own.model_copy(update={"incident_id": "i_2"})
    lines = history_lines(own, [own, absorbed])
    assert [line.split()[0] for line in lines if "opened: r" in line] == ["r1", "[i_2]"]
