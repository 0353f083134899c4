"""The queue page's history (kept in Postgres by the workers, so it is there after a reload, in
the range the URL names), its pause/resume of live updates, and the workers table."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta

import asyncpg
from playwright.async_api import Page, expect

from tests.e2e.conftest import LAPTOP, PHONE, shoot
from tests.harness.processes import ApiProcess, WorkerProcess


async def seed_history(db: asyncpg.Connection, *, minutes: int) -> None:
    """A sample every 10 s as the workers take them (5 s off their grid, so no bucket clashes
    with theirs), ending a minute ago: a backlog that rises and drains, two dead at the end."""
    now = datetime.now(UTC).replace(second=5, microsecond=0)
    await db.executemany(
        "INSERT INTO queue_samples (at, interval_s, pending, backoff, dead, oldest_pending_s,"
        " processed, failed, deliveries_sent, deliveries_failed, deliveries_dead)"
        " VALUES ($1, 10, $2, $3, $4, $5, $6, $7, 0, 0, 0) ON CONFLICT (at) DO NOTHING",
        [
            (
                now - timedelta(seconds=10 * i),
                (i * 7) % 400,
                i % 5,
                2 if i < 12 else 0,
                float(i % 17) * 3,
                50 + i % 30,
                i % 3,
            )
            for i in range(minutes * 6, 5, -1)
        ],
    )


async def test_history_renders_after_a_reload_in_the_range_the_url_names(
    page: Page, stack: ApiProcess, db: asyncpg.Connection
) -> None:
    await seed_history(db, minutes=50)
    await page.goto(f"{stack.url}/#/queue")
    history = page.locator("#queue-history")
    await expect(history.locator("canvas")).to_have_count(5)
    await expect(history).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
    await expect(page.get_by_role("radio", name="1 h", exact=True)).to_be_checked()
    await expect(page.locator("#history-note")).to_contain_text("points of 10 s since")
    for title in ("Throughput", "Lag", "Backlog", "Dead", "Webhook deliveries"):
        await expect(history.get_by_role("heading", name=title, exact=True)).to_be_visible()
    await expect(history.locator(".u-legend").first).to_contain_text("Processed")
    await expect(history.locator("#history-deliveries .u-legend")).to_contain_text("Sent")

    await page.get_by_role("radio", name="24 h", exact=True).check()
    await expect(page).to_have_url(re.compile(r"#/queue\?range=24h$"))
    await expect(page.locator("#history-note")).to_contain_text("points of 5 min 0 s since")
    await page.reload()
    await expect(page.get_by_role("radio", name="24 h")).to_be_checked()
    await expect(history).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
    await expect(page.locator("#history-note")).to_contain_text("points of 5 min 0 s since")
    # The samples came from the server: a fresh tab (no session storage) draws the same.
    fresh = await page.context.new_page()
    await fresh.goto(f"{stack.url}/#/queue?range=1h")
    await expect(fresh.locator("#queue-history")).to_have_attribute(
        "data-points", re.compile(r"^([5-9][0-9]|[1-9][0-9]{2,})$")
    )
    await expect(fresh.get_by_role("radio", name="1 h", exact=True)).to_be_checked()
    await expect(fresh.locator("table.workers-table .w-status").first).to_have_text("Alive")
    await shoot(fresh, "15-queue-history")
    await fresh.set_viewport_size(PHONE)
    await fresh.locator("#queue-history").scroll_into_view_if_needed()
    await shoot(fresh, "15-queue-history-phone")
    await fresh.close()


async def test_live_updates_pause_and_resume(
    page: Page, stack: ApiProcess, db: asyncpg.Connection
) -> None:
    await seed_history(db, minutes=10)
    await page.goto(f"{stack.url}/#/queue?range=15m")
    history = page.locator("#queue-history")
    await expect(history).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
    pause = page.get_by_role("button", name=re.compile("live updates"))
    await expect(pause).to_have_attribute("aria-pressed", "false")
    await pause.click()
    await expect(pause).to_have_attribute("aria-pressed", "true")
    await expect(pause).to_have_text("Resume live updates")
    await expect(page.locator("#history-note")).to_contain_text("live updates paused")
    frozen = await history.get_attribute("data-last")
    # The workers keep sampling every 10 s; a paused chart does not move.
    await page.wait_for_timeout(12_000)
    assert await history.get_attribute("data-last") == frozen
    await shoot(page, "15-queue-history-paused", full_page=False)
    await pause.click()
    await expect(pause).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("#history-note")).to_contain_text("updating live")
    await expect(history).not_to_have_attribute("data-last", frozen or "", timeout=15_000)
    assert (await history.get_attribute("data-last") or "") > (frozen or "")


async def test_workers_table_shows_the_running_worker(
    page: Page, stack: ApiProcess, worker: WorkerProcess
) -> None:
    await page.goto(f"{stack.url}/#/queue")
    row = page.locator("table.workers-table tbody tr").filter(
        has=page.locator(".w-pid", has_text=re.compile(rf"^{worker.pid}$"))
    )
    await expect(row).to_have_count(1)
    await expect(row.locator(".w-host")).to_have_text(socket.gethostname())
    await expect(row.locator(".w-status")).to_have_text("Alive")
    await expect(row.locator(".w-seen")).to_contain_text("ago")
    await expect(row.locator(".w-claim")).to_have_text(re.compile(r"^(idle|drain \(\w+\).*)$"))
    await expect(page.locator("[data-tile='workers']")).to_be_visible()  # the tile stays
    await page.locator("#workers").scroll_into_view_if_needed()
    await shoot(page, "15-queue-workers", full_page=False)
    await page.set_viewport_size(PHONE)
    await page.locator("#workers").scroll_into_view_if_needed()
    await shoot(page, "15-queue-workers-phone", full_page=False)
    await page.set_viewport_size(LAPTOP)
