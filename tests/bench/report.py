"""The one table, the targets against it, and the JSON artifact."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from tests.bench.phases import Row

COLUMNS = (
    "section",
    "case",
    "batches/s",
    "spread",
    "readings/s",
    "p50 ms",
    "p99 ms",
    "vs ceiling (spread)",
    "vs COPY (spread)",
    "CPU ms/b",
    "cores",
)
_LEFT = {0, 1, 10}  # the columns aligned left


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:,.{digits}f}"


def _cores(cpu: dict[str, float]) -> str:
    short = {
        "client": "cl",
        "api": "api",
        "worker": "wk",
        "postgres": "pg",
        "other": "oth",
        "steal": "st",
    }
    return " ".join(f"{short.get(k, k)} {v:.2f}" for k, v in cpu.items() if k in short)


def _ratio(value: float | None, spread: float | None) -> str:
    if value is None:
        return "-"
    return _num(value, 2) + ("" if spread is None else f" ({_num(spread, 2)})")


def _note(row: Row) -> str:
    skip = {"requests", "clients"}
    parts = []
    for key, value in row.extra.items():
        if key in skip:
            continue
        if isinstance(value, float):
            value = _num(value, 1)
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def table(rows: list[Row]) -> str:
    cells = [
        [
            r.section,
            r.case,
            _num(r.batches_per_s),
            _num(r.spread),
            _num(r.readings_per_s),
            _num(r.p50_ms, 1),
            _num(r.p99_ms, 1),
            _ratio(r.ratio, r.ratio_spread),
            _ratio(r.vs_copy, r.vs_copy_spread),
            _num(r.cpu_ms, 2),
            _cores(r.cpu),
        ]
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))]
    lines = []
    for i, line in enumerate([list(COLUMNS), *cells]):
        padded = [
            v.ljust(w) if j in _LEFT else v.rjust(w)
            for j, (v, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append(" | ".join(padded).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    notes = [f"  {r.section} / {r.case}: {_note(r)}" for r in rows if _note(r)]
    return "\n".join(lines) + ("\n\nnotes:\n" + "\n".join(notes) if notes else "")


def targets_text(targets: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}" for t in targets
    )


def machine(pg_version: str) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "postgres": pg_version,
    }


async def pg_settings(url: str) -> tuple[str, dict[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
        names = [
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "shared_buffers",
            "max_wal_size",
        ]
        settings = {n: await conn.fetchval(f"SHOW {n}") for n in names}
    finally:
        await conn.close()
    return str(version), settings


def write_json(path: Path, payload: dict[str, Any], rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "rows": [{**asdict(r), "cpu_ms": r.cpu_ms} for r in rows]}

    def finite(value: Any) -> Any:  # JSON has no NaN or Infinity
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return value

    path.write_bytes(msgspec.json.format(msgspec.json.encode(finite(payload)), indent=2) + b"\n")
