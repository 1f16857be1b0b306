"""X-Hub-Signature checking (WebSub §8), table-driven."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.websub.signature import sign, signature_valid

BODY = b"<feed>...</feed>"


def _digest(method: str, secret: str = "s3cret", body: bytes = BODY) -> str:
    return hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()


@pytest.mark.parametrize(
    ("case", "header", "valid"),
    [
        ("sha256", f"sha256={_digest('sha256')}", True),
        ("sha1, still sent by many hubs", f"sha1={_digest('sha1')}", True),
        ("sha384", f"sha384={_digest('sha384')}", True),
        ("sha512", f"sha512={_digest('sha512')}", True),
        ("method in upper case", f"SHA256={_digest('sha256')}", True),
        ("digest in upper case", f"sha256={_digest('sha256').upper()}", True),
        ("wrong secret", f"sha256={_digest('sha256', secret='other')}", False),
        ("signature of another body", f"sha256={_digest('sha256', body=BODY + b' ')}", False),
        ("method and digest that do not match", f"sha1={_digest('sha256')}", False),
        ("unknown method", f"md5={hashlib.md5(BODY).hexdigest()}", False),
        ("no method", _digest("sha256"), False),
        ("empty", "", False),
        ("missing", None, False),
    ],
)
def test_signature_valid(case: str, header: str | None, valid: bool) -> None:
    assert signature_valid("s3cret", BODY, header) is valid, case


def test_sign_is_what_signature_valid_accepts() -> None:
    assert signature_valid("k", b"body", sign("k", b"body"))
    assert not signature_valid("k", b"body!", sign("k", b"body"))
