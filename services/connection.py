"""Clients of livedesk's Redis: `connect` is how every process opens one, on one server or on a Redis Cluster.

A URL `redis://…` (or `rediss://`, `unix://`) is one server; `redis+cluster://host:port` (or `rediss+cluster://`)
is a Redis Cluster reached through any one of its nodes, which tells the client where the others are. Every key
of a deployment carries the key prefix as its hash tag (`services.names`), so the whole deployment lives in one slot:
every script and transaction stays on one node, and the same code runs on both. A cluster spreads deployments (and
replays, which have prefixes of their own) over its nodes; it does not spread one deployment.

Every client reconnects: a command that finds the connection gone (a restarted server, a failover) is sent again
after a backoff that doubles from 50 ms up to 2 s a try, for about half a minute in all, before it fails. Sending a
command twice is safe here: every stage's write is a check-and-set or keyed on the business identity (at worst a
dead letter is recorded twice).

redis-py's asyncio client packs each command into the Redis protocol in Python (about 3 µs an argument), while its
synchronous client uses hiredis' C packer when hiredis is installed. The dedup stage sends hundreds of arguments per
batch, so the packing alone cost more than the server's work; `connect` gives the asyncio client the same C packer
(redis-py's own `HiredisRespSerializer`), on one server and on every node of a cluster.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError, TimeoutError

_SERIALIZER = HiredisRespSerializer()

# `redis+cluster://` → the node URL redis-py and FastStream read.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Tries after the first before a command fails: with the backoff below, 20 tries wait 17–33 s, long enough for a
# server to restart and reload its append-only file.
RECONNECT_RETRIES = 20
_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 2.0


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed


_PACKING_IN_C: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _packing_in_c(transport: type[AbstractConnection]) -> type[AbstractConnection]:
    if transport not in _PACKING_IN_C:
        _PACKING_IN_C[transport] = type(f"HiredisPacking{transport.__name__}", (_HiredisPacking, transport), {})
    return _PACKING_IN_C[transport]


class LayoutFirstCluster(RedisCluster):
    """A `RedisCluster` that learns which node serves which slot before its first command is routed, and that backs
    off between its tries when a node cannot be reached.

    redis-py 8.1 decides a command's route before it learns the layout, so the first commands a new client sends go to
    an arbitrary node; sent at once (a stage's reader, its reclaimer and its handlers starting together), their
    redirections make the client reset connections other commands are using, and those fail.

    After a connection error redis-py 8.1 reloads the layout and sends the command again, as often as its `retry`
    says, but without pausing: when a master dies, every try is spent within milliseconds, seconds before the cluster
    promotes its replica. Here each such round is itself tried again with `retry`'s backoff, so a command waits out a
    failover as a one-server client waits out a restart.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.get_default_node() is None:  # never initialised: once it is, there is always a default node
            await self.initialize()
        send = super().execute_command
        return await self.retry.call_with_retry(lambda: send(*args, **kwargs), _nothing_to_undo)


async def _nothing_to_undo(error: Exception) -> None:
    """The failure hook of `Retry.call_with_retry`: redis-py has already dropped the connection and the layout."""


def is_cluster(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://`, `rediss+cluster://`)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """The plain URL of the server `url` names (of its seed node, for a cluster URL)."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        return url
    return urlunsplit(parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme]))


def reconnect_options(retries: int = RECONNECT_RETRIES) -> dict[str, Any]:
    """redis-py client options (for `Redis`, `RedisCluster` and FastStream's brokers alike) that send a command again
    after a lost connection or a timeout, `retries` times, with exponential backoff and jitter."""
    return {
        "retry": Retry(EqualJitterBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S), retries),
        "retry_on_error": [ConnectionError, TimeoutError],
    }


def connect(url: str, *, retries: int = RECONNECT_RETRIES, **options: Any) -> Redis:
    """An asyncio client for `url` that packs commands in C and reconnects (see the module): one server's for
    redis://, rediss:// and unix://, a cluster's for redis+cluster:// and rediss+cluster://.

    `retries` is how often a command is sent again after a lost connection (0: fail at once, for a health check);
    `options` are `Redis.from_url`'s (`RedisCluster.from_url`'s for a cluster).
    """
    options = {**reconnect_options(retries), **options}
    if is_cluster(url):
        cluster = LayoutFirstCluster.from_url(node_url(url), **options)
        # Nodes are made from these options as the client finds them: the ones not yet made pack in C too.
        transport = cluster.connection_kwargs.get("connection_class", Connection)
        cluster.connection_kwargs["connection_class"] = _packing_in_c(transport)
        # A cluster client has the same command methods as a one-server client (livedesk uses only what both
        # have: commands, scripts, pipelines and transactions on one slot), but is not its subclass.
        return cast(Redis, cluster)
    pool = ConnectionPool.from_url(url, **options)
    # The URL chooses the transport (TCP, TLS, Unix socket); only the packing is replaced.
    pool.connection_class = _packing_in_c(pool.connection_class)
    return Redis.from_pool(pool)
