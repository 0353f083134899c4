"""UTC hour and year bucketing: truncation, offsets, year ends, and sums for any delivery order."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.buckets import hour_of, hours_of
from domain.readings import Window
from tests.unit.strategies import instants, kgs, offsets

PLUS5 = timezone(timedelta(hours=5))


def test_hour_of_truncates_to_the_utc_hour() -> None:
    ts = datetime(2026, 3, 4, 5, 59, 59, 999_999, tzinfo=UTC)
    assert hour_of(ts) == datetime(2026, 3, 4, 5, 0, tzinfo=UTC)


def test_hour_of_normalises_an_offset_to_utc() -> None:
    hour = hour_of(datetime(2026, 3, 4, 5, 30, tzinfo=PLUS5))
    assert hour == datetime(2026, 3, 4, 0, 0, tzinfo=UTC)
    assert hour.utcoffset() == timedelta(0)


def test_last_half_hour_of_the_year_counts_in_that_year_and_hour() -> None:
    ts = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert hour_of(ts).year == 2025
    assert hour_of(ts) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


def test_the_year_a_window_counts_in_is_its_utc_hour_s_year() -> None:
    # New Year's morning at +05:00 is still the old year in UTC.
    assert hour_of(datetime(2026, 1, 1, 4, 30, tzinfo=PLUS5)).year == 2025
    assert hour_of(datetime(2026, 1, 1, 5, 0, tzinfo=PLUS5)).year == 2026


def test_hours_of_is_distinct_and_ascending() -> None:
    stamps = [
        datetime(2026, 1, 5, 2, 45, tzinfo=UTC),
        datetime(2026, 1, 5, 0, 15, tzinfo=UTC),
        datetime(2026, 1, 5, 5, 10, tzinfo=PLUS5),  # 00:10Z: same hour as 00:15Z
        datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
    ]
    assert hours_of(stamps) == [
        datetime(2026, 1, 5, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
    ]


def test_hours_of_nothing_is_empty() -> None:
    assert hours_of([]) == []


@given(st.lists(st.builds(Window, instants, kgs), min_size=1, max_size=80), st.randoms())
def test_bucket_sums_equal_the_raw_sum_for_any_order_and_duplication(
    sent: list[Window], rnd: random.Random
) -> None:
    # The store keeps the first value per window; duplicates and retries add nothing.
    deliveries = sent + [rnd.choice(sent) for _ in range(len(sent) // 2)]
    rnd.shuffle(deliveries)
    stored: dict[datetime, float] = {}
    for w in deliveries:
        stored.setdefault(w.ts, w.methane_kg)
    buckets: dict[datetime, Decimal] = defaultdict(Decimal)
    for ts, kg in stored.items():
        buckets[hour_of(ts)] += Decimal(str(kg))
    assert sum(buckets.values(), Decimal(0)) == sum(
        (Decimal(str(kg)) for kg in stored.values()), Decimal(0)
    )
    assert sorted(buckets) == hours_of(stored)
    for hour in buckets:
        assert hour.minute == hour.second == hour.microsecond == 0
        assert hour.tzinfo is UTC


@settings(max_examples=200)
@given(instants, offsets)
def test_hour_and_year_never_depend_on_the_offset(ts: datetime, tz: timezone) -> None:
    local = ts.astimezone(tz)
    assert hour_of(local) == hour_of(ts)
    assert hour_of(local).year == ts.year
    assert hour_of(ts) <= ts < hour_of(ts) + timedelta(hours=1)
