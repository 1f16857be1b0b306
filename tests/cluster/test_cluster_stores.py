"""The stores' scripts and transactions on a Redis Cluster: each stays in its deployment's slot and does what it does
on one server; scans by prefix visit every node; a new client can be used by many tasks at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.crc import key_slot

from schemas import Authority, EventType, FeedSource
from services.connection import connect, node_url
from services.names import Keys
from services.notifier.hooks import HookRegistry, fanned_out_key, make_hook
from services.notifier.stage import fan_out
from services.poller.diff import publish_changed, raw_updates
from services.poller.feeds import FeedRegistry
from services.replay import delete_prefix
from services.settings import Settings
from services.stage import dead_letter
from services.wire import entry_data
from tests.services.notifier.conftest import change
from tests.support.feed_server import rss

pytestmark = pytest.mark.redis

NOW = datetime(2025, 10, 24, 9, tzinfo=UTC)


def serving_node(url: str, key: str) -> int:
    """The port of the node that serves `key`."""
    with SyncRedis.from_url(node_url(url)) as client:
        slot = key_slot(key.encode())
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
    raise LookupError(key)


def seed_port(url: str) -> int:
    return int(node_url(url).rsplit(":", 1)[1])


async def test_a_new_client_serves_many_first_commands_at_once(cluster_url: str) -> None:
    """Tasks that start at once on a new client, on keys another node than the seed serves, all succeed."""
    prefix = next(p for p in (f"livedesk-test:{uuid.uuid4().hex[:8]}" for _ in range(100))
                  if serving_node(cluster_url, Keys(p).dedup_stats) != seed_port(cluster_url))
    key = Keys(prefix).dedup_stats
    client = connect(cluster_url)

    async def count(times: int) -> None:
        for _ in range(times):
            await client.hincrby(key, "n", 1)

    try:
        await asyncio.gather(*(count(20) for _ in range(16)))
        assert int(await client.hget(key, "n") or 0) == 16 * 20
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


async def test_feed_leases_on_a_cluster(cluster: Redis, cluster_prefix: str) -> None:
    """The poller's claim script, WATCH/MULTI upsert and finish transaction: each due feed leased once, released."""
    registry = FeedRegistry(cluster, Keys(cluster_prefix))
    feeds = [FeedSource(id=f"f{n}", name=f"Feed {n}", url=f"https://f{n}.example.org/rss") for n in range(3)]
    await registry.upsert(feeds, due=NOW)
    await cluster.hset(Keys(cluster_prefix).feed_state("f1"), mapping={"etag": '"v1"'})
    first = await registry.claim(datetime.now(UTC), 10, "poller-1", 60_000)
    assert sorted((c.feed_id, c.state["etag"]) for c in first) == [("f0", None), ("f1", '"v1"'), ("f2", None)]
    assert await registry.claim(datetime.now(UTC), 10, "poller-2", 60_000) == []
    await registry.finish("f1", "poller-1", NOW, {"last_status": "200"}, failed=False)
    assert [c.feed_id for c in await registry.claim(datetime.now(UTC), 10, "poller-2", 60_000)] == ["f1"]


async def test_publishing_a_feed_document_on_a_cluster(cluster: Redis, cluster_prefix: str) -> None:
    """The poller's diff transaction (WATCH, reads, MULTI with XADD): new entries once, an edit as a new version."""
    from services.poller.parse import parse_feed

    keys = Keys(cluster_prefix)
    source = FeedSource(id="echo", name="Echo", url="https://echo.example.org/rss", authority=Authority.news)

    async def publish(text: str) -> int:
        parsed = parse_feed(rss(("e1", "Man shot", text), ("e2", "Cordon", "A cordon is in place.")), feed="echo")
        return len(await publish_changed(cluster, keys, "echo", raw_updates(source, parsed.entries, NOW)))

    assert await publish("A man was shot.") == 2
    assert await publish("A man was shot.") == 0
    assert await publish("A man was shot. He is stable.") == 1
    assert await cluster.xlen(keys.raw) == 3


async def test_fan_out_on_a_cluster(cluster: Redis, cluster_prefix: str) -> None:
    """The fan-out script, sent as EVAL in a pipeline: each change queued once per hook, however often it is read."""
    keys = Keys(cluster_prefix)
    settings = Settings(_env_file=None, key_prefix=cluster_prefix)
    hooks = [make_hook(settings, {"id": hook_id, "url": f"https://{hook_id}.example.org/", "secret": "s" * 16})
             for hook_id in ("a", "b")]
    await HookRegistry(cluster, keys).upsert(hooks)
    changes = [(change("i1", n, EventType.condition_updated), f"{1000 + n}-0") for n in (1, 2)]
    assert await fan_out(cluster, keys, hooks, changes, retention_s=3600) == 4
    assert await fan_out(cluster, keys, hooks, changes, retention_s=3600) == 0
    for hook in hooks:
        assert await cluster.xlen(keys.hook_queue(hook.hook_id)) == 2
        assert await cluster.zcard(fanned_out_key(keys, hook.hook_id)) == 2


async def test_dead_letter_on_a_cluster(cluster: Redis, cluster_prefix: str) -> None:
    """The dead-letter transaction (XADD to `deadletter`, XACK on the stream) runs in the deployment's slot."""
    keys = Keys(cluster_prefix)
    await cluster.xgroup_create(keys.raw, "dedup", id="0", mkstream=True)
    entry_id = await cluster.xadd(keys.raw, {"__data__": "{}"})
    await cluster.xreadgroup("dedup", "c", {keys.raw: ">"})
    await dead_letter(cluster, keys, keys.raw, "dedup", entry_id, b"{}", ValueError("bad"), deliveries=1)
    assert (await cluster.xpending(keys.raw, "dedup"))["pending"] == 0
    [(_, record)] = entry_data(await cluster.xrange(keys.deadletter))
    assert '"error": "ValueError: bad"' in record


async def test_deleting_a_prefix_visits_every_node(cluster_url: str) -> None:
    """`delete_prefix` removes a prefix's keys and its extensions' wherever their slots live, and nothing else."""
    client = connect(cluster_url)
    parent = f"livedesk-test:{uuid.uuid4().hex[:8]}"
    extensions = [f"{parent}:replay:{n}" for n in range(12)]  # untagged: each its own slot, over all three nodes
    other = f"{parent}x"
    try:
        for prefix in [parent, *extensions, other]:
            await client.set(Keys(prefix).dedup_stats, "1")
        nodes = {serving_node(cluster_url, Keys(p).dedup_stats) for p in extensions}
        assert len(nodes) > 1, "the extensions must spread over nodes for this to test anything"
        assert await delete_prefix(client, parent) == 1 + len(extensions)
        assert await client.exists(Keys(other).dedup_stats) == 1
    finally:
        await delete_prefix(client, other)
        await client.aclose()


def test_every_name_of_a_deployment_has_one_slot() -> None:
    """All names `Keys` gives share the prefix's hash tag; a prefix with a tag of its own is used as it is."""
    for prefix in ("livedesk", "livedesk:replay:0123", "{desk}:eu"):
        keys = Keys(prefix)
        names = [keys.raw, keys.changes, keys.deadletter, keys.hooks, keys.hook_queue("h"), keys.feeds,
                 keys.feeds_due, keys.feed_lease("f"), keys.feed_state("f"), keys.dedup_entry("e"),
                 keys.dedup_story("s"), keys.dedup_near(7), keys.dedup_stats, keys.incident("i"),
                 keys.incident_history("i"), keys.incident_index, keys.item_index, keys.source_incidents("s"),
                 keys.tracker_words, keys.word_incidents("w"), keys.place("walthamstow")]
        assert len({key_slot(name.encode()) for name in names}) == 1, prefix
    assert Keys("livedesk").raw == "{livedesk}:stream:raw"
    assert Keys("{desk}:eu").raw == "{desk}:eu:stream:raw"


@pytest.mark.parametrize("prefix", ["a{b", "}a", "a}b", "{}a"])
def test_a_prefix_with_stray_braces_is_refused(prefix: str) -> None:
    """Braces only around a hash tag: anything else would cut the tag short or scatter the keys."""
    with pytest.raises(ValueError, match="braces only around a hash tag"):
        Keys(prefix)

