"""Poison entries on `raw`, `updates` and `changes` (invalid JSON, a schema violation, a payload a rule raises on) go
to the dead letters within `max_deliveries` deliveries, with the error and the original; the entries behind them
flow on; `livedesk deadletter list|show|replay` manages them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis
from typer.testing import CliRunner

from schemas import Authority, ChangeEvent, EventType, Evidence, FeedEntry, RawUpdate, Update, Verdict
from schemas.subscriptions import DeadLetter
from services.cli import cli
from services.groups import backlog, ensure_groups
from services.identity import content_fingerprint, entry_identity, update_id
from services.notifier.deadletters import read_dead_letters
from services.notifier.hooks import HookRegistry, make_hook
from services.settings import Settings
from services.stage import dead_letter
from services.wire import entry_data
from tests.faults.failing_rules import ENDLESS, MARKER
from tests.support.notifier import QUICK_RETRIES, running_notifier
from tests.support.receivers import Receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

Model = TypeVar("Model", bound=BaseModel)
T0 = datetime(2025, 10, 24, 9, tzinfo=UTC)
SECRET = "poison-test-secret-0123"


@pytest.fixture
def poison_settings(settings: Settings) -> Settings:
    """Quick reclaiming, three deliveries at most, and a tracker whose extractor has a rule that raises."""
    return settings.model_copy(update={
        **QUICK_RETRIES, "max_deliveries": 3,
        "tracker_extractor": "tests.faults.failing_rules:rules_with_a_failing_rule"})


@dataclass(frozen=True)
class Poison:
    stream: str
    entry_id: str
    payload: str
    group: str
    error: str  # a part of the dead letter's error
    most_deliveries: int


def raw_entry(guid: str, title: str, text: str) -> RawUpdate:
    entry = FeedEntry(guid=guid, title=title, text=text, published=T0)
    return RawUpdate(source_id="echo", authority=Authority.news, feed_url="https://echo.example.org/rss", entry=entry,
                     identity=entry_identity("echo", entry), fingerprint=content_fingerprint(entry),
                     fetched_at=T0 + timedelta(minutes=5))


def update_entry(guid: str, place: str, extra: str = "") -> Update:
    return Update(update_id=f"u_{guid}", verdict=Verdict.new, source_id="wire", authority=Authority.news,
                  identity=f"wire|{guid}", fingerprint=f"f-{guid}", guid=guid, title=f"Man stabbed in {place}",
                  text=f"A man was stabbed in {place} on Friday. He is in a critical condition.{extra}",
                  reported_at=T0, fetched_at=T0)


def change_entry(event_id: str, incident_id: str, version: int = 1) -> ChangeEvent:
    return ChangeEvent(event_id=event_id, type=EventType.condition_updated, incident_id=incident_id,
                       version=version, field="casualties", subject="man", before="critical", after="stable",
                       reported_at=T0, detected_at=T0, summary="condition of man: critical → stable",
                       evidence=[Evidence(source_id="echo", guid="g1", url="https://echo.example.org/1")])


async def add(redis: Redis, stream: str, payload: str) -> str:
    entry_id = await redis.xadd(stream, {"__data__": payload})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def readable(model: type[Model], rows: object) -> list[Model]:
    """The entries of an XRANGE reply that parse as `model` (the poison ones, still on their stream, do not)."""
    found = []
    for _, data in entry_data(rows):
        with contextlib.suppress(ValueError):
            found.append(model.model_validate_json(data))
    return found


async def livedesk(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {"LIVEDESK_REDIS_URL": settings.redis_url or "", "LIVEDESK_KEY_PREFIX": settings.key_prefix}
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def dead_letters_by_entry(redis: Redis, settings: Settings) -> dict[tuple[str, str], DeadLetter]:
    """The dead letters by the stream and id of the entry each one failed."""
    letters = await read_dead_letters(redis, settings.keys)
    by_entry = {(letter.stream, letter.entry_id): letter for letter in letters}
    assert len(by_entry) == len(letters), "one dead letter per failed entry"
    return by_entry


async def drained(redis: Redis, settings: Settings) -> bool:
    return not any((await backlog(redis, settings.keys, ["dedup", "tracker", "notifier"])).values())


async def test_poison_entries_are_dead_lettered_and_the_streams_flow(redis: Redis, poison_settings: Settings) -> None:
    """Three poison entries on each of raw, updates and changes, between good ones: each poison is dead-lettered
    (error, original payload, at most max_deliveries deliveries), every good entry goes through, and the dead
    letters are listed, shown and replayed (once) by the command."""
    settings, keys = poison_settings, poison_settings.keys
    await ensure_groups(redis, keys, ["dedup", "tracker", "notifier"])
    hooks = HookRegistry(redis, keys)
    with Receiver() as receiver:
        # Every event goes to `all`; `shootings` asks about the incident, so the notifier reads its state.
        await hooks.upsert([make_hook(settings, {"id": "all", "url": receiver.url, "secret": SECRET}),
                            make_hook(settings, {"id": "shootings", "url": receiver.url, "secret": SECRET,
                                                 "where": "category=shooting"})])
        # A record this release cannot read, as another release might leave it: dedup raises judging its entry.
        legacy = raw_entry("g-legacy", "Crash on the North Circular", "Two cars collided near Edmonton.")
        await redis.hset(keys.dedup_entry(legacy.identity),
                         mapping={"current": json.dumps({"fingerprint": "0f3a", "fetched_ms": 1761296400000})})
        # An incident a newer release stored with a category this one does not know: the `shootings` rule raises.
        await redis.hset(keys.incident("i_newer"), mapping={"rev": 1, "state": json.dumps(
            {"incident_id": "i_newer", "version": 1, "title": "Wildfire near Epping", "category": "wildfire",
             "opened_at": T0.isoformat(), "updated_at": T0.isoformat()})})

        good_raw = [raw_entry("g-before", "Fire at a warehouse in Barking", "Crews fought a fire in Barking."),
                    raw_entry("g-after", "Man stabbed in Leyton", "A man was stabbed in Leyton on Friday.")]
        good_updates = [update_entry("before", "Hackney Wick"), update_entry("after", "Stratford")]
        good_changes = [change_entry("e-before", "i_before"), change_entry("e-after", "i_after")]
        poisons: list[Poison] = []

        async def inject(stream: str, group: str, good: tuple[str, str], bad: list[tuple[str, str, int]]) -> None:
            await add(redis, stream, good[0])
            for payload, error, most in bad:
                poisons.append(Poison(stream, await add(redis, stream, payload), payload, group, error, most))
            await add(redis, stream, good[1])

        # Bad data is dead-lettered at its first delivery; a rule that raises on a valid entry is retried. In a
        # batch stage the whole batch fails first and each entry is then taken alone: a second delivery.
        await inject(keys.raw, "dedup", (good_raw[0].model_dump_json(), good_raw[1].model_dump_json()), [
            ("{not json", "JSON", 1),
            (json.dumps({"source_id": "echo", "entry": {"title": 3}}), "authority", 1),
            (legacy.model_dump_json(), "ValueError", 2)])
        await inject(keys.updates, "tracker", (good_updates[0].model_dump_json(), good_updates[1].model_dump_json()), [
            ("[1, 2", "JSON", 1),
            (update_entry("maybe", "Ilford").model_dump_json().replace('"new"', '"maybe"'), "verdict", 1),
            (update_entry("marked", "Romford", f" {MARKER}").model_dump_json(), "IndexError: casualty rule", 3)])
        await inject(keys.changes, "notifier", (good_changes[0].model_dump_json(), good_changes[1].model_dump_json()),
                     [("}{", "JSON", 1),
                      (change_entry("e-zero", "i_zero").model_dump_json().replace('"version":1', '"version":0'),
                       "version", 1),
                      (change_entry("e-newer", "i_newer").model_dump_json(), "wildfire", 2)])

        # Dedup and the tracker beside the notifier, on its broker, as `livedesk run` runs them.
        async with running_notifier(redis, settings, alongside=["dedup", "tracker"]):
            async def settled() -> bool:
                return await redis.xlen(keys.deadletter) == len(poisons) and await drained(redis, settings)

            await eventually(settled, timeout_s=60, what="every poison dead-lettered and every stage drained")
            letters = await dead_letters_by_entry(redis, settings)
            for poison in poisons:
                letter = letters[poison.stream, poison.entry_id]
                assert (letter.stream, letter.group, letter.payload) == (poison.stream, poison.group, poison.payload)
                assert poison.error in letter.error, letter.error
                assert 1 <= letter.deliveries <= poison.most_deliveries <= settings.max_deliveries, letter
            rule = next(p for p in poisons if MARKER in p.payload)
            assert letters[rule.stream, rule.entry_id].deliveries == settings.max_deliveries, "retried, then given up"

            # The good entries went through, those behind the poison as well as those before it.
            judged = {u.update_id for u in readable(Update, await redis.xrange(keys.updates))}
            assert {update_id(r.identity, r.fingerprint) for r in good_raw} <= judged
            events = readable(ChangeEvent, await redis.xrange(keys.changes))
            opened_by = {e.evidence[0].guid for e in events if e.type is EventType.incident_opened}
            assert {"g-before", "g-after", "before", "after"} <= opened_by
            await eventually(lambda: {"e-before", "e-after"} <= set(receiver.accepted_keys()), timeout_s=20,
                             what="the good change events delivered to the hook")

            code, out, _ = await livedesk(settings, "deadletter", "list", "--json")
            listed = [json.loads(line) for line in out.splitlines()]
            assert code == 0
            assert sorted((row["stream"], row["entry_id"]) for row in listed) == sorted(
                (p.stream, p.entry_id) for p in poisons)
            assert all(row["error"] for row in listed)
            newer = letters[poisons[-1].stream, poisons[-1].entry_id]
            code, out, _ = await livedesk(settings, "deadletter", "show", newer.dead_letter_id)
            assert code == 0
            shown = json.loads(out)
            assert (shown["payload"], shown["group"]) == (poisons[-1].payload, "notifier")
            assert "wildfire" in shown["error"]

            # The causes fixed (the record and the incident gone), the two go back and through.
            await redis.delete(keys.dedup_entry(legacy.identity), keys.incident("i_newer"))
            legacy_letter = letters[poisons[2].stream, poisons[2].entry_id]
            code, out, _ = await livedesk(settings, "deadletter", "replay", legacy_letter.dead_letter_id,
                                          newer.dead_letter_id)
            assert (code, out.splitlines()[-1]) == (0, "2 replayed, 0 left"), out
            await eventually(lambda: "e-newer" in receiver.accepted_keys(), timeout_s=20,
                             what="the replayed change delivered")

            async def legacy_judged() -> bool:
                ids = {u.update_id for u in readable(Update, await redis.xrange(keys.updates))}
                return update_id(legacy.identity, legacy.fingerprint) in ids

            await eventually(legacy_judged, timeout_s=20, what="the replayed raw entry judged")
            code, _, err = await livedesk(settings, "deadletter", "replay", newer.dead_letter_id)
            assert (code, "no dead letter" in err) == (2, True), "a dead letter goes back once"
            assert receiver.accepted_keys().count("e-newer") == 1

            # The rest go back with --all and, being as bad as before, come back as dead letters of new entries.
            code, out, _ = await livedesk(settings, "deadletter", "replay", "--all")
            assert (code, out.splitlines()[-1]) == (0, f"{len(poisons) - 2} replayed, 0 left"), out

            async def dead_again() -> bool:
                return await redis.xlen(keys.deadletter) == len(poisons) - 2 and await drained(redis, settings)

            await eventually(dead_again, timeout_s=60, what="the replayed poison dead-lettered again")
            again = await dead_letters_by_entry(redis, settings)
            assert not set(again) & {(p.stream, p.entry_id) for p in poisons}, "each came back from a new entry"
            assert sorted(letter.payload for letter in again.values()) == sorted(
                p.payload for p in poisons if p not in (poisons[2], poisons[-1]))
            code, _, err = await livedesk(settings, "deadletter", "replay")
            assert (code, "or pass --all" in err) == (2, True)


async def test_an_update_read_for_too_long_is_dead_lettered_and_the_rest_flow(redis: Redis, settings: Settings) -> None:
    """An update whose facts the extractor would read for ever is interrupted at the CPU limit and dead-lettered
    with an error naming it (never retried: every try would end the same), while the updates around it are
    tracked."""
    settings = settings.model_copy(update={
        **QUICK_RETRIES, "max_deliveries": 3, "extract_cpu_s": 0.5,
        "tracker_extractor": "tests.faults.failing_rules:rules_with_an_endless_rule"})
    keys = settings.keys
    await ensure_groups(redis, keys, ["tracker"])
    endless = update_entry("endless", "Romford", f" {ENDLESS}")
    for update in (update_entry("before", "Hackney Wick"), endless, update_entry("after", "Stratford")):
        await add(redis, keys.updates, update.model_dump_json())
    async with running_notifier(redis, settings, alongside=["tracker"]):
        async def settled() -> bool:
            return await redis.xlen(keys.deadletter) == 1 and await drained(redis, settings)

        await eventually(settled, timeout_s=60, what="the endless update dead-lettered and the tracker drained")
    (letter,) = await read_dead_letters(redis, keys)
    assert (letter.stream, letter.group, letter.payload) == (keys.updates, "tracker", endless.model_dump_json())
    assert letter.error.startswith("CPUTimeExceeded: update u_endless (wire, "), letter.error
    assert letter.error.endswith("reading its facts: more than 0.5 s of CPU"), letter.error
    assert letter.deliveries < settings.max_deliveries, "a permanent error: not retried to the end"
    events = readable(ChangeEvent, await redis.xrange(keys.changes))
    assert {e.evidence[0].guid for e in events if e.type is EventType.incident_opened} == {"before", "after"}


async def test_deadletter_replay_requeues_webhook_dead_letters_of_live_hooks(redis: Redis, settings: Settings) -> None:
    """A webhook dead letter goes back on its hook's queue, as `hooks redeliver` does; one of a removed hook stays."""
    keys = settings.keys
    hooks = HookRegistry(redis, keys)
    await hooks.upsert([make_hook(settings, {"id": "ops", "url": "https://ops.example.org/h", "secret": SECRET})])
    for hook_id in ("ops", "gone"):
        queue = keys.hook_queue(hook_id)
        await redis.xgroup_create(queue, "deliver", id="0", mkstream=True)
        await add(redis, queue, change_entry(f"e-{hook_id}", "i_1").model_dump_json())
        read: Any = await redis.xreadgroup("deliver", "c", {queue: ">"})
        [[_, [(entry_id, fields)]]] = read
        await dead_letter(redis, keys, queue, "deliver", entry_id, fields[b"__data__"], RuntimeError("HTTP 410"),
                          deliveries=1, fields={"hook_id": hook_id})
        await redis.xdel(queue, entry_id)
    code, out, err = await livedesk(settings, "deadletter", "replay", "--all")
    assert code == 1, "a dead letter was left"
    assert "1 replayed, 1 left" in out
    assert "hook gone no longer exists" in err
    [(_, queued)] = entry_data(await redis.xrange(keys.hook_queue("ops")))
    assert json.loads(queued)["event_id"] == "e-ops"
    assert await redis.xlen(keys.hook_queue("gone")) == 0
    [left] = await read_dead_letters(redis, keys)
    assert left.hook_id == "gone"
