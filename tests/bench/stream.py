"""`python -m tests.bench.stream [--events N]`: events per second one real worker process
relays to NATS JetStream (a local nats-server with a file store), and its CPU per event.

Events are written straight to the outbox (processed) with their stream_relay rows queued, as
the drain leaves them; the clock runs from that commit until every row is marked relayed in
Postgres (so after JetStream's ack of each). Compare with max ingest in batches/s (one outbox
event per batch) from `make bench` (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats

from service.infra import db
from tests.bench.stack import Services, cpu_seconds, prepare_database
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


async def main(args: argparse.Namespace) -> None:
    log_dir = ROOT / "artifacts" / "bench-stream"
    services = Services.start(log_dir)
    nats_server = start_nats()
    try:
        rows = []
        for batch in args.batch:
            rows.append(await run(services, nats_server, args.events, batch))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        nats_server.close()
        services.close()
    head = ("claim", 6), ("events", 7), ("in stream", 10), ("s", 6), ("events/s", 9)
    print(" ".join(f"{name:>{width}}" for name, width in head), f"{'CPU ms/event':>13}")
    for r in rows:
        print(
            f"{r['stream_batch_size']:>6} {r['events']:>7} {r['in_stream']:>10} {r['seconds']:>6}"
            f" {r['events_per_s']:>9} {r['worker_cpu_ms_per_event']:>13}"
        )
    (ROOT / "artifacts" / "bench-stream.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, nargs="+", default=[500], help="STREAM_BATCH_SIZE")
    asyncio.run(main(parser.parse_args()))
