"""arq jobs: thin wrappers that call the service layer with the resources in ctx."""

from __future__ import annotations

from typing import Any

import structlog

from service import db, ops, worker_ops

log = structlog.get_logger("worker")


async def drain(ctx: dict[str, Any]) -> int:
    """Nudged by the API after a commit (coalesced by a fixed job id)."""
    report = await worker_ops.drain_until_idle(
        ctx["pool"], ctx["settings"], ctx["state"], trigger="nudge"
    )
    return report.applied


async def sweep(ctx: dict[str, Any]) -> int:
    """Every second (one worker per tick): drain whatever the nudges missed."""
    report = await worker_ops.drain_until_idle(
        ctx["pool"], ctx["settings"], ctx["state"], trigger="sweep"
    )
    return report.applied


async def maintain(ctx: dict[str, Any]) -> None:
    """Hourly: partitions ahead, and retention of processed events and expired keys."""
    async with db.connection(ctx["pool"]) as conn:
        done = await ops.maintain(conn, outbox_days=ctx["settings"].outbox_retention_days)
    log.info("maintenance", **done)
