"""A real HTTP server on loopback whose routes misbehave on purpose: bodies of any size streamed as they are
written (never held in memory), bodies that never end, bytes dripped one at a time, headers that never finish.

Each route records how many body bytes it managed to send before the client hung up, so a test can tell that a
client stopped reading early.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[["HostileHandler"], None]
_CHUNK = 64 * 1024


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        try:
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: what a client that stops at its cap or deadline does

    def count_sent(self, size: int) -> None:
        with self.server.lock:
            self.server.sent[self.path] = self.server.sent.get(self.path, 0) + size

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HostileServer(ThreadingHTTPServer):
    """Serves `routes` (path → route); use as a context manager. `url(path)` is the address of a route."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # releases routes that drip or stream forever
        self.shutdown()
        self.server_close()
        self._thread.join(10)


def static(body: bytes, content_type: str = "application/rss+xml", **headers: str) -> Route:
    """A well-behaved answer: `body` with its length."""

    def route(handler: HostileHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.count_sent(len(body))

    return route


def _feed_stream(total: int | None) -> Iterator[bytes]:
    """A feed-like stream of `total` bytes (endless when None), made chunk by chunk as it is sent."""
    head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>big</title>'
    chunk = b"<item><guid>g</guid><title>" + b"x" * (_CHUNK - 40) + b"</title></item>"
    yield head
    sent = len(head)
    while total is None or sent < total:
        piece = chunk if total is None else chunk[: total - sent]
        yield piece
        sent += len(piece)


def streamed(total_bytes: int | None, *, declare_length: bool, content_encoding: str | None = None,
             chunks: Callable[[], Iterator[bytes]] | None = None) -> Route:
    """A body of `total_bytes` (None: it never ends), generated while it is sent.

    With `declare_length` it states its Content-Length up front; without, it is sent chunked. `chunks` replaces the
    generated body (e.g. the pieces of a compressed stream).
    """

    def route(handler: HostileHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        if content_encoding:
            handler.send_header("Content-Encoding", content_encoding)
        if declare_length and total_bytes is not None:
            handler.send_header("Content-Length", str(total_bytes))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for piece in (chunks or (lambda: _feed_stream(total_bytes)))():
            if handler.server.stopping.is_set():
                return
            if declare_length:
                handler.wfile.write(piece)
            else:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            handler.count_sent(len(piece))
        if not declare_length:
            handler.wfile.write(b"0\r\n\r\n")

    return route


def drip(interval_s: float = 1.0, *, length: int = 1_000) -> Route:
    """Declares a body of `length` bytes, then sends one byte every `interval_s` (each byte well within any read
    timeout)."""

    def route(handler: HostileHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        for _ in range(length):
            if handler.server.stopping.wait(interval_s):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()
            handler.count_sent(1)

    return route


def slow_headers(interval_s: float = 1.0) -> Route:
    """Sends the status line, then a header one byte every `interval_s`, never finishing the headers."""

    def route(handler: HostileHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        for byte in b"X-Slow: " + b"a" * 10_000:
            if handler.server.stopping.wait(interval_s):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    return route


def silent(handler: HostileHandler) -> None:
    """Accepts the request and never answers."""
    handler.server.stopping.wait(600)

