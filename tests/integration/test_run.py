"""`emissions run`: one command brings up a seeded stack; Ctrl-C stops it; data survives."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_socket

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


async def _run_once(tmp_path: Path, env: dict[str, str]) -> tuple[str, list[dict[str, object]]]:
    log = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):
            if "is running" in log.read_text() or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        text = log.read_text()
        assert "is running" in text, text[-3000:]
        key = re.search(r"key (emk_\S+)", text)
        assert key is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as client:
            sites = (await client.get("/v1/sites")).json()["items"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0
    assert log.read_text().rstrip().endswith("stopped")
    return key.group(1), sites


async def test_run_brings_up_a_seeded_stack_and_restarts_warm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    # pytest's temp dirs are private to root; Postgres runs as `postgres` when we are root.
    for directory in (tmp_path, *tmp_path.parents[:2]):
        directory.chmod(directory.stat().st_mode | 0o011)
    env.update(
        RUN_DATA_DIR=str(tmp_path / "data"),
        RUN_PG_PORT=str(_free_port()),
        RUN_REDIS_PORT=str(_free_port()),
        PORT=str(_free_port()),
        LOG_JSON="true",
    )
    first_key, first_sites = await _run_once(tmp_path, env)
    assert [s["name"] for s in first_sites] == [
        "Permian Pad 7",
        "Eagle Ford CS-2",
        "Bakken Well 14",
        "Marcellus Station 3",
    ]
    second_key, second_sites = await _run_once(tmp_path, env)
    assert second_key == first_key  # the demo device survived the restart
    assert [s["id"] for s in second_sites] == [s["id"] for s in first_sites]
