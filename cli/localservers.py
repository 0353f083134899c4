"""Local PostgreSQL and Redis servers from the system binaries, for `emissions run` and the tests.

Debian's postgresql and redis-server packages. initdb and postgres refuse to run as root, so
as root Postgres runs as the `postgres` user (else `nobody`) and its data directory must be
reachable by that user: `default_data_dir` picks one that is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

INSTALL_HINT = "install them with: apt-get install -y postgresql redis-server"
# Where a project's data goes when the Postgres user cannot reach the project (a clone in /root).
SHARED_DATA_ROOT = Path("/var/lib/emissions-engine")
# Speed over durability (the test suite): a crash may lose or corrupt data, a clean stop does not.
NON_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
START_TIMEOUT_S = 60


class LocalServerError(RuntimeError):
    """A local server could not be started."""


class PortTaken(LocalServerError):
    """Another process listens on the port a local server was asked to use."""


def server_user() -> pwd.struct_passwd | None:
    """The account Postgres runs as: None (this process's own) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise LocalServerError("running as root and no postgres/nobody user to run Postgres as")


def reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Can `user` (with its primary group only, as we run it) traverse every parent of `path`?"""
    return _blocking_parent(path, user) is None


def _blocking_parent(path: Path, user: pwd.struct_passwd) -> Path | None:
    for parent in reversed(path.absolute().parents):
        try:
            info = parent.stat()
        except OSError:  # a parent we cannot even look at
            return parent
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return parent
    return None


def default_data_dir(project: Path, user: pwd.struct_passwd | None) -> Path:
    """`project/.data`, unless the server user cannot reach it (root in a clone under /root):
    then a directory of this project under SHARED_DATA_ROOT, named by its path so two clones
    never share one."""
    local = project / ".data"
    if user is None or reachable_by(local, user):
        return local
    digest = hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:10]
    return SHARED_DATA_ROOT / f"{project.resolve().name}-{digest}"


def _make_reachable(path: Path, user: pwd.struct_passwd | None) -> None:
    """Create `path` and its missing parents; when Postgres runs as another user, let it
    traverse them (a 0700 temp dir, a umask of 077)."""
    created = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        for directory in {path, *created}:
            directory.chmod(directory.stat().st_mode | 0o011)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def pg_bindir() -> Path:
    """initdb, pg_ctl and postgres from PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: tuple(int(n) for n in p.parent.name.split(".") if n.isdigit()),
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise LocalServerError(f"PostgreSQL server binaries not found; {INSTALL_HINT}")


def _tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalPostgres:
    """A PostgreSQL server of our own: data in `data_dir/postgres`, TCP on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    durable: bool = True  # False: NON_DURABLE settings, and initdb without fsync
    settings: Mapping[str, str] = field(default_factory=dict)  # more `-c name=value`
    password: str | None = None  # set: TCP logins need it (scram-sha-256); else trust

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def log(self) -> Path:
        return self.pgdata / "server.log"

    def url(self, database: str = "postgres") -> str:
        login = "postgres" if self.password is None else f"postgres:{quote(self.password, safe='')}"
        return f"postgresql://{login}@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        user = server_user()
        return subprocess.run(
            [str(pg_bindir() / program), *args],
            cwd=self.data_dir,  # a directory the server user can reach, unlike maybe ours
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )

    def running(self) -> bool:
        return self._pid() is not None

    def _pid(self) -> int | None:
        """The postmaster's pid while it runs. Read by us, not by pg_ctl as the server user:
        we can always read the directory we made, even if a parent has since been closed to
        that user (pytest re-closes its temp root at each session start)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self) -> bool:
        """Start it (initialising the data directory on first use); False if already running."""
        self._initdb()
        if self.running():
            return False
        if not port_free(self.port):
            raise PortTaken(f"port {self.port} is taken")
        settings = {
            **({} if self.durable else NON_DURABLE),
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",  # TCP only: no socket path to own or to keep short
            **self.settings,
        }
        options = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
        args = ["-D", str(self.pgdata), "-o", options, "-l", str(self.log)]
        done = self._run("pg_ctl", "start", *args, "-w", "-t", str(START_TIMEOUT_S))
        if done.returncode != 0:
            self.stop()  # a server that was still starting at the timeout
            log = _tail(self.log)
            error = PortTaken if "Address already in use" in log else LocalServerError
            raise error(f"postgres did not start: {done.stdout}{done.stderr}\n{log}")
        return True

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions); returns once it has exited."""
        pid = self._pid()
        if pid is None:
            return
        # SIGINT is what `pg_ctl stop -m fast` sends; SIGQUIT, an immediate shutdown.
        for signum, patience_s in ((signal.SIGINT, START_TIMEOUT_S), (signal.SIGQUIT, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            deadline = time.monotonic() + patience_s
            # The postmaster removes its pid file last; not our child, we cannot wait() for it.
            while self._pid() == pid:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                return
        raise LocalServerError(f"postgres (pid {pid}) did not stop; see {self.log}")

    def clone_standby_of(self, primary_port: int) -> None:
        """Make this server a streaming standby of the local server on `primary_port` (which
        needs wal_level=replica and trusts replication from 127.0.0.1, as initdb --auth=trust
        sets up): pg_basebackup -R into an empty data directory; start() then starts it as a
        standby. Nothing is done when the data directory exists."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        user = server_user()
        _make_reachable(self.data_dir, user)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)  # empty: pg_basebackup fills it
        if user is not None:
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
        args = ["-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres"]
        args += ["-D", str(self.pgdata), "-R", "-X", "stream", "-c", "fast"]
        done = self._run("pg_basebackup", *args, *([] if self.durable else ["--no-sync"]))
        if done.returncode != 0:
            raise LocalServerError(f"pg_basebackup failed: {done.stderr[-2000:]}")

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        user = server_user()
        _make_reachable(self.data_dir, user)
        if user is not None and (blocked := _blocking_parent(self.data_dir, user)):
            raise LocalServerError(
                f"Postgres runs as {user.pw_name!r} because you are root, and {blocked} does not"
                f" let it through to {self.data_dir}: choose a data directory it can reach"
            )
        self.pgdata.mkdir(exist_ok=True)
        if user is not None:
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
        args = ["-D", str(self.pgdata), "-U", "postgres", "-E", "UTF8"]
        args += ["--locale=C", *([] if self.durable else ["--no-sync"])]
        pwfile = self.data_dir / "initdb-password"
        if self.password is None:
            args.append("--auth=trust")
        else:
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if user is not None:
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            args += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        try:
            done = self._run("initdb", *args)
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise LocalServerError(f"initdb failed: {done.stderr[-2000:]}")


@dataclass
class LocalRedis:
    """A Redis server of our own: files in `data_dir/redis`, TCP on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    durable: bool = True  # an append-only file; False: only what stop() snapshots survives
    password: str | None = None  # set: clients must AUTH with it (requirepass)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def directory(self) -> Path:
        return self.data_dir / "redis"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def url(self) -> str:
        login = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"redis://{login}127.0.0.1:{self.port}/0"

    def start(self) -> bool:
        """Start it; returns once it answers PING. False if it was already running."""
        if self._process is not None and self._process.poll() is None:
            return False
        binary = shutil.which("redis-server")
        if binary is None:
            raise LocalServerError(f"redis-server not found; {INSTALL_HINT}")
        if not port_free(self.port):
            raise PortTaken(f"port {self.port} is taken")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no"]
        argv += ["--dir", str(self.directory), "--save", ""]
        argv += ["--appendonly", "yes" if self.durable else "no"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        with self.log.open("ab") as log:
            # Its own session: a Ctrl-C meant for `emissions run` must not stop Redis before
            # the worker that uses it; run stops it last.
            self._process = subprocess.Popen(
                argv,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready(self._process)
        return True

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(
            port=self.port, password=self.password, socket_timeout=2, socket_connect_timeout=2
        )
        with client:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if client.ping() and process.poll() is None:
                        return
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = _tail(self.log)
                    error = PortTaken if "Address already in use" in log else LocalServerError
                    raise error(f"redis did not start:\n{log}")
                time.sleep(0.05)

    def stop(self) -> None:
        """SHUTDOWN SAVE: its keys survive a stop and start, durable or not."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            with redis.Redis(port=self.port, password=self.password, socket_timeout=5) as client:
                client.shutdown(save=True)
        except redis.RedisError:
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def nats_binary() -> str | None:
    """Debian's nats-server (apt-get install -y nats-server), if installed."""
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").is_file() else None
    )


@dataclass
class LocalNats:
    """A NATS server with JetStream of our own: store in `data_dir/nats`, 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def directory(self) -> Path:
        return self.data_dir / "nats"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> bool:
        """Start it; returns once it accepts connections. False if it was already running."""
        if self.running():
            return False
        binary = nats_binary()
        if binary is None:
            raise LocalServerError("nats-server not found; apt-get install -y nats-server")
        if not port_free(self.port):
            raise PortTaken(f"port {self.port} is taken")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        argv += ["-sd", str(self.directory / "jetstream")]
        with self.log.open("ab") as log:
            # Its own session, as Redis: run stops it after the worker that publishes to it.
            self._process = subprocess.Popen(
                argv,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while port_free(self.port) or "Server is ready" not in _tail(self.log, 200):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = _tail(self.log)
                error = PortTaken if "address already in use" in log_text else LocalServerError
                raise error(f"nats-server did not start:\n{log_text}")
            time.sleep(0.05)
        return True

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or answered (a hung server)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (JetStream flushes its store); SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
