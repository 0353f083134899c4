"""Ops: queue health, the outbox (keyset paged), and replay (operator)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from api.auth import caller, requires
from api.decode import body_operation, decode_json
from api.schemas import (
    REPLAY_EXAMPLES,
    REPLAY_MODES,
    AuditOut,
    OutboxEventOut,
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
OutboxType = Literal[
    "measurements.accepted",
    "site.threshold_crossed",
    "site.leak_detected",
    "site.stale",
    "report.restated",
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
    ) -> OutboxPage:
        async with reads.connection() as conn:
            rows = await outbox.list_outbox(
                conn,
                status=status,
                site_id=site_id,
                before=before,
                limit=limit,
                event_type=event_type,
            )
        items = [OutboxEventOut(**dict(r)) for r in rows]
        return OutboxPage(items=items, next_before=items[-1].id if len(items) == limit else None)

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
