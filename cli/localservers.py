"""Local PostgreSQL and Redis servers for `emissions run`, kept in a project-local data dir.

System binaries (Debian's postgresql and redis-server packages); when run as root, Postgres
runs as the `postgres` user (initdb refuses root). Data survives restarts; `make reset`
deletes the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install them with: apt-get install -y postgresql redis-server"


class LocalStackError(RuntimeError):
    """A local server could not be started."""


def _pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise LocalStackError(f"PostgreSQL server binaries not found; {INSTALL_HINT}")
    return candidates[-1].parent


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _as_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise LocalStackError("running as root and no postgres/nobody user to run Postgres as")


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/emissions"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        user = _as_user()
        return subprocess.run(
            [str(_pg_bindir() / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
        )

    def start(self) -> bool:
        """Start (initialising on first use). False if it was already running."""
        pgdata = self.data_dir / "postgres"
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            user = _as_user()
            if user is not None:
                for path in (self.data_dir, pgdata):
                    os.chown(path, user.pw_uid, user.pw_gid)
            done = self._run(
                "initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
            if done.returncode != 0:
                hint = ""
                if user is not None and "Permission denied" in done.stderr:
                    hint = (
                        f" (Postgres runs as {user.pw_name!r} because you are root: every parent"
                        f" of {self.data_dir} must be traversable by it, or set RUN_DATA_DIR)"
                    )
                raise LocalStackError(f"initdb failed{hint}: {done.stderr[-2000:]}")
        if self._run("pg_ctl", "-D", str(pgdata), "status").returncode == 0:
            return False
        if not _port_free(self.port):
            raise LocalStackError(f"port {self.port} is taken; set RUN_PG_PORT")
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pgdata}"
        )
        done = self._run(
            "pg_ctl",
            "-D",
            str(pgdata),
            "-o",
            options,
            "-l",
            str(pgdata / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode != 0:
            raise LocalStackError(f"postgres did not start: {done.stdout[-2000:]}")
        return True

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir / "postgres"), "-m", "fast", "-w", "stop")


@dataclass
class LocalRedis:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise LocalStackError(f"redis-server not found; {INSTALL_HINT}")
        if not _port_free(self.port):
            raise LocalStackError(f"port {self.port} is taken; set RUN_REDIS_PORT")
        directory = self.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        log = (directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 20
        while _port_free(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LocalStackError(f"redis did not start; see {directory / 'server.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
