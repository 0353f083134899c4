"""The API as a real process (`emissions serve`) on a free port, for fuzz and chaos tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tests.harness.processes import ApiProcess

T = TypeVar("T")


def _blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to the end on a loop of its own: callers are sync fixtures and async tests."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def api_process(database_url: str, redis_url: str, log_path: Path, **env: str) -> Iterator[str]:
    """Start `python -m cli serve`, wait for /health, yield its base URL, stop it."""
    api = ApiProcess(
        env={"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "warning", **env},
        log_dir=log_path.parent,
        name=log_path.stem,
    )
    _blocking(api.start(timeout=30))  # killed, with its log in the error, if it never answers
    try:
        yield api.url
    finally:
        _blocking(api.stop(timeout=10))
