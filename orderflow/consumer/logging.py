"""structlog set-up: JSON lines for machines, a readable console format for the demo.

Every line goes through one handler and one renderer, the client libraries' own lines
(aiokafka, aiohttp, asyncio) included: structlog's stdlib formatter renders them as JSON
too, so a log pipeline never meets a plain-text line inside the JSON stream. Each line
carries its logger name and orderflow's version.

Context (`order_id`, `vendor`, `event_id`) is bound per job with structlog's contextvars,
so every line a job writes carries it. Secrets never reach a log: settings hold them as
SecretStr and adapters never log request headers or bodies with credentials.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog

from orderflow.config.settings import LogSettings
from orderflow.consumer import tracing


def orderflow_version() -> str:
    try:
        return version("orderflow")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def configure_logging(settings: LogSettings, stream: object = None) -> None:
    level = logging.getLevelName(settings.level)
    out = stream if stream is not None else sys.stderr
    renderer: structlog.types.Processor
    if settings.format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    else:
        renderer = structlog.processors.JSONRenderer()
    release = orderflow_version()

    def add_version(logger: Any, method: str, event: structlog.types.EventDict) -> Any:
        event.setdefault("version", release)
        return event

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        tracing.add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_version,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiokafka is chatty below WARNING (every rebalance step); its warnings and errors stay.
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
