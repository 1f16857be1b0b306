"""Webhook signatures: what livedesk sends and what a receiver checks.

Each delivery carries `X-Livedesk-Timestamp: <unix seconds>` and
`X-Livedesk-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the hook's secret>`.
Signing the timestamp with the body lets a receiver refuse replays older than its tolerance. This module imports
nothing from livedesk, so a receiver written in Python can copy it or import it as is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "sha256="
TIMESTAMP_HEADER = "X-Livedesk-Timestamp"
SIGNATURE_HEADER = "X-Livedesk-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Livedesk-Signature` value of `body` sent at `timestamp` (unix seconds) for a hook with `secret`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return SCHEME + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | int, body: bytes, signature: str, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """Whether `signature` is livedesk's signature of `body` at `timestamp` with `secret`, and `timestamp` lies within
    `tolerance_s` of `now` (default: the clock) either way.

    Pass the raw request body, byte for byte, and the two headers as received. The comparison takes constant time;
    a malformed timestamp or signature is simply not valid.
    """
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    expected = sign(secret, sent_at, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", errors="replace"))
