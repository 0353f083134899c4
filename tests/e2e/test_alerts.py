"""Alerts page: a site with a low limit gets readings from its device, the worker raises a
threshold alert and a leak alert, the page says so in words, and an operator acknowledges
them from the page (admin token) and from the site page; the API then has them acknowledged."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, LAPTOP, PHONE, shoot
from tests.e2e.stack import Seeder, now
from tests.harness.processes import ApiProcess, wait_for


async def site_alerts(http: httpx.AsyncClient, site_id: int, status: str) -> list[dict[str, Any]]:
    response = await http.get("/v1/alerts", params={"status": status, "site_id": site_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def badge_shows_open_count(page: Page, http: httpx.AsyncClient) -> int:
    """Until the nav badge shows the API's open count (other sites may raise alerts meanwhile)."""
    shown = {"n": 0}

    async def same() -> bool:
        items = (await http.get("/v1/alerts", params={"limit": 100})).json()["items"]
        shown["n"] = len(items)
        return await page.locator("#alert-count").inner_text() == str(len(items))

    await wait_for(same, timeout=10, message="the nav badge never showed the open alert count")
    return shown["n"]


async def test_threshold_and_leak_alerts_are_listed_in_words_and_acknowledged_from_the_page(
    page: Page, stack: ApiProcess, seed: Seeder, http: httpx.AsyncClient
) -> None:
    site = await seed.site("Alert Ridge Pad 5", 100)  # kg CH4 a year: a few readings cross it
    sid = site["id"]
    base = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    windows = [base + timedelta(minutes=15 * i) for i in range(8)]
    # 7 quarter-hour windows of 12 kg (48 kg/h): 84 kg, past 80 % of the limit, no leak.
    await seed.send(
        sid, [{"ts": t.isoformat(), "methane_kg": 12.0} for t in windows[:7]], device_id="ridge-1"
    )
    await seed.wait_applied(sid, 7)
    # Then 35 kg in one quarter hour: 140 kg/h, above the 100 kg/h leak threshold; 119 kg.
    await seed.send(sid, [{"ts": windows[7].isoformat(), "methane_kg": 35.0}], device_id="ridge-1")
    leak_hour = windows[7].strftime("%H:00")
    year = base.year

    async def three_alerts() -> bool:
        return len(await site_alerts(http, sid, "open")) == 3

    await wait_for(three_alerts, timeout=15, message="the worker never raised the three alerts")

    await page.goto(f"{stack.url}/#/alerts")
    await expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    # The nav link carries the open count (every open alert, other sites' too).
    open_total = await badge_shows_open_count(page, http)
    assert open_total >= 3
    await expect(page.get_by_role("link", name=re.compile(r"^Alerts, \d+ open$"))).to_be_visible()
    await expect(page.get_by_role("tab", name="Open")).to_have_attribute("aria-selected", "true")

    items = page.locator("#alert-list > li").filter(has_text="Alert Ridge Pad 5")
    await expect(items).to_have_count(3)
    threshold_80 = items.filter(has_text=f"Alert Ridge Pad 5 passed 80 % of its {year} limit")
    threshold_100 = items.filter(
        has_text=f"Alert Ridge Pad 5 passed 100 % of its {year} limit: limit exceeded"
    )
    leak = items.filter(has_text=f"Leak: 140 kg/h in hour {leak_hour}")
    await expect(threshold_80).to_have_count(1)
    await expect(threshold_80.locator(".alert-detail")).to_have_text(
        f"84 kg of 100 kg CH₄ in {year} when raised"
    )
    await expect(threshold_100).to_have_count(1)
    await expect(leak).to_have_count(1)
    await expect(leak.locator(".badge")).to_have_text("Leak")
    await expect(leak.locator(".alert-detail")).to_contain_text("above the 100 kg/h leak threshold")
    # Newest first: the leak and the 100 % crossing came with the second batch.
    assert "passed 80 %" in (await items.last.inner_text())
    await shoot(page, "07-alerts")
    await page.set_viewport_size(PHONE)
    await shoot(page, "07-alerts-phone")
    await page.set_viewport_size(LAPTOP)

    # Acknowledge the leak: the page asks for the admin token (none yet in this tab).
    await leak.get_by_role("button", name="Acknowledge").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading")).to_have_text("Acknowledge alert")
    await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
    await dialog.get_by_role("button", name="Continue").click()
    await expect(page.locator(".notice-ok")).to_contain_text("acknowledged: Acknowledged by dev")
    await expect(leak).to_have_count(0)
    await badge_shows_open_count(page, http)
    acked = await site_alerts(http, sid, "acknowledged")
    assert [(a["kind"], a["acknowledged_by"]) for a in acked] == [("leak", "dev")]

    # It is under Acknowledged now, with who acknowledged it.
    await page.get_by_role("tab", name="Acknowledged").click()
    await expect(page).to_have_url(f"{stack.url}/#/alerts?status=acknowledged")
    done = page.locator("#alert-list > li").filter(has_text=f"Leak: 140 kg/h in hour {leak_hour}")
    await expect(done.filter(has_text="Alert Ridge Pad 5")).to_have_count(1)
    await expect(done.filter(has_text="Alert Ridge Pad 5").locator(".ack-text")).to_contain_text(
        "Acknowledged by dev at"
    )
    await expect(done.get_by_role("button", name="Acknowledge")).to_have_count(0)

    # The site page lists the site's two open alerts; acknowledging there needs no new prompt.
    await page.goto(f"{stack.url}/#/sites/{sid}")
    card = page.locator("#site-alerts-card")
    await expect(card.get_by_role("heading", name="Open alerts")).to_be_visible()
    await card.locator("summary").click()  # collapsed, so the chart stays above the fold
    await expect(card.locator("li")).to_have_count(2)
    await shoot(page, "07-alerts-site")
    await (
        card.locator("li")
        .filter(has_text="passed 80 %")
        .get_by_role("button", name="Acknowledge")
        .click()
    )
    await expect(card.locator(".notice-ok")).to_contain_text("acknowledged by dev")
    await expect(card.locator("li")).to_have_count(1)

    async def two_acked() -> bool:
        return len(await site_alerts(http, sid, "acknowledged")) == 2

    await wait_for(two_acked, timeout=5, message="the second acknowledgement is not in the API")
    (left,) = await site_alerts(http, sid, "open")
    assert left["details"]["threshold_percent"] == 100

    # The site filter: this site's alerts only.
    await card.get_by_role("link", name="All alerts of this site").click()
    await expect(page.locator("#alert-list > li")).to_have_count(1)
    await expect(page.locator(".filter-chip")).to_contain_text("Alert Ridge Pad 5")


async def test_alerts_are_grouped_by_site_and_kind_filtered_by_kind_and_acknowledged_in_bulk(
    page: Page, stack: ApiProcess, seed: Seeder, http: httpx.AsyncClient
) -> None:
    site = await seed.site("Grouped Gulch Pad", 100)
    sid = site["id"]
    base = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    windows = [base + timedelta(minutes=15 * i) for i in range(8)]
    await seed.send(
        sid, [{"ts": t.isoformat(), "methane_kg": 12.0} for t in windows[:7]], device_id="gg-1"
    )
    await seed.wait_applied(sid, 7)
    await seed.send(sid, [{"ts": windows[7].isoformat(), "methane_kg": 35.0}], device_id="gg-1")

    async def three_alerts() -> bool:
        return len(await site_alerts(http, sid, "open")) == 3

    await wait_for(three_alerts, timeout=15, message="the worker never raised the three alerts")

    # The kind filter lives in the URL: this site's threshold alerts, one group of two.
    await page.goto(f"{stack.url}/#/alerts?status=open&site={sid}&kind=threshold")
    groups = page.locator("#group-rows tr")
    await expect(groups).to_have_count(1)
    await expect(groups.locator(".g-site")).to_have_text("Grouped Gulch Pad")
    await expect(groups.locator(".g-kind")).to_have_text("Threshold")
    await expect(groups.locator(".g-count")).to_have_text("2")
    await expect(groups.locator(".g-open")).to_have_text("2")
    await expect(page.locator("#alert-list > li")).to_have_count(2)
    kinds = page.locator("#kind-filter")
    await expect(kinds.get_by_role("link", name="Threshold")).to_have_attribute(
        "aria-current", "true"
    )

    await kinds.get_by_role("link", name="All kinds").click()
    await expect(page).to_have_url(f"{stack.url}/#/alerts?status=open&site={sid}")
    await expect(groups).to_have_count(2)
    await expect(groups.locator(".g-kind")).to_have_text(["Leak", "Threshold"])
    await expect(groups.filter(has_text="Leak").locator(".g-count")).to_have_text("1")
    await shoot(page, "15-alerts-grouped")
    await page.set_viewport_size(PHONE)
    await shoot(page, "15-alerts-grouped-phone")
    await page.set_viewport_size(LAPTOP)

    # Select the threshold group and the leak alert, then acknowledge all three at once.
    await page.get_by_label("Select the threshold alerts of Grouped Gulch Pad").check()
    leak = page.locator("#alert-list > li").filter(has_text="Leak:")
    await leak.get_by_role("checkbox").check()
    await expect(page.locator("#alerts-picked")).to_have_text(
        "1 alert and 1 group selected (3 open alerts)"
    )
    await page.get_by_role("button", name="Acknowledge 3 selected…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading")).to_have_text("Acknowledge alerts")
    await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
    await dialog.get_by_role("button", name="Continue").click()
    await expect(page.locator(".notice-ok")).to_contain_text("3 alerts acknowledged (audit #")
    await expect(page.locator("#alert-list > li")).to_have_count(0)
    await expect(page.get_by_text("No alerts to group.")).to_be_visible()
    assert await site_alerts(http, sid, "open") == []
    acked = await site_alerts(http, sid, "acknowledged")
    assert sorted(a["acknowledged_by"] for a in acked) == ["dev"] * 3
    audit = await http.get(
        "/v1/ops/audit",
        params={"action": "alerts.ack"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert sorted(e["affected"] for e in audit.json()["items"][:2]) == [1, 2]
