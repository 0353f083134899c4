"""What the bench runs against: its own Postgres (defaults, fsync on) and Redis, databases
prepared for it, API and worker processes, and the CPU and memory those processes use."""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

from service.infra import db, migrations
from tests.bench.batches import device_of
from tests.harness.processes import ROOT, ApiProcess, WorkerProcess
from tests.harness.services import PostgresServer, RedisServer, start_postgres, start_redis

# Windows the bench writes lie within this span before the run's start; history is older.
RECENT = timedelta(days=30)
# The bench's workers keep every month it writes open (400 days of grace): devices post
# current readings, and restating a closed month is late data's rare path. With the default
# 24 h, the first days of a month put the bench's windows in the closed month before: every
# claim then also wrote restatements and their report.restated events (515 per 2,015 batch
# events at 130 batches/s on 2 December), so the drain's rows hung on the date.
REPORT_GRACE_H = str(400 * 24)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Beyond PostgreSQL's defaults, only logging: every autovacuum run (and checkpoint, on by
# default) lands in postgres.log with its time, to line up with a phase's stalls; so does the
# plan of any statement that ran 1 s or longer (auto_explain without ANALYZE: no per-node
# timing, nothing measurable on statements that take ~1 ms).
PG_SETTINGS = {
    "log_autovacuum_min_duration": "0",
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "1s",
}


@dataclass
class Services:
    pg: PostgresServer
    redis: RedisServer
    log_dir: Path

    @classmethod
    def start(cls, log_dir: Path) -> Services:
        # The bench's own local servers: never the suite's shared ones (their settings are
        # unknown) nor containers (their networking would be in the numbers).
        log_dir.mkdir(parents=True, exist_ok=True)
        pg = start_postgres(durable=True, local=True, settings=PG_SETTINGS)
        return cls(pg, start_redis(local=True), log_dir)

    def close(self) -> None:
        # Keep the server's log (checkpoints, autovacuum) beside the bench's own logs.
        pg_log = getattr(getattr(self.pg, "_control", None), "log", None)
        if isinstance(pg_log, Path) and pg_log.exists():
            shutil.copyfile(pg_log, self.log_dir / "postgres.log")
        self.pg.close()
        self.redis.close()


async def prepare_database(
    services: Services, name: str, *, sites: int, start: datetime, months: int = 2
) -> tuple[str, list[int], dict[int, str]]:
    """A migrated database with monthly partitions for every window the bench may write,
    `sites` sites, and a device key per site when the API has device keys. `months` (of 30
    days) back from `start`: the main run's rounds and COPY rows take ~2 with 1000 sites.

    Returns the URL, the site ids and {site_id: device key}.
    """
    url = await _create_database(services, name)
    conn = await db.connect(url)
    try:
        await migrations.migrate(conn)
        await migrations.ensure_partitions(conn)
        for month in _months(start - months * RECENT, start):
            await conn.fetchval("SELECT ensure_measurement_partition($1)", month)
        site_ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO sites (name, emission_limit_kg, reporting_interval_s) "
                "SELECT 'bench site ' || g, 1e12, 60 FROM generate_series(1, $1) AS g "
                "RETURNING id",
                sites,
            )
        ]
        keys = await _device_keys(conn, site_ids)
    finally:
        await conn.close()
    return url, site_ids, keys


async def clone_database(services: Services, template: str, name: str) -> str:
    """A fresh copy of `template` (file by file, not through the WAL) as `name`; its URL."""
    return await _create_database(services, name, f'TEMPLATE "{template}" STRATEGY = FILE_COPY')


async def _create_database(services: Services, name: str, options: str = "") -> str:
    """`name` created afresh (dropped first if it exists); its URL."""
    admin = await asyncpg.connect(services.pg.url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" {options}')
    finally:
        await admin.close()
    return services.pg.url_for(name)


async def drop_database(services: Services, name: str) -> None:
    admin = await asyncpg.connect(services.pg.url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _device_keys(conn: asyncpg.Connection, site_ids: list[int]) -> dict[int, str]:
    """One key per site's device, when this version of the API authenticates devices."""
    keys: ModuleType
    try:
        from service import devices as keys
    except ImportError:
        try:  # before the service layer's redesign (3f2b7ab), which removed service/auth.py
            keys = importlib.import_module("service.auth")
        except ImportError:
            return {}
    create = getattr(keys, "create_device_key", None)
    if create is None:
        return {}
    secrets = {}
    for site_id in site_ids:
        _, secret = await create(
            conn,
            device_id=device_of(site_id),
            site_ids=[site_id],
            name="bench",
            actor=bench_actor(),
        )
        secrets[site_id] = secret
    return secrets


def bench_actor() -> Any:
    """Who the bench acts as in the audit: an admin Actor, or a plain name before roles."""
    try:
        from domain.roles import Actor
    except ImportError:
        return "bench"
    return Actor("bench", "admin")


def _months(lo: datetime, hi: datetime) -> Iterable[date]:
    month = date(lo.year, lo.month, 1)
    while month <= hi.date():
        yield month
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)


_api_numbers = itertools.count(1)


class BenchApi(ApiProcess):
    """`python -m cli serve --workers N` on a free port; ready once every process answers."""

    def __init__(
        self, services: Services, database_url: str, *, workers: int, cwd: Path = ROOT
    ) -> None:
        super().__init__(
            env={
                "DATABASE_URL": database_url,
                "REDIS_URL": services.redis.url,
                "LOG_LEVEL": "warning",
                # Device keys are per site here; the bench measures the limiter's cost, not its
                # limit.
                "DEVICE_RATE_PER_S": "1000000",
                "DEVICE_BURST": "1000000",
            },
            log_dir=services.log_dir,
            name=f"api-{workers}-{next(_api_numbers)}",
            workers=workers,
            cwd=cwd,
        )
        self.workers: int = workers

    async def ready(self) -> bool:
        # uvicorn's supervisor starts its processes one by one.
        return len(self.pids()) == self.workers and await super().ready()

    def pids(self) -> list[int]:
        """The processes that serve requests (uvicorn's workers, or the one process)."""
        if self.workers == 1:
            return [self.pid]
        # uvicorn's supervisor spawns them; it also runs multiprocessing's resource tracker.
        return [p for p in children(self.pid) if b"spawn_main" in _cmdline(p)]


async def start_worker(services: Services, database_url: str, name: str) -> WorkerProcess:
    """An outbox worker process, returned once it has recorded its first heartbeat."""
    worker = WorkerProcess(
        database_url=database_url,
        redis_url=services.redis.url,
        log_dir=services.log_dir,
        name=name,
        env={"LOG_LEVEL": "warning", "REPORT_GRACE_H": REPORT_GRACE_H},
    )
    await worker.start(ready=None)
    conn = await asyncpg.connect(database_url)
    try:
        await worker.wait_until(
            lambda: conn.fetchval("SELECT count(*) FROM workers WHERE pid = $1", worker.pid),
            timeout=30,
            interval=0.05,
            what="recorded a heartbeat",
        )
    except BaseException:
        worker.close()
        raise
    finally:
        await conn.close()
    return worker


# --------------------------------------------------------------------------- /proc accounting


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and int(stat[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    stat = _stat(pid)
    return 0.0 if stat is None else (int(stat[11]) + int(stat[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """VmRSS: the process's resident set now."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def postmaster_pid(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        stat = _stat(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()
    assert stat is not None, "Postgres must run on this machine"
    return int(stat[1])


def _machine() -> tuple[float, float, float]:
    """(busy, stolen, total) CPU seconds of the whole machine since boot. Stolen: time the
    hypervisor ran someone else on our virtual CPUs (/proc/stat's steal), not counted busy."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields) - idle - steal) / CLK_TCK, steal / CLK_TCK, sum(fields) / CLK_TCK


@dataclass
class CpuMeter:
    """Cores used per group of processes between start() and stop()."""

    groups: dict[str, list[int]]
    postmaster: int | None = None
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    _t0: float = 0.0
    _machine0: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _pids(self) -> dict[str, list[int]]:
        pids = dict(self.groups)
        if self.postmaster is not None:
            pids["postgres"] = [self.postmaster, *children(self.postmaster)]
        return pids

    def start(self) -> CpuMeter:
        self._before = {g: {p: cpu_seconds(p) for p in ps} for g, ps in self._pids().items()}
        self._t0 = time.perf_counter()
        self._machine0 = _machine()
        return self

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        used: dict[str, float] = {}
        for group, pids in self._pids().items():
            before = self._before.get(group, {})
            used[group] = sum(cpu_seconds(p) - before.get(p, 0.0) for p in pids) / wall
        busy, stolen, total = _machine()
        cores = (os.cpu_count() or 1) / (total - self._machine0[2])
        used["machine"] = (busy - self._machine0[0]) * cores
        # Everything else on the machine (other users' jobs): what the noise is made of; and
        # the cores the hypervisor took away (steal), the noise no process list shows.
        ours = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used["machine"] - ours)
        used["steal"] = (stolen - self._machine0[1]) * cores
        return {k: round(v, 3) for k, v in used.items()}


def now() -> datetime:
    return datetime.now(UTC)
