"""The measurements, one function per row kind; each returns a Row for the table."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from service import ingest
from service.infra import db
from service.infra.settings import Settings
from tests.bench.batches import Batch, Timeline, http_requests
from tests.bench.load import LoadResult, Request, Sample, closed_loop, open_loop, percentile
from tests.bench.stack import BenchApi, CpuMeter

POLL_S = 0.02  # how often the lag poller reads site totals (the lag's resolution)


@dataclass
class Row:
    section: str
    case: str
    batches_per_s: float | None = None
    readings_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None  # to the DB ceiling of the same round
    vs_copy: float | None = None  # to binary COPY of the same readings, same round
    # Over interleaved rounds (tests.bench.rounds.combine): the numbers above are medians,
    # these the max - min of each case's rounds.
    spread: float | None = None  # of batches/s
    ratio_spread: float | None = None
    vs_copy_spread: float | None = None
    rounds: int = 1
    cpu: dict[str, float] = field(default_factory=dict)  # cores used, per process group
    extra: dict[str, Any] = field(default_factory=dict)
    # The process groups that are the system under test (the load client is not, except for
    # the DB ceiling, where the bench process runs service.ingest itself).
    system: tuple[str, ...] = ("api", "worker", "postgres")

    @property
    def cpu_ms(self) -> float | None:
        """CPU the system spent per batch (or event): robust to other load on the machine,
        which takes throughput away but not CPU time."""
        if not self.batches_per_s or not self.cpu:
            return None
        return sum(self.cpu.get(g, 0.0) for g in self.system) / self.batches_per_s * 1000


def load_row(section: str, case: str, result: LoadResult, cpu: dict[str, float]) -> Row:
    extra: dict[str, Any] = {"requests": len(result.ok)}
    if result.errors:
        extra["errors"] = result.errors
    if result.offered_per_s is not None:
        extra["offered_per_s"] = round(result.offered_per_s, 1)
        extra["stalls"] = stalls(result)
    return Row(
        section,
        case,
        batches_per_s=result.per_s,
        readings_per_s=result.readings_per_s,
        p50_ms=result.latency_ms(50),
        p99_ms=result.latency_ms(99),
        cpu=cpu,
        extra=extra,
    )


def stalls(result: LoadResult, slow_ms: float = 50.0) -> list[str]:
    """When (UTC wall clock) requests over `slow_ms` started, one entry per burst with its
    worst latency: to line up with the server logs (checkpoints) and the machine's load."""
    offset = time.time() - time.perf_counter()
    slow = sorted(
        (s.start, (s.end - s.start) * 1000) for s in result.ok if (s.end - s.start) * 1000 > slow_ms
    )
    bursts: list[tuple[float, float]] = []
    for at, ms in slow:
        if bursts and at - bursts[-1][0] < 1.0:
            bursts[-1] = (bursts[-1][0], max(bursts[-1][1], ms))
        else:
            bursts.append((at, ms))
    return [
        f"{time.strftime('%H:%M:%S', time.gmtime(offset + at))} max {ms:.0f} ms"
        for at, ms in bursts
    ][:20]


# --------------------------------------------------------------------------- DB ceiling


async def ceiling(
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
    """service.ingest.record_batch on pooled connections, no HTTP: what the SQL can do."""
    settings = Settings.from_env(
        {}, database_url=url, db_pool_min=connections, db_pool_max=connections
    )
    pool = await db.create_pool(settings)
    count = int(estimate_per_s * (warmup_s + duration_s) * 1.3)
    built = [timeline.batch(size) for _ in range(count)]
    batches: Iterator[Batch] = itertools.chain(
        built, (timeline.batch(size) for _ in itertools.count())
    )
    del built
    # The prebuilt batches are millions of objects that an API process would not hold: out
    # of the collector's way, as the API's own long-lived objects are (cli.serve.serve_app).
    gc.collect()
    gc.freeze()
    result = LoadResult(window_s=duration_s)
    wrong = 0
    t0 = time.perf_counter()
    lo, hi = t0 + warmup_s, t0 + warmup_s + duration_s

    async def one() -> None:
        nonlocal wrong
        while (now := time.perf_counter()) < hi:
            batch = next(batches)
            async with db.connection(pool) as conn:
                outcome = await ingest.record_batch(
                    conn,
                    ingest.submit(
                        site_id=batch.site_id,
                        device_id=batch.device_id,
                        key=batch.key,
                        readings=batch.readings,
                        request_id="bench",
                        retention=settings.idempotency_retention,
                    ),
                )
            end = time.perf_counter()
            if outcome.receipt is None or outcome.receipt.accepted != len(batch.readings):
                wrong += 1
            if now >= lo:
                request = Request(b"", batch.site_id, len(batch.readings))
                result.samples.append(Sample(now, end, 202, request))

    try:
        tasks = [asyncio.create_task(one()) for _ in range(connections)]
        await asyncio.sleep(max(0.0, lo - time.perf_counter()))
        meter.start()  # the window only, not the warm-up
        await asyncio.gather(*tasks)
        cpu = meter.stop()
    finally:
        await pool.close()
        gc.unfreeze()
    row = load_row("db ceiling", f"{connections} connection{'s' * (connections > 1)}", result, cpu)
    row.system = ("client", "postgres")
    if wrong:
        row.extra["unexpected_receipts"] = wrong
    return row


# --------------------------------------------------------------------------- HTTP ingest


async def http_max(
    api: BenchApi,
    timeline: Timeline,
    auth: dict[int, str],
    *,
    section: str,
    case: str,
    size: int,
    clients: int,
    warmup_s: float,
    duration_s: float,
    estimate_per_s: float,
    meter: CpuMeter,
) -> Row:
    """Closed loop: `clients` connections as fast as the API answers."""
    count = int(estimate_per_s * (warmup_s + duration_s) * 1.3)
    requests = http_requests(timeline, size, count, host=f"{api.host}:{api.port}", auth=auth)
    load = asyncio.create_task(
        closed_loop(
            api.host, api.port, requests, clients=clients, warmup_s=warmup_s, duration_s=duration_s
        )
    )
    await asyncio.sleep(warmup_s)
    meter.start()
    result = await load
    cpu = meter.stop()
    row = load_row(section, case, result, cpu)
    row.extra["clients"] = clients
    return row


async def warm(
    api: BenchApi,
    timeline: Timeline,
    auth: dict[int, str],
    *,
    clients: int,
    seconds: float,
    size: int = 500,
) -> None:
    """A short unmeasured closed-loop burst: a fresh API process opens its pool connections
    and prepares its statements here, not in the middle of a latency measurement."""
    count = int(seconds * min(5000, 250_000 / size))  # more than it takes in `seconds`
    requests = http_requests(timeline, size, count, host=f"{api.host}:{api.port}", auth=auth)
    await closed_loop(api.host, api.port, requests, clients=clients, warmup_s=0, duration_s=seconds)


async def http_rate(
    api: BenchApi,
    timeline: Timeline,
    auth: dict[int, str],
    *,
    section: str,
    case: str,
    size: int,
    rate_per_s: float,
    warmup_s: float,
    duration_s: float,
    meter: CpuMeter,
) -> Row:
    """Open loop at a fixed arrival rate."""
    count = int(rate_per_s * (warmup_s + duration_s)) + 1
    requests = http_requests(timeline, size, count, host=f"{api.host}:{api.port}", auth=auth)
    load = asyncio.create_task(
        open_loop(
            api.host,
            api.port,
            requests,
            rate_per_s=rate_per_s,
            duration_s=duration_s,
            warmup_s=warmup_s,
        )
    )
    await asyncio.sleep(warmup_s)
    meter.start()
    result = await load
    return load_row(section, case, result, meter.stop())


# --------------------------------------------------------------------------- drain


async def outbox_state(conn: asyncpg.Connection) -> tuple[int, float]:
    """(pending events, the server's clock as epoch seconds)."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE processed_at IS NULL AND dead_at IS NULL) AS pending, "
        "extract(epoch FROM clock_timestamp())::float8 AS at FROM outbox"
    )
    assert row is not None
    return row["pending"], row["at"]


async def checkpoint(url: str) -> None:
    """Write out the WAL debt of the phase before (max-rate ingest fills 540 MB in ~20 s), so a
    load-level phase pays for its own checkpoints only: at 50% load the next one that its WAL
    triggers is ~50 s away, beyond the phase. The checkpoints themselves stay in postgres.log."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def analyze(url: str) -> None:
    """VACUUM (ANALYZE) of every table autovacuum would process (ordinary tables and
    partitions, not the partitioned parent). Not part of a normal run: every full run that did
    this before the latency phase had its lag phases collapse (docs/benchmarks.md); with
    auto_explain in the bench's Postgres, the slow statements' plans land in postgres.log."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetchval(
            "SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ') FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname = 'public'"
        )
        if tables:
            await conn.execute(f"VACUUM (ANALYZE) {tables}")
    finally:
        await conn.close()


async def wait_drained(conn: asyncpg.Connection, *, timeout_s: float) -> float:
    """Poll until nothing is pending; returns the server clock then (epoch s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending, at = await outbox_state(conn)
        if pending == 0:
            return at
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending} outbox events still pending after {timeout_s}s")
        await asyncio.sleep(0.05)


async def drain_backlog(
    url: str, start_worker: Any, *, case: str, meter: CpuMeter, timeout_s: float
) -> tuple[Row, Any]:
    """Start a worker on a prefilled backlog and time it until nothing is pending.

    The clock starts at the first claim (processed_at is its transaction's start), so the
    worker's interpreter start-up is not counted.
    """
    conn = await asyncpg.connect(url)
    try:
        backlog, since = await outbox_state(conn)
        worker = await start_worker()
        meter.groups["worker"] = [worker.pid]
        meter.start()
        done_at = await wait_drained(conn, timeout_s=timeout_s)
        cpu = meter.stop()
        row = await conn.fetchrow(
            "SELECT count(*) AS events, extract(epoch FROM min(processed_at))::float8 AS first, "
            "coalesce(sum((payload->>'accepted')::int), 0) AS readings "
            "FROM outbox WHERE processed_at >= to_timestamp($1)",
            since,
        )
        assert row is not None
    finally:
        await conn.close()
    elapsed = max(done_at - row["first"], 1e-6) if row["events"] else float("nan")
    result = Row(
        "drain",
        case,
        batches_per_s=row["events"] / elapsed,
        readings_per_s=row["readings"] / elapsed,
        cpu=cpu,
        extra={"backlog_events": backlog, "events": row["events"], "seconds": round(elapsed, 2)},
    )
    return result, worker


async def server_clock(url: str) -> Any:
    """PostgreSQL's clock now (the one processed_at is stamped with)."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()


async def claims_since(url: str, since: Any) -> dict[str, Any]:
    """Events processed since `since` and the drain transactions (claims) that processed them:
    a claim stamps its events with its transaction's start time, one value per claim."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT processed_at) FROM outbox WHERE processed_at >= $1",
            since,
        )
    finally:
        await conn.close()
    assert row is not None  # aggregates without GROUP BY: always one row
    events, claims = row
    return {"claims": claims, "events_per_claim": round(events / claims, 1) if claims else None}


async def drained_after(url: str, timeout_s: float = 600.0) -> float:
    """Seconds from now until nothing is pending in the outbox."""
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        await wait_drained(conn, timeout_s=timeout_s)
        return round(time.perf_counter() - t0, 2)
    finally:
        await conn.close()


@dataclass
class _Ack:
    at: float
    site_id: int
    readings: int


async def lag_at_rate(
    api: BenchApi,
    url: str,
    timeline: Timeline,
    auth: dict[int, str],
    *,
    case: str,
    size: int,
    rate_per_s: float,
    warmup_s: float,
    duration_s: float,
    meter: CpuMeter,
    drain_timeout_s: float,
) -> Row:
    """Open-loop ingest with the worker running; lag = ack of a batch -> the site's totals
    include it, seen by polling site_totals every POLL_S."""
    conn = await asyncpg.connect(url)
    watcher = await asyncpg.connect(url)  # the poller's own: one query at a time per connection
    acks: list[_Ack] = []
    changes: dict[int, list[tuple[float, int]]] = defaultdict(list)
    stop = asyncio.Event()
    try:
        await wait_drained(conn, timeout_s=drain_timeout_s)
        seen = {r["site_id"]: r["readings"] for r in await conn.fetch(_TOTALS)}
        baseline = dict(seen)

        async def poll() -> None:
            while not stop.is_set():
                rows = await watcher.fetch(_TOTALS)
                at = time.perf_counter()
                for r in rows:
                    if r["readings"] != seen.get(r["site_id"]):
                        seen[r["site_id"]] = r["readings"]
                        changes[r["site_id"]].append((at, r["readings"]))
                await asyncio.sleep(POLL_S)

        def on_answer(sample: Sample) -> None:
            if sample.status == 202:
                accepted = msgspec.json.decode(sample.body)["accepted"]
                acks.append(_Ack(sample.end, sample.request.site_id, accepted))

        poller = asyncio.create_task(poll())
        count = int(rate_per_s * (warmup_s + duration_s)) + 1
        requests = http_requests(timeline, size, count, host=f"{api.host}:{api.port}", auth=auth)
        load = asyncio.create_task(
            open_loop(
                api.host,
                api.port,
                requests,
                rate_per_s=rate_per_s,
                duration_s=duration_s,
                warmup_s=warmup_s,
                on_answer=on_answer,
            )
        )
        await asyncio.sleep(warmup_s)
        meter.start()
        result = await load
        cpu = meter.stop()
        pending_at_end, _ = await outbox_state(conn)
        t_end = time.perf_counter()
        await wait_drained(conn, timeout_s=drain_timeout_s)
        drained_after = time.perf_counter() - t_end
        await asyncio.sleep(2 * POLL_S)
        stop.set()
        await poller
    finally:
        stop.set()
        await conn.close()
        await watcher.close()
    lags = _lags(acks, changes, baseline, since=time_window_start(result))
    row = load_row("lag", case, result, cpu)
    row.extra.update(
        {
            "lag_p50_ms": percentile(lags, 50),
            "lag_p99_ms": percentile(lags, 99),
            "lag_max_ms": max(lags, default=float("nan")),
            "pending_at_end": pending_at_end,
            "drained_s_after_load": round(drained_after, 2),
        }
    )
    return row


_TOTALS = "SELECT site_id, readings FROM site_totals"


def time_window_start(result: LoadResult) -> float:
    return min((s.start for s in result.samples), default=0.0)


def _lags(
    acks: list[_Ack],
    changes: dict[int, list[tuple[float, int]]],
    baseline: dict[int, int],
    *,
    since: float,
) -> list[float]:
    """Per acknowledged batch: ms until its site's reading count first covered it.

    Every batch of a site acknowledged up to this one must be in the count: a batch is
    "visible" once the totals include it and everything acknowledged before it.
    """
    by_site: dict[int, list[_Ack]] = defaultdict(list)
    for ack in sorted(acks, key=lambda a: a.at):
        by_site[ack.site_id].append(ack)
    lags = []
    for site_id, site_acks in by_site.items():
        need = baseline.get(site_id, 0)
        series = changes.get(site_id, [])
        i = 0
        for ack in site_acks:
            need += ack.readings
            while i < len(series) and series[i][1] < need:
                i += 1
            if ack.at < since:
                continue  # warm-up
            seen_at = series[i][0] if i < len(series) else float("inf")
            lags.append(max(0.0, seen_at - ack.at) * 1000)
    return lags


# --------------------------------------------------------------------------- growth


async def ingest_and_drain(
    api: BenchApi,
    url: str,
    timeline: Timeline,
    auth: dict[int, str],
    *,
    size: int,
    clients: int,
    batches: int,
    meter: CpuMeter,
    drain_timeout_s: float,
) -> dict[str, Any]:
    """A fixed number of batches as fast as they go, with the worker draining alongside;
    the cost per batch is the time until the last one is applied, divided by the count."""
    requests = http_requests(timeline, size, batches, host=f"{api.host}:{api.port}", auth=auth)
    conn = await asyncpg.connect(url)
    try:
        _, server_t0 = await outbox_state(conn)
        meter.start()
        t0 = time.perf_counter()
        result = await closed_loop(
            api.host,
            api.port,
            itertools.islice(requests, batches),
            clients=clients,
            warmup_s=0.0,
            duration_s=600.0,
        )
        ingest_s = time.perf_counter() - t0
        done = await wait_drained(conn, timeout_s=drain_timeout_s)
        cpu = meter.stop()
        total_s = done - server_t0
    finally:
        await conn.close()
    return {
        "batches": len(result.ok),
        "errors": result.errors,
        "ingest_s": ingest_s,
        "total_s": total_s,
        "ms_per_batch": total_s / max(1, len(result.ok)) * 1000,
        "ingest_p50_ms": result.latency_ms(50),
        "ingest_p99_ms": result.latency_ms(99),
        "cpu": cpu,
    }
