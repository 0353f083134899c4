"""`python -m tests.bench.delivery [--events N]`: webhook deliveries per second that one real
worker process sustains against local receivers (uvicorn processes), side by side:

- one subscription, receiver answering 204;
- four subscriptions, receivers answering 204;
- one good subscription beside a receiver that hangs past the timeout and one that fails.

Events are written straight to the outbox (processed) with their deliveries queued, as the
drain leaves them; the clock runs from that commit until every delivery to a good receiver is
recorded as delivered in Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service import subscriptions
from service.infra import db
from tests.bench.stack import Services, bench_actor, cpu_seconds, prepare_database, start_worker
from tests.harness.processes import ROOT, Process, free_port

SCENARIOS = [  # name, receivers, events (x --events)
    ("one_ok", ["ok"], 1.0),
    ("four_ok", ["ok"] * 4, 0.5),
    ("ok_beside_hang_and_fail", ["ok", "hang", "fail"], 1.0),
]


class ReceiverProcess(Process):
    """A webhook receiver (tests/bench/receiver_app.py under uvicorn) answering as `mode` says;
    ready once it answers at all."""

    def __init__(self, mode: str, log_dir: Path) -> None:
        self.port = free_port()
        self.mode = mode
        super().__init__(
            [
                "uvicorn", "tests.bench.receiver_app:app",
                "--port", str(self.port), "--log-level", "warning", "--no-access-log",
            ],
            name=f"receiver-{mode}-{self.port}",
            log_dir=log_dir,
            env={"RECEIVER_MODE": mode},
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def ready(self) -> bool:
        try:
            async with httpx.AsyncClient() as client:
                await client.get(self.url)
        except httpx.HTTPError:
            return False
        return True


async def queue_events(conn: asyncpg.Connection, site_id: int, n: int) -> None:
    """n processed batch events and a delivery per live subscription, as the drain leaves them."""
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
            INSERT INTO deliveries (subscription_id, event_id, event_type)
            SELECT s.id, e.id, 'batch.accepted'
            FROM events AS e CROSS JOIN webhook_subscriptions AS s
            WHERE s.disabled_at IS NULL
            """,
            site_id,
            n,
        )


async def scenario(services: Services, name: str, modes: list[str], events: int) -> dict[str, Any]:
    url, sites, _ = await prepare_database(services, name, sites=1, start=datetime.now(UTC))
    receivers = [ReceiverProcess(mode, services.log_dir) for mode in modes]
    try:
        for r in receivers:
            await r.start(timeout=10)
        conn = await db.connect(url)
        try:
            subs = []
            for r in receivers:
                sub, _ = await subscriptions.create(
                    conn,
                    url=r.url,
                    event_types=["batch.accepted"],
                    description=r.mode,
                    secret=None,
                    actor=bench_actor(),
                    **_loopback_allowed(),
                )
                subs.append((sub.id, r.mode))
            worker = await start_worker(services, url, f"delivery-{name}")
            try:
                cpu0 = cpu_seconds(worker.pid)
                good = [sid for sid, mode in subs if mode == "ok"]
                started = time.perf_counter()
                await queue_events(conn, sites[0], events)
                while await conn.fetchval(
                    "SELECT count(*) FROM deliveries"
                    " WHERE subscription_id = ANY($1) AND delivered_at IS NULL",
                    good,
                ):
                    await asyncio.sleep(0.02)
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds(worker.pid) - cpu0
            finally:
                await worker.terminate()
        finally:
            await conn.close()
        delivered = events * len(good)
        return {
            "scenario": name,
            "receivers": modes,
            "events": events,
            "delivered": delivered,
            "seconds": round(elapsed, 2),
            "deliveries_per_s": round(delivered / elapsed),
            "worker_cpu_ms_per_delivery": round(cpu * 1000 / delivered, 3),
        }
    finally:
        for r in receivers:
            r.close()  # the hanging one would wait on its open requests


async def main(args: argparse.Namespace) -> None:
    log_dir = ROOT / "artifacts" / "bench-delivery"
    services = Services.start(log_dir)
    try:
        rows = []
        for name, modes, events in SCENARIOS:
            if args.only and name not in args.only:
                continue
            rows.append(await scenario(services, name, modes, int(events * args.events)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        services.close()
    print(f"{'scenario':<26} {'delivered':>9} {'s':>7} {'deliveries/s':>13} {'worker CPU ms':>14}")
    for row in rows:
        print(
            f"{row['scenario']:<26} {row['delivered']:>9} {row['seconds']:>7} "
            f"{row['deliveries_per_s']:>13} {row['worker_cpu_ms_per_delivery']:>14}"
        )
    out = ROOT / "artifacts" / "bench-delivery.json"
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--only", nargs="+", help="scenario names")
    asyncio.run(main(parser.parse_args()))


def _loopback_allowed() -> dict[str, Any]:
    """The receivers listen on loopback: allow it where the egress policy exists."""
    if "allowed" not in inspect.signature(subscriptions.create).parameters:
        return {}  # a checkout from before the egress policy
    from domain.egress import parse_networks

    return {"allowed": parse_networks("127.0.0.0/8,::1/128")}
