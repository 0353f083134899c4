"""Interleaved rounds: one row per case from its rounds, as the median and the spread (max - min).

A verdict taken from one round moves with whatever else the machine did during it; alternating
the cases round after round exposes them to the same spells of noise, and the median of three
or more is not decided by one disturbed round.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from tests.bench.phases import Row


def median_spread(values: Sequence[float]) -> tuple[float, float]:
    """(median, max - min); NaN for no values."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), max(values) - min(values)


def _med(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(known) if known else None


def combine(rounds: list[Row]) -> Row:
    """The case's rounds as one row: medians of every number, each round's batches/s and
    ratios kept in `extra`, spreads in their own fields. The last round's notes are kept."""
    last = rounds[-1]
    rates = [r.batches_per_s or 0.0 for r in rounds]
    rate, spread = median_spread([v for v in rates if math.isfinite(v)])
    groups = dict.fromkeys(g for r in rounds for g in r.cpu)  # in the order measured
    row = Row(
        last.section,
        last.case,
        batches_per_s=rate,
        readings_per_s=_med([r.readings_per_s for r in rounds]),
        p50_ms=_med([r.p50_ms for r in rounds]),
        p99_ms=_med([r.p99_ms for r in rounds]),
        cpu={g: round(statistics.median(r.cpu.get(g, 0.0) for r in rounds), 3) for g in groups},
        extra=dict(last.extra),
        system=last.system,
        spread=spread,
        rounds=len(rounds),
    )
    row.extra["rounds_per_s"] = [round(v) if math.isfinite(v) else None for v in rates]
    for name in ("ratio", "vs_copy"):
        values = [getattr(r, name) for r in rounds if getattr(r, name) is not None]
        if values:
            mid, width = median_spread(values)
            setattr(row, name, mid)
            setattr(row, f"{name}_spread", width)
            row.extra[f"{name}_rounds"] = [round(v, 3) for v in values]
    return row
