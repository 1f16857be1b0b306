"""`GET /events`: change events as Server-Sent Events, through uvicorn on loopback, from the real tracker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent
from services.cli import DEMO_ARCHIVE
from services.replay import REPLAY_STAGES, replay
from services.settings import Settings
from services.stage import StageContext
from services.wire import entry_data
from tests.services.console.conftest import QUICK, WALTHAMSTOW, console_at, stream_items, take, then_idle
from tests.support.pipeline import ArchivePlayer, running_stages

pytestmark = pytest.mark.redis

HANDSWORTH, SALFORD = "i_df63fb3911fa691b", "i_2e3b52fc9b8cb660"


async def on_stream(redis: Redis, settings: Settings) -> list[tuple[str, str]]:
    """(stream id, ChangeEvent JSON) of every entry of `changes`."""
    return entry_data(await redis.xrange(settings.keys.changes))


async def test_events_carry_their_stream_id_and_resume_after_it(settings: Settings, redis: Redis, redis_url: str,
                                                                console_url: str) -> None:
    """Each event's `id:` is its id on the changes stream and its data the ChangeEvent; `last_event_id` and
    `Last-Event-ID` (which wins over it, as a browser reconnecting sends it) resume right after that id."""
    await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=settings.key_prefix, keep=True)
    stored = await on_stream(redis, settings)
    assert len(stored) == 14
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{console_url}/events", params={"last_event_id": "0"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            items = stream_items(response)
            events = await take(items, 14)
            await then_idle(items)
        assert [entry_id for entry_id, _ in events] == [entry_id for entry_id, _ in stored]
        assert [ChangeEvent.model_validate(data) for _, data in events] == [
            ChangeEvent.model_validate_json(data) for _, data in stored]

        resume_from = stored[9][0]
        async with client.stream("GET", f"{console_url}/events", headers={"Last-Event-ID": resume_from},
                                 params={"last_event_id": stored[1][0]}) as response:
            items = stream_items(response)
            assert [entry_id for entry_id, _ in await take(items, 4)] == [entry_id for entry_id, _ in stored[10:]]
            await then_idle(items)
        async with client.stream("GET", f"{console_url}/events",
                                 params={"last_event_id": stored[12][0]}) as response:
            items = stream_items(response)
            assert [entry_id for entry_id, _ in await take(items, 1)] == [stored[13][0]]
            await then_idle(items)


async def test_a_new_stream_starts_now_and_gets_changes_as_they_are_committed(settings: Settings, redis: Redis,
                                                                              redis_url: str,
                                                                              console_url: str) -> None:
    """Without an id the stream starts after the newest event (nothing old is sent) and then delivers each change
    the tracker commits, in order, while it stays open."""
    ctx = StageContext(settings, redis)
    story = ArchivePlayer(redis, ctx, DEMO_ARCHIVE)
    async with running_stages(ctx, redis_url, REPLAY_STAGES), httpx.AsyncClient(timeout=10) as client:
        await story.play_until("east-london-echo", "20251024T134000Z")
        async with client.stream("GET", f"{console_url}/events") as response:
            items = stream_items(response)
            assert await anext(items) == ("comment", "connected", None)
            await story.play(1)  # the Met's release: three changes
            events = await take(items, 3)
            await then_idle(items)
    assert [data["type"] for _, data in events] == ["condition_updated", "statement_added", "source_added"]
    assert {data["incident_id"] for _, data in events} == {WALTHAMSTOW}
    stored = await on_stream(redis, settings)
    assert [entry_id for entry_id, _ in events] == [entry_id for entry_id, _ in stored[1:4]]


@pytest.mark.parametrize(("query", "wanted"), [
    ({"type": "cordon_updated"}, lambda e: e["type"] == "cordon_updated"),
    ({"type": "arrests_updated,charges_updated"}, lambda e: e["type"] in {"arrests_updated", "charges_updated"}),
    ({"region": "Birmingham"}, lambda e: e["incident_id"] == HANDSWORTH),
    ({"category": "fire", "type": "incident_opened"}, lambda e: e["incident_id"] == SALFORD
     and e["type"] == "incident_opened"),
])
async def test_filters_pass_exactly_the_events_they_describe(stories: Settings, stories_url: str, redis: Redis,
                                                             query: dict[str, str], wanted: object) -> None:
    """Type, region and category (alone or together) let through every event they describe and no other."""
    assert callable(wanted)
    expected = [(entry_id, data) for entry_id, data in await on_stream(redis, stories)
                if wanted(ChangeEvent.model_validate_json(data).model_dump(mode="json"))]
    assert expected
    async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "GET", f"{stories_url}/events", params={**query, "last_event_id": "0"}) as response:
        items = stream_items(response)
        got = await take(items, len(expected))
        await then_idle(items)
    assert [entry_id for entry_id, _ in got] == [entry_id for entry_id, _ in expected]


async def test_stopping_the_console_ends_open_streams(settings: Settings, redis: Redis) -> None:
    """`Console.stop()` ends every open event stream within its wait for new events, so the server can shut
    down."""
    async with console_at(settings, redis, **QUICK) as (base, console), \
            httpx.AsyncClient(timeout=10) as client, client.stream("GET", f"{base}/events") as response:
        items = stream_items(response)
        assert await anext(items) == ("comment", "connected", None)
        console.stop()
        async with asyncio.timeout(1):
            rest = [item async for item in items]
    assert all(kind == "comment" for kind, _, _ in rest)


async def test_an_unreadable_incident_is_skipped_and_the_stream_goes_on(settings: Settings, redis: Redis,
                                                                      redis_url: str, console_url: str) -> None:
    """A filter on the incident passes nothing of an incident whose stored state does not parse, and the stream
    stays open for the others: bad data never ends it."""
    await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=settings.key_prefix, keep=True)
    await redis.hset(settings.keys.incident(WALTHAMSTOW), "state", "{not json")
    async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "GET", f"{console_url}/events", params={"region": "London", "last_event_id": "0"}) as response:
        items = stream_items(response)
        await then_idle(items)
        await then_idle(items)
