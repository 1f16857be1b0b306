"""Reading the `deadletter` stream, and sending a hook's dead letters again (`livedesk hooks redeliver`)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from redis.asyncio import Redis

from schemas.subscriptions import DeadLetter
from services.names import Keys
from services.notifier.deliver import ensure_queue_group
from services.wire import DATA_FIELD, entry_data


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


async def redeliver(redis: Redis, keys: Keys, hook_id: str | None = None, ids: Collection[str] = (),
                    known_hooks: Collection[str] | None = None) -> list[DeadLetter]:
    """Queue webhook dead letters (of `hook_id`, or all; only `ids` when given) on their hook's queue again and
    delete them from the stream, each in one transaction; returns those re-queued. A dead letter of another stage,
    or of a hook not in `known_hooks` (when given: a removed hook), is left where it is."""
    queued: list[DeadLetter] = []
    for letter in await read_dead_letters(redis, keys, ids):
        if letter.hook_id is None or (hook_id is not None and letter.hook_id != hook_id):
            continue
        if known_hooks is not None and letter.hook_id not in known_hooks:
            continue
        queue = keys.hook_queue(letter.hook_id)
        await ensure_queue_group(redis, queue)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(queue, {DATA_FIELD: letter.payload})
            pipe.xdel(keys.deadletter, letter.dead_letter_id)
            await pipe.execute()
        queued.append(letter)
    return queued
