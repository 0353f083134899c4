"""A local HA PostgreSQL: 3 nodes under Patroni on a 3-member etcd, strict synchronous
replication, with the faults a test needs (kill a host, bring it back, partition two hosts).

    python -m deploy.ha.cluster up [--dir .data/ha]       # loopback, no root; returns when healthy
    python -m deploy.ha.cluster status|down [--dir ...] [--purge]
    python -m deploy.ha.cluster up --netns                # root: one namespace per host; Ctrl-C

Stdlib only: tests import HaCluster, and `make ha-up` runs it before anything is installed.
The tuned values and why are in patroni.yml.in and etcd.yml.in beside this file.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.ha.network import (
    ROOT,
    LoopbackNetwork,
    NamespaceNetwork,
    NetworkError,
    pid_alive,
)

DB_HOSTS = ("db1", "db2", "db3")
EXTRA_HOSTS = ("api", "worker")  # for the application under test; nothing of ours runs there
PG_PORT, REST_PORT, ETCD_PORT = 5432, 8008, 2379
MARKER = "EMISSIONS_HA_HOST"  # in the environment of our etcd and patroni: "<instance>:<host>"
HERE = Path(__file__).resolve().parent
STATE_FILE = "state.json"


class HaClusterError(RuntimeError):
    """The HA cluster could not be brought up, changed or found healthy."""


class HaCluster:
    """The cluster under `base_dir`: one directory per db host (configs, data, logs, pid files)
    and state.json (how to find it again from another process: `HaCluster.open`)."""

    def __init__(
        self,
        base_dir: Path | str,
        *,
        mode: str = "netns",
        extra_hosts: tuple[str, ...] = EXTRA_HOSTS,
        scope: str = "emissions",
        bin_dir: Path | str | None = None,
    ) -> None:
        if mode not in ("netns", "loopback"):
            raise HaClusterError(f"mode must be netns or loopback, not {mode!r}")
        if mode == "netns" and os.geteuid() != 0:
            raise HaClusterError(
                "netns mode needs root (network namespaces, veths, iptables); "
                "use mode='loopback' (make ha-up) without root"
            )
        self.base_dir = Path(base_dir).resolve()
        self.scope = scope
        self.bin_dir = Path(bin_dir) if bin_dir else _find_pg_bin_dir()
        self.instance = secrets.token_hex(3)
        hosts = [*DB_HOSTS, *extra_hosts]
        self.net: LoopbackNetwork | NamespaceNetwork = (
            NamespaceNetwork(hosts, self.instance, os.getpid())
            if mode == "netns"
            else LoopbackNetwork(hosts)
        )
        self._user = _server_user()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._down: set[str] = set()  # hosts killed and not started again
        self._partitions: set[tuple[str, str]] = set()
        self._isolated: set[str] = set()

    # ------------------------------------------------------------------ finding it again

    @classmethod
    def open(cls, base_dir: Path | str) -> HaCluster:
        """The cluster a previous `up` (maybe another process) left in base_dir."""
        path = Path(base_dir).resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise HaClusterError(f"no HA cluster in {path.parent} (no {STATE_FILE})") from None
        if state["mode"] == "netns" and os.geteuid() != 0:
            raise HaClusterError(f"the cluster in {path.parent} runs in netns mode: needs root")
        cluster = cls.__new__(cls)
        cluster.base_dir = path.parent
        cluster.scope = state["scope"]
        cluster.bin_dir = Path(state["bin_dir"])
        cluster.instance = state["instance"]
        net = state["network"]
        cluster.net = (
            NamespaceNetwork(net["hosts"], cluster.instance, net["owner"], net["octet"])
            if net["mode"] == "netns"
            else LoopbackNetwork(net["hosts"])
        )
        cluster._user = _server_user()
        cluster._procs = []
        cluster._down = set()
        cluster._partitions = set()
        cluster._isolated = set()
        return cluster

    @property
    def mode(self) -> str:
        return self.net.mode

    @property
    def hosts(self) -> list[str]:
        return list(self.net.hosts)

    @property
    def down_hosts(self) -> set[str]:
        """Hosts killed and not started again."""
        return set(self._down)

    # ------------------------------------------------------------------ lifecycle

    def up(self, timeout: float = 120.0) -> None:
        """Create (or, in loopback mode, restart) the cluster; return once it is healthy."""
        state_path = self.base_dir / STATE_FILE
        if state_path.exists() and self.mode == "netns":
            raise HaClusterError(f"netns mode needs a fresh directory, {self.base_dir} has one")
        if any(self._host_pids(h) for h in DB_HOSTS):
            raise HaClusterError(f"the cluster in {self.base_dir} is already running")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "netns":
            atexit.register(self.down)
        try:
            self.net.create()
            self._write_configs()
            state_path.write_text(json.dumps(self._state(), indent=2))
            for host in DB_HOSTS:
                self._spawn(host, "etcd", [_which("etcd"), "--config-file", "etcd.yml"])
            self._wait(timeout, self._etcd_unhealthy, "etcd has no quorum")
            for host in DB_HOSTS:
                self._spawn(host, "patroni", [_which("patroni"), "patroni.yml"])
            self._down.clear()
            self.wait_healthy(timeout)
        except BaseException:
            self.down()
            raise

    def down(self, purge: bool = False, graceful: bool = False) -> None:
        """Kill every process of every host, remove namespaces, bridge and iptables rules; with
        purge, the data too. Idempotent, and safe on a half-built cluster. Graceful first asks
        Patroni to stop Postgres cleanly (a cluster to resume later, not a crash)."""
        if graceful:
            self._stop_gracefully()
        for host in self.hosts:
            with contextlib.suppress(HaClusterError):
                self._kill(host)
        self._down = set(self.hosts)
        with contextlib.suppress(NetworkError):
            self.net.destroy()
        self._partitions.clear()
        self._isolated.clear()
        if self.mode == "netns":
            atexit.unregister(self.down)
        if purge:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def kill_host(self, host: str) -> None:
        """The machine dies: SIGKILL etcd, Patroni, Postgres and anything else on it at once.
        Its address stays up (connections to it are refused); `isolate` makes them hang."""
        self._check(host)
        self._kill(host)
        self._down.add(host)

    def start_host(self, host: str) -> None:
        """The machine comes back: its etcd member rejoins, Patroni starts Postgres as a
        replica (pg_rewind if it was the primary). Use `wait_healthy` to see it streaming."""
        self._check(host)
        if self._host_pids(host):
            raise HaClusterError(f"{host} is still running: kill_host it first")
        if host in DB_HOSTS:
            self._spawn(host, "etcd", [_which("etcd"), "--config-file", "etcd.yml"])
            self._spawn(host, "patroni", [_which("patroni"), "patroni.yml"])
        self._down.discard(host)

    # ------------------------------------------------------------------ faults

    def partition(self, a: str, b: str) -> None:
        """Silently drop everything between two hosts (ROOT is the test process's side)."""
        self._check(a, b, allow_root=True)
        self.net.partition(a, b)
        self._partitions.add((a, b))

    def heal(self, a: str, b: str) -> None:
        self._check(a, b, allow_root=True)
        self.net.heal(a, b)
        self._partitions.discard((a, b))
        self._partitions.discard((b, a))

    def isolate(self, host: str) -> None:
        """Unplug the host's cable: packets to and from it vanish (its processes keep running)."""
        self._check(host)
        self.net.isolate(host)
        self._isolated.add(host)

    def unisolate(self, host: str) -> None:
        self._check(host)
        self.net.unisolate(host)
        self._isolated.discard(host)

    # ------------------------------------------------------------------ where things are

    def host_ip(self, host: str) -> str:
        self._check(host, allow_root=True)
        return self.net.ip(host)

    def exec_prefix(self, host: str) -> list[str]:
        """argv prefix running a command on the host (as the caller's user)."""
        self._check(host, allow_root=True)
        return self.net.exec_prefix(host)

    def dsn(self, dbname: str = "postgres", target_session_attrs: str = "read-write") -> str:
        """The multi-host URL an application uses: the client tries each node in turn."""
        hosts = ",".join(f"{self.net.ip(h)}:{PG_PORT}" for h in DB_HOSTS)
        query = f"?target_session_attrs={target_session_attrs}" if target_session_attrs else ""
        return f"postgresql://postgres@{hosts}/{dbname}{query}"

    def replica_dsn(
        self, dbname: str = "postgres", target_session_attrs: str = "prefer-standby"
    ) -> str:
        """For reads that may lag: a standby if one answers, else the primary."""
        return self.dsn(dbname, target_session_attrs)

    def node_dsn(self, host: str, dbname: str = "postgres") -> str:
        """One node only, whatever its role."""
        self._check(host)
        return f"postgresql://postgres@{self.net.ip(host)}:{PG_PORT}/{dbname}"

    # ------------------------------------------------------------------ health

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view (GET /cluster) from the first node that answers; [] if none does."""
        for host in self._live_db_hosts():
            answer = _get_json(f"{self._rest(host)}/cluster")
            if answer is not None:
                return list(answer.get("members", []))
        return []

    def primary(self) -> str | None:
        """The host whose Patroni says it runs the primary and holds the leader key."""
        for host in self._live_db_hosts():
            if _get_status(f"{self._rest(host)}/primary") == 200:
                return host
        return None

    def replicas(self) -> list[str]:
        return [h for h in self._live_db_hosts() if _get_status(f"{self._rest(h)}/replica") == 200]

    def etcd_leader(self) -> str | None:
        """The host whose etcd member leads raft (None while no live member knows one)."""
        members, leader = self._etcd_members()
        return members.get(leader) if leader else None

    def move_etcd_leader(self, host: str, timeout: float = 10.0) -> None:
        """Hand etcd's raft leadership to the member on host: killing that host then costs the
        extra election (and lease extension) of the worst case."""
        self._check(host)
        members, leader = self._etcd_members()
        target = next((i for i, h in members.items() if h == host), None)
        if leader is None or target is None:
            raise HaClusterError(f"etcd has no leader or no live member on {host}")
        if leader != target:
            url = f"http://{self.net.ip(members[leader])}:{ETCD_PORT}"
            _post_json(f"{url}/v3/maintenance/transfer-leadership", {"targetID": target})
        self._wait(timeout, lambda: None if self.etcd_leader() == host else "moving", "etcd")

    def _etcd_members(self) -> tuple[dict[str, str], str | None]:
        """{member id: host} of the members that answer, and the leader's id."""
        members, leader = {}, None
        for host in self._live_db_hosts():
            url = f"http://{self.net.ip(host)}:{ETCD_PORT}/v3/maintenance/status"
            status = _post_json(url, {})
            if status is not None:
                members[status["header"]["member_id"]] = host
                leader = status.get("leader") or leader
        return members, leader

    def wait_primary(self, timeout: float = 30.0) -> str:
        self._wait(timeout, lambda: None if self.primary() else "no primary", "no primary")
        primary = self.primary()
        assert primary is not None
        return primary

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until a primary runs and every live db host streams from it, one synchronously."""
        self._wait(timeout, self.unhealthy_reason, "cluster not healthy")

    def unhealthy_reason(self) -> str | None:
        """None when healthy, else what is missing."""
        primary = self.primary()
        if primary is None:
            return "no primary"
        status = _get_json(f"{self._rest(primary)}/patroni")
        if status is None:
            return f"{primary}'s REST API does not answer"
        streams = {r.get("application_name"): r for r in status.get("replication", [])}
        for host in self._live_db_hosts():
            row = streams.get(host)
            if host != primary and (row is None or row.get("state") != "streaming"):
                return f"{host} is not streaming from {primary}"
        if not any(r.get("sync_state") == "sync" for r in streams.values()):
            return "no synchronous standby"
        members = {m["name"]: m for m in self.members()}
        for host in self._live_db_hosts():
            if members.get(host, {}).get("state") != "running":
                return f"{host} is not running according to Patroni"
        if not any(m.get("role") == "sync_standby" for m in members.values()):
            return "Patroni names no sync standby"
        return None

    def status(self) -> str:
        lines = [f"{self.mode} cluster in {self.base_dir}"]
        for m in self.members():
            lag = m.get("lag", "")
            lines.append(
                f"  {m['name']:<5} {m.get('host', ''):<12} {m['role']:<13} {m['state']:<10} "
                f"timeline {m.get('timeline', '?')} lag {lag}"
            )
        if len(lines) == 1:
            lines.append("  no node answers")
        lines.append(f"DATABASE_URL={self.dsn()}")
        return "\n".join(lines)

    def log_tails(self, lines: int = 20) -> str:
        out = []
        for host in DB_HOSTS:
            for program in ("etcd", "patroni"):
                path = self._node_dir(host) / f"{program}.log"
                with contextlib.suppress(OSError):
                    tail = path.read_text(errors="replace").splitlines()[-lines:]
                    out.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(out)

    # ------------------------------------------------------------------ internals

    def _check(self, *hosts: str, allow_root: bool = False) -> None:
        for host in hosts:
            if host not in self.net.hosts and not (allow_root and host == ROOT):
                raise HaClusterError(f"no host {host!r}; hosts are {self.net.hosts}")

    def _node_dir(self, host: str) -> Path:
        return self.base_dir / host

    def _rest(self, host: str) -> str:
        return f"http://{self.net.ip(host)}:{REST_PORT}"

    def _live_db_hosts(self) -> list[str]:
        return [h for h in DB_HOSTS if h not in self._down]

    def _state(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "instance": self.instance,
            "mode": self.mode,
            "bin_dir": str(self.bin_dir),
            "network": self.net.state(),
        }

    def _write_configs(self) -> None:
        etcd_urls = [f"{h}=http://{self.net.ip(h)}:2380" for h in DB_HOSTS]
        values = {
            "scope": self.scope,
            "token": f"{self.scope}-{self.instance}",
            "initial_cluster": ",".join(etcd_urls),
            "etcd_hosts": ",".join(f"{self.net.ip(h)}:{ETCD_PORT}" for h in DB_HOSTS),
            "bin_dir": str(self.bin_dir),
            "network": self.net.cidr,
        }
        for host in DB_HOSTS:
            node = self._node_dir(host)
            node.mkdir(parents=True, exist_ok=True)
            if len(str(node)) > 90:  # the Unix socket path limit is 107 bytes
                raise HaClusterError(f"{node}: too long for Postgres's socket; use a shorter dir")
            here = {
                **values,
                "name": host,
                "ip": self.net.ip(host),
                "node_dir": str(node),
                "data_dir": str(node / "pgdata"),
            }
            for name in ("etcd.yml", "patroni.yml"):
                template = string.Template((HERE / f"{name}.in").read_text())
                here["data_dir"] = str(node / ("etcd" if name == "etcd.yml" else "pgdata"))
                (node / name).write_text(template.substitute(here))
        if self._user is not None:
            uid, gid = self._user.pw_uid, self._user.pw_gid
            for path in [self.base_dir, *self.base_dir.rglob("*")]:
                os.chown(path, uid, gid)
            probe = subprocess.run([*self._as_user(), "test", "-w", str(self.base_dir)])
            if probe.returncode != 0:
                raise HaClusterError(
                    f"Postgres runs as {self._user.pw_name!r} (you are root) and cannot reach "
                    f"{self.base_dir}: use a directory under /tmp"
                )

    def _as_user(self) -> list[str]:
        if self._user is None:
            return []
        u = self._user
        return ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--init-groups", "--"]

    def _spawn(self, host: str, program: str, argv: list[str]) -> None:
        node = self._node_dir(host)
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(node),
            "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            MARKER: f"{self.instance}:{host}",
        }
        with open(node / f"{program}.log", "ab") as log:
            proc = subprocess.Popen(
                [*self.net.exec_prefix(host), *self._as_user(), *argv],
                cwd=node,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C is not the cluster's
            )
        (node / f"{program}.pid").write_text(f"{proc.pid}\n")
        self._procs.append(proc)

    def _host_pids(self, host: str) -> set[int]:
        """Every live process of the host: its namespace's (netns), plus etcd, Patroni and the
        postmaster from their pid files with all their descendants (checked to be ours)."""
        pids = set(self.net.pids(host))
        if host in DB_HOSTS:
            node = self._node_dir(host)
            roots = set()
            for program in ("etcd", "patroni"):
                pid = _read_pid(node / f"{program}.pid")
                if pid and f"{MARKER}={self.instance}:{host}" in _environ(pid):
                    roots.add(pid)
            postmaster = _read_pid(node / "pgdata" / "postmaster.pid")
            if postmaster and _cwd(postmaster) == node / "pgdata":
                roots.add(postmaster)
            pids |= _with_descendants(roots)
        return {p for p in pids if pid_alive(p) and p != os.getpid()}

    def _kill(self, host: str) -> None:
        deadline = time.monotonic() + 10
        while pids := self._host_pids(host):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise HaClusterError(f"{host}: processes {sorted(pids)} survive SIGKILL")
            time.sleep(0.02)
        for proc in list(self._procs):
            if proc.poll() is not None:
                self._procs.remove(proc)

    def _stop_gracefully(self, timeout: float = 20.0) -> None:
        """SIGTERM to each Patroni (it shuts Postgres down, then exits), then to each etcd."""
        for program in ("patroni", "etcd"):
            pids = set()
            for host in DB_HOSTS:
                pid = _read_pid(self._node_dir(host) / f"{program}.pid")
                if pid and f"{MARKER}={self.instance}:{host}" in _environ(pid):
                    pids.add(pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.1)

    def _etcd_unhealthy(self) -> str | None:
        for host in DB_HOSTS:
            answer = _get_json(f"http://{self.net.ip(host)}:{ETCD_PORT}/health")
            if answer is None or answer.get("health") != "true":
                return f"etcd on {host}: {answer}"
        return None

    def _wait(self, timeout: float, probe: Callable[[], str | None], what: str) -> None:
        deadline = time.monotonic() + timeout
        why = probe()
        while why is not None:
            if time.monotonic() > deadline:
                raise HaClusterError(f"{what} after {timeout:.0f} s: {why}\n{self.log_tails()}")
            time.sleep(0.2)
            why = probe()


# ---------------------------------------------------------------------- helpers


def _find_pg_bin_dir() -> Path:
    for candidate in (Path("/usr/lib/postgresql/15/bin"),):
        if (candidate / "postgres").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise HaClusterError("no PostgreSQL binaries (apt-get install postgresql-15)")


def _which(program: str) -> str:
    found = shutil.which(program) or shutil.which(program, path="/usr/bin:/usr/sbin")
    if not found:
        package = {"etcd": "etcd-server"}.get(program, program)
        raise HaClusterError(f"{program} not found (apt-get install {package})")
    return found


def _server_user() -> pwd.struct_passwd | None:
    """Postgres refuses to run as root: as root, the cluster runs as postgres (else nobody)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise HaClusterError("running as root and no postgres/nobody user to run Postgres as")


def _get_json(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _post_json(url: str, body: dict[str, Any], timeout: float = 2.0) -> dict[str, Any] | None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _get_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _environ(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b"\n").decode(errors="replace")


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) from /proc/PID/stat; the command name may hold spaces and parentheses."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _with_descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))):
            children.setdefault(stat[1], []).append(int(entry))
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


# ---------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.ha.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", default=".data/ha", help="where configs, data and logs go")
    parser.add_argument("--netns", action="store_true", help="one namespace per host (root)")
    parser.add_argument("--purge", action="store_true", help="down: delete the data too")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return _up(Path(args.dir), args.netns, args.timeout)
        cluster = HaCluster.open(args.dir)
        if args.command == "status":
            print(cluster.status())
            return 0 if cluster.unhealthy_reason() is None else 1
        cluster.down(purge=args.purge, graceful=True)
        print(f"stopped; data {'deleted' if args.purge else 'kept in ' + str(cluster.base_dir)}")
        return 0
    except (HaClusterError, NetworkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _up(base_dir: Path, netns: bool, timeout: float) -> int:
    if netns:
        cluster = HaCluster(base_dir, mode="netns")
    elif (base_dir / STATE_FILE).exists():
        cluster = HaCluster.open(base_dir)  # restart on the data a previous `down` kept
    else:
        cluster = HaCluster(base_dir, mode="loopback")
    started = time.monotonic()
    cluster.up(timeout)
    print(f"{cluster.status()}\nhealthy after {time.monotonic() - started:.1f} s")
    if not netns:
        print(f"stop with: python -m deploy.ha.cluster down --dir {base_dir}")
        return 0
    print("Ctrl-C stops it and removes its namespaces and data")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        cluster.down(purge=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
