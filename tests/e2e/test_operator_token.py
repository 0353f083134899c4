"""In production mode reads need an operator token: the dashboard asks for it instead of
showing an empty page, and then shows the data."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.conftest import PRODUCTION_TOKEN
from tests.harness.processes import ApiProcess


async def test_reads_that_need_a_token_ask_for_it_then_show_the_data(
    page: Page, production_api: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    await page.goto(f"{production_api.url}/#/sites")
    banner = page.locator("#banner")
    await expect(banner).to_contain_text("Token needed")
    await expect(page.locator(".notice-danger")).to_contain_text("Unauthorized")
    await banner.get_by_role("button", name="Enter a token…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Token", exact=True).fill(PRODUCTION_TOKEN)
    await dialog.get_by_role("button", name="Continue").click()
    # The dialog says who the token is before it closes; the header keeps saying it.
    await expect(dialog.locator("#token-role")).to_have_text("‘ops’ has the admin role.")
    await dialog.get_by_role("button", name="Done").click()
    await expect(page.locator("#who")).to_have_text("ops · admin")
    await expect(banner).to_be_hidden()
    await expect(page.get_by_role("link", name="Permian Pad 14", exact=True)).to_be_visible()
    await expect(page.locator(".notice-danger")).to_be_hidden()
