"""Replay archives end to end on a real server: the Walthamstow story, told once, the same every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent, EventType
from schemas.generate import JSON_DIR
from services.cli import DEMO_ARCHIVE
from services.groups import backlog
from services.names import Keys
from services.replay import EventReader, read_archive, replay, wait_drained
from services.settings import Settings

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
# Published on 24 October saying "critical", first served on the 25th after the man's condition improved.
STRAGGLER = ("city-wire", "https://citywire.example.net/london/2025/10/24/walthamstow-man-critical-condition")
# The agency text east-london-echo carried first, syndicated under another guid and link.
SYNDICATED_COPY = ("city-wire", "https://citywire.example.net/london/2025/10/24/police-watchdog-investigating-man-shot-walthamstow")


def story(events: list[ChangeEvent]) -> list[tuple[str, str | None, str | None, object, str]]:
    """What each event told and on whose evidence (statements by their speaker)."""
    told = []
    for event in events:
        after = None if event.type in {EventType.incident_opened, EventType.statement_added} else event.after
        told.append((event.type.value, event.field, event.subject, after, event.evidence[0].source_id))
    return told


async def test_demo_archive_tells_the_walthamstow_story(settings: Settings, redis_url: str) -> None:
    """One incident; critical → stable with life-changing injuries; IOPC; cordon in place then lifted; no risk."""
    result = await replay(DEMO_ARCHIVE, settings, redis_url)
    assert len(result.incidents) == 1
    incident = result.incidents[0]
    assert (incident.category.value, incident.location.name if incident.location else None) == ("shooting",
                                                                                                 "Walthamstow")
    iopc = {"body": "IOPC", "kind": "independent", "status": "open"}
    assert story(result.events) == [
        ("incident_opened", None, None, None, "east-london-echo"),
        ("condition_updated", "condition", "man", "critical", "met-police"),
        ("statement_added", "statements", "Chief Superintendent Dana Whitlock", None, "met-police"),
        ("source_added", "sources", None, "met-police", "met-police"),
        ("cordon_updated", "cordon", None, "in_place", "city-wire"),
        ("source_added", "sources", None, "city-wire", "city-wire"),
        ("investigation_opened", "investigations", "IOPC", iopc, "iopc"),
        ("statement_added", "statements", "IOPC Regional Director Amanda Rowe", None, "iopc"),
        ("source_added", "sources", None, "iopc", "iopc"),
        ("condition_updated", "condition", "man", "stable", "met-police"),
        ("condition_updated", "life_changing", "man", True, "met-police"),
        ("cordon_updated", "cordon", None, "lifted", "east-london-echo"),
        ("public_risk_updated", "public_risk", None, "none", "met-police"),
        ("source_added", "sources", None, "comedyinyoureye", "comedyinyoureye"),
    ]
    assert [e.version for e in result.events] == list(range(1, len(result.events) + 1))
    assert incident.version == len(result.events)
    (man,) = incident.casualties
    assert (man.condition.value, man.life_changing) == ("stable", True)
    assert (incident.cordon, incident.public_risk) == ("lifted", "none")
    assert result.feed_errors == []
    assert result.dead_letters == []


async def test_copies_and_stragglers_tell_nothing(settings: Settings, redis_url: str) -> None:
    """The syndicated copy and the late straggler are merged as items but are the evidence of no event."""
    result = await replay(DEMO_ARCHIVE, settings, redis_url)
    (incident,) = result.incidents
    evidence = {(e.evidence[0].source_id, e.evidence[0].guid) for e in result.events}
    items = {(i.source_id, i.guid) for i in incident.items}
    quiet = items - evidence
    assert STRAGGLER in quiet
    assert SYNDICATED_COPY in quiet
    straggler_said = [p for p in incident.provenance["casualties.man.condition"] if p.guid == STRAGGLER[1]]
    assert [p.value for p in straggler_said] == ["critical"], "the straggler is kept as provenance"


async def test_replay_is_deterministic_and_cleans_up(settings: Settings, redis_url: str, redis: Redis) -> None:
    """Two runs give byte-identical events and incidents, and leave no key behind."""
    first = await replay(DEMO_ARCHIVE, settings, redis_url)
    second = await replay(DEMO_ARCHIVE, settings, redis_url)
    assert [e.model_dump_json() for e in first.events] == [e.model_dump_json() for e in second.events]
    assert [i.model_dump_json() for i in first.incidents] == [i.model_dump_json() for i in second.incidents]
    assert [key async for key in redis.scan_iter(match=f"{settings.key_prefix}:*")] == []


async def test_processing_everything_again_emits_nothing(settings: Settings, redis_url: str, redis: Redis) -> None:
    """Re-running on the same keys, and re-delivering every raw entry and update, adds no event."""
    prefix = f"{settings.key_prefix}:again"
    first = await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=prefix, keep=True)
    again = await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=prefix, keep=True)
    assert again.events == first.events  # the stream holds the first run's events and nothing more
    keys = Keys(prefix)
    # As if every stage had crashed after its effects and before its acknowledgements: everything comes again.
    raw, updates = await redis.xrange(keys.raw), await redis.xrange(keys.updates)
    assert raw is not None
    assert updates is not None
    async with redis.pipeline(transaction=False) as pipe:
        for _, fields in raw:
            assert fields is not None
            pipe.xadd(keys.raw, fields)  # type: ignore[arg-type]  # redis-py's fields: an invariant dict
        for _, fields in updates:
            assert fields is not None
            pipe.xadd(keys.updates, fields)  # type: ignore[arg-type]  # redis-py's fields: an invariant dict
        await pipe.execute()
    from services.app import build_broker
    from services.stage import StageContext

    ctx = StageContext(settings.model_copy(update={"key_prefix": prefix}), redis)
    async with build_broker(ctx, redis_url, ["dedup", "tracker"]) as broker:
        await broker.start()
        await wait_drained(redis, keys, timeout_s=60)
    assert await redis.xlen(keys.changes) == len(first.events)
    assert await redis.xlen(keys.updates) == 2 * len(updates), "re-delivered raw entries gave no new verdicts"
    assert (await backlog(redis, keys, ["dedup", "tracker"])) == {"dedup": 0, "tracker": 0}


async def test_changes_stream_is_plain_json_for_any_client(settings: Settings, redis_url: str, redis: Redis) -> None:
    """A bare redis client reads `changes` and every entry validates against schemas/json/ChangeEvent.json."""
    prefix = f"{settings.key_prefix}:plain"
    await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=prefix, keep=True)
    schema = json.loads((JSON_DIR / "ChangeEvent.json").read_text())
    rows = await redis.xrange(Keys(prefix).changes)
    assert rows
    for _, fields in rows:
        assert fields is not None
        assert set(fields) == {b"__data__"}
        jsonschema.validate(json.loads(fields[b"__data__"]), schema)


async def test_event_reader_resumes_where_it_stopped(settings: Settings, redis_url: str, redis: Redis) -> None:
    """EventReader hands out each event once across calls."""
    prefix = f"{settings.key_prefix}:reader"
    result = await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=prefix, keep=True)
    reader = EventReader(redis, Keys(prefix))
    assert await reader.new_events() == result.events
    assert await reader.new_events() == []


def test_archive_is_read_in_time_order() -> None:
    """Snapshots come back sorted by instant, each with a known source."""
    archive = read_archive(DEMO_ARCHIVE)
    instants = [s.at for s in archive.snapshots]
    assert instants == sorted(instants)
    assert len(archive.snapshots) >= 10
    assert {s.source_id for s in archive.snapshots} <= set(archive.sources)


def _livedesk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=180, check=False)


def test_replay_command_writes_events_and_state(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """`livedesk replay` writes one event per line and the incidents with their items."""
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix}
    done = _livedesk("replay", str(DEMO_ARCHIVE), "--out", str(tmp_path / "e.jsonl"), "--state",
                     str(tmp_path / "s.json"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [ChangeEvent.model_validate_json(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert events[0].type is EventType.incident_opened
    (incident,) = json.loads((tmp_path / "s.json").read_text())
    assert {"source_id", "guid"} == set(incident["items"][0])
    assert len(incident["items"]) >= 10


def test_demo_prints_the_story(redis_url: str, key_prefix: str) -> None:
    """`livedesk demo` prints the condition change as a readable line and exits 0."""
    done = _livedesk("demo", "--pace", "0", env={"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "condition of man: critical → stable" in done.stdout
    assert "cordon: in place → lifted" in done.stdout
