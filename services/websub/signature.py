"""Signatures of pushed content (WebSub §8: `X-Hub-Signature: method=hexdigest`, HMAC of the body with the secret)."""

from __future__ import annotations

import hashlib
import hmac

# WebSub §8 lets the hub pick; sha1 is still what many deployed hubs send.
ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    """The `X-Hub-Signature` value a hub sends for `body`."""
    return f"{method}={hmac.new(secret.encode(), body, method).hexdigest()}"


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is a signature of `body` with `secret` by one of the WebSub algorithms.

    Compared in constant time; a missing, malformed or unknown-method header is invalid.
    """
    if not header or "=" not in header or not header.isascii():
        return False
    method, _, digest = header.strip().partition("=")
    method = method.strip().lower()
    if method not in ALGORITHMS:
        return False
    expected = hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()
    return hmac.compare_digest(expected, digest.strip().lower())
