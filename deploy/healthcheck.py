"""Container healthchecks for the images (Docker HEALTHCHECK; docker-compose relies on them).

    python healthcheck.py api      GET /ready on this container answers 200 (Postgres reachable)
    python healthcheck.py worker   a worker in this container beat in Postgres recently

Settings come from the same environment variables as the service (see service/settings.py);
HEALTHCHECK_MAX_AGE_S (default 30) is how old the worker's last heartbeat may be.
Exit 0 = healthy, 1 = unhealthy (with one line saying why).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import urllib.request

from service.infra.settings import Settings

WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - these are what we translate away


def api(settings: Settings) -> int:
    host = "127.0.0.1" if settings.host in WILDCARDS else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    url = f"http://{host}:{settings.port}/ready"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = response.status
    except Exception as exc:  # HTTPError (503) included
        print(f"unhealthy: {url}: {exc}")
        return 1
    return 0 if status == 200 else 1


async def _worker_fresh(settings: Settings, max_age_s: float) -> bool:
    from service.infra.db import connect_hosts

    # Every host of a multi-host DATABASE_URL in turn, each for at most 4 s.
    conn = await connect_hosts(settings.database_url, timeout_s=4)
    try:
        fresh = await conn.fetchval(
            "SELECT coalesce(now() - max(seen_at) < make_interval(secs => $2), false)"
            " FROM workers WHERE hostname = $1",
            socket.gethostname(),
            max_age_s,
            timeout=4,
        )
    finally:
        await conn.close()
    return bool(fresh)


def worker(settings: Settings) -> int:
    max_age_s = float(os.environ.get("HEALTHCHECK_MAX_AGE_S") or 30)
    try:
        fresh = asyncio.run(_worker_fresh(settings, max_age_s))
    except Exception as exc:
        print(f"unhealthy: cannot read the worker heartbeat: {exc!r}")
        return 1
    if not fresh:
        print(f"unhealthy: no heartbeat from {socket.gethostname()} in the last {max_age_s:g} s")
        return 1
    return 0


def main(argv: list[str]) -> int:
    checks = {"api": api, "worker": worker}
    if len(argv) != 2 or argv[1] not in checks:
        print(f"usage: {argv[0]} api|worker", file=sys.stderr)
        return 2
    return checks[argv[1]](Settings.from_env())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
