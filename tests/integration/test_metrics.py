"""GET /metrics: request, ingest-result, problem and queue metrics in Prometheus text."""

from __future__ import annotations

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import batch, make_site, post_batch


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_results_replays_problems_and_queue(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    before = await scrape(client)
    items = [{"ts": "2026-01-05T00:00:00Z", "methane_kg": 1.0}]
    await post_batch(client, site, batch(items), key="a")
    await post_batch(client, site, batch(items), key="a")  # replay
    await post_batch(client, site, batch(items), key="b")  # duplicate
    await post_batch(client, site, batch([{"ts": items[0]["ts"], "methane_kg": 2.0}]))  # conflict
    await client.post(  # no device key
        f"/v1/sites/{site}/measurements", json={}, headers={"Authorization": ""}
    )
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("emissions_readings_ingested_total", result="accepted") == 1
    assert delta("emissions_readings_ingested_total", result="duplicate") == 1
    assert delta("emissions_readings_ingested_total", result="conflict") == 1
    assert delta("emissions_idempotent_replays_total") == 1
    assert delta("emissions_problems_total", type="device-key-missing") == 1
    assert value(after, "emissions_outbox_pending") == 1  # one event, not yet drained
    assert value(after, "emissions_outbox_dead") == 0
    http = [k for k in after if k[0].startswith("emissions_http_requests_total")]
    assert any(
        dict(labels).get("path") == "/v1/sites/{site_id}/measurements" for _, labels in http
    ), http
