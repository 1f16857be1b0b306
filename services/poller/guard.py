"""The SSRF guard: feed URLs may not reach this machine's or its network's private services."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

from services.errors import FeedError


class PrivateAddressError(httpx.RequestError):
    """The request's host resolves to an address the guard refuses (loopback, private, link-local, metadata…)."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    # is_global is False for loopback, RFC 1918, link-local (cloud metadata at 169.254.169.254), CGNAT, reserved
    # and documentation ranges alike.
    return ip.is_global and not ip.is_multicast


async def refuse_private(request: httpx.Request) -> None:
    """httpx request hook: runs before every request, redirects included, so a redirect cannot escape the guard."""
    host = request.url.host
    if request.url.scheme not in ("http", "https"):
        raise PrivateAddressError(f"scheme {request.url.scheme!r} is not allowed", request=request)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, request.url.port or 443, type=socket.SOCK_STREAM)
    except OSError as error:
        raise httpx.ConnectError(f"cannot resolve {host}: {error}", request=request) from error
    refused = sorted({str(info[4][0]) for info in infos if not _is_public(str(info[4][0]))})
    if refused:
        raise PrivateAddressError(f"{host} resolves to a non-public address ({', '.join(refused)})", request=request)


def as_feed_error(feed: str, error: PrivateAddressError) -> FeedError:
    return FeedError(feed, f"refused: {error} (set LIVEDESK_ALLOW_PRIVATE_HOSTS=true to allow)")
