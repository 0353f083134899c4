"""Request fingerprints: equal for bodies that mean the same batch, different otherwise."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from domain.fingerprint import canonical, canonical_fingerprint
from domain.readings import Reading, Window
from tests.unit.strategies import batches, offsets

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 5, 0, 15, tzinfo=UTC)
BATCH = [Window(T0, 1.0), Window(T1, 2.0)]


def batch_fingerprint(device_id: str, readings: Sequence[Reading]) -> bytes:
    """What ingest fingerprints: the canonical batch (UTC, ordered by window) of the device."""
    return canonical_fingerprint(device_id, canonical(readings))


def test_fingerprint_is_a_32_byte_sha256_digest() -> None:
    digest = batch_fingerprint("dev-1", BATCH)
    assert isinstance(digest, bytes)
    assert len(digest) == 32


def test_fingerprint_is_deterministic() -> None:
    assert batch_fingerprint("dev-1", BATCH) == batch_fingerprint("dev-1", list(BATCH))


def test_reordered_readings_have_the_same_fingerprint() -> None:
    assert batch_fingerprint("dev-1", [Window(T1, 2.0), Window(T0, 1.0)]) == batch_fingerprint(
        "dev-1", BATCH
    )


def test_offset_spelling_does_not_change_the_fingerprint() -> None:
    plus2 = timezone(timedelta(hours=2))
    minus5 = timezone(timedelta(hours=-5))
    same = [
        Window(datetime(2026, 1, 5, 2, 15, tzinfo=plus2), 2.0),
        Window(datetime(2026, 1, 4, 19, 0, tzinfo=minus5), 1.0),
    ]
    assert batch_fingerprint("dev-1", same) == batch_fingerprint("dev-1", BATCH)


def test_a_changed_value_changes_the_fingerprint() -> None:
    changed = [Window(T0, 1.0), Window(T1, 2.0000001)]
    assert batch_fingerprint("dev-1", changed) != batch_fingerprint("dev-1", BATCH)


def test_a_changed_window_changes_the_fingerprint() -> None:
    changed = [Window(T0, 1.0), Window(T1 + timedelta(microseconds=1), 2.0)]
    assert batch_fingerprint("dev-1", changed) != batch_fingerprint("dev-1", BATCH)


def test_another_device_changes_the_fingerprint() -> None:
    assert batch_fingerprint("dev-2", BATCH) != batch_fingerprint("dev-1", BATCH)


def test_an_added_or_dropped_reading_changes_the_fingerprint() -> None:
    longer = [*BATCH, Window(T1 + timedelta(minutes=15), 3.0)]
    assert batch_fingerprint("dev-1", longer) != batch_fingerprint("dev-1", BATCH)
    assert batch_fingerprint("dev-1", BATCH[:1]) != batch_fingerprint("dev-1", BATCH)


def test_swapping_values_between_windows_changes_the_fingerprint() -> None:
    swapped = [Window(T0, 2.0), Window(T1, 1.0)]
    assert batch_fingerprint("dev-1", swapped) != batch_fingerprint("dev-1", BATCH)


def test_fingerprint_bytes_are_stable_across_releases() -> None:
    # Stored idempotency records keep their fingerprint for the retention window: a retry
    # after an upgrade must still match. Pinned from the first release's implementation.
    plus2 = timezone(timedelta(hours=2))
    batch = [
        Window(datetime(2026, 1, 5, 2, 15, tzinfo=plus2), 2.5),
        Window(T0, 0.125),
        Window(T0 + timedelta(minutes=30), 1e-7),
    ]
    assert batch_fingerprint("pad-7", batch).hex() == (
        "fd91019be27b11c8fe3ab5f834fca08ae8aa992c44e62f97f863fe2910fc0505"
    )


# --------------------------------------------------------------------------- any batch


@given(batches, st.randoms(), offsets)
def test_fingerprint_ignores_order_and_offset_spelling(
    batch: list[Window], rnd: random.Random, tz: timezone
) -> None:
    respelled = [Window(w.ts.astimezone(tz), w.methane_kg) for w in batch]
    rnd.shuffle(respelled)
    assert batch_fingerprint("d", respelled) == batch_fingerprint("d", batch)


@given(batches, st.data())
def test_fingerprint_changes_with_any_value(batch: list[Window], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(batch) - 1))
    changed = list(batch)
    changed[i] = Window(batch[i].ts, batch[i].methane_kg + 0.5)
    assert batch_fingerprint("d", changed) != batch_fingerprint("d", batch)
