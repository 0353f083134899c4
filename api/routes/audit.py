"""GET /v1/ops/audit: the audit trail, newest first (keyset), by actor, action and time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from api.auth import requires
from api.errors import InvalidParameters, ParameterError
from api.schemas import AuditPage, AuditRecord
from service import audit
from service.infra import db
from service.infra.db import MAX_ID

_TIME = "RFC 3339 with an offset"


@get(
    "/v1/ops/audit",
    operation_id="listAudit",
    tags=["ops"],
    opt=requires("operator"),
    summary="The audit trail",
)
async def list_audit(
    pool: NamedDependency[asyncpg.Pool],
    actor: Annotated[
        str | None, QueryParameter(max_length=200, description="Token name (or cli)")
    ] = None,
    action: Annotated[
        str | None, QueryParameter(max_length=100, description="e.g. outbox.replay")
    ] = None,
    start: Annotated[
        datetime | None, QueryParameter(name="from", description=f"At or after; {_TIME}")
    ] = None,
    end: Annotated[
        datetime | None, QueryParameter(name="to", description=f"Before; {_TIME}")
    ] = None,
    before: Annotated[int, QueryParameter(ge=1, le=MAX_ID, description="Cursor")] = MAX_ID,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> AuditPage:
    """Every operator write (dry runs included): who (token name and role), what, with what,
    how many rows; newest first."""
    errors = [
        ParameterError("query", name, "needs a UTC offset")
        for name, value in (("from", start), ("to", end))
        if value is not None and value.tzinfo is None
    ]
    if not errors and start and end and start >= end:
        errors.append(ParameterError("query", "to", "must be after from"))
    if errors:
        raise InvalidParameters(errors)
    async with db.connection(pool) as conn:
        rows = await audit.list_entries(
            conn, actor=actor, action=action, start=start, end=end, before=before, limit=limit
        )
    items = [AuditRecord(**dict(r)) for r in rows]
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
