"""Hypothesis strategies shared by the domain's property tests: readings in any spelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from domain.readings import Window

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2026, 5, 31), timezones=st.just(UTC)
)
kgs = st.decimals(min_value=0, max_value=10_000, places=3).map(float)
# A batch: 1-60 readings on distinct windows (instants before 2026-06-01).
batches = st.lists(
    st.builds(Window, instants, kgs), min_size=1, max_size=60, unique_by=lambda w: w.ts
)
