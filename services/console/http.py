"""What every console endpoint shares: query parameter parsing, JSON answers and the error policy.

A handler raises `Problem` for anything the client got wrong; the wrapper built by `endpoint` turns it into a JSON
`ApiError`, and any other failure into a bare 500 (or 503 when Redis does not answer) logged here, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel
from pydantic.main import IncEx
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from schemas.console import ApiError
from services.console.auth import TokenGuard

log = structlog.get_logger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", bound=Enum)


class Problem(Exception):
    """A request the console cannot answer as asked: `status` (400, 404…), the message and the parameter at fault."""

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter


def model_response(model: BaseModel, status_code: int = 200, exclude: IncEx | None = None) -> Response:
    """`model` as the JSON body (`model_dump(mode="json")`)."""
    return JSONResponse(model.model_dump(mode="json", exclude=exclude), status_code=status_code)


def error_response(status: int, message: str, parameter: str | None = None) -> Response:
    return model_response(ApiError(error=message, parameter=parameter), status)


def endpoint(handler: Handler, guard: TokenGuard | None, *, query_token: bool = False,
             timeout_s: float = 10.0) -> Handler:
    """`handler` behind the token (none: open) and the error policy of this module. A handler that has not answered
    within `timeout_s` (Redis down: redis-py retries connecting with backoff) answers 503; an event stream's body is
    not bounded, only the time to start it."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        if guard is not None and not guard.allows(request, query_token=query_token):
            return guard.challenge(request, query_token=query_token)
        try:
            async with asyncio.timeout(timeout_s):
                return await handler(request)
        except Problem as problem:
            return error_response(problem.status, problem.message, problem.parameter)
        except RedisError as error:
            log.warning("console request failed: Redis", path=request.url.path, error=str(error))
            return error_response(503, "the store is not available; try again")
        except TimeoutError:
            log.warning("console request failed: no answer in time", path=request.url.path, timeout_s=timeout_s)
            return error_response(503, f"the store is not available (no answer within {timeout_s:g} s); try again")
        except Exception:
            log.exception("console request failed", path=request.url.path)
            return error_response(500, "internal error")

    return run


async def _http_error(request: Request, error: Exception) -> Response:
    """What Starlette itself refuses (a path no route has, a method a route does not take), as an `ApiError`."""
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    message = f"no route {request.url.path}" if error.status_code == 404 else f"{error.detail} ({request.method})"
    return JSONResponse(ApiError(error=message).model_dump(mode="json"), status_code=error.status_code,
                        headers=headers)


async def _crash(request: Request, error: Exception) -> Response:
    """A failure outside every handler's own policy (a bug in routing or a static file): logged, a bare 500."""
    log.error("console request failed", path=request.url.path, error=f"{type(error).__name__}: {error}")
    return error_response(500, "internal error")


# For the app that serves the console: every error it answers is an `ApiError`, none a traceback.
EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {HTTPException: _http_error, Exception: _crash}


def only(request: Request, allowed: Collection[str]) -> None:
    """Refuse query parameters the route does not know: a misspelt filter would otherwise silently match all."""
    for name in request.query_params:
        if name not in allowed:
            raise Problem(400, f"unknown query parameter {name!r}; this route takes: {', '.join(sorted(allowed))}",
                          name)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise Problem(400, f"{name} must be an integer, got {text!r}", name) from None
    if not low <= value <= high:
        raise Problem(400, f"{name} must be between {low} and {high}, got {value}", name)
    return value


def time_param(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time (UTC unless it says otherwise), or None when absent."""
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace(" ", "+"))  # a `+` not URL-encoded arrives as a space
    except ValueError:
        raise Problem(400, f"{name} must be an ISO 8601 time such as 2025-10-24T10:30Z, got {text!r}", name) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def list_param(request: Request, name: str) -> list[str]:
    """Every value given for `name`, repeated or comma-separated."""
    return [item.strip() for value in request.query_params.getlist(name) for item in value.split(",") if item.strip()]


def enum_list_param(request: Request, name: str, kind: type[E]) -> list[E]:
    values: list[E] = []
    for item in list_param(request, name):
        try:
            values.append(kind(item))
        except ValueError:
            choices = ", ".join(str(member.value) for member in kind)
            raise Problem(400, f"{name}: unknown value {item!r}; one of {choices}", name) from None
    return values
