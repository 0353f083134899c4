"""Ops: the queue's history (samples the workers record, downsampled) and the workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType
from litestar.params import QueryParameter

from api.auth import requires
from api.ranges import MAX_SPAN, span_or_default
from api.schemas import QueueHistoryOut, QueuePointOut, WorkerOut, WorkersOut
from api.staleness import RequestReads
from service import queue_history
from service.infra.settings import Settings

DEFAULT_SPAN = timedelta(hours=1)
MIN_STEP_S = 10
MAX_POINTS = 1500
# Without `step`: the first of these that answers the range in at most DEFAULT_POINTS.
NICE_STEPS_S = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
DEFAULT_POINTS = 400
WORKER_STALE_S = 10  # as GET /v1/ops/queue counts workers alive
WORKERS_SINCE = timedelta(hours=24)


def _instant(description: str, *, name: str) -> Any:
    extra = {"one_of": None, "type": OpenAPIType.STRING, "format": OpenAPIFormat.DATE_TIME}
    return QueryParameter(name=name, description=description, schema_extra=extra)


def history_range(
    start: str | None, end: str | None, step_s: int | None, now: datetime
) -> tuple[datetime, datetime, int, bool]:
    """[from, to) and the step: the last hour unless given. `to` at or before `from` is an
    empty range; a range of more than MAX_POINTS steps (or 400 days) is cut to its first ones,
    with `truncated` set, so a client continues from the `to` it got back."""
    first, last = span_or_default(start, end, now, DEFAULT_SPAN)
    span = max(last - first, timedelta(0))
    if step_s is None:
        fits = [s for s in NICE_STEPS_S if span.total_seconds() / s <= DEFAULT_POINTS]
        step_s = fits[0] if fits else NICE_STEPS_S[-1]
    limit = min(MAX_SPAN, timedelta(seconds=step_s * MAX_POINTS))
    if span > limit:
        return first, first + limit, step_s, True
    return first, last, step_s, False


class QueueHistoryController(Controller):
    path = "/v1/ops"
    tags = ["ops"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @get("/queue/history", operation_id="getQueueHistory", opt=requires("viewer"))
    async def history(
        self,
        reads: NamedDependency[RequestReads],
        settings: NamedDependency[Settings],
        start: Annotated[
            str | None, _instant("Start, inclusive; default `to` - 1 h", name="from")
        ] = None,
        end: Annotated[str | None, _instant("End, exclusive; default now", name="to")] = None,
        step: Annotated[
            int | None,
            QueryParameter(
                ge=MIN_STEP_S,
                le=86400,
                description="Seconds per point (buckets aligned to `from`); default: the first "
                "of 10, 30, 60, 120, 300, 600, 900, 1800, 3600... giving at most 400 points",
            ),
        ] = None,
    ) -> QueueHistoryOut:
        """The queue sampled by the workers every QUEUE_SAMPLE_S (kept QUEUE_HISTORY_DAYS), per
        `step` bucket in [from, to): gauges (pending, backoff, dead, oldest_pending_s) at their
        highest in the bucket, counters (processed, failed, deliveries_*) summed. Buckets
        without samples are left out; `to` at or before `from` is an empty range; more than
        1500 points (or 400 days) is cut to the first ones, with `truncated` true."""
        first, last, step_s, truncated = history_range(start, end, step, datetime.now(UTC))
        rows = []
        if first < last:
            async with reads.connection() as conn:
                rows = await queue_history.history(conn, start=first, end=last, step_s=step_s)
        return QueueHistoryOut(
            start=first,
            end=last,
            step_s=step_s,
            sample_s=settings.queue_sample_s,
            points=[QueuePointOut(**dict(r)) for r in rows],
            truncated=truncated,
        )

    @get("/workers", operation_id="listWorkers", opt=requires("viewer"))
    async def workers(
        self,
        reads: NamedDependency[RequestReads],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> WorkersOut:
        """Worker processes that beat in the last 24 hours, the freshest first, from their
        heartbeats: host, pid, start, last beat, events applied, and what each is doing now.
        `alive` is false once a worker has not beaten for `stale_after_s`."""
        since = datetime.now(UTC) - WORKERS_SINCE
        async with reads.connection() as conn:
            rows = await queue_history.list_workers(
                conn, since=since, limit=limit + 1, stale_s=WORKER_STALE_S
            )
        return WorkersOut(
            items=[WorkerOut(**dict(r)) for r in rows[:limit]],
            stale_after_s=WORKER_STALE_S,
            truncated=len(rows) > limit,
        )
