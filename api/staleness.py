"""Replica-Lag: reads that tolerate lag take `reads` (one provider, the one place that chooses
the pool) and their response says how stale it may be.

`Replica-Lag: <seconds>` (decimal, rounded up to the millisecond) is on every response of
such a read while READ_DATABASE_URL is set: how far behind the primary the data may be; 0
from a caught-up replica, or from the primary when the replica could not answer (the log
says `replica_unavailable`). Without READ_DATABASE_URL every read is on the primary and the
header is absent.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Request
from litestar.datastructures import State

from service.infra.replica import Reads

HEADER = b"replica-lag"
_KEY = "replica_lag_s"  # in the ASGI scope's state, read when the response starts


class RequestReads:
    """The request's way to a connection for a lag-tolerant read; remembers the lag."""

    def __init__(self, reads: Reads, scope_state: dict[str, Any]) -> None:
        self._reads = reads
        self._state = scope_state

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._reads.connection() as read:
            if read.lag_s is not None:
                self._state[_KEY] = max(read.lag_s, self._state.get(_KEY, 0.0))
            yield read.conn


def provide_reads(state: State, request: Request[Any, Any, Any]) -> RequestReads:
    reads: Reads = state.reads
    return RequestReads(reads, request.scope.setdefault("state", {}))


def header(scope_state: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The Replica-Lag header for a response, if its data came through `reads`."""
    lag_s = scope_state.get(_KEY)
    if lag_s is None:
        return None
    return HEADER, format_seconds(lag_s).encode("ascii")


def format_seconds(seconds: float) -> str:
    """Seconds rounded up to the millisecond, without trailing zeros: 0, 0.25, 12.001."""
    millis = math.ceil(max(0.0, seconds) * 1000)
    return f"{millis // 1000}.{millis % 1000:03d}".rstrip("0").rstrip(".")
