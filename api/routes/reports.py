"""GET /v1/sites/{site_id}/reports: monthly or yearly reporting periods, as JSON or CSV."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, QueryParameter

from api import report_csv
from api.auth import requires
from api.errors import InvalidParameters, ParameterError
from api.schemas import Problem
from api.staleness import RequestReads
from domain import periods
from domain.periods import KINDS
from domain.reports import SiteReports
from service import reports
from service.infra.settings import Settings

CSV_TYPE = "text/csv"  # Litestar adds "; charset=utf-8" to text/* types
MAX_MIN_GAP_H = 100_000.0
_PROBLEMS = {
    code: ResponseSpec(
        Problem, description=text, media_type="application/problem+json", generate_examples=False
    )
    for code, text in {
        401: "A token is required (production)",
        404: "Unknown site",
        422: "Invalid period, from, to, min_gap_h or format",
    }.items()
}


def _query(description: str, *, name: str | None = None, **schema: Any) -> Any:
    """A query parameter taken as text and validated by the handler (so a bad value is a 422
    naming it), documented with the schema it must match."""
    extra = {"one_of": None, "type": OpenAPIType.STRING, **schema}
    return QueryParameter(name=name, description=description, schema_extra=extra)


@dataclass
class _JsonOrCsv(Operation):
    """The 200 answer is JSON, or CSV with ?format=csv or Accept: text/csv."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/csv"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


@dataclass(frozen=True)
class ReportQuery:
    kind: periods.PeriodKind
    spans: list[tuple[datetime, datetime]]
    min_gap_h: float
    csv: bool
    truncated: bool
    names: tuple[str, str]  # of from and to as taken, for the CSV file name


def _hours(text: str) -> float | None:
    """A positive, finite number of hours up to MAX_MIN_GAP_H, else None."""
    try:
        hours = float(text)
    except ValueError:
        return None
    return hours if math.isfinite(hours) and 0 < hours <= MAX_MIN_GAP_H else None


def parse_query(
    *,
    period: str,
    start: str | None,
    end: str | None,
    min_gap_h: str | None,
    fmt: str | None,
    accept_csv: bool,
    now: datetime,
    default_gap_h: float,
) -> ReportQuery:
    """The query of a reports request, or a 422 naming every bad parameter."""
    errors = []
    try:
        kind = periods.parse_kind(period)
    except periods.PeriodError as exc:
        raise InvalidParameters([ParameterError("query", "period", str(exc))]) from exc
    bounds = []
    for field, text in (("from", start), ("to", end)):
        try:
            last = field == "to"
            bounds.append(
                periods.parse_period(kind, text, last=last) if text else periods.current(kind, now)
            )
        except periods.PeriodError as exc:
            errors.append(ParameterError("query", field, str(exc)))
    gap_h = default_gap_h if min_gap_h is None else _hours(min_gap_h)
    if gap_h is None:
        detail = f"must be a number of hours above 0, at most {MAX_MIN_GAP_H:g}"
        errors.append(ParameterError("query", "min_gap_h", detail))
    if fmt not in (None, "json", "csv"):
        errors.append(ParameterError("query", "format", "must be json or csv"))
    if errors or gap_h is None:
        raise InvalidParameters(errors)
    # Rules the query schema cannot state are answered, not refused (a schema-valid request is
    # a valid request): `to` before `from` is no periods, and more than MAX_PERIODS are cut to
    # the first ones, with `truncated` true (continue after the last period answered).
    spans = periods.periods(kind, bounds[0], bounds[1])
    truncated = bool(spans) and spans[-1][0] < bounds[1]
    names = (periods.name(kind, bounds[0]), periods.name(kind, bounds[1]))
    csv = fmt == "csv" or (fmt is None and accept_csv)
    return ReportQuery(kind, spans, gap_h, csv, truncated, names)


class ReportsController(Controller):
    path = "/v1/sites/{site_id:int}/reports"
    tags = ["reports"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @get(
        operation_id="getSiteReports",
        opt=requires("viewer"),
        summary="Reporting periods of a site",
        description=(
            "One report per UTC month or year from `from` to `to` (default: the current period), "
            "none if `to` is before `from`; at most 36, the first ones, with `truncated` true "
            "(`X-Truncated: true` for CSV) if there were more. A year names its first (`from`) "
            "or last (`to`) month in a month report, a month its year in a year report. Totals "
            "from the hourly aggregates, the limit (a month's is the annual limit pro rata by "
            "days), completeness of the measurement windows, data gaps of at "
            "least `min_gap_h` hours, and restatements of closed months."
        ),
        responses={
            200: ResponseSpec(SiteReports, description="The reports", generate_examples=False),
            **_PROBLEMS,
        },
        operation_class=_JsonOrCsv,
    )
    async def site_reports(
        self,
        site_id: FromPath[int],
        request: Request[Any, Any, Any],
        reads: NamedDependency[RequestReads],
        settings: NamedDependency[Settings],
        period: Annotated[str, _query("month or year", enum=list(KINDS))] = "month",
        start: Annotated[
            str | None,
            _query(
                "First period: YYYY-MM (month) or YYYY (year); default the current one",
                name="from",
                pattern=periods.NAME_PATTERN,
            ),
        ] = None,
        end: Annotated[
            str | None,
            _query(
                "Last period, inclusive; default the current one",
                name="to",
                pattern=periods.NAME_PATTERN,
            ),
        ] = None,
        min_gap_h: Annotated[
            str | None,
            _query(
                "Shortest gap listed, hours (default REPORT_MIN_GAP_H)",
                type=OpenAPIType.NUMBER,
                exclusive_minimum=0,
                maximum=MAX_MIN_GAP_H,
            ),
        ] = None,
        fmt: Annotated[
            str | None,
            _query(
                "json or csv (default: by Accept, else json)", name="format", enum=["json", "csv"]
            ),
        ] = None,
    ) -> Response[bytes]:
        now = datetime.now(UTC)
        query = parse_query(
            period=period,
            start=start,
            end=end,
            min_gap_h=min_gap_h,
            fmt=fmt,
            accept_csv=request.accept.best_match(["application/json", CSV_TYPE]) == CSV_TYPE,
            now=now,
            default_gap_h=settings.report_min_gap_h,
        )
        async with reads.connection() as conn:
            result = await reports.site_reports(
                conn,
                site_id=site_id,
                kind=query.kind,
                spans=query.spans,
                min_gap_h=query.min_gap_h,
                grace_h=settings.report_grace_h,
                factor=settings.gwp,
                now=now,
            )
        if not query.csv:
            body = msgspec.structs.replace(result.body, truncated=query.truncated)
            return Response(msgspec.json.encode(body), media_type="application/json")
        names = query.names
        if query.spans:
            first, last = query.spans[0][0], query.spans[-1][0]
            names = (periods.name(query.kind, first), periods.name(query.kind, last))
        filename = f"site-{site_id}-{query.kind}-{names[0]}-{names[1]}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if query.truncated:
            headers["X-Truncated"] = "true"
        return Response(report_csv.encode(result), media_type=CSV_TYPE, headers=headers)
