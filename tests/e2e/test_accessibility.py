"""axe-core (through axe-playwright-python) on every dashboard page, at desktop and phone
width: no violation of WCAG 2.1 A/AA. Each page's findings go to artifacts/axe/ as JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Page, ViewportSize, expect

from tests.e2e.conftest import ARTIFACTS, LAPTOP, PHONE, shoot
from tests.harness.processes import ApiProcess

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PAGES = ["sites", "site", "report", "alerts", "queue", "event", "subscriptions", "audit", "ingest"]
WIDTHS: dict[str, ViewportSize] = {
    "desktop": {"width": LAPTOP["width"], "height": LAPTOP["height"]},
    "phone": {"width": PHONE["width"], "height": PHONE["height"]},
    # Dark mode at desktop width: its own palette, so its own contrast (axe's color-contrast
    # rule was checked to flag a planted #eee-on-light paragraph, so a miss would show).
    "desktop-dark": {"width": LAPTOP["width"], "height": LAPTOP["height"]},
}


async def _route(name: str, fleet: dict[str, dict[str, Any]], http: httpx.AsyncClient) -> str:
    site_id = fleet["Bravo Compressor Station"]["id"]
    if name == "event":  # one outbox event's detail: the newest of the seeded fleet's
        listed = await http.get("/v1/ops/outbox", params={"site_id": site_id, "limit": 1})
        assert listed.status_code == 200, listed.text
        return f"queue/events/{listed.json()['items'][0]['id']}"
    return {"site": f"sites/{site_id}", "report": f"sites/{site_id}/report"}.get(name, name)


def _summary(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [" ".join(map(str, n["target"])) for n in v["nodes"][:4]]
        lines.append(f"{v['id']} ({v['impact']}, {len(v['nodes'])} nodes): {v['help']}")
        lines.extend(f"    {t}" for t in targets)
    return "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
async def test_page_has_no_wcag_21_aa_violation(
    page: Page,
    stack: ApiProcess,
    http: httpx.AsyncClient,
    fleet: dict[str, dict[str, Any]],
    name: str,
    width: str,
) -> None:
    await page.set_viewport_size(WIDTHS[width])
    await page.emulate_media(color_scheme="dark" if width.endswith("-dark") else "light")
    await page.goto(f"{stack.url}/#/{await _route(name, fleet, http)}")
    await expect(page.locator("#main h1")).to_be_visible()
    # Scan the page as a user sees it after its first answers, not its loading state.
    await expect(page.locator("#live")).to_contain_text("Live")
    await expect(page.locator("#main .loading:visible")).to_have_count(0)
    await page.wait_for_timeout(500)
    results = await Axe().run(
        page, options={"runOnly": {"type": "tag", "values": TAGS}, "resultTypes": ["violations"]}
    )
    violations: list[dict[str, Any]] = results.response["violations"]
    out = ARTIFACTS / "axe"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}-{width}.json").write_text(json.dumps(violations, indent=1))
    await shoot(page, f"a11y-{name}-{width}")
    assert violations == [], f"#/{name} at {width} width:\n{_summary(violations)}"
