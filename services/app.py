"""Assembles a livedesk process: the broker, the routers of the stages it runs, and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import httpx
import structlog
from faststream import FastStream
from faststream.redis import RedisBroker, RedisClusterBroker
from faststream.redis.configs.state import ConnectionState, RedisClusterConnectionState
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from services import dedup
from services.connection import LayoutFirstCluster, connect, is_cluster, node_url, reconnect_options
from services.console.auth import check_console_binding
from services.console.routes import build_console
from services.errors import ConfigurationError
from services.groups import ensure_groups, prune_consumers, trim
from services.notifier import stage as notifier
from services.notifier.deliver import Deliverers
from services.notifier.hooks import load_hooks_file
from services.notifier.send import build_hook_client
from services.poller.fetch import build_client
from services.poller.registry import load_registry
from services.poller.stage import Poller
from services.settings import Settings
from services.stage import DeadLetterMiddleware, StageContext, raise_if_cancelled
from services.tracker import stage as tracker
from services.web import EmbeddedServer, build_web_app, http_server
from services.websub.subscriber import Subscriber
from services.wire import JSONMessageFormat

log = structlog.get_logger(__name__)

# poller → raw → dedup → updates → tracker → changes → notifier (webhooks); push feeds raw from WebSub callbacks,
# console serves the API, the event stream and the page over HTTP.
STAGES = ("poller", "dedup", "tracker", "notifier", "push", "console")
# A plain stdlib logger: FastStream passes stdlib arguments (extra=, exc_info=), and the root handler that
# services.logs installs renders it like every other line.
_FASTSTREAM_LOG = logging.getLogger("livedesk.faststream")
# A consumer idle this long with nothing pending belongs to a process that has stopped.
_CONSUMER_IDLE_MS = 24 * 3600 * 1000
_ROUTERS = {"dedup": dedup.build_router, "tracker": tracker.build_router, "notifier": notifier.build_router}


class _ClusterBroker(RedisClusterBroker):
    """FastStream's cluster broker on a `services.connection.LayoutFirstCluster`: its client is told the cluster's
    layout before the subscribers start reading, and its reads and acks wait out a failover (that class says why)."""

    def _make_connection_state(self, connection_options: dict[str, Any], kwargs: dict[str, Any]
                               ) -> ConnectionState[Any]:
        return _LayoutFirstConnection(connection_options)

    async def start(self) -> None:
        client = await self.connect()
        await client.initialize()
        await super().start()


class _LayoutFirstConnection(RedisClusterConnectionState):
    """FastStream's cluster connection, its client made from the same options as FastStream's own but of livedesk's
    cluster class (it does not tell the server its library is FastStream: `CLIENT SETINFO` names redis-py)."""

    async def connect(self) -> RedisCluster:
        if self._client is None:
            options = {name: value for name, value in self._options.items() if value is not None}
            self._client = LayoutFirstCluster(**options)
            self._connected = True
        return self._client


def build_broker(ctx: StageContext, url: str, stages: Iterable[str]) -> RedisBroker:
    """A broker speaking livedesk's JSON wire format, with the routers of `stages` included; a cluster's broker for a
    cluster URL (`services.connection`)."""
    kind = _ClusterBroker if is_cluster(url) else RedisBroker
    broker = kind(
        node_url(url),
        message_format=JSONMessageFormat,
        middlewares=[DeadLetterMiddleware.factory(ctx.redis, ctx.keys, ctx.settings.max_deliveries)],
        logger=_FASTSTREAM_LOG,
        # FastStream's own received/processed lines go to debug: each handler writes one line of its own.
        log_level=logging.DEBUG,
        # Reads and acks ride out a server restart as the stages' own commands do. Past that, a subscriber logs the
        # failed read and tries again 5 s later (FastStream's loop); the process never exits for it.
        **reconnect_options(),
    )
    for stage in stages:
        if stage in _ROUTERS:
            broker.include_router(_ROUTERS[stage](ctx))
    return broker


def build_app(settings: Settings, url: str, stages: Iterable[str]) -> FastStream:
    """The FastStream application of one process running `stages`."""
    chosen = list(dict.fromkeys(stages))
    if unknown := [s for s in chosen if s not in STAGES]:
        raise ConfigurationError(f"unknown stage(s): {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    # Fail at start-up, not at the first poll, when the registry is missing or wrong.
    if "poller" in chosen and settings.sources is None:
        raise ConfigurationError("the poller needs a feed registry: set LIVEDESK_SOURCES or pass --sources")
    if "push" in chosen and not settings.public_url:
        raise ConfigurationError("WebSub push needs the URL hubs reach this process at: set LIVEDESK_PUBLIC_URL")
    if "console" in chosen:
        check_console_binding(settings)
    sources = load_registry(settings.sources) if "poller" in chosen and settings.sources else []
    hooks = load_hooks_file(settings.hooks_file, settings) if "notifier" in chosen and settings.hooks_file else []
    ctx = StageContext(settings, connect(url))
    console = build_console(ctx) if "console" in chosen else None
    broker = build_broker(ctx, url, chosen)
    app = FastStream(broker, logger=_FASTSTREAM_LOG)
    background: list[asyncio.Task[None]] = []

    @app.on_startup
    async def create_groups() -> None:
        await ensure_groups(ctx.redis, ctx.keys, chosen)

    @app.after_startup
    async def start_background() -> None:
        if sources:
            client = build_client(settings)
            background.append(asyncio.create_task(_poll(Poller(ctx, sources, client), client), name="poller"))
        if "notifier" in chosen:
            client = build_hook_client(settings)
            background.append(asyncio.create_task(_deliver(Deliverers(ctx, client, hooks), client), name="hooks"))
        push = "push" in chosen and settings.public_url is not None
        if push or console is not None:
            web = build_web_app(ctx, websub=push, console=console)
            server = http_server(web, settings.http_host, settings.http_port)
            background.append(asyncio.create_task(_serve_http(server), name="http"))
        if push and settings.public_url:
            client = build_client(settings)
            subscriber = Subscriber(ctx, client, settings.public_url)
            background.append(asyncio.create_task(_subscribe(subscriber, client), name="websub"))
        if console is not None:
            log.info("console serving", url=f"http://{_url_host(settings.http_host)}:{settings.http_port}/",
                     token_required=settings.console_token is not None)
        background.append(asyncio.create_task(_trim_forever(ctx), name="trim"))
        log.info("livedesk started", stages=chosen, key_prefix=settings.key_prefix, consumer=settings.consumer)

    @app.on_shutdown
    async def stop_background() -> None:  # the poller's HTTP client is closed as its task ends
        if console is not None:
            console.stop()  # its event streams end, or uvicorn would wait on them forever
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @app.after_shutdown
    async def close_redis() -> None:
        await ctx.redis.aclose()

    return app


async def _poll(poller: Poller, client: httpx.AsyncClient) -> None:
    async with client:
        await poller.run()


async def _deliver(deliverers: Deliverers, client: httpx.AsyncClient) -> None:
    async with client:
        await deliverers.run()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _subscribe(subscriber: Subscriber, client: httpx.AsyncClient) -> None:
    async with client:
        await subscriber.run()


async def _serve_http(server: EmbeddedServer) -> None:
    try:
        await server.serve()
    finally:
        # Cancelled with the process: let uvicorn close its sockets and connections, not just drop them.
        server.should_exit = True
        if server.started:
            await server.shutdown()


async def _trim_forever(ctx: StageContext, every_s: float = 60.0) -> None:
    """Trim the streams to their retention and forget long-gone consumers, once a minute (safe in many processes)."""
    while True:
        raise_if_cancelled()
        try:
            trimmed = await trim(ctx.redis, ctx.keys, ctx.settings.stream_retention_s, int(time.time() * 1000),
                                 max_len=ctx.settings.stream_max_len)
            if any(trimmed.values()):
                log.info("streams trimmed", **{f"{name}_entries": n for name, n in trimmed.items()})
            if pruned := await prune_consumers(ctx.redis, ctx.keys, _CONSUMER_IDLE_MS):
                log.info("idle consumers forgotten", consumers=pruned)
        except RedisError as error:
            log.warning("stream trim failed", error=str(error))
        await asyncio.sleep(every_s)
