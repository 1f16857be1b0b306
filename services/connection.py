"""Clients of livedesk's Redis: `connect` is how every process opens one.

redis-py's asyncio client packs each command into the Redis protocol in Python (about 3 µs an argument), while its
synchronous client uses hiredis' C packer when hiredis is installed. The dedup stage sends hundreds of arguments per
batch, so the packing alone cost more than the server's work; `connect` gives the asyncio client the same C packer
(redis-py's own `HiredisRespSerializer`). Everything else about the connection is redis-py's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.connection import HiredisRespSerializer

_SERIALIZER = HiredisRespSerializer()


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed


class _TCPConnection(_HiredisPacking, Connection):
    pass


class _TLSConnection(_HiredisPacking, SSLConnection):
    pass


class _UnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_BY_SCHEME: dict[str, type[AbstractConnection]] = {
    "redis": _TCPConnection, "rediss": _TLSConnection, "unix": _UnixConnection,
}


def connect(url: str, **options: Any) -> Redis:
    """An asyncio client for `url` (redis://, rediss:// or unix://, as `Redis.from_url` reads it) that packs
    commands in C. `options` are `Redis.from_url`'s."""
    connection_class = _BY_SCHEME.get(urlsplit(url).scheme)
    if connection_class is not None:
        options.setdefault("connection_class", connection_class)
    return Redis.from_url(url, **options)
