"""Log output: one JSON object per line, and tracebacks that keep the frames' local variables out of the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from services.logs import configure_logging
from services.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_a_logged_exception_names_the_error_but_not_the_frames_locals(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="info"))
    log = structlog.get_logger("test")

    def fail(signing_secret: str) -> None:
        raise ValueError("feed https://example.test/feed.xml: not XML")

    try:
        fail("s3cr3t-signing-key")
    except ValueError:
        log.exception("feed failed", feed="example")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "feed failed"
    assert record["feed"] == "example"
    assert "not XML" in line
    assert "ValueError" in line
    assert "s3cr3t-signing-key" not in line
