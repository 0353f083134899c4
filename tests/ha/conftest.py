"""One HA cluster (3 nodes, netns mode) for the module: up in a fresh temp dir, always torn
down. HA_KEEP_DATA=1 keeps its configs, data and logs for a look after a failure."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from deploy.ha.cluster import HaCluster


@pytest.fixture(scope="module")
def ha_cluster() -> Iterator[HaCluster]:
    if os.geteuid() != 0:
        pytest.fail(
            "tests/ha need root: each host is a network namespace and partitions are iptables "
            "rules (run `sudo make test-ha`); for a cluster without root use `make ha-up`"
        )
    # Not pytest's tmp_path: that is 0700 under root's temp root, where Postgres (run as the
    # postgres user) cannot reach.
    base = tempfile.mkdtemp(prefix="emissions-ha-")
    cluster = HaCluster(base, mode="netns")
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down(purge=not os.environ.get("HA_KEEP_DATA"))
        if os.environ.get("HA_KEEP_DATA"):
            print(f"\nHA cluster data kept in {base}")
