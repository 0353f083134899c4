"""Alerts: list (open / acknowledged), grouped by site and kind; acknowledge one or many
(operator, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from msgspec import Meta

from api.auth import caller, requires
from api.decode import body_operation, decode_json
from api.schemas import AlertCounts, AlertOut, AlertPage, AuditOut, Base
from api.staleness import RequestReads
from service import alerts
from service.infra import db
from service.infra.db import MAX_ID

AlertStatus = Literal["open", "acknowledged", "all"]
AlertKind = Literal["threshold", "leak", "stale"]
GROUPS_MAX = 500


class AlertGroupOut(Base):
    site_id: int
    kind: str
    count: int  # alerts of this site and kind in the state asked for
    open: int  # of those, not yet acknowledged
    first_raised_at: datetime
    last_raised_at: datetime


class AlertGroups(Base):
    items: list[AlertGroupOut]
    # More groups than `limit` matched: narrow by site or kind to see the rest.
    truncated: bool = False


class AlertAckRequest(Base):
    """Exactly one of: alert_ids; site_id (optionally with kind: one group); kind alone (that
    kind at every site). Only open alerts are acknowledged; the rest keep their first."""

    alert_ids: (
        Annotated[
            list[Annotated[int, Meta(ge=1, le=MAX_ID)]], Meta(min_length=1, max_length=10_000)
        ]
        | None
    ) = None
    site_id: Annotated[int, Meta(ge=1, le=MAX_ID)] | None = None
    kind: AlertKind | None = None


_ABSENT = {"type": "null"}  # in a oneOf mode: the member is left out (or null)
ACK_MODES = [
    {
        "title": "By alert ids",
        "required": ["alert_ids"],
        "properties": {"alert_ids": {"type": "array"}, "site_id": _ABSENT, "kind": _ABSENT},
    },
    {
        "title": "A site's open alerts, optionally of one kind (a group)",
        "required": ["site_id"],
        "properties": {"site_id": {"type": "integer"}, "alert_ids": _ABSENT},
    },
    {
        "title": "One kind's open alerts at every site",
        "required": ["kind"],
        "properties": {"kind": {"type": "string"}, "alert_ids": _ABSENT, "site_id": _ABSENT},
    },
]


class AlertAckOut(Base):
    acknowledged: int  # alerts acknowledged by this call (0 on a repeat)
    alert_ids: list[int]
    audit: AuditOut


_decode_ack = msgspec.json.Decoder(AlertAckRequest)


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
        kind: FromQuery[AlertKind | None] = None,
    ) -> AlertPage:
        async with reads.connection() as conn:
            rows = await alerts.list_alerts(
                conn, status=status, site_id=site_id, before=before, limit=limit, kind=kind
            )
            open_n, acknowledged_n = await alerts.count_alerts(conn, site_id=site_id, kind=kind)
        items = [AlertOut(**dict(r)) for r in rows]
        return AlertPage(
            items=items,
            next_before=items[-1].id if len(items) == limit else None,
            counts=AlertCounts(open=open_n, acknowledged=acknowledged_n),
        )

    @get("/groups", operation_id="listAlertGroups", opt=requires("viewer"))
    async def groups(
        self,
        reads: NamedDependency[RequestReads],
        status: FromQuery[AlertStatus] = "open",
        site_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        kind: FromQuery[AlertKind | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=GROUPS_MAX)] = 100,
    ) -> AlertGroups:
        async with reads.connection() as conn:
            rows = await alerts.groups(
                conn, status=status, site_id=site_id, kind=kind, limit=limit + 1
            )
        items = [AlertGroupOut(**dict(r)) for r in rows[:limit]]
        return AlertGroups(items=items, truncated=len(rows) > limit)

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

    @post(
        "/ack",
        operation_id="acknowledgeAlerts",
        opt=requires("operator"),
        status_code=200,
        operation_class=body_operation(
            AlertAckRequest,
            "Which open alerts to acknowledge",
            one_of=ACK_MODES,
            examples={
                "by_ids": {"alert_ids": [12, 15]},
                "a_group": {"site_id": 3, "kind": "leak"},
                "a_kind": {"kind": "stale"},
            },
        ),
    )
    async def acknowledge_many(
        self, request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool]
    ) -> AlertAckOut:
        body = await decode_json(request, _decode_ack)
        async with db.connection(pool) as conn:
            ids, entry = await alerts.acknowledge_many(
                conn,
                alert_ids=body.alert_ids,
                site_id=body.site_id,
                kind=body.kind,
                actor=caller(request),
            )
        return AlertAckOut(acknowledged=len(ids), alert_ids=ids, audit=AuditOut(**entry.__dict__))
