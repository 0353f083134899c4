"""`emissions worker` stops cleanly however often it is told to: a second Ctrl-C while it is
shutting down must not turn into a CancelledError traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if text in path.read_text(errors="replace") or proc.poll() is not None:
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("gap_s", [0.0, 0.002, 0.02])
async def test_repeated_interrupts_stop_the_worker_once_without_a_traceback(
    settings: Settings, tmp_path: Path, gap_s: float
) -> None:
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, stdout=stdout, stderr=stderr
        )
    try:
        await _wait_for(out, '"worker_started"', proc)
        assert proc.poll() is None, err.read_text()
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(gap_s)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    errors = err.read_text(errors="replace")
    assert code == 0, errors
    assert "Traceback" not in errors
    assert "CancelledError" not in errors
    assert '"worker_exited"' in out.read_text()
