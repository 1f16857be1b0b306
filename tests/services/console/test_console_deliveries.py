"""The delivery routes over what the real notifier recorded delivering the demo story to receivers on loopback."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from tests.services.console.conftest import QUICK, Notified, api_error, console_at, is_valid

pytestmark = pytest.mark.redis


async def test_deliveries_newest_first_per_hook_and_limited(notified: Notified, redis: Redis) -> None:
    """Every attempt is listed newest first with its outcome; `hook` keeps one hook's, `limit` the newest few."""
    async with console_at(notified.settings, redis, **QUICK) as (base, _), \
            httpx.AsyncClient(timeout=10) as client:
        everything = (await client.get(f"{base}/api/deliveries")).json()
        conditions = (await client.get(f"{base}/api/deliveries", params={"hook": "conditions"})).json()
        newest = (await client.get(f"{base}/api/deliveries", params={"limit": "2"})).json()
        nobody = (await client.get(f"{base}/api/deliveries", params={"hook": "nobody"})).json()
    for body in (everything, conditions, newest, nobody):
        assert is_valid(body, "DeliveryList")
    attempts = everything["deliveries"]
    assert len(attempts) == 6
    assert [a["at"] for a in attempts] == sorted((a["at"] for a in attempts), reverse=True)
    mine = conditions["deliveries"]
    assert {a["hook_id"] for a in mine} == {"conditions"}
    assert sorted((a["status"], a["ok"]) for a in mine) == [(200, True)] * 3 + [(500, False)]
    assert sorted(e for a in mine if a["ok"] for e in a["event_ids"]) == sorted(notified.conditions.accepted_keys())
    assert sorted((a["status"], a["ok"]) for a in attempts if a["hook_id"] == "cordons") == [(429, False)] * 2
    assert newest["deliveries"] == attempts[:2]
    assert nobody["deliveries"] == []


async def test_dead_letters_listed_and_one_by_id(notified: Notified, redis: Redis) -> None:
    """The dead letters are listed newest first with the hook that gave up and why; one is read by its id; an id
    not on the stream is a 404."""
    async with console_at(notified.settings, redis, **QUICK) as (base, _), \
            httpx.AsyncClient(timeout=10) as client:
        listed = (await client.get(f"{base}/api/deadletters")).json()
        assert is_valid(listed, "DeadLetterList")
        letters = listed["dead_letters"]
        assert len(letters) == 2
        assert {letter["hook_id"] for letter in letters} == {"cordons"}
        assert all("429" in letter["error"] or "Retry-After" in letter["error"] for letter in letters)
        assert letters[0]["dead_letter_id"] > letters[1]["dead_letter_id"]
        one = (await client.get(f"{base}/api/deadletters/{letters[1]['dead_letter_id']}")).json()
        assert is_valid(one, "DeadLetter")
        assert one == letters[1]
        assert (await client.get(f"{base}/api/deadletters", params={"limit": "1"})).json()["dead_letters"] == [
            letters[0]]
        api_error(await client.get(f"{base}/api/deadletters/1-0"), 404, "dead_letter_id")
