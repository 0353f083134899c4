"""`emissions run`: one command brings up a seeded stack; Ctrl-C stops it; data survives;
`emissions reset` wipes it."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from cli.localservers import SHARED_DATA_ROOT, LocalPostgres, default_data_dir, server_user
from tests.conftest import free_socket

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "NATS_URL", "PORT", "RUN_DATA_DIR")
    }
    env.update(
        RUN_PG_PORT=str(_free_port()),
        RUN_REDIS_PORT=str(_free_port()),
        RUN_NATS_PORT=str(_free_port()),
        PORT=str(_free_port()),
        LOG_JSON="true",
        **extra,
    )
    return env


async def _run_once(
    tmp_path: Path, env: dict[str, str], project: Path = ROOT
) -> tuple[str, list[dict[str, object]], str]:
    log = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "run"],
            cwd=project,
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
    return key.group(1), sites, text


async def test_run_brings_up_a_seeded_stack_and_restarts_warm(tmp_path: Path) -> None:
    # Not in pytest's temp dirs: Postgres runs as `postgres` when we are root, and pytest makes
    # its temp root private again whenever a session starts.
    data = Path(tempfile.mkdtemp(prefix="emissions-run-test-", dir="/tmp"))
    try:
        await _restart_warm(tmp_path, _env(RUN_DATA_DIR=str(data)), data)
    finally:
        LocalPostgres(data, 0).stop()  # only if a run failed to
        shutil.rmtree(data)


async def _restart_warm(tmp_path: Path, env: dict[str, str], data: Path) -> None:
    first_key, first_sites, text = await _run_once(tmp_path, env)
    assert f"data           {data}" in text
    # nats-server installed: the stack runs one with JetStream and the worker relays to it.
    assert f"stream         nats://127.0.0.1:{env['RUN_NATS_PORT']}" in text
    assert [s["name"] for s in first_sites] == [
        "Permian Pad 7",
        "Eagle Ford CS-2",
        "Bakken Well 14",
        "Marcellus Station 3",
    ]
    second_key, second_sites, _ = await _run_once(tmp_path, env)
    assert second_key == first_key  # the demo device survived the restart
    assert [s["id"] for s in second_sites] == [s["id"] for s in first_sites]


async def test_run_from_a_clone_postgres_cannot_reach_keeps_its_data_where_it_can(
    tmp_path: Path,
) -> None:
    """As root, Postgres runs as `postgres`, which cannot traverse a mode-0700 parent (like
    /root): the stack still starts, with its data in a directory named in the banner, and
    `emissions reset` wipes that directory. Not root: the data stays in the clone's .data/."""
    clone = tmp_path / "private" / "trial"
    for package in ("api", "cli", "domain", "service", "sql", "tools", "worker"):
        shutil.copytree(ROOT / package, clone / package, ignore=shutil.ignore_patterns("__pyc*"))
    (tmp_path / "private").chmod(0o700)
    expected = default_data_dir(clone, server_user())
    if os.geteuid() == 0:
        assert expected.parent == SHARED_DATA_ROOT
    else:
        assert expected == clone / ".data"
    env = _env()
    try:
        _, sites, text = await _run_once(tmp_path, env, project=clone)
        assert len(sites) == 4
        assert f"data           {expected}" in text
        assert (expected / "postgres" / "PG_VERSION").is_file()
        assert (expected / "demo-device-key").is_file()
    finally:
        LocalPostgres(expected, 0).stop()  # only if the run failed to
        reset = subprocess.run(
            [sys.executable, "-m", "cli", "reset"], cwd=clone, env=env, capture_output=True
        )
    assert reset.returncode == 0, reset.stderr
    assert not expected.exists()


async def test_run_in_production_prints_no_secret(tmp_path: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="emissions-run-prod-", dir="/tmp"))
    token = "prod-" + secrets.token_urlsafe(32)
    env = _env(RUN_DATA_DIR=str(data), ENVIRONMENT="production", ADMIN_TOKENS=f"ops:{token}")
    log = tmp_path / "run-production.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "run"], cwd=ROOT, env=env, stdout=out, stderr=out
            )
        try:
            for _ in range(600):
                if "is running" in log.read_text() or proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            text = log.read_text()
            assert "is running" in text, text[-3000:]
            key = (data / "demo-device-key").read_text().strip()
            assert key.startswith("emk_")
            assert token not in text
            assert key not in text and "emk_" not in text
            assert "not printed in production" in text
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as client:
                bearer = {"Authorization": f"Bearer {token}"}
                assert (await client.get("/v1/sites", headers=bearer)).status_code == 200
        finally:
            proc.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        LocalPostgres(data, 0).stop()  # only if the run failed to
        shutil.rmtree(data, ignore_errors=True)
