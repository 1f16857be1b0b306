"""Hostile servers on loopback: a 1 GB body (declared or not), a body that never ends, a decompression bomb, a
server that sends one byte a second, headers that never end, a server that never answers. Each fetch ends with a
clear error naming the feed, in bounded time, holding at most about the body cap in memory.

The servers are real (tests.support.hostile_server) and generate what they send as they send it; the fetches whose
memory matters run in a process of their own (tests.support.measure), capped at 1 GB of address space, so a client
that read a whole 1 GB body would fail there rather than pass.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator

import brotli  # type: ignore[import-untyped]  # ships no type information
import httpx
import pytest

from schemas import FeedSource
from services.errors import FetchError
from services.poller.fetch import build_client, fetch_feed
from services.settings import Settings
from tests.support import hostile_feeds as hostile
from tests.support.hostile_server import HostileServer, drip, silent, slow_headers, streamed
from tests.support.measure import measure

CAP = 4 * 2**20
GB = 2**30
TIMEOUT_S = 2.0
# What a correct client holds at once: the chunks read so far (up to the cap), joined once, plus httpx's buffers.
MEMORY_BOUND = 3 * CAP + 16 * 2**20
BOUND_S = 30.0  # no correct fetch here comes near it


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(http_timeout_s=TIMEOUT_S, http_connect_timeout_s=TIMEOUT_S, allow_private_hosts=True)
    async with build_client(settings) as http:
        yield http


def _zeros(total: int) -> Iterator[bytes]:
    block = bytes(1 << 20)
    for _ in range(total // len(block)):
        yield block


def _gzip(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """`pieces` gzip-compressed, piece by piece (1 GB of zeros is about 1 MB compressed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for piece in pieces:
        if compressed := compressor.compress(piece):
            yield compressed
    yield compressor.flush()


def _in_pieces(body: bytes, size: int) -> Callable[[], Iterator[bytes]]:
    return lambda: (body[at:at + size] for at in range(0, len(body), size))


def _brotli(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """`pieces` brotli-compressed, piece by piece (256 MB of zeros is under 1 kB compressed)."""
    compressor = brotli.Compressor(quality=5)
    for piece in pieces:
        if compressed := compressor.process(piece):
            yield compressed
    yield compressor.finish()


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (streamed(GB, declare_length=True), f"body larger than {CAP} bytes (Content-Length {GB})"),
        (streamed(GB, declare_length=False), f"body larger than {CAP} bytes"),
        (streamed(None, declare_length=False), f"body larger than {CAP} bytes"),
        (streamed(GB, declare_length=False, content_encoding="gzip", chunks=lambda: _gzip(_zeros(GB))),
         f"body larger than {CAP} bytes"),
        # Under 1 kB on the wire; httpx decoded it whole, 256 MB at once, before anything could count it.
        (streamed(GB, declare_length=False, content_encoding="br", chunks=lambda: _brotli(_zeros(GB // 4))),
         f"body larger than {CAP} bytes"),
        # About 2 kB on the wire, 1 GB once both layers are undone.
        (streamed(GB, declare_length=False, content_encoding="gzip, gzip", chunks=lambda: _gzip(_gzip(_zeros(GB)))),
         "Content-Encoding 'gzip, gzip': more than one compression"),
    ],
    ids=["1GB-declared", "1GB-chunked", "never-ends", "gzip-of-1GB", "brotli-of-256MB", "gzip-in-gzip-of-1GB"],
)
def test_a_body_past_the_cap_is_refused_holding_no_more_than_the_cap(
    server: HostileServer, route: object, reason: str
) -> None:
    server.routes["/huge.xml"] = route  # type: ignore[assignment]  # parametrised routes are typed as object
    measured = measure("tests.support.hostile_calls:fetch_url", server.url("/huge.xml"), CAP, 30.0, timeout_s=120)
    sent = server.sent.get("/huge.xml", 0)
    print(f"\n{measured.describe()}; the server sent {sent / 2**20:.1f} MB before the client hung up")
    assert (measured.error, measured.message) == ("FeedError", f"feed hostile: {reason}")
    assert measured.peak_bytes is not None
    assert measured.peak_bytes < MEMORY_BOUND
    assert measured.wall_s < BOUND_S
    assert sent < GB // 8, "the client stopped reading long before the end"


async def test_a_compressed_feed_is_decoded_piece_by_piece(server: HostileServer, client: httpx.AsyncClient) -> None:
    """gzip, deflate (zlib-wrapped or raw) and brotli bodies sent in small pieces are decoded whole, however the
    pieces fall."""
    feed = hostile.many_entries(300)
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    bodies = {"gzip": gzip.compress(feed), "deflate": zlib.compress(feed),
              "raw-deflate": raw_deflate.compress(feed) + raw_deflate.flush(), "br": brotli.compress(feed)}
    for name, body in bodies.items():
        coding = "deflate" if name == "raw-deflate" else name
        server.routes[f"/{name}.xml"] = streamed(len(body), declare_length=False, content_encoding=coding,
                                                 chunks=_in_pieces(body, 100))
        source = FeedSource(id=name, name=name, url=server.url(f"/{name}.xml"))
        result = await fetch_feed(client, source, etag=None, last_modified=None, max_body_bytes=CAP)
        assert result.body == feed, name


async def test_a_server_sending_one_byte_a_second_is_cut_off_at_the_deadline(
    server: HostileServer, client: httpx.AsyncClient
) -> None:
    """Every byte comes well within the read timeout, so only the deadline on the whole exchange ends the fetch."""
    server.routes["/drip.xml"] = drip(1.0, length=1_000)
    source = FeedSource(id="drip", name="drip", url=server.url("/drip.xml"))
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        await fetch_feed(client, source, etag=None, last_modified=None, max_body_bytes=CAP)
    took_s = time.monotonic() - started
    assert str(caught.value) == f"feed drip: no complete response within {TIMEOUT_S:g} s"
    assert took_s < TIMEOUT_S + 5
    assert 1 <= server.sent.get("/drip.xml", 0) <= 3, "the server really dripped, and was left after the deadline"


@pytest.mark.parametrize(("route", "path"), [(slow_headers(1.0), "/slow-headers.xml"), (silent, "/silent.xml")],
                         ids=["headers-one-byte-a-second", "never-answers"])
async def test_a_server_that_never_finishes_its_headers_is_cut_off(
    server: HostileServer, client: httpx.AsyncClient, route: object, path: str
) -> None:
    server.routes[path] = route  # type: ignore[assignment]  # parametrised routes are typed as object
    source = FeedSource(id="stuck", name="stuck", url=server.url(path))
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"^feed stuck: (no complete response within 2 s|timed out \(ReadTimeout\))$"):
        await fetch_feed(client, source, etag=None, last_modified=None, max_body_bytes=CAP)
    assert time.monotonic() - started < TIMEOUT_S + 5
