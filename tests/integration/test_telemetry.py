"""Telemetry checked by its ecosystem's tools: promtool on real processes' metrics, JSON logs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.infra.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.harness.processes import ApiProcess, WorkerProcess, free_port, wait_for
from tests.integration.helpers import batch, make_site, post_batch, readings
from tests.integration.receiver import Receiver

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API_ONLY = (
    "emissions_http_",
    "emissions_readings_",
    "emissions_problems_",
    "emissions_outbox_",
    "emissions_ingest_",
)
WORKER_ONLY = ("emissions_drain_", "emissions_events_", "emissions_webhook_")


def promtool(text: str) -> str:
    """`promtool check metrics` on `text`: its complaints, "" when there are none."""
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: apt-get install -y prometheus (.ci/run does)"
    done = subprocess.run(
        [exe, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    problems = (done.stdout + done.stderr).strip()
    return problems if done.returncode or problems else ""


def families(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


async def test_api_and_worker_metrics_pass_promtool_and_export_only_their_own_families(
    settings: Settings, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    metrics_port = free_port()
    api = ApiProcess(env=env, log_dir=tmp_path)
    worker = WorkerProcess(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        log_dir=tmp_path,
        env={"WORKER_METRICS_PORT": str(metrics_port), "HOST": "127.0.0.1"},
    )
    await api.start()
    try:
        async with worker, httpx.AsyncClient(base_url=api.url, headers=ADMIN) as client:
            site = await make_site(client)
            assert (await post_batch(client, site, batch(readings(2)))).status_code == 202
            assert (await client.get("/no/such/route")).status_code == 404
            await wait_for(lambda: worker.applied() >= 1, timeout=15, message="never drained")
            api_text = (await client.get("/metrics")).text
            worker_text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    finally:
        await api.stop()

    assert promtool(api_text) == ""
    assert promtool(worker_text) == ""
    assert "_created" not in api_text and "_created" not in worker_text
    api_families, worker_families = families(api_text), families(worker_text)
    assert {f for f in api_families if f.startswith(WORKER_ONLY)} == set()
    assert {f for f in worker_families if f.startswith(API_ONLY)} == set()
    # Each still exports what it does update.
    assert "emissions_http_requests" in api_families
    assert "emissions_outbox_pending" in api_families
    assert "emissions_ingest_group_requests" in api_families
    assert "emissions_events_applied" in worker_families
    assert "process_cpu_seconds" in api_families and "process_cpu_seconds" in worker_families


async def test_uvicorn_lines_are_json_like_ours(settings: Settings, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "LOG_LEVEL": "info",
    }
    api = ApiProcess(env=env, log_dir=tmp_path)
    await api.start()
    try:
        async with httpx.AsyncClient(base_url=api.url) as client:
            await client.get("/health")
    finally:
        await api.stop()
    lines = [line for line in api.log_path.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    assert all({"event", "level", "timestamp"} <= r.keys() for r in records), records
    uvicorn = [r for r in records if str(r.get("logger", "")).startswith("uvicorn")]
    assert any("startup complete" in r["event"] for r in uvicorn), records
    assert any(r["event"] == "request" for r in records), records


async def test_one_correlation_key_from_the_api_to_the_worker_and_delivery(
    settings: Settings, tmp_path: Path
) -> None:
    failing = Receiver(mode="fail").start()
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    api = ApiProcess(env={**env, "LOG_LEVEL": "info"}, log_dir=tmp_path)
    worker = WorkerProcess(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        log_dir=tmp_path,
        env={"DELIVERY_POLL_S": "0.1"},
    )
    await api.start()
    try:
        async with worker, httpx.AsyncClient(base_url=api.url, headers=ADMIN) as client:
            subscription = {"url": failing.url, "event_types": ["batch.accepted"]}
            assert (await client.post("/v1/subscriptions", json=subscription)).status_code == 201
            site = await make_site(client)
            response = await post_batch(
                client, site, batch(readings(1)), headers={"X-Request-ID": "trace-me-1"}
            )
            assert response.status_code == 202
            await wait_for(
                lambda: worker.events("delivery_failed"), timeout=20, message="never delivered"
            )
    finally:
        await api.stop()
        failing.stop()
    api_lines = [json.loads(line) for line in api.log_path.read_text().splitlines() if line]
    assert any(r.get("request_id") == "trace-me-1" for r in api_lines)
    drained = worker.events("drained")
    assert ["trace-me-1"] in [r.get("request_id") for r in drained], drained
    assert all("request_ids" not in r for r in worker.logs())
    failed = worker.events("delivery_failed")[0]
    assert failed["request_id"] == "trace-me-1", failed
    assert list(failing._in_flight) == [failed["event_id"]]  # the webhook-id it was sent


async def test_requests_that_match_no_route_are_counted_under_one_label(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/no/such/route-1234")).status_code == 404
    assert (await client.delete("/health")).status_code == 405
    assert (await client.request("BREW", "/no/such/route-1234")).status_code < 500
    many = {f"x-h{i}": "1" for i in range(100)}
    assert (await client.get("/health", headers=many)).status_code == 431
    text = (await client.get("/metrics")).text
    assert "route-1234" not in text and "BREW" not in text
    counted = {
        (s.labels["path"], s.labels["method"], s.labels["status_code"])
        for f in text_string_to_metric_families(text)
        if f.name == "emissions_http_requests"
        for s in f.samples
        if s.name.endswith("_total")
    }
    unrouted = {c for c in counted if c[0] in ("unmatched", "refused")}
    assert {
        ("unmatched", "GET", "404"),
        ("unmatched", "DELETE", "405"),
        ("refused", "GET", "431"),
    } <= unrouted, counted
    # Other tests share this API process (their unmatched POSTs count too): what matters is
    # that the method label is bounded, BREW counted as "other".
    standard = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
    assert {m for _, m, _ in unrouted} <= {*standard, "other"}, unrouted


async def test_control_characters_in_a_path_are_escaped_in_the_log_line(
    settings: Settings, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    api = ApiProcess(env={**env, "LOG_LEVEL": "info"}, log_dir=tmp_path)
    await api.start()
    try:
        async with httpx.AsyncClient(base_url=api.url) as client:
            # Percent-decoded by the server into the path the app sees and logs.
            await client.get("/x%E2%80%A8y%E2%80%A9z%0D%0Aw%1B")
    finally:
        await api.stop()
    raw = api.log_path.read_bytes()
    for bad in ("\u2028", "\u2029", "\x1b", "\r"):
        assert bad.encode() not in raw
    paths = [
        r["path"]
        for r in map(json.loads, raw.decode().splitlines())
        if r.get("event") == "request" and r.get("path", "").startswith("/x")
    ]
    assert paths == ["/x\\u2028y\\u2029z\\r\\nw\\x1b"], paths
