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
    await expect(page.get_by_role("heading", name="Events: triage")).to_be_visible()
    await expect(page.locator("[data-tile='pending'] .tile-value")).not_to_have_text("—")


async def test_pausing_from_the_page_keeps_the_backlog_and_resuming_sends_it(
    page: Page, stack: ApiProcess, seed: Seeder, http: httpx.AsyncClient
) -> None:
    hook = Receiver().start()
    created = await http.post(
        "/v1/subscriptions",
        json={"url": hook.url, "event_types": ["batch.accepted"], "description": "e2e pause"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    sub_id = created.json()["subscription"]["id"]
    try:
        await page.goto(f"{stack.url}/#/subscriptions")
        await expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
        row = page.locator("#subscriptions tbody.sub-group").filter(has_text=hook.url)
        pause = row.get_by_role("button", name=f"Pause subscription {sub_id}", exact=True)
        await pause.click()
        dialog = page.get_by_role("dialog")
        await expect(dialog.get_by_role("heading")).to_have_text("Pause subscription")
        await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
        await dialog.get_by_role("button", name="Continue").click()
        await expect(page.locator("#subs-note")).to_contain_text(
            f"Subscription #{sub_id} paused: its deliveries are kept until it is resumed."
        )
        await expect(row.locator(".sub-state")).to_contain_text("Paused by dev")
        resume = row.get_by_role("button", name=f"Resume subscription {sub_id}", exact=True)
        await expect(resume).to_have_text("Resume")

        site = await seed.site("Paused Hook Pad", 5_000)
        end = now().replace(minute=0, second=0, microsecond=0)
        for h in (2, 3):  # two batches: two events for the paused subscription
            reading = {"ts": (end - timedelta(hours=h)).isoformat(), "methane_kg": 1.0}
            await seed.send(site["id"], [reading], device_id="pause-1")

        async def queued() -> bool:
            return len(await deliveries(http, sub_id, "pending")) == 2

        await wait_for(queued, timeout=20, message="the drain never queued the deliveries")
        await expect(row.locator(".error-text")).to_have_text(
            "Paused: 2 deliveries kept, sent on resume"
        )
        await expect(row.locator(".pending")).to_have_text("2")
        assert hook.received == []  # nothing goes out while paused
        await page.evaluate("window.scrollTo(0, 0)")
        await shoot(page, "15-webhooks-paused")
        await page.set_viewport_size(PHONE)
        await shoot(page, "15-webhooks-paused-phone")
        await page.set_viewport_size(LAPTOP)
        assert hook.received == []

        await resume.click()  # the tab has the token now: no second prompt
        await expect(page.locator("#subs-note")).to_contain_text(
            f"Subscription #{sub_id} resumed: its backlog is being sent."
        )
        await expect(row.locator(".sub-state")).to_be_hidden()
        await expect(row.locator(".delivered .n")).to_have_text("2", timeout=10_000)
        await expect(row.locator(".pending")).to_have_text("0")
        assert len(set(hook.event_ids())) == 2 and len(hook.received) == 2
        audit = await http.get(
            "/v1/ops/audit", params={"action": "subscription.pause"}, headers=ADMIN
        )
        assert [e["params"] for e in audit.json()["items"]][:1] == [{"subscription_id": sub_id}]
    finally:
        await http.delete(f"/v1/subscriptions/{sub_id}", headers=ADMIN)
        hook.stop()


async def test_deliveries_are_filtered_in_the_url_and_replayed_in_bulk(
    page: Page, stack: ApiProcess, seed: Seeder, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await http.post(
        "/v1/subscriptions",
        json={"url": receiver.url, "event_types": ["batch.accepted"], "description": "e2e bulk"},
        headers=ADMIN,
    )
    sub_id = created.json()["subscription"]["id"]
    try:
        site = await seed.site("Bulk Replay Pad", 5_000)
        end = now().replace(minute=0, second=0, microsecond=0)
        for h in (2, 3):
            reading = {"ts": (end - timedelta(hours=h)).isoformat(), "methane_kg": 1.0}
            await seed.send(site["id"], [reading], device_id="bulk-1")

        async def dead() -> bool:
            return len(await deliveries(http, sub_id, "dead")) == 2

        await wait_for(dead, timeout=20, message="the deliveries never dead-lettered")
        ids = sorted(d["id"] for d in await deliveries(http, sub_id, "dead"))

        await page.goto(f"{stack.url}/#/subscriptions?sub={sub_id}&status=delivered")
        await expect(page.locator("#dl-status")).to_have_value("delivered")
        await expect(page.locator("#dl-sub")).to_have_value(str(sub_id))
        await expect(page.get_by_text("No delivery matches.")).to_be_visible()
        await page.locator("#dl-status").select_option("dead")
        await page.locator("#dl-type").select_option("batch.accepted")
        await page.get_by_role("button", name="Show", exact=True).click()
        await expect(page).to_have_url(
            f"{stack.url}/#/subscriptions?sub={sub_id}&status=dead&type=batch.accepted"
        )
        rows = page.locator("#dl-rows tr")
        await expect(rows).to_have_count(2)
        await expect(rows.locator(".d-status")).to_have_text(["dead", "dead"])
        await expect(page.locator("#dl-older")).to_be_hidden()

        await page.get_by_label("Select every delivery on this page").check()
        await expect(page.locator("#dl-picked")).to_have_text("2 deliveries selected")
        await page.evaluate("window.scrollTo(0, 0)")
        await shoot(page, "15-deliveries")
        await page.set_viewport_size(PHONE)
        await shoot(page, "15-deliveries-phone")
        await page.set_viewport_size(LAPTOP)

        await page.get_by_role("button", name="Replay 2 selected…").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog.get_by_role("heading")).to_have_text("Replay 2 selected deliveries")
        await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
        await dialog.get_by_role("button", name="Dry run").click()
        listed = ", ".join(f"#{i}" for i in ids)
        await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(
            f"2 deliveries would be replayed ({listed})"
        )
        assert receiver.event_ids() == []
        receiver.mode = "ok"
        await dialog.get_by_role("button", name="Replay 2 deliveries").click()
        await expect(dialog.locator("[data-outcome='replayed']")).to_contain_text("2 deliveries")
        await dialog.get_by_role("button", name="Close").click()
        await expect(page.get_by_text("No delivery matches.")).to_be_visible(timeout=10_000)

        async def sent() -> bool:
            return len(await deliveries(http, sub_id, "delivered")) == 2

        await wait_for(sent, timeout=10, message="the replayed deliveries were never sent")
        assert len(set(receiver.event_ids())) == 2
    finally:
        await http.delete(f"/v1/subscriptions/{sub_id}", headers=ADMIN)
