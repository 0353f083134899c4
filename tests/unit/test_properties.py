"""Property tests of the domain rules: any batch, any order, any duplication."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.buckets import hour_of, hours_of, year_of
from domain.errors import InvalidBatch
from domain.fingerprint import batch_fingerprint
from domain.readings import BatchLimits, Window, check_batch

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LIMITS = BatchLimits()
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2026, 5, 31), timezones=st.just(UTC)
)
kgs = st.decimals(min_value=0, max_value=10_000, places=3).map(float)
readings = st.lists(
    st.builds(Window, instants, kgs), min_size=1, max_size=60, unique_by=lambda w: w.ts
)


@given(readings, st.randoms(), offsets)
def test_fingerprint_ignores_order_and_offset_spelling(
    batch: list[Window], rnd: random.Random, tz: timezone
) -> None:
    respelled = [Window(w.ts.astimezone(tz), w.methane_kg) for w in batch]
    rnd.shuffle(respelled)
    assert batch_fingerprint("d", respelled) == batch_fingerprint("d", batch)


@given(readings, st.data())
def test_fingerprint_changes_with_any_value(batch: list[Window], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(batch) - 1))
    changed = list(batch)
    changed[i] = Window(batch[i].ts, batch[i].methane_kg + 0.5)
    assert batch_fingerprint("d", changed) != batch_fingerprint("d", batch)


@given(readings)
def test_any_batch_within_the_limits_is_accepted(batch: list[Window]) -> None:
    assert check_batch(batch, limits=LIMITS, now=NOW) is None


@given(readings, st.data())
def test_a_repeated_window_is_always_rejected_whatever_its_spelling(
    batch: list[Window], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(batch) - 1))
    tz = data.draw(offsets)
    repeated = [*batch, Window(batch[i].ts.astimezone(tz), batch[i].methane_kg)]
    try:
        check_batch(repeated, limits=LIMITS, now=NOW)
    except InvalidBatch as exc:
        assert any(e.detail.startswith("repeats the window") for e in exc.errors)
    else:
        raise AssertionError("a repeated window was accepted")


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
    assert year_of(local) == ts.year
    assert hour_of(ts) <= ts < hour_of(ts) + timedelta(hours=1)


any_kgs = st.one_of(
    kgs, st.floats(allow_nan=True, allow_infinity=True), st.just(-0.001), st.just(1e6 + 1)
)
any_stamps = st.one_of(
    st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2026, 6, 2), timezones=offsets),
    st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2026, 6, 2)),  # naive
)


@given(st.lists(st.builds(Window, any_stamps, any_kgs), min_size=1, max_size=30))
def test_a_batch_is_accepted_exactly_when_every_reading_keeps_every_rule(
    batch: list[Window],
) -> None:
    # check_batch answers the usual batch with whole-batch min/max/sum/set checks and walks
    # the readings only to itemise errors: it must agree with this reading-by-reading rule.
    def keeps(w: Window) -> bool:
        aware = w.ts.utcoffset() is not None
        return (
            aware
            and LIMITS.earliest <= w.ts <= NOW + LIMITS.max_future
            and math.isfinite(w.methane_kg)
            and 0 <= w.methane_kg <= LIMITS.max_methane_kg
        )

    distinct = len({w.ts for w in batch if w.ts.utcoffset() is not None}) == len(batch)
    expected_ok = all(keeps(w) for w in batch) and distinct
    try:
        check_batch(batch, limits=LIMITS, now=NOW)
    except InvalidBatch:
        assert not expected_ok
    else:
        assert expected_ok
