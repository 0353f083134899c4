"""`python -m tests.bench.ha [--quick]`: the cost of the HA guarantee, measured side by side.

One run starts the bench's single PostgreSQL (defaults, fsync on) and the 3-node Patroni
cluster of deploy/ha (strict synchronous replication: a commit waits for a standby's flush),
on the same machine, with one API process in front of each. Rounds alternate single / HA,
closed loop, 500- and 10-reading batches; each case reports the median of its rounds and the
spread (max - min). Then the primary's host is killed (kill -9 of its etcd, Patroni and
Postgres) under a light device load, `--failovers` times: the time from the kill to the first
202 of a request sent after it, and the 503s the devices saw. See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import uvloop

from deploy.ha.cluster import DB_HOSTS, HaCluster
from tests.bench import phases, stack
from tests.bench.batches import Timeline
from tests.bench.rounds import median_spread
from tests.bench.stack import BenchApi, CpuMeter, Services, children


def log(message: str) -> None:
    print(f"[bench-ha {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _pids(dsn: str) -> list[int]:
    """A node's postmaster and its children (backends, walsender, checkpointer, ...)."""
    master = await stack.postmaster_pid(dsn)
    return [master, *children(master)]


async def cluster_groups(cluster: HaCluster) -> dict[str, list[int]]:
    primary = cluster.primary()
    groups: dict[str, list[int]] = {"postgres": [], "standbys": []}
    for host in DB_HOSTS:
        groups["postgres" if host == primary else "standbys"] += await _pids(cluster.node_dsn(host))
    return groups


def summarize(rows: list[phases.Row]) -> dict[str, Any]:
    rate, rate_spread = median_spread([r.batches_per_s or 0.0 for r in rows])
    p99, p99_spread = median_spread([r.p99_ms or 0.0 for r in rows])
    cpu = [r.cpu_ms or 0.0 for r in rows]
    return {
        "batches_per_s": round(rate, 1),
        "spread_per_s": round(rate_spread, 1),
        "p99_ms": round(p99, 1),
        "p99_spread_ms": round(p99_spread, 1),
        "cpu_ms_per_batch": round(statistics.median(cpu), 2),
        "standby_cores": round(statistics.median(r.cpu.get("standbys", 0.0) for r in rows), 2),
        "rounds": len(rows),
    }


async def failover(
    cluster: HaCluster, api: BenchApi, keys: dict[int, str], devices: int
) -> dict[str, Any]:
    """Kill the primary's host under `devices` devices posting 10-reading batches (each
    retried with its key until a 202); then bring the host back as a standby."""
    acks: list[tuple[float, float]] = []
    statuses: dict[str, int] = {}
    running = True
    start = stack.now() - timedelta(days=3)

    async def device(site_id: int, n0: int) -> None:
        n = n0
        async with httpx.AsyncClient(base_url=api.url, timeout=5.0) as client:
            while running:
                n += 1
                first = start - timedelta(minutes=10 * n)
                body = {
                    "device_id": f"bench-dev-{site_id}",
                    "measurements": [
                        {"ts": (first + timedelta(minutes=i)).isoformat(), "methane_kg": 1.0}
                        for i in range(10)
                    ],
                }
                headers = {
                    "Authorization": f"Bearer {keys[site_id]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                while True:
                    sent = time.monotonic()
                    try:
                        response = await client.post(
                            f"/v1/sites/{site_id}/measurements", json=body, headers=headers
                        )
                        status = str(response.status_code)
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "202":
                        acks.append((sent, time.monotonic()))
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.05)

    sites = sorted(keys)[:devices]
    tasks = [asyncio.create_task(device(s, i * 100_000)) for i, s in enumerate(sites)]
    try:
        await asyncio.sleep(3)
        victim = cluster.primary()
        assert victim is not None, "no primary before the kill"
        before = dict(statuses)
        killed = time.monotonic()
        cluster.kill_host(victim)
        while not any(sent >= killed for sent, _ in acks):
            if time.monotonic() - killed > 90:
                raise AssertionError("no 202 within 90 s of the kill")
            await asyncio.sleep(0.05)
        recovery = min(done for sent, done in acks if sent >= killed) - killed
        await asyncio.sleep(1)
    finally:
        running = False
        await asyncio.gather(*tasks, return_exceptions=True)
    seen = {k: v - before.get(k, 0) for k, v in statuses.items() if v - before.get(k, 0)}
    new_primary = cluster.primary()
    log(f"killed {victim}: first 202 after {recovery:.2f} s; new primary {new_primary}; {seen}")
    cluster.start_host(victim)
    await asyncio.to_thread(cluster.wait_healthy, 120)
    return {"killed": victim, "recovery_s": round(recovery, 2), "statuses": seen}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = Path(args.logs)
    services = await asyncio.to_thread(Services.start, logs)
    base = tempfile.mkdtemp(prefix="emissions-bench-ha-")
    mode = "netns" if os.geteuid() == 0 and not args.loopback else "loopback"
    cluster = HaCluster(base, mode=mode)
    apis: list[BenchApi] = []
    try:
        log(f"starting the HA cluster ({mode}) in {base}")
        await asyncio.to_thread(cluster.up)
        start = stack.now()
        ha_services = SimpleNamespace(
            pg=SimpleNamespace(url=cluster.dsn("postgres"), url_for=cluster.dsn)
        )
        targets: dict[str, tuple[BenchApi, Timeline, dict[int, str]]] = {}
        for name, svc in (("single", services), ("ha", ha_services)):
            url, sites, keys = await stack.prepare_database(
                svc,  # type: ignore[arg-type]
                "bench_ha",
                sites=args.sites,
                start=start,
            )
            api = BenchApi(services, url, workers=1)
            api.env["DB_CONNECT_TIMEOUT_S"] = "2"
            api.env["DB_COMMAND_TIMEOUT_S"] = "5"
            apis.append(api)
            await api.start(timeout=60)
            timeline = Timeline(sites, start=start, tag=f"{name}-{int(start.timestamp())}")
            await phases.warm(api, timeline, keys, clients=args.clients, seconds=2)
            targets[name] = (api, timeline, keys)
        single_pg = await _pids(services.pg.url)
        rows: dict[tuple[str, int], list[phases.Row]] = {}
        for round_no in range(args.rounds):
            for size in (500, 10):
                for name, (api, timeline, keys) in targets.items():
                    groups = {"client": [os.getpid()], "api": [api.pid]}
                    if name == "single":
                        groups["postgres"] = single_pg
                    else:
                        groups.update(await cluster_groups(cluster))
                    row = await phases.http_max(
                        api,
                        timeline,
                        keys,
                        section=name,
                        case=f"{size} readings, 1 API proc, {args.clients} clients",
                        size=size,
                        clients=args.clients,
                        warmup_s=1.0,
                        duration_s=args.phase_s,
                        estimate_per_s=3000 if size == 10 else 600,
                        meter=CpuMeter(groups),
                    )
                    rows.setdefault((name, size), []).append(row)
                    log(
                        f"round {round_no + 1} {name} {size}: {row.batches_per_s:.0f}/s "
                        f"p99 {row.p99_ms:.1f} ms"
                    )
        results: dict[str, Any] = {"throughput": {}}
        for size in (500, 10):
            single, ha = summarize(rows["single", size]), summarize(rows["ha", size])
            results["throughput"][size] = {
                "single": single,
                "ha": ha,
                "ratio": round(ha["batches_per_s"] / single["batches_per_s"], 2),
                "p99_ratio": round(ha["p99_ms"] / single["p99_ms"], 2),
            }
        api, _, keys = targets["ha"]
        results["failovers"] = [
            await failover(cluster, api, keys, args.devices) for _ in range(args.failovers)
        ]
        times = [f["recovery_s"] for f in results["failovers"]]
        results["recovery_s"] = {
            "median": round(statistics.median(times), 2),
            "min": min(times),
            "max": max(times),
        }
        results["mode"] = mode
        return results
    finally:
        for api in apis:
            await api.stop()
        await asyncio.to_thread(cluster.down, True)
        await asyncio.to_thread(services.close)


def table(results: dict[str, Any]) -> str:
    lines = [
        "case                      | single b/s (spread) | HA b/s (spread) | HA/single | "
        "p99 single ms | p99 HA ms | CPU ms/b single | CPU ms/b HA | standby cores",
        "-" * 150,
    ]
    for size, t in results["throughput"].items():
        s, h = t["single"], t["ha"]
        lines.append(
            f"{size:>3} readings, 1 API proc  | "
            f"{s['batches_per_s']:>9,.0f} ({s['spread_per_s']:>5,.0f}) "
            f"| {h['batches_per_s']:>7,.0f} ({h['spread_per_s']:>5,.0f}) | {t['ratio']:>9.2f} | "
            f"{s['p99_ms']:>13.1f} | {h['p99_ms']:>9.1f} | {s['cpu_ms_per_batch']:>15.2f} | "
            f"{h['cpu_ms_per_batch']:>11.2f} | {h['standby_cores']:>13.2f}"
        )
    r = results["recovery_s"]
    lines.append(
        f"\nfailover (kill -9 of the primary's host) to the first 202 of a request sent after "
        f"it: median {r['median']} s, min {r['min']} s, max {r['max']} s over "
        f"{len(results['failovers'])} kills"
    )
    for f in results["failovers"]:
        lines.append(f"  killed {f['killed']}: {f['recovery_s']} s, devices saw {f['statuses']}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    results = await run(args)
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    results["args"] = vars(args)
    print(table(results))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {args.json} ({results['elapsed_s']} s)")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.ha", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round of 4 s, 1 failover")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase-s", type=float, default=10.0)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--devices", type=int, default=8, help="devices during a failover")
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--loopback", action="store_true", help="no namespaces even as root")
    parser.add_argument("--json", default="artifacts/bench-ha.json")
    parser.add_argument("--logs", default="artifacts/bench-ha-logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.phase_s, args.failovers = 1, 4.0, 1
    return args


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
