"""A lean HTTP/1.1 load client: pre-encoded requests on keep-alive connections, closed or open loop.

Why not httpx: the client shares the machine's two cores with the API and Postgres, so every
client microsecond is taken from the system under test. A request here is one `write` of bytes
built before the clock starts, and a response is parsed only as far as status and length.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast


class ConnectionClosed(Exception):
    """The server closed the connection before answering."""


@dataclass(frozen=True, slots=True)
class Request:
    raw: bytes  # the whole request: head and body
    site_id: int = 0
    readings: int = 0


def build_request(
    path: str, body: bytes, *, key: str, host: str, headers: dict[str, str] | None = None
) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Idempotency-Key: {key}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Http(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionClosed(str(exc)))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:")
        stop = head.find(b"\r\n", at)
        length = 0 if at < 0 else int(head[at + 15 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        self.waiter.set_result((status, body))

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


class Client:
    """A connection that reconnects when the server drops it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._proto: _Http | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self._proto is None or self._proto.lost:
            _, self._proto = await asyncio.get_running_loop().create_connection(
                _Http, self.host, self.port
            )
        return await self._proto.send(raw)

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()


@dataclass
class Sample:
    start: float  # perf_counter when sent (open loop: when it was due)
    end: float
    status: int
    request: Request
    body: bytes = b""


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)  # those that started in the window
    window_s: float = 0.0
    offered_per_s: float | None = None  # open loop only
    errors: dict[int, int] = field(default_factory=dict)  # status (0 = transport) -> count

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 202]

    @property
    def per_s(self) -> float:
        return len(self.ok) / self.window_s if self.window_s else 0.0

    @property
    def readings_per_s(self) -> float:
        return sum(s.request.readings for s in self.ok) / self.window_s if self.window_s else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile([(s.end - s.start) * 1000 for s in self.ok], q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _record(result: LoadResult, sample: Sample) -> None:
    if sample.status != 202:
        result.errors[sample.status] = result.errors.get(sample.status, 0) + 1


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """No cyclic GC in the load client while it measures: a full collection over the
    requests built for a phase stalls the client for up to ~0.3 s, which an open loop would
    report as server latency. Reference counting still frees everything a phase drops;
    callers collect before their clock starts."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def closed_loop(
    host: str,
    port: int,
    requests: Iterator[Request],
    *,
    clients: int,
    warmup_s: float,
    duration_s: float,
    keep_body: bool = False,
) -> LoadResult:
    """`clients` connections, each sending its next request as soon as the previous answers.

    Only requests sent within [warmup, warmup + duration) count; throughput is those that
    succeeded divided by the window.
    """
    result = LoadResult(window_s=duration_s)
    gc.collect()
    t0 = time.perf_counter()
    lo, hi = t0 + warmup_s, t0 + warmup_s + duration_s

    async def one(client: Client) -> None:
        try:
            while (now := time.perf_counter()) < hi:
                request = next(requests, None)
                if request is None:
                    return
                try:
                    status, body = await client.send(request.raw)
                except (ConnectionClosed, OSError):
                    status, body = 0, b""
                end = time.perf_counter()
                if now >= lo:
                    sample = Sample(now, end, status, request, body if keep_body else b"")
                    result.samples.append(sample)
                    _record(result, sample)
        finally:
            client.close()

    with no_gc_pauses():
        await asyncio.gather(*(one(Client(host, port)) for _ in range(clients)))
    return result


async def open_loop(
    host: str,
    port: int,
    requests: Iterator[Request],
    *,
    rate_per_s: float,
    duration_s: float,
    warmup_s: float = 1.0,
    on_answer: Callable[[Sample], None] | None = None,
) -> LoadResult:
    """Requests due at a fixed rate whatever the answers: latency is measured from when each
    was due, so a stalled server shows up as latency (no coordinated omission).

    Connections are reused when idle and opened when none is, so the client never queues.
    """
    result = LoadResult(window_s=duration_s, offered_per_s=rate_per_s)
    idle: list[Client] = []
    pending: set[asyncio.Task[None]] = set()
    gc.collect()
    t0 = time.perf_counter()
    lo = t0 + warmup_s
    total = int(rate_per_s * (warmup_s + duration_s))

    async def send(request: Request, due: float) -> None:
        client = idle.pop() if idle else Client(host, port)
        try:
            status, body = await client.send(request.raw)
        except (ConnectionClosed, OSError):
            status, body = 0, b""
        end = time.perf_counter()
        idle.append(client)
        sample = Sample(due, end, status, request, body)
        if on_answer is not None:
            on_answer(sample)
        if due >= lo:
            result.samples.append(sample)
            _record(result, sample)

    with no_gc_pauses():
        for i in range(total):
            due = t0 + i / rate_per_s
            delay = due - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            request = next(requests, None)
            if request is None:
                break
            task = asyncio.create_task(send(request, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending)
    for client in idle:
        client.close()
    return result
