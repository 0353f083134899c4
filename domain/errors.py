"""Errors the domain raises; each docstring is the message an operator reads."""

from __future__ import annotations

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One failing field: a JSON pointer (RFC 6901) into the request body and why it failed."""

    pointer: str
    detail: str


class InvalidBatch(Exception):
    """The batch breaks one or more ingest rules."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(self.__doc__)
        self.errors = errors
