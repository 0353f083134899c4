"""The promise through the loss of a machine (issue 14): an API, a worker and three PostgreSQL
hosts (Patroni, strict synchronous replication), each in its own network namespace, under a
retry storm of devices that reuse their Idempotency-Keys. Faults, one after another:

1. kill -9 every process on the primary's host (a machine lost); later it comes back;
2. the worker's host cut off from the (new) primary, packets silently dropped;
3. the API's host cut off from the primary.

Afterwards every batch that got a 202 is stored exactly once (and every batch sent got one in
the end), totals and hourly buckets equal the stored readings, every outbox event is applied
(none dead, none applied twice per the workers' own counts), and every event reached the
webhook receiver. The time to recover (first 202 after the kill) and the 503s seen are
printed, and the recovery is held to the issue's target (< 15 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.ha.cluster import HaCluster
from deploy.ha.network import ROOT
from domain.roles import Actor
from domain.webhooks import event_id
from service import devices, subscriptions
from service.aggregates import current_year
from service.infra import db, migrations
from service.infra.settings import Settings
from tests.harness.processes import ApiProcess, Process, WorkerProcess, free_port, wait_for
from tests.integration.receiver import Receiver
from tests.integration.workers import (
    Reading,
    actual_totals,
    expected_totals,
    pending_events,
)

pytestmark = pytest.mark.ha

DEVICES = 12
READINGS = 10  # per batch
API_PORT = 8000
RECOVERY_TARGET_S = 15.0
PARTITION_S = 20.0
ACTOR = Actor("ha-test", "admin")


# --------------------------------------------------------------------------- the devices


@dataclass
class Batch:
    key: str
    site_id: int
    body: dict[str, Any]
    readings: list[Reading]
    batch_id: str | None = None  # from the first 202


@dataclass
class Storm:
    """Devices posting batches and retrying each with its key until a 202; some 202s are
    retried again anyway (a device that missed the answer), which must replay the same one."""

    url: str
    keys: dict[int, str]  # site -> device key
    start: datetime
    batches: list[Batch] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    # (sent, answered) monotonic times of the attempt that got each batch's first 202
    acks: list[tuple[float, float]] = field(default_factory=list)
    replay_mismatches: list[str] = field(default_factory=list)
    running: bool = True

    async def device(self, site_id: int, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        async with httpx.AsyncClient(base_url=self.url, timeout=4.0) as client:
            while self.running:
                first = self.start + timedelta(minutes=n * READINGS)
                items: list[dict[str, Any]] = [
                    {
                        "ts": (first + timedelta(minutes=i)).isoformat(),
                        "methane_kg": round(rng.uniform(0.001, 5.0), 3),
                    }
                    for i in range(READINGS)
                ]
                n += 1
                batch = Batch(
                    key=uuid.uuid4().hex,
                    site_id=site_id,
                    body={"device_id": f"dev-{site_id}", "measurements": items},
                    readings=[
                        (site_id, datetime.fromisoformat(r["ts"]), r["methane_kg"]) for r in items
                    ],
                )
                self.batches.append(batch)
                await self.until_accepted(client, batch)
                if rng.random() < 0.2:  # the answer "was lost": the same request again
                    await self.until_accepted(client, batch)
                await asyncio.sleep(rng.uniform(0.05, 0.15))

    async def until_accepted(self, client: httpx.AsyncClient, batch: Batch) -> None:
        """Whatever happens, the device retries with the same key until it sees a 202."""
        headers = {
            "Authorization": f"Bearer {self.keys[batch.site_id]}",
            "Idempotency-Key": batch.key,
        }
        while True:
            sent = time.monotonic()
            try:
                response = await client.post(
                    f"/v1/sites/{batch.site_id}/measurements", json=batch.body, headers=headers
                )
            except httpx.HTTPError as exc:
                self.statuses[type(exc).__name__] += 1
                await asyncio.sleep(0.2)
                continue
            self.statuses[str(response.status_code)] += 1
            if response.status_code == 202:
                batch_id = response.json()["batch_id"]
                if batch.batch_id is None:
                    batch.batch_id = batch_id
                    self.acks.append((sent, time.monotonic()))
                elif batch_id != batch.batch_id:
                    self.replay_mismatches.append(f"{batch.key}: {batch.batch_id} then {batch_id}")
                return
            assert response.status_code in (409, 429, 503), (response.status_code, response.text)
            retry_after = float(response.headers.get("Retry-After", "1"))
            await asyncio.sleep(min(retry_after, 1.0) * random.uniform(0.5, 1.0))

    def acked_since(self, t: float) -> int:
        """Batches first accepted by an attempt sent at or after t."""
        return sum(1 for sent, _ in self.acks if sent >= t)

    def first_ack_after(self, t: float) -> float:
        """Seconds from t to the first 202 of an attempt sent at or after t."""
        return min(answered for sent, answered in self.acks if sent >= t) - t


# --------------------------------------------------------------------------- the stack


def on_host(process: Process, cluster: HaCluster, host: str) -> None:
    """Run the process on a cluster host (`ip netns exec ...`)."""
    process.argv = [*cluster.exec_prefix(host), *process.argv]


@contextlib.contextmanager
def redis_on(ip: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            ip,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://{ip}:{port}/0"
    finally:
        proc.kill()
        proc.wait()


async def prepare(dsn: str, sites: int, *, webhook_url: str, cidr: str) -> dict[int, str]:
    """The database, `sites` sites with a device key each, and a webhook subscription."""
    await migrations.create_database_if_missing(dsn)
    conn = await db.connect(dsn)
    try:
        await migrations.migrate(conn)
        await migrations.ensure_partitions(conn)
        site_ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO sites (name, emission_limit_kg, reporting_interval_s) "
                "SELECT 'ha site ' || g, 1e9, 60 FROM generate_series(1, $1) AS g RETURNING id",
                sites,
            )
        ]
        keys = {}
        for site_id in site_ids:
            _, keys[site_id] = await devices.create_device_key(
                conn, device_id=f"dev-{site_id}", site_ids=[site_id], name="ha", actor=ACTOR
            )
        await subscriptions.create(
            conn,
            url=webhook_url,
            event_types=["batch.accepted"],
            description="ha test receiver",
            secret=None,
            actor=ACTOR,
            allowed=Settings(webhook_allow_networks=cidr).webhook_networks,
        )
        return keys
    finally:
        await conn.close()


@dataclass
class Stack:
    cluster: HaCluster
    dsn: str
    api: ApiProcess
    worker: WorkerProcess
    receiver: Receiver
    keys: dict[int, str]


@pytest.fixture(scope="module")
async def stack(
    ha_cluster: HaCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    cluster = ha_cluster
    logs = tmp_path_factory.mktemp("ha-logs")
    root_ip = cluster.host_ip(ROOT)
    cidr = f"{root_ip.rsplit('.', 1)[0]}.0/24"
    dsn = cluster.dsn("emissions")
    receiver = Receiver(host=root_ip).start()
    with redis_on(root_ip, logs) as redis_url:
        keys = await prepare(dsn, DEVICES, webhook_url=receiver.url, cidr=cidr)
        common = {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "DB_CONNECT_TIMEOUT_S": "2",
            "DB_COMMAND_TIMEOUT_S": "5",
            "REQUEST_TIMEOUT_S": "5",
            "DEVICE_RATE_PER_S": "1000",
            "DEVICE_BURST": "1000",
            "WEBHOOK_ALLOW_NETWORKS": cidr,
        }
        api = ApiProcess(env={**common, "LOG_LEVEL": "warning"}, log_dir=logs)
        api.host, api.port = cluster.host_ip("api"), API_PORT
        api.url = f"http://{api.host}:{api.port}"
        api.env.update({"HOST": "0.0.0.0", "PORT": str(API_PORT)})  # noqa: S104 (its own netns)
        on_host(api, cluster, "api")
        worker = WorkerProcess(database_url=dsn, redis_url=redis_url, log_dir=logs, env=common)
        on_host(worker, cluster, "worker")
        try:
            await api.start(timeout=60)
            await worker.start(timeout=60)
            yield Stack(cluster, dsn, api, worker, receiver, keys)
        finally:
            worker.close()
            api.close()
            receiver.stop()


# --------------------------------------------------------------------------- the test


def log(message: str) -> None:
    print(f"[ha {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def test_no_reading_lost_or_double_counted_through_failover_and_partitions(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    start = (datetime.now(UTC) - timedelta(days=20)).replace(minute=0, second=0, microsecond=0)
    if start.year != datetime.now(UTC).year:  # keep year totals meaningful near New Year
        start = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
    storm = Storm(stack.api.url, stack.keys, start)
    devices_running = [
        asyncio.create_task(storm.device(site_id, seed))
        for seed, site_id in enumerate(sorted(stack.keys))
    ]
    report: dict[str, Any] = {}
    try:
        await wait_for(lambda: len(storm.acks) >= 50, timeout=30, message="no steady ingest")

        # 1. The primary's machine dies.
        old_primary = cluster.wait_primary()
        before = Counter(storm.statuses)
        killed_at = time.monotonic()
        cluster.kill_host(old_primary)
        log(f"killed {old_primary}")
        await wait_for(
            lambda: storm.acked_since(killed_at) > 0,
            timeout=60,
            interval=0.05,
            message="no 202 within 60 s of the primary's loss",
        )
        report["recovery_s"] = round(storm.first_ack_after(killed_at), 2)
        new_primary = cluster.wait_primary()
        log(f"first 202 {report['recovery_s']} s after the kill; primary now {new_primary}")
        await asyncio.sleep(3)
        report["after_kill"] = dict(Counter(storm.statuses) - before)
        cluster.start_host(old_primary)
        await asyncio.to_thread(cluster.wait_healthy, 90)
        log(f"{old_primary} back as a standby; cluster healthy")

        # 2. The worker's host loses the primary; ingest goes on, the backlog waits.
        primary = cluster.wait_primary()
        before = Counter(storm.statuses)
        cut_at = time.monotonic()
        cluster.partition("worker", primary)
        await asyncio.sleep(PARTITION_S)
        report["worker_cut_acks"] = storm.acked_since(cut_at)
        report["backlog_while_cut"] = await backlog(stack.dsn)
        cluster.heal("worker", primary)
        report["worker_cut"] = dict(Counter(storm.statuses) - before)
        log(f"worker cut off for {PARTITION_S} s: {report['worker_cut_acks']} batches accepted")

        # 3. The API's host loses the primary: devices see 503s (or time out) and retry.
        primary = cluster.wait_primary()
        before = Counter(storm.statuses)
        cluster.partition("api", primary)
        await asyncio.sleep(PARTITION_S)
        cluster.heal("api", primary)
        healed_at = time.monotonic()
        await wait_for(
            lambda: storm.acked_since(healed_at) > 0,
            timeout=60,
            message="no 202 within 60 s of healing the API's partition",
        )
        report["api_cut"] = dict(Counter(storm.statuses) - before)
        report["api_recovery_s"] = round(storm.first_ack_after(healed_at), 2)
        await asyncio.sleep(3)
        # The cuts were real: the worker drained nothing of what came in while it was cut off,
        # and the devices saw the API fail while its host was.
        assert report["backlog_while_cut"] > report["worker_cut_acks"] // 2, report
        assert report["api_cut"].get("503", 0) + report["api_cut"].get("ReadTimeout", 0), report
    finally:
        storm.running = False  # each device finishes its batch: retries until its 202
        done, pending = await asyncio.wait(devices_running, timeout=120)
    assert not pending, "devices still had no 202 two minutes after the last fault"
    for task in done:
        task.result()

    # Everything settles: the worker drains the backlog and delivers every webhook.
    conn = await db.connect(stack.dsn)
    try:

        async def drained() -> bool:
            return await pending_events(conn) == 0

        await wait_for(drained, timeout=120, interval=0.5, message="the outbox never drained")
        await verify(conn, storm, stack, report)
    finally:
        await conn.close()


async def backlog(dsn: str) -> int:
    """Outbox events not yet applied, read on the primary from the test's own host."""
    conn = await db.connect(dsn)
    try:
        return await pending_events(conn)
    finally:
        await conn.close()


async def verify(
    conn: asyncpg.Connection, storm: Storm, stack: Stack, report: dict[str, Any]
) -> None:
    sent = storm.batches
    assert all(b.batch_id for b in sent), "a batch never got its 202"
    assert not storm.replay_mismatches, storm.replay_mismatches

    # Every batch that got a 202 is stored exactly once, and nothing else is.
    stored = {
        str(r["batch_id"]): r["n"]
        for r in await conn.fetch("SELECT batch_id, count(*) AS n FROM measurements GROUP BY 1")
    }
    acked = {b.batch_id: len(b.readings) for b in sent if b.batch_id}  # all, asserted above
    lost = [k for k, n in acked.items() if stored.get(k) != n]
    extra = [k for k in stored if k not in acked]
    readings = [r for b in sent for r in b.readings]
    total_rows = await conn.fetchval("SELECT count(*) FROM measurements")
    report["batches"] = len(sent)
    report["lost"] = len(lost)
    report["double_counted"] = total_rows - len(readings) + len(extra)
    assert not lost, f"{len(lost)} acknowledged batches not stored exactly once: {lost[:5]}"
    assert not extra, f"{len(extra)} batches stored that no device was answered for"
    assert total_rows == len(readings)

    # Totals and hourly buckets equal the stored readings.
    year = current_year()
    assert await actual_totals(conn, year=year) == expected_totals(readings, year=year)

    # One outbox event per batch, all applied, none dead; the workers applied no more events
    # than there are (an event applied twice would be counted twice).
    events = await conn.fetch(
        "SELECT id, processed_at, dead_at FROM outbox WHERE event_type = 'measurements.accepted'"
    )
    assert len(events) == len(sent)
    assert all(e["processed_at"] is not None and e["dead_at"] is None for e in events)
    applied = stack.worker.applied()
    report["events"] = len(events)
    report["applied_by_worker"] = applied
    assert applied <= len(events)

    # Every event reached the receiver (at least once; it dedupes on webhook-id).
    want = {event_id(e["id"]) for e in events}

    def delivered() -> bool:
        return want <= set(stack.receiver.event_ids())

    await wait_for(delivered, timeout=120, interval=0.5, message="webhooks not all delivered")
    report["webhook_events"] = len(set(stack.receiver.event_ids()))
    report["webhook_lost"] = len(want - set(stack.receiver.event_ids()))
    report["statuses"] = dict(storm.statuses)
    report["503s"] = storm.statuses["503"]
    log(f"result: {report}")
    log(
        f"SUMMARY batches {report['batches']}: lost {report['lost']}, double-counted "
        f"{report['double_counted']}, outbox events applied {len(events)}/{len(sent)} "
        f"(none dead), webhooks lost {report['webhook_lost']}; first 202 "
        f"{report['recovery_s']} s after kill -9 of the primary's host; devices saw "
        f"{report['503s']} 503s and {storm.statuses['ReadTimeout']} timeouts"
    )
    assert report["recovery_s"] < RECOVERY_TARGET_S, report
