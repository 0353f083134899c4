"""Alerts: list (open / acknowledged), acknowledge (operator)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from api.auth import caller, requires
from api.schemas import AlertCounts, AlertOut, AlertPage
from api.staleness import RequestReads
from service import alerts
from service.infra import db
from service.infra.db import MAX_ID

AlertStatus = Literal["open", "acknowledged", "all"]


class AlertsController(Controller):
    path = "/v1/alerts"
    tags = ["alerts"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @get(operation_id="listAlerts", opt=requires("viewer"))
    async def list_alerts(
        self,
        reads: NamedDependency[RequestReads],
        status: FromQuery[AlertStatus] = "open",
        site_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        before: Annotated[int, QueryParameter(ge=1, le=MAX_ID, description="Cursor")] = MAX_ID,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> AlertPage:
        async with reads.connection() as conn:
            rows = await alerts.list_alerts(
                conn, status=status, site_id=site_id, before=before, limit=limit
            )
            open_n, acknowledged_n = await alerts.count_alerts(conn, site_id=site_id)
        items = [AlertOut(**dict(r)) for r in rows]
        return AlertPage(
            items=items,
            next_before=items[-1].id if len(items) == limit else None,
            counts=AlertCounts(open=open_n, acknowledged=acknowledged_n),
        )

    @post(
        "/{alert_id:int}/ack",
        operation_id="acknowledgeAlert",
        opt=requires("operator"),
        status_code=200,
    )
    async def acknowledge(
        self,
        alert_id: FromPath[int],
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
    ) -> AlertOut:
        async with db.connection(pool) as conn:
            row = await alerts.acknowledge(conn, alert_id=alert_id, actor=caller(request))
        return AlertOut(**dict(row))
