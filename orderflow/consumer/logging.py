"""structlog set-up: JSON lines for machines, a readable console format for the demo.

Context (`order_id`, `vendor`, `event_id`) is bound per job with structlog's contextvars,
so every line a job writes carries it. Secrets never reach a log: settings hold them as
SecretStr and adapters never log request headers or bodies with credentials.
"""

from __future__ import annotations

import logging
import sys

import structlog

from orderflow.config.settings import LogSettings


def configure_logging(settings: LogSettings, stream: object = None) -> None:
    level = logging.getLevelName(settings.level)
    out = stream if stream is not None else sys.stderr
    renderer: structlog.types.Processor
    if settings.format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # aiokafka logs through the standard library; keep its noise at WARNING and route it out.
    logging.basicConfig(level=max(level, logging.WARNING), stream=out,  # type: ignore[arg-type]
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
