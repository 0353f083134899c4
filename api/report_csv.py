"""Reporting periods as CSV: a header row, then one row per period (RFC 4180, UTF-8)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from service.reports import ReportSet

COLUMNS = [
    "site_id",
    "period_start",
    "period_end",
    "closed",
    "total_kg",
    "t_co2e",
    "gwp_version",
    "gwp_factor",
    "limit_kg",
    "percent_of_limit",
    "peak_hour",
    "peak_hour_kg",
    "readings",
    "interval_s",
    "windows_expected",
    "windows_received",
    "completeness_ratio",
    "gap_count",
    "longest_gap_h",
    "gaps",
    "restatements",
    "last_restated_at",
]
Cell = str | int | float | bool | datetime | None


def _cell(value: Cell) -> str | int | float:
    """Empty for null, true/false, timestamps as in the JSON body (UTC, Z)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def encode(reports: ReportSet) -> bytes:
    body = reports.body
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for report, gaps in zip(body.reports, reports.gap_summaries, strict=True):
        done = report.completeness
        peak = report.peak_hour
        row: list[Cell] = [
            body.site_id,
            report.period_start,
            report.period_end,
            report.closed,
            report.total_kg,
            report.t_co2e,
            body.gwp.version,
            body.gwp.factor,
            report.limit_kg,
            report.percent_of_limit,
            peak.hour if peak else None,
            peak.total_kg if peak else None,
            report.readings,
            done.interval_s,
            done.windows_expected,
            done.windows_received,
            done.ratio,
            gaps.count,
            gaps.longest_h,
            ";".join(f"{_cell(g.start)}/{_cell(g.end)}" for g in report.gaps),
            report.restatements,
            report.last_restated_at,
        ]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode()
