"""The physical limit: the bench's readings loaded by binary COPY, one COPY and commit per batch.

Same table, partitions and indexes as the ingest writes to, the same readings per batch, the
same durability (each batch its own committed transaction); nothing else: no idempotency
record, no outbox event, no aggregates. The COPY stream is encoded before the clock starts.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from functools import cache

import asyncpg

from tests.bench.batches import Batch, Timeline
from tests.bench.load import LoadResult, Request, Sample
from tests.bench.phases import Row, load_row
from tests.bench.stack import CpuMeter

COLUMNS = ["site_id", "ts", "methane_kg", "device_id", "batch_id"]
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's timestamp zero


@cache
def _tuples(size: int, device_len: int) -> struct.Struct:
    """One batch's tuples in COPY BINARY: five fields, each a length and its bytes."""
    one = f"hiqiqidi{device_len}si16s"
    return struct.Struct("!" + one * size)


def copy_device(site_id: int) -> str:
    """The COPY rows' device: as long as the ingest's (batches.device_of), and told apart
    by the consistency check, since COPY adds readings that no totals count."""
    return f"bench-cpy-{site_id}"


def encode(batch: Batch) -> bytes:
    device = copy_device(batch.site_id).encode()
    batch_id = uuid.uuid4().bytes
    args: list[object] = []
    for w in batch.readings:
        micros = (w.ts - _EPOCH) // _ONE_MICRO
        args += (5, 8, batch.site_id, 8, micros, 8, w.methane_kg, len(device), device, 16, batch_id)
    body = _tuples(len(batch.readings), len(device)).pack(*args)
    return _HEADER + body + _TRAILER


_ONE_MICRO = datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


async def _once(data: bytes) -> AsyncIterator[bytes]:
    # asyncpg takes bytes as a path name; an async iterable is sent as it is, in memory
    yield data


async def copy_ceiling(
    url: str,
    timeline: Timeline,
    *,
    connections: int,
    size: int,
    warmup_s: float,
    duration_s: float,
    estimate_per_s: float,
    meter: CpuMeter,
) -> Row:
    """Closed loop on `connections` connections, each a COPY per batch."""
    count = int(estimate_per_s * (warmup_s + duration_s) * 1.3)
    built = [(b, encode(b)) for b in (timeline.batch(size) for _ in range(count))]
    more = ((b, encode(b)) for b in (timeline.batch(size) for _ in itertools.count()))
    streams: Iterator[tuple[Batch, bytes]] = itertools.chain(built, more)
    del built
    conns = [await asyncpg.connect(url) for _ in range(connections)]
    result = LoadResult(window_s=duration_s)
    t0 = time.perf_counter()
    lo, hi = t0 + warmup_s, t0 + warmup_s + duration_s

    async def one(conn: asyncpg.Connection) -> None:
        while (now := time.perf_counter()) < hi:
            batch, data = next(streams)
            await conn.copy_to_table(
                "measurements", source=_once(data), columns=COLUMNS, format="binary"
            )
            end = time.perf_counter()
            if now >= lo:
                request = Request(b"", batch.site_id, len(batch.readings))
                result.samples.append(Sample(now, end, 202, request))

    try:
        tasks = [asyncio.create_task(one(c)) for c in conns]
        await asyncio.sleep(max(0.0, lo - time.perf_counter()))
        meter.start()
        await asyncio.gather(*tasks)
        cpu = meter.stop()
    finally:
        for conn in conns:
            await conn.close()
    row = load_row("copy", f"binary COPY, {connections} connections", result, cpu)
    row.system = ("client", "postgres")
    return row
