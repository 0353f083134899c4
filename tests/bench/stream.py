"""`python -m tests.bench.stream [--quick] [--events N]`: events per second one real worker
process relays to NATS JetStream (a local nats-server with a file store), and its CPU per
event, against max ingest measured in the same run.

1. Max ingest, as `make bench`'s end-to-end row: closed loop, 8 clients, 500-reading batches,
   one API process, no worker, 1000 sites (one outbox event per batch).
2. A worker with NATS_URL drains the events that run produced and relays them live (the relay
   loop beside the drain, as in production): drain and relay completion times.
3. The relay alone on those same events: they are queued again (relayed_at cleared) and a fresh
   worker publishes them to a second stream; the clock runs from that commit until every row is
   marked relayed in Postgres (so after JetStream's ack of each); worker CPU from /proc.
4. (--events N) synthetic rows per STREAM_BATCH_SIZE in --batch, written straight to the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats

from service.infra import db
from tests.bench import phases
from tests.bench.batches import Timeline
from tests.bench.stack import (
    BenchApi,
    CpuMeter,
    Services,
    cpu_seconds,
    postmaster_pid,
    prepare_database,
)
from tests.harness.processes import ROOT, WorkerProcess
from tests.harness.services import NatsServer, start_nats


async def queue_events(conn: asyncpg.Connection, site_id: int, n: int) -> None:
    """n processed batch events, each queued for the relay, as the drain leaves them."""
    async with conn.transaction():
        await conn.execute(
            """
            WITH events AS (
                INSERT INTO outbox (event_type, site_id, payload, processed_at)
                SELECT 'measurements.accepted', $1, jsonb_build_object(
                    'batch_id', gen_random_uuid(), 'request_id', md5(g::text),
                    'device_id', 'bench', 'accepted', 500,
                    'first_ts', now(), 'last_ts', now(), 'hours', jsonb_build_array(now())),
                    now()
                FROM generate_series(1, $2) AS g
                RETURNING id
            )
            INSERT INTO stream_relay (event_id, event_type)
            SELECT id, 'batch.accepted' FROM events
            """,
            site_id,
            n,
        )


async def run(
    services: Services, nats_server: NatsServer, events: int, batch: int
) -> dict[str, Any]:
    url, sites, _ = await prepare_database(
        services, f"stream_{batch}", sites=1, start=datetime.now(UTC)
    )
    worker = WorkerProcess(
        database_url=url,
        redis_url=services.redis.url,
        log_dir=services.log_dir,
        name=f"stream-{batch}",
        env={
            "LOG_LEVEL": "warning",
            "NATS_URL": nats_server.url,
            "STREAM_NAME": f"BENCH_{batch}",
            "STREAM_SUBJECT_PREFIX": f"bench{batch}.emissions.v1",
            "STREAM_BATCH_SIZE": str(batch),
        },
    )
    await worker.start(ready=None)
    conn = await db.connect(url)
    try:
        await worker.wait_until(
            lambda: conn.fetchval("SELECT count(*) FROM workers WHERE pid = $1", worker.pid),
            timeout=30,
            interval=0.05,
            what="recorded a heartbeat",
        )
        await asyncio.sleep(1.0)  # the relay connected and created its stream
        cpu0 = cpu_seconds(worker.pid)
        started = time.perf_counter()
        await queue_events(conn, sites[0], events)
        while await conn.fetchval("SELECT count(*) FROM stream_relay WHERE relayed_at IS NULL"):
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(worker.pid) - cpu0
    finally:
        await conn.close()
        await worker.terminate()
    nc = await nats.connect(nats_server.url)
    try:
        stored = (await nc.jetstream().stream_info(f"BENCH_{batch}")).state.messages
    finally:
        await nc.close()
    return {
        "stream_batch_size": batch,
        "events": events,
        "in_stream": stored,
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
        "worker_cpu_ms_per_event": round(cpu * 1000 / events, 3),
    }


def relay_worker(
    services: Services, nats_server: NatsServer, url: str, name: str, stream: str
) -> WorkerProcess:
    return WorkerProcess(
        database_url=url,
        redis_url=services.redis.url,
        log_dir=services.log_dir,
        name=name,
        env={
            "LOG_LEVEL": "warning",
            "NATS_URL": nats_server.url,
            "STREAM_NAME": stream,
            "STREAM_SUBJECT_PREFIX": f"{stream.lower()}.emissions.v1",
            "STREAM_BATCH_SIZE": "500",
        },
    )


async def started(worker: WorkerProcess, conn: asyncpg.Connection) -> None:
    await worker.start(ready=None)
    await worker.wait_until(
        lambda: conn.fetchval("SELECT count(*) FROM workers WHERE pid = $1", worker.pid),
        timeout=30,
        interval=0.05,
        what="recorded a heartbeat",
    )


async def in_stream(nats_server: NatsServer, stream: str) -> int:
    nc = await nats.connect(nats_server.url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def beside_ingest(
    services: Services, nats_server: NatsServer, args: argparse.Namespace
) -> dict[str, Any]:
    warmup_s, phase_s = (1.0, 5.0) if args.quick else (3.0, 15.0)
    start = datetime.now(UTC)
    url, sites, keys = await prepare_database(
        services, "stream_ingest", sites=args.sites, start=start
    )
    postmaster = await postmaster_pid(url)
    timeline = Timeline(sites, start=start, tag=f"bench-stream-{int(start.timestamp())}")

    # 1. Max ingest: the API alone, as make bench's end-to-end row.
    api = BenchApi(services, url, workers=1)
    await api.start(timeout=60)
    try:
        row = await phases.http_max(
            api,
            timeline,
            keys,
            section="end to end",
            case=f"1 API proc, {args.clients} clients",
            size=500,
            clients=args.clients,
            warmup_s=warmup_s,
            duration_s=phase_s,
            estimate_per_s=500,
            meter=CpuMeter({"client": [os.getpid()], "api": [api.pid]}, postmaster),
        )
    finally:
        await api.stop(timeout=20)
    ingest_per_s = row.batches_per_s or 0.0
    print(f"max ingest: {ingest_per_s:.0f} batches/s", file=sys.stderr, flush=True)

    conn = await db.connect(url)
    try:
        events = await conn.fetchval("SELECT count(*) FROM outbox")
        # 2. Drain and relay live: one worker with NATS_URL applies the backlog, and its relay
        # loop publishes what the drain queues meanwhile.
        live = relay_worker(services, nats_server, url, "stream-live", "BENCH_LIVE")
        t0 = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
        cpu0 = 0.0
        try:
            await started(live, conn)
            cpu0 = cpu_seconds(live.pid)
            drained = await phases.wait_drained(conn, timeout_s=900)
            while await conn.fetchval(
                "SELECT count(*) < $1 OR bool_or(relayed_at IS NULL) FROM stream_relay", events
            ):
                await asyncio.sleep(0.02)
            relayed = await conn.fetchval(
                "SELECT extract(epoch FROM max(relayed_at))::float8 FROM stream_relay"
            )
            live_cpu = cpu_seconds(live.pid) - cpu0
        finally:
            await live.terminate()
        live_stored = await in_stream(nats_server, "BENCH_LIVE")

        # 3. The relay alone on the same events, to a second stream.
        alone = relay_worker(services, nats_server, url, "stream-alone", "BENCH_ALONE")
        try:
            await started(alone, conn)
            await asyncio.sleep(1.0)  # the relay connected and created its stream
            cpu0 = cpu_seconds(alone.pid)
            t1 = time.perf_counter()
            await conn.execute(
                "UPDATE stream_relay SET relayed_at = NULL, attempts = 0, last_error = NULL,"
                " available_at = now(), queued_at = now()"
            )
            while await conn.fetchval("SELECT count(*) FROM stream_relay WHERE relayed_at IS NULL"):
                await asyncio.sleep(0.02)
            alone_s = time.perf_counter() - t1
            alone_cpu = cpu_seconds(alone.pid) - cpu0
        finally:
            await alone.terminate()
        alone_stored = await in_stream(nats_server, "BENCH_ALONE")
    finally:
        await conn.close()
    relay_per_s = events / alone_s
    return {
        "ingest_batches_per_s": round(ingest_per_s),
        "ingest_p99_ms": round(row.p99_ms or 0, 1),
        "ingest_cpu": row.cpu,
        "events": events,
        "live_drained_s": round(drained - t0, 2),
        "live_relayed_s": round(relayed - t0, 2),
        "live_relay_after_drain_s": round(relayed - drained, 2),
        "live_in_stream": live_stored,
        "live_worker_cpu_ms_per_event": round(live_cpu * 1000 / events, 3),
        "relay_alone_s": round(alone_s, 2),
        "relay_events_per_s": round(relay_per_s),
        "relay_in_stream": alone_stored,
        "relay_worker_cpu_ms_per_event": round(alone_cpu * 1000 / events, 3),
        "relay_to_ingest": round(relay_per_s / ingest_per_s, 2) if ingest_per_s else None,
    }


def print_beside(r: dict[str, Any]) -> None:
    print(
        "max ingest (1 API proc, closed loop, 500-reading batches): "
        f"{r['ingest_batches_per_s']} batches/s = events/s, p99 {r['ingest_p99_ms']} ms;"
        f" {r['events']} events produced"
    )
    print(
        f"drain + relay live (1 worker): drained in {r['live_drained_s']} s, all relayed"
        f" {r['live_relay_after_drain_s']} s after the drain, {r['live_in_stream']} in the stream,"
        f" worker CPU {r['live_worker_cpu_ms_per_event']} ms/event (drain + relay)"
    )
    print(
        f"relay alone (1 worker, claim 500): {r['relay_events_per_s']} events/s"
        f" ({r['relay_alone_s']} s), {r['relay_in_stream']} in the stream,"
        f" worker CPU {r['relay_worker_cpu_ms_per_event']} ms/event;"
        f" relay / max ingest = {r['relay_to_ingest']}"
    )


async def main(args: argparse.Namespace) -> None:
    log_dir = ROOT / "artifacts" / "bench-stream"
    services = Services.start(log_dir)
    nats_server = start_nats()
    try:
        beside = await beside_ingest(services, nats_server, args)
        print(json.dumps(beside), file=sys.stderr, flush=True)
        rows = []
        for batch in args.batch if args.events else ():
            rows.append(await run(services, nats_server, args.events, batch))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        nats_server.close()
        services.close()
    print_beside(beside)
    if not rows:
        (ROOT / "artifacts" / "bench-stream.json").write_text(
            json.dumps({"beside_ingest": beside, "synthetic": rows}, indent=2)
        )
        return
    head = ("claim", 6), ("events", 7), ("in stream", 10), ("s", 6), ("events/s", 9)
    print(" ".join(f"{name:>{width}}" for name, width in head), f"{'CPU ms/event':>13}")
    for r in rows:
        print(
            f"{r['stream_batch_size']:>6} {r['events']:>7} {r['in_stream']:>10} {r['seconds']:>6}"
            f" {r['events_per_s']:>9} {r['worker_cpu_ms_per_event']:>13}"
        )
    (ROOT / "artifacts" / "bench-stream.json").write_text(
        json.dumps({"beside_ingest": beside, "synthetic": rows}, indent=2)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s of ingest instead of 15 s")
    parser.add_argument("--sites", type=int, default=1000, help="sites (one device each)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument(
        "--events", type=int, default=0, help="also N synthetic events per --batch size"
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[500], help="STREAM_BATCH_SIZE")
    asyncio.run(main(parser.parse_args()))
