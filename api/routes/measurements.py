"""POST /v1/sites/{site_id}/measurements: batch ingest."""

from __future__ import annotations

from functools import partial
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Parameter, Schema
from litestar.params import FromPath

from api.auth import bearer_token, client_address, requires
from api.decode import body_operation, decode_json
from api.schemas import IngestBatch, IngestReceipt, Problem
from domain.idempotency import KEY_MAX
from service.ingest import Ingest

_decode_batch = msgspec.json.Decoder(IngestBatch)
# Read from request.headers by the handler (a declared header parameter costs a kwargs
# extraction per request); documented here so the OpenAPI document still lists it.
_KEY_DOC = (
    "Unique per batch (IETF httpapi idempotency-key draft): 1-255 printable ASCII characters;"
    " a missing or invalid key is a 400"
)
_KEY_HEADER = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=True,
    description=_KEY_DOC,
    # No space at either end: HTTP strips it, and the key would not be the one sent.
    schema=Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=KEY_MAX,
        pattern=r"^[!-~]([ -~]{0,253}[!-~])?$",
        examples=["batch-2026-01-05T00:00Z"],
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
    # The device key is checked by the ingest transaction itself (site binding, revocation).
    opt=requires("device"),
    status_code=202,
    responses={202: ResponseSpec(IngestReceipt, description="Batch recorded"), **_PROBLEMS},
)
async def ingest_measurements(
    request: Request[Any, Any, Any],
    site_id: FromPath[int],
) -> Response[bytes]:
    # From app state, not DI: resolving dependencies is measurable on the hottest route.
    ingest: Ingest = request.app.state.ingest
    outcome = await ingest.accept(
        site_id=site_id,
        device_key=bearer_token(request),
        idempotency_key=request.headers.get("idempotency-key"),
        read_batch=partial(decode_json, request, _decode_batch),
        request_id=request.scope["state"].get("request_id", ""),
        client=client_address(request),
    )
    return Response(
        content=outcome.body,
        status_code=outcome.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if outcome.replayed else {},
    )
