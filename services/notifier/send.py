"""One webhook request: the signed POST, its answer sorted into delivered / retry / permanent, and the HTTP client.

Hook URLs are not checked against private addresses (the feed guard of `services.poller.guard` is not applied):
hooks are set by the operator, and alerting targets are often on an intranet or loopback.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from schemas.subscriptions import Hook
from services.notifier.policy import Verdict, retry_after_s, verdict
from services.notifier.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from services.settings import Settings

MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20


def build_hook_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client for webhooks; the caller closes it. Redirects are not followed: a hook that
    moved is reconfigured, not chased (a 3xx is a permanent failure). Each request sets its hook's own timeout."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.hook_timeout_s, connect=settings.http_connect_timeout_s),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS),
        headers={"User-Agent": settings.user_agent},
        follow_redirects=False,
    )


@dataclass(frozen=True)
class Attempt:
    """How one request went: the status (None when the receiver never answered), the error in words, the wait the
    receiver asked for (Retry-After), and how long it took."""

    verdict: Verdict
    status: int | None
    error: str | None
    asked_wait_s: float | None
    elapsed_ms: float

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.delivered


def request_headers(hook: Hook, body: bytes, key: str, timestamp: int) -> dict[str, str]:
    """The headers of a delivery: JSON, the idempotency key, the timestamp and the signature over both."""
    return {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
    }


async def post(client: httpx.AsyncClient, hook: Hook, body: bytes, key: str) -> Attempt:
    """POST `body` to `hook` once, signed now, within the hook's timeout (for the whole exchange, so a receiver that
    drips its answer cannot hold the request open). Never raises for the receiver's sake."""
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    asked: float | None = None
    try:
        async with asyncio.timeout(hook.timeout_s):
            response = await client.post(str(hook.url), content=body, timeout=hook.timeout_s,
                                         headers=request_headers(hook, body, key, int(time.time())))
        status = response.status_code
        asked = retry_after_s(status, response.headers.get("retry-after"), datetime.now(UTC))
        if not 200 <= status < 300:
            error = f"HTTP {status} {response.reason_phrase}".rstrip()
    except TimeoutError:
        error = f"no answer within {hook.timeout_s:g} s"
    except httpx.TimeoutException as exc:
        error = f"timed out ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    elapsed_ms = (time.monotonic() - started) * 1000
    return Attempt(verdict(status), status, error, asked, round(elapsed_ms, 1))
