"""`emissions run`: the whole local stack in one command; Ctrl-C stops it in order."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli import seed
from cli.localservers import (
    LocalNats,
    LocalPostgres,
    LocalRedis,
    LocalServerError,
    PortTaken,
    default_data_dir,
    nats_binary,
    server_user,
)
from service.infra import db, migrations
from service.infra.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# What `emissions run` writes into its data directory; `emissions reset` deletes nothing else.
DATA_ENTRIES = frozenset({"postgres", "redis", "nats", "demo-device-key"})


def data_dir(environ: Mapping[str, str]) -> Path:
    """RUN_DATA_DIR if set, else the project's .data/ or, when Postgres runs as a user that
    cannot reach it, this project's directory under /var/lib/emissions-engine/."""
    override = environ.get("RUN_DATA_DIR")
    return Path(override) if override else default_data_dir(ROOT, server_user())


async def _prepare(database_url: str, known_key: str, *, timeout_s: float) -> tuple[list[int], str]:
    await migrations.create_database_if_missing(database_url, timeout_s=timeout_s)
    conn = await db.connect(database_url, timeout_s=timeout_s)
    try:
        await migrations.migrate(conn)
        await migrations.ensure_partitions(conn)
        return await seed.seed(conn, known_key=known_key)
    finally:
        await conn.close()


def _banner(
    settings: Settings, url: str, key: str, sites: list[int], data: Path, started_s: float
) -> str:
    token = settings.admin_token or "(set ADMIN_TOKENS: no admin token)"
    if settings.environment == "production":  # secrets never reach a terminal's scrollback
        token = "(from ADMIN_TOKENS; not printed in production)"  # noqa: S105 - a label
        key = f"(in {data / 'demo-device-key'}; not printed in production)"
    return f"""
  emissions-engine is running (ready in {started_s:.1f} s)

    dashboard      {url}/
    API docs       {url}/schema
    admin token    {token}
    demo device    {seed.DEMO_DEVICE}, key {key}  (sites {", ".join(map(str, sites))})
    data           {data}
    stream         {settings.nats_url or "(off: no nats-server, NATS_URL unset)"}

  try:  curl -s -X POST {url}/v1/sites/{sites[0]}/measurements \\
          -H 'Authorization: Bearer {key}' -H 'Idempotency-Key: try-1' \\
          -H 'Content-Type: application/json' \\
          -d '{{"measurements": [{{"ts": "2026-01-01T00:00:00Z", "methane_kg": 1.5}}]}}'

  Ctrl-C stops everything; the data stays (make reset wipes it).
"""


def add_commands(sub: Any) -> None:
    st = sub.add_parser(
        "run", help="the whole local stack: Postgres, Redis, NATS if installed, API, worker"
    )
    st.set_defaults(run=_run, sync=True)
    reset = sub.add_parser("reset", help="delete the data of `emissions run` (make reset)")
    reset.set_defaults(run=_reset, sync=True)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    data = data_dir(os.environ)
    data.mkdir(parents=True, exist_ok=True)
    owned: list[LocalPostgres | LocalRedis | LocalNats] = []
    env = dict(os.environ)
    try:
        if "DATABASE_URL" not in os.environ:
            pg = LocalPostgres(data, int(os.environ.get("RUN_PG_PORT", "54329")))
            if pg.start():
                owned.append(pg)
            env["DATABASE_URL"] = pg.url("emissions")
        if "REDIS_URL" not in os.environ:
            redis = LocalRedis(data, int(os.environ.get("RUN_REDIS_PORT", "63799")))
            redis.start()
            owned.append(redis)
            env["REDIS_URL"] = redis.url
        if "NATS_URL" not in os.environ and nats_binary() is not None:
            # The stream relay (service/stream.py) when nats-server is installed; else no stream.
            stream = LocalNats(data, int(os.environ.get("RUN_NATS_PORT", "42229")))
            stream.start()
            owned.append(stream)
            env["NATS_URL"] = stream.url
            settings = Settings.from_env(env)
    except LocalServerError as exc:
        for server in reversed(owned):
            server.stop()
        ports = "RUN_PG_PORT / RUN_REDIS_PORT / RUN_NATS_PORT"
        advice = f"; set {ports}" if isinstance(exc, PortTaken) else ""
        raise SystemExit(f"emissions run: {exc}{advice}") from exc
    processes: list[subprocess.Popen[bytes]] = []
    try:
        key_file = data / "demo-device-key"
        known = key_file.read_text().strip() if key_file.exists() else ""
        sites, key = asyncio.run(
            _prepare(env["DATABASE_URL"], known, timeout_s=settings.db_connect_timeout_s)
        )
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
        print(_banner(settings, url, key, sites, data, time.monotonic() - started), flush=True)
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
        for server in reversed(owned):  # NATS, Redis, then Postgres
            server.stop()
        print("stopped", flush=True)


def _reset(settings: Settings, args: argparse.Namespace) -> int:
    data = data_dir(os.environ)
    if not data.exists():
        print(f"nothing to wipe: {data} does not exist")
        return 0
    if LocalPostgres(data, 0).running():
        print(f"its Postgres is running: stop `emissions run` first ({data})", file=sys.stderr)
        return 1
    strangers = sorted(p.name for p in data.iterdir() if p.name not in DATA_ENTRIES)
    if strangers:  # RUN_DATA_DIR may point anywhere: delete only what run wrote
        print(f"not wiping {data}: emissions run did not write {strangers}", file=sys.stderr)
        return 1
    shutil.rmtree(data)
    print(f"wiped {data}")
    return 0


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
