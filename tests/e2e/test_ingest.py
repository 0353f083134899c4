"""The ingest demo: a batch sent from the form, retried with the same key (a replayed answer,
totals unchanged), sent under a new key (all duplicates), and an invalid one (problem+json)."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, PHONE, shoot
from tests.e2e.stack import Seeder
from tests.harness.processes import ApiProcess


async def test_retry_with_the_same_key_is_replayed_and_totals_do_not_move(
    page: Page, stack: ApiProcess, seed: Seeder
) -> None:
    site = await seed.site("Ingest Demo Pad", 500)
    await page.goto(f"{stack.url}/#/ingest?site={site['id']}")
    await expect(page.get_by_role("heading", name="Ingest demo", level=1)).to_be_visible()
    await expect(page.get_by_label("Site", exact=True)).to_have_value(str(site["id"]))
    await expect(page.locator("#total-readings")).to_have_text("0")

    # A device key for the form's device and this site, created from the page (admin token).
    await page.get_by_role("button", name="Create a demo key for this site…").click()
    await page.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Continue").click()
    await expect(page.locator("#device-key-note")).to_contain_text("created for demo-sensor-1")
    assert await page.get_by_label("Device key").input_value()

    readings = await page.get_by_label("Readings").input_value()
    sent_kg = sum(float(line.split(",")[1]) for line in readings.strip().splitlines())

    await page.get_by_role("button", name="Send batch").click()
    first = page.locator("#attempts > li").first
    await expect(first).to_have_attribute("data-status", "202")
    await expect(first).to_have_attribute("data-replayed", "false")
    await expect(first.locator(".c-accepted")).to_have_text("4")
    # The worker applies it: the live totals and the request's own before/after move.
    await expect(page.locator("#total-readings")).to_have_text("4")
    await expect(first.locator(".delta")).to_have_attribute("data-state", "applied")
    lifetime = await page.locator("#total-lifetime").inner_text()
    assert lifetime == f"{sent_kg:.3f}".rstrip("0").rstrip(".") + " kg"

    await page.get_by_role("button", name="Retry with the same key").click()
    retry = page.locator("#attempts > li").first
    await expect(retry).to_have_attribute("data-n", "2")
    await expect(retry).to_have_attribute("data-replayed", "true")
    await expect(retry.locator(".badge", has_text="Replayed")).to_be_visible()
    await expect(retry.locator(".c-accepted")).to_have_text("4")  # the stored answer, verbatim
    await asyncio.sleep(2.5)  # a poll or more later: still nothing moved
    await expect(retry.locator(".delta")).to_have_attribute("data-state", "unchanged")
    await expect(page.locator("#total-readings")).to_have_text("4")
    await expect(page.locator("#total-lifetime")).to_have_text(lifetime)

    await page.get_by_role("button", name="Send with a new key").click()
    again = page.locator("#attempts > li").first
    await expect(again).to_have_attribute("data-n", "3")
    await expect(again).to_have_attribute("data-replayed", "false")
    await expect(again.locator(".c-accepted")).to_have_text("0")
    await expect(again.locator(".c-duplicates")).to_have_text("4")
    await expect(again.locator(".delta")).to_have_attribute("data-state", "unchanged")
    await expect(page.locator("#total-lifetime")).to_have_text(lifetime)
    await shoot(page, "03-ingest-demo")

    # An invalid reading: the API's problem+json title, detail and field pointer are shown.
    await page.get_by_label("Readings").fill("2026-01-01T00:00:00Z, lots")
    await page.get_by_role("button", name="New key", exact=True).click()
    await page.get_by_role("button", name="Send batch").click()
    bad = page.locator("#attempts > li").first
    await expect(bad).to_have_attribute("data-status", "422")
    await expect(bad.locator(".problem")).to_contain_text("Request failed validation")
    await expect(bad.locator(".field-errors")).to_contain_text("/measurements/0/methane_kg")
    await expect(page.locator("#total-readings")).to_have_text("4")
    await page.set_viewport_size(PHONE)
    await shoot(page, "03-ingest-demo-phone")
