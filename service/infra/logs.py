"""structlog setup shared by the API, the worker and the CLI: JSON lines in production.

Libraries' stdlib records (uvicorn's startup and errors, arq, asyncpg) go through the same
processors and renderer (`stdlib_formatter`), so a pipeline reads one format. No value is
written with a raw control character or Unicode line separator (see `escape_controls`).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import msgspec
import structlog
from structlog.typing import EventDict, WrappedLogger

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
# C0 and C1 controls, DEL, and U+2028/U+2029: a request path or header can carry any of them,
# and a raw one splits or forges a line in whatever reads the log next.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _json_dumps(obj: Any, default: Any = None) -> str:
    return msgspec.json.encode(obj, enc_hook=str).decode()


def escape(text: str) -> str:
    r"""`text` with each unsafe character as Python writes it escaped: \n, \x1b, \u2028."""
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def escape_controls(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Escape unsafe characters in every string value (before tracebacks are formatted)."""
    for key, value in event_dict.items():
        if type(value) is str and _UNSAFE.search(value):
            event_dict[key] = escape(value)
    return event_dict


def json_wanted(json: bool | None) -> bool:
    """LOG_JSON, or JSON unless stdout is a terminal when it is not set."""
    return not sys.stdout.isatty() if json is None else json


def _renderer(json: bool) -> Any:
    if json:
        return structlog.processors.JSONRenderer(serializer=_json_dumps)
    return structlog.dev.ConsoleRenderer()


def stdlib_formatter(json: bool = True) -> logging.Formatter:
    """A logging.Formatter rendering stdlib records as our own lines (logger name added)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            escape_controls,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(json),
        ],
    )


def uvicorn_log_config(level: str = "info", json: bool | None = None) -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers through `stdlib_formatter` to stdout, like ours.

    A dictConfig, so each server process uvicorn spawns (`--workers`) applies it too.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {"()": f"{__name__}.stdlib_formatter", "json": json_wanted(json)}
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            # uvicorn.error and uvicorn.access propagate to it
            "uvicorn": {
                "handlers": ["stdout"],
                "level": logging.getLevelName(_LEVELS.get(level, logging.ERROR)),
                "propagate": False,
            },
        },
    }


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog (and stdlib logging, for libraries) once per process."""
    json = json_wanted(json)
    numeric = _LEVELS.get(level, logging.ERROR)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        escape_controls,
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*processors, _renderer(json)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(stdlib_formatter(json))
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler])


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
