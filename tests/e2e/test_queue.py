"""The queue page: a poisoned event is dead-lettered, listed with its error, and replayed from
the page (admin token, dry run first) once the cause is fixed; the site's totals then move. The
stream relay's backlog (events JetStream has not acknowledged) shows in its own tile."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import asyncpg
import pytest
from playwright.async_api import Page, Route, expect

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
    await expect(page.locator("#history-throughput canvas")).to_have_count(1)
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
        row = page.locator("#triage-list li").filter(has_text="Poisoned Pad 9")
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

    # The site's dead events: the filter goes in the URL; a wrong token shows the API's problem.
    await page.get_by_label("Site", exact=True).select_option(str(sid))
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(re.compile(rf"#/queue\?site={sid}$"))
    await expect(row).to_have_count(1)
    await page.get_by_role("button", name="Replay all dead matching…").click()
    await expect(dialog.get_by_role("heading")).to_contain_text("every dead event matching")
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

    # This one event: dry run, then the replay itself.
    await row.get_by_role("button", name=f"Replay event {event_id}").click()
    await expect(dialog.get_by_role("heading")).to_have_text(f"Replay event #{event_id}")
    await expect(dialog.get_by_label("Token", exact=True)).to_have_value(ADMIN_TOKEN)
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
    await expect(page.locator("#triage-empty")).to_have_text("No event matches these filters.")

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


async def dead_notices(db: asyncpg.Connection, site_id: int, n: int) -> list[int]:
    """n dead-lettered notice events (a notice only needs delivering: a replay applies it)."""
    rows = await db.fetch(
        """
        INSERT INTO outbox (event_type, site_id, payload, attempts, last_error, dead_at)
        SELECT 'site.stale', $1::bigint,
               jsonb_build_object('batch_id', gen_random_uuid()::text,
                                  'request_id', 'req-' || $1::bigint || '-' || g),
               2, 'RuntimeError: receiver said no (' || g || ')', now()
        FROM generate_series(1, $2) AS g
        ORDER BY g
        RETURNING id
        """,
        site_id,
        n,
    )
    return [r["id"] for r in rows]


async def test_filter_bar_lives_in_the_url_and_pages_past_the_newest_100(
    page: Page, stack: ApiProcess, seed: Seeder, db: asyncpg.Connection
) -> None:
    site = await seed.site("Triage Pad 1", 2_000)
    ids = await dead_notices(db, site["id"], 130)
    try:
        await page.goto(f"{stack.url}/#/queue")
        await page.get_by_label("Site", exact=True).select_option(str(site["id"]))
        await page.get_by_label("Type", exact=True).select_option("site.stale")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(rf"site={site['id']}&type=site.stale$"))
        items = page.locator("#triage-list li")
        await expect(items).to_have_count(100)
        await expect(items.first.locator(".ev")).to_have_text(f"#{ids[-1]}")
        await page.reload()
        await expect(page.get_by_label("Site", exact=True)).to_have_value(str(site["id"]))
        await expect(page.get_by_label("Type", exact=True)).to_have_value("site.stale")
        await expect(items).to_have_count(100)
        await page.get_by_role("link", name="Older →").click()
        await expect(page).to_have_url(re.compile(rf"before={ids[30]}$"))
        await expect(items).to_have_count(30)
        shown = [int(t.lstrip("#")) for t in await items.locator(".ev").all_inner_texts()]
        assert shown == sorted(ids[:30], reverse=True)
        await expect(page.get_by_role("link", name="Older →")).to_be_hidden()
        await shoot(page, "04-queue-triage-older")
        # An event opened from this page leads back to the same filtered, paged list.
        await items.first.locator(".ev").click()
        await expect(page).to_have_url(re.compile(rf"#/queue/events/{shown[0]}$"))
        await page.locator("#event-back").click()
        await expect(page).to_have_url(re.compile(rf"site={site['id']}&.*before={ids[30]}$"))
        await expect(items).to_have_count(30)
    finally:
        await db.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)


async def test_a_deep_link_opens_the_event_with_its_payload_errors_and_history(
    page: Page, stack: ApiProcess, seed: Seeder, db: asyncpg.Connection
) -> None:
    site = await seed.site("Triage Pad 2", 2_000)
    (event_id,) = await dead_notices(db, site["id"], 1)
    await db.execute(
        "INSERT INTO outbox_errors (event_id, attempt, worker, error) "
        "VALUES ($1, 1, 'host:1:abc', 'first failure'), ($1, 2, 'host:2:def', 'second failure')",
        event_id,
    )
    payload = json.loads(
        await db.fetchval("SELECT payload::text FROM outbox WHERE id = $1", event_id)
    )
    try:
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.goto(f"{stack.url}/#/queue/events/{event_id}")
        await expect(
            page.get_by_role("heading", name=f"Event #{event_id}", level=1)
        ).to_be_visible()
        await expect(page.locator(".ev-batch")).to_have_text(payload["batch_id"])
        await expect(page.locator(".ev-request")).to_have_text(payload["request_id"])
        errors = page.locator("#event-errors tr")
        await expect(errors).to_have_count(2)
        await expect(errors.nth(1)).to_contain_text("second failure")
        await expect(errors.nth(1)).to_contain_text("host:2:def")
        await expect(page.locator("#event-payload")).to_contain_text(payload["batch_id"])
        await page.get_by_role("button", name="Copy JSON").click()
        await expect(page.locator("#copy-status")).to_have_text("Copied.")
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert json.loads(copied) == payload
        await shoot(page, "04-queue-event")
        await page.get_by_role("button", name="Replay…").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
        await dialog.get_by_role("button", name="Dry run").click()
        await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(f"#{event_id}")
        await dialog.get_by_role("button", name="Close").click()
        history = page.locator("#event-audit li")
        await expect(history).to_have_count(1)
        await expect(history).to_contain_text("named this event")
        await expect(history).to_contain_text("dry run")
        await page.goto(f"{stack.url}/#/queue/events/987654321")
        await expect(page.get_by_text("No event #987654321")).to_be_visible()
    finally:
        await db.execute("DELETE FROM outbox WHERE id = $1", event_id)


async def test_several_selected_events_are_dry_run_then_replayed(
    page: Page, stack: ApiProcess, seed: Seeder, db: asyncpg.Connection
) -> None:
    site = await seed.site("Triage Pad 3", 2_000)
    ids = await dead_notices(db, site["id"], 4)
    try:
        await page.goto(f"{stack.url}/#/queue?site={site['id']}")
        for event_id in ids[:3]:
            await page.get_by_label(f"Select event {event_id}").check()
        await page.get_by_role("button", name="Replay 3 selected…").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
        await dialog.get_by_role("button", name="Dry run").click()
        listed = ", ".join(f"#{i}" for i in ids[:3])
        await expect(dialog.locator("[data-outcome='dry-run']")).to_contain_text(
            f"3 events would be replayed ({listed})"
        )
        assert (
            await db.fetchval(
                "SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) AND dead_at IS NOT NULL",
                ids,
            )
            == 4
        )
        await shoot(page, "04-queue-selected-dry-run", full_page=False)
        await dialog.get_by_role("button", name="Replay 3 events").click()
        await expect(dialog.locator("[data-outcome='replayed']")).to_contain_text("3 events due")
        await dialog.get_by_role("button", name="Close").click()
        await expect(page.locator("#triage-list li")).to_have_count(1)
        await expect(page.locator("#triage-list li .ev")).to_have_text(f"#{ids[3]}")
    finally:
        await db.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)


async def test_loading_and_a_failed_load_never_read_as_no_dead_events(
    page: Page, stack: ApiProcess, request: pytest.FixtureRequest
) -> None:
    request.node.allowed_console_errors = True
    release = asyncio.Event()

    async def slow_then_fail(route: Route) -> None:
        await release.wait()
        await route.fulfill(
            status=500,
            content_type="application/problem+json",
            body='{"type":"/problems/internal-error","title":"Internal server error","status":500}',
        )

    await page.route(re.compile(r"/v1/ops/outbox\?"), slow_then_fail)
    await page.goto(f"{stack.url}/#/queue")
    await expect(page.locator("#triage-loading")).to_have_text("Loading events…")
    await expect(page.get_by_text("No dead events.")).to_be_hidden()
    await shoot(page, "04-queue-triage-loading", full_page=False)
    release.set()
    await expect(page.get_by_text("Could not load the events")).to_be_visible()
    await expect(page.locator("#triage-loading")).to_have_count(0)
    await expect(page.get_by_text("No dead events.")).to_be_hidden()
    await shoot(page, "04-queue-triage-failed", full_page=False)


async def test_a_phone_shows_batch_and_request_ids_without_hovering(
    page: Page, stack: ApiProcess, seed: Seeder, db: asyncpg.Connection
) -> None:
    site = await seed.site("Triage Pad 4", 2_000)
    (event_id,) = await dead_notices(db, site["id"], 1)
    payload = json.loads(
        await db.fetchval("SELECT payload::text FROM outbox WHERE id = $1", event_id)
    )
    try:
        await page.set_viewport_size(PHONE)
        await page.goto(f"{stack.url}/#/queue?site={site['id']}")
        item = page.locator("#triage-list li")
        await expect(item).to_have_count(1)
        for selector, text in (
            (".ti-batch", payload["batch_id"]),
            (".ti-request", payload["request_id"]),
        ):
            await expect(item.locator(selector)).to_have_text(text)
            await item.locator(selector).scroll_into_view_if_needed()
            await expect(item.locator(selector)).to_be_in_viewport()
            box = await item.locator(selector).bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await item.scroll_into_view_if_needed()
        await shoot(page, "04-queue-triage-phone")
    finally:
        await db.execute("DELETE FROM outbox WHERE id = $1", event_id)
