"""The delivery routes: recent webhook delivery attempts, and the dead letters (one, or the newest)."""

from __future__ import annotations

import json
import re

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from schemas.console import DeadLetterList, DeliveryList
from schemas.subscriptions import DeadLetter, Delivery
from services.console.http import Handler, Problem, int_param, model_response, only
from services.names import Keys
from services.wire import entry_data

log = structlog.get_logger(__name__)

_STREAM_ID = re.compile(r"^\d+-\d+$")
_CHUNK = 500  # entries read at once while looking for one hook's deliveries
_DEAD_LETTER_FIELDS = ("stream", "group", "entry_id", "error", "deliveries", "payload", "hook_id")


async def recent_deliveries(redis: Redis, keys: Keys, hook: str | None, limit: int) -> DeliveryList:
    """Up to `limit` delivery attempts (of `hook` only, if given), newest first."""
    found: list[Delivery] = []
    top = "+"
    while len(found) < limit:
        rows = entry_data(await redis.xrevrange(keys.deliveries, max=top, count=_CHUNK))
        for entry_id, data in rows:
            try:
                delivery = Delivery.model_validate_json(data)
            except ValidationError:
                log.warning("delivery record not readable", entry_id=entry_id)
                continue
            if hook is None or delivery.hook_id == hook:
                found.append(delivery)
        if len(rows) < _CHUNK:
            break
        top = f"({rows[-1][0]}"
    return DeliveryList(deliveries=found[:limit])


def dead_letter(entry_id: str, data: str) -> DeadLetter | None:
    """The `DeadLetter` of one `deadletter` entry (fields other than its own go to `extra`); None if unreadable."""
    try:
        record = json.loads(data)
        known = {name: record[name] for name in _DEAD_LETTER_FIELDS if name in record}
        # A writer's own `extra` object is merged, not nested: `extra` is where fields without a name of their own go.
        extra = dict(record.get("extra") or {})
        extra |= {name: value for name, value in record.items()
                  if name not in _DEAD_LETTER_FIELDS and name not in ("extra", "dead_letter_id")}
        return DeadLetter.model_validate({**known, "dead_letter_id": entry_id, "extra": extra})
    except (ValueError, TypeError, AttributeError):
        log.warning("dead letter not readable", entry_id=entry_id)
        return None


async def dead_letters(redis: Redis, keys: Keys, limit: int) -> DeadLetterList:
    """Up to `limit` dead letters, newest first."""
    rows = entry_data(await redis.xrevrange(keys.deadletter, count=limit))
    return DeadLetterList(dead_letters=[found for entry_id, data in rows if (found := dead_letter(entry_id, data))])


async def one_dead_letter(redis: Redis, keys: Keys, dead_letter_id: str) -> DeadLetter:
    if not _STREAM_ID.match(dead_letter_id):
        raise Problem(400, f"{dead_letter_id!r} is not a stream id such as 1761300000000-0", "dead_letter_id")
    rows = entry_data(await redis.xrange(keys.deadletter, min=dead_letter_id, max=dead_letter_id, count=1))
    found = dead_letter(*rows[0]) if rows else None
    if found is None:
        raise Problem(404, f"no dead letter {dead_letter_id}", "dead_letter_id")
    return found


def delivery_handlers(redis: Redis, keys: Keys) -> tuple[Handler, Handler, Handler]:
    """The request handlers of deliveries, dead letters and one dead letter."""

    async def deliveries_route(request: Request) -> Response:
        only(request, ("hook", "limit"))
        hook = request.query_params.get("hook") or None
        return model_response(await recent_deliveries(redis, keys, hook, int_param(request, "limit", 100, 1, 1000)))

    async def dead_letters_route(request: Request) -> Response:
        only(request, ("limit",))
        return model_response(await dead_letters(redis, keys, int_param(request, "limit", 100, 1, 1000)))

    async def dead_letter_route(request: Request) -> Response:
        only(request, ())
        return model_response(await one_dead_letter(redis, keys, request.path_params["dead_letter_id"]))

    return deliveries_route, dead_letters_route, dead_letter_route
