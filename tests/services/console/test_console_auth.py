"""The console's bearer token, its start-up check, and its health and readiness answers."""

from __future__ import annotations

import socket

import httpx
import pytest
from redis.asyncio import Redis

from services.connection import connect
from services.console import check_console_binding
from services.errors import ConfigurationError
from services.settings import Settings
from tests.services.console.conftest import QUICK, TOKEN, api_error, console_at, stream_items

pytestmark = pytest.mark.redis

GUARDED = ["/api/incidents", "/api/incidents/i_1", "/api/feeds", "/api/deliveries", "/api/deadletters",
           "/api/deadletters/1-0", "/api/nothing-here", "/metrics", "/events"]


async def test_a_configured_token_is_required_by_the_api_events_and_metrics(settings: Settings,
                                                                            redis: Redis) -> None:
    """With a token, every API route, /events and /metrics answer 401 with a Bearer challenge without it or with
    a wrong one, and serve it as a bearer header; /events also takes it as `access_token` (EventSource cannot set
    headers), the API does not. The page, /healthz, /readyz and /openapi.json stay open."""
    guarded = settings.model_copy(update={"console_token": TOKEN})
    async with console_at(guarded, redis, **QUICK) as (base, _), httpx.AsyncClient(timeout=10) as client:
        for path in GUARDED:
            missing = api_error(await client.get(f"{base}{path}"), 401)
            assert "required" in missing["error"]
            wrong = await client.get(f"{base}{path}", headers={"Authorization": "Bearer not-the-token-at-all"})
            api_error(wrong, 401)
            assert wrong.headers["www-authenticate"] == 'Bearer realm="livedesk", error="invalid_token"'
        for path in ("/api/incidents", "/api/feeds", "/api/deliveries", "/api/deadletters", "/metrics"):
            answer = await client.get(f"{base}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 200, path
        api_error(await client.get(f"{base}/api/incidents", params={"access_token": TOKEN}), 401)
        wrong = await client.get(f"{base}/events", params={"access_token": "not-the-token-at-all"})
        assert "not valid" in api_error(wrong, 401)["error"]
        for headers, params in (({"Authorization": f"Bearer {TOKEN}"}, {}), ({}, {"access_token": TOKEN})):
            async with client.stream("GET", f"{base}/events", headers=headers, params=params) as response:
                assert response.status_code == 200
                assert await anext(stream_items(response)) == ("comment", "connected", None)
        for path in ("/", "/healthz", "/readyz", "/openapi.json", "/static/app.js"):
            assert (await client.get(f"{base}{path}")).status_code == 200, path
        document = (await client.get(f"{base}/openapi.json")).json()
    assert document["paths"]["/api/incidents"]["get"]["security"] == [{"bearer": []}]
    assert "401" in document["paths"]["/api/incidents"]["get"]["responses"]
    assert "security" not in document["paths"]["/healthz"]["get"]


async def test_without_a_token_everything_is_open(console_url: str) -> None:
    """No token configured (on loopback): the API answers without any Authorization header."""
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{console_url}/api/incidents")).status_code == 200
        assert (await client.get(f"{console_url}/metrics")).status_code == 200
        document = (await client.get(f"{console_url}/openapi.json")).json()
    assert "security" not in document["paths"]["/api/incidents"]["get"]


@pytest.mark.parametrize(("host", "token", "refused"), [
    ("0.0.0.0", None, True),
    ("192.168.1.20", None, True),
    ("console.example.org", None, True),
    ("::", None, True),
    ("0.0.0.0", TOKEN, False),
    ("127.0.0.1", None, False),
    ("127.0.0.53", None, False),
    ("localhost", None, False),
    ("::1", None, False),
    ("[::1]", None, False),
])
def test_the_console_refuses_a_non_loopback_address_without_a_token(host: str, token: str | None,
                                                                    refused: bool) -> None:
    """check_console_binding refuses any address other hosts may reach unless a token is set; loopback is fine."""
    settings = Settings(_env_file=None, http_host=host, console_token=token)
    if refused:
        with pytest.raises(ConfigurationError, match="LIVEDESK_CONSOLE_TOKEN"):
            check_console_binding(settings)
    else:
        check_console_binding(settings)


async def test_health_and_readiness(settings: Settings, redis: Redis, console_url: str) -> None:
    """/healthz says the process is up and /readyz that Redis answers, both as plain text."""
    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(f"{console_url}/healthz")
        ready = await client.get(f"{console_url}/readyz")
    assert (health.status_code, health.text) == (200, "ok")
    assert (ready.status_code, ready.text) == (200, "ready")


async def test_without_redis_the_console_is_up_not_ready_and_says_so_without_a_traceback(
        settings: Settings) -> None:
    """With Redis unreachable /healthz still answers 200, while /readyz, the API and /metrics answer 503 with an
    ApiError within the request timeout, never a traceback, and /events refuses to start with 503 too."""
    with socket.socket() as probe:  # a loopback port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    unreachable = connect(nowhere)
    try:
        async with console_at(settings, unreachable, **QUICK, request_timeout_s=0.25) as (base, _), \
                httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
            for path in ("/readyz", "/api/incidents", f"/api/incidents/{'i_1'}", "/api/feeds", "/api/deliveries",
                         "/api/deadletters", "/metrics", "/events"):
                body = api_error(await client.get(f"{base}{path}"), 503)
                assert "not available" in body["error"], path
    finally:
        await unreachable.aclose()
