"""Errors of the service layer; each docstring is the message a client or operator reads."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: an expected failure with a stable meaning."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.__doc__)
        self.detail = detail or (self.__doc__ or "").strip()


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
