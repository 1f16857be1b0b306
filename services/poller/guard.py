"""The SSRF guard: feed URLs may not reach this machine's or its network's private services.

The check sits where connections are made (`CheckedAddressBackend`, under `GuardedTransport`), not before the request:
a name is resolved once, every address it resolves to is checked, and the connection goes to one of those addresses.
A check that resolved the name by itself would let the connection resolve it again, and a hostile DNS server can
answer a public address to the first lookup and 127.0.0.1 or 169.254.169.254 to the second (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import anyio
import httpcore
import httpx

from services.errors import FeedError


class PrivateAddressError(httpx.RequestError):
    """The request's host resolves to an address the guard refuses (loopback, private, link-local, metadata…)."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    # is_global is False for loopback, RFC 1918, link-local (cloud metadata at 169.254.169.254), CGNAT, reserved
    # and documentation ranges alike.
    return ip.is_global and not ip.is_multicast


class CheckedAddressBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses `permits` accepts.

    `connect_tcp` resolves the host once (an IP literal is not resolved), refuses with `PrivateAddressError` when any
    address it resolves to is not permitted, and otherwise connects to those same addresses, in the resolver's order,
    until one answers. TLS is left to the stream `inner` returns: httpcore passes the URL's host name to `start_tls`
    as `server_hostname`, so certificates are still verified, and SNI sent, for the name rather than the address.
    The resolution and the connection share the connect timeout.
    """

    def __init__(self, permits: Callable[[str], bool] = _is_public,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._permits = permits
        # What httpcore's own default backend uses under asyncio.
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await _resolve(host, port)
                refused = sorted({address for address in addresses if not self._permits(address)})
                if refused:
                    raise PrivateAddressError(f"{host} resolves to a non-public address ({', '.join(refused)})")
                return await self._connect_to_any(addresses, port, local_address, socket_options)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection to {host} within {timeout:g} s") from None

    async def _connect_to_any(
        self,
        addresses: list[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        # One after another, as the resolver ordered them (RFC 6724), rather than anyio's happy eyeballs, which only
        # races the addresses of a name it resolves itself.
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None  # `_resolve` gives at least one address
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # Only a transport configured with `uds` connects to a socket file; a feed URL cannot name one.
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, each once, in the resolver's order; an IP literal is its own address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:  # anyio drops IPv6 answers when Python is built without IPv6
        raise httpcore.ConnectError(f"cannot resolve {host}: no usable address")
    return addresses


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connections made through `CheckedAddressBackend`.

    httpx 0.29 offers no public way to give `AsyncHTTPTransport` a network backend (encode/httpx#3749 proposes one),
    so the connection pool httpx builds is replaced by one built here with the same options — httpx's defaults for
    certificates (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), HTTP/1.1 only, no retries — plus the backend. httpx still
    translates requests, responses and httpcore's errors.
    """

    def __init__(self, limits: httpx.Limits, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        super().__init__(limits=limits)
        # `_pool` is private to httpx, but it is what `handle_async_request` sends every request through.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend if backend is not None else CheckedAddressBackend(),
        )


async def refuse_other_schemes(request: httpx.Request) -> None:
    """httpx request hook: runs before every request, redirects included, and refuses what is not HTTP(S).

    httpcore would also speak to `ws://` and `wss://` URLs; anything else would surface as a bad URL although it
    came from a redirect.
    """
    if request.url.scheme not in ("http", "https"):
        raise PrivateAddressError(f"scheme {request.url.scheme!r} is not allowed", request=request)


def as_feed_error(feed: str, error: PrivateAddressError) -> FeedError:
    return FeedError(feed, f"refused: {error} (set LIVEDESK_ALLOW_PRIVATE_HOSTS=true to allow)")
