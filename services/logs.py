"""structlog, configured once per process: pretty on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from services.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Route structlog and the stdlib loggers (FastStream, httpx) through one renderer."""
    level = getattr(logging, settings.log_level.upper())
    pretty = settings.log_format == "console" or (settings.log_format == "auto" and sys.stderr.isatty())
    # Tracebacks without the frames' local variables: they hold article texts, URLs with credentials and signing
    # secrets, none of which belongs in a log.
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False))
        if pretty else structlog.processors.JSONRenderer()
    )
    tracebacks = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if pretty else [tracebacks]),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; one line per feed poll is ours to write.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
