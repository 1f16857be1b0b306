"""`connect`: asyncio clients that pack commands with hiredis, for every kind of Redis URL, byte for byte as
redis-py's own packer does."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.typing import EncodableT

from services.connection import connect

pytestmark = pytest.mark.redis

ARGUMENTS: list[tuple[str, tuple[EncodableT, ...]]] = [
    ("text", ("SET", "key", "value")),
    ("unicode", ("SET", "clé", "Walthamstow — café")),
    ("binary with zero bytes", ("HSET", b"key", b"b\x00\xff\x01", b"\x00" * 600)),
    ("integers", ("PEXPIRE", "key", 604_800_000)),
    ("a command name of two words", ("SCRIPT EXISTS", "abc")),
    ("many arguments", ("EVALSHA", "0" * 40, 2, *[f"k{n}" for n in range(300)])),
]


@pytest.mark.parametrize(("case", "args"), ARGUMENTS, ids=[case for case, _ in ARGUMENTS])
def test_commands_are_packed_as_redis_py_packs_them(case: str, args: tuple[EncodableT, ...]) -> None:
    del case
    pool = connect("redis://127.0.0.1:1/0").connection_pool
    fast: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    plain = Connection(host="127.0.0.1", port=1)
    assert b"".join(fast.pack_command(*args)) == b"".join(plain.pack_command(*args))
    assert b"".join(fast.pack_commands([args, args])) == b"".join(plain.pack_commands([args, args]))


@pytest.mark.parametrize(("url", "kind"), [
    ("redis://127.0.0.1:6379/0", Connection),
    ("rediss://127.0.0.1:6380/0", SSLConnection),
    ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
])
def test_every_kind_of_url_keeps_its_transport(url: str, kind: type[AbstractConnection]) -> None:
    connection_class = connect(url).connection_pool.connection_class
    assert issubclass(connection_class, kind)
    assert connection_class.pack_command is not kind.pack_command


async def test_values_round_trip_through_a_real_server(redis: Redis, key_prefix: str) -> None:
    key = f"{key_prefix}:values"
    await redis.hset(key, mapping={"text": "Walthamstow — café", "binary": b"\x00\xff", "number": 7})
    assert await redis.hgetall(key) == {b"text": "Walthamstow — café".encode(), b"binary": b"\x00\xff",
                                        b"number": b"7"}
