"""Reading the `deadletter` stream, and putting dead letters back where they failed (`livedesk deadletter replay`,
`livedesk hooks redeliver`).

A dead letter goes back in one step with its removal from the stream: a script that finds it still there, adds its
original payload to its stream and deletes it. So however many replays run at once, each dead letter goes back once.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from schemas.subscriptions import DeadLetter
from services.groups import ensure_groups
from services.names import STAGE_INPUTS, Keys
from services.notifier.deliver import ensure_queue_group, incident_version
from services.notifier.hooks import unsent_key, unsent_prefix
from services.wire import DATA_FIELD, as_text, entry_data

# KEYS: the deadletter stream, the stream to put the payload back on[, a hook's unsent index]. ARGV: dead letter id,
# data field, payload[, the start of the event's unsent member]. An event put back on a hook's queue is indexed as
# unsent with it, as the fan-out indexes it (`hooks.unsent_key`): that incident's later events wait for it.
# Returns the new entry's id, or nil when the dead letter is gone (another replay took it).
_PUT_BACK = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[1])
if KEYS[3] then redis.call('ZADD', KEYS[3], 0, ARGV[4] .. id) end
return id
"""


def _parse(dead_letter_id: str, data: str) -> DeadLetter:
    record = json.loads(data)
    known = set(DeadLetter.model_fields)
    extra = {k: v for k, v in record.items() if k not in known}
    return DeadLetter.model_validate({**{k: v for k, v in record.items() if k in known}, "dead_letter_id":
                                      dead_letter_id, "extra": {**record.get("extra", {}), **extra}})


async def read_dead_letters(redis: Redis, keys: Keys, ids: Collection[str] = ()) -> list[DeadLetter]:
    """The dead letters, oldest first; only those of `ids` when given (ids not on the stream are left out)."""
    rows: list[Any] = []
    for start, end in [(i, i) for i in ids] or [("-", "+")]:
        found: Any = await redis.xrange(keys.deadletter, start, end)
        rows += found or []
    return [_parse(entry_id, data) for entry_id, data in entry_data(rows)]


async def _put_back(redis: Redis, keys: Keys, letter: DeadLetter, stream: str) -> str | None:
    """Add `letter`'s payload to `stream` and delete the dead letter, atomically; None if it was already gone. An
    event put back on its hook's queue is indexed as unsent there (`hooks.unsent_key`)."""
    script_keys, args = [keys.deadletter, stream], [letter.dead_letter_id, DATA_FIELD, letter.payload]
    if letter.hook_id is not None and (event := incident_version(letter.payload)) is not None:
        script_keys.append(unsent_key(keys, letter.hook_id))
        args.append(unsent_prefix(*event))
    new_id = await redis.register_script(_PUT_BACK)(keys=script_keys, args=args)
    return as_text(new_id) if new_id else None


async def redeliver(redis: Redis, keys: Keys, hook_id: str | None = None, ids: Collection[str] = (),
                    known_hooks: Collection[str] | None = None) -> list[DeadLetter]:
    """Queue webhook dead letters (of `hook_id`, or all; only `ids` when given) on their hook's queue again and
    delete them from the stream, each in one step; returns those re-queued. A dead letter of another stage,
    or of a hook not in `known_hooks` (when given: a removed hook), is left where it is."""
    queued: list[DeadLetter] = []
    for letter in await read_dead_letters(redis, keys, ids):
        if letter.hook_id is None or (hook_id is not None and letter.hook_id != hook_id):
            continue
        if known_hooks is not None and letter.hook_id not in known_hooks:
            continue
        queue = keys.hook_queue(letter.hook_id)
        await ensure_queue_group(redis, queue)
        if await _put_back(redis, keys, letter, queue) is not None:
            queued.append(letter)
    return queued


@dataclass
class Replayed:
    """What `replay_dead_letters` did: each dead letter put back with its new entry id, and each one left where it
    is with the reason."""

    put_back: list[tuple[DeadLetter, str]] = field(default_factory=list)
    skipped: list[tuple[DeadLetter, str]] = field(default_factory=list)


async def replay_dead_letters(redis: Redis, keys: Keys, ids: Collection[str] = (),
                              known_hooks: Collection[str] = ()) -> Replayed:
    """Put dead letters (all, or those of `ids`) back on the stream they failed on and delete them, each in one step.

    A stage's dead letter goes back on its input stream (`raw`, `updates`, `changes`) as a new entry with the
    original payload, for the stage's group to read again; every other group of that stream reads it too (on
    `changes`, subscribers deduplicate on `event_id`). A webhook dead letter goes back on its hook's queue, as
    `livedesk hooks redeliver` does, unless its hook is no longer in `known_hooks`. A dead letter from a stream this
    deployment does not consume (another key prefix, a stream since renamed) is left where it is.
    """
    inputs = {keys.stream(stream): stage for stage, (stream, _) in STAGE_INPUTS.items()}
    done = Replayed()
    for letter in await read_dead_letters(redis, keys, ids):
        if letter.hook_id is not None:
            if letter.hook_id not in known_hooks:
                done.skipped.append((letter, f"hook {letter.hook_id} no longer exists"))
                continue
            target = keys.hook_queue(letter.hook_id)
            await ensure_queue_group(redis, target)
        elif letter.stream in inputs:
            target = letter.stream
            await ensure_groups(redis, keys, [inputs[letter.stream]])
        else:
            done.skipped.append((letter, f"stream {letter.stream} is not one this deployment consumes"))
            continue
        new_id = await _put_back(redis, keys, letter, target)
        if new_id is None:
            done.skipped.append((letter, "already replayed"))
        else:
            done.put_back.append((letter, new_id))
    return done
