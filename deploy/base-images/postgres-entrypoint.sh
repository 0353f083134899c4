#!/bin/sh
# Entry point of emissions/postgres:15: the subset of the official image's entry point that
# docker-compose.yml relies on. First start on an empty PGDATA: initdb with POSTGRES_USER and
# POSTGRES_PASSWORD (scram-sha-256 over TCP, trust on the local socket), create POSTGRES_DB.
set -eu

if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
    # Root: own the data directory (a fresh volume or bind mount), then drop to postgres.
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != "trust" ]; then
        echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        echo "       (or set POSTGRES_HOST_AUTH_METHOD=trust to allow every connection)" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust \
        --auth-host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    rm -f "$pwfile"
    printf "\nhost all all all %s\n" "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
        >> "$PGDATA/pg_hba.conf"
    if [ "$db" != "postgres" ]; then
        # A socket-only server, so a TCP healthcheck cannot see it as ready too early.
        pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start
        echo 'CREATE DATABASE :"db";' | psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
            --username="$user" --dbname=postgres --set db="$db"
        pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop
    fi
    echo "database initialised in $PGDATA"
fi

exec "$@" -c listen_addresses='*'
