"""Roles on the dashboard: a viewer token reads every page while each action it may not take is
disabled with a tooltip naming the role; the token dialog says which role a token has and
refuses one below the action's; the audit page lists the trail with its filters in the URL."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, OPERATOR_TOKEN, PHONE, VIEWER_TOKEN, shoot
from tests.e2e.stack import Seeder
from tests.harness.processes import ApiProcess

LOCKED_OPERATOR = "Needs the operator role or above; ‘wall’ has the viewer role."
LOCKED_ADMIN = "Needs the admin role or above; ‘wall’ has the viewer role."


async def test_a_viewer_reads_every_page_and_each_action_names_the_role_it_needs(
    page: Page, production_api: ApiProcess, fleet: dict[str, dict[str, Any]]
) -> None:
    await page.goto(f"{production_api.url}/#/queue")
    banner = page.locator("#banner")
    await banner.get_by_role("button", name="Enter a token…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Token", exact=True).fill(VIEWER_TOKEN)
    await dialog.get_by_label("Remember for this browser tab").check()
    await dialog.get_by_role("button", name="Continue").click()
    await expect(dialog.locator("#token-role")).to_have_text("‘wall’ has the viewer role.")
    await shoot(page, "11-roles-token-dialog", full_page=False)
    await dialog.get_by_role("button", name="Done").click()
    await expect(page.locator("#who")).to_have_text("wall · viewer")
    await expect(banner).to_be_hidden()

    # The queue reads fine; replaying is an operator's, and says so.
    await expect(page.locator("[data-tile='pending'] .tile-value")).not_to_have_text("—")
    replay_all = page.locator("#replay-all")
    await expect(replay_all).to_have_attribute("title", LOCKED_OPERATOR)
    await expect(replay_all).to_be_disabled()
    await expect(page.get_by_role("link", name="Audit")).to_be_hidden()
    await shoot(page, "11-roles-viewer-queue")

    # Alerts: the fleet's over-limit sites have open ones; acknowledging is locked, and a
    # click on it does nothing.
    await page.goto(f"{production_api.url}/#/alerts")
    ack = page.locator("#alert-list button.ack").first
    await expect(ack).to_have_attribute("title", LOCKED_OPERATOR)
    await expect(ack).to_be_disabled()
    await ack.click(force=True)
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await shoot(page, "11-roles-viewer-alerts")
    await page.set_viewport_size(PHONE)
    await shoot(page, "11-roles-viewer-alerts-phone")

    # Device keys are an admin's.
    await page.goto(f"{production_api.url}/#/ingest")
    create = page.get_by_role("button", name="Create a demo key for this site…")
    await expect(create).to_have_attribute("title", LOCKED_ADMIN)
    await expect(create).to_be_disabled()

    # The audit trail, reached by its URL anyway, says whose it is.
    await page.goto(f"{production_api.url}/#/audit")
    await expect(page.locator("#audit-locked")).to_contain_text(
        "this needs the operator role or above; the token 'wall' has the viewer role"
    )
    await expect(page.locator("#audit-rows tr")).to_have_count(0)


async def test_the_token_dialog_refuses_a_token_below_the_action_and_says_its_role(
    page: Page, stack: ApiProcess, seed: Seeder
) -> None:
    site = await seed.site("Role Dialog Pad", 500)
    # Development: reads are open, no token yet, so nothing is locked until one is entered.
    await page.goto(f"{stack.url}/#/ingest?site={site['id']}")
    await expect(page.locator("#who")).to_have_text("Sign in…")
    create = page.get_by_role("button", name="Create a demo key for this site…")
    await expect(create).to_be_enabled()
    await create.click()
    dialog = page.get_by_role("dialog")
    role = dialog.locator("#token-role")
    for token, said in (
        (VIEWER_TOKEN, "‘wall’ has the viewer role"),
        (OPERATOR_TOKEN, "‘oncall’ has the operator role"),
    ):
        await dialog.get_by_label("Token", exact=True).fill(token)
        await dialog.get_by_role("button", name="Continue").click()
        await expect(role).to_have_text(
            f"{said}: this needs the admin role or above. Enter another token."
        )
    await dialog.get_by_label("Token", exact=True).fill("emo_not-a-token")
    await dialog.get_by_role("button", name="Continue").click()
    await expect(role).to_have_text("This token is not valid: unknown or revoked.")
    await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
    await dialog.get_by_role("button", name="Continue").click()
    await expect(dialog).to_have_count(0)
    await expect(page.locator("#device-key-note")).to_contain_text("created for demo-sensor-1")
    await expect(page.locator("#who")).to_have_text("dev · admin")


async def test_the_audit_page_lists_the_trail_with_its_filters_in_the_url(
    page: Page, stack: ApiProcess, seed: Seeder
) -> None:
    site = await seed.site("Audit Trail Pad", 500)
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=operator) as http:
        for _ in range(2):
            dry = await http.post(
                "/v1/ops/outbox/replay", json={"site_id": site["id"], "dry_run": True}
            )
            assert dry.status_code == 200, dry.text

    # Development, no token yet: the trail is not a plain read, so the page asks for one.
    await page.goto(f"{stack.url}/#/audit")
    locked = page.locator("#audit-locked")
    await expect(locked).to_contain_text("needs a token with the operator role")
    await locked.get_by_role("button", name="Enter a token…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Token", exact=True).fill(OPERATOR_TOKEN)
    await dialog.get_by_label("Remember for this browser tab").check()
    await dialog.get_by_role("button", name="Continue").click()
    rows = page.locator("#audit-rows tr")
    await expect(rows.first.locator(".a-actor")).to_have_text("oncall")  # newest first
    await expect(rows.first.locator(".a-role")).to_have_text("operator")
    await expect(rows.first.locator(".a-action")).to_have_text("outbox.replay")
    await expect(rows.first.locator(".a-dry")).to_have_text("dry run")
    await expect(rows.first.locator(".a-params")).to_contain_text(f'"site_id":{site["id"]}')
    await expect(rows.filter(has_text="site.create").first.locator(".a-actor")).to_have_text("dev")

    # Filter by who: the URL carries it, and a reload shows the same.
    await page.get_by_label("Who").fill("oncall")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(f"{stack.url}/#/audit?actor=oncall")
    await expect(rows).to_have_count(2)
    await shoot(page, "12-audit")
    await page.reload()
    await expect(page.get_by_label("Who")).to_have_value("oncall")
    await expect(rows).to_have_count(2)
    for actor in await rows.locator(".a-actor").all_inner_texts():
        assert actor == "oncall"

    # By action, one page of two at a time: older pages follow the cursor.
    # (The page before showed 2 rows too: wait for this filter's rows, not just 2 of them.
    # A clean-clone CI run read the ids mid-render once and found none.)
    await page.goto(f"{stack.url}/#/audit?action=site.create&limit=2")
    await expect(page.get_by_label("Action")).to_have_value("site.create")
    await expect(rows.locator(".a-action")).to_have_text(["site.create"] * 2)
    first_ids = await _two_ids(rows)
    await page.get_by_role("link", name="Older →").click()
    await expect(page).to_have_url(re.compile(r"#/audit\?action=site.create&before=\d+&limit=2$"))
    await expect(rows.first.locator(".a-id")).not_to_have_text(first_ids[0])
    await expect(rows.locator(".a-action")).to_have_text(["site.create"] * 2)
    older_ids = await _two_ids(rows)
    newest_older = int(older_ids[0].lstrip("#"))
    assert newest_older < min(int(i.lstrip("#")) for i in first_ids)
    for action in await rows.locator(".a-action").all_inner_texts():
        assert action == "site.create"
    await page.get_by_role("link", name="← Newest").click()
    await expect(rows.first.locator(".a-id")).to_have_text(first_ids[0])


async def _two_ids(rows: Locator) -> list[str]:
    """The ids of the two rows shown, read again while a re-render has them cleared."""
    for _ in range(100):
        ids = await rows.locator(".a-id").all_inner_texts()
        if len(ids) == 2 and all(ids):
            return ids
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected two audit rows, saw {ids}")
