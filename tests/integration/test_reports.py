"""Reporting periods over HTTP: exact completeness and gaps, totals against a pro-rata limit,
CSV, restatements; every rejection is a 422 problem that changes nothing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from domain.co2e import t_co2e
from service import aggregates
from service.drain import RetryPolicy, drain_batch
from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import batch, post_batch, table_counts

W = timedelta(minutes=15)
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
_names = iter(range(10**6))


def at(day: int, hour: int, minute: int = 0, month: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def windows(start: datetime, end: datetime, step: timedelta = W) -> list[datetime]:
    out = []
    while start < end:
        out.append(start)
        start += step
    return out


async def new_site(
    client: httpx.AsyncClient, *, limit_kg: float = 36_500.0, interval_s: int = 900
) -> int:
    body = {
        "name": f"report-site-{next(_names)}",
        "emission_limit_kg": limit_kg,
        "reporting_interval_s": interval_s,
    }
    response = await client.post("/v1/sites", json=body)
    assert response.status_code == 201, response.text
    site: int = response.json()["id"]
    return site


async def store(conn: asyncpg.Connection, site: int, readings: dict[datetime, float]) -> None:
    """Readings straight into measurements, then the aggregates rebuilt from them."""
    await conn.execute(
        "INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id) "
        "SELECT $1, ts, kg, 'test', gen_random_uuid() FROM unnest($2::timestamptz[], $3::float8[])"
        " AS u (ts, kg)",
        site,
        list(readings),
        list(readings.values()),
    )
    async with conn.transaction():
        await aggregates.rebuild_site(conn, site_id=site, year=aggregates.current_year())


async def get_reports(client: httpx.AsyncClient, site: int, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/sites/{site}/reports", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def gaps_of(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(g["start"], g["end"], g["missing_windows"]) for g in report["gaps"]]


# January 2026 at 15-minute windows (2976), with these runs missing:
LEADING = (JAN, at(1, 2), 8)  # 2 h from the period start
SHORT = (at(10, 5), at(10, 5, 30), 2)  # 30 min
DAY = (at(15, 0), at(16, 0), 96)  # a whole day
HOUR = (at(20, 12), at(20, 13), 4)  # exactly 1 h
TRAILING = (at(31, 21, 15), FEB, 11)  # to the period end
HOLES = [LEADING, SHORT, DAY, HOUR, TRAILING]


def january_with_holes() -> dict[datetime, float]:
    missing = {ts for start, end, _ in HOLES for ts in windows(start, end)}
    readings = {ts: 1.0 for ts in windows(JAN, FEB) if ts not in missing}
    readings[at(31, 23, 45, month=12, year=2025)] = 1.0  # the first reading ever
    readings[at(5, 10, 7)] = 1.0  # a second reading in the 10:00 window: one window
    readings[FEB] = 1.0  # the next period's first window
    return readings


def expected_gaps(*holes: tuple[datetime, datetime, int]) -> list[tuple[str, str, int]]:
    return [(z(start), z(end), n) for start, end, n in holes]


async def test_completeness_and_gaps_are_exact_for_a_series_with_known_holes(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client)
    await store(conn, site, january_with_holes())
    body = await get_reports(client, site, period="month", **{"from": "2025-11", "to": "2026-01"})
    assert body["site_id"] == site
    assert body["period"] == "month"
    assert body["min_gap_h"] == 1.0
    nov, dec, jan = body["reports"]
    assert [r["period_start"] for r in body["reports"]] == [
        "2025-11-01T00:00:00Z",
        "2025-12-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    ]
    assert jan["period_end"] == "2026-02-01T00:00:00Z"
    assert jan["completeness"] == {
        "interval_s": 900,
        "windows_expected": 2976,
        "windows_received": 2976 - 121,
        "ratio": (2976 - 121) / 2976,
        "coverage_start": "2026-01-01T00:00:00Z",
        "coverage_end": "2026-02-01T00:00:00Z",
    }
    assert gaps_of(jan) == expected_gaps(LEADING, DAY, HOUR, TRAILING)
    assert jan["gaps_truncated"] is False
    assert jan["readings"] == 2976 - 121 + 1
    # December: covered from the window of the first reading ever.
    assert dec["completeness"] == {
        "interval_s": 900,
        "windows_expected": 1,
        "windows_received": 1,
        "ratio": 1.0,
        "coverage_start": "2025-12-31T23:45:00Z",
        "coverage_end": "2026-01-01T00:00:00Z",
    }
    assert dec["gaps"] == []
    # November: before the first reading, nothing is expected.
    assert nov["completeness"] == {
        "interval_s": 900,
        "windows_expected": 0,
        "windows_received": 0,
        "ratio": None,
        "coverage_start": None,
        "coverage_end": None,
    }
    assert nov["gaps"] == []
    assert nov["peak_hour"] is None
    assert nov["total_kg"] == 0.0


@pytest.mark.parametrize(
    ("min_gap_h", "holes"),
    [
        ("0.5", [LEADING, SHORT, DAY, HOUR, TRAILING]),
        ("0.25", [LEADING, SHORT, DAY, HOUR, TRAILING]),
        ("1", [LEADING, DAY, HOUR, TRAILING]),
        ("2", [LEADING, DAY, TRAILING]),
        ("24", [DAY]),
        ("24.01", []),
    ],
)
async def test_min_gap_h_lists_only_gaps_at_least_that_long(
    client: httpx.AsyncClient, conn: asyncpg.Connection, min_gap_h: str, holes: list[Any]
) -> None:
    site = await new_site(client)
    await store(conn, site, january_with_holes())
    body = await get_reports(
        client, site, **{"from": "2026-01", "to": "2026-01"}, min_gap_h=min_gap_h
    )
    assert body["min_gap_h"] == float(min_gap_h)
    (jan,) = body["reports"]
    assert gaps_of(jan) == expected_gaps(*holes)
    assert jan["completeness"]["windows_received"] == 2976 - 121


async def test_the_current_period_is_covered_up_to_now_and_not_closed(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client, interval_s=3600)
    before = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    month = before.replace(day=1, hour=0)
    await store(conn, site, {month: 2.0, month + timedelta(hours=1): 3.0})
    body = await get_reports(client, site)  # default: this month
    after = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    (report,) = body["reports"]
    assert report["period_start"] == z(month)
    assert report["closed"] is False
    done = report["completeness"]
    if after == month:
        # The month's first hour: no window of it has ended yet, so none is expected (and the
        # future hour's reading is not counted as received).
        assert done["coverage_start"] is None and done["windows_expected"] == 0, done
        return
    assert done["coverage_start"] == z(month)
    assert done["coverage_end"] in {z(before), z(after)}
    expected = (datetime.fromisoformat(done["coverage_end"]) - month) // timedelta(hours=1)
    assert done["windows_expected"] == expected
    assert done["windows_received"] == min(2, expected)
    if expected > 2:  # the trailing gap runs to the last full window, not to the month's end
        assert gaps_of(report) == [
            (z(month + timedelta(hours=2)), done["coverage_end"], expected - 2)
        ]
    last = await get_reports(client, site, **{"from": "2026-01", "to": "2026-01"})
    assert last["reports"][0]["closed"] is True


async def test_month_and_year_totals_against_the_pro_rata_limit_and_the_peak_hour(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client, limit_kg=36_600.0)
    readings = {
        at(3, 10, 0, month=2, year=2024): 2.5,
        at(3, 10, 15, month=2, year=2024): 4.0,  # 10:00 holds 6.5 kg: February's peak
        at(3, 11, 0, month=2, year=2024): 6.5,  # as much, later: the earlier hour wins
        at(29, 23, 45, month=2, year=2024): 1.25,
        at(1, 0, 0, month=3, year=2024): 10.0,  # March's peak, and the year's
        at(31, 23, 45, month=12, year=2024): 0.75,
        at(1, 0, 0, month=1, year=2025): 100.0,  # another year
    }
    await store(conn, site, readings)
    months = await get_reports(client, site, **{"from": "2024-02", "to": "2024-03"})
    feb, mar = months["reports"]
    assert feb["total_kg"] == 14.25
    assert feb["readings"] == 4
    assert feb["limit_kg"] == pytest.approx(36_600.0 * 29 / 366)
    assert feb["limit_kg"] == 2900.0
    assert feb["percent_of_limit"] == round(100 * 14.25 / 2900.0, 3)
    assert feb["t_co2e"] == t_co2e(14.25, 29.8)
    assert feb["peak_hour"] == {"hour": "2024-02-03T10:00:00Z", "total_kg": 6.5}
    assert mar["limit_kg"] == pytest.approx(36_600.0 * 31 / 366)
    assert mar["peak_hour"] == {"hour": "2024-03-01T00:00:00Z", "total_kg": 10.0}
    assert months["gwp"] == {"version": "AR6-fossil", "factor": 29.8}
    years = await get_reports(client, site, period="year", **{"from": "2024", "to": "2025"})
    y2024, y2025 = years["reports"]
    assert (y2024["period_start"], y2024["period_end"]) == (
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    )
    assert y2024["total_kg"] == 25.0
    assert y2024["readings"] == 6
    assert y2024["limit_kg"] == 36_600.0
    assert y2024["percent_of_limit"] == round(100 * 25.0 / 36_600.0, 3)
    assert y2024["peak_hour"] == {"hour": "2024-03-01T00:00:00Z", "total_kg": 10.0}
    assert y2025["total_kg"] == 100.0
    assert y2025["limit_kg"] == 36_600.0


async def test_totals_come_from_the_drained_aggregates(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client)
    sent = [{"ts": z(at(2, 8, 15 * i, month=3)), "methane_kg": 1.5 + i} for i in range(4)]
    assert (await post_batch(client, site, batch(sent))).status_code == 202
    before = await get_reports(client, site, **{"from": "2026-03", "to": "2026-03"})
    assert before["reports"][0]["total_kg"] == 0.0  # not drained yet
    while (await drain_batch(conn, limit=100, policy=RetryPolicy())).claimed:
        pass
    (report,) = (await get_reports(client, site, **{"from": "2026-03", "to": "2026-03"}))["reports"]
    assert report["total_kg"] == 12.0
    assert report["readings"] == 4
    assert report["peak_hour"] == {"hour": "2026-03-02T08:00:00Z", "total_kg": 12.0}


async def test_csv_has_a_header_and_a_row_per_period_matching_the_json(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client)
    await store(conn, site, january_with_holes())
    params = {"from": "2025-12", "to": "2026-01"}
    as_json = await get_reports(client, site, **params)
    by_param = await client.get(f"/v1/sites/{site}/reports", params={**params, "format": "csv"})
    by_accept = await client.get(
        f"/v1/sites/{site}/reports", params=params, headers={"Accept": "text/csv"}
    )
    for response in (by_param, by_accept):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="site-{site}-month-2025-12-2026-01.csv"'
        )
    assert by_param.content == by_accept.content
    rows = list(csv.DictReader(io.StringIO(by_param.content.decode("utf-8"))))
    assert list(rows[0]) == [
        "site_id", "period_start", "period_end", "closed", "total_kg", "t_co2e", "gwp_version",
        "gwp_factor", "limit_kg", "percent_of_limit", "peak_hour", "peak_hour_kg", "readings",
        "interval_s", "windows_expected", "windows_received", "completeness_ratio", "gap_count",
        "longest_gap_h", "gaps", "restatements", "last_restated_at",
    ]  # fmt: skip
    assert len(rows) == 2
    for row, report in zip(rows, as_json["reports"], strict=True):
        done = report["completeness"]
        assert row["site_id"] == str(site)
        assert (row["period_start"], row["period_end"]) == (
            report["period_start"],
            report["period_end"],
        )
        assert row["closed"] == "true"
        assert float(row["total_kg"]) == report["total_kg"]
        assert float(row["t_co2e"]) == report["t_co2e"]
        assert (row["gwp_version"], float(row["gwp_factor"])) == ("AR6-fossil", 29.8)
        assert float(row["limit_kg"]) == report["limit_kg"]
        assert float(row["percent_of_limit"]) == report["percent_of_limit"]
        assert row["peak_hour"] == report["peak_hour"]["hour"]
        assert float(row["peak_hour_kg"]) == report["peak_hour"]["total_kg"]
        assert int(row["readings"]) == report["readings"]
        assert int(row["interval_s"]) == done["interval_s"]
        assert int(row["windows_expected"]) == done["windows_expected"]
        assert int(row["windows_received"]) == done["windows_received"]
        assert float(row["completeness_ratio"]) == done["ratio"]
        assert int(row["gap_count"]) == len(report["gaps"])
        assert row["restatements"] == "0"
        assert row["last_restated_at"] == ""
    jan = rows[1]
    assert float(jan["longest_gap_h"]) == 24.0
    assert jan["gaps"].split(";") == [
        f"{s}/{e}" for s, e, _ in expected_gaps(LEADING, DAY, HOUR, TRAILING)
    ]
    assert (rows[0]["gap_count"], rows[0]["longest_gap_h"], rows[0]["gaps"]) == ("0", "0.0", "")


async def test_gaps_beyond_500_are_cut_from_the_list_but_counted_in_the_csv(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client, interval_s=60)
    minute = timedelta(minutes=1)
    await store(conn, site, {ts: 1.0 for ts in windows(at(2, 0), at(3, 0), 2 * minute)})
    params = {"from": "2026-01", "to": "2026-01", "min_gap_h": "0.01"}
    (jan,) = (await get_reports(client, site, **params))["reports"]
    assert jan["gaps_truncated"] is True
    assert len(jan["gaps"]) == 500
    assert jan["gaps"][0] == {"start": z(at(2, 0, 1)), "end": z(at(2, 0, 2)), "missing_windows": 1}
    assert jan["completeness"]["windows_received"] == 720
    assert jan["completeness"]["windows_expected"] == 30 * 1440
    response = await client.get(f"/v1/sites/{site}/reports", params={**params, "format": "csv"})
    (row,) = csv.DictReader(io.StringIO(response.text))
    assert row["gap_count"] == "720"  # 719 single minutes, then the rest of the month
    assert float(row["longest_gap_h"]) == (30 * 1440 - 2 * 719 - 1) / 60
    assert len(row["gaps"].split(";")) == 500


async def test_restatements_count_the_rows_of_the_periods_months(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await new_site(client)
    other = await new_site(client)
    rows = [
        (site, "2026-01-01", "2026-02-10T09:00:00Z"),
        (site, "2026-01-01", "2026-03-05T12:30:00Z"),
        (site, "2026-03-01", "2026-04-02T00:00:00Z"),
        (site, "2025-12-01", "2026-01-03T00:00:00Z"),
        (other, "2026-02-01", "2026-03-09T00:00:00Z"),
    ]
    await conn.executemany(
        "INSERT INTO report_restatements (site_id, month, restated_at, delta_kg, delta_readings)"
        " VALUES ($1, $2::text::date, $3::text::timestamptz, 1.5, 1)",
        rows,
    )
    months = await get_reports(client, site, **{"from": "2026-01", "to": "2026-03"})
    assert [(r["restatements"], r["last_restated_at"]) for r in months["reports"]] == [
        (2, "2026-03-05T12:30:00Z"),
        (0, None),
        (1, "2026-04-02T00:00:00Z"),
    ]
    years = await get_reports(client, site, period="year", **{"from": "2025", "to": "2026"})
    assert [(r["restatements"], r["last_restated_at"]) for r in years["reports"]] == [
        (1, "2026-01-03T00:00:00Z"),
        (3, "2026-04-02T00:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"period": "week"}, "query:period"),
        ({"period": ""}, "query:period"),
        ({"from": "2026-13"}, "query:from"),
        ({"from": "2026-1"}, "query:from"),
        ({"from": "2026-00"}, "query:from"),
        ({"from": "٢٠٢٦-01"}, "query:from"),  # Arabic-Indic digits are not YYYY
        ({"to": "1969-12"}, "query:to"),
        ({"min_gap_h": "0"}, "query:min_gap_h"),
        ({"min_gap_h": "-1"}, "query:min_gap_h"),
        ({"min_gap_h": "abc"}, "query:min_gap_h"),
        ({"min_gap_h": "nan"}, "query:min_gap_h"),
        ({"min_gap_h": "1e9"}, "query:min_gap_h"),
        ({"format": "xml"}, "query:format"),
    ],
)
async def test_a_bad_query_is_422_with_a_pointer_and_changes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, params: dict[str, str], pointer: str
) -> None:
    site = await new_site(client)
    before = await table_counts(conn)
    response = await client.get(f"/v1/sites/{site}/reports", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["status"] == 422
    assert [f"{e['in']}:{e['name']}" for e in problem["errors"]] == [pointer]
    assert await table_counts(conn) == before


async def test_every_bad_parameter_is_named_at_once(client: httpx.AsyncClient) -> None:
    site = await new_site(client)
    params = {"from": "x", "to": "2026-99", "min_gap_h": "0", "format": "pdf"}
    response = await client.get(f"/v1/sites/{site}/reports", params=params)
    assert response.status_code == 422
    pointers = [f"{e['in']}:{e['name']}" for e in response.json()["errors"]]
    assert pointers == ["query:from", "query:to", "query:min_gap_h", "query:format"]


async def test_36_periods_are_allowed(client: httpx.AsyncClient) -> None:
    site = await new_site(client)
    body = await get_reports(client, site, **{"from": "2024-01", "to": "2026-12"})
    assert len(body["reports"]) == 36
    assert body["reports"][-1]["period_end"] == "2027-01-01T00:00:00Z"
    assert body["reports"][-1]["closed"] is False


async def test_more_than_36_periods_are_cut_to_the_first_36_and_say_so(
    client: httpx.AsyncClient,
) -> None:
    site = await new_site(client)
    body = await get_reports(client, site, **{"from": "2023-01", "to": "2026-01"})
    assert (len(body["reports"]), body["truncated"]) == (36, True)
    assert body["reports"][-1]["period_start"] == "2025-12-01T00:00:00Z"
    years = await get_reports(client, site, period="year", **{"from": "1990", "to": "2026"})
    assert (len(years["reports"]), years["truncated"]) == (36, True)
    csv = await client.get(
        f"/v1/sites/{site}/reports", params={"from": "2023-01", "to": "2026-01", "format": "csv"}
    )
    assert csv.headers["x-truncated"] == "true"
    assert "site-" + str(site) + "-month-2023-01-2025-12.csv" in csv.headers["content-disposition"]
    assert (await get_reports(client, site))["truncated"] is False


async def test_to_before_from_is_no_periods(client: httpx.AsyncClient) -> None:
    site = await new_site(client)
    body = await get_reports(client, site, **{"from": "2026-03", "to": "2026-02"})
    assert (body["reports"], body["truncated"]) == ([], False)
    csv = await client.get(
        f"/v1/sites/{site}/reports", params={"from": "2026-03", "to": "2026-02", "format": "csv"}
    )
    assert csv.status_code == 200
    assert len(csv.text.strip().splitlines()) == 1  # the header row only


async def test_a_year_in_a_month_report_is_its_months_and_a_month_in_a_year_report_its_year(
    client: httpx.AsyncClient,
) -> None:
    site = await new_site(client)
    months = await get_reports(client, site, **{"from": "2025", "to": "2025"})
    assert [r["period_start"][:7] for r in months["reports"]] == [
        f"2025-{m:02d}" for m in range(1, 13)
    ]
    years = await get_reports(client, site, period="year", **{"from": "2024-06", "to": "2025-02"})
    assert [r["period_start"][:4] for r in years["reports"]] == ["2024", "2025"]


async def test_unknown_site_is_404(client: httpx.AsyncClient) -> None:
    for site in (999_999, 2**63):
        response = await client.get(f"/v1/sites/{site}/reports")
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/site-not-found"


async def test_reports_are_open_in_development_and_need_a_token_in_production(
    anon_client: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    site = await new_site(client)
    assert (await anon_client.get(f"/v1/sites/{site}/reports")).status_code == 200
    prod = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        environment="production",
        admin_tokens="ops:prod-token-0123456789abcdef0123456789",
    )
    async with RunningApi(prod) as api, httpx.AsyncClient(base_url=api.url) as http:
        path = f"/v1/sites/{site}/reports?format=csv"
        denied = await http.get(path)
        assert denied.status_code == 401
        assert denied.json()["type"] == "/problems/unauthorized"
        assert (
            await http.get(path, headers={"Authorization": "Bearer dev-admin-token"})
        ).status_code == 401
        allowed = await http.get(
            path, headers={"Authorization": "Bearer prod-token-0123456789abcdef0123456789"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["content-type"] == "text/csv; charset=utf-8"
