"""In production mode reads need an operator token: the dashboard asks for it instead of
showing an empty page, and then shows the data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import LOGS
from tests.e2e.stack import ApiProcess
from tests.harness.services import RedisServer


@pytest.fixture
async def production_api(
    database_url: str, redis_server: RedisServer, artifacts: Any
) -> AsyncIterator[ApiProcess]:
    """A second API process on the same database, in production mode, with its own token."""
    process = ApiProcess(
        env={
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "ENVIRONMENT": "production",
            "ADMIN_TOKENS": "ops:prod-token-for-e2e",
        },
        log_dir=LOGS,
        name="api-production",
    )
    await process.start()
    yield process
    await process.stop()
    process.close()


async def test_reads_that_need_a_token_ask_for_it_then_show_the_data(
    page: Page, production_api: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    await page.goto(f"{production_api.url}/#/sites")
    banner = page.locator("#banner")
    await expect(banner).to_contain_text("Token needed")
    await expect(page.locator(".notice-danger")).to_contain_text("Unauthorized")
    await banner.get_by_role("button", name="Enter admin token…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Admin token").fill("prod-token-for-e2e")
    await dialog.get_by_role("button", name="Continue").click()
    await expect(banner).to_be_hidden()
    await expect(page.get_by_role("link", name="Permian Pad 14", exact=True)).to_be_visible()
    await expect(page.locator(".notice-danger")).to_be_hidden()
