"""The deliverers: one worker per hook reads the hook's queue (group `deliver`) and POSTs each event, signed, until
the receiver takes it or its max age has passed.

Guarantees, per hook:
- Events of one incident go one after another, in version order, across every copy of the notifier and through
  their deaths: an event waits while an earlier one of its incident is still to be sent, held by another worker (a
  dead one's is taken over in time) or not yet queued (`EarlierEvents`). Different incidents go in parallel, up to
  `hook_parallel_incidents` per worker. A slow or dead receiver holds up only its own hook: each hook has its own
  task.
- An entry is acknowledged (and deleted: the queue is a work list) only after the receiver answered 2xx or the entry
  was dead-lettered, so a worker killed mid-delivery loses nothing. A new worker takes over entries left pending by
  a dead one once idle for `reclaim_idle_ms` (XAUTOCLAIM); a live worker keeps the entries it holds fresh (XCLAIM
  with no minimum idle) however long their retries take, so they are not taken from it.
- Receivers see each event at least once and can make it exactly once by the `Idempotency-Key` header.
- Retries follow `services.notifier.policy` until `max_age_s` after the event was queued (one attempt is always
  made); then the entry goes to the `deadletter` stream with its hook id and the last error.
- A queue holds at most `hook_queue_max_len` events: past it, the oldest that no worker has read yet go to the
  `deadletter` stream unsent (a receiver that far behind is down or too slow), so a dead receiver costs bounded
  memory and loses nothing: `livedesk hooks redeliver` sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from schemas import ChangeEvent
from schemas.subscriptions import Delivery, Hook
from services.errors import PermanentError
from services.names import STAGE_INPUTS, Keys
from services.notifier.formats import delivery_id, render
from services.notifier.hooks import HookRegistry, fanned_out_key, unsent_key, unsent_member, unsent_prefix
from services.notifier.policy import Verdict, next_wait_s
from services.notifier.send import Attempt, post
from services.notifier.stage import HOOKS_REFRESH_S
from services.stage import StageContext, dead_letter, dead_letter_record, raise_if_cancelled
from services.wire import DATA_FIELD, as_text, entry_data

log = structlog.get_logger(__name__)

GROUP = "deliver"
MAX_COALESCED = 100  # events in one coalesced payload at most
_REDIS_RETRY_S = 1.0
_READ_BLOCK_MS = 1000
_PENDING_LOOKED_AT = 10_000  # pending entries read at once, at most (a consumer holds far fewer)
_FIRST_WAIT_S = 0.005  # an event behind an earlier one held elsewhere looks again after this, doubling
_LONGEST_WAIT_S = 0.5


# Dead-letter each entry that is still on the queue, acknowledging and deleting it (and its unsent member) with it:
# two workers shedding at once bury each entry once. KEYS: the queue, the deadletter stream, the unsent index. ARGV:
# data field, group, then per entry its id, its dead letter record and its unsent member. Returns how many were
# buried.
_SHED = """
local buried = 0
for i = 3, #ARGV, 3 do
  if #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) > 0 then
    redis.call('XADD', KEYS[2], '*', ARGV[1], ARGV[i + 1])
    redis.call('XACK', KEYS[1], ARGV[2], ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[3], ARGV[i + 2])
    buried = buried + 1
  end
end
return buried
"""
_SHED_CHUNK = 1000  # entries shed in one script call


class QueueOverflowError(PermanentError):
    """A hook's queue was past its cap: its oldest unsent events were dead-lettered without being sent."""

    def __init__(self, hook_id: str, max_len: int) -> None:
        super().__init__(f"hook {hook_id}: queue over {max_len} events, the receiver is too far behind; not sent")


class DeliveryFailed(PermanentError):
    """A delivery that was given up: the hook, the last error and how many attempts were made."""

    def __init__(self, hook_id: str, error: str, attempts: int) -> None:
        super().__init__(f"hook {hook_id}: {error} (after {attempts} attempt{'s' if attempts != 1 else ''})")


@dataclass(frozen=True)
class _Entry:
    entry_id: str
    data: str
    event: ChangeEvent | None  # None: the entry is not a ChangeEvent and is dead-lettered unsent

    @property
    def queued_at(self) -> float:
        return int(self.entry_id.partition("-")[0]) / 1000

    @property
    def version(self) -> int:
        return self.event.version if self.event else 0

    @property
    def unsent_member(self) -> str:
        """Its member of the hook's `unsent_key` (one no event has is never there)."""
        return unsent_member(self.event.incident_id, self.event.version, self.entry_id) if self.event else ""


# A lane: one incident's entries held by a worker, as a heap by version (an entry taken over from a dead worker may
# come after later ones of its incident were read, and goes first all the same).
_Lane = list[tuple[int, str, _Entry]]


def _put_back(lane: _Lane, entries: Sequence[_Entry]) -> None:
    for entry in entries:
        heapq.heappush(lane, (entry.version, entry.entry_id, entry))


class EarlierEvents:
    """Whether an earlier event of an incident is still to be sent to a hook, by any copy of the notifier: an
    earlier change not yet queued for the hook (pending on `changes` for group `notifier`, not yet fanned out to
    it), or one queued and not yet delivered (`unsent_key`). Asked in that order, nothing slips between the two: the
    fan-out indexes an event as unsent before its change is acknowledged."""

    def __init__(self, redis: Redis, keys: Keys, hook_id: str) -> None:
        self._redis = redis
        self._changes, self._changes_group = keys.stream(STAGE_INPUTS["notifier"][0]), STAGE_INPUTS["notifier"][1]
        self._fanned_out = fanned_out_key(keys, hook_id)
        self._queue = keys.hook_queue(hook_id)
        self._unsent = unsent_key(keys, hook_id)
        self._known: dict[str, tuple[str, int] | None] = {}  # pending change: (incident, version); None: no event

    async def before(self, event: ChangeEvent, batch: Collection[str] = ()) -> bool:
        """Whether an event of `event`'s incident with a lower version is still to be sent, other than the queue
        entries `batch` (those a coalescing delivery sends together with it)."""
        return await self._not_yet_queued(event) or await self._queued_unsent(event, batch)

    async def _not_yet_queued(self, event: ChangeEvent) -> bool:
        try:
            rows: Any = await self._redis.xpending_range(self._changes, self._changes_group, "-", "+",
                                                         _PENDING_LOOKED_AT)
        except ResponseError as error:
            if "NOGROUP" in str(error):
                return False  # no fan-out has run yet: nothing is on its way
            raise
        pending = [as_text(row["message_id"]) for row in rows]
        unknown = [entry_id for entry_id in pending if entry_id not in self._known]
        if unknown:
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry_id in unknown:
                    pipe.xrange(self._changes, entry_id, entry_id)
                replies = await pipe.execute()
            for entry_id, found in zip(unknown, replies, strict=True):
                # None for an entry gone meanwhile, or holding no event.
                self._known[entry_id] = next((incident_version(data) for _, data in entry_data(found)), None)
        self._known = {entry_id: self._known[entry_id] for entry_id in pending}  # forget what is no longer pending
        earlier = [entry_id for entry_id, known in self._known.items()
                   if known and known[0] == event.incident_id and known[1] < event.version]
        if not earlier:
            return False
        queued = await self._redis.zmscore(self._fanned_out, earlier)
        return any(score is None for score in queued)

    async def _queued_unsent(self, event: ChangeEvent, batch: Collection[str]) -> bool:
        low, high = f"[{unsent_prefix(event.incident_id, 0)}", f"({unsent_prefix(event.incident_id, event.version)}"
        found: Any = await self._redis.zrangebylex(self._unsent, low, high)
        for member in map(as_text, found):
            if (entry_id := member.rpartition("\x00")[2]) in batch:
                continue
            if await self._redis.xrange(self._queue, entry_id, entry_id):
                return True
            await self._redis.zrem(self._unsent, member)  # its entry left the queue some other way (a cap, a trim)
        return False


def incident_version(payload: str) -> tuple[str, int] | None:
    """The incident and version of the event `payload` holds; None when it holds no event."""
    try:
        document = json.loads(payload)
        return (str(document["incident_id"]), int(document["version"])) if isinstance(document, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


async def ensure_queue_group(redis: Redis, queue: str) -> None:
    """Create the `deliver` group at the start of a hook's queue (entries queued before any worker ran count)."""
    try:
        await redis.xgroup_create(queue, GROUP, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


class HookWorker:
    """Delivers one hook's queue until cancelled. `hook` may be replaced while it runs (an edited hook): each new
    delivery uses the hook as it is then."""

    def __init__(self, ctx: StageContext, client: httpx.AsyncClient, hook: Hook) -> None:
        self.hook = hook
        self._ctx = ctx
        self._client = client
        self._queue = ctx.keys.hook_queue(hook.hook_id)
        self._unsent = unsent_key(ctx.keys, hook.hook_id)
        self._consumer = ctx.settings.consumer
        self._in_hand: set[str] = set()
        self._lanes: dict[str, _Lane] = {}
        self._earlier = EarlierEvents(ctx.redis, ctx.keys, hook.hook_id)
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(ctx.settings.hook_parallel_incidents)
        # Read no further ahead than this: entries held are pending on this consumer, stranded for a while if it dies.
        self._ahead = max(ctx.settings.batch_size, 10 * ctx.settings.hook_parallel_incidents)
        self._rng = random.Random()

    async def run(self) -> None:
        settings = self._ctx.settings
        keeper = asyncio.create_task(self._keep_claimed(), name=f"hook:{self.hook.hook_id}:keep")
        next_reclaim = 0.0
        own_pending = True
        try:
            while True:
                raise_if_cancelled()
                try:
                    entries: list[_Entry] = []
                    if own_pending:  # a restarted process with the same consumer name resumes its own first
                        await ensure_queue_group(self._ctx.redis, self._queue)
                        entries += await self._read("0")
                        own_pending = False
                    if time.monotonic() >= next_reclaim:
                        entries += await self._reclaim()
                        await self._shed_overflow()
                        next_reclaim = time.monotonic() + settings.reclaim_idle_ms / 2000
                    if len(self._in_hand) < self._ahead:
                        entries += await self._read(">")
                    else:
                        await asyncio.sleep(0.05)
                    self._take(entries)
                except RedisError as error:
                    log.warning("hook queue unreadable; retrying", hook_id=self.hook.hook_id, error=str(error))
                    own_pending = "NOGROUP" in str(error)  # the queue was deleted and made again: recreate it
                    await asyncio.sleep(_REDIS_RETRY_S)
        finally:
            keeper.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(keeper, *self._tasks, return_exceptions=True)

    async def _read(self, from_id: str) -> list[_Entry]:
        block = _READ_BLOCK_MS if from_id == ">" else None
        rows: Any = await self._ctx.redis.xreadgroup(GROUP, self._consumer, {self._queue: from_id},
                                                     count=self._ahead, block=block)
        return [entry for _, found in rows or [] for entry in self._parse(found)]

    async def _reclaim(self) -> list[_Entry]:
        """Entries of dead consumers idle past `reclaim_idle_ms`, now this worker's."""
        reply: Any = await self._ctx.redis.xautoclaim(self._queue, GROUP, self._consumer,
                                                      min_idle_time=self._ctx.settings.reclaim_idle_ms,
                                                      start_id="0-0", count=self._ahead)
        claimed = [entry for entry in self._parse(reply[1]) if entry.entry_id not in self._in_hand]
        if claimed:
            log.info("hook entries reclaimed", hook_id=self.hook.hook_id, entries=len(claimed))
        return claimed

    async def _shed_overflow(self) -> int:
        """Dead-letter the oldest unread entries past `hook_queue_max_len`; returns how many."""
        redis, max_len = self._ctx.redis, self._ctx.settings.hook_queue_max_len
        excess = await redis.xlen(self._queue) - max_len
        if excess <= 0:
            return 0
        groups: Any = await redis.xinfo_groups(self._queue)
        read_up_to = next((as_text(g["last-delivered-id"]) for g in groups if as_text(g["name"]) == GROUP), "0-0")
        rows: Any = await redis.xrange(self._queue, min=f"({read_up_to}", max="+", count=min(excess, _SHED_CHUNK))
        error = QueueOverflowError(self.hook.hook_id, max_len)
        args: list[str] = [DATA_FIELD, GROUP]
        for entry in self._parse(rows):
            record = dead_letter_record(self._queue, GROUP, entry.entry_id, entry.data.encode(), error, deliveries=0,
                                        fields={"hook_id": self.hook.hook_id})
            args += [entry.entry_id, json.dumps(record), entry.unsent_member]
        script_keys = [self._queue, self._ctx.keys.deadletter, self._unsent]
        buried = int(await redis.register_script(_SHED)(keys=script_keys, args=args)) if rows else 0
        if buried:
            log.warning("hook queue over its cap: oldest unsent events dead-lettered", hook_id=self.hook.hook_id,
                        events=buried, max_len=max_len)
        return buried

    def _parse(self, rows: Any) -> list[_Entry]:
        entries = []
        for entry_id, data in entry_data([(i, f) for i, f in rows if f]):
            try:
                event: ChangeEvent | None = ChangeEvent.model_validate_json(data)
            except ValueError:
                event = None
            entries.append(_Entry(entry_id, data, event))
        return entries

    def _take(self, entries: Sequence[_Entry]) -> None:
        """Hand each entry not yet held to its incident's lane, starting the lane if it is idle."""
        for entry in entries:
            if entry.entry_id in self._in_hand:
                continue
            self._in_hand.add(entry.entry_id)
            incident_id = entry.event.incident_id if entry.event else ""
            lane = self._lanes.get(incident_id)
            if lane is None:
                lane = self._lanes[incident_id] = []
                task = asyncio.create_task(self._run_lane(incident_id, lane), name=f"hook:{self.hook.hook_id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            _put_back(lane, [entry])

    async def _run_lane(self, incident_id: str, lane: _Lane) -> None:
        """Deliver one incident's entries in version order, each once no earlier one is still to be sent (see
        `EarlierEvents`); the lane ends when it has nothing left."""
        batch: list[_Entry] = []
        wait_s = _FIRST_WAIT_S
        try:
            while lane:
                hook = self.hook
                batch = [first := heapq.heappop(lane)[-1]]
                if first.event is None:
                    await self._bury(hook, batch, "not a ChangeEvent", attempts=0)
                    continue
                if await self._earlier.before(first.event):
                    # Still to go: an earlier event another copy holds (a dead one's is taken over in time), or one
                    # not yet queued. One this worker takes over joins the lane, and comes out first.
                    _put_back(lane, batch)
                    batch = []
                    await asyncio.sleep(wait_s)
                    wait_s = min(wait_s * 2, _LONGEST_WAIT_S)
                    continue
                wait_s = _FIRST_WAIT_S
                if hook.coalesce_s > 0:
                    # The window runs from when the first event was queued, so a restart does not stretch it.
                    await asyncio.sleep(max(0.0, first.queued_at + hook.coalesce_s - time.time()))
                    if lane and lane[0][0] < first.version:  # taken over meanwhile, and earlier: it goes first
                        _put_back(lane, batch)
                        batch = []
                        continue
                    while lane and len(batch) < MAX_COALESCED:
                        following = lane[0][-1]
                        if following.event is not None and await self._earlier.before(
                                following.event, {entry.entry_id for entry in batch}):
                            break  # an event between the batch and this one is still to go: it waits its turn
                        batch.append(heapq.heappop(lane)[-1])
                    bad = [entry for entry in batch if entry.event is None]
                    if bad:
                        await self._bury(hook, bad, "not a ChangeEvent", attempts=0)
                        batch = [entry for entry in batch if entry.event is not None]
                async with self._slots:
                    await self._deliver(hook, batch)
                batch = []
            del self._lanes[incident_id]  # no await since the lane was found empty: nothing was added meanwhile
        except Exception as error:
            # Redis failed under the lane: its entries stay pending and are reclaimed (by this worker too) later.
            dropped = [*batch, *(entry for _, _, entry in lane)]
            lane.clear()
            self._in_hand.difference_update(entry.entry_id for entry in dropped)
            self._lanes.pop(incident_id, None)
            log.warning("hook delivery interrupted; entries left pending", hook_id=self.hook.hook_id,
                        incident_id=incident_id, entries=len(dropped), error=f"{type(error).__name__}: {error}")

    async def _deliver(self, hook: Hook, batch: list[_Entry]) -> None:
        events = [entry.event for entry in batch if entry.event is not None]
        body, key = render(hook, events), delivery_id(events)
        settings = self._ctx.settings
        deadline = batch[0].queued_at + hook.max_age_s
        attempt = 0
        while True:
            attempt += 1
            result = await post(self._client, hook, body, key)
            wait_s = None
            if result.verdict is Verdict.retry:
                wait_s = next_wait_s(attempt, result.asked_wait_s, settings.hook_retry_base_s,
                                     settings.hook_retry_max_s, self._rng)
                if time.time() + wait_s > deadline:
                    wait_s = None  # past the hook's max age: give up now rather than wait for nothing
            await self._record(hook, events, key, attempt, result)
            (log.info if result.ok else log.warning)(
                    "webhook delivered" if result.ok else "webhook delivery failed",
                    hook_id=hook.hook_id, delivery_id=key, incident_id=events[0].incident_id, events=len(events),
                    attempt=attempt, status=result.status, error=result.error, elapsed_ms=result.elapsed_ms,
                    retry_in_s=None if wait_s is None else round(wait_s, 3))
            if result.ok:
                await self._finish(batch)
                return
            if wait_s is None:
                await self._bury(hook, batch, result.error or f"HTTP {result.status}", attempts=attempt)
                return
            await asyncio.sleep(wait_s)

    async def _record(self, hook: Hook, events: list[ChangeEvent], key: str, attempt: int, result: Attempt) -> None:
        record = Delivery(hook_id=hook.hook_id, delivery_id=key, event_ids=[e.event_id for e in events],
                          incident_id=events[0].incident_id, attempt=attempt, ok=result.ok, status=result.status,
                          error=result.error, at=datetime.now(UTC), elapsed_ms=result.elapsed_ms)
        await self._ctx.redis.xadd(self._ctx.keys.deliveries, {DATA_FIELD: record.model_dump_json()},
                                   maxlen=self._ctx.settings.deliveries_kept, approximate=True)

    async def _finish(self, batch: list[_Entry]) -> None:
        ids = [entry.entry_id for entry in batch]
        async with self._ctx.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._queue, GROUP, *ids)
            pipe.xdel(self._queue, *ids)
            pipe.zrem(self._unsent, *(entry.unsent_member for entry in batch))
            await pipe.execute()
        self._in_hand.difference_update(ids)

    async def _bury(self, hook: Hook, batch: list[_Entry], error: str, attempts: int) -> None:
        """Dead-letter each entry of `batch` with the hook id and `error`, then forget it."""
        failure = DeliveryFailed(hook.hook_id, error, attempts)
        for entry in batch:
            # Unindexed first: were the worker to die between dead-lettering (an XACK) and the XDEL, an entry still
            # on the queue and indexed as unsent would hold its incident's later events back for good.
            await self._ctx.redis.zrem(self._unsent, entry.unsent_member)
            await dead_letter(self._ctx.redis, self._ctx.keys, self._queue, GROUP, entry.entry_id,
                              entry.data.encode(), failure, deliveries=attempts, fields={"hook_id": hook.hook_id})
            await self._ctx.redis.xdel(self._queue, entry.entry_id)
            self._in_hand.discard(entry.entry_id)

    async def _keep_claimed(self) -> None:
        """Reset the idle time of every entry held, often enough that no other worker's reclaimer takes it. One that
        was taken all the same (this process stalled past `reclaim_idle_ms`: a pause, a busy machine) is let go, not
        taken back: its new holder delivers it, and two workers claiming it in turn would both deliver it."""
        every_s = max(self._ctx.settings.reclaim_idle_ms / 3000, 0.05)
        while True:
            await asyncio.sleep(every_s)
            raise_if_cancelled()  # the claims below swallow Redis errors, and a cancellation must not hide among them
            if not self._in_hand:
                continue
            with contextlib.suppress(RedisError):
                rows: Any = await self._ctx.redis.xpending_range(self._queue, GROUP, "-", "+", _PENDING_LOOKED_AT,
                                                                 consumername=self._consumer)
                owned = {as_text(row["message_id"]) for row in rows}
                self._let_go(self._in_hand - owned)  # taken over, or just finished
                held: list[Any] = list(self._in_hand)
                for start in range(0, len(held), 500):
                    await self._ctx.redis.xclaim(self._queue, GROUP, self._consumer, 0, held[start:start + 500],
                                                 justid=True)

    def _let_go(self, entry_ids: set[str]) -> None:
        """Forget `entry_ids`: those waiting in a lane are not delivered by this worker."""
        for lane in self._lanes.values():
            if any(entry_id in entry_ids for _, entry_id, _ in lane):
                lane[:] = [item for item in lane if item[1] not in entry_ids]
                heapq.heapify(lane)
        self._in_hand.difference_update(entry_ids)


class Deliverers:
    """Runs one `HookWorker` per hook of the registry until cancelled, following hooks as they are added, edited
    and removed (the registry is read every `refresh_s`). `configured` hooks (`LIVEDESK_HOOKS_FILE`, see
    `services.notifier.hooks.load_hooks_file`) are added to the registry when it starts."""

    def __init__(self, ctx: StageContext, client: httpx.AsyncClient, configured: Sequence[Hook] = (),
                 refresh_s: float = HOOKS_REFRESH_S) -> None:
        self._ctx = ctx
        self._client = client
        self._configured = list(configured)
        self._refresh_s = refresh_s
        self._workers: dict[str, tuple[HookWorker, asyncio.Task[None]]] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # workers of removed hooks, awaited before `run` returns

    async def run(self) -> None:
        registry = HookRegistry(self._ctx.redis, self._ctx.keys)
        await registry.upsert(self._configured)
        log.info("deliverers started", configured_hooks=len(self._configured), consumer=self._ctx.settings.consumer)
        reported: set[str] = set()
        try:
            while True:
                raise_if_cancelled()
                try:
                    hooks, broken = await registry.read()
                except RedisError as error:
                    log.warning("hook registry unreadable; retrying", error=str(error))
                else:
                    for hook_id in set(broken) - reported:
                        log.error("hook skipped: its stored rule does not parse", hook_id=hook_id)
                    reported = set(broken)
                    self._follow(hooks)
                await asyncio.sleep(self._refresh_s)
        finally:
            tasks = [task for _, task in self._workers.values()] + list(self._stopping)
            for task in tasks:
                task.cancel()
            # Every worker is finished before the caller closes the HTTP client and Redis they use.
            await asyncio.gather(*tasks, return_exceptions=True)
            self._workers.clear()
            self._stopping.clear()

    def _follow(self, hooks: list[Hook]) -> None:
        wanted = {hook.hook_id: hook for hook in hooks}
        for hook_id in [h for h in self._workers if h not in wanted]:
            stopped = self._workers.pop(hook_id)[1]
            stopped.cancel()
            self._stopping.add(stopped)
            stopped.add_done_callback(self._stopping.discard)
            log.info("hook removed; its worker stopped", hook_id=hook_id)
        for hook_id, hook in wanted.items():
            running = self._workers.get(hook_id)
            if running is not None and not running[1].done():
                running[0].hook = hook
                continue
            if running is not None and not running[1].cancelled() and (failure := running[1].exception()):
                log.error("hook worker failed; restarting it", hook_id=hook_id, error=f"{type(failure).__name__}: "
                          f"{failure}")
            worker = HookWorker(self._ctx, self._client, hook)
            self._workers[hook_id] = (worker, asyncio.create_task(worker.run(), name=f"hook:{hook_id}"))
