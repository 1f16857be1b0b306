"""The embedded server: one per data folder, shared by the livedesk processes that use that folder."""

from __future__ import annotations

from pathlib import Path

import redis

from services.redis_server import URL_FILE, embedded_valkey


def test_second_process_on_the_same_folder_shares_the_server(tmp_path: Path) -> None:
    """A second user of one data folder gets the running server's URL; the server stops with its owner."""
    with embedded_valkey(tmp_path) as first:
        client = redis.Redis.from_url(first)
        client.set("livedesk-test:shared", "1")
        with embedded_valkey(tmp_path) as second:
            assert second == first
        assert client.get("livedesk-test:shared") == b"1", "the sharer's exit must not stop the owner's server"
        client.close()
    assert not (tmp_path / URL_FILE).exists()


def test_data_survives_a_restart(tmp_path: Path) -> None:
    """What was written before a stop is there after the next start (append-only file in the data folder)."""
    with embedded_valkey(tmp_path) as url:
        client = redis.Redis.from_url(url)
        client.xadd("livedesk-test:stream", {"__data__": "{}"})
        client.close()
    with embedded_valkey(tmp_path) as url:
        client = redis.Redis.from_url(url)
        assert client.xlen("livedesk-test:stream") == 1
        client.close()
