"""Webhook subscriptions on the queue page: a receiver that fails every attempt leaves a dead
delivery, shown with its error under the subscription; once the receiver is fixed, the page
replays it (admin token, dry run first) and the receiver gets the event. An API without
subscriptions (404) leaves the rest of the page working."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Route, expect

from tests.e2e.conftest import ADMIN_TOKEN, LAPTOP, PHONE, shoot
from tests.e2e.stack import Seeder, now
from tests.harness.processes import ApiProcess, wait_for
from tests.integration.receiver import Receiver

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(mode="fail").start()
    yield hook
    hook.stop()


async def deliveries(http: httpx.AsyncClient, sub_id: int, status: str) -> list[dict[str, Any]]:
    response = await http.get(f"/v1/subscriptions/{sub_id}/deliveries", params={"status": status})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_dead_delivery_is_shown_under_its_subscription_and_replayed_after_the_fix(
    page: Page, stack: ApiProcess, seed: Seeder, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await http.post(
        "/v1/subscriptions",
        json={"url": receiver.url, "event_types": ["batch.accepted"], "description": "e2e ledger"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    sub_id = created.json()["subscription"]["id"]
    try:
        site = await seed.site("Webhook Pad 3", 5_000)
        end = now().replace(minute=0, second=0, microsecond=0)
        readings = [
            {"ts": (end - timedelta(hours=h)).isoformat(), "methane_kg": 1.5} for h in range(1, 5)
        ]
        await seed.send(site["id"], readings, device_id="hook-1")

        async def dead() -> bool:
            return len(await deliveries(http, sub_id, "dead")) == 1

        await wait_for(dead, timeout=20, message="the delivery never dead-lettered")
        (delivery,) = await deliveries(http, sub_id, "dead")
        assert delivery["attempts"] == 2 and delivery["last_status_code"] == 500

        await page.goto(f"{stack.url}/#/queue")
        panel = page.locator("#subscriptions")
        await expect(panel.get_by_role("heading", name="Webhook subscriptions")).to_be_visible()
        row = panel.locator("tbody.sub-group").filter(has_text=receiver.url)
        await expect(row.locator(".sub-row")).to_have_count(1)
        await expect(row.locator(".desc")).to_contain_text(f"#{sub_id} · e2e ledger · by dev")
        await expect(row.locator(".types")).to_have_text("batch.accepted")
        await expect(row.locator(".dead .badge-danger")).to_have_text("1")
        await expect(row.locator(".pending")).to_have_text("0")
        await expect(row.locator(".delivered .n")).to_have_text("0")
        await expect(row.locator(".error-text").first).to_contain_text("HTTP 500")

        # The dead deliveries, on demand under the subscription.
        toggle = row.get_by_role(
            "button", name=f"Dead deliveries of subscription {sub_id}", exact=True
        )
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        dead_row = row.locator(".deliveries-table tbody tr")
        await expect(dead_row).to_have_count(1)
        await expect(dead_row.locator(".d-id")).to_have_text(f"#{delivery['id']}")
        await expect(dead_row.locator(".d-ev")).to_have_text(f"#{delivery['event_id']}")
        await expect(dead_row.locator(".d-type")).to_have_text("batch.accepted")
        await expect(dead_row.locator(".d-att")).to_have_text("2")
        await page.evaluate("window.scrollTo(0, 0)")
        await shoot(page, "09-subscriptions")
        await page.set_viewport_size(PHONE)
        await shoot(page, "09-subscriptions-phone")
        await page.set_viewport_size(LAPTOP)

        # Fixed: replay, dry run first.
        receiver.mode = "ok"
        await row.get_by_role(
            "button", name=f"Replay dead deliveries of subscription {sub_id}"
        ).click()
        dialog = page.get_by_role("dialog")
        await expect(dialog.get_by_role("heading")).to_have_text(
            f"Replay dead deliveries of subscription #{sub_id}"
        )
        await expect(dialog.get_by_role("button", name="Replay", exact=True)).to_be_disabled()
        await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
        await dialog.get_by_role("button", name="Dry run").click()
        await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(
            f"1 delivery would be replayed (#{delivery['id']})"
        )
        await expect(dialog.locator(".audit")).to_contain_text("deliveries.replay by dev")
        await expect(dialog.locator(".audit")).to_contain_text("dry run")
        assert receiver.event_ids() == []  # a dry run sends nothing
        await dialog.get_by_role("button", name="Replay 1 delivery").click()
        await expect(dialog.locator("[data-outcome='replayed']")).to_contain_text(
            f"1 delivery due again (#{delivery['id']})"
        )
        await dialog.get_by_role("button", name="Close").click()

        # The worker sends it: the receiver has the event, the panel shows it delivered.
        await expect(row.locator(".dead")).to_have_text("0", timeout=10_000)
        await expect(row.locator(".delivered .n")).to_have_text("1")
        await expect(row.locator(".dead-list")).to_contain_text("No dead deliveries.")
        assert len(receiver.event_ids()) == 1
        (sent,) = await deliveries(http, sub_id, "delivered")
        assert sent["id"] == delivery["id"] and sent["delivered_at"] is not None
    finally:
        response = await http.delete(f"/v1/subscriptions/{sub_id}", headers=ADMIN)
        assert response.status_code == 200, response.text


async def test_queue_page_works_on_an_api_without_subscriptions(
    page: Page, stack: ApiProcess
) -> None:
    async def not_found(route: Route) -> None:
        await route.fulfill(
            status=404,
            content_type="application/problem+json",
            body='{"type":"about:blank","title":"Not Found","status":404,"detail":""}',
        )

    await page.route("**/v1/subscriptions", not_found)
    await page.goto(f"{stack.url}/#/queue")
    await expect(page.locator("#subs-unavailable")).to_have_text(
        "Webhook subscriptions are not available on this API."
    )
    await expect(page.locator("#subscriptions table")).to_be_hidden()
    await expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    await expect(page.locator("[data-tile='pending'] .tile-value")).not_to_have_text("—")
