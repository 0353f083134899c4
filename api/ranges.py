"""Time ranges in query parameters: RFC 3339 instants, parsed strictly, and the hourly range."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from api.errors import InvalidParameters, ParameterError

MAX_SPAN = timedelta(days=400)
DEFAULT_SPAN = timedelta(hours=24)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
# RFC 3339 section 5.6 date-time, which is what OpenAPI's `format: date-time` names: a bare
# number (an epoch, as Litestar's datetime parameters take) or an instant without an offset is
# not one. T and Z may be lower case (section 5.6, note).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


class HourlyRange(NamedTuple):
    start: datetime
    end: datetime
    truncated: bool


def parse_instant(name: str, text: str) -> datetime:
    """An RFC 3339 date-time in UTC, or a 422 naming the parameter."""
    match = _RFC3339.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        detail = "must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T00:00:00Z"
        raise InvalidParameters([ParameterError("query", name, detail)]) from exc
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is valid RFC 3339 but before datetime.min in UTC.
        return _EARLIEST if parsed.year == 1 else _LATEST


def span_or_default(
    start: str | None, end: str | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    """`from` and `to` parsed (every bad one in one 422); `to` defaults to now and `from` to
    `default` before `to` (clamped to the earliest instant)."""
    errors = []
    bounds: list[datetime | None] = []
    for name, text in (("from", start), ("to", end)):
        try:
            bounds.append(None if text is None else parse_instant(name, text))
        except InvalidParameters as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidParameters(errors)
    last = bounds[1] or now
    first = bounds[0] or (last - default if last - _EARLIEST > default else _EARLIEST)
    return first, last


def hourly_range(start: str | None, end: str | None, now: datetime) -> HourlyRange:
    """[from, to): the last 24 hours unless given.

    Rules no OpenAPI parameter can state are answered in a defined way, not rejected (a
    schema-valid request is a valid request): `to` at or before `from` is an empty range, and
    more than MAX_SPAN is clamped to the first MAX_SPAN after `from`, with `truncated` set so a
    client continues from the `to` it got back.
    """
    first, last = span_or_default(start, end, now, DEFAULT_SPAN)
    if last - first > MAX_SPAN:
        return HourlyRange(first, first + MAX_SPAN, truncated=True)
    return HourlyRange(first, last, truncated=False)
