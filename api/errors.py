"""Errors raised by the HTTP edge itself (the body or headers are unusable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.errors import FieldError
from domain.roles import Actor, Role


class EdgeError(Exception):
    """Base class; the docstring is the default detail."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        super().__init__(self.detail)


class UnsupportedMediaType(EdgeError):
    """The body must be JSON: send Content-Type: application/json."""


class BodyTimeout(EdgeError):
    """The request body did not arrive in time; nothing was done. Send it again."""


class ClientDisconnected(EdgeError):
    """The client closed the connection before its body arrived; nothing was done."""


class MalformedJson(EdgeError):
    """The body is not valid JSON."""


class InvalidBody(EdgeError):
    """The body does not match the documented schema."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__()
        self.errors = errors


class RoleRequired(EdgeError):
    """This token's role may not do this."""

    def __init__(self, required_role: Role, actor: Actor) -> None:
        super().__init__(
            f"this needs the {required_role} role or above; the token {actor.name!r} has the"
            f" {actor.role} role"
        )
        self.required_role = required_role
        self.role = actor.role


@dataclass(frozen=True)
class ParameterError:
    """What is wrong with one parameter, named as the client sends it (`from`, not `start`)."""

    location: Literal["query", "path", "header"]
    name: str
    detail: str


class InvalidParameters(EdgeError):
    """A query, path or header parameter does not match the documented schema."""

    def __init__(self, errors: list[ParameterError]) -> None:
        super().__init__()
        self.errors = errors
