"""GET /metrics: the API's registry as Prometheus text, the queue gauges read from Postgres."""

from __future__ import annotations

import asyncpg
from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import requires
from service import outbox
from service.infra import db, metrics
from service.infra.errors import DatabaseUnavailable

# Litestar adds the charset itself; prometheus_client's constant carries one already.
_MEDIA_TYPE = CONTENT_TYPE_LATEST.split("; charset")[0]


@get(
    "/metrics",
    operation_id="metrics",
    tags=["ops"],
    include_in_schema=False,
    opt=requires("viewer"),
)
async def scrape(pool: NamedDependency[asyncpg.Pool]) -> Response[bytes]:
    try:
        async with db.connection(pool) as conn:
            await outbox.refresh_gauges(conn)
    except DatabaseUnavailable:
        pass  # still report the process's own metrics; the gauges keep their last value
    return Response(generate_latest(metrics.API), media_type=_MEDIA_TYPE)
