"""A real HTTP server on loopback that serves feeds the test controls."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def rss(*items: tuple[str, str, str]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><description>{text}</description>"
        f"<pubDate>Fri, 24 Oct 2025 09:{n:02d}:00 GMT</pubDate></item>"
        for n, (guid, title, text) in enumerate(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{body}</channel></rss>'.encode()


def atom(hub: str, self_url: str, *entries: tuple[str, str, str]) -> bytes:
    """An Atom feed that names a WebSub hub and its own URL (the topic)."""
    items = "".join(
        f"<entry><id>{guid}</id><title>{title}</title><updated>2025-10-24T09:{n:02d}:00Z</updated>"
        f"<summary>{text}</summary></entry>"
        for n, (guid, title, text) in enumerate(entries)
    )
    return (
        f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:feed</id>'
        f'<updated>2025-10-24T09:00:00Z</updated><link rel="hub" href="{hub}"/><link rel="self" href="{self_url}"/>'
        f"{items}</feed>"
    ).encode()


def free_port() -> int:
    """A loopback port free at the time of asking (for a server that must know its URL before it starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A whole document sent (a 200): to which path and client (its User-Agent), and when the last byte was written."""

    path: str
    agent: str
    body: bytes
    at: float


class FeedServer:
    """Serves `routes` (path → body) with an ETag, answering 304 to a matching If-None-Match.

    Records every request, when it started, and the most requests in flight at once per path and overall; `delay_s`
    makes each answer slow, so that overlapping requests would show; `honour_validators=False` sends the whole body
    every time, as servers that ignore conditional requests do.
    """

    def __init__(self, delay_s: float = 0.0, *, honour_validators: bool = True) -> None:
        self.routes: dict[str, bytes] = {}
        # path → (status, headers): answered instead of the route, e.g. (503, {"Retry-After": "120"}).
        self.failures: dict[str, tuple[int, dict[str, str]]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.started: list[tuple[str, float]] = []
        self.most_in_flight: dict[str, int] = {}
        self.most_in_flight_overall = 0
        # Every 200 sent, in order: which client was given which version of a feed (pollers tell apart by agent).
        self.served: list[Served] = []
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append((self.path, self.headers.get("If-None-Match")))
                    server.started.append((self.path, time.monotonic()))
                    server._in_flight[self.path] = server._in_flight.get(self.path, 0) + 1
                    server.most_in_flight[self.path] = max(server.most_in_flight.get(self.path, 0),
                                                           server._in_flight[self.path])
                    server.most_in_flight_overall = max(server.most_in_flight_overall,
                                                        sum(server._in_flight.values()))
                try:
                    time.sleep(delay_s)
                    self._answer()
                finally:
                    with server._lock:
                        server._in_flight[self.path] -= 1

            def _answer(self) -> None:
                if self.path in server.failures:
                    status, headers = server.failures[self.path]
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.routes.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
                if honour_validators and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with server._lock:
                    server.served.append(Served(self.path, self.headers.get("User-Agent", ""), body,
                                                time.monotonic()))

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def paths_in_flight(self) -> set[str]:
        """The paths with a request being answered now (its answer not yet written in full)."""
        with self._lock:
            return {path for path, count in self._in_flight.items() if count}

    def __enter__(self) -> FeedServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
