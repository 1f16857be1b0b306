"""`/metrics` for Prometheus: what the other processes record in Redis, read when scraped, and latency histograms
built by tailing the `changes` and `deliveries` streams.

The pipeline's work happens in other processes, so nothing here counts it as it happens: each scrape first reads
Redis (`ConsoleMetrics.refresh`, async) into a snapshot that a custom collector then reports. prometheus-client's
collectors are synchronous, hence the two steps. The streams are tailed from where the previous scrape stopped, so
the counters and histograms over them cover every entry this process has seen since it started (the whole retained
stream on the first scrape).

Polls are counted by the pollers as they finish (`Keys.poll_stats`): `livedesk_polls_total` and its 304 share are
counters over every poll; the `livedesk_feeds_*` gauges describe each feed's last poll.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas import ChangeEvent
from schemas.subscriptions import Delivery
from services.groups import backlog
from services.names import STAGE_INPUTS, Keys
from services.wire import as_text, entry_data

log = structlog.get_logger(__name__)

_TAIL_CHUNK = 1000
_TAIL_MAX = 20_000  # entries read per stream per scrape: a huge backlog is caught up over several scrapes
_EVENT_TIMES_KEPT = 50_000  # event id → (stream time, reported_at), to time deliveries (which name events only)
_SLOW = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_FAST = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


@dataclass
class Snapshot:
    """What one scrape read from Redis."""

    feeds_registered: int = 0
    feeds_polled: int = 0
    feeds_not_modified: int = 0
    feed_errors: int = 0
    polls: dict[str, int] = field(default_factory=dict)  # `Keys.poll_stats`: polls, not_modified, failed
    verdicts: dict[str, int] = field(default_factory=dict)
    incidents: int = 0
    backlog: dict[str, int] = field(default_factory=dict)
    lag_s: dict[str, float] = field(default_factory=dict)
    dead_letters: int = 0


class SnapshotCollector(Collector):
    """Reports the latest `Snapshot`."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        for name, doc, value in (
            ("livedesk_feeds_registered", "Feeds in the registry.", s.feeds_registered),
            ("livedesk_feeds_polled", "Feeds polled at least once.", s.feeds_polled),
            ("livedesk_feeds_not_modified", "Feeds whose last poll was answered 304 Not Modified.",
             s.feeds_not_modified),
            ("livedesk_feeds_not_modified_ratio", "Share of polled feeds whose last poll was answered 304.",
             s.feeds_not_modified / s.feeds_polled if s.feeds_polled else 0.0),
            ("livedesk_polls_not_modified_ratio", "Share of all polls answered 304 Not Modified.",
             s.polls.get("not_modified", 0) / s.polls["polls"] if s.polls.get("polls") else 0.0),
            ("livedesk_feed_errors", "Poll errors recorded on the feeds (their error_count, summed).", s.feed_errors),
            ("livedesk_incidents", "Incidents in the incident index.", s.incidents),
            ("livedesk_dead_letters", "Entries on the deadletter stream.", s.dead_letters),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        for name, doc, stat in (
            ("livedesk_polls", "Feed polls finished, whatever their outcome.", "polls"),
            ("livedesk_polls_not_modified", "Feed polls answered 304 Not Modified.", "not_modified"),
            ("livedesk_polls_failed", "Feed polls that failed (transfer, HTTP or parse error).", "failed"),
        ):
            yield CounterMetricFamily(name, doc, value=s.polls.get(stat, 0))
        verdicts = CounterMetricFamily("livedesk_dedup_updates", "Raw entries judged by dedup, per verdict "
                                       "(`repeat`: exact repeats, dropped).", labels=["verdict"])
        for verdict, count in sorted(s.verdicts.items()):
            verdicts.add_metric([verdict], count)
        yield verdicts
        lag = GaugeMetricFamily("livedesk_stage_backlog", "Entries a stage has not yet read or acknowledged.",
                                labels=["stage"])
        for stage, count in sorted(s.backlog.items()):
            lag.add_metric([stage], count)
        yield lag
        behind = GaugeMetricFamily("livedesk_stage_lag_seconds", "Age of the oldest entry a stage has not finished "
                                   "(not yet read, or read and not acknowledged); 0 when it is caught up.",
                                   labels=["stage"])
        for stage, seconds in sorted(s.lag_s.items()):
            behind.add_metric([stage], seconds)
        yield behind


def _stream_time(entry_id: str) -> datetime:
    return datetime.fromtimestamp(int(entry_id.partition("-")[0]) / 1000, tz=UTC)


async def stage_lag_s(redis: Redis, keys: Keys, now: datetime) -> dict[str, float]:
    """Per consuming stage, how old its oldest unfinished entry is: the oldest still pending in its group, or the
    first one after the last it was given; 0 when there is none (or no stream or group yet)."""
    lags: dict[str, float] = {}
    for stage, (name, group) in STAGE_INPUTS.items():
        stream = keys.stream(name)
        lags[stage] = 0.0
        try:
            infos = await redis.xinfo_groups(stream)
        except ResponseError:
            continue  # no stream yet
        info = next((i for i in infos if as_text(i["name"]) == group), None)
        if info is None:
            continue
        oldest: list[str] = []
        if int(info["pending"]):
            summary = await redis.xpending(stream, group)
            oldest.append(as_text(summary["min"]))
        unread = await redis.xrange(stream, min=f"({as_text(info['last-delivered-id'])}", count=1)
        if unread:
            oldest.append(as_text(unread[0][0]))
        if oldest:
            first = min(oldest, key=lambda entry_id: tuple(int(part) for part in entry_id.split("-")))
            lags[stage] = max(0.0, (now - _stream_time(first)).total_seconds())
    return lags


class ConsoleMetrics:
    """The console's metrics registry; `await refresh()` before each `render()`."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._lock = asyncio.Lock()
        self._after = {keys.changes: "-", keys.deliveries: "-"}
        self._event_times: OrderedDict[str, tuple[datetime, datetime]] = OrderedDict()
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot = SnapshotCollector()
        self.registry.register(self._snapshot)
        r = self.registry
        self._events = Counter("livedesk_change_events", "Change events on the changes stream, per type.", ["type"],
                               registry=r)
        self._attempts = Counter("livedesk_delivery_attempts", "Webhook delivery attempts, per hook.", ["hook"],
                                 registry=r)
        self._failures = Counter("livedesk_delivery_failures", "Failed webhook delivery attempts, per hook.",
                                 ["hook"], registry=r)
        self._published_fetched = Histogram(
            "livedesk_publication_to_fetch_seconds", "From an event's evidence being published (reported_at) to "
            "livedesk fetching it (detected_at).", buckets=_SLOW, registry=r)
        self._fetched_told = Histogram(
            "livedesk_fetch_to_event_seconds", "From fetching the evidence (detected_at) to its change event being "
            "on the changes stream (the entry id's time).", buckets=_FAST, registry=r)
        self._told_delivered = Histogram(
            "livedesk_event_to_delivery_seconds", "From a change event being on the stream to a webhook receiving "
            "it (a successful delivery's time).", buckets=_FAST, registry=r)
        self._published_delivered = Histogram(
            "livedesk_publication_to_delivery_seconds", "End to end: from an event's evidence being published "
            "(reported_at) to a webhook receiving the event.", buckets=_SLOW, registry=r)

    async def refresh(self) -> None:
        """Read Redis: the snapshot, and the streams' entries since the previous refresh. One at a time, so two
        concurrent scrapes never count an entry twice."""
        async with self._lock:
            self._snapshot.snapshot = await self._read_snapshot()
            for entry_id, data in await self._tail(self._keys.changes):
                self._count_event(entry_id, data)
            for entry_id, data in await self._tail(self._keys.deliveries):
                self._count_delivery(entry_id, data)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def _read_snapshot(self) -> Snapshot:
        redis, keys = self._redis, self._keys
        feed_ids = [as_text(feed_id) for feed_id in await redis.hkeys(keys.feeds)]
        async with redis.pipeline(transaction=False) as pipe:
            for feed_id in feed_ids:
                pipe.hmget(keys.feed_state(feed_id), ["last_polled_at", "last_status", "error_count"])
            pipe.hgetall(keys.poll_stats)
            pipe.hgetall(keys.dedup_stats)
            pipe.zcard(keys.incident_index)
            pipe.xlen(keys.deadletter)
            *states, polls, verdicts, incidents, dead = await pipe.execute()
        polled = [state for state in states if state[0]]
        return Snapshot(
            feeds_registered=len(feed_ids),
            feeds_polled=len(polled),
            feeds_not_modified=sum(1 for state in polled if state[1] and as_text(state[1]) == "304"),
            feed_errors=sum(int(state[2] or 0) for state in states),
            polls={as_text(name): int(count) for name, count in polls.items()},
            verdicts={as_text(verdict): int(count) for verdict, count in verdicts.items()},
            incidents=int(incidents),
            backlog=await backlog(redis, keys),
            lag_s=await stage_lag_s(redis, keys, datetime.now(UTC)),
            dead_letters=int(dead),
        )

    async def _tail(self, stream: str) -> list[tuple[str, str]]:
        read: list[tuple[str, str]] = []
        while len(read) < _TAIL_MAX:
            after = self._after[stream]
            rows = entry_data(await self._redis.xrange(stream, min="-" if after == "-" else f"({after}",
                                                       count=_TAIL_CHUNK))
            if not rows:
                break
            read += rows
            self._after[stream] = rows[-1][0]
        return read

    def _count_event(self, entry_id: str, data: str) -> None:
        try:
            event = ChangeEvent.model_validate_json(data)
        except ValidationError:
            return  # the notifier dead-letters it; nothing to time
        told = _stream_time(entry_id)
        self._events.labels(type=event.type.value).inc()
        self._published_fetched.observe(max(0.0, (event.detected_at - event.reported_at).total_seconds()))
        self._fetched_told.observe(max(0.0, (told - event.detected_at).total_seconds()))
        self._event_times[event.event_id] = (told, event.reported_at)
        if len(self._event_times) > _EVENT_TIMES_KEPT:
            self._event_times.popitem(last=False)

    def _count_delivery(self, entry_id: str, data: str) -> None:
        try:
            delivery = Delivery.model_validate_json(data)
        except ValidationError:
            log.warning("delivery record not readable", entry_id=entry_id)
            return
        self._attempts.labels(hook=delivery.hook_id).inc()
        if not delivery.ok:
            self._failures.labels(hook=delivery.hook_id).inc()
            return
        for event_id in delivery.event_ids:
            times = self._event_times.get(event_id)
            if times is not None:
                told, published = times
                self._told_delivered.observe(max(0.0, (delivery.at - told).total_seconds()))
                self._published_delivered.observe(max(0.0, (delivery.at - published).total_seconds()))
