"""The console assembled: its routes, their documentation, and the switch that ends its event streams."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ExceptionHandler

from schemas.console import DeadLetterList, DeliveryList, FeedList, IncidentDetail, IncidentPage
from schemas.subscriptions import DeadLetter
from services.console.auth import TokenGuard
from services.console.deliveries import delivery_handlers
from services.console.feeds import feeds_handler
from services.console.http import EXCEPTION_HANDLERS, Handler, Problem, endpoint
from services.console.incidents import incident_handlers
from services.console.metrics import ConsoleMetrics
from services.console.openapi import Operation, Parameter, openapi_document
from services.console.page import page_routes
from services.console.sse import events_handler
from services.stage import StageContext

_ISO = "An ISO 8601 time, UTC unless it says otherwise, e.g. 2025-10-24T10:30Z."
_LIMIT = {"type": "integer", "minimum": 1}
_LIST = "Comma-separated, or repeated."
_EVENT_FILTER = tuple(Parameter(name, "query", description) for name, description in (
    ("type", f"Event types, e.g. condition_updated. {_LIST}"),
    ("field", f"Incident fields an event changed, e.g. injured, cordon. {_LIST}"),
    ("category", f"Incident categories. {_LIST}"),
    ("region", f"Location name or region, case-insensitive. {_LIST}"),
    ("near", "latitude,longitude,km"),
    ("corroboration", "several or official"),
))

OPERATIONS = [
    Operation("/api/incidents", "Incidents, most recently active first, filtered and paged", IncidentPage,
              parameters=(Parameter("category", "query", f"Incident categories. {_LIST}"),
                          Parameter("region", "query", f"Location name or region, case-insensitive. {_LIST}"),
                          Parameter("since", "query", f"Only incidents with evidence from then on. {_ISO}"),
                          Parameter("q", "query", "Text in the title or place, case-insensitive."),
                          Parameter("limit", "query", "At most this many (default 50, at most 500).", _LIMIT),
                          Parameter("cursor", "query", "next_cursor of the previous page.")),
              errors=(400, 503)),
    Operation("/api/incidents/{incident_id}", "One incident: state, provenance and history, now or as of `at`",
              IncidentDetail, parameters=(Parameter("incident_id", "path", "The incident's id.", required=True),
                                          Parameter("at", "query", f"The state livedesk believed then. {_ISO}")),
              errors=(400, 404, 503)),
    Operation("/api/feeds", "Every feed with its health, as `livedesk feeds list` shows it", FeedList,
              errors=(400, 503)),
    Operation("/api/deliveries", "Webhook delivery attempts, newest first", DeliveryList,
              parameters=(Parameter("hook", "query", "Only this hook's."),
                          Parameter("limit", "query", "At most this many (default 100, at most 1000).", _LIMIT)),
              errors=(400, 503)),
    Operation("/api/deadletters", "Dead letters, newest first", DeadLetterList,
              parameters=(Parameter("limit", "query", "At most this many (default 100, at most 1000).", _LIMIT),),
              errors=(400, 503)),
    Operation("/api/deadletters/{dead_letter_id}", "One dead letter", DeadLetter,
              parameters=(Parameter("dead_letter_id", "path", "Its id on the deadletter stream.", required=True),),
              errors=(400, 404, 503)),
    Operation("/events", "Change events as Server-Sent Events (`id:` is the changes stream id, `data:` a "
              "ChangeEvent)", media_type="text/event-stream",
              parameters=(*_EVENT_FILTER,
                          Parameter("Last-Event-ID", "header", "Resume after this event id."),
                          Parameter("last_event_id", "query", "As Last-Event-ID, for a first connection."),
                          Parameter("access_token", "query", "The bearer token, for EventSource (no headers).")),
              errors=(400,)),
    Operation("/metrics", "Prometheus metrics", media_type="text/plain", errors=(503,)),
    Operation("/healthz", "The process is up", media_type="text/plain", secured=False),
    Operation("/readyz", "Redis answers", media_type="text/plain", errors=(503,), secured=False),
    Operation("/openapi.json", "This document", media_type="application/json", secured=False),
    Operation("/", "The web page", media_type="text/html", secured=False),
]


@dataclass
class Console:
    """The console's routes, and `stop()`, which ends every open event stream within a second (uvicorn waits for
    open responses before it exits, and an event stream never ends by itself).

    An app serving the routes should take `exception_handlers` too: then a path or method no route takes is answered
    with an `ApiError` like every other error."""

    routes: list[BaseRoute]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    exception_handlers: dict[Any, ExceptionHandler] = field(default_factory=lambda: dict(EXCEPTION_HANDLERS))

    def stop(self) -> None:
        self.stopping.set()


def build_console(ctx: StageContext, *, keepalive_s: float = 15.0, block_ms: int = 1000,
                  request_timeout_s: float = 10.0) -> Console:
    """Every console route, with the token of `ctx.settings.console_token` required where it applies.

    An event stream with nothing to send says so every `keepalive_s`, and waits for new events at most `block_ms` at
    a time (how soon it notices `Console.stop`). A request not answered within `request_timeout_s` (a readiness
    probe: within 2 s at most) is a 503."""
    redis, keys = ctx.redis, ctx.keys
    guard = TokenGuard(ctx.settings.console_token)
    stopping = asyncio.Event()
    metrics = ConsoleMetrics(redis, keys)
    document = openapi_document(OPERATIONS, secured=guard.enabled)

    async def metrics_route(_: Request) -> Response:
        await metrics.refresh()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        await redis.ping()
        return PlainTextResponse("ready")

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    async def unknown(request: Request) -> Response:
        raise Problem(404, f"no route {request.url.path}")

    incidents, incident = incident_handlers(redis, keys)
    deliveries, dead_letters, dead_letter = delivery_handlers(redis, keys)

    def get(path: str, handler: Handler, *, guarded: bool = True, query_token: bool = False,
            timeout_s: float = request_timeout_s) -> Route:
        return Route(path, endpoint(handler, guard if guarded else None, query_token=query_token,
                                    timeout_s=timeout_s), methods=["GET"])

    routes: list[BaseRoute] = [
        get("/api/incidents", incidents),
        get("/api/incidents/{incident_id}", incident),
        get("/api/feeds", feeds_handler(redis, keys)),
        get("/api/deliveries", deliveries),
        get("/api/deadletters", dead_letters),
        get("/api/deadletters/{dead_letter_id}", dead_letter),
        get("/api/{rest:path}", unknown),
        get("/events", events_handler(redis, keys, stopping, keepalive_s, block_ms), query_token=True),
        get("/metrics", metrics_route),
        get("/healthz", healthz, guarded=False),
        # A probe that waits longer than its prober is as bad as no answer.
        get("/readyz", readyz, guarded=False, timeout_s=min(2.0, request_timeout_s)),
        get("/openapi.json", openapi, guarded=False),
        *page_routes(),
    ]
    return Console(routes, stopping)


def build_console_routes(ctx: StageContext) -> list[BaseRoute]:
    """The console's routes, to add to another Starlette app (its event streams then end only with their clients;
    use `build_console` to be able to stop them)."""
    return build_console(ctx).routes


def build_console_app(console: Console) -> Starlette:
    """A Starlette app serving only the console (debug off: a failure never shows a traceback)."""
    return Starlette(routes=console.routes, exception_handlers=console.exception_handlers)
