"""`livedesk incidents list` and `livedesk incidents show ID [--at TIME]` against a real server."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from services.cli import cli
from services.names import Keys
from services.tracker.stage import process
from services.tracker.store import IncidentStore
from tests.services.tracker.test_tracker_stage import STABBING, T0, update

pytestmark = pytest.mark.redis


@pytest.fixture
async def incident_id(redis: Redis, key_prefix: str) -> str:
    store = IncidentStore(redis, Keys(key_prefix))
    await process(store, update("police", "p1", *STABBING))
    await process(store, update("echo", "e1", "Leyton stabbing victim now stable",
                                "The man stabbed in Leyton on Friday is now in a stable condition, police said.",
                                minutes=30))
    await process(store, update("police", "p2", "Fire in Handsworth",
                                "Firefighters were called to a house fire in Handsworth, Birmingham.", minutes=60))
    (stabbing,) = [i for i in await store.all() if i.category.value == "stabbing"]
    return stabbing.incident_id


async def livedesk(redis_url: str, key_prefix: str, *args: str) -> tuple[int, str, str]:
    """The command as a user runs it (in a thread: it runs its own event loop)."""
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix}
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def test_list_shows_the_most_recently_active_first(redis_url: str, key_prefix: str, incident_id: str) -> None:
    code, out, _ = await livedesk(redis_url, key_prefix, "incidents", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert "fire" in lines[0]
    assert "Handsworth" in lines[0]
    assert lines[1].startswith(incident_id)
    assert "stabbing" in lines[1]
    code, out, _ = await livedesk(redis_url, key_prefix, "incidents", "list", "--json", "--limit", "1")
    assert [json.loads(line)["category"] for line in out.splitlines()] == ["fire"]


async def test_show_tells_the_state_and_why_each_update_joined(redis_url: str, key_prefix: str,
                                                                incident_id: str) -> None:
    code, out, _ = await livedesk(redis_url, key_prefix, "incidents", "show", incident_id)
    assert code == 0
    assert "man (victim): stable" in out
    assert "opened: no matching incident: a stabbing in Leyton" in out
    assert "matched (score" in out
    assert "[echo new]" in out


async def test_show_at_a_time_gives_the_state_believed_then(redis_url: str, key_prefix: str,
                                                             incident_id: str) -> None:
    before_follow_up = (T0 + timedelta(minutes=10)).isoformat()
    code, out, _ = await livedesk(redis_url, key_prefix, "incidents", "show", incident_id, "--at", before_follow_up,
                                  "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["believed"]["rev"] == 1
    assert shown["believed"]["state"]["casualties"][0]["condition"] == "critical"
    assert [version["rev"] for version in shown["history"]] == [1]

    code, _, err = await livedesk(redis_url, key_prefix, "incidents", "show", incident_id, "--at", "2020-01-01T00:00")
    assert code == 1
    assert "not known yet" in err
    code, _, err = await livedesk(redis_url, key_prefix, "incidents", "show", incident_id, "--at", "yesterday")
    assert code == 2
    assert "ISO 8601" in err
    code, _, err = await livedesk(redis_url, key_prefix, "incidents", "show", "i_unknown")
    assert code == 2
    assert "no incident i_unknown" in err
