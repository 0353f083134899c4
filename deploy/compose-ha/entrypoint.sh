#!/bin/bash
# One "database host" of the compose HA profile: an etcd member in the background and a Patroni
# node (which runs PostgreSQL) in the foreground. Like a machine, they live and die together:
# when either exits the other is stopped and the container exits with that status; SIGTERM
# (docker stop) stops Patroni first (it hands the leader key over and stops Postgres cleanly),
# then etcd. See patroni.Dockerfile for the environment.
set -euo pipefail

DATA=/var/lib/postgresql/data
CONF=/etc/emissions-ha
say() { printf '[patroni-entrypoint %s] %s\n' "${NODE_NAME:-$(hostname)}" "$*" >&2; }

if [[ "$(id -u)" == 0 ]]; then
    # A fresh named volume belongs to root: hand it to postgres, then drop to that user.
    chown postgres:postgres "$DATA" && chmod 700 "$DATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

export NODE_NAME="${NODE_NAME:-$(hostname)}"
: "${PEERS:?set PEERS to every node name, comma-separated (this one included)}"

# First start only: etcd bootstraps from the peers' names, which Docker's DNS knows once their
# containers run. Later starts rejoin from etcd's data dir and must not wait for a dead peer.
if [[ ! -d "$DATA/etcd" ]]; then
    for peer in ${PEERS//,/ }; do
        for _ in $(seq 60); do getent hosts "$peer" >/dev/null && break; sleep 1; done
    done
fi

python3 /usr/local/lib/emissions-ha/render.py "$CONF"

etcd --config-file "$CONF/etcd.yml" &
etcd_pid=$!
patroni "$CONF/patroni.yml" &
patroni_pid=$!

stop() {
    trap '' TERM INT
    kill -TERM "$patroni_pid" 2>/dev/null || true
    wait "$patroni_pid" 2>/dev/null || true
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
}
trap 'say "stopping"; stop; exit 0' TERM INT

status=0
wait -n "$etcd_pid" "$patroni_pid" || status=$?
if kill -0 "$patroni_pid" 2>/dev/null; then what=etcd; else what=patroni; fi
say "$what exited (status $status): stopping the node"
stop
exit "$(( status == 0 ? 1 : status ))"
