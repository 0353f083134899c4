"""`python -m tests.bench.small_ab --base REF [--rounds N] [--sizes N ...] [--profile]`: small
batches (and the 500-reading kind) end to end, this checkout's API against REF's API, side by
side in one run; see docs/benchmarks.md.

Both APIs (2 processes each) serve the same database on the bench's own Postgres; only one is
under load at a time. Each round runs every size on both, in alternating order, so the two
share the machine's spells of noise; a ratio (this checkout / REF) is taken within its round,
and the table shows medians and spreads. REF must use the same schema (its API is started on
a database migrated by this checkout).

`--profile` samples every API process of each side with py-spy (a dev dependency; it needs the
right to ptrace the API, as root or with kernel.yama.ptrace_scope 0) during an extra phase of
1-reading batches (`--profile-size N`: N readings), and splits the API's CPU per request by
where the samples fell: uvicorn and Litestar, decoding the body, the checks, the SQL round
trips (asyncpg), the doorbell, logging, metrics.
py-spy counts a thread that is runnable but not running (preempted) as busy where it stands:
on a saturated machine a send that wakes another process (Postgres, the client, Redis) often
yields the core to it, and collects samples meanwhile. So the profile runs at the lowest
client count, and its split is a guide to where the time goes, not an exact CPU account.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvloop

from tests.bench import phases, report, rounds, stack
from tests.bench.batches import Timeline
from tests.bench.phases import Row
from tests.bench.stack import BenchApi, CpuMeter, Services
from tests.harness.processes import ROOT

# 8 clients, each waiting for its answer, leave this code's API and Postgres ~15% idle on 2
# cores (each request waits for its commit's fsync): a rate bounded by the clients' latency.
# 32 saturate both sides: the rate the machine can take, as a fleet of devices would load it.
CLIENTS = (8, 32)

# Where a profile sample's CPU went: the innermost frame that matches decides (first rule that
# matches it, in this order); frames match on their file's path.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQL round trips (asyncpg)", ("/asyncpg/",)),
    ("doorbell (Redis)", ("/service/infra/doorbell.py", "/redis/", "/arq/")),
    ("logging", ("/structlog/", "/logging/", "/api/logs.py", "/service/infra/logs.py")),
    ("metrics", ("/prometheus_client/", "/service/infra/metrics.py")),
    ("decode", ("/api/decode.py", "/msgspec/")),
    (
        "checks (auth, rate, readings, fingerprint)",
        (
            "/domain/",
            "/service/devices.py",
            "/service/infra/ratelimit.py",
            "/api/auth.py",
        ),
    ),
    ("ingest service (around the SQL)", ("/service/ingest.py", "/service/infra/db.py")),
    ("uvicorn and Litestar", ("/uvicorn/", "/litestar/", "/httptools/", "/h11/", "/api/")),
)
OTHER = "event loop and other"
_LOOP = ("Runner.run (", "BaseEventLoop.run_", "Handle._run (")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")


def log(message: str) -> None:
    print(f"[small-ab {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def checkout(ref: str, into: Path) -> tuple[str, Path]:
    """REF's files (git archive) under `into`/<commit>; (commit, path)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = into / commit[:12]
    if not (tree / "cli").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return commit, tree


def categorize(raw: str) -> Counter[str]:
    """py-spy's raw (collapsed) stacks as samples per category."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack_text, _, n = line.rpartition(" ")
        if not stack_text or not n.isdigit():
            continue
        frames = stack_text.split(";")
        if not any("_main" in f or "Server.run" in f or "asyncio" in f for f in frames[:12]):
            continue  # a thread other than the event loop's (e.g. the log queue's)
        counts[_category(frames)] += int(n)
    return counts


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        if frame.startswith(_LOOP):
            break  # up to the event loop's own frames: nothing more specific matched
        match = _FRAME.match(frame)
        # py-spy names a file by its path under its sys.path entry ("asyncpg/pool.py").
        path = "/" + (match.group("path") if match else frame).lstrip("/")
        for name, marks in CATEGORIES:
            if any(mark in path for mark in marks):
                return name
    return OTHER


async def profile(
    api: BenchApi,
    timeline: Timeline,
    keys: dict[int, str],
    pm: int,
    seconds: float,
    out: Path,
    *,
    clients: int,
    size: int = 1,
) -> dict[str, Any]:
    """A phase of `size`-reading batches (--profile-size) with py-spy sampling every API
    process: the API's CPU per request, split by category. The samples stay in `out`
    (py-spy's raw format: collapsed stacks, input to flamegraph tools)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    # Every API process: the kernel hands the clients' keep-alive connections to whichever
    # process accepts first, so one process may serve most of them (or none).
    pids = api.pids()
    parts = [out.with_name(f"{out.stem}-{pid}{out.suffix}") for pid in pids]
    samplers = [
        subprocess.Popen(
            [
                *(spy, "record", "--format", "raw", "--rate", "250", "--nonblocking"),
                *("--duration", str(int(seconds)), "--output", str(part), "--pid", str(pid)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for pid, part in zip(pids, parts, strict=True)
    ]
    await asyncio.sleep(1.0)  # py-spy attaches
    row = await phases.http_max(
        api,
        timeline,
        keys,
        section="profile",
        case=f"{size} reading(s)",
        size=size,
        clients=clients,
        warmup_s=0.5,
        duration_s=seconds - 2.0,
        estimate_per_s=2500 if size < 100 else 600,
        meter=CpuMeter({"all_api": pids}, pm),
    )
    errors = [(await asyncio.to_thread(s.communicate))[1] for s in samplers]
    raw = "".join(part.read_text() for part in parts if part.exists())
    out.write_text(raw)
    for part in parts:
        part.unlink(missing_ok=True)
    err = b"".join(e or b"" for e in errors)
    counts = categorize(raw)
    total = sum(counts.values())
    if not total:
        return {"error": (err or b"").decode(errors="replace").strip()[-300:] or "no samples"}
    per_request_ms = (row.cpu.get("all_api", 0.0) / (row.batches_per_s or 1.0)) * 1000
    return {
        "clients": clients,
        "size": size,
        "api_cpu_ms_per_request": round(per_request_ms, 3),
        "samples": total,
        "split_ms": {
            name: round(per_request_ms * counts[name] / total, 3)
            for name in [*(c for c, _ in CATEGORIES), OTHER]
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = Path(args.logs)
    commit, tree = checkout(args.base, Path(args.trees))
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    log(f"base {commit[:12]} (from {tree}) against this checkout ({head[:12]}{'+' * dirty})")
    services = await asyncio.to_thread(Services.start, logs)
    rows: list[Row] = []
    profiles: dict[str, Any] = {}
    try:
        start = stack.now()
        url, sites, keys = await stack.prepare_database(
            services, "bench_small_ab", sites=args.sites, start=start, months=2
        )
        pm = await stack.postmaster_pid(url)
        timeline = Timeline(sites, start=start, tag=f"ab-{int(start.timestamp())}")
        sides = {
            "base": BenchApi(services, url, workers=2, cwd=tree),
            "this": BenchApi(services, url, workers=2),
        }
        try:
            for api in sides.values():
                await api.start(timeout=60)
            for api in sides.values():  # pools open, statements prepared
                await phases.warm(
                    api, timeline, keys, clients=max(args.clients), seconds=1.0, size=1
                )
            tried: dict[tuple[str, str], list[Row]] = {}
            for round_no in range(args.rounds):
                order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
                for size, clients in itertools.product(args.sizes, args.clients):
                    got: dict[str, Row] = {}
                    for side in order:
                        api = sides[side]
                        await phases.checkpoint(url)
                        log(
                            f"round {round_no + 1}/{args.rounds}: {size} reading(s), "
                            f"{clients} clients, {side}"
                        )
                        row = await phases.http_max(
                            api,
                            timeline,
                            keys,
                            section=f"{size} reading{'s' * (size > 1)}, {clients} clients",
                            case=f"{side}, 2 API procs",
                            size=size,
                            clients=clients,
                            warmup_s=1.0,
                            duration_s=args.phase_s,
                            estimate_per_s=2500 if size < 100 else 600,
                            meter=CpuMeter({"client": [os.getpid()], "api": api.pids()}, pm),
                        )
                        got[side] = row
                    got["this"].ratio = (got["this"].batches_per_s or 0) / (
                        got["base"].batches_per_s or float("inf")
                    )
                    for row in got.values():
                        tried.setdefault((row.section, row.case), []).append(row)
            rows = [rounds.combine(rs) for rs in tried.values()]
            if args.profile:
                for side, api in sides.items():
                    size = args.profile_size
                    log(f"profile of {side}: {size}-reading batches, py-spy on every API process")
                    out = Path(args.json).with_name(f"bench-small-ab-profile-{side}.txt")
                    profiles[side] = await profile(
                        api,
                        timeline,
                        keys,
                        pm,
                        args.profile_s,
                        out,
                        clients=min(args.clients),
                        size=size,
                    )
        finally:
            for api in sides.values():
                await api.stop(timeout=20)
    finally:
        await asyncio.to_thread(services.close)
    return {"base": commit, "head": head, "dirty": dirty, "rows": rows, "profiles": profiles}


def text(result: dict[str, Any]) -> str:
    rows: list[Row] = result["rows"]
    lines = [report.table(rows), ""]
    for row in rows:
        if row.ratio is not None:
            lines.append(
                f"{row.section}: this / base = {row.ratio:.2f} (spread {row.ratio_spread:.2f}, "
                f"rounds {row.extra.get('ratio_rounds')}); CPU ms per request "
                f"{report._num(row.cpu_ms, 2)} vs base "
                + report._num(_cpu_of(rows, row.section, "base"), 2)
            )
    for side, found in result["profiles"].items():
        lines.append(
            f"\nAPI CPU per {found.get('size')}-reading request, {side}"
            f" ({found.get('clients')} clients):"
        )
        if "error" in found:
            lines.append(f"  profile unavailable: {found['error']}")
            continue
        total, samples = found["api_cpu_ms_per_request"], found["samples"]
        lines.append(f"  total {total:.3f} ms ({samples} samples)")
        for name, ms in found["split_ms"].items():
            lines.append(f"  {name:<44} {ms:6.3f} ms")
    return "\n".join(lines)


def _cpu_of(rows: list[Row], section: str, side: str) -> float | None:
    for row in rows:
        if row.section == section and row.case.startswith(side):
            return row.cpu_ms
    return None


async def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    result = await run(args)
    print(text(result))
    print(
        f"\nbase {result['base'][:12]}, this {result['head'][:12]}{'+' * result['dirty']}; "
        f"machine: {report.machine('')}; elapsed {time.perf_counter() - t0:.0f} s"
    )
    payload = {
        "command": "python -m tests.bench.small_ab " + " ".join(sys.argv[1:]),
        "base": result["base"],
        "head": result["head"],
        "dirty": result["dirty"],
        "profiles": result["profiles"],
    }
    report.write_json(Path(args.json), payload, result["rows"])
    log(f"wrote {args.json}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.small_ab", description=__doc__)
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 10, 500], help="readings per batch"
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=list(CLIENTS), help="concurrent clients"
    )
    parser.add_argument("--phase-s", type=float, default=6.0, help="seconds measured per case")
    parser.add_argument("--sites", type=int, default=1000, help="sites (one device each)")
    parser.add_argument("--profile", action="store_true", help="split the API's CPU (py-spy)")
    parser.add_argument("--profile-s", type=float, default=12.0, help="seconds profiled per side")
    parser.add_argument("--profile-size", type=int, default=1, help="readings per profiled batch")
    parser.add_argument("--json", default="artifacts/bench-small-ab.json")
    parser.add_argument("--logs", default="artifacts/bench-logs-ab")
    parser.add_argument("--trees", default="artifacts/bench-base", help="where REF is unpacked")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
