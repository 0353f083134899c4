"""arq jobs: thin wrappers that call the service layer with the runtime in ctx."""

from __future__ import annotations

from typing import Any

import structlog

from service import alerts, maintenance
from service.drain import drain_until_idle
from service.infra import db
from service.infra.errors import DatabaseUnavailable
from service.workers import working_on
from worker.runtime import Runtime

log = structlog.get_logger("worker")


async def _drain(ctx: dict[str, Any], trigger: str) -> int:
    rt: Runtime = ctx["runtime"]
    try:
        with working_on(rt.state, f"drain ({trigger})"):
            report = await drain_until_idle(rt.pool, rt.drain, rt.state, trigger=trigger)
    except DatabaseUnavailable:
        # One line, not a traceback a second: the claim rolled back, the next tick retries.
        # Unreachable, or read-only after a failover: nothing was marked failed (an outage
        # is no event's fault); the pool reconnects to the primary for the next tick.
        log.warning("drain_skipped", trigger=trigger, reason="postgres unreachable or read-only")
        return 0
    return report.applied


async def drain(ctx: dict[str, Any]) -> int:
    """Nudged by the API after a commit (coalesced by a fixed job id)."""
    return await _drain(ctx, "nudge")


async def sweep(ctx: dict[str, Any]) -> int:
    """Every second (one worker per tick): drain whatever the nudges missed."""
    return await _drain(ctx, "sweep")


async def maintain(ctx: dict[str, Any]) -> None:
    """Hourly: partitions ahead, and retention of processed events and expired keys."""
    rt: Runtime = ctx["runtime"]
    try:
        async with db.connection(rt.pool) as conn:
            done = await maintenance.maintain(
                conn,
                outbox_days=rt.settings.outbox_retention_days,
                history_days=rt.settings.queue_history_days,
            )
    except DatabaseUnavailable:  # unreachable or read-only (a failover): the next hour's run
        log.warning("maintenance_skipped", reason="postgres unreachable or read-only")
        return
    log.info("maintenance", **done)


async def refresh_statistics(ctx: dict[str, Any]) -> None:
    """Every 5 s: ANALYZE a measurements partition that outgrew its statistics."""
    rt: Runtime = ctx["runtime"]
    try:
        async with db.connection(rt.pool) as conn:
            analyzed = await maintenance.analyze_outgrown_partitions(conn)
    except DatabaseUnavailable:
        log.warning("statistics_refresh_skipped", reason="postgres unreachable or read-only")
        return
    if analyzed:
        log.info("partitions_analyzed", partitions=analyzed)


async def check_stale(ctx: dict[str, Any]) -> None:
    """Every minute: a stale alert for each site that went quiet (once per quiet spell)."""
    rt: Runtime = ctx["runtime"]
    try:
        async with db.connection(rt.pool) as conn:
            raised = await alerts.raise_stale(conn, rules=rt.rules)
    except DatabaseUnavailable:
        log.warning("stale_check_skipped", reason="postgres unreachable or read-only")
        return
    if raised:
        log.info("stale_alerts", alert_ids=raised)
