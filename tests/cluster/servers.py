"""Private `redis-server` processes for tests that must own their server: one to kill and restart, or three masters
joined into a Redis Cluster. Each listens on a free loopback port with its data in a folder of the test's own, and is
killed when the test ends; the machine's shared server is never touched."""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from redis import Redis as SyncRedis
from redis.exceptions import RedisError

START_TIMEOUT_S = 15.0


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not on PATH: these tests start Redis servers of their own")
    return found


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, cluster_bus: bool = False) -> int:
    """A loopback port nothing listens on; with `cluster_bus`, its cluster bus port (port + 10000) is free too."""
    for _ in range(1000):
        port = random.randint(20_000, 50_000)
        if _free(port) and (not cluster_bus or _free(port + 10_000)):
            return port
    raise RuntimeError("no free loopback port found")


class RedisServer:
    """One `redis-server` on 127.0.0.1:`port` with its data (and log) under `data_dir`."""

    def __init__(self, data_dir: Path, *options: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING (its append-only file, if any, loaded)."""
        self.process = subprocess.Popen(
            [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--save", "", "--logfile", "server.log", *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: {self.log_tail()}")
            with contextlib.suppress(RedisError), SyncRedis(port=self.port, socket_timeout=1) as client:
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer in {START_TIMEOUT_S} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what survives is what the append-only file already holds."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def log_tail(self) -> str:
        log = self.data_dir / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


@contextlib.contextmanager
def redis_server(data_dir: Path, *options: str) -> Iterator[RedisServer]:
    """A started `RedisServer`, killed when the block ends."""
    server = RedisServer(data_dir, *options)
    try:
        server.start()
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def redis_cluster(data_dir: Path, masters: int = 3) -> Iterator[str]:
    """`masters` servers joined into a Redis Cluster without replicas (`redis-cli --cluster create`); yields the
    cluster's URL (`redis+cluster://` to the first node) once every node reports `cluster_state:ok`."""
    nodes = cluster_nodes(data_dir, masters, "--appendonly", "no")
    try:
        create_cluster(nodes)
        yield seed_url(nodes)
    finally:
        for node in nodes:
            node.kill()


def cluster_nodes(data_dir: Path, count: int, *options: str) -> list[RedisServer]:
    """`count` servers (not started) with cluster mode on, each with its cluster bus port free as well."""
    return [RedisServer(data_dir / f"node-{n}", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        *options, port=free_port(cluster_bus=True)) for n in range(count)]


def seed_url(nodes: list[RedisServer]) -> str:
    """The `redis+cluster://` URL of a cluster, through its first node."""
    return f"redis+cluster://127.0.0.1:{nodes[0].port}"


def create_cluster(nodes: list[RedisServer], replicas: int = 0) -> None:
    """Start `nodes` and join them with `redis-cli --cluster create`, `replicas` replicas per master (the first
    nodes become the masters); return once every node reports `cluster_state:ok`."""
    for node in nodes:
        node.start()
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    created = subprocess.run(
        [_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas", str(replicas),
         "--cluster-yes"],
        capture_output=True, timeout=60, check=False,
    )
    if created.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout.decode()[-2000:]}")
    wait_cluster_ok(nodes)


def wait_cluster_ok(nodes: list[RedisServer], timeout_s: float = START_TIMEOUT_S) -> None:
    """Return once every one of `nodes` reports `cluster_state:ok`; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    waiting = list(nodes)
    while waiting:
        with SyncRedis(port=waiting[0].port, socket_timeout=1) as client:
            if client.cluster("INFO").get("cluster_state") == "ok":
                waiting.pop(0)
                continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster not ok within {timeout_s} s on port {waiting[0].port}")
        time.sleep(0.1)
