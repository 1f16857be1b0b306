"""The WebSub callback, `/websub/{feed_id}/{token}`: hubs verify our intent with GET and push content with POST.

A push is taken through the poller's own path (`ingest_document`), so an entry is published once whether it came by
push or by poll, and a pushed edit is a revision like a polled one.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.errors import FeedError
from services.poller.feeds import FeedRegistry
from services.poller.ingest import ingest_document
from services.stage import StageContext
from services.websub.signature import signature_valid
from services.websub.subscriptions import Subscription, SubscriptionState, SubscriptionStore

log = structlog.get_logger(__name__)


Handler = Callable[[Request], Awaitable[Response]]


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _answering_plainly(handler: Handler) -> Handler:
    """`handler`, with whatever it fails on answered in a few words and logged here: a client never sees a trace.

    Redis failing is 503 with Retry-After (a hub tries a push again later); a client that hangs up mid-body gets
    nothing it will read; anything else is a bug, logged with its traceback and answered 500.
    """

    async def answer(request: Request) -> Response:
        feed_id = request.path_params.get("feed_id")
        try:
            return await handler(request)
        except RedisError as error:
            log.warning("websub callback cannot reach Redis", source_id=feed_id, error=str(error))
            return PlainTextResponse("temporarily unavailable", status_code=503, headers={"Retry-After": "60"})
        except ClientDisconnect:
            log.info("websub client hung up before sending its whole body", source_id=feed_id)
            return Response(status_code=400)
        except Exception:
            log.exception("websub callback failed", source_id=feed_id)
            return PlainTextResponse("internal error", status_code=500)

    return answer


def websub_routes(ctx: StageContext) -> list[Route]:
    """The callback routes of one process, bound to its context."""
    store = SubscriptionStore(ctx.redis, ctx.keys)
    registry = FeedRegistry(ctx.redis, ctx.keys)
    settings = ctx.settings

    async def subscription_for(request: Request) -> Subscription | None:
        """The subscription the path names, if its token is right (compared in constant time)."""
        found = await store.get(request.path_params["feed_id"])
        token = request.path_params["token"]
        if found is None or not token.isascii() or not hmac.compare_digest(found.token.encode(), token.encode()):
            return None
        return found

    async def verify(request: Request) -> Response:
        feed_id = request.path_params["feed_id"]
        if await subscription_for(request) is None:
            return PlainTextResponse("no such subscription", status_code=404)
        query = request.query_params
        mode, topic = query.get("hub.mode", ""), query.get("hub.topic", "")
        if mode == "denied":
            retry_at = datetime.now(UTC) + timedelta(seconds=settings.poll_max_interval_s)
            reason = query.get("hub.reason", "no reason given")
            if await store.denied(feed_id, topic, reason, retry_at):
                log.warning("websub subscription denied by the hub", source_id=feed_id, topic=topic, reason=reason)
            return PlainTextResponse("ok")
        challenge = query.get("hub.challenge")
        if mode not in ("subscribe", "unsubscribe") or not topic or not challenge:
            return PlainTextResponse("hub.mode, hub.topic and hub.challenge are required", status_code=400)
        lease_text = query.get("hub.lease_seconds", "")
        # ASCII digits only (str.isdigit accepts "²"), and never longer than the lease we asked for.
        lease_s = (min(int(lease_text), settings.websub_lease_s)
                   if lease_text.isascii() and lease_text.isdecimal() and len(lease_text) < 12 else None)
        if mode == "subscribe" and lease_s is None:
            return PlainTextResponse("hub.lease_seconds is required to subscribe", status_code=400)
        if not await store.confirm(feed_id, mode, topic, lease_s, datetime.now(UTC)):
            # Not something we asked for (WebSub §5.3.1): refusing makes the hub drop it.
            log.warning("websub verification refused", source_id=feed_id, mode=mode, topic=topic)
            return PlainTextResponse("no such subscription request", status_code=404)
        log.info("websub verified", source_id=feed_id, mode=mode, topic=topic, lease_s=lease_s)
        return PlainTextResponse(challenge)

    async def receive(request: Request) -> Response:
        feed_id = request.path_params["feed_id"]
        subscription = await subscription_for(request)
        source = await registry.get(feed_id)
        if subscription is None or source is None or subscription.state is SubscriptionState.unsubscribing:
            # WebSub §7: 410 tells the hub this subscription is over.
            return PlainTextResponse("no such subscription", status_code=410)
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdecimal() and int(declared) > settings.http_max_body_bytes:
            log.warning("websub push refused: too large", source_id=feed_id, declared=declared)
            return PlainTextResponse("body too large", status_code=413)
        try:
            # As for a fetch, the read timeout bounds the whole body: a client dripping it cannot hold a connection.
            async with asyncio.timeout(settings.http_timeout_s):
                body = await _read_capped(request, settings.http_max_body_bytes)
        except _TooLarge:
            log.warning("websub push refused: too large", source_id=feed_id, limit=settings.http_max_body_bytes)
            return PlainTextResponse("body too large", status_code=413)
        except TimeoutError:
            log.warning("websub push refused: body too slow", source_id=feed_id, deadline_s=settings.http_timeout_s)
            return PlainTextResponse(f"body not received within {settings.http_timeout_s:g} s", status_code=408)
        if not signature_valid(subscription.secret, body, request.headers.get("x-hub-signature")):
            # WebSub §8: acknowledge, but ignore: a forger learns nothing, and the content is not used.
            log.warning("websub push ignored: missing or wrong signature", source_id=feed_id)
            return Response(status_code=202)
        received_at = datetime.now(UTC)
        try:
            ingested = await ingest_document(
                ctx.redis, ctx.keys, source, body,
                fetched_at=received_at, content_type=request.headers.get("content-type"), base_url=subscription.topic,
            )
        except FeedError as error:
            log.warning("websub push is not a usable feed", source_id=feed_id, error=str(error))
            return PlainTextResponse(str(error), status_code=400)
        async with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.hset(ctx.keys.feed_state(feed_id), "last_push_at", received_at.isoformat())
            pipe.hincrby(ctx.keys.feed_state(feed_id), "pushes", 1)
            await pipe.execute()
        log.info("websub push", source_id=feed_id, published=len(ingested.published))
        return Response(status_code=202)

    return [
        Route("/websub/{feed_id}/{token}", _answering_plainly(verify), methods=["GET"]),
        Route("/websub/{feed_id}/{token}", _answering_plainly(receive), methods=["POST"]),
    ]
