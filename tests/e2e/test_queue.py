"""The queue page: a poisoned event is dead-lettered, listed with its error, and replayed from
the page (admin token, dry run first) once the cause is fixed; the site's totals then move. The
stream relay's backlog (events JetStream has not acknowledged) shows in its own tile."""

from __future__ import annotations

import re
from datetime import timedelta

import asyncpg
from playwright.async_api import Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, PHONE, shoot
from tests.e2e.stack import Seeder, hourly_profile, now
from tests.harness.processes import ApiProcess


async def test_dead_event_is_listed_then_replayed_from_the_page_after_the_fix(
    page: Page, stack: ApiProcess, seed: Seeder, db: asyncpg.Connection
) -> None:
    site = await seed.site("Poisoned Pad 9", 2_000)
    sid = site["id"]
    await page.goto(f"{stack.url}/#/queue")
    await expect(page.get_by_role("heading", name="Queue", level=1)).to_be_visible()
    await expect(page.locator("#queue-chart canvas")).to_have_count(1)
    # Break the drain for this site only: every recompute of its hourly buckets fails.
    await db.execute(
        f"""
        CREATE FUNCTION e2e_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.site_id = {sid} THEN RAISE EXCEPTION 'poisoned bucket for site {sid}'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER e2e_poison BEFORE INSERT OR UPDATE ON site_hourly
        FOR EACH ROW EXECUTE FUNCTION e2e_poison();
        """
    )
    try:
        end = now().replace(minute=0, second=0, microsecond=0)
        readings = hourly_profile(start=end - timedelta(hours=6), end=end, total_kg=42.0, seed=9)
        (receipt,) = await seed.send(sid, readings, device_id="sensor-poison")
        assert receipt["accepted"] == 6

        # It fails twice, backing off, and is dead-lettered: the open page shows it by itself.
        row = page.locator("table.dead-table tbody tr").filter(has_text="Poisoned Pad 9")
        await expect(row).to_have_count(1, timeout=20_000)
        await expect(row.locator(".attempts")).to_have_text("2")
        await expect(row.locator(".error-text")).to_contain_text(f"poisoned bucket for site {sid}")
        await expect(page.locator("[data-tile='dead'] .tile-value")).not_to_have_text("0")
        await page.wait_for_timeout(3_000)  # a few more samples in the live chart
        await shoot(page, "04-queue")
        await page.set_viewport_size(PHONE)
        await shoot(page, "04-queue-phone")
        await page.set_viewport_size({"width": 1440, "height": 900})
    finally:
        await db.execute("DROP TRIGGER IF EXISTS e2e_poison ON site_hourly")
        await db.execute("DROP FUNCTION IF EXISTS e2e_poison()")

    event_id = (await row.locator(".ev").inner_text()).lstrip("#")
    dialog = page.get_by_role("dialog")

    # All dead events of the site: asks for the token; a wrong one shows the API's problem.
    await row.get_by_role("button", name="Replay all dead events of Poisoned Pad 9").click()
    await expect(dialog.get_by_role("heading")).to_contain_text("all dead events of Poisoned Pad 9")
    await expect(dialog.get_by_role("button", name="Replay", exact=True)).to_be_disabled()
    await dialog.get_by_label("Token", exact=True).fill("not-the-token")
    await dialog.get_by_role("button", name="Dry run").click()
    await expect(dialog.locator("[data-outcome='error']")).to_contain_text("Unauthorized")
    await expect(dialog.get_by_role("button", name="Replay", exact=True)).to_be_disabled()
    await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
    await dialog.get_by_role("button", name="Dry run").click()
    await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(
        f"1 event would be replayed (#{event_id})"
    )
    await dialog.get_by_role("button", name="Close").click()

    # All dead events: the token is remembered for this page; a dry run only.
    await page.get_by_role("button", name="Replay all 1 dead…").click()
    await expect(dialog.get_by_label("Token", exact=True)).to_have_value(ADMIN_TOKEN)
    await dialog.get_by_role("button", name="Dry run").click()
    await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(f"#{event_id}")
    await dialog.get_by_role("button", name="Close").click()

    # This one event: dry run, then the replay itself.
    await row.get_by_role("button", name=f"Replay event {event_id}").click()
    await expect(dialog.get_by_role("heading")).to_have_text(f"Replay event #{event_id}")
    await dialog.get_by_role("button", name="Dry run").click()
    await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(
        f"1 event would be replayed (#{event_id})"
    )
    await expect(dialog.locator(".audit")).to_contain_text("outbox.replay by dev")
    await expect(dialog.locator(".audit")).to_contain_text("dry run")
    assert await db.fetchval("SELECT dead_at IS NOT NULL FROM outbox WHERE id = $1", int(event_id))
    await shoot(page, "04-queue-replay-dry-run", full_page=False)

    await dialog.get_by_role("button", name="Replay 1 event").click()
    await expect(dialog.locator("[data-outcome='replayed']")).to_contain_text(
        f"1 event due again (#{event_id})"
    )
    await expect(dialog.locator(".audit")).to_contain_text("outbox.replay by dev")
    await expect(dialog.locator(".audit")).not_to_contain_text("dry run")
    await dialog.get_by_role("button", name="Close").click()
    await expect(row).to_have_count(0)

    # The worker applies it: the site's totals now include the batch.
    await page.goto(f"{stack.url}/#/sites/{sid}")
    await expect(page.locator("[data-tile='Readings'] .tile-value")).to_have_text("6")
    await expect(page.locator("[data-tile='Lifetime'] .tile-value")).to_have_text("42 kg CH₄")
    await expect(page.locator("table.batches-table .state").first).to_have_text("Applied")


async def test_stream_relay_backlog_shows_while_jetstream_has_not_acked(
    page: Page, stack: ApiProcess, seed: Seeder, db: asyncpg.Connection
) -> None:
    # This stack's worker has no NATS_URL (as NATS being down, nothing gets relayed): events
    # queued for the relay, as the drain queues them with NATS configured, stay in the backlog.
    site = await seed.site("Relay Pad 4", 2_000)
    end = now().replace(minute=0, second=0, microsecond=0)
    readings = hourly_profile(start=end - timedelta(hours=3), end=end, total_kg=9.0, seed=4)
    await seed.send(site["id"], readings, device_id="sensor-relay")
    await page.goto(f"{stack.url}/#/queue")
    tile = page.locator("[data-tile='stream']")
    await expect(tile.locator(".tile-label")).to_have_text("Stream backlog")
    await expect(tile.locator(".tile-value")).to_have_text("0")
    await expect(tile.locator(".tile-sub")).to_have_text("pending · none awaiting JetStream's ack")
    queued = await db.fetchval(
        """
        WITH events AS (
            INSERT INTO stream_relay (event_id, event_type, queued_at)
            SELECT id, 'batch.accepted', now() - interval '3 minutes' - id * interval '1 ms'
            FROM outbox WHERE site_id = $1
            UNION ALL
            SELECT 9000000000 + g, 'batch.accepted', now() - interval '1 minute'
            FROM generate_series(1, 1200) AS g
            RETURNING event_id
        )
        SELECT count(*) FROM events
        """,
        site["id"],
    )
    try:
        assert queued > 1200
        await expect(tile.locator(".tile-value")).to_have_text(f"{queued:,}")
        await expect(tile.locator(".tile-sub")).to_have_text("pending · behind: oldest 3 min")
        await expect(tile).to_have_class(re.compile(r"\btile-warning\b"))
        await shoot(page, "04-queue-stream-backlog", full_page=False)
        # JetStream acks them (NATS back): the tile empties by itself.
        await db.execute("UPDATE stream_relay SET relayed_at = now() WHERE relayed_at IS NULL")
        await expect(tile.locator(".tile-value")).to_have_text("0")
        await expect(tile).not_to_have_class(re.compile(r"\btile-warning\b"))
    finally:
        await db.execute("DELETE FROM stream_relay")
