"""The real ingest and drain SQL against a model: any readings, any order, any duplication."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import MAX_PREC, Decimal, localcontext

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.buckets import hour_of
from domain.readings import Window
from service import ingest
from service.drain import RetryPolicy, drain_batch
from service.infra import db

instants = st.datetimes(
    min_value=datetime(2025, 12, 31, 20), max_value=datetime(2026, 1, 1, 4), timezones=st.just(UTC)
).map(lambda ts: ts.replace(second=0, microsecond=0))
# Any float a batch may carry, not only short decimals: the totals add each one's shortest
# decimal (Decimal(str(kg))), exactly.
kgs = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


async def _check(db_url: str, sent: list[Window], rnd: random.Random) -> None:
    conn = await db.connect(db_url)
    try:
        site = await conn.fetchval(
            "INSERT INTO sites (name, emission_limit_kg) VALUES ($1, 1e9) RETURNING id",
            f"prop-{uuid.uuid4()}",
        )
        batches = [sent[i : i + rnd.randint(1, 7)] for i in range(0, len(sent), 7)]
        deliveries = [(f"k{i}", b) for i, b in enumerate(batches)]
        deliveries += [rnd.choice(deliveries) for _ in range(len(deliveries))]  # retries
        deliveries += [(f"again{i}", rnd.sample(sent, min(3, len(sent)))) for i in range(3)]
        rnd.shuffle(deliveries)
        stored: dict[datetime, float] = {}
        for key, readings in deliveries:
            unique = list({w.ts: w for w in readings}.values())
            outcome = await ingest.record_batch(
                conn,
                ingest.submit(
                    site_id=site,
                    device_id="d",
                    key=key,
                    readings=unique,
                    request_id="p",
                    retention=timedelta(days=1),
                ),
            )
            if not outcome.replayed:
                for w in sorted(unique, key=lambda w: w.ts):
                    stored.setdefault(w.ts, w.methane_kg)
            if rnd.random() < 0.3:  # drain at random moments, not only at the end
                await drain_batch(conn, limit=5, policy=RetryPolicy())
        while (await drain_batch(conn, limit=100, policy=RetryPolicy())).claimed:
            pass
        model: dict[datetime, Decimal] = defaultdict(Decimal)
        for ts, kg in stored.items():
            model[hour_of(ts)] += Decimal(str(kg))
        rows = await conn.fetch("SELECT hour, total_kg FROM site_hourly WHERE site_id=$1", site)
        assert {r["hour"]: r["total_kg"] for r in rows} == dict(model)
        totals = await conn.fetchrow("SELECT * FROM site_totals WHERE site_id = $1", site)
        assert totals is not None
        assert totals["lifetime_kg"] == sum(model.values(), Decimal(0))
        assert totals["readings"] == len(stored)
        this_year = datetime.now(UTC).year
        assert totals["year_kg"] == sum(
            (v for h, v in model.items() if h.year == this_year), Decimal(0)
        )
    finally:
        await conn.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.builds(Window, instants, kgs), min_size=1, max_size=40, unique_by=lambda w: w.ts),
    st.randoms(use_true_random=False),
)
def test_stored_buckets_equal_the_model_for_any_delivery_order(
    db_url: str, sent: list[Window], rnd: random.Random
) -> None:
    with localcontext(prec=MAX_PREC):  # the model adds exactly, as numeric does
        asyncio.run(_check(db_url, sent, rnd))
