"""`emissions serve` (the HTTP API under uvicorn) and `emissions worker` (the outbox worker)."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
from typing import TYPE_CHECKING, Any

from service.infra.settings import Settings

if TYPE_CHECKING:
    from api.context import RequestContext


def add_commands(sub: Any) -> None:
    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    s.set_defaults(run=_serve, sync=True)
    w = sub.add_parser("worker", help="run an outbox worker (arq, supervised)")
    w.set_defaults(run=_worker, sync=True)


def serve_app() -> RequestContext:
    """The API app, built in each server process, then tidied for a long life under load.

    gc.freeze(): the ~75k objects of imports and app construction live as long as the process;
    left in the collector's generations, every full collection walks them all (a ~35 ms pause
    every few seconds under load, seen at p99). Frozen, a full collection walks only what
    requests allocated.

    malloc_trim(0): building the app peaks at ~66 MB of Python allocations (the OpenAPI
    generation imports polyfactory, which loads every faker locale) of which ~9 MB stay;
    glibc keeps the freed heap resident unless asked to return it: ~40 MB of RSS per process.
    """
    from api.app import create_app  # imported here: other commands need no web framework

    app = create_app()
    gc.collect()
    gc.freeze()
    _return_free_heap()
    return app


def _return_free_heap() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, nothing lost
        pass


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn  # the server is only needed by this command

    from api.protocol import GuardedHttpTools
    from service.infra.logs import uvicorn_log_config

    uvicorn.run(
        "cli.serve:serve_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        access_log=False,  # the app logs one line per request itself
        # Its own lines (startup, errors) as ours: JSON through structlog when LOG_JSON is on.
        log_config=uvicorn_log_config(settings.log_level, settings.log_json),
        log_level=settings.log_level,
        proxy_headers=True,
        http=GuardedHttpTools,  # headers within HEADER_TIMEOUT_S
        timeout_keep_alive=settings.keep_alive_s,
        server_header=False,
    )
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.main import run  # imported here: other commands need no arq

    return run(settings)
