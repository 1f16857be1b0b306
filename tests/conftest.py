"""Shared fixtures: a real Redis for integration tests, each test on its own key prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from services.connection import connect
from services.names import Keys
from services.redis_server import answers_ping, embedded_valkey
from services.replay import delete_prefix
from services.settings import Settings

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's LIVEDESK_* variables."""
    for name in list(os.environ):
        if name.startswith("LIVEDESK_") and name != "LIVEDESK_TEST_REDIS_URL":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis when reachable (LIVEDESK_TEST_REDIS_URL overrides), else an embedded Valkey.

    LIVEDESK_TEST_EMBEDDED=1 forces the embedded server.
    """
    url = os.environ.get("LIVEDESK_TEST_REDIS_URL", DEFAULT_TEST_REDIS)
    if os.environ.get("LIVEDESK_TEST_EMBEDDED") != "1" and answers_ping(url):
        yield url
        return
    with embedded_valkey(Path(tmp_path_factory.mktemp("valkey"))) as embedded:
        yield embedded


def fresh_prefix() -> str:
    """A key prefix no other test uses. It is a hash tag of its own (`{livedesk-test:…}`), so the names `Keys` gives
    start with it as written, and `f"{prefix}:…"` in a test names the same keys the stages use."""
    return f"{{livedesk-test:{uuid.uuid4().hex[:12]}}}"


def delete_keys(client: SyncRedis, prefix: str) -> None:
    """Delete every key under `prefix` and the prefixes that extend it (a replay's, a sub-test's)."""
    for key in client.scan_iter(match=Keys(prefix).everything, count=500):
        client.unlink(key)


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A prefix no other test uses; everything under it is deleted after the test (subprocesses' keys too)."""
    prefix = fresh_prefix()
    yield prefix
    client = SyncRedis.from_url(redis_url)
    delete_keys(client, prefix)
    client.close()


@pytest.fixture
async def redis(redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    try:
        yield client
        await delete_prefix(client, key_prefix)
    finally:
        await client.aclose()


@pytest.fixture
def settings(redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    """Settings for a test: its own prefix and consumer, fast reclaiming, no .env file."""
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        key_prefix=key_prefix,
        data_dir=tmp_path / "data",
        consumer=f"test-{uuid.uuid4().hex[:8]}",
        reclaim_idle_ms=1000,
        poll_host_gap_s=0.0,
        allow_private_hosts=True,  # every feed server of the tests is on loopback
        max_deliveries=3,
        log_format="json",
    )
