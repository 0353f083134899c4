"""POST /v1/sites/{site_id}/measurements: batch ingest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response, post
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Parameter, Schema
from litestar.params import FromPath

from api.auth import bearer_token
from api.decode import body_operation, decode_json
from api.errors import InvalidIdempotencyKey, MissingIdempotencyKey
from api.schemas import IngestBatch, IngestReceipt, Problem
from domain.readings import check_batch
from service import devices, ingest, sites
from service.infra import db, metrics
from service.infra.errors import (
    DeviceMismatch,
    InvalidDeviceKey,
    MissingDeviceKey,
    RateLimited,
    RequestTimeout,
    SiteForbidden,
)
from service.infra.settings import Settings

_decode_batch = msgspec.json.Decoder(IngestBatch)
_KEY_MAX = 255
# Read from request.headers by the handler (a declared header parameter costs a kwargs
# extraction per request); documented here so the OpenAPI document still lists it.
_KEY_DOC = "Unique per batch (IETF draft)"
_KEY_HEADER = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    deprecated=False,
    description=_KEY_DOC,
    schema=Schema(
        description=_KEY_DOC,
        one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)],
    ),
)


_PROBLEMS = {
    code: ResponseSpec(Problem, description=text, media_type="application/problem+json")
    for code, text in {
        400: "Missing or invalid Idempotency-Key, or malformed JSON",
        401: "Missing, unknown or revoked device key",
        403: "The key may not post to this site, or device_id is not the key's device",
        404: "Unknown site",
        409: "A request with this key is still in flight (see Retry-After)",
        429: "This device is over its rate limit (see Retry-After)",
        413: "Body too large",
        415: "Body is not JSON",
        422: "Invalid batch, or key reused with a different body",
        503: "Database unavailable; nothing was written (see Retry-After)",
    }.items()
}


def parse_key(raw: str | None) -> str:
    """The Idempotency-Key value; the draft's quoted sf-string and a bare token both work."""
    if raw is None:
        raise MissingIdempotencyKey()
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not 1 <= len(key) <= _KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKey()
    return key


@post(
    "/v1/sites/{site_id:int}/measurements",
    operation_id="ingestMeasurements",
    operation_class=body_operation(
        IngestBatch, "A batch of readings from one device", headers=[_KEY_HEADER]
    ),
    summary="Ingest a batch of readings",
    description=(
        "Idempotent per (site, device, Idempotency-Key) for the retention window: a retry "
        "with the same key and body gets the stored answer with `Idempotent-Replayed: true`."
    ),
    tags=["ingest"],
    status_code=202,
    responses={202: ResponseSpec(IngestReceipt, description="Batch recorded"), **_PROBLEMS},
)
async def ingest_measurements(
    request: Request[Any, Any, Any],
    site_id: FromPath[int],
) -> Response[bytes]:
    # From app state, not DI: resolving dependencies is measurable on the hottest route.
    settings: Settings = request.app.state.settings
    pool: asyncpg.Pool = request.app.state.pool
    device_key = bearer_token(request)
    if device_key is None:
        raise MissingDeviceKey()
    structlog.contextvars.bind_contextvars(site_id=site_id)
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            known: devices.DeviceKeyCache = request.app.state.device_keys
            device = known.get(device_key)
            if device is None:
                async with db.connection(pool) as conn:
                    device = await devices.authenticate_device(conn, device_key)
                known.remember(device_key, device)
            structlog.contextvars.bind_contextvars(device_id=device.device_id)
            if site_id not in device.site_ids:
                async with db.connection(pool) as conn:
                    await sites.get_site(conn, site_id=site_id)  # 404 for an unknown site
                raise SiteForbidden(f"this device key may not post to site {site_id}")
            wait = request.app.state.rate_limits.take(device.key_id)
            if wait:
                raise RateLimited(wait)
            key = parse_key(request.headers.get("idempotency-key"))
            batch = await decode_json(request, _decode_batch)
            if batch.device_id is not None and batch.device_id != device.device_id:
                raise DeviceMismatch()
            check_batch(batch.measurements, limits=settings.batch_limits, now=datetime.now(UTC))
            try:
                async with db.connection(pool) as conn:
                    outcome = await ingest.record_batch(
                        conn,
                        site_id=site_id,
                        device_id=device.device_id,
                        key=key,
                        readings=batch.measurements,
                        request_id=request.scope["state"].get("request_id", ""),
                        retention=settings.idempotency_retention,
                        key_id=device.key_id,
                    )
            except InvalidDeviceKey:
                known.forget(device.key_id)  # revoked by another process since remembered
                raise
    except TimeoutError as exc:
        raise RequestTimeout() from exc
    if outcome.event_id is not None:
        request.app.state.doorbell.ring()  # after commit; never waits for Redis
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    if outcome.replayed:
        metrics.REPLAYS.inc()
    if outcome.receipt is not None:
        r = outcome.receipt
        metrics.count_receipt(r.accepted, r.duplicates, len(r.conflicts))
        structlog.contextvars.bind_contextvars(
            accepted=r.accepted,
            duplicates=r.duplicates,
            conflicts=len(r.conflicts),
            replayed=outcome.replayed,
        )
    else:
        structlog.contextvars.bind_contextvars(replayed=outcome.replayed)
    return Response(
        content=outcome.body,
        status_code=outcome.status_code,
        media_type="application/json",
        headers=headers,
    )
