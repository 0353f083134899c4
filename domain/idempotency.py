"""The Idempotency-Key header's value (IETF httpapi draft): required, short, printable."""

from __future__ import annotations

KEY_MAX = 255


class MissingIdempotencyKey(Exception):
    """Batch ingest needs an Idempotency-Key header (1-255 printable ASCII characters)."""

    def __init__(self) -> None:
        self.detail = (self.__doc__ or "").strip()
        super().__init__(self.detail)


class InvalidIdempotencyKey(Exception):
    """The Idempotency-Key header must be 1-255 printable ASCII characters."""

    def __init__(self) -> None:
        self.detail = (self.__doc__ or "").strip()
        super().__init__(self.detail)


def parse_key(raw: str | None) -> str:
    """The Idempotency-Key value; the draft's quoted sf-string and a bare token both work."""
    if raw is None:
        raise MissingIdempotencyKey()
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not 1 <= len(key) <= KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKey()
    return key
