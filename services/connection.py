"""Clients of livedesk's Redis: `connect` is how every process opens one.

redis-py's asyncio client packs each command into the Redis protocol in Python (about 3 µs an argument), while its
synchronous client uses hiredis' C packer when hiredis is installed. The dedup stage sends hundreds of arguments per
batch, so the packing alone cost more than the server's work; `connect` gives the asyncio client the same C packer
(redis-py's own `HiredisRespSerializer`). Everything else about the connection is redis-py's.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.connection import HiredisRespSerializer

_SERIALIZER = HiredisRespSerializer()


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed


_PACKING_IN_C: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _packing_in_c(transport: type[AbstractConnection]) -> type[AbstractConnection]:
    if transport not in _PACKING_IN_C:
        _PACKING_IN_C[transport] = type(f"HiredisPacking{transport.__name__}", (_HiredisPacking, transport), {})
    return _PACKING_IN_C[transport]


def connect(url: str, **options: Any) -> Redis:
    """An asyncio client for `url` (whatever `Redis.from_url` reads: redis://, rediss://, unix://) that packs
    commands in C. `options` are `Redis.from_url`'s."""
    pool = ConnectionPool.from_url(url, **options)
    # The URL chooses the transport (TCP, TLS, Unix socket); only the packing is replaced.
    pool.connection_class = _packing_in_c(pool.connection_class)
    return Redis.from_pool(pool)
