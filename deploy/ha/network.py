"""Where the cluster's hosts live: a network namespace each on a private bridge (root), or
addresses on loopback (no root); partitions between namespaces are silent iptables drops."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence

# The test process's own namespace: it reaches every host, and a partition can cut it off.
ROOT = "root"
HOST_OCTETS = {"db1": 11, "db2": 12, "db3": 13, "api": 21, "worker": 22}
PREFIX = "emha"  # namespaces, the bridge, veths and iptables comments of every cluster
_NS_NAME = re.compile(rf"^{PREFIX}-([0-9a-f]{{6}})-(\d+)-([a-z0-9]+)$")
_BRIDGE_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})$")
_LOCK_PATH = "/run/lock/emissions-ha.lock"  # netns mode runs as root: /run/lock is writable


class NetworkError(RuntimeError):
    """A host network could not be set up or changed."""


def run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def pid_alive(pid: int) -> bool:
    """A running process (a zombie, killed but not yet reaped, is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")


class LoopbackNetwork:
    """Every host on its own 127.0.0.x address in this namespace: no root, no partitions."""

    mode = "loopback"
    cidr = "127.0.0.0/8"

    def __init__(self, hosts: Sequence[str]) -> None:
        self.hosts = list(hosts)

    def ip(self, host: str) -> str:
        return "127.0.0.1" if host == ROOT else f"127.0.0.{HOST_OCTETS[host]}"

    def exec_prefix(self, host: str) -> list[str]:
        return []

    def pids(self, host: str) -> set[int]:
        return set()  # no namespace to ask: the cluster tracks its processes itself

    def create(self) -> None:
        pass

    def destroy(self) -> None:
        pass

    def partition(self, a: str, b: str) -> None:
        raise NetworkError("partitions need netns mode (root): loopback hosts share one stack")

    heal = partition

    def isolate(self, host: str) -> None:
        raise NetworkError("isolating a host needs netns mode (root)")

    unisolate = isolate

    def state(self) -> dict[str, object]:
        return {"mode": self.mode, "hosts": self.hosts}


class NamespaceNetwork:
    """One network namespace per host, each with a veth on one bridge in the root namespace.

    Names carry a random instance id and the owner's pid, so clusters side by side never clash
    and one whose owner died (a killed test run) is recognised and removed by the next one.
    """

    mode = "netns"

    def __init__(
        self, hosts: Sequence[str], instance: str, owner: int, octet: int | None = None
    ) -> None:
        self.hosts = list(hosts)
        self.instance = instance
        self.owner = owner
        self.octet = octet  # the third octet of 10.77.x.0/24, chosen by create()
        self.bridge = f"{PREFIX}{instance}"

    @property
    def cidr(self) -> str:
        return f"10.77.{self.octet}.0/24"

    def ns(self, host: str) -> str:
        return f"{PREFIX}-{self.instance}-{self.owner}-{host}"

    def ip(self, host: str) -> str:
        last = 1 if host == ROOT else HOST_OCTETS[host]
        return f"10.77.{self.octet}.{last}"

    def exec_prefix(self, host: str) -> list[str]:
        return [] if host == ROOT else ["ip", "netns", "exec", self.ns(host)]

    def pids(self, host: str) -> set[int]:
        if host == ROOT:
            return set()
        done = run(["ip", "netns", "pids", self.ns(host)], check=False)
        return {int(p) for p in done.stdout.split()}

    def create(self) -> None:
        with _lock():
            remove_leftovers()
            self.octet = _free_octet()
            try:
                self._create_links()
            except Exception:
                self.destroy()
                raise

    def _create_links(self) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.ip(ROOT)}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        if _bridged_traffic_filtered():
            # br_netfilter sends bridged frames through this FORWARD chain; a DROP policy
            # (Docker sets one) would cut the hosts off from each other.
            run(["iptables", "-w", "-I", "FORWARD", *self._forward_rule()])
        for index, host in enumerate(self.hosts):
            ns, veth = self.ns(host), f"emv{self.instance}{index}"
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "link", "set", veth, "master", self.bridge, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{self.ip(host)}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _forward_rule(self) -> list[str]:
        comment = ["-m", "comment", "--comment", self.bridge]
        return ["-i", self.bridge, "-o", self.bridge, *comment, "-j", "ACCEPT"]

    def destroy(self) -> None:
        """Kill what still runs in the namespaces, delete them, the bridge and the rule."""
        for host in self.hosts:
            kill_namespace(self.ns(host))
        run(["ip", "link", "del", self.bridge], check=False)  # takes the veths' root ends along
        rule = self._forward_rule()
        while run(["iptables", "-w", "-C", "FORWARD", *rule], check=False).returncode == 0:
            run(["iptables", "-w", "-D", "FORWARD", *rule], check=False)

    def partition(self, a: str, b: str) -> None:
        """Drop every packet between a and b, both ways, silently (no RST, no ICMP)."""
        for host, other in ((a, b), (b, a)):
            for rule in self._drop_rules(other):
                self._iptables(host, "-I", rule)

    def heal(self, a: str, b: str) -> None:
        for host, other in ((a, b), (b, a)):
            for rule in self._drop_rules(other):
                self._iptables(host, "-D", rule)

    def isolate(self, host: str) -> None:
        """Unplug the host: nothing in or out of its eth0 (its loopback keeps working)."""
        for rule in (["INPUT", "-i", "eth0", "-j", "DROP"], ["OUTPUT", "-o", "eth0", "-j", "DROP"]):
            self._iptables(host, "-I", rule)

    def unisolate(self, host: str) -> None:
        for rule in (["INPUT", "-i", "eth0", "-j", "DROP"], ["OUTPUT", "-o", "eth0", "-j", "DROP"]):
            self._iptables(host, "-D", rule)

    def _drop_rules(self, other: str) -> list[list[str]]:
        ip = self.ip(other)
        return [["INPUT", "-s", ip, "-j", "DROP"], ["OUTPUT", "-d", ip, "-j", "DROP"]]

    def _iptables(self, host: str, action: str, rule: list[str]) -> None:
        """Insert (-I) once or delete (-D) every copy of a rule inside the host's namespace;
        the root namespace's tables are never touched (ROOT is cut off from the other side)."""
        if host == ROOT:
            return
        prefix = [*self.exec_prefix(host), "iptables", "-w"]
        present = run([*prefix, "-C", *rule], check=False).returncode == 0
        if action == "-I" and not present:
            run([*prefix, "-I", *rule])
        while action == "-D" and present:
            run([*prefix, "-D", *rule])
            present = run([*prefix, "-C", *rule], check=False).returncode == 0

    def state(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "hosts": self.hosts,
            "instance": self.instance,
            "owner": self.owner,
            "octet": self.octet,
        }


def kill_namespace(ns: str) -> None:
    """SIGKILL every process in a namespace until none is left, then delete it."""
    for _ in range(50):
        done = run(["ip", "netns", "pids", ns], check=False)
        pids = [int(p) for p in done.stdout.split()]
        if done.returncode != 0 or not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.05)  # let the kernel take them out of the namespace
    run(["ip", "netns", "del", ns], check=False)


def remove_leftovers() -> list[str]:
    """Remove the namespaces and bridges of clusters whose owning process is dead."""
    names = run(["ip", "netns", "list"], check=False).stdout.split("\n")
    live_instances, removed = set(), []
    for line in names:
        match = _NS_NAME.match(line.split(" ")[0])
        if not match:
            continue
        instance, owner = match.group(1), int(match.group(2))
        if pid_alive(owner):
            live_instances.add(instance)
            continue
        kill_namespace(match.group(0))
        removed.append(match.group(0))
    links = run(["ip", "-o", "link", "show", "type", "bridge"], check=False).stdout
    for bridge in re.findall(r"^\d+: ([^:@]+)", links, flags=re.M):
        match = _BRIDGE_NAME.match(bridge)
        if match and match.group(1) not in live_instances:
            leftover = NamespaceNetwork([], match.group(1), 0)
            leftover.destroy()
            removed.append(bridge)
    return removed


def _free_octet() -> int:
    addresses = run(["ip", "-o", "-4", "addr", "show"]).stdout
    used = {int(x) for x in re.findall(r"inet 10\.77\.(\d+)\.\d+/", addresses)}
    for octet in range(256):
        if octet not in used:
            return octet
    raise NetworkError("no free 10.77.x.0/24 subnet for the cluster's bridge")


def _bridged_traffic_filtered() -> bool:
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One cluster at a time picks a subnet and reaps leftovers (a half-built one looks like a
    leftover to a second process)."""
    with open(_LOCK_PATH, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
