"""Real worker processes for fault tests, polling helpers, and exact expected vs actual totals."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from domain.buckets import hour_of

ROOT = Path(__file__).resolve().parents[2]
Reading = tuple[int, datetime, float]  # (site_id, ts, methane_kg) as sent

_LIVE: set[WorkerProcess] = set()


class WorkerProcess:
    """`python -m cli worker` as a real process; its output goes to files, never pipes.

    Use as `async with WorkerProcess(...) as worker:`; on exit it is killed if still running.
    """

    def __init__(
        self,
        *,
        database_url: str,
        redis_url: str,
        log_dir: Path,
        name: str = "worker",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_JSON": "true",
            "SWEEP_INTERVAL_S": "1",
            "PYTHONUNBUFFERED": "1",  # log lines reach the file as they are written
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    async def start(self, *, ready: str | None = "worker_started", timeout: float = 15.0) -> None:
        """Start the process; with `ready`, wait until it logs that event."""
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        _LIVE.add(self)
        if ready is not None:
            await self.wait_for_event(ready, timeout=timeout)

    async def wait_for_event(self, event: str, *, timeout: float = 15.0) -> dict[str, Any]:
        """The first log line with this event, waiting for it; fails early if the process died."""

        def seen() -> dict[str, Any] | None:
            found = self.events(event)
            if found:
                return found[0]
            if not self.running:
                raise AssertionError(f"{self.name} exited ({self.returncode}){self.tail()}")
            return None

        line: dict[str, Any] = await wait_for(
            seen, timeout=timeout, message=f"{self.name} never logged {event}"
        )
        return line

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL if it does not stop in time)."""
        return await self._signal(signal.SIGTERM, timeout)

    async def kill(self) -> int:
        """SIGKILL: no cleanup, no rollback message to Postgres; the socket just closes."""
        return await self._signal(signal.SIGKILL, 15.0)

    async def _signal(self, sig: signal.Signals, timeout: float) -> int:
        assert self.proc is not None, "not started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            message = f"{self.name} ignored {sig.name} for {timeout}s{self.tail()}"
            raise AssertionError(message) from None
        finally:
            _LIVE.discard(self)

    def close(self) -> None:
        """Kill if still running (cleanup path: never raises for a dead process)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _LIVE.discard(self)

    async def __aenter__(self) -> WorkerProcess:
        if self.proc is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def logs(self) -> list[dict[str, Any]]:
        """Every complete JSON line of stdout (structlog's output), in order."""
        if not self.stdout_path.exists():
            return []
        lines = []
        for line in self.stdout_path.read_text(errors="replace").splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # still being written
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    lines.append(record)
        return lines

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.logs() if line.get("event") == event]

    def applied(self, *, trigger: str | None = None) -> int:
        """Events this process applied, from its `drained` log lines (optionally one trigger)."""
        return sum(
            int(line["events"])
            for line in self.events("drained")
            if trigger is None or line.get("trigger") == trigger
        )

    def tail(self, lines: int = 30) -> str:
        """The end of both output files, for assertion messages."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"\n--- {path.name} ---\n" + "\n".join(text))
        return "".join(parts)


@atexit.register
def kill_all() -> None:
    """Kill every worker still running: no test run leaves a worker behind."""
    for worker in list(_LIVE):
        worker.close()


async def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    message: str = "condition not met",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout}s)")
        await asyncio.sleep(interval)


async def pending_events(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE processed_at IS NULL AND dead_at IS NULL"
    )
    return count


async def wait_drained(conn: asyncpg.Connection, timeout: float = 10.0) -> None:
    """Wait until no outbox event is pending (unprocessed and not dead)."""

    async def drained() -> bool:
        return await pending_events(conn) == 0

    await wait_for(drained, timeout=timeout, interval=0.1, message="the outbox never drained")


@dataclass
class Totals:
    """Per-site aggregates, all exact: kg as Decimal, keyed by site (and UTC hour)."""

    lifetime_kg: dict[int, Decimal] = field(default_factory=dict)
    year_kg: dict[int, Decimal | None] = field(default_factory=dict)  # None: another year
    readings: dict[int, int] = field(default_factory=dict)
    last_reading_at: dict[int, datetime] = field(default_factory=dict)
    hourly: dict[tuple[int, datetime], tuple[Decimal, int]] = field(default_factory=dict)


def first_values(sent: Iterable[Reading]) -> dict[tuple[int, datetime], float]:
    """What the database keeps: the first value sent for each (site, ts); later ones conflict."""
    kept: dict[tuple[int, datetime], float] = {}
    for site_id, ts, kg in sent:
        kept.setdefault((site_id, ts), kg)
    return kept


def expected_totals(sent: Iterable[Reading], *, year: int) -> Totals:
    """The aggregates the readings sent (in acknowledged order) must produce.

    kg values must have at most 3 decimals, so Decimal(str(kg)) is exactly what Postgres'
    float8 -> numeric cast gives.
    """
    kept = first_values(sent)
    lifetime: dict[int, Decimal] = defaultdict(Decimal)
    this_year: dict[int, Decimal] = defaultdict(Decimal)
    count: dict[int, int] = defaultdict(int)
    last: dict[int, datetime] = {}
    hour_kg: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
    hour_n: dict[tuple[int, datetime], int] = defaultdict(int)
    for (site_id, ts), kg in kept.items():
        value = Decimal(str(kg))
        assert value == value.quantize(Decimal("0.001")), f"{kg} has more than 3 decimals"
        lifetime[site_id] += value
        if hour_of(ts).year == year:
            this_year[site_id] += value
        count[site_id] += 1
        last[site_id] = max(last.get(site_id, ts), ts)
        hour_kg[site_id, hour_of(ts)] += value
        hour_n[site_id, hour_of(ts)] += 1
    return Totals(
        lifetime_kg=dict(lifetime),
        year_kg={site_id: this_year[site_id] for site_id in lifetime},
        readings=dict(count),
        last_reading_at=last,
        hourly={key: (kg, hour_n[key]) for key, kg in hour_kg.items()},
    )


async def actual_totals(conn: asyncpg.Connection, *, year: int) -> Totals:
    """`site_totals` and `site_hourly` as stored (numeric as Decimal, no float conversion).

    A totals row of another year than `year` shows its year_kg as None (a mismatch).
    """
    totals = Totals()
    for row in await conn.fetch(
        "SELECT site_id, lifetime_kg, year, year_kg, readings, last_reading_at FROM site_totals"
    ):
        site_id = row["site_id"]
        totals.lifetime_kg[site_id] = row["lifetime_kg"]
        totals.year_kg[site_id] = row["year_kg"] if row["year"] == year else None
        totals.readings[site_id] = row["readings"]
        totals.last_reading_at[site_id] = row["last_reading_at"]
    for row in await conn.fetch("SELECT site_id, hour, total_kg, readings FROM site_hourly"):
        totals.hourly[row["site_id"], row["hour"]] = (row["total_kg"], row["readings"])
    return totals
