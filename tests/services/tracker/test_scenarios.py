"""Labelled scenario archives (tests/scenarios/NAME) replayed through the real pipeline on a real server.

Each archive holds its ground truth (`truth.jsonl`, `incidents.json`: the gva-dev format, for the evaluation
scripts) and `expected.json`: what a careful editor says each incident's final state is and which change events
should have told it, in order. Events are compared update by update: the runs of events that one entry caused must
come in the expected order of entries; within one run their order is free. An expected value that is a list (and
an actual value that is not) means "any of these"; an expected object is matched on the keys it gives; a statement's
expected subject is a name the actual speaker must contain. `combine_with` names an archive (repository-relative)
replayed together with the scenario's own, with its truth and expected incidents given in expected.json.

Every scenario is checked for its labels, its dedup verdicts, its clustering, a deterministic replay, and its final
state and events: the tracker tells each exactly as the editor would.
`python -m tests.evaluation.evaluate_tracker tests/scenarios/NAME` scores any of them.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent, Incident, Update
from services.names import Keys
from services.poller.parse import parse_feed
from services.replay import ReplayResult, delete_prefix, read_archive, replay
from services.settings import Settings
from services.wire import entry_data

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "tests" / "scenarios"
NAMES = sorted(path.name for path in SCENARIOS.iterdir() if (path / "expected.json").is_file())

Entry = tuple[str, str]  # (source_id, guid as the feed serves it)


@dataclass(frozen=True)
class Scenario:
    name: str
    archive: Path  # what is replayed: the scenario's own folder, or a combined copy of it and `combine_with`
    expected: dict[str, Any]
    truth: dict[Entry, str]  # entry → incident key, the combined archive's entries included
    unrelated: set[Entry]  # entries about no incident


@dataclass(frozen=True)
class Run:
    result: ReplayResult
    raw: int  # entries the replay published on `raw`
    updates: list[Update]  # what dedup let through to the tracker, with its verdicts


def _truth(root: Path) -> dict[Entry, str]:
    rows = [json.loads(line) for line in (root / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return {(row["source_id"], row["guid"]): row["incident"] for row in rows}


def _combine(own: Path, other: Path, into: Path) -> Path:
    """One archive holding both archives' sources and snapshots."""
    (into / "snapshots").mkdir(parents=True)
    registries = [(root / "sources.toml").read_text(encoding="utf-8") for root in (other, own)]
    (into / "sources.toml").write_text("\n".join(registries), encoding="utf-8")
    for root in (other, own):
        for snapshot in (root / "snapshots").iterdir():
            shutil.copy(snapshot, into / "snapshots" / snapshot.name)
    return into


def load(name: str, tmp: Path) -> Scenario:
    root = SCENARIOS / name
    expected = json.loads((root / "expected.json").read_text(encoding="utf-8"))
    truth = _truth(root)
    unrelated = {(s, g) for s, g in expected["unrelated"]}
    companion = expected.get("combine_with")
    if not companion:
        return Scenario(name, root, expected, truth, unrelated)
    for key, entries in companion["truth"].items():
        truth.update({(s, g): key for s, g in entries})
    unrelated |= {(s, g) for s, g in companion["unrelated"]}
    return Scenario(name, _combine(root, REPO / companion["archive"], tmp / "combined"), expected, truth, unrelated)


async def replay_scenario(scenario: Scenario, settings: Settings, redis_url: str, redis: Redis, tag: str) -> Run:
    """Replay on a private prefix, keeping its streams long enough to read what reached the tracker."""
    prefix = f"{settings.key_prefix}:{scenario.name}:{tag}"
    try:
        result = await replay(scenario.archive, settings, redis_url, key_prefix=prefix, keep=True)
        keys = Keys(prefix)
        raw = await redis.xlen(keys.raw)
        updates = [Update.model_validate_json(data) for _, data in entry_data(await redis.xrange(keys.updates))]
    finally:
        await delete_prefix(redis, prefix)
    return Run(result, raw, updates)


_RUNS: dict[str, Run] = {}


async def replayed(scenario: Scenario, settings: Settings, redis_url: str, redis: Redis) -> Run:
    """One replay per scenario for the tests that only read its outcome (the determinism test replays afresh)."""
    if scenario.name not in _RUNS:
        _RUNS[scenario.name] = await replay_scenario(scenario, settings, redis_url, redis, "shared")
    return _RUNS[scenario.name]


def incident_opened_by(incidents: list[Incident], expected: dict[str, Any]) -> Incident | None:
    """The incident holding the entry that should have opened the expected incident."""
    source_id, guid = expected["opened_by"]
    return next((i for i in incidents if any((r.source_id, r.guid) == (source_id, guid) for r in i.items)), None)


# --- comparing -------------------------------------------------------------------------------------------------------


def agrees(expected: Any, actual: Any) -> bool:
    """Whether `actual` is what `expected` says: a list is any of its values, an object is matched on its keys."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(agrees(value, actual.get(key)) for key, value in expected.items())
    if isinstance(expected, list) and not isinstance(actual, list):
        return actual in expected
    return bool(expected == actual)


def _event_fields(event: ChangeEvent) -> dict[str, Any]:
    fields: dict[str, Any] = event.model_dump(mode="json", include={"type", "field", "subject", "before", "after"})
    fields["source_id"], fields["guid"] = event.evidence[0].source_id, event.evidence[0].guid
    return fields


def event_agrees(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    for key, value in expected.items():
        if key == "subject" and actual["type"] == "statement_added":
            if not isinstance(actual["subject"], str) or value.lower() not in actual["subject"].lower():
                return False
        elif not agrees(value, actual.get(key)):
            return False
    return True


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        keys = [k for k in ("category", "location", "name", "region", "street", "label", "role", "condition", "body",
                            "kind", "status", "cordon", "public_risk", "dead", "injured", "arrests", "charges")
                if k in value]
        return "{" + ", ".join(f"{k}={_shown(value[k])}" for k in keys) + "}"
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "|".join(json.dumps(v, ensure_ascii=False) for v in value)
    return json.dumps(value, ensure_ascii=False)


def show_event(event: dict[str, Any]) -> str:
    guid = event["guid"].rstrip("/").rsplit("/", 1)[-1]
    told = [event["type"]]
    if event.get("field") in {"dead", "injured", "life_changing"}:
        told.append(f"field={event.get('field')}")
    if event.get("subject"):
        subject = event["subject"]
        told.append("[" + ("|".join(subject) if isinstance(subject, list) else subject) + "]")
    if event["type"] == "incident_opened":
        told.append(_shown(event.get("after")))
    elif event["type"] not in {"statement_added"} and ("before" in event or "after" in event):
        told.append(f"{_shown(event.get('before'))} → {_shown(event.get('after'))}")
    return f"{event['source_id']}/{guid}: " + " ".join(told)


def _runs(events: list[dict[str, Any]]) -> list[tuple[Entry, list[dict[str, Any]]]]:
    """Consecutive events caused by one entry, grouped."""
    runs: list[tuple[Entry, list[dict[str, Any]]]] = []
    for event in events:
        entry = (event["source_id"], event["guid"])
        if runs and runs[-1][0] == entry:
            runs[-1][1].append(event)
        else:
            runs.append((entry, [event]))
    return runs


def _run_agrees(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> bool:
    left = list(actual)
    for want in expected:
        found = next((i for i, got in enumerate(left) if event_agrees(want, got)), None)
        if found is None:
            return False
        left.pop(found)
    return not left


def events_agree(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> bool:
    want, got = _runs(expected), _runs(actual)
    return len(want) == len(got) and all(
        w_entry == g_entry and _run_agrees(w_events, g_events)
        for (w_entry, w_events), (g_entry, g_events) in zip(want, got, strict=True)
    )


def state_mismatches(expected: dict[str, Any], incident: Incident) -> list[str]:
    """(field: expected …, actual …) for every field of the final state that is not what the editor says."""
    actual = incident.model_dump(mode="json")
    wrong: list[str] = []
    for name, want in expected.items():
        if name == "casualties":
            wrong += _casualty_mismatches(want, actual["casualties"])
        elif name == "investigations":
            got = sorted(actual["investigations"], key=lambda i: json.dumps(i, sort_keys=True))
            if sorted(want, key=lambda i: json.dumps(i, sort_keys=True)) != got:
                wrong.append(f"investigations: expected {want}, actual {got}")
        elif not agrees(want, actual[name]):
            wrong.append(f"{name}: expected {_shown(want)}, actual {_shown(actual[name])}")
    return wrong


def _casualty_mismatches(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    left = list(actual)
    wrong = []
    for want in expected:
        found = next((c for c in left if agrees(want["label"], c["label"])), None)
        if found is None:
            wrong.append(f"casualties: expected {_shown(want)}, actual none with that label")
            continue
        left.remove(found)
        if not agrees(want, found):
            wrong.append(f"casualties: expected {_shown(want)}, actual {_shown(found)}")
    wrong += [f"casualties: unexpected {_shown(c)}" for c in left]
    return wrong


def found_incidents(scenario: Scenario, incidents: list[Incident],
                    wrong: list[str]) -> Iterator[tuple[str, dict[str, Any], Incident]]:
    """Each expected incident with the incident that holds its opening entry; one that none holds goes to `wrong`."""
    for key, expected in scenario.expected["incidents"].items():
        incident = incident_opened_by(incidents, expected)
        if incident is None:
            wrong.append(f"{key}: no incident holds {expected['opened_by']}")
        else:
            yield key, expected, incident


# --- the tests -------------------------------------------------------------------------------------------------------


@pytest.fixture(params=NAMES)
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Scenario:
    return load(request.param, tmp_path)


def test_archive_is_labelled_completely(scenario: Scenario) -> None:
    """Every snapshot parses, every entry is labelled (an incident or unrelated), every label names a served entry."""
    archive = read_archive(scenario.archive)
    served: set[Entry] = set()
    for snapshot in archive.snapshots:
        source = archive.sources[snapshot.source_id]
        parsed = parse_feed(snapshot.path.read_bytes(), feed=snapshot.path.name, base_url=source.url)
        assert parsed.entries, snapshot.path.name
        served |= {(snapshot.source_id, entry.guid or "") for entry in parsed.entries}
    assert served == set(scenario.truth) | scenario.unrelated
    assert not set(scenario.truth) & scenario.unrelated
    root = SCENARIOS / scenario.name
    incidents = json.loads((root / "incidents.json").read_text(encoding="utf-8"))
    assert set(_truth(root).values()) == set(incidents)
    assert set(scenario.truth.values()) == set(scenario.expected["incidents"])
    for key, incident in scenario.expected["incidents"].items():
        cited = [incident["opened_by"], *([e["source_id"], e["guid"]] for e in incident["events"])]
        assert {scenario.truth.get((source, guid)) for source, guid in cited} == {key}, key


@pytest.mark.redis
async def test_every_entry_reaches_the_tracker(
    scenario: Scenario, settings: Settings, redis_url: str, redis: Redis
) -> None:
    """Nothing is skipped or dead-lettered, and dedup gives each new or edited entry the expected verdict."""
    run = await replayed(scenario, settings, redis_url, redis)
    assert run.result.feed_errors == []
    assert run.result.dead_letters == []
    assert len(run.updates) == run.raw
    own = {source for source, _ in scenario.unrelated | set(scenario.truth)} - (
        {source for source, _ in _companion_entries(scenario)}
    )
    verdicts = Counter((u.source_id, u.guid, u.verdict.value) for u in run.updates if u.source_id in own)
    expected = Counter((u["source_id"], u["guid"], u["verdict"]) for u in scenario.expected["updates"])
    assert verdicts == expected


def _companion_entries(scenario: Scenario) -> set[Entry]:
    companion = scenario.expected.get("combine_with")
    if not companion:
        return set()
    return {(s, g) for entries in companion["truth"].values() for s, g in entries} | {
        (s, g) for s, g in companion["unrelated"]
    }


@pytest.mark.redis
async def test_entries_cluster_into_the_expected_incidents(
    scenario: Scenario, settings: Settings, redis_url: str, redis: Redis
) -> None:
    """One incident per labelled incident, holding exactly its entries; unrelated entries are in none."""
    incidents = (await replayed(scenario, settings, redis_url, redis)).result.incidents
    wrong: list[str] = []
    for key, _, incident in found_incidents(scenario, incidents, wrong):
        items = {(r.source_id, r.guid) for r in incident.items}
        truth = {entry for entry, label in scenario.truth.items() if label == key}
        if items != truth:
            wrong.append(f"{key}: missing {sorted(truth - items)}, foreign {sorted(items - truth)}")
    expected_ones = scenario.expected["incidents"].values()
    stray = [(i.incident_id, i.title) for i in incidents if not any(incident_opened_by([i], e) for e in expected_ones)]
    if stray:
        wrong.append(f"incidents nobody expected: {stray}")
    if wrong:
        pytest.fail("\n".join(wrong), pytrace=False)


@pytest.mark.redis
@pytest.mark.parametrize("scenario", NAMES, indirect=True)
async def test_final_state_is_what_an_editor_would_say(
    scenario: Scenario, settings: Settings, redis_url: str, redis: Redis
) -> None:
    """Category, place, counts, casualties, investigations, cordon and public risk of every incident at the end."""
    incidents = (await replayed(scenario, settings, redis_url, redis)).result.incidents
    wrong: list[str] = []
    for key, expected, incident in found_incidents(scenario, incidents, wrong):
        wrong += [f"{key}: {problem}" for problem in state_mismatches(expected["state"], incident)]
    if wrong:
        pytest.fail("\n".join(wrong), pytrace=False)


@pytest.mark.redis
@pytest.mark.parametrize("scenario", NAMES, indirect=True)
async def test_change_events_tell_each_change_once_in_order(
    scenario: Scenario, settings: Settings, redis_url: str, redis: Redis
) -> None:
    """Each incident's events: every real change once, caused by the entry that first stated it, in order."""
    result = (await replayed(scenario, settings, redis_url, redis)).result
    report = []
    for key, expected in scenario.expected["incidents"].items():
        incident = incident_opened_by(result.incidents, expected)
        actual = [_event_fields(e) for e in result.events if incident and e.incident_id == incident.incident_id]
        if not events_agree(expected["events"], actual):
            report += [f"== {key}: expected", *map(show_event, expected["events"]),
                       f"== {key}: actual", *map(show_event, actual)]
    if report:
        pytest.fail("\n".join(report), pytrace=False)


@pytest.mark.redis
async def test_replay_is_deterministic(scenario: Scenario, settings: Settings, redis_url: str, redis: Redis) -> None:
    """Two replays of the same archive give byte-identical events and incidents."""
    first = await replay_scenario(scenario, settings, redis_url, redis, "first")
    second = await replay_scenario(scenario, settings, redis_url, redis, "second")
    assert [e.model_dump_json() for e in first.result.events] == [e.model_dump_json() for e in second.result.events]
    assert [i.model_dump_json() for i in first.result.incidents] == [
        i.model_dump_json() for i in second.result.incidents
    ]
