"""The WebSub callback against hostile clients, served by uvicorn on loopback as the HTTP process serves it:
only pushes signed with the subscription's secret are taken, a pushed body must be a usable feed, a body sent too
slowly or too large is refused, and no failure shows a client a stack trace."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis

from schemas import FeedSource, RawUpdate
from services.poller.feeds import FeedRegistry
from services.settings import Settings
from services.stage import StageContext
from services.web import build_web_app, http_server
from services.websub import callback as callback_module
from services.websub.subscriber import callback_url
from services.websub.subscriptions import SubscriptionStore, offer_hub
from services.wire import DATA_FIELD
from tests.support import hostile_feeds as hostile

pytestmark = pytest.mark.redis

TIMEOUT_S = 3.0  # long enough that a push sent meanwhile is surely served before it ends
CAP = 512 * 1024
TOPIC = "http://feeds.invalid/a.xml"


@contextlib.asynccontextmanager
async def serving(ctx: StageContext) -> AsyncIterator[str]:
    """The HTTP process's app for `ctx` on a loopback port of its own; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = http_server(build_web_app(ctx), "127.0.0.1", sock.getsockname()[1])
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await asyncio.gather(task, return_exceptions=True)
        sock.close()


@dataclass
class Callback:
    url: str
    secret: str
    settings: Settings
    redis: Redis

    def sign(self, body: bytes, method: str = "sha256", secret: str | None = None) -> str:
        key = (secret if secret is not None else self.secret).encode()
        return f"{method}={hmac.new(key, body, getattr(hashlib, method)).hexdigest()}"

    async def push(self, body: bytes, signature: str | bytes | None = None) -> httpx.Response:
        value = signature.encode() if isinstance(signature, str) else signature
        headers = {b"X-Hub-Signature": value} if value is not None else {}
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(self.url, content=body, headers=headers)

    async def published(self) -> list[str | None]:
        rows = cast(list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(self.settings.keys.raw))
        return [RawUpdate.model_validate_json(fields[DATA_FIELD.encode()]).entry.guid for _, fields in rows]


async def subscribed(redis: Redis, settings: Settings) -> tuple[str, str]:
    """Feed 'a' in the registry with a subscription to a hub: its secret, and the path of its callback."""
    await FeedRegistry(redis, settings.keys).upsert([FeedSource(id="a", name="A", url=TOPIC)], due=datetime.now(UTC))
    await offer_hub(redis, settings.keys, "a", hub_url="http://hub.invalid/", topic=TOPIC)
    subscription = await SubscriptionStore(redis, settings.keys).get("a")
    assert subscription is not None
    return subscription.secret, callback_url("", subscription)


@pytest.fixture
async def callback(redis: Redis, settings: Settings) -> AsyncIterator[Callback]:
    settings = settings.model_copy(update={"http_timeout_s": TIMEOUT_S, "http_max_body_bytes": CAP})
    secret, path = await subscribed(redis, settings)
    async with serving(StageContext(settings, redis)) as base:
        yield Callback(base + path, secret, settings, redis)


def one_entry(guid: str) -> bytes:
    return hostile.rss(hostile.item(guid, f"Entry {guid}", "text"))


async def test_only_pushes_signed_with_the_subscription_secret_are_taken(callback: Callback) -> None:
    """Every push is acknowledged (WebSub §8: a forger learns nothing), and only the rightly signed are published."""
    forged: dict[str, str | bytes | None] = {
        "no-signature": None,
        "empty": "",
        "wrong-secret": callback.sign(one_entry("wrong-secret"), secret="guessed"),
        "another-body": callback.sign(one_entry("another-body") + b" "),
        "unknown-method": "md5=" + hashlib.md5(one_entry("unknown-method")).hexdigest(),
        "no-method": callback.sign(one_entry("no-method")).partition("=")[2],
        "method-mismatch": "sha1=" + callback.sign(one_entry("method-mismatch")).partition("=")[2],
        "not-ascii": b"sha256=\xe9\xe9",
        "ten-kilobytes": "sha256=" + "ab" * 5_000,
    }
    genuine = {"sha1": callback.sign(one_entry("sha1"), "sha1"),
               "sha256": callback.sign(one_entry("sha256")),
               "sha512-upper-case": callback.sign(one_entry("sha512-upper-case"), "sha512").upper()}
    statuses = {guid: (await callback.push(one_entry(guid), signature)).status_code
                for guid, signature in (forged | genuine).items()}
    assert statuses == dict.fromkeys(forged | genuine, 202)
    assert await callback.published() == list(genuine)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"<!doctype html><html><body>Sorry</body></html>", "not a feed: looks like HTML"),
        (json.dumps({"items": [1, 2]}).encode(), "not a feed: looks like JSON"),
        (gzip.compress(one_entry("zipped")), "not a feed: looks like gzip-compressed data"),
        (b"\xfd\xc3\x28\xe9" * 50, "not a feed: looks like plain text"),
        (hostile.billion_laughs(), "refused as an XML bomb: entity 'lol9' declared in its DTD expands to more than"),
        (hostile.quadratic_blowup(50_000, 30), "refused as an XML bomb: references to entities declared"),
        (hostile.attribute_flood(1_000), "refused: an element has more than 256 attributes"),
        (b'<?xml version="1.0"?><rss version="2.0"><chann', "broken XML at line 1: unclosed token"),
    ],
    ids=["empty", "html", "json", "gzip", "junk", "billion-laughs", "quadratic-blowup", "attribute-flood", "cut-off"],
)
async def test_a_signed_push_that_is_not_a_usable_feed_is_refused_with_the_reason(
    callback: Callback, body: bytes, reason: str
) -> None:
    response = await callback.push(body, callback.sign(body))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(f"feed a: {reason}"), response.text
    assert "\n" not in response.text
    assert "Traceback" not in response.text
    assert await callback.published() == []
    good = one_entry("good")
    assert (await callback.push(good, callback.sign(good))).status_code == 202
    assert await callback.published() == ["good"]


async def test_a_body_sent_too_slowly_is_refused_and_others_are_served_meanwhile(callback: Callback) -> None:
    """A client that declares a body and sends it a byte at a time holds its connection for the read timeout at most;
    a push sent meanwhile is taken at once."""
    target = httpx.URL(callback.url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    writer.write(f"POST {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}\r\nContent-Length: 1000\r\n"
                 f"X-Hub-Signature: sha256=00\r\n\r\n".encode())
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def drip() -> bytes:
        while True:
            writer.write(b"<")
            await writer.drain()
            try:
                return await asyncio.wait_for(reader.read(4096), timeout=0.5)
            except TimeoutError:
                continue

    try:
        slow = asyncio.create_task(drip())
        await asyncio.sleep(0.3)
        good = one_entry("meanwhile")
        response = await callback.push(good, callback.sign(good))
        assert response.status_code == 202
        assert not slow.done(), "the slow push was still being received"
        answer = await asyncio.wait_for(slow, timeout=TIMEOUT_S + 10)
        took_s = loop.time() - started
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert answer.endswith(f"body not received within {TIMEOUT_S:g} s".encode())
    assert took_s < TIMEOUT_S + 5
    assert await callback.published() == ["meanwhile"]


async def test_a_body_past_the_cap_is_refused_while_it_is_read(callback: Callback) -> None:
    """Declared or not, a body past the cap is 413; the callback stops reading there."""

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):  # 640 MB if it were all read
            yield b" " * 65_536

    declared = await callback.push(b" " * (CAP + 1), "sha256=00")
    async with httpx.AsyncClient(timeout=30) as client:
        streamed = await client.post(callback.url, content=endless())
    assert (declared.status_code, declared.text) == (413, "body too large")
    assert (streamed.status_code, streamed.text) == (413, "body too large")


async def exchange(target: httpx.URL, request: bytes, *, hang_up: bool = False) -> bytes:
    """Send `request` as bytes on a new connection and read the answer (b"" when the server just closes)."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(request)
        await writer.drain()
        if hang_up:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(65_536), timeout=10)
    finally:
        writer.close()


async def test_malformed_requests_get_a_client_error_and_the_callback_keeps_working(callback: Callback) -> None:
    target = httpx.URL(callback.url)
    base = f"http://{target.host}:{target.port}"
    async with httpx.AsyncClient(timeout=10) as client:
        answers = [
            await client.get(callback.url + "?hub.mode=%ff%fe&hub.topic=%zz&hub.challenge=%"),
            await client.get(callback.url, params={"hub.mode": "subscribe", "hub.topic": TOPIC,
                                                    "hub.challenge": "c" * 8_000, "hub.lease_seconds": "²"}),
            await client.put(callback.url, content=b"x"),
            await client.delete(callback.url),
            await client.get(f"{base}/websub/a/t%C3%A9"),
            await client.post(f"{base}/websub/{'x' * 4_000}/token", content=b"x"),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.method, answer.request.url, answer.status_code)
        assert "Traceback" not in answer.text
    head = f"POST {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}\r\n"
    raw = [
        await exchange(target, f"{head}Content-Length: 99999999999999999999\r\n\r\nx".encode()),
        await exchange(target, f"{head}Content-Length: twelve\r\n\r\nx".encode()),
        # A body shorter than declared, then the client hangs up.
        await exchange(target, f"{head}Content-Length: 1000\r\n\r\n<rss>".encode(), hang_up=True),
        await exchange(target, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(200)),  # TLS, not HTTP
    ]
    for reply in raw:
        assert reply == b"" or reply.split(b" ", 2)[1][:1] == b"4", reply
        assert b"Traceback" not in reply
    good = one_entry("after")
    assert (await callback.push(good, callback.sign(good))).status_code == 202
    assert await callback.published() == ["after"]


async def test_failures_inside_are_answered_without_a_stack_trace(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis unreachable is 503 with Retry-After (the hub tries later); a bug is a bare 500. Neither says more."""
    secret, path = await subscribed(redis, settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = Redis.from_url(f"redis://127.0.0.1:{closed_port}/0", socket_connect_timeout=0.5)
    body = one_entry("g")
    signature = f"sha256={hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}"
    try:
        async with serving(StageContext(settings, unreachable)) as base, httpx.AsyncClient(timeout=10) as client:
            verify = await client.get(base + path, params={"hub.mode": "subscribe", "hub.topic": TOPIC,
                                                           "hub.challenge": "c", "hub.lease_seconds": "60"})
            push = await client.post(base + path, content=body, headers={"X-Hub-Signature": signature})
    finally:
        await unreachable.aclose()
    for answer in (verify, push):
        assert (answer.status_code, answer.text, answer.headers["retry-after"]) == (503, "temporarily unavailable",
                                                                                      "60")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(callback_module, "ingest_document", broken)
    async with serving(StageContext(settings, redis)) as base, httpx.AsyncClient(timeout=10) as client:
        bug = await client.post(base + path, content=body, headers={"X-Hub-Signature": signature})
    assert (bug.status_code, bug.text) == (500, "internal error")
