"""A Redis Cluster of three masters for the tests of this folder, started once and killed at the end; each test
gets a client and a key prefix of its own on it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from services.connection import connect
from services.replay import delete_prefix
from tests.cluster.servers import redis_cluster


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis+cluster://` URL of three masters on loopback, no replicas."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as url:
        yield url


@pytest.fixture
def cluster_prefix() -> str:
    """A prefix no other test uses, a hash tag of its own as the shared fixtures' are."""
    return f"{{livedesk-test:{uuid.uuid4().hex[:12]}}}"


@pytest.fixture
async def cluster(cluster_url: str, cluster_prefix: str) -> AsyncIterator[Redis]:
    """A client of the cluster (as `connect` opens it); the test's prefix is deleted afterwards, on every node."""
    client = connect(cluster_url)
    yield client
    await delete_prefix(client, cluster_prefix)
    await client.aclose()
