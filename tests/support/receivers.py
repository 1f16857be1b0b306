"""Real webhook receivers on loopback: each answers from a script the test gives (fail, stall, rate-limit, recover)
and records every request it got, so tests check what a receiver saw, not what livedesk meant to send."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """One answer: a status with headers, after stalling `stall_s` (or until the receiver's gate opens, `gated`)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0
    gated: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the receiver read it, and the status it answered (None: it never finished answering)."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int | None

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")

    @property
    def whole(self) -> bool:
        """Whether the body arrived whole (Content-Length bytes): a sender killed mid-request leaves it short, and
        this receiver answers all the same, to a sender no longer there."""
        return len(self.body) == int(self.headers.get("content-length") or 0)


class Receiver:
    """Answers POSTs with `script` in order, then with `then` forever. `gate` holds `gated` replies until set (the
    receiver sets it when it stops, so no handler thread outlives the test)."""

    def __init__(self, script: Iterable[Reply] = (), then: Reply = Reply()) -> None:
        self.script = list(script)
        self.then = then
        self.requests: list[Received] = []
        self.arrivals: list[str] = []  # Idempotency-Key of every request as it arrives, answered or not
        self.gate = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    reply = receiver.script.pop(0) if receiver.script else receiver.then
                    receiver.arrivals.append(self.headers.get("Idempotency-Key", ""))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if reply.gated:
                    receiver.gate.wait()
                time.sleep(reply.stall_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    answered: int | None = reply.status
                except OSError:
                    answered = None  # the client gave up first
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, answered))

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def accepted(self) -> list[Received]:
        """The requests answered 2xx, in the order they were answered."""
        with self._lock:
            return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def accepted_keys(self) -> list[str]:
        return [r.key for r in self.accepted()]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def failing(times: int, status: int = 500) -> Receiver:
    """Fails `times` requests with `status`, then accepts everything."""
    return Receiver([Reply(status)] * times)


def stalling(times: int, stall_s: float) -> Receiver:
    """Answers `times` requests only after `stall_s` (longer than the hook's timeout), then promptly."""
    return Receiver([Reply(stall_s=stall_s)] * times)


def rate_limited(times: int, retry_after: str) -> Receiver:
    """Answers `times` requests 429 with `Retry-After: retry_after`, then accepts."""
    return Receiver([Reply(429, {"Retry-After": retry_after})] * times)


def dead() -> Receiver:
    """Never answers until the test ends (every request waits on the gate)."""
    return Receiver(then=Reply(gated=True))


def closed_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
