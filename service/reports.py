"""Reporting periods of a site: totals, limit, completeness, gaps and restatements, per period.

Plain SQL over the hourly buckets, the raw readings (windows and gaps) and the restatements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain import reports as r
from domain.co2e import Gwp, t_co2e
from domain.periods import PeriodKind, period_limit_kg
from service.infra import queries
from service.infra.db import valid_id
from service.infra.errors import SiteNotFound

Q = "reports"


@dataclass(frozen=True)
class GapSummary:
    """All of a period's gaps, also those beyond the listed MAX_GAPS."""

    count: int
    longest_h: float


@dataclass(frozen=True)
class ReportSet:
    body: r.SiteReports
    gap_summaries: list[GapSummary]


async def site_reports(
    conn: asyncpg.Connection,
    *,
    site_id: int,
    kind: PeriodKind,
    spans: list[tuple[datetime, datetime]],
    min_gap_h: float,
    grace_h: float,
    factor: Gwp,
    now: datetime,
) -> ReportSet:
    """One report per (start, end) span, in the order given."""
    q = queries.load(Q)
    site = await conn.fetchrow(q["report_site"], site_id) if valid_id(site_id) else None
    if site is None:
        raise SiteNotFound(f"site {site_id} does not exist")
    interval = site["reporting_interval_s"]
    starts, ends = [s for s, _ in spans], [e for _, e in spans]
    covered = [r.coverage(s, e, site["first_reading"], now, interval) for s, e in spans]
    totals = await conn.fetch(q["period_totals"], site_id, starts, ends)
    windows = await conn.fetch(
        q["period_windows"],
        site_id,
        [c.first if c else 0 for c in covered],
        [c.end_window if c else 0 for c in covered],
        interval,
        r.min_gap_windows(min_gap_h, interval),
        r.MAX_GAPS,
    )
    restated = await conn.fetch(q["period_restatements"], site_id, starts, ends)
    reports, summaries = [], []
    for (start, end), cov, total, win, rest in zip(
        spans, covered, totals, windows, restated, strict=True
    ):
        limit = period_limit_kg(site["emission_limit_kg"], kind, start)
        expected = cov.end_window - cov.first if cov else 0
        peak = total["peak_hour"]
        reports.append(
            r.PeriodReport(
                period_start=start,
                period_end=end,
                closed=r.is_closed(end, grace_h, now),
                total_kg=total["total_kg"],
                t_co2e=t_co2e(total["total_kg"], factor.factor),
                limit_kg=limit,
                percent_of_limit=r.percent(total["total_kg"], limit),
                peak_hour=r.PeakHour(hour=peak, total_kg=total["peak_kg"]) if peak else None,
                readings=total["readings"],
                completeness=r.Completeness(
                    interval_s=interval,
                    windows_expected=expected,
                    windows_received=win["received"],
                    ratio=r.ratio(win["received"], expected),
                    coverage_start=cov.start if cov else None,
                    coverage_end=cov.end if cov else None,
                ),
                gaps=[
                    r.gap(first, missing, interval)
                    for first, missing in zip(win["gap_starts"], win["gap_lengths"], strict=True)
                ],
                gaps_truncated=win["gap_count"] > r.MAX_GAPS,
                restatements=rest["restatements"],
                last_restated_at=rest["last_restated_at"],
            )
        )
        summaries.append(GapSummary(win["gap_count"], win["longest_gap"] * interval / 3600))
    body = r.SiteReports(
        site_id=site_id,
        period=kind,
        gwp=factor,
        min_gap_h=min_gap_h,
        generated_at=now,
        reports=reports,
    )
    return ReportSet(body, summaries)
