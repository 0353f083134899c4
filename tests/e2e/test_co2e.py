"""The kg ↔ t CO2e switch in the header: the sites list, a site's figures and its chart show
the API's t CO2e figures with the GWP factor stated, and the choice survives a reload."""

from __future__ import annotations

import math
from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.conftest import LAPTOP, PHONE, shoot
from tests.harness.processes import ApiProcess


def tonnes(t: float, suffix: str = " t CO₂e") -> str:
    """The dashboard's t CO2e format: 3, 2, 1 or 0 decimals by size, no trailing zeros."""
    a = abs(t)
    digits = 3 if a < 10 else 2 if a < 100 else 1 if a < 1000 else 0
    text = f"{t:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + suffix


async def test_co2e_switch_shows_tonnes_co2e_with_the_factor_and_persists(
    page: Page, stack: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    bravo = fleet["Bravo Compressor Station"]
    gwp = bravo["gwp"]
    assert gwp == {"version": "AR6-fossil", "factor": 29.8}
    assert math.isclose(bravo["lifetime_t_co2e"], bravo["lifetime_kg"] * 29.8 / 1000, abs_tol=1e-6)
    await page.goto(f"{stack.url}/#/sites")
    switch = page.get_by_role("switch", name="Show t CO₂e")
    await expect(switch).not_to_be_checked()
    row = page.locator("table.sites-table tbody tr").filter(
        has=page.get_by_role("link", name="Bravo Compressor Station", exact=True)
    )
    await expect(row.locator(".lifetime")).to_have_text(_kg(bravo["lifetime_kg"]))
    await expect(page.locator(".gwp-note")).to_be_hidden()

    await switch.check()
    await expect(row.locator(".lifetime")).to_have_text(tonnes(bravo["lifetime_t_co2e"]))
    limit_t = bravo["emission_limit_kg"] * 29.8 / 1000
    await expect(row.locator(".limit-text")).to_have_text(
        f"{tonnes(bravo['year_t_co2e'], ' t')} / {tonnes(limit_t)} · "
        f"{round(bravo['percent_of_limit'])}%"
    )
    note = page.locator(".gwp-note")
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("GWP100 AR6 fossil = 29.8")
    await expect(note).to_contain_text("kg CH₄ × 29.8 / 1000")
    await shoot(page, "10-co2e")
    await page.set_viewport_size(PHONE)
    await shoot(page, "10-co2e-phone")
    await page.set_viewport_size(LAPTOP)

    # Persistent: a reload (and the next visit) keeps t CO2e.
    await page.reload()
    await expect(page.get_by_role("switch", name="Show t CO₂e")).to_be_checked()
    await expect(row.locator(".lifetime")).to_have_text(tonnes(bravo["lifetime_t_co2e"]))
    assert await page.evaluate("localStorage.getItem('emissions.unit')") == "co2e"

    # The site page: tiles and the chart in t CO2e, from the hourly endpoint's t_co2e.
    await page.goto(f"{stack.url}/#/sites/{bravo['id']}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bravo Compressor Station")
    await expect(page.locator("[data-tile='Lifetime'] .tile-value")).to_have_text(
        tonnes(bravo["lifetime_t_co2e"])
    )
    await expect(page.locator("[data-tile='Annual limit'] .tile-value")).to_have_text(
        tonnes(limit_t)
    )
    await expect(page.locator("[data-tile='Annual limit'] .tile-sub")).to_contain_text("40 t CH₄")
    chart = page.locator("#site-chart")
    await expect(chart).to_have_attribute("data-unit", "t_co2e")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(page.locator(".chart-note")).to_contain_text("t CO₂e emitted per UTC hour")
    await expect(page.locator(".chart-note")).to_contain_text("AR6 fossil GWP100 = 29.8")
    await expect(page.locator(".gwp-note")).to_contain_text("GWP100 AR6 fossil = 29.8")
    await page.get_by_role("radio", name="Year").check()
    await expect(chart).to_have_attribute("data-mode", "cumulative")
    await expect(page.locator(".chart-note")).to_contain_text(f"annual limit ({tonnes(limit_t)})")
    await shoot(page, "10-co2e-site")

    # Off again: kg CH4, and the factor note goes away.
    await page.get_by_role("switch", name="Show t CO₂e").uncheck()
    await expect(page.locator("[data-tile='Lifetime'] .tile-value")).to_have_text(
        _kg(bravo["lifetime_kg"])
    )
    await expect(chart).to_have_attribute("data-unit", "kg")
    await expect(page.locator(".gwp-note")).to_be_hidden()
    assert await page.evaluate("localStorage.getItem('emissions.unit')") == "kg"


def _kg(kg: float) -> str:
    """Above a tonne the dashboard writes kg CH4 as t, with the same digits as t CO2e."""
    return tonnes(kg / 1000, " t CH₄")
