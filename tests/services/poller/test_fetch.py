"""Fetching feeds over real loopback HTTP and from disk: validators, status mapping, caps and timeouts."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]  # ships no type information
import httpx
import pytest

from schemas import FeedSource
from services.errors import FeedError, FetchError
from services.poller.fetch import FetchResult, build_client, fetch_feed
from services.poller.parse import parse_feed
from services.settings import Settings

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><guid>g1</guid></item></channel></rss>'
ETAG = '"v1"'
LAST_MODIFIED = "Fri, 24 Oct 2025 09:20:00 GMT"
CAP = 64 * 1024
TIMEOUT_S = 0.5

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    """Dispatches to the test's routes; records every request's path and headers."""

    protocol_version = "HTTP/1.1"
    server: FeedServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers.items())))
        route = self.server.routes.get(self.path)
        try:
            if route is None:
                self.reply(404, b"not here")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up on purpose (cap reached, timeout): exactly what some tests want

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FeedServer(ThreadingHTTPServer):
    """A loopback HTTP server whose routes each test sets."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    httpd = FeedServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.stopping.set()  # releases handlers that sleep or stream forever
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(http_timeout_s=TIMEOUT_S, http_connect_timeout_s=TIMEOUT_S, allow_private_hosts=True)
    async with build_client(settings) as http:
        yield http


@dataclass
class Fetcher:
    """Calls fetch_feed on a URL with the test cap."""

    http: httpx.AsyncClient

    async def __call__(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        source = FeedSource(id="test-feed", name="Test", url=url)
        return await fetch_feed(self.http, source, etag=etag, last_modified=last_modified, max_body_bytes=CAP)


@pytest.fixture
def fetch(client: httpx.AsyncClient) -> Fetcher:
    return Fetcher(client)


def feed_route(handler: Handler) -> None:
    if handler.headers.get("If-None-Match") == ETAG or handler.headers.get("If-Modified-Since") == LAST_MODIFIED:
        handler.reply(304, ETag=ETAG)
    else:
        handler.reply(200, FEED, ETag=ETAG, Last_Modified=LAST_MODIFIED, Content_Type="application/rss+xml")


def endless(chunked: bool) -> Route:
    def route(handler: Handler) -> None:
        handler.send_response(200)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Connection", "close")  # the body ends when the connection does: no length at all
        handler.end_headers()
        chunk = b"<item>" + b"x" * 8186 + b"</item>"
        while not handler.server.stopping.is_set():
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)

    return route


async def test_200_returns_body_and_validators(server: FeedServer, fetch: Fetcher) -> None:
    """A 200 gives the body, ETag, Last-Modified, Content-Type and final URL; our User-Agent is sent."""
    server.routes["/feed.xml"] = feed_route
    result = await fetch(server.url("/feed.xml"))
    assert result == FetchResult(
        status=200,
        body=FEED,
        etag=ETAG,
        last_modified=LAST_MODIFIED,
        content_type="application/rss+xml",
        url=server.url("/feed.xml"),
        not_modified=False,
    )
    assert server.requests[0][1]["User-Agent"] == Settings().user_agent


async def test_conditional_request_answered_304(server: FeedServer, fetch: Fetcher) -> None:
    """Validators are sent as If-None-Match/If-Modified-Since; a 304 is not_modified with no body."""
    server.routes["/feed.xml"] = feed_route
    result = await fetch(server.url("/feed.xml"), etag=ETAG, last_modified=LAST_MODIFIED)
    assert (result.status, result.not_modified, result.body) == (304, True, None)
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)  # kept for next time though not repeated
    headers = server.requests[0][1]
    assert (headers["If-None-Match"], headers["If-Modified-Since"]) == (ETAG, LAST_MODIFIED)


async def test_unsendable_validator_is_dropped(server: FeedServer, fetch: Fetcher) -> None:
    """A stored validator that is not a valid header value is not sent, and does not fail the fetch."""
    server.routes["/feed.xml"] = feed_route
    result = await fetch(server.url("/feed.xml"), etag='"v1"\r\nX-Evil: 1')
    assert result.status == 200
    assert "If-None-Match" not in server.requests[0][1]


@pytest.mark.parametrize(("status", "text"), [(404, "HTTP 404 Not Found"), (410, "HTTP 410 Gone"), (403, "HTTP 403")])
async def test_client_errors_are_permanent(server: FeedServer, fetch: Fetcher, status: int, text: str) -> None:
    """404, 410 and other 4xx (but 429) raise FeedError naming the feed and the status."""
    server.routes["/x"] = lambda handler: handler.reply(status)
    with pytest.raises(FeedError) as caught:
        await fetch(server.url("/x"))
    assert caught.value.feed == "test-feed"
    assert caught.value.reason.startswith(text)


@pytest.mark.parametrize(
    ("status", "text"), [(503, "HTTP 503 Service Unavailable"), (429, "HTTP 429 Too Many Requests")]
)
async def test_overload_is_transient_with_retry_after(
    server: FeedServer, fetch: Fetcher, status: int, text: str
) -> None:
    """503 and 429 raise FetchError whose reason carries the Retry-After value."""
    server.routes["/x"] = lambda handler: handler.reply(status, Retry_After="120")
    with pytest.raises(FetchError) as caught:
        await fetch(server.url("/x"))
    assert caught.value.feed == "test-feed"
    assert caught.value.reason == f"{text} (Retry-After: 120)"


async def test_declared_oversize_body_is_refused_up_front(server: FeedServer, fetch: Fetcher) -> None:
    """A Content-Length past the cap raises FeedError before the body is read."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(CAP * 1000))
        handler.end_headers()
        handler.wfile.write(b"x" * 1024)
        handler.server.stopping.wait(5)

    server.routes["/big"] = route
    started = time.monotonic()
    with pytest.raises(FeedError, match=f"body larger than {CAP} bytes \\(Content-Length {CAP * 1000}\\)"):
        await fetch(server.url("/big"))
    assert time.monotonic() - started < TIMEOUT_S


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
async def test_endless_body_is_cut_at_the_cap(server: FeedServer, fetch: Fetcher, chunked: bool) -> None:
    """A body with no length that never ends raises FeedError once past the cap, quickly."""
    server.routes["/endless"] = endless(chunked)
    started = time.monotonic()
    with pytest.raises(FeedError, match=f"body larger than {CAP} bytes"):
        await fetch(server.url("/endless"))
    assert time.monotonic() - started < TIMEOUT_S


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("br", brotli.compress)])
async def test_compressed_body_is_capped_after_decompression(
    server: FeedServer, fetch: Fetcher, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    """A small gzip or brotli body that inflates past the cap is refused: the cap is on what we would hold in memory."""
    bomb = compress(b" " * (CAP * 20))
    assert len(bomb) < CAP
    server.routes["/bomb"] = lambda handler: handler.reply(200, bomb, Content_Encoding=encoding)
    with pytest.raises(FeedError, match="body larger than"):
        await fetch(server.url("/bomb"))


async def test_brotli_body_is_decoded_into_entries(server: FeedServer, fetch: Fetcher) -> None:
    """We offer br in Accept-Encoding; a feed served brotli-compressed is decoded and parses to its entries."""
    feed = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>' + b"".join(
        b"<item><guid>g%d</guid><title>Entry %d</title><description>words words words</description></item>" % (n, n)
        for n in range(50)
    ) + b"</channel></rss>"
    compressed = brotli.compress(feed)
    assert len(compressed) < len(feed) // 4

    def route(handler: Handler) -> None:
        if "br" not in handler.headers.get("Accept-Encoding", ""):
            handler.reply(406, b"brotli only")
        else:
            handler.reply(200, compressed, Content_Encoding="br", Content_Type="application/rss+xml")

    server.routes["/feed.xml"] = route
    result = await fetch(server.url("/feed.xml"))
    assert (result.status, result.body) == (200, feed)
    assert result.body is not None
    assert [e.guid for e in parse_feed(result.body, feed="t").entries] == [f"g{n}" for n in range(50)]


async def test_slow_server_is_a_transient_timeout(server: FeedServer, fetch: Fetcher) -> None:
    """A server that does not answer within the timeout raises FetchError, in bounded time."""

    def route(handler: Handler) -> None:
        handler.server.stopping.wait(10)

    server.routes["/slow"] = route
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out|no complete response"):
        await fetch(server.url("/slow"))
    assert time.monotonic() - started < TIMEOUT_S * 3


async def test_dripping_server_hits_the_whole_fetch_deadline(server: FeedServer, fetch: Fetcher) -> None:
    """A server sending a byte at a time, each within the read timeout, is still cut off at the overall deadline."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        while not handler.server.stopping.wait(TIMEOUT_S / 10):
            handler.wfile.write(b" ")
            handler.wfile.flush()

    server.routes["/drip"] = route
    started = time.monotonic()
    with pytest.raises(FetchError, match=f"no complete response within {TIMEOUT_S:g} s"):
        await fetch(server.url("/drip"))
    assert time.monotonic() - started < TIMEOUT_S * 3


async def test_refused_connection_is_transient(fetch: Fetcher) -> None:
    """Nothing listening on the port raises FetchError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="ConnectError"):
        await fetch(f"http://127.0.0.1:{port}/feed.xml")


async def test_redirect_is_followed_and_final_url_reported(server: FeedServer, fetch: Fetcher) -> None:
    """Redirects are followed and the result names the final URL."""
    server.routes["/feed.xml"] = feed_route
    server.routes["/old"] = lambda handler: handler.reply(301, Location="/moved")
    server.routes["/moved"] = lambda handler: handler.reply(302, Location=server.url("/feed.xml"))
    result = await fetch(server.url("/old"))
    assert (result.status, result.body, result.url) == (200, FEED, server.url("/feed.xml"))


async def test_redirect_loop_is_permanent(server: FeedServer, fetch: Fetcher) -> None:
    """More than five redirects raise FeedError."""
    server.routes["/loop"] = lambda handler: handler.reply(302, Location="/loop")
    with pytest.raises(FeedError, match="more than 5 redirects"):
        await fetch(server.url("/loop"))
    assert len(server.requests) == 6


async def test_redirect_without_location_is_permanent(server: FeedServer, fetch: Fetcher) -> None:
    """A 3xx that cannot be followed raises FeedError."""
    server.routes["/nowhere"] = lambda handler: handler.reply(302)
    with pytest.raises(FeedError, match="HTTP 302 Found without a usable Location"):
        await fetch(server.url("/nowhere"))


async def test_file_url_and_plain_path_are_read(tmp_path: Path, fetch: Fetcher) -> None:
    """file:// URLs and plain paths are read from disk, with the file's mtime as Last-Modified."""
    path = tmp_path / "feed one.xml"
    path.write_bytes(FEED)
    by_url = await fetch(path.as_uri())
    by_path = await fetch(str(path))
    assert by_url == by_path
    assert (by_url.status, by_url.body, by_url.url, by_url.not_modified) == (200, FEED, path.as_uri(), False)
    assert by_url.last_modified is not None
    again = await fetch(str(path), last_modified=by_url.last_modified)
    assert (again.not_modified, again.body) == (True, None)


async def test_file_over_cap_missing_or_folder_is_permanent(tmp_path: Path, fetch: Fetcher) -> None:
    """A file past the cap, a missing file and a folder raise FeedError."""
    big = tmp_path / "big.xml"
    big.write_bytes(b" " * (CAP + 1))
    with pytest.raises(FeedError, match=f"body larger than {CAP} bytes"):
        await fetch(str(big))
    with pytest.raises(FeedError, match="no such file"):
        await fetch((tmp_path / "absent.xml").as_uri())
    with pytest.raises(FeedError, match="is a directory"):
        await fetch(str(tmp_path))


async def test_unsupported_scheme_is_permanent(fetch: Fetcher) -> None:
    """A URL that is neither http(s), file nor a path raises FeedError."""
    with pytest.raises(FeedError, match="unsupported URL"):
        await fetch("ftp://example.org/feed.xml")
