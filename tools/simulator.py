"""`emissions simulate`: devices posting realistic batches through a faulty network, then an
exact check of the server's totals against what was generated.

Readings follow a daily cycle with noise, and sometimes a leak (100-400 kg/h for a while).
Devices buffer readings and send them late and out of order. The client injects faults: a
response lost after the server committed, a timeout, a reset in the middle of the body. Every
batch is retried with its Idempotency-Key until acknowledged, and some are re-sent later under
a new key (a rebooted device), which must count as duplicates.

Simulated time runs faster than real time (each batch moves its device's clock on by its
windows), so the clocks start far enough in the past for the whole run to fit before now, and
a device never reports a window that has not begun: a run of any length stays acceptable to
the server's MAX_FUTURE_S rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import struct
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

WINDOW = timedelta(minutes=1)
READINGS_PER_BATCH = (1, 30)
FAULTS = ("lost_response", "timeout", "reset_mid_body")
EARLIEST = datetime(2000, 1, 2, tzinfo=UTC)  # a day after the server's default EARLIEST_READING
HOURLY_SPAN = timedelta(days=400)  # the most GET /v1/sites/{id}/hourly returns at once


@dataclass
class Device:
    name: str
    site_id: int
    key: str
    slot_s: int  # second within the minute: devices of one site measure distinct windows
    base_kg_h: float
    clock: datetime
    leak_left: int = 0
    leak_kg_h: float = 0.0
    buffer: list[dict[str, Any]] = field(default_factory=list)

    def next_readings(
        self, rng: random.Random, n: int, now: datetime
    ) -> list[tuple[datetime, float]]:
        """Up to n readings of the next windows; fewer (maybe none) once the clock is at `now`:
        a device cannot measure a window that has not begun (the server would refuse it)."""
        out = []
        for _ in range(n):
            if self.clock + WINDOW + timedelta(seconds=self.slot_s) > now:
                break
            self.clock += WINDOW
            if self.leak_left == 0 and rng.random() < 0.002:
                self.leak_left, self.leak_kg_h = rng.randint(10, 90), rng.uniform(100, 400)
            rate = self.base_kg_h * (1 + 0.35 * math.sin((self.clock.hour - 6) / 24 * 2 * math.pi))
            rate *= rng.lognormvariate(0, 0.15)
            if self.leak_left:
                rate, self.leak_left = self.leak_kg_h, self.leak_left - 1
            ts = self.clock + timedelta(seconds=self.slot_s)
            out.append((ts, round(rate / 60, 3)))
        return out


def clock_start(now: datetime, opts: Options) -> datetime:
    """Where every device's clock starts: far enough back that its share of the run's batches
    fits before `now` (devices are picked at random: a quarter more, and a day, to spare), at
    least three days back, and never before 2000."""
    batches_per_device = opts.rate * opts.duration_s / max(1, opts.devices)
    windows = math.ceil(batches_per_device * sum(READINGS_PER_BATCH) / 2 * 1.25 + 24 * 60)
    windows = min(windows, (now - EARLIEST) // WINDOW)  # also keeps the span representable
    span = max(timedelta(days=3), WINDOW * windows)
    return max(EARLIEST, now.replace(second=0, microsecond=0) - span)


def hourly_spans(first: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[first, end) in pieces the hourly endpoint answers in one request each."""
    spans = []
    while first < end:
        spans.append((first, min(end, first + HOURLY_SPAN)))
        first += HOURLY_SPAN
    return spans


@dataclass
class Stats:
    batches: int = 0
    caught_up: int = 0  # batches not sent: their device had reported every begun window
    acknowledged: int = 0
    tries: int = 0
    replays: int = 0
    late: int = 0
    resent_duplicates: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


# An idle keep-alive connection is dropped here well before the API closes it (KEEP_ALIVE_S,
# 5 s by default): reused just as the server closes it, a request fails with ReadError. The
# admin client sits idle while the devices post (the run's 4 s, longer on a slow machine).
_LIMITS = httpx.Limits(keepalive_expiry=2.0)


class FaultyClient:
    """Posts JSON through real HTTP with injected faults (probability `rate` per try)."""

    def __init__(self, base_url: str, rate: float, rng: random.Random, stats: Stats) -> None:
        self.base_url = base_url
        self.rate = rate
        self.rng = rng
        self.stats = stats
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10, limits=_LIMITS)

    async def close(self) -> None:
        await self.http.aclose()

    async def post_until_acknowledged(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        delay = 0.05
        while True:
            self.stats.tries += 1
            fault = self.rng.choice(FAULTS) if self.rng.random() < self.rate else None
            try:
                response = await self._try(path, body, headers, fault)
            except (httpx.TransportError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.stats.statuses[response.status_code] += 1
            if response.status_code in (409, 429, 503):
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")) / 4)
                continue
            return response

    async def _try(
        self, path: str, body: bytes, headers: dict[str, str], fault: str | None
    ) -> httpx.Response:
        if fault is not None:
            self.stats.faults[fault] += 1
        if fault == "reset_mid_body":
            await self._reset_mid_body(path, body, headers)
            raise httpx.RemoteProtocolError("connection reset mid-body (injected)")
        timeout = self.rng.uniform(0.001, 0.02) if fault == "timeout" else 10.0
        response = await self.http.post(path, content=body, headers=headers, timeout=timeout)
        if fault == "lost_response":
            raise httpx.ReadError("response lost after the server answered (injected)")
        return response

    async def _reset_mid_body(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        url = urlsplit(self.base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: max(1, len(body) // 2)]
        )
        await writer.drain()
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        del reader


@dataclass
class Options:
    base_url: str
    admin_token: str
    sites: int = 5
    devices: int = 20
    rate: float = 50.0
    duration_s: float = 60.0
    faults: float = 0.2
    seed: int = 1


async def simulate(opts: Options, console: Console) -> int:
    rng = random.Random(opts.seed)
    stats = Stats()
    admin = httpx.AsyncClient(
        base_url=opts.base_url,
        headers={"Authorization": f"Bearer {opts.admin_token}"},
        timeout=30,
        limits=_LIMITS,
    )
    run = uuid.uuid4().hex[:6]
    start = clock_start(datetime.now(UTC), opts)
    devices: list[Device] = []
    try:
        site_ids = []
        for i in range(opts.sites):
            r = await admin.post(
                "/v1/sites",
                json={"name": f"sim-{run}-{i + 1}", "emission_limit_kg": rng.uniform(2e4, 2e5)},
            )
            r.raise_for_status()
            site_ids.append(r.json()["id"])
        for d in range(opts.devices):
            site = site_ids[d % len(site_ids)]
            r = await admin.post(
                "/v1/devices",
                json={"device_id": f"sim-{run}-d{d + 1}", "site_ids": [site]},
            )
            r.raise_for_status()
            devices.append(
                Device(
                    name=f"sim-{run}-d{d + 1}",
                    site_id=site,
                    key=r.json()["key"],
                    slot_s=d // len(site_ids),
                    base_kg_h=rng.uniform(0.5, 8.0),
                    clock=start,
                )
            )
        sent: dict[tuple[int, datetime], float] = {}
        client = FaultyClient(opts.base_url, opts.faults, rng, stats)
        total = int(opts.rate * opts.duration_s)
        progress = Progress(
            TextColumn("[bold]simulating"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} batches"),
            TextColumn("{task.fields[faults]} faults"),
            TimeRemainingColumn(),
            console=console,
        )
        history: list[tuple[Device, bytes]] = []
        with progress:
            task = progress.add_task("post", total=total, faults=0)

            async def post(device: Device, body: bytes, key: str) -> httpx.Response:
                return await client.post_until_acknowledged(
                    f"/v1/sites/{device.site_id}/measurements",
                    body,
                    {
                        "Authorization": f"Bearer {device.key}",
                        "Idempotency-Key": key,
                        "Content-Type": "application/json",
                    },
                )

            async def one_batch() -> None:
                device = rng.choice(devices)
                readings = device.next_readings(
                    rng, rng.randint(*READINGS_PER_BATCH), datetime.now(UTC)
                )
                if not readings:
                    stats.caught_up += 1
                    return
                for ts, kg in readings:
                    sent[(device.site_id, ts)] = kg
                batch = [{"ts": ts.isoformat(), "methane_kg": kg} for ts, kg in readings]
                if rng.random() < 0.15:  # buffered: goes out later, after newer batches
                    device.buffer.append({"measurements": batch})
                    stats.late += 1
                    return
                bodies = [{"measurements": batch}]
                if device.buffer and rng.random() < 0.5:
                    bodies.append(device.buffer.pop(0))
                for payload in bodies:
                    body = msgspec.json.encode(payload)
                    response = await post(device, body, str(uuid.uuid4()))
                    _count(response, stats)
                    history.append((device, body))

            started = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            for n in range(total):
                await asyncio.sleep(max(0.0, started + n / opts.rate - time.monotonic()))
                stats.batches += 1
                t = asyncio.create_task(one_batch())
                pending.add(t)
                t.add_done_callback(pending.discard)
                t.add_done_callback(
                    lambda _: progress.update(task, advance=1, faults=sum(stats.faults.values()))
                )
                if rng.random() < 0.02 and history:  # a rebooted device re-sends an old batch
                    device, body = rng.choice(history)
                    response = await post(device, body, str(uuid.uuid4()))
                    stats.resent_duplicates += response.json().get("duplicates", 0)
            await asyncio.gather(*pending)
            for device in devices:  # flush what devices still buffer
                while device.buffer:
                    body = msgspec.json.encode(device.buffer.pop(0))
                    _count(await post(device, body, str(uuid.uuid4())), stats)
        await client.close()
        console.print("waiting for the worker to drain…")
        await _wait_drained(admin)
        return await _verify(admin, site_ids, sent, stats, console)
    finally:
        await admin.aclose()


def _count(response: httpx.Response, stats: Stats) -> None:
    if response.status_code != 202:
        raise SystemExit(f"batch refused: {response.status_code} {response.text}")
    stats.acknowledged += 1
    if response.headers.get("Idempotent-Replayed") == "true":
        stats.replays += 1


async def _wait_drained(admin: httpx.AsyncClient, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = (await admin.get("/v1/ops/queue")).json()
        if queue["pending"] == 0 and queue["in_backoff"] == 0:
            return
        await asyncio.sleep(0.5)
    raise SystemExit("the outbox did not drain in time: is a worker running?")


async def _verify(
    admin: httpx.AsyncClient,
    site_ids: list[int],
    sent: dict[tuple[int, datetime], float],
    stats: Stats,
    console: Console,
) -> int:
    expected_site: dict[int, Decimal] = defaultdict(Decimal)
    expected_hour: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
    counts: Counter[int] = Counter()
    for (site, ts), kg in sent.items():
        expected_site[site] += Decimal(str(kg))
        expected_hour[(site, ts.replace(minute=0, second=0))] += Decimal(str(kg))
        counts[site] += 1
    table = Table(title="emissions simulate: server totals vs generated readings")
    for column in ("site", "readings", "expected kg", "server kg", "hours", "hour mismatches"):
        table.add_column(column, justify="right")
    failures = 0
    for site in site_ids:
        view = (await admin.get(f"/v1/sites/{site}")).json()
        hours = [h for (s, h) in expected_hour if s == site]
        got = {}
        for first, end in hourly_spans(min(hours), max(hours) + timedelta(hours=1)):
            params = {"from": first.isoformat(), "to": end.isoformat()}
            series = (await admin.get(f"/v1/sites/{site}/hourly", params=params)).json()
            got.update({datetime.fromisoformat(h["hour"]): h["total_kg"] for h in series["hours"]})
        bad_hours = sum(1 for h in hours if got.get(h) != float(expected_hour[(site, h)])) + len(
            set(got) - set(hours)
        )
        ok_total = view["lifetime_kg"] == float(expected_site[site])
        ok_count = view["reading_count"] == counts[site]
        failures += (not ok_total) + (not ok_count) + bad_hours
        mark = "" if ok_total and ok_count else " ✗"
        table.add_row(
            str(site),
            f"{counts[site]}",
            f"{expected_site[site]}",
            f"{view['lifetime_kg']}{mark}",
            str(len(hours)),
            str(bad_hours),
        )
    console.print(table)
    console.print(
        f"batches {stats.batches}, acknowledged {stats.acknowledged}, tries {stats.tries}, "
        f"not sent as their device had caught up with now {stats.caught_up}, "
        f"replayed answers {stats.replays}, sent late {stats.late}, "
        f"re-sent readings counted as duplicates {stats.resent_duplicates}, "
        f"faults {dict(stats.faults)}, statuses {dict(stats.statuses)}"
    )
    if failures:
        console.print(f"[bold red]MISMATCH[/]: {failures} totals or hours differ")
        return 1
    console.print("[bold green]EXACT[/]: every site and every hour equals the generated sum")
    return 0
