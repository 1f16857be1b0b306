"""What every consuming stage shares: its context, how it subscribes to a stream, and dead-lettering.

Delivery is at-least-once (shared/faststream-notes.md): an entry is acknowledged only after its handler returned,
so after its effects are stored and its outputs written. FastStream never redelivers a pending entry by itself,
so each stage subscribes twice to its stream on one consumer group: a reader of new entries and a reclaimer that
takes over entries left pending (by a failure or a dead worker) for longer than `reclaim_idle_ms`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from faststream import AckPolicy
from faststream._internal.basic_types import AsyncFuncAny
from faststream.message import StreamMessage
from faststream.middlewares import BaseMiddleware
from faststream.redis import RedisRouter, StreamSub
from redis.asyncio import Redis

from services.errors import PermanentError
from services.names import Keys
from services.settings import Settings
from services.wire import as_text

log = structlog.get_logger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class StageContext:
    """What a stage's handlers need at run time; built once per process and passed to each router factory."""

    settings: Settings
    redis: Redis

    @property
    def keys(self) -> Keys:
        return self.settings.keys


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task is being cancelled; call it once per turn of a forever-loop.

    redis-py can swallow a cancellation that lands inside a command (redis/redis-py#2028, #2551); a loop that only
    awaits Redis and short sleeps would then never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def subscribe_stream(router: RedisRouter, ctx: StageContext, stream: str, group: str) -> Callable[[Handler], Handler]:
    """Register `handler` on `stream` for `group` twice: reader of new entries, reclaimer of abandoned ones."""
    settings = ctx.settings
    reader = StreamSub(
        stream,
        group=group,
        consumer=settings.consumer,
        # Small reads: an entry read is pending on this consumer until acked, so a crash strands at most this many.
        max_records=settings.batch_size,
        polling_interval=500,
    )
    reclaimer = StreamSub(
        stream,
        group=group,
        consumer=settings.consumer,
        min_idle_time=settings.reclaim_idle_ms,
        polling_interval=max(settings.reclaim_idle_ms // 2, 100),
    )

    def register(handler: Handler) -> Handler:
        # NACK_ON_ERROR: a failed entry stays pending (Redis has no nack) and the reclaimer retries it later;
        # the dead-letter middleware ends the retries. Never ACK_FIRST: that loses the entry on a crash.
        for sub, role in ((reader, "read"), (reclaimer, "reclaim")):
            router.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR, title=f"{group}:{role}")(handler)
        return handler

    return register


class DeadLetterMiddleware(BaseMiddleware):
    """Moves an entry that failed `max_deliveries` times to the `deadletter` stream, with its error, and acks it.

    The stream keeps flowing: one bad entry costs a few retries, never the stage.
    """

    def __init__(self, msg: Any, /, *, context: Any, redis: Redis, keys: Keys, max_deliveries: int) -> None:
        super().__init__(msg, context=context)
        self._redis = redis
        self._keys = keys
        self._max_deliveries = max_deliveries

    @classmethod
    def factory(cls, redis: Redis, keys: Keys, max_deliveries: int) -> Callable[..., DeadLetterMiddleware]:
        def build(msg: Any, /, *, context: Any) -> DeadLetterMiddleware:
            return cls(msg, context=context, redis=redis, keys=keys, max_deliveries=max_deliveries)

        return build

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        try:
            return await call_next(msg)
        except Exception as error:
            raw = msg.raw_message
            if not isinstance(raw, dict) or raw.get("type") != "stream" or not raw.get("message_ids"):
                raise
            deliveries = await msg.get_delivery_count()  # type: ignore[attr-defined]
            stream, entry_id = raw["channel"], raw["message_ids"][0]
            # A payload that does not parse or does not match its schema fails the same way every time: retrying
            # it only delays the dead letter (and a replay waiting for the pipeline to drain).
            if deliveries < self._max_deliveries and not isinstance(error, _PERMANENT):
                log.warning("message failed", stream=stream, entry_id=as_text(entry_id), deliveries=deliveries,
                            error=f"{type(error).__name__}: {error}")
                raise
            group = msg.group  # type: ignore[attr-defined]
            await self._dead_letter(stream, group, entry_id, msg.body, error, deliveries)
            return None

    async def _dead_letter(
        self, stream: str, group: str, entry_id: bytes | str, body: bytes, error: Exception, deliveries: int
    ) -> None:
        record = {
            "stream": stream,
            "group": group,
            "entry_id": as_text(entry_id),
            "error": f"{type(error).__name__}: {error}",
            "deliveries": deliveries,
            "payload": body.decode("utf-8", errors="replace"),
        }
        # One transaction: the entry is either still pending or dead-lettered, never lost in between.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._keys.deadletter, {"__data__": json.dumps(record)})
            pipe.xack(stream, group, entry_id)
            await pipe.execute()
        log.error("message dead-lettered", **{k: v for k, v in record.items() if k != "payload"})


# Bad data: ValueError covers JSON and Unicode decoding errors and pydantic's ValidationError.
_PERMANENT = (PermanentError, ValueError)
