"""check_batch: every ingest rule, each broken rule reported with a JSON pointer; any batch
within the rules is accepted, any other refused."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import FieldError, InvalidBatch
from domain.readings import BatchLimits, Window, check_batch
from tests.unit.strategies import batches, kgs, offsets

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LIMITS = BatchLimits(
    max_readings=3,
    max_methane_kg=100.0,
    max_future=timedelta(minutes=5),
    earliest=datetime(2020, 1, 1, tzinfo=UTC),
)
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def errors_of(readings: list[Window]) -> list[FieldError]:
    with pytest.raises(InvalidBatch) as caught:
        check_batch(readings, limits=LIMITS, now=NOW)
    return caught.value.errors


def test_valid_batch_returns_none() -> None:
    readings = [Window(T0, 0.0), Window(T0 + timedelta(minutes=15), 100.0)]
    check_batch(readings, limits=LIMITS, now=NOW)  # accepted: no InvalidBatch


def test_empty_batch_is_rejected_at_the_measurements_list() -> None:
    assert errors_of([]) == [FieldError("/measurements", "a batch needs at least one reading")]


def test_too_many_readings_is_one_error_without_walking_the_batch() -> None:
    naive = datetime(2026, 1, 5, 10, 0)  # would be an error too, if the readings were walked
    readings = [Window(naive, -1.0) for _ in range(4)]
    assert errors_of(readings) == [
        FieldError("/measurements", "at most 3 readings per batch, got 4")
    ]


def test_exactly_max_readings_is_accepted() -> None:
    readings = [Window(T0 + timedelta(minutes=i), 1.0) for i in range(3)]
    check_batch(readings, limits=LIMITS, now=NOW)  # accepted: no InvalidBatch


def test_naive_timestamp_is_rejected_with_a_pointer() -> None:
    readings = [Window(T0, 1.0), Window(datetime(2026, 1, 5, 10, 15), 1.0)]
    assert errors_of(readings) == [FieldError("/measurements/1/ts", "needs an explicit UTC offset")]


def test_timestamp_before_earliest_is_rejected() -> None:
    readings = [Window(datetime(2019, 12, 31, 23, 59, tzinfo=UTC), 1.0)]
    assert errors_of(readings) == [
        FieldError("/measurements/0/ts", "is before 2020-01-01T00:00:00+00:00")
    ]


def test_timestamp_exactly_at_earliest_is_accepted() -> None:
    readings = [Window(datetime(2020, 1, 1, tzinfo=UTC), 1.0)]
    check_batch(readings, limits=LIMITS, now=NOW)  # accepted: no InvalidBatch


def test_timestamp_beyond_now_plus_max_future_is_rejected() -> None:
    readings = [Window(NOW + timedelta(minutes=5, microseconds=1), 1.0)]
    assert errors_of(readings) == [FieldError("/measurements/0/ts", "is too far in the future")]


def test_timestamp_exactly_at_now_plus_max_future_is_accepted() -> None:
    readings = [Window(NOW + timedelta(minutes=5), 1.0)]
    check_batch(readings, limits=LIMITS, now=NOW)  # accepted: no InvalidBatch


def test_future_bound_compares_instants_not_wall_clock() -> None:
    # 17:04 at +05:00 is 12:04Z: inside the bound although the wall clock is hours ahead.
    plus5 = timezone(timedelta(hours=5))
    readings = [Window(datetime(2026, 1, 5, 17, 4, tzinfo=plus5), 1.0)]
    check_batch(readings, limits=LIMITS, now=NOW)  # accepted: no InvalidBatch


def test_nan_is_rejected_as_not_finite() -> None:
    assert errors_of([Window(T0, float("nan"))]) == [
        FieldError("/measurements/0/methane_kg", "must be a finite number")
    ]


def test_positive_infinity_is_rejected_as_not_finite() -> None:
    assert errors_of([Window(T0, float("inf"))]) == [
        FieldError("/measurements/0/methane_kg", "must be a finite number")
    ]


def test_negative_methane_is_rejected_with_the_allowed_range() -> None:
    assert errors_of([Window(T0, -0.001)]) == [
        FieldError("/measurements/0/methane_kg", "must be within [0, 100] kg")
    ]


def test_methane_above_max_is_rejected_and_max_itself_is_accepted() -> None:
    assert errors_of([Window(T0, 100.001)]) == [
        FieldError("/measurements/0/methane_kg", "must be within [0, 100] kg")
    ]
    check_batch([Window(T0, 100.0)], limits=LIMITS, now=NOW)  # accepted: no InvalidBatch


def test_repeated_window_points_at_the_first_occurrence() -> None:
    readings = [Window(T0, 1.0), Window(T0 + timedelta(minutes=15), 1.0), Window(T0, 2.0)]
    assert errors_of(readings) == [
        FieldError("/measurements/2/ts", "repeats the window of /measurements/0")
    ]


def test_same_instant_spelled_with_another_offset_is_a_repeat() -> None:
    minus3 = timezone(timedelta(hours=-3))
    readings = [Window(T0, 1.0), Window(datetime(2026, 1, 5, 7, 0, tzinfo=minus3), 1.0)]
    assert errors_of(readings) == [
        FieldError("/measurements/1/ts", "repeats the window of /measurements/0")
    ]


def test_every_broken_rule_is_reported_at_once_in_order() -> None:
    readings = [
        Window(datetime(2026, 1, 5, 10, 0), float("nan")),
        Window(T0 + timedelta(minutes=15), 1.0),
        Window(NOW + timedelta(hours=1), -5.0),
    ]
    assert errors_of(readings) == [
        FieldError("/measurements/0/ts", "needs an explicit UTC offset"),
        FieldError("/measurements/0/methane_kg", "must be a finite number"),
        FieldError("/measurements/2/ts", "is too far in the future"),
        FieldError("/measurements/2/methane_kg", "must be within [0, 100] kg"),
    ]


def test_invalid_batch_message_is_its_docstring() -> None:
    with pytest.raises(InvalidBatch, match="breaks one or more ingest rules"):
        check_batch([], limits=LIMITS, now=NOW)


# --------------------------------------------------------------------------- any batch

# The default limits, and a clock after every instant the strategies draw.
DEFAULTS = BatchLimits()
JUNE = datetime(2026, 6, 1, tzinfo=UTC)


@given(batches)
def test_any_batch_within_the_limits_is_accepted(batch: list[Window]) -> None:
    check_batch(batch, limits=DEFAULTS, now=JUNE)  # accepted: no InvalidBatch


@given(batches, st.data())
def test_a_repeated_window_is_always_rejected_whatever_its_spelling(
    batch: list[Window], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(batch) - 1))
    tz = data.draw(offsets)
    repeated = [*batch, Window(batch[i].ts.astimezone(tz), batch[i].methane_kg)]
    try:
        check_batch(repeated, limits=DEFAULTS, now=JUNE)
    except InvalidBatch as exc:
        assert any(e.detail.startswith("repeats the window") for e in exc.errors)
    else:
        raise AssertionError("a repeated window was accepted")


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
            and DEFAULTS.earliest <= w.ts <= JUNE + DEFAULTS.max_future
            and math.isfinite(w.methane_kg)
            and 0 <= w.methane_kg <= DEFAULTS.max_methane_kg
        )

    distinct = len({w.ts for w in batch if w.ts.utcoffset() is not None}) == len(batch)
    expected_ok = all(keeps(w) for w in batch) and distinct
    try:
        check_batch(batch, limits=DEFAULTS, now=JUNE)
    except InvalidBatch:
        assert not expected_ok
    else:
        assert expected_ok
