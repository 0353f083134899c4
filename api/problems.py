"""The one mapping from exceptions to RFC 9457 problem responses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from api import errors as edge
from domain.errors import FieldError, InvalidBatch
from domain.idempotency import InvalidIdempotencyKey, MissingIdempotencyKey
from service.alerts import AlertNotFound
from service.infra import errors as svc
from service.infra import metrics
from service.subscriptions import SubscriptionNotFound

PROBLEM_JSON = "application/problem+json"
# Framework error headers worth keeping on the problem response.
_PASS_HEADERS = {"allow", "www-authenticate", "retry-after"}
log = structlog.get_logger("api")


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    retry_after_s: int | None = None

    @property
    def uri(self) -> str:
        # Relative URI reference: resolves against the API, which documents it at that path.
        return f"/problems/{self.slug}"


VALIDATION = ProblemType("validation-error", 422, "Request body failed validation")
INTERNAL = ProblemType("internal-error", 500, "Internal server error")
OVERLOADED = ProblemType("overloaded", 503, "Server overloaded", 1)
HOST_NOT_ALLOWED = ProblemType("host-not-allowed", 400, "Host not allowed")
HEADERS_TOO_LARGE = ProblemType("headers-too-large", 431, "Request headers too large")
HEADER_TIMEOUT = ProblemType("header-timeout", 408, "Request headers timed out")

TABLE: dict[type[Exception], ProblemType] = {
    MissingIdempotencyKey: ProblemType("idempotency-key-missing", 400, "Missing key"),
    InvalidIdempotencyKey: ProblemType("idempotency-key-invalid", 400, "Invalid key"),
    edge.MalformedJson: ProblemType("malformed-json", 400, "Malformed JSON"),
    edge.BodyTimeout: ProblemType("body-timeout", 408, "Request body timed out"),
    edge.UnsupportedMediaType: ProblemType("unsupported-media-type", 415, "Unsupported type"),
    edge.InvalidBody: VALIDATION,
    edge.RoleRequired: ProblemType("forbidden-role", 403, "Role not allowed"),
    InvalidBatch: VALIDATION,
    svc.InvalidInput: VALIDATION,
    svc.SiteNotFound: ProblemType("site-not-found", 404, "Site not found"),
    svc.DuplicateSiteName: ProblemType("site-name-taken", 409, "Site name taken"),
    svc.KeyInFlight: ProblemType("idempotency-key-in-flight", 409, "Request in flight", 1),
    svc.KeyReused: ProblemType("idempotency-key-reused", 422, "Key reused with another body"),
    svc.DatabaseUnavailable: ProblemType("database-unavailable", 503, "Database unavailable", 5),
    svc.RequestTimeout: ProblemType("request-timeout", 503, "Request timed out", 1),
    svc.MissingDeviceKey: ProblemType("device-key-missing", 401, "Device key required"),
    svc.InvalidDeviceKey: ProblemType("device-key-invalid", 401, "Invalid device key"),
    svc.SiteForbidden: ProblemType("site-forbidden", 403, "Site not allowed for this key"),
    svc.DeviceMismatch: ProblemType("device-mismatch", 403, "Device does not match key"),
    svc.DeviceKeyNotFound: ProblemType("device-key-not-found", 404, "Device key not found"),
    svc.RateLimited: ProblemType("rate-limited", 429, "Too many requests"),
    svc.DeviceBusy: ProblemType("device-busy", 429, "Device has too many requests in flight", 1),
    AlertNotFound: ProblemType("alert-not-found", 404, "Alert not found"),
    SubscriptionNotFound: ProblemType("subscription-not-found", 404, "Subscription not found"),
}

# Litestar's own errors (routing, size limit, parameters), by status code.
BY_STATUS: dict[int, ProblemType] = {
    400: ProblemType("bad-request", 400, "Bad request"),
    401: ProblemType("unauthorized", 401, "Unauthorized"),
    403: ProblemType("forbidden", 403, "Forbidden"),
    404: ProblemType("not-found", 404, "Not found"),
    405: ProblemType("method-not-allowed", 405, "Method not allowed"),
    413: ProblemType("body-too-large", 413, "Request body too large"),
    415: ProblemType("unsupported-media-type", 415, "Unsupported media type"),
    429: ProblemType("too-many-requests", 429, "Too many requests"),
    503: ProblemType("service-unavailable", 503, "Service unavailable"),
}

ALL_TYPES: dict[str, ProblemType] = {
    p.slug: p
    for p in [
        *TABLE.values(),
        *BY_STATUS.values(),
        VALIDATION,
        INTERNAL,
        OVERLOADED,
        HOST_NOT_ALLOWED,
        HEADERS_TOO_LARGE,
        HEADER_TIMEOUT,
    ]
}


def _lookup(exc: Exception) -> ProblemType | None:
    for cls in type(exc).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    return None


def _headers(exc: Exception) -> dict[str, str]:
    if isinstance(exc, svc.RateLimited):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if isinstance(exc, svc.MissingDeviceKey | svc.InvalidDeviceKey):
        return {"WWW-Authenticate": 'Bearer realm="emissions"'}
    return {}


def _members(exc: Exception) -> dict[str, Any]:
    """Extension members of the problem body (RFC 9457 §3.2) for the exceptions that have them."""
    if isinstance(exc, edge.RoleRequired):
        return {"required_role": exc.required_role, "role": exc.role}
    return {}


def _field_errors(exc: Exception) -> list[FieldError] | None:
    if isinstance(exc, edge.InvalidBody | InvalidBatch | svc.InvalidInput):
        return exc.errors
    return None


def problem_response(
    kind: ProblemType,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    members: dict[str, Any] | None = None,
) -> Response[bytes]:
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        **(members or {}),
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = [{"pointer": e.pointer, "detail": e.detail} for e in errors]
    headers = dict(headers or {})
    if kind.retry_after_s is not None:
        headers.setdefault("Retry-After", str(kind.retry_after_s))
    structlog.contextvars.bind_contextvars(problem=kind.slug)
    metrics.PROBLEMS.labels(kind.slug).inc()
    return Response(
        content=msgspec.json.encode(body),
        status_code=kind.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar exception handler for every exception: one mapping, one body shape."""
    instance = request.url.path
    kind = _lookup(exc)
    if kind is not None:
        detail = getattr(exc, "detail", None) or str(exc)
        return problem_response(
            kind,
            detail,
            instance=instance,
            errors=_field_errors(exc),
            headers=_headers(exc),
            members=_members(exc),
        )
    if isinstance(exc, HTTPException) and exc.status_code != HTTPStatus.INTERNAL_SERVER_ERROR:
        status = exc.status_code
        kind = BY_STATUS.get(status) or ProblemType(
            f"http-{status}", status, HTTPStatus(status).phrase
        )
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in _PASS_HEADERS}
        # The static files' 404 names the file it looked for (a directory: its full path).
        detail = "Nothing here: check the path." if status == HTTPStatus.NOT_FOUND else exc.detail
        return problem_response(
            kind, detail, instance=instance, errors=_parameter_errors(exc), headers=headers
        )
    log.exception("unhandled_error", exc_info=exc)
    return problem_response(
        INTERNAL, "The server failed to handle this request.", instance=instance
    )


def problem_types() -> list[dict[str, Any]]:
    """Every problem type the API answers with, for the /problems index."""
    return [{"type": p.uri, "title": p.title, "status": p.status} for p in ALL_TYPES.values()]


def _parameter_errors(exc: HTTPException) -> list[FieldError] | None:
    """Litestar's parameter validation details (query, path, header) as field errors."""
    if not isinstance(exc.extra, list):
        return None
    errors = []
    for item in exc.extra:
        if isinstance(item, dict) and "key" in item:
            source = item.get("source", "parameter")
            where = getattr(source, "value", source)
            errors.append(FieldError(f"{where}:{item['key']}", str(item.get("message", ""))))
    return errors or None
