"""Render deploy/ha/etcd.yml.in and patroni.yml.in (copied into the image beside this file) for
one container of the compose HA profile, into the directory given as argv[1].

The templates are the tuned cluster of deploy/ha (Patroni's ttl, loop_wait and retry_timeout,
strict synchronous replication with one sync standby, etcd's raft timing: values and reasons
are there, and only there).
Only what differs in a container is changed here:
  - addresses: each node is known by its service name (pg1, ...); servers listen on 0.0.0.0
    because etcd binds IP addresses only and a container's IP is assigned at start;
  - authentication: passwords, as the default stack's postgres service (scram-sha-256 from the
    compose network), instead of the test cluster's trust; trust stays for the container's own
    socket and loopback only;
  - paths: data under the volume, sockets in /var/run/postgresql, no per-host directories.
"""

import os
import string
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DATA = Path("/var/lib/postgresql/data")


def main(out_dir: Path) -> None:
    env = os.environ
    name = env["NODE_NAME"]
    peers = [p.strip() for p in env["PEERS"].split(",") if p.strip()]
    if name not in peers:
        sys.exit(f"NODE_NAME {name!r} is not in PEERS {peers}")
    scope = env.get("PATRONI_SCOPE", "emissions")
    superuser = env.get("POSTGRES_USER", "postgres")
    values = {
        "scope": scope,
        "name": name,
        "ip": name,
        "token": f"{scope}-compose",
        "initial_cluster": ",".join(f"{p}=http://{p}:2380" for p in peers),
        "etcd_hosts": ",".join(f"{p}:2379" for p in peers),
        "bin_dir": "/usr/lib/postgresql/15/bin",
        "node_dir": "/var/run/postgresql",
        "network": "samenet",
    }

    def render(template: str, data_dir: Path) -> dict:
        text = (HERE / template).read_text()
        return yaml.safe_load(string.Template(text).substitute(values, data_dir=data_dir))

    etcd = render("etcd.yml.in", DATA / "etcd")
    etcd["listen-peer-urls"] = "http://0.0.0.0:2380"
    etcd["listen-client-urls"] = "http://0.0.0.0:2379"

    patroni = render("patroni.yml.in", DATA / "pgdata")
    patroni["restapi"]["listen"] = "0.0.0.0:8008"
    pg = patroni["postgresql"]
    pg["listen"] = "0.0.0.0:5432"
    pg["use_unix_socket"] = True
    pg["pgpass"] = "/tmp/pgpass"  # noqa: S108 (the container's own /tmp; Patroni writes it)
    password = env.get("POSTGRES_PASSWORD", "postgres")
    pg["authentication"] = {
        "superuser": {"username": superuser, "password": password},
        "replication": {
            "username": env.get("REPLICATION_USER", "replicator"),
            "password": env.get("REPLICATION_PASSWORD", "replicator"),
        },
        "rewind": {"username": superuser, "password": password},
    }
    pg["pg_hba"] = [
        "local all all trust",
        "host all all 127.0.0.1/32 trust",
        "host replication all samenet scram-sha-256",
        "host all all samenet scram-sha-256",
    ]

    out_dir.mkdir(mode=0o700, exist_ok=True)
    for file_name, config in (("etcd.yml", etcd), ("patroni.yml", patroni)):
        path = out_dir / file_name
        path.write_text(
            f"# Rendered by {__file__} from {file_name}.in: see deploy/ha/{file_name}.in\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
        path.chmod(0o600)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
