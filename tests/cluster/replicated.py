"""A Redis Cluster whose masters each have a replica, for tests that kill a master and watch its replica take over.

Failure detection is quick (`cluster-node-timeout` of a second), so an automatic failover completes in a few seconds.
Every node keeps an append-only file; a killed node is not started again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from redis import Redis as SyncRedis
from redis.crc import key_slot
from redis.exceptions import RedisError

from tests.cluster.servers import RedisServer, cluster_nodes, create_cluster, seed_url, wait_cluster_ok

NODE_TIMEOUT_MS = 1000
# Detection (node timeout, then a majority of masters agreeing), the replica's election delay (0.5–1 s) and the vote.
FAILOVER_TIMEOUT_S = 20.0


@dataclass
class ReplicatedCluster:
    """The cluster's nodes, and who serves what as the cluster sees it now (its layout changes as masters die)."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return seed_url(self.nodes)

    def master_of(self, key: str) -> RedisServer:
        """The node that serves `key`'s slot now, by the view of the first node still running."""
        slot = key_slot(key.encode())
        with SyncRedis(port=self._running()[0].port, socket_timeout=1) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return self._node(int(master[1]))
        raise RuntimeError(f"no node serves slot {slot}")

    def replica_of(self, master: RedisServer) -> RedisServer | None:
        """The node replicating `master`, if any (a promoted replica has none: its old master is dead)."""
        with SyncRedis(port=master.port, socket_timeout=1) as client:
            ports = [int(value["port"]) for name, value in client.info("replication").items()
                     if name.startswith("slave") and isinstance(value, dict)]
        return self._node(ports[0]) if ports else None

    def prefix_with_replica(self, stem: str) -> str:
        """A key prefix `stem-N` whose hash tag's slot is served by a master that has a replica, so that each test
        of a shared cluster can kill a master of its own."""
        for n in range(100):
            prefix = f"{stem}-{n}"
            if self.replica_of(self.master_of(f"{{{prefix}}}")) is not None:
                return prefix
        raise RuntimeError("no master with a replica left")

    def wait_replicated(self) -> None:
        """Return once every replica is linked to its master and every master has its replica (a fresh cluster's
        replicas are still making their first copy when `redis-cli --cluster create` returns)."""
        deadline = time.monotonic() + FAILOVER_TIMEOUT_S
        while not all(self._linked(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas not linked within {FAILOVER_TIMEOUT_S} s")
            time.sleep(0.1)

    def wait_failover(self, key: str, old_master: RedisServer) -> RedisServer:
        """Wait until a node other than `old_master` serves `key`'s slot and the cluster is whole again; return it."""
        deadline = time.monotonic() + FAILOVER_TIMEOUT_S
        while True:
            with contextlib.suppress(RedisError):
                master = self.master_of(key)
                if master is not old_master:
                    wait_cluster_ok(self._running(), timeout_s=max(deadline - time.monotonic(), 0.1))
                    return master
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from node {old_master.port} in {FAILOVER_TIMEOUT_S} s")
            time.sleep(0.1)

    def _linked(self, node: RedisServer) -> bool:
        with SyncRedis(port=node.port, socket_timeout=1) as client:
            replication: dict[str, object] = client.info("replication")
        if replication["role"] == "master":
            return replication["connected_slaves"] == 1
        return replication["master_link_status"] == "up"

    def _running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def _node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)


@contextlib.contextmanager
def replicated_cluster(data_dir: Path, masters: int = 3) -> Iterator[ReplicatedCluster]:
    """`masters` masters with one replica each, replicas linked; every node killed when the block ends."""
    nodes = cluster_nodes(data_dir, 2 * masters, "--appendonly", "yes",
                          "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
    try:
        create_cluster(nodes, replicas=1)
        cluster = ReplicatedCluster(nodes)
        cluster.wait_replicated()
        yield cluster
    finally:
        for node in nodes:
            node.kill()
