"""What every consuming stage shares: its context, how it subscribes to a stream, and dead-lettering.

Delivery is at-least-once (shared/faststream-notes.md): an entry is acknowledged only after its handler returned,
so after its effects are stored and its outputs written. FastStream never redelivers a pending entry by itself,
so each stage subscribes twice to its stream on one consumer group: a reader of new entries and a reclaimer that
takes over entries left pending (by a failure or a dead worker) for longer than `reclaim_idle_ms`.

Every entry is handled at most `max_deliveries` times: one that keeps failing is dead-lettered with its last error
(`DeadLetterMiddleware`), and so is one whose consumers keep dying while they hold it (`AbandonedError`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from faststream import AckPolicy, Depends
from faststream._internal.basic_types import AsyncFuncAny
from faststream.message import StreamMessage
from faststream.middlewares import BaseMiddleware
from faststream.redis import RedisRouter, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage, RedisStreamMessage
from pydantic import BaseModel
from redis.asyncio import Redis

from services.errors import PermanentError
from services.names import Keys
from services.settings import Settings
from services.turns import Turn
from services.wire import DATA_FIELD, JSONMessageFormat, as_text

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


Model = TypeVar("Model", bound=BaseModel)
# Awaited by a batch handler before the part of its work that depends on the entries before its batch
# (`services.turns`): returns once copies of the stage that read earlier batches are done with them.
InTurn = Callable[[], Awaitable[None]]
# Gets the entries of one read as (payload, entry id) pairs and its turn, returns the ids it finished.
BatchHandler = Callable[[list[tuple[Model, str]], InTurn], Awaitable[Collection[str]]]


def _reclaimer(stream: str, group: str, settings: Settings) -> StreamSub:
    """A subscription that takes over entries of `group` pending for longer than `reclaim_idle_ms`, one at a time."""
    return StreamSub(
        stream,
        group=group,
        consumer=settings.consumer,
        min_idle_time=settings.reclaim_idle_ms,
        polling_interval=max(settings.reclaim_idle_ms // 2, 100),
    )


class AbandonedError(PermanentError):
    """An entry taken over more than `max_deliveries` times: every consumer that held it stopped before finishing."""


def _given_up_after(max_deliveries: int) -> Any:
    """A dependency of the reclaimer that refuses an entry already delivered more than `max_deliveries` times.

    An entry whose handling kills the process (out of memory, a crash in native code, a kill) raises nothing, so
    the dead-letter middleware never sees it fail: without this, each worker that takes it over would die in turn.
    Refused, it is dead-lettered unhandled (AbandonedError is permanent). Only the reclaimer asks: it alone gets
    entries delivered before, and the XPENDING this costs is paid once per entry taken over.
    """

    async def not_abandoned_too_often(message: RedisStreamMessage) -> None:
        deliveries = await message.get_delivery_count()
        if deliveries > max_deliveries:
            raise AbandonedError(f"delivered {deliveries} times and never finished: every consumer that took it "
                                 "stopped (killed or crashed) before it was done")

    return Depends(not_abandoned_too_often)


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
    reclaimer = _reclaimer(stream, group, settings)

    def register(handler: Handler) -> Handler:
        # NACK_ON_ERROR: a failed entry stays pending (Redis has no nack) and the reclaimer retries it later;
        # the dead-letter middleware ends the retries. Never ACK_FIRST: that loses the entry on a crash.
        router.subscriber(stream=reader, ack_policy=AckPolicy.NACK_ON_ERROR, title=f"{group}:read")(handler)
        router.subscriber(stream=reclaimer, ack_policy=AckPolicy.NACK_ON_ERROR, title=f"{group}:reclaim",
                          dependencies=[_given_up_after(settings.max_deliveries)])(handler)
        return handler

    return register


class _BodyNotRead(JSONMessageFormat):
    """The batch reader's message format: the reader parses each entry itself from the raw message, so FastStream
    gets a placeholder for each body instead of decoding every entry's JSON and encoding the batch again as one
    body no one reads (a sixth of the dedup reader's time)."""

    __slots__ = ()

    @classmethod
    def parse(cls, data: bytes) -> tuple[bytes, dict[str, Any]]:
        return JSONMessageFormat.parse(b"null")


def subscribe_stream_batches(
    router: RedisRouter,
    ctx: StageContext,
    stream: str,
    group: str,
    model: type[Model],
    handle_batch: BatchHandler[Model],
    handle_one: Handler,
    *,
    linger_ms: int = 0,
) -> None:
    """Read `stream` for `group` in batches of up to `batch_size` entries, reclaim abandoned entries one at a time.

    Each entry's `__data__` is parsed as `model`; one that does not parse is dead-lettered at once (bad data fails
    the same way every time). `handle_batch` gets the others, and its turn to await before it does what depends on
    the entries before them (so copies of the stage keep stream order: `services.turns`); it returns the ids it
    finished: those are acknowledged in one XACK after it returned; the rest stay pending (parked, so that no copy
    waits for them), and so do all of them if it raises. The reclaimer hands
    each pending entry to `handle_one` (a `subscribe_stream` handler) once it has been idle for `reclaim_idle_ms`,
    where failures count towards dead-lettering it. So one bad entry is retried alone and never holds up its batch.

    With `linger_ms`, a batch smaller than `batch_size` is followed by that long a wait before the next read: entries
    that arrive one at a time are then read several at once, at the cost of up to that much latency for those that
    arrive during the wait (the first after a quiet spell is read at once). A full batch is followed by no wait.
    """
    settings = ctx.settings
    reader = StreamSub(
        stream,
        group=group,
        consumer=settings.consumer,
        batch=True,
        max_records=settings.batch_size,  # pending on this consumer until acked: a crash strands at most this many
        polling_interval=500,
    )
    reclaimer = _reclaimer(stream, group, settings)
    data_field = DATA_FIELD.encode()
    # Never longer than half the reclaim time: the entries of a batch waiting its turn grow idle too, and past
    # `reclaim_idle_ms` another copy's reclaimer would take them over while this one still holds them.
    turn = Turn(ctx.redis, stream, group, settings.consumer, min(settings.turn_wait_ms, settings.reclaim_idle_ms // 2))

    # MANUAL: only what the batch handler finished is acknowledged (FastStream would ack the whole batch).
    @router.subscriber(stream=reader, ack_policy=AckPolicy.MANUAL, title=f"{group}:read", message_format=_BodyNotRead)
    async def read(message: RedisBatchStreamMessage) -> None:
        raw = message.raw_message
        ids = [as_text(entry_id) for entry_id in raw["message_ids"]]
        parsed: list[tuple[Model, str]] = []
        left: set[str] = set(ids)  # neither acknowledged nor dead-lettered
        for entry_id, fields in zip(ids, raw["data"], strict=True):
            data = fields.get(data_field)
            if data is None:
                continue  # not livedesk's envelope: left to the reclaimer, whose parser reads other layouts too
            try:
                parsed.append((model.model_validate_json(data), entry_id))
            except ValueError as error:
                await dead_letter(ctx.redis, ctx.keys, stream, group, entry_id, data, error, deliveries=1)
                left.discard(entry_id)
        try:
            done = await handle_batch(parsed, lambda: turn.wait(ids[0]))
        except Exception:
            await turn.park(left)
            raise
        if done:
            await ctx.redis.xack(stream, group, *done)
        await turn.park(left.difference(done))
        if linger_ms and len(ids) < settings.batch_size:
            await asyncio.sleep(linger_ms / 1000)

    router.subscriber(stream=reclaimer, ack_policy=AckPolicy.NACK_ON_ERROR, title=f"{group}:reclaim",
                      dependencies=[_given_up_after(settings.max_deliveries)])(handle_one)


def dead_letter_record(stream: str, group: str, entry_id: bytes | str, body: bytes, error: Exception,
                       deliveries: int, fields: Mapping[str, object] | None = None) -> dict[str, object]:
    """What the `deadletter` stream records of one entry (`schemas.subscriptions.DeadLetter`): where it failed, the
    error, how often it was delivered and the original payload. `fields` are added (`hook_id`, `extra`); they
    cannot replace the record's own."""
    return {**(fields or {}), **{
        "stream": stream,
        "group": group,
        "entry_id": as_text(entry_id),
        "error": f"{type(error).__name__}: {error}",
        "deliveries": deliveries,
        "payload": body.decode("utf-8", errors="replace"),
    }}


async def dead_letter(redis: Redis, keys: Keys, stream: str, group: str, entry_id: bytes | str, body: bytes,
                      error: Exception, deliveries: int, *, fields: Mapping[str, object] | None = None) -> None:
    """Move one entry to the `deadletter` stream with its error and acknowledge it, in one transaction: the entry is
    either still pending or dead-lettered, never lost in between.

    `fields` are added to the record (`DeadLetter` names them: `hook_id`, `extra`); they cannot replace its own."""
    record = dead_letter_record(stream, group, entry_id, body, error, deliveries, fields)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(keys.deadletter, {DATA_FIELD: json.dumps(record)})
        pipe.xack(stream, group, entry_id)
        await pipe.execute()
    log.error("message dead-lettered", **{k: v for k, v in record.items() if k != "payload"})


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
            await dead_letter(self._redis, self._keys, stream, group, entry_id, msg.body, error, deliveries)
            return None

# Bad data: ValueError covers JSON and Unicode decoding errors and pydantic's ValidationError.
_PERMANENT = (PermanentError, ValueError)
