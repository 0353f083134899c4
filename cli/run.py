"""`emissions run`: the whole local stack in one command; Ctrl-C stops it in order."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cli import seed
from cli.localservers import LocalPostgres, LocalRedis
from service.infra import db, migrations
from service.infra.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


async def _prepare(database_url: str, known_key: str) -> tuple[list[int], str]:
    await migrations.create_database_if_missing(database_url)
    conn = await db.connect(database_url)
    try:
        await migrations.migrate(conn)
        await migrations.ensure_partitions(conn)
        return await seed.seed(conn, known_key=known_key)
    finally:
        await conn.close()


def _banner(settings: Settings, url: str, key: str, sites: list[int], started_s: float) -> str:
    token = next(iter(settings.admin_token_map), "(set ADMIN_TOKENS)")
    return f"""
  emissions-engine is running (ready in {started_s:.1f} s)

    dashboard      {url}/
    API docs       {url}/schema
    admin token    {token}
    demo device    {seed.DEMO_DEVICE}, key {key}  (sites {", ".join(map(str, sites))})

  try:  curl -s -X POST {url}/v1/sites/{sites[0]}/measurements \\
          -H 'Authorization: Bearer {key}' -H 'Idempotency-Key: try-1' \\
          -H 'Content-Type: application/json' \\
          -d '{{"measurements": [{{"ts": "2026-01-01T00:00:00Z", "methane_kg": 1.5}}]}}'

  Ctrl-C stops everything; data stays in .data/ (make reset wipes it).
"""


def add_commands(sub: Any) -> None:
    st = sub.add_parser("run", help="the whole local stack: Postgres, Redis, API, worker")
    st.set_defaults(run=_run, sync=True)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    data = Path(os.environ.get("RUN_DATA_DIR", ROOT / ".data"))
    data.mkdir(exist_ok=True)
    owned: list[LocalPostgres | LocalRedis] = []
    env = dict(os.environ)
    if "DATABASE_URL" not in os.environ:
        pg = LocalPostgres(data, int(os.environ.get("RUN_PG_PORT", "54329")))
        if pg.start():
            owned.append(pg)
        env["DATABASE_URL"] = pg.url
    if "REDIS_URL" not in os.environ:
        redis = LocalRedis(data, int(os.environ.get("RUN_REDIS_PORT", "63799")))
        redis.start()
        owned.append(redis)
        env["REDIS_URL"] = redis.url
    processes: list[subprocess.Popen[bytes]] = []
    try:
        key_file = data / "demo-device-key"
        known = key_file.read_text().strip() if key_file.exists() else ""
        sites, key = asyncio.run(_prepare(env["DATABASE_URL"], known))
        if key != known:
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
        env.setdefault("PORT", str(settings.port))
        for command in ("serve", "worker"):
            processes.append(
                subprocess.Popen([sys.executable, "-m", "cli", command], env=env, cwd=ROOT)
            )
        url = f"http://{settings.host}:{env['PORT']}"
        _wait_for_api(url, processes[0])
        print(_banner(settings, url, key, sites, time.monotonic() - started), flush=True)
        stop = _wait_for_signal(processes)
        return 0 if stop else 1
    finally:
        for process in reversed(processes):  # worker first, then the API
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in reversed(owned):  # Redis, then Postgres
            server.stop()
        print("stopped", flush=True)


def _wait_for_api(url: str, api: subprocess.Popen[bytes]) -> None:
    import httpx  # only this command needs an HTTP client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit("the API exited during start-up; see its log above")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the API did not come up within 60 s")


def _wait_for_signal(processes: list[subprocess.Popen[bytes]]) -> bool:
    """Block until Ctrl-C / SIGTERM (True) or a child dies (False)."""
    stop = {"requested": False}

    def handler(signum: int, frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop["requested"]:
        if any(p.poll() is not None for p in processes):
            print("a process exited; stopping the stack", file=sys.stderr, flush=True)
            return False
        time.sleep(0.2)
    return True
