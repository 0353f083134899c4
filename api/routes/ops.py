"""Ops: queue health, the outbox (keyset paged), and replay (operator)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from api.auth import caller, requires
from api.decode import body_operation, decode_json
from api.errors import InvalidParameters, ParameterError
from api.schemas import (
    REPLAY_EXAMPLES,
    REPLAY_MODES,
    AuditOut,
    OutboxAuditOut,
    OutboxErrorOut,
    OutboxEventDetail,
    OutboxEventOut,
    OutboxEventType,
    OutboxPage,
    QueueOut,
    ReplayOut,
    ReplayRequest,
)
from api.staleness import RequestReads
from service import maintenance, outbox
from service.infra import db
from service.infra.db import MAX_ID

_decode_replay = msgspec.json.Decoder(ReplayRequest)
OutboxStatus = Literal["pending", "backoff", "dead", "processed", "all"]
OutboxType = OutboxEventType
_TIME = "RFC 3339 with an offset"
RequestId = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="The accepting request's X-Request-Id (in the payload)",
    ),
]


class OpsController(Controller):
    path = "/v1/ops"
    tags = ["ops"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @get("/queue", operation_id="getQueue", opt=requires("viewer"))
    async def queue(self, reads: NamedDependency[RequestReads], state: State) -> QueueOut:
        async with reads.connection() as conn:
            stats = await outbox.queue_stats(conn, state.redis)
            sizes = await maintenance.table_sizes(conn)
        return QueueOut(**msgspec.structs.asdict(stats), table_bytes=sizes)

    @get("/outbox", operation_id="listOutbox", opt=requires("viewer"))
    async def outbox(
        self,
        reads: NamedDependency[RequestReads],
        status: FromQuery[OutboxStatus] = "all",
        site_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        before: Annotated[int, QueryParameter(ge=1, le=MAX_ID, description="Cursor")] = MAX_ID,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        event_type: FromQuery[OutboxType | None] = None,
        batch_id: Annotated[
            UUID | None, QueryParameter(description="The batch id (in the payload)")
        ] = None,
        request_id: RequestId = None,
        start: Annotated[
            datetime | None,
            QueryParameter(name="from", description=f"Created at or after; {_TIME}"),
        ] = None,
        end: Annotated[
            datetime | None, QueryParameter(name="to", description=f"Created before; {_TIME}")
        ] = None,
    ) -> OutboxPage:
        """Events newest first (keyset: pass next_before as before), by state, site, type,
        batch id, request id and creation time in [from, to) (empty when to <= from)."""
        errors = [
            ParameterError("query", name, "needs a UTC offset")
            for name, value in (("from", start), ("to", end))
            if value is not None and value.tzinfo is None
        ]
        if errors:
            raise InvalidParameters(errors)
        if start and end and start >= end:
            # A backwards range is empty, as for every range of the API (issue 16).
            return OutboxPage(items=[], next_before=None)
        where = outbox.OutboxFilter(
            status=status,
            site_id=site_id,
            event_type=event_type,
            batch_id=str(batch_id) if batch_id else None,
            request_id=request_id,
            created_from=start,
            created_to=end,
        )
        async with reads.connection() as conn:
            rows = await outbox.list_outbox(
                conn,
                status=status,
                site_id=site_id,
                before=before,
                limit=limit,
                event_type=event_type,
                where=where,
            )
        items = [OutboxEventOut(**dict(r)) for r in rows]
        return OutboxPage(items=items, next_before=items[-1].id if len(items) == limit else None)

    @get("/outbox/{event_id:int}", operation_id="getOutboxEvent", opt=requires("viewer"))
    async def outbox_event(
        self, reads: NamedDependency[RequestReads], event_id: FromPath[int]
    ) -> OutboxEventDetail:
        """One event: its raw payload, attempts, every recorded failure (the last 20) and the
        replays that concern it."""
        async with reads.connection() as conn:
            found = await outbox.event_detail(conn, event_id)
        return OutboxEventDetail(
            **dict(found.event),
            errors=[OutboxErrorOut(**dict(r)) for r in found.errors],
            audit=[OutboxAuditOut(**dict(r)) for r in found.audit],
        )

    @post(
        "/outbox/replay",
        operation_id="replayOutbox",
        opt=requires("operator"),
        status_code=200,
        operation_class=body_operation(
            ReplayRequest, "What to replay", one_of=REPLAY_MODES, examples=REPLAY_EXAMPLES
        ),
    )
    async def replay(
        self, request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool]
    ) -> ReplayOut:
        body = await decode_json(request, _decode_replay)
        async with db.connection(pool) as conn:
            ids, entry = await outbox.replay(
                conn,
                selection=outbox.ReplaySelection(
                    event_ids=body.event_ids,
                    site_id=body.site_id,
                    start=body.start,
                    end=body.end,
                    only_dead=body.all_dead,
                    event_type=body.event_type,
                    created_from=body.created_from,
                    created_to=body.created_to,
                ),
                actor=caller(request),
                dry_run=body.dry_run,
            )
        if ids and not body.dry_run:
            request.app.state.doorbell.ring()
        return ReplayOut(
            event_ids=ids,
            replayed=0 if body.dry_run else len(ids),
            dry_run=body.dry_run,
            audit=AuditOut(**entry.__dict__),
        )
