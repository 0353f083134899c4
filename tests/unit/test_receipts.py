"""classify: a re-sent reading is a duplicate when its value is equal, else a conflict."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.receipts import Conflict, classify


def test_classify_nothing_is_no_duplicates_and_no_conflicts() -> None:
    assert classify([]) == (0, [])


def test_classify_splits_equal_values_from_different_ones() -> None:
    t0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    t1 = datetime(2026, 1, 5, 0, 15, tzinfo=UTC)
    t2 = datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
    duplicates, conflicts = classify([(t0, 1.5, 1.5), (t1, 9.75, 2.0), (t2, 0.0, 0.0)])
    assert duplicates == 2
    assert conflicts == [Conflict(ts=t1, stored_methane_kg=2.0, received_methane_kg=9.75)]


def test_classify_compares_floats_exactly() -> None:
    t0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    duplicates, conflicts = classify([(t0, 0.1 + 0.2, 0.3)])
    assert duplicates == 0
    assert conflicts == [Conflict(ts=t0, stored_methane_kg=0.3, received_methane_kg=0.1 + 0.2)]
