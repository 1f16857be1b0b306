"""Optional bearer-token auth of the console, and the start-up check that it is not exposed without one."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse

from schemas.console import ApiError
from services.errors import ConfigurationError
from services.settings import Settings

# EventSource cannot set headers, so the event stream also takes the token as this query parameter.
TOKEN_PARAMETER = "access_token"


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_console_binding(settings: Settings) -> None:
    """Refuse to serve the console on a non-loopback address without `console_token` (raise ConfigurationError)."""
    if settings.console_token is None and not is_loopback(settings.http_host):
        raise ConfigurationError(
            f"the console would listen on {settings.http_host!r} with no token: set LIVEDESK_CONSOLE_TOKEN "
            "(16 characters or more) or LIVEDESK_HTTP_HOST=127.0.0.1")


class TokenGuard:
    """Decides whether a request carries the console's token; with no token configured every request passes."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def allows(self, request: Request, *, query_token: bool = False) -> bool:
        """True when no token is configured or the request has it as `Authorization: Bearer <token>` (or, with
        `query_token`, as `?access_token=`). The comparison takes the same time however much of it matches."""
        if self._token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            given = request.query_params.get(TOKEN_PARAMETER, "") if query_token else ""
        return hmac.compare_digest(given.strip().encode(), self._token)

    @staticmethod
    def challenge(request: Request, *, query_token: bool = False) -> JSONResponse:
        """The 401 answer: a JSON error and the challenge a client needs to retry with a token."""
        given = "authorization" in request.headers or (query_token and TOKEN_PARAMETER in request.query_params)
        error = ', error="invalid_token"' if given else ""
        body = ApiError(error="the bearer token is not valid" if given else "a bearer token is required")
        return JSONResponse(body.model_dump(mode="json"), status_code=401,
                            headers={"WWW-Authenticate": f'Bearer realm="livedesk"{error}'})
