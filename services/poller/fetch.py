"""Getting feed documents: HTTP with conditional GET and a body cap, or a local file. Never parses.

Failures are sorted into the error tree once, here: what may work later (timeouts, refused connections, 429, 5xx) is a
`FetchError`; what will fail the same way again (4xx, too large, redirect loops, bad URLs) is a `FeedError`.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

try:
    import brotli  # type: ignore[import-untyped]  # ships no type information
except ImportError:  # a dependency of livedesk; without it `br` is simply not offered
    brotli = None

from schemas import FeedSource
from services.errors import FeedError, FetchError
from services.poller.guard import GuardedTransport, PrivateAddressError, as_feed_error, refuse_other_schemes
from services.settings import Settings

MAX_REDIRECTS = 5
# One process polls many feeds but rarely many on one host at once; these bound sockets, not throughput.
MAX_CONNECTIONS = 50
MAX_KEEPALIVE_CONNECTIONS = 10
KEEPALIVE_EXPIRY_S = 30.0
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "*/*;q=0.1"
)


def _bounded_brotli() -> bool:
    """Whether the installed brotli can bound what one call decodes (brotli 1.2 and later)."""
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except (AttributeError, TypeError):  # not installed (None), or too old for the limit
        return False
    return True


_BROTLI = _bounded_brotli()
_DECODING_ERRORS: tuple[type[Exception], ...] = (zlib.error, brotli.error) if _BROTLI else (zlib.error,)
# Only what `_decoder` undoes with its output bounded; httpx offers whatever it can decode, all at once.
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI else "gzip, deflate"


@dataclass(frozen=True)
class FetchResult:
    """What one fetch returned.

    Attributes:
        status: The final HTTP status (200 for a file read, 304 when unchanged).
        body: The body, at most the cap; None when not modified.
        etag: The validator to send next time (the one sent, when a 304 does not repeat it).
        last_modified: Likewise for Last-Modified (a file's mtime as an HTTP date).
        content_type: The response's Content-Type, None for files.
        url: The final URL after redirects (a `file://` URL for files).
        not_modified: True when the server (or the file's mtime) said nothing changed.
        headers: The response headers that scheduling reads (caching and Retry-After), lower-case names.
        moved_to: The new URL when the feed moved permanently (301/308 on every hop).
    """

    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None
    url: str
    not_modified: bool
    headers: Mapping[str, str] = field(default_factory=dict, compare=False)
    moved_to: str | None = None


def build_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client for feeds (design §7.5); the caller closes it.

    The read timeout (`http_timeout_s`) also bounds each whole fetch in `fetch_feed`, so a server that drips bytes
    cannot hold a fetch open forever. Unless `allow_private_hosts`, connections go through the SSRF guard
    (`guard.GuardedTransport`), which checks the address each one is made to, and requests other than HTTP(S) are
    refused; a proxy named in the environment is then not used, as it would resolve names out of the guard's sight.
    """
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    guarded = not settings.allow_private_hosts
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_s, connect=settings.http_connect_timeout_s),
        limits=limits,
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        transport=GuardedTransport(limits) if guarded else None,
        event_hooks={"request": [refuse_other_schemes] if guarded else []},
    )


def _header_safe(value: str | None) -> str | None:
    # Validators come back from storage; one that cannot be sent as a header is dropped, not allowed to fail the fetch.
    if value and value.isascii() and value.isprintable():
        return value
    return None


def _retry_after(response: httpx.Response) -> str:
    value = response.headers.get("retry-after")
    return f" (Retry-After: {value.strip()[:64]})" if value else ""


def _status_error(feed: str, response: httpx.Response) -> FeedError | FetchError:
    status = response.status_code
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status == 429 or status >= 500:
        return FetchError(feed, reason + _retry_after(response), status=status,
                          headers=_schedule_headers(response))
    if 300 <= status < 400:
        return FeedError(feed, f"{reason} without a usable Location", status=status)
    return FeedError(feed, reason, status=status)


class _Decoder(Protocol):
    """Undoes one Content-Encoding a piece at a time, never giving more than it is asked for at once."""

    def decode(self, data: bytes, room: int) -> bytes:
        """Decode `data` after whatever input is kept from before, giving at most about `room` (≥ 1) bytes; input
        not decoded yet is kept."""

    def pending(self) -> bool:
        """Whether input kept from before may give more output without more data."""


class _Identity:
    def __init__(self) -> None:
        self._kept = b""

    def decode(self, data: bytes, room: int) -> bytes:
        data = self._kept + data
        self._kept = data[room:]
        return data[:room]

    def pending(self) -> bool:
        return bool(self._kept)


class _Zlib:
    """gzip, or deflate: zlib-wrapped as the RFC says, or raw as some servers send it (tried when the first piece
    is not zlib), as httpx reads them."""

    def __init__(self, wbits: int, raw_fallback: bool = False) -> None:
        self._decompressor = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback

    def decode(self, data: bytes, room: int) -> bytes:
        first, self._raw_fallback = self._raw_fallback, False
        try:
            return self._decompressor.decompress(self._decompressor.unconsumed_tail + data, room)
        except zlib.error:
            if not first:
                raise
            self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._decompressor.decompress(data, room)

    def pending(self) -> bool:
        return bool(self._decompressor.unconsumed_tail)


class _Brotli:
    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()
        self._kept = b""

    def decode(self, data: bytes, room: int) -> bytes:
        # With its output bounded, brotli takes new input only once it has given out everything decoded so far.
        if self._decompressor.can_accept_more_data():
            data, self._kept = self._kept + data, b""
            return bytes(self._decompressor.process(data, output_buffer_limit=room))
        self._kept += data
        return bytes(self._decompressor.process(b"", output_buffer_limit=room))

    def pending(self) -> bool:
        return bool(self._kept) or not self._decompressor.can_accept_more_data()


def _decoder(feed: str, response: httpx.Response) -> _Decoder:
    """The decoder for the response's Content-Encoding; codings we do not know pass the body on as it is."""
    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    known = [c for c in codings if c in ("gzip", "x-gzip", "deflate") or (c == "br" and _BROTLI)]
    if len(known) > 1:
        # One compression inside another multiplies the ratios (a 2 kB body of gzip inside gzip is 1 GB); no feed
        # server stacks them.
        raise FeedError(feed, f"Content-Encoding {', '.join(codings)!r}: more than one compression")
    if not known:
        return _Identity()
    if known[0] == "br":
        return _Brotli()
    if known[0] == "deflate":
        return _Zlib(zlib.MAX_WBITS, raw_fallback=True)
    return _Zlib(zlib.MAX_WBITS | 16)


async def _read_capped(feed: str, response: httpx.Response, max_body_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > max_body_bytes:
        raise FeedError(feed, f"body larger than {max_body_bytes} bytes (Content-Length {int(declared)})")
    decoder = _decoder(feed, response)
    chunks: list[bytes] = []
    size = 0
    # Decoded here rather than by httpx, which decodes each piece whole: 1.6 kB of brotli is 1 GB in memory before
    # anything can count it. Each piece is decoded only up to the cap, so a small compression bomb costs no more
    # memory than a large body.
    try:
        async for raw in response.aiter_raw():
            piece = decoder.decode(raw, max_body_bytes + 1 - size)
            while True:
                size += len(piece)
                if size > max_body_bytes:
                    raise FeedError(feed, f"body larger than {max_body_bytes} bytes")
                chunks.append(piece)
                if not decoder.pending():
                    break
                piece = decoder.decode(b"", max_body_bytes + 1 - size)
    except _DECODING_ERRORS as exc:
        raise FeedError(feed, f"body could not be decoded: {exc}") from None
    return b"".join(chunks)


async def _fetch_http(
    client: httpx.AsyncClient, source: FeedSource, etag: str | None, last_modified: str | None, max_body_bytes: int
) -> FetchResult:
    feed = source.id
    headers: dict[str, str] = {}
    if etag := _header_safe(etag):
        headers["If-None-Match"] = etag
    if last_modified := _header_safe(last_modified):
        headers["If-Modified-Since"] = last_modified
    deadline_s = client.timeout.read or client.timeout.connect or 60.0
    try:
        async with asyncio.timeout(deadline_s), client.stream("GET", source.url, headers=headers) as response:
            if response.status_code == 304:
                body = None
            elif 200 <= response.status_code < 300:
                body = await _read_capped(feed, response, max_body_bytes)
            else:
                raise _status_error(feed, response)
    except TimeoutError:
        raise FetchError(feed, f"no complete response within {deadline_s:g} s") from None
    except httpx.TimeoutException as exc:
        raise FetchError(feed, f"timed out ({type(exc).__name__})") from None
    except PrivateAddressError as exc:
        raise as_feed_error(feed, exc) from None
    except httpx.TooManyRedirects:
        raise FeedError(feed, f"more than {client.max_redirects} redirects") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FeedError(feed, f"bad URL {source.url!r}: {exc}") from None
    except httpx.TransportError as exc:
        raise FetchError(feed, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
    return FetchResult(
        status=response.status_code,
        body=body,
        etag=response.headers.get("etag") or (etag if body is None else None),
        last_modified=response.headers.get("last-modified") or (last_modified if body is None else None),
        content_type=response.headers.get("content-type"),
        url=str(response.url),
        not_modified=body is None,
        headers=_schedule_headers(response),
        # Only when every hop was permanent may the registry keep the new address (RFC 9110 §15.4.2, §15.4.9).
        moved_to=str(response.url) if response.history and all(
            r.status_code in (301, 308) for r in response.history) else None,
    )


# What next_check reads: RFC 9111 freshness (Cache-Control, Expires against Date, Age) and RFC 9110 Retry-After.
_SCHEDULE_HEADERS = ("cache-control", "expires", "date", "age", "retry-after")


def _schedule_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name][:256] for name in _SCHEDULE_HEADERS if name in response.headers}


def _local_path(url: str) -> Path | None:
    """The path a `file://` URL or a plain path names; None for anything that is not local."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        return Path(url2pathname(unquote(parts.path)))
    # A one-letter scheme is a Windows drive, not a URL.
    if not parts.scheme or len(parts.scheme) == 1:
        return Path(url)
    return None


def _read_file(feed: str, path: Path, last_modified: str | None, max_body_bytes: int) -> FetchResult:
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            mtime = formatdate(stat.st_mtime, usegmt=True)
            url = path.resolve().as_uri()
            if last_modified is not None and last_modified == mtime:
                return FetchResult(304, None, None, mtime, None, url, not_modified=True)
            if stat.st_size > max_body_bytes:
                raise FeedError(feed, f"body larger than {max_body_bytes} bytes ({stat.st_size} bytes on disk)")
            # Read one byte past the cap: files can grow between fstat and read (and /dev/zero has no size).
            body = handle.read(max_body_bytes + 1)
    except FileNotFoundError:
        raise FeedError(feed, f"no such file: {path}") from None
    except IsADirectoryError:
        raise FeedError(feed, f"is a directory: {path}") from None
    except OSError as exc:
        raise FeedError(feed, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(body) > max_body_bytes:
        raise FeedError(feed, f"body larger than {max_body_bytes} bytes")
    return FetchResult(200, body, None, mtime, None, url, not_modified=False)


async def fetch_feed(
    client: httpx.AsyncClient,
    source: FeedSource,
    *,
    etag: str | None,
    last_modified: str | None,
    max_body_bytes: int,
) -> FetchResult:
    """Fetch one feed document, conditionally, with its size bounded.

    `http(s)` URLs go through `client` (redirects followed, `If-None-Match`/`If-Modified-Since` sent when given, the
    whole exchange bounded by the client's read timeout). `file://` URLs and plain paths are read from disk, so a
    registry can point at local files; there `last_modified` is compared with the file's mtime.

    Args:
        client: The shared client from `build_client`.
        source: The feed; `source.id` names it in errors.
        etag: The ETag from the previous fetch, if any.
        last_modified: The Last-Modified from the previous fetch, if any.
        max_body_bytes: Bodies past this size are refused (checked on Content-Length and while streaming).

    Returns:
        The result; `body` is None exactly when `not_modified`.

    Raises:
        FetchError: May succeed later: timeout, connection failure, HTTP 429 or 5xx (with any Retry-After in the
            reason).
        FeedError: Will fail again: other 4xx, a body over the cap, too many redirects, a bad URL, a missing file.
    """
    scheme = urlsplit(source.url).scheme.lower()
    if scheme in ("http", "https"):
        return await _fetch_http(client, source, etag, last_modified, max_body_bytes)
    path = _local_path(source.url)
    if path is None:
        raise FeedError(source.id, f"unsupported URL {source.url!r}")
    return await asyncio.to_thread(_read_file, source.id, path, last_modified, max_body_bytes)
