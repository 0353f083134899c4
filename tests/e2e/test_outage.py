"""Outages are shown, never a blank page: the API stopped (banner, last data kept), and the
worker stopped (stale heartbeat banner). Both clear by themselves when the process is back."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.conftest import PHONE, shoot
from tests.harness.processes import ApiProcess, WorkerProcess


async def test_banner_when_the_api_is_unreachable_and_recovery(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    await page.goto(f"{stack.url}/#/sites")
    rows = page.locator("table.sites-table tbody tr")
    await expect(rows.first).to_be_visible()
    shown = await rows.count()
    banner = page.locator("#banner")
    await expect(banner).to_be_hidden()
    await expect(page.locator("#live")).to_contain_text("Live")

    await stack.stop()
    try:
        await expect(banner).to_be_visible(timeout=8_000)
        await expect(banner).to_contain_text("API unreachable")
        await expect(banner).to_have_attribute("role", "alert")
        await expect(page.locator("#live")).to_have_text("Offline")
        await expect(rows).to_have_count(shown)  # the last data stays on screen
        await shoot(page, "05-api-down")
        await page.set_viewport_size(PHONE)
        await shoot(page, "05-api-down-phone", full_page=False)
    finally:
        await stack.start()
    await expect(banner).to_be_hidden(timeout=8_000)
    await expect(page.locator("#live")).to_contain_text("Live")


async def test_banner_when_the_worker_heartbeat_is_stale(
    page: Page, stack: ApiProcess, worker: WorkerProcess
) -> None:
    await page.goto(f"{stack.url}/#/queue")
    banner = page.locator("#banner")
    await expect(page.locator("#worker-pill")).to_contain_text("1 worker")
    await expect(banner).to_be_hidden()

    await worker.terminate()
    try:
        # Workers beat every second; the dashboard calls one stale after 10 s without a beat.
        await expect(banner).to_contain_text("Worker stale", timeout=20_000)
        await expect(banner).to_contain_text("No worker heartbeat for")
        await expect(page.locator("[data-tile='workers'] .tile-value")).to_have_text("0")
        await shoot(page, "06-worker-stale", full_page=False)
    finally:
        await worker.start()
    await expect(banner).to_be_hidden(timeout=15_000)
