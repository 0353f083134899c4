"""Sample sites, a demo device and two days of readings for `emissions run` (idempotent)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import asyncpg

from domain.readings import Window
from domain.roles import Actor
from service import devices, ingest
from service.infra.errors import InvalidDeviceKey

DEMO_DEVICE = "demo-sensor"
SEED_ACTOR = Actor("seed", "admin")
SITES = [
    ("Permian Pad 7", 40_000.0, {"basin": "Permian", "type": "well pad"}),
    ("Eagle Ford CS-2", 90_000.0, {"basin": "Eagle Ford", "type": "compressor station"}),
    ("Bakken Well 14", 12_000.0, {"basin": "Bakken", "type": "well pad"}),
    ("Marcellus Station 3", 60_000.0, {"basin": "Marcellus", "type": "compressor station"}),
]


async def seed(conn: asyncpg.Connection, *, known_key: str) -> tuple[list[int], str]:
    """The demo site ids and a live demo device key (known_key when it is still valid)."""
    for name, limit, metadata in SITES:
        await conn.execute(
            "INSERT INTO sites (name, emission_limit_kg, metadata) VALUES ($1, $2, $3) "
            "ON CONFLICT (lower(name)) DO NOTHING",
            name,
            limit,
            metadata,
        )
    rows = await conn.fetch(
        "SELECT id FROM sites WHERE lower(name) = ANY($1::text[]) ORDER BY id",
        [name.lower() for name, _, _ in SITES],
    )
    site_ids = [r["id"] for r in rows]
    key = known_key
    try:
        identity = await devices.authenticate_device(conn, key) if key else None
    except InvalidDeviceKey:
        identity = None
    if identity is None or set(identity.site_ids) != set(site_ids):
        _, key = await devices.create_device_key(
            conn, device_id=DEMO_DEVICE, site_ids=site_ids, name="make run demo", actor=SEED_ACTOR
        )
    for site_id in site_ids:
        await _history(conn, site_id)
    return site_ids, key


async def _history(conn: asyncpg.Connection, site_id: int) -> None:
    """48 hours of 15-minute readings with a daily cycle, once per site (keys make it so)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(site_id)
    base = rng.uniform(0.5, 3.0)
    for day in (2, 1):
        start = now - timedelta(days=day)
        readings = []
        for i in range(96):
            ts = start + timedelta(minutes=15 * i)
            daily = 1 + 0.4 * math.sin((ts.hour - 6) / 24 * 2 * math.pi)
            readings.append(Window(ts, round(base * daily * rng.uniform(0.8, 1.2), 3)))
        await ingest.record_batch(
            conn,
            ingest.submit(
                site_id=site_id,
                device_id=DEMO_DEVICE,
                key=f"seed-{site_id}-{start:%Y%m%d%H}",
                readings=readings,
                request_id="seed",
                retention=timedelta(days=7),
            ),
        )
