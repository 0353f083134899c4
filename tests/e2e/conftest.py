"""Browser tests on the real stack: Postgres and Redis (tests/harness), a migrated database, the
API and a worker as processes, seeded through the API, and Debian's Chromium under Playwright.

One stack per session (starting it is most of the cost); every test makes its own sites, so the
tests do not depend on each other or on their order. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from tests.e2e.stack import Seeder, hourly_profile, hours_back, now
from tests.harness.databases import create_database, drop_database
from tests.harness.processes import ROOT, ApiProcess, WorkerProcess
from tests.harness.services import PostgresServer, RedisServer

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
LOGS = ARTIFACTS / "e2e-logs"
ADMIN_TOKEN = "dev-admin-token"
PRODUCTION_TOKEN = "prod-token-for-e2e-0123456789abcdef"  # production wants 32+
# One token of each lower role, in both APIs (name:role:token entries of ADMIN_TOKENS).
VIEWER_TOKEN = "viewer-token-for-e2e-0123456789abcdef"
OPERATOR_TOKEN = "operator-token-for-e2e-0123456789abcdef"
LOWER_ROLES = f"wall:viewer:{VIEWER_TOKEN},oncall:operator:{OPERATOR_TOKEN}"
DATABASE = f"e2e_dashboard_{os.getpid()}"
LAPTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Dead-letter after two quick failures, so the poison test waits about a second, not minutes.
WORKER_ENV = {
    "DRAIN_MAX_ATTEMPTS": "2",
    "DRAIN_BACKOFF_BASE_S": "0.2",
    "DRAIN_BACKOFF_CAP_S": "0.5",
    # Likewise a webhook delivery: dead after two quick failures.
    "DELIVERY_MAX_ATTEMPTS": "2",
    "DELIVERY_BACKOFF_BASE_S": "0.2",
    "DELIVERY_BACKOFF_CAP_S": "0.5",
    "DELIVERY_POLL_S": "0.2",
}


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; a missing browser fails the suite (it never skips silently)."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
async def database_url(pg_server: PostgresServer, template_db: str) -> AsyncIterator[str]:
    """A migrated database for the whole session (cloned from the migrated template)."""
    yield await create_database(pg_server, DATABASE, template=template_db)
    await drop_database(pg_server, DATABASE)


@pytest.fixture(scope="session")
async def api(
    database_url: str, redis_server: RedisServer, artifacts: Path
) -> AsyncIterator[ApiProcess]:
    process = ApiProcess(
        env={
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "ADMIN_TOKENS": f"dev:{ADMIN_TOKEN},{LOWER_ROLES}",
        },
        log_dir=LOGS,
    )
    await process.start()
    yield process
    await process.stop()


@pytest.fixture(scope="session")
async def worker(
    database_url: str, redis_server: RedisServer, artifacts: Path
) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(
        database_url=database_url, redis_url=redis_server.url, log_dir=LOGS, env=WORKER_ENV
    )
    async with process:
        yield process


@pytest.fixture(scope="session")
async def production_api(
    database_url: str, redis_server: RedisServer, artifacts: Path
) -> AsyncIterator[ApiProcess]:
    """A second API process on the same database, in production mode: reads need a token."""
    process = ApiProcess(
        env={
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "ENVIRONMENT": "production",
            "ADMIN_TOKENS": f"ops:{PRODUCTION_TOKEN},{LOWER_ROLES}",
        },
        log_dir=LOGS,
        name="api-production",
    )
    await process.start()
    yield process
    await process.stop()


@pytest.fixture(scope="session")
async def stack(api: ApiProcess, worker: WorkerProcess) -> ApiProcess:
    """The API and a worker, both running: what the dashboard needs."""
    return api


@pytest.fixture(scope="session")
async def http(stack: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def seed(http: httpx.AsyncClient) -> Seeder:
    return Seeder(http, admin_token=ADMIN_TOKEN)


@pytest.fixture(scope="session")
async def fleet(seed: Seeder) -> dict[str, dict[str, Any]]:
    """Six sites an ops engineer would recognise: ok, warning, exceeded, stale and empty, with
    hourly readings since 1 January (two since last October), each scaled to a chosen share of
    its annual limit so the statuses do not depend on the date. By name, as the API shows them.
    """
    # Hourly readings on the quarter hour, the newest in the window under way (fresh: its
    # start is less than 15 minutes ago), the oldest on or after 1 January.
    t = now()
    end = t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0) + timedelta(hours=1)
    year_start = hours_back(end, datetime(t.year, 1, 1, tzinfo=UTC))
    last_october = hours_back(year_start, datetime(t.year - 1, 10, 1, tzinfo=UTC))
    plans = [
        # name, annual limit kg, share of the limit this year, hours since the newest reading
        ("Permian Pad 14", 12_000, 0.45, 0, True),
        ("Bravo Compressor Station", 40_000, 0.84, 0, False),
        ("Eagle Ford Well Pad 3", 9_000, 1.26, 0, True),
        ("Marcellus Gathering Hub", 25_000, 0.2, 0, False),
        ("Delaware Basin Pad 7", 6_000, 0.55, 72, False),
        ("Haynesville Pad 2", 8_000, 0.0, 0, False),
    ]
    sites = {}
    for i, (name, limit, share, gap, last_year) in enumerate(plans):
        site = await seed.site(name, limit)
        sites[name] = site
        if not share:
            continue
        readings = hourly_profile(
            start=year_start, end=end - timedelta(hours=gap), total_kg=share * limit, seed=i
        )
        if last_year:  # last quarter of last year: lifetime > year to date
            readings = (
                hourly_profile(
                    start=last_october, end=year_start, total_kg=0.3 * share * limit, seed=i
                )
                + readings
            )
        await seed.send(site["id"], readings, device_id=f"sensor-{site['id']}-a", recent=24)
        site["seeded_readings"] = len(readings)
    for name, site in sites.items():
        await seed.wait_applied(site["id"], site.get("seeded_readings", 0), timeout=60)
        sites[name] = await seed.get_site(site["id"])
    return sites


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, for what no API does (breaking the drain on purpose)."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(
        viewport=LAPTOP, locale="en-US", timezone_id="UTC", color_scheme="light"
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(
    context: BrowserContext, stack: ApiProcess, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A tab on the dashboard's origin; its console errors fail the test, and a failing test
    leaves a screenshot of what the browser showed."""
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        await tab.screenshot(path=str(SCREENSHOTS / f"failed-{name}.png"), full_page=True)
    allowed = getattr(request.node, "allowed_console_errors", False)
    assert allowed or not errors, "\n".join(errors)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


async def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under artifacts/screenshots/ (named for the page it shows)."""
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
