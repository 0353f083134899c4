"""Sites list and site page, on seeded sites, in a real browser."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import asyncpg
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import LAPTOP, PHONE, shoot
from tests.e2e.stack import Seeder
from tests.harness.processes import ApiProcess

STATUS_TEXT = {"ok": "OK", "warning": "Warning", "exceeded": "Exceeded"}


def row(page: Page, name: str) -> Any:
    return page.locator("table.sites-table tbody tr").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )


async def test_sites_page_lists_seeded_sites_with_status_limit_and_freshness(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    await page.goto(f"{stack.url}/")
    await expect(page).to_have_url(f"{stack.url}/#/sites")
    await expect(page.get_by_role("heading", name="Sites", level=1)).to_be_visible()
    for name, site in fleet.items():
        await expect(row(page, name)).to_have_count(1)
        await expect(row(page, name).locator(".badge").first).to_have_text(
            STATUS_TEXT[site["status"]]
        )
    # What the seed is built to show: every status, a stale site, a site without readings.
    statuses = {name: site["status"] for name, site in fleet.items()}
    assert statuses["Bravo Compressor Station"] == "warning"
    assert statuses["Eagle Ford Well Pad 3"] == "exceeded"
    assert statuses["Permian Pad 14"] == "ok"
    bravo = row(page, "Bravo Compressor Station")
    # Units: ≥ 1000 kg is shown in tonnes, with the limit beside the year to date.
    await expect(bravo.locator(".lifetime")).to_have_text(
        _tonnes(fleet["Bravo Compressor Station"])
    )
    await expect(bravo.locator(".limit-text")).to_contain_text("/ 40 t")
    await expect(bravo.get_by_role("meter")).to_have_attribute(
        "aria-valuenow", str(round(fleet["Bravo Compressor Station"]["percent_of_limit"]))
    )
    stale = row(page, "Delaware Basin Pad 7")
    await expect(stale).to_have_class("row-stale")
    await expect(stale.locator(".tag-stale")).to_be_visible()
    await expect(row(page, "Permian Pad 14").locator(".tag-stale")).to_be_hidden()
    await expect(row(page, "Haynesville Pad 2").locator("time")).to_have_text("no readings")
    await expect(page.locator("[data-tile='Exceeded'] .tile-value")).not_to_have_text("0")
    await shoot(page, "01-sites")

    # Sorted by lifetime, largest first, with a click on the column header (a real button).
    await page.get_by_role("button", name="Lifetime").click()
    await expect(page.locator("th[aria-sort='descending']")).to_have_text("Lifetime▼")
    shown = await page.locator("table.sites-table tbody tr .site-name a").all_inner_texts()
    by_lifetime = sorted(fleet.values(), key=lambda s: (-s["lifetime_kg"], s["id"]))
    # Other tests' sites may be listed too; the seeded ones keep their relative order.
    assert [n for n in shown if n in fleet] == [s["name"] for s in by_lifetime]

    # Filtered by name, then by status.
    await page.get_by_label("Filter", exact=True).fill("bravo")
    await expect(page.locator("table.sites-table tbody tr")).to_have_count(1)
    await page.get_by_label("Filter", exact=True).fill("")
    await page.get_by_label("Status", exact=True).select_option("exceeded")
    rows = page.locator("table.sites-table tbody tr")
    await expect(rows.first).to_be_visible()
    for status in await rows.evaluate_all("rows => rows.map(r => r.dataset.status)"):
        assert status == "exceeded"
    await page.get_by_label("Status", exact=True).select_option("stale")
    await expect(row(page, "Delaware Basin Pad 7")).to_have_count(1)
    await expect(row(page, "Permian Pad 14")).to_have_count(0)
    await page.get_by_label("Status", exact=True).select_option("all")

    await page.set_viewport_size(PHONE)
    await expect(row(page, "Permian Pad 14")).to_be_visible()
    await shoot(page, "01-sites-phone")
    await page.set_viewport_size(LAPTOP)
    await page.emulate_media(color_scheme="dark")
    await shoot(page, "01-sites-dark", full_page=False)


async def test_site_page_shows_chart_with_limit_line_and_recent_batches(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    site = fleet["Bravo Compressor Station"]
    await page.goto(f"{stack.url}/#/sites")
    await page.get_by_role("link", name="Bravo Compressor Station", exact=True).click()
    await expect(page).to_have_url(f"{stack.url}/#/sites/{site['id']}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bravo Compressor Station")
    await expect(page.locator(".head-badge")).to_have_text("Warning")

    chart = page.locator("#site-chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(chart).to_have_attribute("data-mode", "rate")
    assert 22 <= int(await chart.get_attribute("data-points") or 0) <= 25  # 24 h, hourly
    await expect(page.locator(".chart-note")).to_contain_text("limit pace")
    await expect(page.locator(".chart-note")).to_contain_text("/h")

    # The newest batches first: four hourly readings each, from the site's device.
    batches = page.locator("table.batches-table tbody tr")
    await expect(batches.nth(6)).to_be_visible()
    await expect(batches.first.locator(".state")).to_have_text("Applied")
    await expect(batches.first.locator(".dev")).to_have_text(f"sensor-{site['id']}-a")
    await expect(batches.first.locator(".acc")).to_have_text("4")

    await page.get_by_role("radio", name="7 d").check()
    await expect(chart).to_have_attribute("data-points", re.compile(r"^16[6-9]$"))
    await shoot(page, "02-site-detail")
    await page.get_by_role("radio", name="Year").check()
    await expect(chart).to_have_attribute("data-mode", "cumulative")
    await expect(page.locator(".chart-note")).to_contain_text("annual limit (40 t)")
    await shoot(page, "02-site-detail-year")


async def test_keyboard_reaches_every_page_and_focus_follows_the_page(
    page: Page, stack: ApiProcess
) -> None:
    await page.goto(f"{stack.url}/#/sites")
    await expect(page.get_by_role("heading", name="Sites", level=1)).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for name in ["Sites", "Alerts", "Queue"]:
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name=re.compile(f"^{name}"))).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{stack.url}/#/queue")
    await expect(page.get_by_role("link", name="Queue", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    # The new page's heading takes the focus, so a screen reader announces where we are.
    await expect(page.get_by_role("heading", name="Queue", level=1)).to_be_focused()


def _tonnes(site: dict[str, Any]) -> str:
    t = site["lifetime_kg"] / 1000
    return f"{t:.3f}".rstrip("0").rstrip(".") + " t CH₄"


async def test_a_site_gone_quiet_has_a_stale_alert_in_words(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    site = fleet["Delaware Basin Pad 7"]  # its newest reading is three days old
    last = datetime.fromisoformat(site["last_reading_at"].replace("Z", "+00:00"))
    await page.goto(f"{stack.url}/#/alerts?site={site['id']}")
    item = page.locator("#alert-list > li").filter(
        has_text=f"No reading since {last.strftime('%Y-%m-%d %H:%M')} UTC"
    )
    # The worker checks for quiet sites once a minute (at :30), so this may take that long.
    await expect(item).to_have_count(1, timeout=70_000)
    await expect(item.locator(".badge")).to_have_text("Stale")
    await expect(item.locator(".alert-detail")).to_contain_text("Quiet for more than 6")
    await expect(item.locator(".alert-site")).to_have_text("Delaware Basin Pad 7")


async def test_unknown_site_says_not_found_and_shows_no_figures(
    page: Page, stack: ApiProcess
) -> None:
    await page.goto(f"{stack.url}/#/sites/987654321")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Site not found")
    await expect(page.locator(".page-head")).to_contain_text("No site has id 987654321")
    # Nothing that would read as a quiet, healthy site: no tiles, no chart, no "no alerts".
    await expect(page.locator(".site-content")).to_be_hidden()
    await expect(page.get_by_text("No open alerts")).to_be_hidden()
    await expect(page.locator(".tag-stale")).to_be_hidden()
    await shoot(page, "02-site-not-found")


async def test_a_site_with_dead_work_shows_it_on_the_list_and_its_page(
    page: Page, stack: ApiProcess, seed: Any, db: asyncpg.Connection
) -> None:
    site = await seed.site("Dead Letter Pad 9", 5000)
    await db.execute(
        "INSERT INTO outbox (event_type, site_id, payload, attempts, last_error, dead_at)"
        " VALUES ('measurements.accepted', $1, '{}', 2, 'boom', now())",
        site["id"],
    )
    await page.goto(f"{stack.url}/#/sites?status=dead")
    badge = row(page, "Dead Letter Pad 9").locator(".dead-badge")
    await expect(badge).to_have_text("1 dead event")
    await expect(badge).to_have_attribute("href", f"#/queue?site={site['id']}&status=dead")
    await expect(page.get_by_label("Status", exact=True)).to_have_value("dead")
    await expect(row(page, "Permian Pad 14")).to_have_count(0)
    await shoot(page, "01-sites-dead")

    await page.goto(f"{stack.url}/#/sites/{site['id']}")
    banner = page.locator(".dead-banner")
    await expect(banner).to_contain_text("1 dead event for this site.")
    await expect(banner.get_by_role("link")).to_have_attribute(
        "href", f"#/queue?site={site['id']}&status=dead"
    )
    await shoot(page, "02-site-dead-banner", full_page=False)


async def test_sites_filter_and_sort_and_the_chart_range_live_in_the_url(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    await page.goto(f"{stack.url}/#/sites")
    await page.get_by_label("Filter", exact=True).fill("pad")
    await page.get_by_role("button", name="Lifetime").click()
    await expect(page).to_have_url(f"{stack.url}/#/sites?q=pad&sort=lifetime&dir=desc")
    # A shared link opens the same view.
    other = await page.context.new_page()
    await other.goto(f"{stack.url}/#/sites?q=bravo&status=warning")
    await expect(other.get_by_label("Filter", exact=True)).to_have_value("bravo")
    await expect(other.locator("table.sites-table tbody tr")).to_have_count(1)
    await other.close()

    site = fleet["Bravo Compressor Station"]
    await page.goto(f"{stack.url}/#/sites/{site['id']}?range=7d")
    await expect(page.get_by_role("radio", name="7 d")).to_be_checked()
    await page.get_by_role("radio", name="30 d").check()
    await expect(page).to_have_url(f"{stack.url}/#/sites/{site['id']}?range=30d")


async def test_site_page_projects_the_year_end_and_times_follow_the_zone_switch(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    site = fleet["Bravo Compressor Station"]  # 84 % of its limit so far
    await page.goto(f"{stack.url}/#/sites/{site['id']}")
    tile = page.locator("[data-tile='Projected year end']")
    await expect(tile.locator(".tile-value")).to_contain_text("t CH₄")
    # Whether 84 % so far reaches the limit by 31 December depends on today's date.
    expected = (
        "stays under the limit at this pace"
        if site["projected_exceedance_at"] is None
        else re.compile(r"^exceeds the limit \d{4}-\d\d-\d\d \d\d:\d\d UTC$")
    )
    await expect(tile.locator(".tile-sub")).to_have_text(expected)
    assert "average pace" in (await tile.get_attribute("title") or "")
    await expect(page.locator("[data-tile='Last reading'] .tile-sub")).to_contain_text("UTC")

    zone = page.get_by_label("Times", exact=True)
    await zone.select_option("local")
    # The test browser runs in UTC unless told otherwise; the label then names its zone.
    await expect(page.locator("#footer-zone")).to_contain_text("Times in")
    await zone.select_option("utc")
    await expect(page.locator("#footer-zone")).to_have_text("All times UTC")
    assert await page.evaluate("localStorage.getItem('emissions.zone')") == "utc"


async def test_phone_limit_meter_has_height_and_a_name_before_data(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    site = fleet["Permian Pad 14"]
    await page.set_viewport_size(PHONE)
    await page.route("**/v1/sites/*", lambda route: None)  # never answers: stays loading
    await page.goto(f"{stack.url}/#/sites/{site['id']}")
    meter = page.get_by_role("meter")
    await expect(meter).to_have_attribute("aria-valuenow", "0")
    await expect(meter).to_have_attribute("aria-label", re.compile("loading"))
    await expect(page.locator(".tag-stale")).to_be_hidden()
    box = await meter.bounding_box()
    assert box is not None
    assert box["height"] >= 8


async def test_times_and_chart_ticks_follow_the_browser_and_the_site_zone(
    browser: Browser, stack: ApiProcess, seed: Seeder, fleet: dict[str, dict[str, Any]]
) -> None:
    """Local time is the browser's zone (here Asia/Kolkata, UTC+5:30, so a half-hour offset
    shows); the site's zone is the IANA zone its metadata names. The charts' time ticks are
    drawn on a canvas, so the test reads the calendar fields the tick labels are made of."""
    response = await seed.client.post(
        "/v1/sites",
        json={
            "name": "Zoned Terminal (e2e)",
            "emission_limit_kg": 1000,
            "metadata": {"timezone": "America/Chicago"},
        },
        headers=seed.admin,
    )
    assert response.status_code == 201, response.text
    zoned = response.json()
    ctx = await browser.new_context(viewport=LAPTOP, locale="en-US", timezone_id="Asia/Kolkata")
    page = await ctx.new_page()
    probe = (
        "import('/static/js/format.js').then((f) => {"
        " const d = new Date('2026-01-15T12:00:00Z');"
        " const t = f.timeParts(d); return `${f.zoneLabel(d)} ${t.hour}:${t.minute}`; })"
    )
    try:
        await page.goto(f"{stack.url}/#/sites/{fleet['Bravo Compressor Station']['id']}")
        await expect(page.locator("#main h1")).to_contain_text("Bravo")
        assert await page.evaluate(probe) == "UTC 12:0"
        await page.get_by_label("Times", exact=True).select_option("local")
        await expect(page.locator("[data-tile='Last reading'] .tile-sub")).to_contain_text(
            "GMT+5:30"
        )
        assert await page.evaluate(probe) == "GMT+5:30 17:30"

        await page.goto(f"{stack.url}/#/sites/{zoned['id']}")
        await expect(page.locator("#main h1")).to_contain_text("Zoned Terminal")
        await page.get_by_label("Times", exact=True).select_option("site")
        await expect(page.locator("#footer-zone")).to_contain_text("site's zone")
        # The page learns the site's zone from its first answer after the switch remounts it.
        seen = ""
        for _ in range(50):
            seen = await page.evaluate(probe)
            if seen == "CST 6:0":
                break
            await page.wait_for_timeout(200)
        assert seen == "CST 6:0"
    finally:
        await ctx.close()
