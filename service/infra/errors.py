"""Errors of the service layer; each docstring is the message a client or operator reads."""

from __future__ import annotations

from domain.errors import FieldError


class ServiceError(Exception):
    """Base class: an expected failure with a stable meaning."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.__doc__)
        self.detail = detail or (self.__doc__ or "").strip()


class InvalidInput(ServiceError):
    """The body does not match the documented schema."""

    def __init__(self, errors: list[FieldError]) -> None:
        # One message for every invalid input; the errors say what, and where in the body.
        super().__init__(InvalidInput.__doc__)
        self.errors = errors


class SiteNotFound(ServiceError):
    """No site has this id."""


class DuplicateSiteName(ServiceError):
    """A site with this name already exists."""


class KeyInFlight(ServiceError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""


class KeyReused(ServiceError):
    """This Idempotency-Key was already used for a different request body."""


class DatabaseUnavailable(ServiceError):
    """The database cannot be reached; nothing was written. Retry later."""


class MigrationError(ServiceError):
    """The database schema does not match the migration files."""


class MissingDeviceKey(ServiceError):
    """Batch ingest needs a device key: Authorization: Bearer <key>."""


class InvalidDeviceKey(ServiceError):
    """The device key is unknown or revoked."""


class SiteForbidden(ServiceError):
    """This device key may not post to this site."""


class DeviceMismatch(ServiceError):
    """The body's device_id is not the device this key belongs to."""


class DeviceKeyNotFound(ServiceError):
    """No device key has this id."""


class RateLimited(ServiceError):
    """This device is sending faster than its rate limit; retry after the given delay."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


class DeviceBusy(ServiceError):
    """This device key has too many requests in flight at once; retry after the answer."""


class UnknownOperator(ServiceError):
    """A valid operator token is required."""


class RequestTimeout(ServiceError):
    """The request took too long; retry with the same Idempotency-Key (it never writes twice)."""
