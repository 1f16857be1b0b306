"""The SSRF guard: feeds on loopback, private or metadata addresses are refused unless allowed."""

from __future__ import annotations

import pytest

from schemas import FeedSource
from services.errors import FeedError
from services.poller.fetch import build_client, fetch_feed
from services.settings import Settings
from tests.support.feed_server import FeedServer, rss


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/rss", "http://localhost:9/rss", "http://10.0.0.1/rss", "http://169.254.169.254/latest",
     "http://[::1]:9/rss", "http://192.168.1.1/rss"],
    ids=["loopback", "localhost", "rfc1918", "metadata", "ipv6-loopback", "home-router"],
)
async def test_private_addresses_are_refused_by_default(url: str) -> None:
    """A feed URL that resolves to a non-public address is a FeedError naming it, and no request is sent."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    async with build_client(settings) as client:
        with pytest.raises(FeedError, match=r"refused: .*non-public address"):
            await fetch_feed(client, FeedSource(id="inside", name="x", url=url), etag=None, last_modified=None,
                             max_body_bytes=1000)


async def test_allowed_private_hosts_are_fetched() -> None:
    """With allow_private_hosts a loopback feed is fetched as usual."""
    with FeedServer() as server:
        server.routes["/a.xml"] = rss(("g1", "t", "x"))
        settings = Settings(_env_file=None, allow_private_hosts=True)  # type: ignore[call-arg]
        async with build_client(settings) as client:
            result = await fetch_feed(client, FeedSource(id="a", name="a", url=f"{server.url}/a.xml"), etag=None,
                                      last_modified=None, max_body_bytes=100_000)
    assert result.status == 200
