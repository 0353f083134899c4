"""Prometheus metrics: one registry per process kind, each holding only what that kind updates.

API: HTTP requests (api/http_metrics.py), readings, replays, problems, and the queue gauges it
reads from Postgres at scrape time. Worker (WORKER_METRICS_PORT): drain and delivery. Both:
prometheus_client's process, platform and GC collectors. A shared registry would make each
kind export the other's families as constant zeros.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    gc_collector,
    platform_collector,
    process_collector,
)

# No `<name>_created` series beside each counter and histogram: Prometheus' text format has no
# use for them (each would be a second series per child, holding the process start time).
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return registry


API = _registry()
WORKER = _registry()

READINGS = Counter(
    "emissions_readings_ingested_total", "Readings received, by result", ["result"], registry=API
)
# Bound once: a .labels() lookup takes a lock and a dict probe, three times per batch.
_ACCEPTED, _DUPLICATE, _CONFLICT = (
    READINGS.labels(result) for result in ("accepted", "duplicate", "conflict")
)
REPLAYS = Counter(
    "emissions_idempotent_replays_total", "Requests answered from a stored key", registry=API
)
PROBLEMS = Counter(
    "emissions_problems_total", "Error responses, by problem type", ["type"], registry=API
)

# Read from Postgres when the API is scraped (service/outbox.refresh_gauges).
INGEST_GROUP = Histogram(
    "emissions_ingest_group_requests",
    "Requests whose fast path shared one statement and commit (service/ingest.py, FastLane)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=API,
)
OUTBOX_PENDING = Gauge("emissions_outbox_pending", "Due events not yet applied", registry=API)
OUTBOX_BACKOFF = Gauge(
    "emissions_outbox_in_backoff", "Failed events waiting to retry", registry=API
)
OUTBOX_DEAD = Gauge("emissions_outbox_dead", "Dead-lettered events", registry=API)
OUTBOX_LAG = Gauge(
    "emissions_outbox_oldest_pending_age_seconds",
    "Age of the oldest live unapplied event",
    registry=API,
)
STREAM_BACKLOG = Gauge(
    "emissions_stream_backlog_events",
    "Applied events not yet acknowledged by JetStream (NATS_URL set)",
    registry=API,
)
STREAM_BACKLOG_AGE = Gauge(
    "emissions_stream_backlog_oldest_age_seconds",
    "Age of the oldest event not yet acknowledged by JetStream",
    registry=API,
)
WORKER_HEARTBEAT_AGE = Gauge(
    "emissions_worker_heartbeat_age_seconds",
    "Seconds since the freshest worker heartbeat",
    registry=API,
)

DRAIN_BATCH = Histogram(
    "emissions_drain_batch_events",
    "Events applied per drain job",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 20000),
    registry=WORKER,
)
DRAIN_SECONDS = Histogram(
    "emissions_drain_duration_seconds", "Wall time of one drain job", registry=WORKER
)
APPLIED = Counter(
    "emissions_events_applied_total", "Outbox events applied by this worker", registry=WORKER
)
DEAD_LETTERED = Counter(
    "emissions_events_dead_lettered_total", "Events dead-lettered", registry=WORKER
)
DELIVERIES = Counter(
    "emissions_webhook_attempts_total",
    "Webhook delivery attempts, by result",
    ["result"],
    registry=WORKER,
)
STREAM_RELAYED = Counter(
    "emissions_stream_relayed_total",
    "Events JetStream acknowledged from this worker's relay",
    registry=WORKER,
)
STREAM_FAILED = Counter(
    "emissions_stream_publish_failures_total",
    "Events of a relay claim not acknowledged (they back off)",
    registry=WORKER,
)
DELIVERY_SECONDS = Histogram(
    "emissions_webhook_attempt_seconds",
    "Wall time of one webhook attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=WORKER,
)


def count_receipt(accepted: int, duplicates: int, conflicts: int) -> None:
    _ACCEPTED.inc(accepted)
    _DUPLICATE.inc(duplicates)
    _CONFLICT.inc(conflicts)
