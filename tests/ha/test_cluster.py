"""The local HA cluster keeps its promises: synchronous replication to a named standby, a new
primary within seconds of the old one's host dying, the old one back as a replica, and
partitions that drop traffic silently until healed. Runs in order on one cluster (conftest)."""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg
import pytest

from deploy.ha.cluster import DB_HOSTS, HaCluster
from deploy.ha.network import ROOT

pytestmark = pytest.mark.ha

# Patroni ttl 9 s + etcd's election + promotion + the surviving standby attaching.
FAILOVER_BUDGET_S = 15.0
# Server keepalives: 5 s idle + 3 probes 2 s apart, then the backend exits and its locks go.
DEAD_CLIENT_BUDGET_S = 15.0

# Run on the api host: take a row lock in a transaction, say so, then hang on to it.
LOCK_HOLDER = """
import asyncio, sys, asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1], timeout=5)
    tr = conn.transaction()
    await tr.start()
    await conn.execute("SELECT * FROM ha_probe WHERE note = 'first' FOR UPDATE")
    print("locked", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def _insert(dsn: str, note: str, *, timeout: float = 5.0) -> None:
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ha_probe (id serial PRIMARY KEY, note text NOT NULL)"
        )
        await conn.execute("INSERT INTO ha_probe (note) VALUES ($1)", note, timeout=timeout * 2)
    finally:
        await conn.close()


async def _has_note(dsn: str, note: str) -> bool:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        found = await conn.fetchval("SELECT count(*) FROM ha_probe WHERE note = $1", note)
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
    return bool(found)


async def _wait_for_note(dsn: str, note: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await _has_note(dsn, note):
        assert time.monotonic() < deadline, f"{note!r} not visible at {dsn} after {timeout} s"
        await asyncio.sleep(0.1)


async def _pg_isready_from(cluster: HaCluster, host: str, target: str) -> int:
    """pg_isready run on `host` against `target` with a 2 s timeout: 0 ready, 2 no answer."""
    argv = [
        *cluster.exec_prefix(host),
        str(cluster.bin_dir / "pg_isready"),
        *("-h", cluster.host_ip(target), "-p", "5432", "-t", "2"),
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await proc.wait()


async def test_a_write_through_the_multi_host_dsn_is_visible_on_both_standbys(
    ha_cluster: HaCluster,
) -> None:
    await _insert(ha_cluster.dsn(), "first")

    primary = ha_cluster.primary()
    standbys = [h for h in DB_HOSTS if h != primary]
    assert sorted(ha_cluster.replicas()) == standbys
    for host in standbys:
        await _wait_for_note(ha_cluster.node_dsn(host), "first")


async def test_the_primary_replicates_synchronously_to_one_named_standby(
    ha_cluster: HaCluster,
) -> None:
    conn = await asyncpg.connect(ha_cluster.dsn(), timeout=5)
    try:
        names = await conn.fetchval("SHOW synchronous_standby_names")
        commit = await conn.fetchval("SHOW synchronous_commit")
        rows = await conn.fetch(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        )
    finally:
        await conn.close()

    assert commit == "on"
    streams = {r["application_name"]: (r["state"], r["sync_state"]) for r in rows}
    assert len(streams) == 2
    assert all(state == "streaming" for state, _ in streams.values())
    sync = [name for name, (_, sync_state) in streams.items() if sync_state == "sync"]
    assert len(sync) == 1
    assert sync[0] in names  # Patroni names the standby itself, not '*'

    replica = await asyncpg.connect(ha_cluster.replica_dsn(), timeout=5)
    try:
        assert await replica.fetchval("SELECT pg_is_in_recovery()")
    finally:
        await replica.close()


async def test_a_write_succeeds_within_15_s_of_the_primary_host_dying(
    ha_cluster: HaCluster,
) -> None:
    old = ha_cluster.primary()
    assert old is not None
    # The worst case: the dying host also leads etcd (one more election, leases extended).
    await asyncio.to_thread(ha_cluster.move_etcd_leader, old)
    await _insert(ha_cluster.dsn(), "acknowledged before the kill")

    killed_at = time.monotonic()
    ha_cluster.kill_host(old)
    while True:
        try:
            await _insert(ha_cluster.dsn(), "first after the kill", timeout=2)
            break
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            assert time.monotonic() - killed_at < 60, "no primary a minute after the kill"
            await asyncio.sleep(0.1)
    elapsed = time.monotonic() - killed_at
    new = ha_cluster.primary()
    print(f"\nfailover: first write {elapsed:.1f} s after kill -9 of {old}, etcd's leader too")

    assert new is not None and new != old
    assert await _has_note(ha_cluster.node_dsn(new), "acknowledged before the kill")
    assert elapsed < FAILOVER_BUDGET_S


async def test_the_killed_host_comes_back_as_a_replica(ha_cluster: HaCluster) -> None:
    (old,) = ha_cluster.down_hosts

    started_at = time.monotonic()
    ha_cluster.start_host(old)
    await asyncio.to_thread(ha_cluster.wait_healthy, 60)
    print(f"\nrejoin: {old} streaming again {time.monotonic() - started_at:.1f} s after start")

    assert old in ha_cluster.replicas()
    await _insert(ha_cluster.dsn(), "after the rejoin")
    await _wait_for_note(ha_cluster.node_dsn(old), "after the rejoin")
    await _wait_for_note(ha_cluster.node_dsn(old), "acknowledged before the kill")


async def test_a_partition_drops_traffic_silently_until_healed(ha_cluster: HaCluster) -> None:
    standby = ha_cluster.replicas()[0]

    ha_cluster.partition(standby, ROOT)
    ha_cluster.partition(standby, "api")
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # dropped, not refused: the connect just hangs
            await asyncpg.connect(ha_cluster.node_dsn(standby), timeout=1.5)
        assert time.monotonic() - started >= 1.4
        assert await _pg_isready_from(ha_cluster, "api", standby) == 2
        assert await _pg_isready_from(ha_cluster, "worker", standby) == 0
    finally:
        ha_cluster.heal(standby, ROOT)
        ha_cluster.heal(standby, "api")

    assert await _has_note(ha_cluster.node_dsn(standby), "first")
    assert await _pg_isready_from(ha_cluster, "api", standby) == 0
    assert ha_cluster.unhealthy_reason() is None


async def test_a_partitioned_clients_row_lock_is_released_within_15_s(
    ha_cluster: HaCluster,
) -> None:
    primary = ha_cluster.wait_primary()
    holder = await asyncio.create_subprocess_exec(
        *ha_cluster.exec_prefix("api"),
        *(sys.executable, "-c", LOCK_HOLDER, ha_cluster.dsn()),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 10) == b"locked\n"
        ha_cluster.partition("api", primary)
        cut_at = time.monotonic()

        conn = await asyncpg.connect(ha_cluster.dsn(), timeout=5)
        try:
            await conn.execute("SET lock_timeout = '500ms'")
            while True:
                try:
                    async with conn.transaction():
                        await conn.execute("SELECT * FROM ha_probe WHERE note = 'first' FOR UPDATE")
                    break
                except asyncpg.LockNotAvailableError:
                    assert time.monotonic() - cut_at < 60, "the lock outlived its client by 60 s"
        finally:
            await conn.close()
        released = time.monotonic() - cut_at
        print(f"\ndead client: its row lock released {released:.1f} s after the partition")
        assert released < DEAD_CLIENT_BUDGET_S
    finally:
        holder.kill()
        await holder.wait()
        ha_cluster.heal("api", primary)
