"""Seed data for the dashboard, sent through the API as an operator and devices would."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.harness.processes import wait_for


def hours_back(end: datetime, earliest: datetime) -> datetime:
    """The earliest of end, end - 1 h, end - 2 h, … that is not before `earliest`."""
    return end - timedelta(hours=(end - earliest) // timedelta(hours=1))


def hourly_profile(
    *, start: datetime, end: datetime, total_kg: float, seed: int
) -> list[dict[str, Any]]:
    """One reading per hour in [start, end): a daily and weekly cycle with a slow drift and
    some noise, scaled so the readings add up to `total_kg` (to the gram)."""
    hours = int((end - start).total_seconds() // 3600)
    rng = random.Random(seed)
    shape = []
    for i in range(hours):
        ts = start + timedelta(hours=i)
        day = 1 + 0.35 * math.sin((ts.hour - 8) / 24 * 2 * math.pi)
        week = 1 - 0.12 * (ts.weekday() >= 5)
        drift = 1 + 0.25 * math.sin(i / (24 * 60) + seed)
        shape.append(day * week * drift * rng.uniform(0.8, 1.2))
    scale = total_kg / sum(shape) if shape else 0.0
    return [
        {"ts": (start + timedelta(hours=i)).isoformat(), "methane_kg": round(w * scale, 3)}
        for i, w in enumerate(shape)
    ]


class Seeder:
    """Sites, device keys and batches created through the public API, as an operator and
    devices would."""

    def __init__(self, client: httpx.AsyncClient, *, admin_token: str) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.keys: dict[tuple[int, str], str] = {}

    async def site(
        self, name: str, limit_kg: float, *, reporting_interval_s: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "emission_limit_kg": limit_kg}
        if reporting_interval_s is not None:
            body["reporting_interval_s"] = reporting_interval_s
        response = await self.client.post("/v1/sites", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        site: dict[str, Any] = response.json()
        return site

    async def device_key(self, site_id: int, device_id: str) -> str:
        """A key for this device, allowed to post to this site (created once)."""
        if (site_id, device_id) not in self.keys:
            response = await self.client.post(
                "/v1/devices",
                json={"device_id": device_id, "site_ids": [site_id], "name": "e2e seed"},
                headers=self.admin,
            )
            assert response.status_code == 201, response.text
            self.keys[site_id, device_id] = response.json()["key"]
        return self.keys[site_id, device_id]

    async def send(
        self,
        site_id: int,
        readings: list[dict[str, Any]],
        *,
        device_id: str = "sensor-1",
        batch_size: int = 1000,
        recent: int = 0,
    ) -> list[dict[str, Any]]:
        """Post readings in batches (each with its own key); the receipts, in order. The last
        `recent` readings go four at a time, as a device posting every few hours would."""
        receipts = []
        key = await self.device_key(site_id, device_id)
        old, new = readings[: len(readings) - recent], readings[len(readings) - recent :]
        batches = [old[i : i + batch_size] for i in range(0, len(old), batch_size)]
        batches += [new[i : i + 4] for i in range(0, len(new), 4)]
        for batch in batches:
            response = await self.client.post(
                f"/v1/sites/{site_id}/measurements",
                json={"device_id": device_id, "measurements": batch},
                headers={
                    "Idempotency-Key": f"seed-{uuid.uuid4().hex}",
                    "Authorization": f"Bearer {key}",
                },
            )
            assert response.status_code == 202, response.text
            receipts.append(response.json())
        return receipts

    async def get_site(self, site_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/v1/sites/{site_id}")
        assert response.status_code == 200, response.text
        site: dict[str, Any] = response.json()
        return site

    async def wait_applied(self, site_id: int, readings: int, timeout: float = 15.0) -> None:
        """Until the worker has applied `readings` readings of this site."""

        async def done() -> bool:
            count: int = (await self.get_site(site_id))["reading_count"]
            return count >= readings

        await wait_for(done, timeout=timeout, message=f"site {site_id} never reached {readings}")


def now() -> datetime:
    return datetime.now(UTC)
