"""The HTTP process: one Starlette app (WebSub callbacks, the console, or both), served by uvicorn inside a
livedesk process's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from services.console.routes import Console
from services.stage import StageContext
from services.websub.callback import websub_routes

_MAX_CONNECTIONS = 100


def build_web_app(ctx: StageContext, *, websub: bool = True, console: Console | None = None) -> Starlette:
    """The routes of the HTTP process: WebSub callbacks when `websub`, and the console's when one is given (its
    `/healthz` then answers for the process)."""

    async def health(_: Request) -> Response:
        await ctx.redis.ping()
        return PlainTextResponse("ok")

    routes: list[BaseRoute] = list(websub_routes(ctx)) if websub else []
    routes += console.routes if console is not None else [Route("/healthz", health)]
    # debug stays off: a failure answers a bare 500, never a traceback; with the console, every error is an ApiError.
    return Starlette(routes=routes, exception_handlers=console.exception_handlers if console is not None else None)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the livedesk process owns Ctrl-C and SIGTERM and stops it itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: Starlette, host: str, port: int) -> EmbeddedServer:
    """A server for `app`; run it with `await server.serve()`, stop it with `server.should_exit = True`."""
    # log_config=None: uvicorn's lines go through the root handler livedesk configured, like every other line.
    # limit_concurrency: past that many connections uvicorn answers 503 at once, so a flood of large pushes cannot
    # hold more than that many bodies in memory.
    return EmbeddedServer(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
                                         limit_concurrency=_MAX_CONNECTIONS))
