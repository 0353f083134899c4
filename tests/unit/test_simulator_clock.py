"""The simulator's device clocks: time runs faster than real time, yet no device ever reports a
window the server would call "too far in the future", however long the run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tools.simulator import (
    EARLIEST,
    HOURLY_SPAN,
    READINGS_PER_BATCH,
    Device,
    Options,
    clock_start,
    hourly_spans,
)

NOW = datetime(2026, 11, 30, 12, 0, 7, tzinfo=UTC)
MAX_FUTURE = timedelta(seconds=300)  # the server's default MAX_FUTURE_S


def _fleet(opts: Options, now: datetime) -> list[Device]:
    start = clock_start(now, opts)
    return [
        Device(f"d{d}", d % opts.sites, "key", d // opts.sites, 2.0, start)
        for d in range(opts.devices)
    ]


def _drive(opts: Options, run_s: float) -> tuple[int, int, datetime]:
    """Send batches at opts.rate for run_s simulated seconds (no real waiting), as simulate()
    does; check every reading against the server's rule at the moment it is sent.
    Returns (readings asked for, readings generated, the latest reading)."""
    rng = random.Random(7)
    devices = _fleet(opts, NOW)
    asked = made = 0
    latest = datetime.min.replace(tzinfo=UTC)
    for n in range(int(opts.rate * run_s)):
        now = NOW + timedelta(seconds=n / opts.rate)
        want = rng.randint(*READINGS_PER_BATCH)
        readings = rng.choice(devices).next_readings(rng, want, now)
        asked, made = asked + want, made + len(readings)
        for ts, _ in readings:
            assert ts <= now + MAX_FUTURE, f"{ts} is too far in the future at {now}"
            latest = max(latest, ts)
    return asked, made, latest


def test_a_40_minute_run_never_reports_a_window_that_has_not_begun() -> None:
    # Today's 3-days-back start ran these clocks past real time after about two minutes.
    opts = Options(base_url="", admin_token="", sites=2, devices=4, rate=10, duration_s=2400)
    asked, made, latest = _drive(opts, opts.duration_s)
    assert latest <= NOW + timedelta(seconds=opts.duration_s)
    assert made == asked  # the start left room: no batch was cut short


def test_a_run_far_longer_than_planned_slows_to_real_time_instead_of_running_ahead() -> None:
    opts = Options(base_url="", admin_token="", sites=1, devices=2, rate=20, duration_s=60)
    asked, made, latest = _drive(opts, run_s=45 * 60)
    assert made < asked / 10  # caught up: one window a minute per device from then on
    assert NOW + timedelta(minutes=40) < latest <= NOW + timedelta(minutes=45)


def test_clocks_start_far_enough_back_for_the_run_and_never_before_2000() -> None:
    short = Options(base_url="", admin_token="", devices=20, rate=50, duration_s=10)
    assert clock_start(NOW, short) == NOW.replace(second=0) - timedelta(days=3)
    hour = Options(base_url="", admin_token="", devices=20, rate=50, duration_s=3600)
    # 9,000 batches a device x 15.5 readings, with a quarter and a day to spare: ~122 days.
    assert NOW - clock_start(NOW, hour) > timedelta(minutes=9000 * 15.5)
    month = Options(base_url="", admin_token="", devices=1, rate=1000, duration_s=30 * 86400)
    assert clock_start(NOW, month) == EARLIEST


def test_the_exact_check_reads_long_runs_in_spans_the_hourly_endpoint_allows() -> None:
    first = datetime(2020, 1, 1, tzinfo=UTC)
    assert hourly_spans(first, first + timedelta(hours=5)) == [(first, first + timedelta(hours=5))]
    end = first + 2 * HOURLY_SPAN + timedelta(hours=1)
    assert hourly_spans(first, end) == [
        (first, first + HOURLY_SPAN),
        (first + HOURLY_SPAN, first + 2 * HOURLY_SPAN),
        (first + 2 * HOURLY_SPAN, end),
    ]
