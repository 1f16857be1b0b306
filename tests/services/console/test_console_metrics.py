"""`/metrics` for Prometheus: every family the console promises, moving with what the real stages do."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.cli import DEMO_ARCHIVE
from services.replay import replay
from services.settings import Settings
from services.stage import StageContext
from tests.services.console.conftest import QUICK, ROOT, Notified, console_at, polled_feeds
from tests.support.pipeline import ArchivePlayer

pytestmark = pytest.mark.redis

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILIES = {
    "livedesk_feeds_registered", "livedesk_feeds_polled", "livedesk_feeds_not_modified",
    "livedesk_feeds_not_modified_ratio", "livedesk_polls", "livedesk_polls_not_modified", "livedesk_polls_failed",
    "livedesk_polls_not_modified_ratio", "livedesk_feed_errors", "livedesk_incidents", "livedesk_dead_letters",
    "livedesk_dedup_updates", "livedesk_stage_backlog", "livedesk_stage_lag_seconds", "livedesk_change_events",
    "livedesk_delivery_attempts", "livedesk_delivery_failures", "livedesk_publication_to_fetch_seconds",
    "livedesk_fetch_to_event_seconds", "livedesk_event_to_delivery_seconds",
    "livedesk_publication_to_delivery_seconds",
}


async def scrape(client: httpx.AsyncClient, base: str) -> tuple[set[str], Samples]:
    """The family names and every sample (name and labels → value) of one scrape."""
    answer = await client.get(f"{base}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(answer.text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_the_pipeline(settings: Settings, redis: Redis, redis_url: str) -> None:
    """Every promised family is there from the start; after a replay the incidents, dedup verdicts, events per type
    and the publication → fetch → event histograms count exactly what the stages did, a second scrape counts
    nothing twice, and raw entries no stage has read show as backlog and lag."""
    async with console_at(settings, redis, **QUICK) as (base, _), httpx.AsyncClient(timeout=10) as client:
        names, before = await scrape(client, base)
        assert names >= FAMILIES
        assert value(before, "livedesk_incidents") == 0
        assert value(before, "livedesk_fetch_to_event_seconds_count") == 0

        result = await replay(DEMO_ARCHIVE, settings, redis_url, key_prefix=settings.key_prefix, keep=True)
        _, after = await scrape(client, base)
        assert value(after, "livedesk_incidents") == 1
        by_type: dict[str, int] = {}
        for event in result.events:
            by_type[event.type.value] = by_type.get(event.type.value, 0) + 1
        for kind, count in by_type.items():
            assert value(after, "livedesk_change_events_total", type=kind) == count, kind
        assert value(after, "livedesk_change_events_total", type="condition_updated") == 3
        assert value(after, "livedesk_dedup_updates_total", verdict="new") > 0
        assert value(after, "livedesk_dedup_updates_total", verdict="duplicate") >= 1  # the syndicated copy
        assert value(after, "livedesk_dedup_updates_total", verdict="revision") >= 1  # the Met's edit
        for histogram in ("livedesk_publication_to_fetch_seconds", "livedesk_fetch_to_event_seconds"):
            assert value(after, f"{histogram}_count") == len(result.events)
            assert value(after, f"{histogram}_bucket", le="+Inf") == len(result.events)
        # The Met's release was published at 14:45 and fetched at 15:00: a quarter of an hour, as it should be.
        waited = sum((e.detected_at - e.reported_at).total_seconds() for e in result.events)
        assert value(after, "livedesk_publication_to_fetch_seconds_sum") == pytest.approx(waited)
        assert value(after, "livedesk_stage_backlog", stage="tracker") == 0

        _, again = await scrape(client, base)
        assert value(again, "livedesk_change_events_total", type="condition_updated") == 3, "counted once"
        assert value(again, "livedesk_fetch_to_event_seconds_count") == len(result.events)

        # Another story's first snapshot published with no stage running: dedup has it all to do, and it waits.
        flat_fire = ArchivePlayer(redis, StageContext(settings, redis), ROOT / "tests" / "scenarios" / "flat-fire")
        published = await flat_fire.play(1, drain=False)
        assert published
        await asyncio.sleep(0.3)
        _, waiting = await scrape(client, base)
        assert value(waiting, "livedesk_stage_backlog", stage="dedup") > 0
        assert value(waiting, "livedesk_stage_lag_seconds", stage="dedup") >= 0.3
        assert value(waiting, "livedesk_stage_lag_seconds", stage="tracker") == 0


async def test_feed_metrics_follow_the_pollers(settings: Settings, redis: Redis) -> None:
    """Feeds registered and polled, the share whose last poll was a 304, and their errors, as the poller left
    them; and every poll counted as it finished: the good feed's second poll a 304, the broken and gone ones
    failures, never more polls than requests the feed server answered."""
    async with polled_feeds(settings, redis) as server, console_at(settings, redis, **QUICK) as (base, _), \
            httpx.AsyncClient(timeout=10) as client:
        _, samples = await scrape(client, base)
    polls, not_modified = value(samples, "livedesk_polls_total"), value(samples, "livedesk_polls_not_modified_total")
    assert 4 <= polls <= len(server.requests)
    good_polls = sum(1 for path, _ in server.requests if path == "/good.xml")
    assert 1 <= not_modified < good_polls
    assert value(samples, "livedesk_polls_failed_total") >= 2
    assert value(samples, "livedesk_polls_not_modified_ratio") == pytest.approx(not_modified / polls)
    assert value(samples, "livedesk_feeds_registered") == 3
    assert value(samples, "livedesk_feeds_polled") == 3
    assert value(samples, "livedesk_feeds_not_modified") == 1
    assert value(samples, "livedesk_feeds_not_modified_ratio") == pytest.approx(1 / 3)
    assert value(samples, "livedesk_feed_errors") >= 2  # the broken feed and the gone one


async def test_delivery_metrics_follow_the_notifier(notified: Notified, redis: Redis) -> None:
    """Attempts and failures per hook, the dead letters, and the event → delivery and end-to-end histograms over
    the deliveries that succeeded."""
    async with console_at(notified.settings, redis, **QUICK) as (base, _), \
            httpx.AsyncClient(timeout=10) as client:
        _, samples = await scrape(client, base)
    assert value(samples, "livedesk_delivery_attempts_total", hook="conditions") == 4
    assert value(samples, "livedesk_delivery_failures_total", hook="conditions") == 1
    assert value(samples, "livedesk_delivery_attempts_total", hook="cordons") == 2
    assert value(samples, "livedesk_delivery_failures_total", hook="cordons") == 2
    assert value(samples, "livedesk_dead_letters") == 2
    assert value(samples, "livedesk_event_to_delivery_seconds_count") == 3
    assert value(samples, "livedesk_publication_to_delivery_seconds_count") == 3
    # Delivered today, published in October 2025: the end-to-end figures are long, the hop from the stream short.
    assert value(samples, "livedesk_event_to_delivery_seconds_sum") < 60
    assert value(samples, "livedesk_publication_to_delivery_seconds_sum") > 3 * 86_400
