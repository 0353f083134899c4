"""structlog setup shared by the API, the worker and the CLI: JSON lines in production."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _json_dumps(obj: Any, default: Any = None) -> str:
    return msgspec.json.encode(obj, enc_hook=str).decode()


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog (and stdlib logging, for libraries) once per process."""
    if json is None:
        json = not sys.stdout.isatty()
    numeric = _LEVELS.get(level, logging.ERROR)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
