"""Prometheus metrics of the API and the worker (one process-wide registry each)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READINGS = Counter("emissions_readings_ingested_total", "Readings received, by result", ["result"])
# Bound once: a .labels() lookup takes a lock and a dict probe, three times per batch.
_ACCEPTED, _DUPLICATE, _CONFLICT = (
    READINGS.labels(result) for result in ("accepted", "duplicate", "conflict")
)
REPLAYS = Counter("emissions_idempotent_replays_total", "Requests answered from a stored key")
PROBLEMS = Counter("emissions_problems_total", "Error responses, by problem type", ["type"])

OUTBOX_PENDING = Gauge("emissions_outbox_pending", "Due events not yet applied")
OUTBOX_BACKOFF = Gauge("emissions_outbox_in_backoff", "Failed events waiting to retry")
OUTBOX_DEAD = Gauge("emissions_outbox_dead", "Dead-lettered events")
OUTBOX_LAG = Gauge(
    "emissions_outbox_oldest_pending_age_seconds", "Age of the oldest live unapplied event"
)
WORKER_HEARTBEAT_AGE = Gauge(
    "emissions_worker_heartbeat_age_seconds", "Seconds since the freshest worker heartbeat"
)

DRAIN_BATCH = Histogram(
    "emissions_drain_batch_events",
    "Events applied per drain job",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 20000),
)
DRAIN_SECONDS = Histogram("emissions_drain_duration_seconds", "Wall time of one drain job")
APPLIED = Counter("emissions_events_applied_total", "Outbox events applied by this worker")
DEAD_LETTERED = Counter("emissions_events_dead_lettered_total", "Events dead-lettered")
DELIVERIES = Counter(
    "emissions_webhook_attempts_total", "Webhook delivery attempts, by result", ["result"]
)
DELIVERY_SECONDS = Histogram(
    "emissions_webhook_attempt_seconds",
    "Wall time of one webhook attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def count_receipt(accepted: int, duplicates: int, conflicts: int) -> None:
    _ACCEPTED.inc(accepted)
    _DUPLICATE.inc(duplicates)
    _CONFLICT.inc(conflicts)
