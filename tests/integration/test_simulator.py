"""`emissions simulate` against the real API and a real worker: exact, with faults injected."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import ADMIN_TOKEN, RunningApi
from tests.harness.services import RedisServer
from tests.integration.workers import WorkerProcess
from tools.simulator import Options, simulate

pytestmark = pytest.mark.slow


async def test_simulated_devices_through_faults_end_in_exact_totals(
    api: RunningApi, db_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    out = io.StringIO()
    async with WorkerProcess(
        database_url=db_url, redis_url=redis_server.url, log_dir=tmp_path, name="sim-worker"
    ):
        code = await simulate(
            Options(
                base_url=api.url,
                admin_token=ADMIN_TOKEN,
                sites=3,
                devices=6,
                rate=40,
                duration_s=4,
                faults=0.3,
                seed=5,
            ),
            Console(file=out, width=160),
        )
    text = out.getvalue()
    assert code == 0, text
    assert "EXACT" in text
    assert "lost_response" in text and "reset_mid_body" in text
