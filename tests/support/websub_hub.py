"""A small WebSub hub on loopback (W3C WebSub §5–§8), for tests of the subscriber side.

It accepts subscription requests with 202, verifies intent on the subscriber's callback from a thread of its own
(as a real hub does, after answering), and distributes content signed with each subscriber's secret.
"""

from __future__ import annotations

import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.websub.signature import sign


@dataclass
class HubSubscription:
    callback: str
    secret: str | None
    lease_s: int


class WebSubHub:
    """Records every request (`requests`, the form fields) and every verification outcome (`verifications`).

    `lease_s` overrides the lease the subscriber asks for (a short one tests renewal); `refuse_with` answers every
    subscription request with that status instead of 202; `verify_before_answering` verifies before it answers.
    """

    def __init__(self, lease_s: int | None = None, refuse_with: int | None = None,
                 verify_before_answering: bool = False) -> None:
        self.lease_s = lease_s
        self.refuse_with = refuse_with
        self.verify_before_answering = verify_before_answering
        self.requests: list[dict[str, str]] = []
        self.verifications: list[tuple[str, str, bool]] = []  # (mode, topic, confirmed)
        self.subscriptions: dict[str, dict[str, HubSubscription]] = {}  # topic → callback → subscription
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
                with hub._lock:
                    hub.requests.append(form)
                status = hub.refuse_with or 202
                if status == 202 and hub.verify_before_answering:
                    hub._verify(form)  # a quick hub: the subscriber hears the verification before the answer
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status == 202 and not hub.verify_before_answering:
                    threading.Thread(target=hub._verify, args=(form,), daemon=True).start()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hub"

    def _verify(self, form: dict[str, str]) -> None:
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        lease_s = self.lease_s or int(form.get("hub.lease_seconds", "3600"))
        challenge = secrets.token_hex(8)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(lease_s)
        confirmed = _get(f"{callback}?{urllib.parse.urlencode(query)}") == (200, challenge.encode())
        with self._lock:
            self.verifications.append((mode, topic, confirmed))
            if confirmed and mode == "subscribe":
                self.subscriptions.setdefault(topic, {})[callback] = HubSubscription(
                    callback, form.get("hub.secret"), lease_s
                )
            elif confirmed:
                self.subscriptions.get(topic, {}).pop(callback, None)

    def deny(self, topic: str, callback: str, reason: str) -> int:
        """Tell a subscriber its subscription is refused or over (WebSub §5.2); returns the callback's status."""
        with self._lock:
            self.subscriptions.get(topic, {}).pop(callback, None)
        query = {"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason}
        return _get(f"{callback}?{urllib.parse.urlencode(query)}")[0]

    def publish(self, topic: str, body: bytes, *, content_type: str = "application/atom+xml",
                secret: str | None = None) -> list[int]:
        """Distribute `body` to every verified subscriber of `topic` (signed with `secret` if given, else with each
        subscriber's own); returns their statuses."""
        with self._lock:
            targets = list(self.subscriptions.get(topic, {}).values())
        statuses = []
        for target in targets:
            headers = {"Content-Type": content_type, "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"'}
            key = secret or target.secret
            if key:
                headers["X-Hub-Signature"] = sign(key, body)
            request = urllib.request.Request(target.callback, data=body, headers=headers, method="POST")
            statuses.append(_send(request)[0])
        return statuses

    def __enter__(self) -> WebSubHub:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _get(url: str) -> tuple[int, bytes]:
    return _send(urllib.request.Request(url))
