"""The report page of a site: months with totals against the pro-rata limit, completeness of
the hourly windows, the gaps of a month with missing hours, restatements when late data lands
in a closed month, years, and the CSV download, also when reads need a token."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.e2e.conftest import LAPTOP, PHONE, PRODUCTION_TOKEN, shoot
from tests.e2e.stack import Seeder, now
from tests.e2e.test_co2e import tonnes
from tests.harness.processes import ApiProcess

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def add_months(d: datetime, n: int) -> datetime:
    years, month = divmod(d.month - 1 + n, 12)
    return datetime(d.year + years, month + 1, 1, tzinfo=UTC)


def name(d: datetime) -> str:
    return f"{d.year}-{d.month:02d}"


def kg(value: float) -> str:
    """The dashboard's kg CH4 format (kg below a tonne, then t). Rounding ties differ (Intl
    rounds the shortest decimal, Python the binary value): the test data avoids them."""
    unit = " kg"
    if abs(value) >= 1000:
        value, unit = value / 1000, " t"
    a = abs(value)
    digits = 3 if a < 10 else 2 if a < 100 else 1 if a < 1000 else 0
    text = f"{value:,.{digits}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + unit


def utc_minutes(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


async def reports(http: httpx.AsyncClient, sid: int, **params: str) -> dict[str, Any]:
    response = await http.get(f"/v1/sites/{sid}/reports", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_report_page_shows_months_completeness_gaps_restatements_and_csv(
    page: Page, stack: ApiProcess, seed: Seeder, http: httpx.AsyncClient
) -> None:
    site = await seed.site("Report Basin 11", 12_000, reporting_interval_s=3600)
    sid = site["id"]
    t = now()
    this_month = datetime(t.year, t.month, 1, tzinfo=UTC)
    first, gappy = add_months(this_month, -3), add_months(this_month, -2)
    end = t.replace(minute=0, second=0, microsecond=0)  # the window under way is not due yet
    peak = first + timedelta(days=14, hours=8)
    missing = {gappy + timedelta(days=9, hours=h) for h in range(6)}  # 6 h on the 10th
    late = {gappy + timedelta(days=19, hours=12 + h) for h in range(2)}  # 2 h, sent late
    hours = [first + timedelta(hours=i) for i in range(int((end - first) / timedelta(hours=1)))]
    readings = [
        {"ts": h.isoformat(), "methane_kg": 9.0 if h == peak else 1.0}
        for h in hours
        if h not in missing and h not in late
    ]
    await seed.send(sid, readings, device_id="basin-11")
    await seed.wait_applied(sid, len(readings), timeout=30)
    q = {"period": "month", "from": name(first), "to": name(this_month)}
    before = (await reports(http, sid, **q))["reports"][1]
    assert before["restatements"] >= 1  # the month was already closed when its data came
    assert len(before["gaps"]) == 2

    # The two late hours land in the closed month: a restatement, and one gap fewer.
    await seed.send(sid, [{"ts": h.isoformat(), "methane_kg": 1.0} for h in sorted(late)])
    await seed.wait_applied(sid, len(readings) + 2)
    body = await reports(http, sid, **q)
    a, b = body["reports"][0], body["reports"][1]
    assert b["restatements"] == before["restatements"] + 1
    assert [g["missing_windows"] for g in b["gaps"]] == [6]
    assert a["completeness"]["ratio"] == 1.0 and a["gaps"] == []
    assert a["peak_hour"]["total_kg"] == 9.0

    await page.goto(f"{stack.url}/#/sites/{sid}")
    await page.get_by_role("link", name="Reports").click()
    await expect(page).to_have_url(f"{stack.url}/#/sites/{sid}/report")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reports · Report Basin 11")
    rows = page.locator("table.report-table tr.period-row")
    await expect(rows).to_have_count(6)  # the last six months by default

    # Pick the range: the first month with readings up to this one.
    await page.get_by_label("From").fill(name(first))
    await page.get_by_label("To").fill(name(this_month))
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(
        f"{stack.url}/#/sites/{sid}/report?period=month&from={name(first)}&to={name(this_month)}"
    )
    await expect(rows).to_have_count(4)
    row_a = rows.filter(has_text=f"{MONTHS[first.month - 1]} {first.year}")
    row_b = rows.filter(has_text=f"{MONTHS[gappy.month - 1]} {gappy.year}")
    row_now = rows.filter(has_text=f"{MONTHS[t.month - 1]} {t.year}")
    await expect(row_a.locator(".total")).to_have_text(kg(a["total_kg"]))
    await expect(row_a.locator(".limit-kg")).to_have_text(kg(a["limit_kg"]))
    await expect(row_a.locator(".completeness .limit-text")).to_have_text("100%")
    await expect(row_a.locator(".gaps-cell")).to_have_text("None")
    await expect(row_a.locator(".peak")).to_contain_text(f"{utc_minutes(a['peak_hour']['hour'])}")
    await expect(row_a.locator(".state")).to_contain_text("Closed")
    await expect(row_now.locator(".state")).to_contain_text("Open")
    await expect(row_now.locator(".state")).not_to_contain_text("Restated")

    ratio = b["completeness"]["ratio"] * 100
    await expect(row_b.locator(".completeness .limit-text")).to_have_text(f"{ratio:.1f}%")
    await expect(row_b.get_by_role("meter")).to_have_attribute(
        "aria-label",
        f"Completeness: {b['completeness']['windows_received']:,} of "
        f"{b['completeness']['windows_expected']:,} windows",
    )
    n = b["restatements"]
    await expect(row_b.locator(".state .badge-warning")).to_have_text(
        f"Restated ×{n}" if n > 1 else "Restated"
    )
    await expect(row_b.locator(".restated-at")).to_have_text(
        f"last restated {utc_minutes(b['last_restated_at'])}"
    )

    # The gap list opens under the month.
    toggle = row_b.get_by_role("button", name="1 gap")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    gap_list = page.locator("tr.gap-row:visible")
    await expect(gap_list).to_have_count(0)
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    (gap,) = b["gaps"]
    await expect(gap_list).to_contain_text(
        f"{utc_minutes(gap['start'])[:-4]} → {utc_minutes(gap['end'])}"
        " · 6 missing windows of 1 h (6 h)"
    )
    await shoot(page, "08-report")
    await page.emulate_media(color_scheme="dark")
    await shoot(page, "08-report-dark", full_page=False)
    await page.emulate_media(color_scheme="light")
    await page.set_viewport_size(PHONE)
    await shoot(page, "08-report-phone")
    await page.set_viewport_size(LAPTOP)

    # The CSV: the same URL with format=csv, saved from the page.
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download CSV").click()
    download = await info.value
    assert download.suggested_filename == (f"site-{sid}-month-{name(first)}-{name(this_month)}.csv")
    saved = csv_rows(Path(await download.path()).read_text())
    api_csv = await http.get(f"/v1/sites/{sid}/reports", params={**q, "format": "csv"})
    expected = csv_rows(api_csv.text)
    assert saved[0] == expected[0] and len(saved) == 5
    assert saved[1:3] == expected[1:3]  # closed months: final figures

    # In t CO2e: the API's t_co2e per month, with the factor stated.
    await page.get_by_role("switch", name="Show t CO₂e").check()
    await expect(row_a.locator(".total")).to_have_text(tonnes(a["t_co2e"]))
    await expect(page.locator(".gwp-note")).to_contain_text("GWP100 AR6 fossil = 29.8")
    await page.get_by_role("switch", name="Show t CO₂e").uncheck()
    await expect(row_a.locator(".total")).to_have_text(kg(a["total_kg"]))

    # Years: this year's report (the months above add up to it when they are all this year).
    await page.get_by_role("radio", name="Years").check()
    await expect(page).to_have_url(re.compile(r"period=year"))
    await expect(rows).to_have_count(2)
    year = await reports(http, sid, period="year")
    await expect(rows.filter(has_text=str(t.year)).locator(".total")).to_have_text(
        kg(year["reports"][0]["total_kg"])
    )


async def test_csv_download_sends_the_token_when_reads_need_one(
    page: Page, production_api: ApiProcess, seed: Seeder
) -> None:
    site = await seed.site("Token Report Pad", 5_000)
    sid = site["id"]
    end = now().replace(minute=0, second=0, microsecond=0)
    await seed.send(
        sid,
        [{"ts": (end - timedelta(hours=h)).isoformat(), "methane_kg": 2.0} for h in range(1, 5)],
    )
    await seed.wait_applied(sid, 4)
    await page.goto(f"{production_api.url}/#/sites/{sid}/report")
    await page.locator("#banner").get_by_role("button", name="Enter a token…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Token", exact=True).fill(PRODUCTION_TOKEN)
    await dialog.get_by_role("button", name="Continue").click()
    await expect(dialog.locator("#token-role")).to_have_text("‘ops’ has the admin role.")
    await dialog.get_by_role("button", name="Done").click()
    await expect(page.locator("table.report-table tr.period-row")).to_have_count(6)

    # A plain link would get a 401: the page fetches with the token and saves the Blob.
    csv_url = page.get_by_role("link", name="Download CSV")
    href = await csv_url.get_attribute("href")
    assert href is not None
    async with httpx.AsyncClient(base_url=production_api.url) as client:
        assert (await client.get(href)).status_code == 401
        expected = await client.get(href, headers={"Authorization": f"Bearer {PRODUCTION_TOKEN}"})
    async with page.expect_download() as info:
        await csv_url.click()
    saved = csv_rows(Path(await (await info.value).path()).read_text())
    rows = csv_rows(expected.text)
    assert saved[0] == rows[0] and len(saved) == len(rows) == 7
    # total_kg per period: the 8 kg sent (4 hours before now, in this month or, early in a
    # month, partly in the last one) and the same in the file saved as in the one fetched.
    assert [r[4] for r in saved[1:]] == [r[4] for r in rows[1:]]
    assert sum(float(r[4]) for r in rows[1:]) == 8.0
