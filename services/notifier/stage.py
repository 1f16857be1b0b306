"""The notifier's fan-out router: consumes `changes` (group `notifier`) and queues each event on the stream of every
hook whose filter it passes (`Keys.hook_queue`), then acknowledges it. It never waits on HTTP: the deliverers
(`services.notifier.deliver`) read the queues, so a slow receiver holds up only its own hook.

Queuing is idempotent: a change read twice (reclaimed, or retried after a crash between queuing and the XACK) is
queued once per hook, by a marker per hook and change entry written in the same script as the queue entry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from faststream.redis import RedisRouter
from faststream.redis.annotations import RedisStreamMessage
from redis.asyncio import Redis

from schemas import ChangeEvent, Incident
from schemas.subscriptions import Hook
from services.filters import matches
from services.names import STAGE_INPUTS, Keys
from services.notifier.hooks import HookRegistry, fanned_out_key, unsent_key, unsent_prefix
from services.stage import InTurn, StageContext, subscribe_stream_batches
from services.tracker.store import IncidentStore
from services.wire import DATA_FIELD, as_text

log = structlog.get_logger(__name__)

# How long a notifier trusts its copy of the hooks: a hook added by `livedesk hooks add` is matched this soon.
HOOKS_REFRESH_S = 2.0

# Per matching hook: queue the event unless this change entry was queued for the hook before, and index it as unsent
# (`unsent_key`: the deliverers keep an incident's events in version order by it); forget markers set longer ago than
# the retention of `changes` (their entry has been trimmed and can no longer be read again). A hook removed since it
# was matched gets nothing, so its queue is not made again.
# KEYS: hooks hash, then (marker set, queue, unsent index) per hook. ARGV: change entry id, now (ms), forget before
# (ms), data field, event JSON, unsent member prefix (`unsent_prefix`), then the hook ids.
_FAN_OUT = """
local queued = 0
for i = 2, #KEYS, 3 do
  local hook_id = ARGV[6 + (i + 1) / 3]
  if redis.call('HEXISTS', KEYS[1], hook_id) == 1 then
    if redis.call('ZADD', KEYS[i], 'NX', ARGV[2], ARGV[1]) == 1 then
      local entry_id = redis.call('XADD', KEYS[i + 1], '*', ARGV[4], ARGV[5])
      redis.call('ZADD', KEYS[i + 2], 0, ARGV[6] .. entry_id)
      queued = queued + 1
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[3])
  end
end
return queued
"""


class HookCache:
    """The registry's hooks, read again when older than `HOOKS_REFRESH_S`."""

    def __init__(self, redis: Redis, keys: Keys, refresh_s: float = HOOKS_REFRESH_S) -> None:
        self._registry = HookRegistry(redis, keys)
        self._refresh_s = refresh_s
        self._hooks: list[Hook] = []
        self._read_at = float("-inf")

    async def hooks(self) -> list[Hook]:
        if time.monotonic() - self._read_at >= self._refresh_s:
            self._hooks = await self._registry.all()
            self._read_at = time.monotonic()
        return self._hooks


async def fan_out(redis: Redis, keys: Keys, hooks: Sequence[Hook], changes: Sequence[tuple[ChangeEvent, str]],
                  retention_s: int) -> int:
    """Queue each of `changes` (event, `changes` entry id) for every hook it passes; returns how many entries were
    queued (an entry already queued for a hook is not queued again). Incidents are loaded only for hooks whose filter
    needs them."""
    if not hooks or not changes:
        return 0
    incidents: dict[str, Incident] = {}
    if any(hook.where.needs_incident for hook in hooks):
        loaded = await IncidentStore(redis, keys).load({event.incident_id for event, _ in changes})
        incidents = {incident_id: incident for incident_id, (incident, _) in loaded.items()}
    now_ms = int(time.time() * 1000)
    forget_before = now_ms - _retention_ms(retention_s)
    async with redis.pipeline(transaction=False) as pipe:
        calls = 0
        for event, entry_id in changes:
            chosen = [h for h in hooks if matches(h.where, event, incidents.get(event.incident_id))]
            if not chosen:
                continue
            script_keys = [keys.hooks]
            for hook in chosen:
                script_keys += [fanned_out_key(keys, hook.hook_id), keys.hook_queue(hook.hook_id),
                                unsent_key(keys, hook.hook_id)]
            args: list[str | int] = [entry_id, now_ms, forget_before, DATA_FIELD, event.model_dump_json(),
                                     unsent_prefix(event.incident_id, event.version), *(h.hook_id for h in chosen)]
            # EVAL, not a registered script: a cluster's pipelines refuse EVALSHA (the script is cached by the server
            # all the same; only its text travels each time).
            pipe.eval(_FAN_OUT, len(script_keys), *script_keys, *args)
            calls += 1
        results = await pipe.execute() if calls else []
    return sum(int(n) for n in results)


def _retention_ms(retention_s: int) -> int:
    # Twice the stream's retention: trimming waits for every group, so an entry can outlive its retention a little.
    return 2 * retention_s * 1000


def build_router(ctx: StageContext) -> RedisRouter:
    """The notifier's fan-out router (group `notifier` on `changes`). A factory: names depend on the key prefix."""
    router = RedisRouter()
    stream, group = STAGE_INPUTS["notifier"]
    cache = HookCache(ctx.redis, ctx.keys)
    retention_s = ctx.settings.stream_retention_s

    async def queue_batch(batch: list[tuple[ChangeEvent, str]], in_turn: InTurn) -> list[str]:
        hooks = await cache.hooks()
        await in_turn()  # a hook's queue is delivered in order: it is filled in the order of `changes`
        queued = await fan_out(ctx.redis, ctx.keys, hooks, batch, retention_s)
        log.debug("changes fanned out", changes=len(batch), queued=queued)
        return [entry_id for _, entry_id in batch]

    async def queue_one(event: ChangeEvent, message: RedisStreamMessage) -> None:
        ids = message.raw_message.get("message_ids") or []
        entry_id = as_text(ids[0]) if ids else f"{int(time.time() * 1000)}-0"
        queued = await fan_out(ctx.redis, ctx.keys, await cache.hooks(), [(event, entry_id)], retention_s)
        log.info("change fanned out", event_id=event.event_id, incident_id=event.incident_id, queued=queued)

    # Changes come one at a time while the tracker is busy: a moment's wait lets the fan-out take them in batches.
    subscribe_stream_batches(router, ctx, ctx.keys.stream(stream), group, ChangeEvent, queue_batch, queue_one,
                             linger_ms=ctx.settings.notifier_batch_wait_ms)
    return router
