#!/usr/bin/env bash
# `make test-compose`: build the images, run docker-compose.yml under a unique project name, wait
# for health, post batches with retries of the same Idempotency-Key (concurrent and sequential),
# an overlapping batch and a conflicting reading, wait for the worker, check that the site's
# totals and hourly series equal the exact sums, ingest and drain once more with Redis stopped,
# then tear everything down (`down -v`) whatever happened. Prints PASS or FAIL; exits non-zero
# on failure.
#
# Environment:
#   COMPOSE         "docker compose" (v2) or "docker-compose" (v1.29); default: v2 if present
#   BASE_IMAGES     local (default): emissions/python:3.11, emissions/postgres:15 and
#                   emissions/redis:7, built by deploy/build-base-images.sh when missing (no
#                   Docker Hub needed); public: python:3.11-slim, postgres:15, redis:7.
#                   PYTHON_IMAGE / POSTGRES_IMAGE / REDIS_IMAGE override either.
#   PYPI_INDEX_URL  a PyPI mirror for the image builds (default: pip's configured index-url)
#   EXTRA_CA_BUNDLE CA bundle the builds trust for the index (default: the host's bundle)
#   KEEP_UP=1       leave the stack running (for debugging; tear down with the printed command)
#   WAIT_S          how long to wait for health and for the worker (default 240)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WAIT_S="${WAIT_S:-240}"
started=$SECONDS

say() { printf '[test-compose %3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
# Indent, without the terminal control sequences Compose v2 writes even when not on a terminal.
indent() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' -e 's/\r//g' -e 's/^/    /'; }

command -v docker >/dev/null || fail "docker not found (apt-get install -y docker.io)"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (dockerd > /tmp/dockerd.log 2>&1 &)"
if [[ -z "${COMPOSE:-}" ]]; then
    if docker compose version >/dev/null 2>&1; then
        COMPOSE="docker compose"
    elif command -v docker-compose >/dev/null; then
        COMPOSE="docker-compose"
    else
        fail "neither 'docker compose' nor 'docker-compose' found (apt-get install -y docker-compose)"
    fi
fi
read -r -a compose_cmd <<< "$COMPOSE"

# ---- base images ----
case "${BASE_IMAGES:-local}" in
    local)
        export PYTHON_IMAGE="${PYTHON_IMAGE:-emissions/python:3.11}"
        export POSTGRES_IMAGE="${POSTGRES_IMAGE:-emissions/postgres:15}"
        export REDIS_IMAGE="${REDIS_IMAGE:-emissions/redis:7}"
        for image in "$PYTHON_IMAGE" "$POSTGRES_IMAGE" "$REDIS_IMAGE"; do
            if ! docker image inspect "$image" >/dev/null 2>&1; then
                say "$image is missing: building the local base images"
                bash "$ROOT/deploy/build-base-images.sh"
                break
            fi
        done
        ;;
    public)
        export PYTHON_IMAGE="${PYTHON_IMAGE:-python:3.11-slim}"
        export POSTGRES_IMAGE="${POSTGRES_IMAGE:-postgres:15}"
        export REDIS_IMAGE="${REDIS_IMAGE:-redis:7}"
        ;;
    *) fail "BASE_IMAGES must be local or public" ;;
esac

# ---- what the image builds need to reach the package index ----
bundle="${EXTRA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
if [[ -s "$bundle" ]]; then
    cmp -s "$bundle" deploy/ca/host-ca-bundle.crt 2>/dev/null || cp "$bundle" deploy/ca/host-ca-bundle.crt
fi
if [[ -z "${PYPI_INDEX_URL:-}" ]] && command -v pip3 >/dev/null; then
    index="$(pip3 config get global.index-url 2>/dev/null || true)"
    [[ "$index" == http* ]] && PYPI_INDEX_URL="$index"
fi
export PYPI_INDEX_URL="${PYPI_INDEX_URL:-}"

# ---- a unique project, on a free local port ----
PROJECT="emissions-test-$(date +%s)-$$"
export COMPOSE_PROJECT_NAME="$PROJECT"
export API_IMAGE="${API_IMAGE:-emissions-api:test}" WORKER_IMAGE="${WORKER_IMAGE:-emissions-worker:test}"
export API_BIND=127.0.0.1
# A token of this run's own, whatever ADMIN_TOKENS the shell has.
ADMIN_TOKEN="test-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export ADMIN_TOKENS="compose-test:$ADMIN_TOKEN"
API_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export API_PORT
compose() { "${compose_cmd[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [[ $status -ne 0 ]]; then
        say "logs (last 40 lines per service):"
        compose logs --no-color --tail=40 2>&1 | indent || true
    fi
    if [[ "${KEEP_UP:-0}" == 1 ]]; then
        say "KEEP_UP=1: stack left running; tear down with:"
        say "  $COMPOSE -p $PROJECT down -v --remove-orphans"
    else
        say "tearing down ($COMPOSE -p $PROJECT down -v)"
        compose down -v --remove-orphans > /dev/null 2>&1 || say "warning: down failed"
    fi
    if [[ $status -eq 0 ]]; then
        say "PASS (${SECONDS}s, $COMPOSE $("${compose_cmd[@]}" version --short 2>/dev/null || true))"
    else
        say "FAIL (exit $status)"
    fi
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

say "compose: $COMPOSE ($("${compose_cmd[@]}" version --short 2>/dev/null || true)); engine: $(docker version --format '{{.Server.Version}}')"
say "project $PROJECT; images: python=$PYTHON_IMAGE postgres=$POSTGRES_IMAGE redis=$REDIS_IMAGE"
say "building $API_IMAGE and $WORKER_IMAGE"
build_log="$(mktemp)"
if ! compose build > "$build_log" 2>&1; then
    tail -40 "$build_log"
    rm -f "$build_log"
    fail "image build failed"
fi
rm -f "$build_log"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E "^(${API_IMAGE}|${WORKER_IMAGE}) " | indent || true

say "starting the stack"
compose up -d 2>&1 | indent

# ---- wait for health ----
# By label, not `compose ps`: v1 and v2 differ on whether it lists exited containers.
container() {
    docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -1
}
state() {
    local id
    id="$(container "$1")"
    [[ -n "$id" ]] || { echo missing; return; }
    docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}}' "$id"
}
deadline=$((SECONDS + WAIT_S))
while :; do
    migrate="$(state migrate)"
    api="$(state api)"
    worker="$(state worker)"
    [[ "$migrate" == exited\ *\ 0 && "$api" == "running healthy"* && "$worker" == "running healthy"* ]] && break
    [[ "$migrate" == exited\ * && "$migrate" != *\ 0 ]] && fail "migrate exited: $migrate"
    [[ "$api" == exited* || "$worker" == exited* ]] && fail "a service exited: api=$api worker=$worker"
    ((SECONDS < deadline)) || fail "not healthy after ${WAIT_S}s: migrate=$migrate api=$api worker=$worker"
    sleep 2
done
say "healthy: postgres=$(state postgres | cut -d' ' -f2) redis=$(state redis | cut -d' ' -f2) migrate=exited(0) api=healthy worker=healthy"
compose ps 2>/dev/null | indent

# ---- the end-to-end check ----
say "end-to-end check against http://127.0.0.1:$API_PORT"
API="http://127.0.0.1:$API_PORT" WAIT_S="$WAIT_S" ADMIN_TOKEN="$ADMIN_TOKEN" \
REDIS_CONTAINER="$(container redis)" python3 - <<'PY'
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

API = os.environ["API"]
ADMIN = {"Authorization": f"Bearer {os.environ['ADMIN_TOKEN']}"}
rng = random.Random(20260101)


def call(method, path, body=None, headers=None, timeout=15):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw.decode(errors="replace")
        return exc.code, exc.headers, payload


def check(cond, message):
    if not cond:
        print(f"    FAIL: {message}")
        sys.exit(1)


def post_until_answered(site_id, key, device_key, body):
    """A device's retry loop: same key, same body, until a 202 (409 in flight: wait, retry)."""
    for _ in range(60):
        status, headers, payload = call(
            "POST", f"/v1/sites/{site_id}/measurements", body,
            {"Authorization": f"Bearer {device_key}", "Idempotency-Key": key},
        )
        if status == 202:
            return headers, payload
        check(status in (409, 429, 503), f"unexpected {status}: {payload}")
        time.sleep(float(headers.get("Retry-After", "0.2") or 0.2))
    check(False, f"key {key}: no 202 after 60 tries")


status, _, ready = call("GET", "/ready")
check(status == 200, f"/ready: {status} {ready}")
print(f"    /ready: {ready}")

status, _, site = call("POST", "/v1/sites", {"name": f"compose-{uuid.uuid4().hex[:8]}",
                                               "emission_limit_kg": 50000}, ADMIN)
check(status == 201, f"create site: {status} {site}")
site_id = site["id"]
status, _, device = call("POST", "/v1/devices",
                         {"device_id": "compose-sensor", "site_ids": [site_id]}, ADMIN)
check(status == 201 and device.get("key"), f"create device: {status} {device}")
device_key = device["key"]
print(f"    site {site_id}, device key {device_key[:8]}…")

# 8 batches of 24 quarter-hour windows (48 hours), values with 3 decimals: exact sums.
start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=50)
expected: dict[datetime, Decimal] = {}
batches = []
for b in range(8):
    readings = []
    for i in range(24):
        ts = start + timedelta(minutes=15 * (b * 24 + i))
        kg = Decimal(rng.randint(0, 250_000)) / 1000
        expected[ts] = kg
        readings.append({"ts": ts.isoformat().replace("+00:00", "Z"), "methane_kg": float(kg)})
    batches.append({"measurements": readings})

replays = conflicts_seen = 0
pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
for body in batches:
    key = str(uuid.uuid4())
    # The first send and a retry race (the device timed out and resent): one write, one answer.
    first, second = pool.map(lambda _: post_until_answered(site_id, key, device_key, body), (1, 2))
    check(first[1] == second[1], f"concurrent sends of one key answered differently")
    check(first[1]["accepted"] == 24, f"batch: {first[1]}")
    # Two more retries after the answer was lost: replays of the stored response.
    for _ in range(2):
        headers, payload = post_until_answered(site_id, key, device_key, body)
        check(headers.get("Idempotent-Replayed") == "true", f"retry not replayed: {dict(headers)}")
        check(payload == first[1], "replay differs from the original answer")
        replays += 1
print(f"    {len(batches)} batches x 24 readings, each sent twice at once and retried twice: "
      f"{replays} replays with Idempotent-Replayed: true")

# The same readings under a new key: all duplicates. One window with another value: a conflict.
headers, payload = post_until_answered(site_id, str(uuid.uuid4()), device_key, batches[0])
check(payload["accepted"] == 0 and payload["duplicates"] == 24, f"re-send: {payload}")
clash = dict(batches[1]["measurements"][0], methane_kg=batches[1]["measurements"][0]["methane_kg"] + 1)
headers, payload = post_until_answered(site_id, str(uuid.uuid4()), device_key, {"measurements": [clash]})
check(len(payload["conflicts"]) == 1 and payload["accepted"] == 0, f"conflict: {payload}")
print("    re-send under a new key: 24 duplicates; a changed value: 1 conflict (stored value kept)")

total = sum(expected.values())
hourly: dict[datetime, Decimal] = {}
for ts, kg in expected.items():
    hour = ts.replace(minute=0)
    hourly[hour] = hourly.get(hour, Decimal(0)) + kg


def wait_for_total(total, what):
    deadline = time.monotonic() + float(os.environ["WAIT_S"])
    while True:
        status, _, got = call("GET", f"/v1/sites/{site_id}", headers=ADMIN)
        check(status == 200, f"get site: {status} {got}")
        if Decimal(repr(got["lifetime_kg"])) == total:
            return got
        if time.monotonic() > deadline:
            check(False, f"{what}: lifetime_kg {got['lifetime_kg']} != expected {total}")
        time.sleep(0.5)


got = wait_for_total(total, "after the worker")
print(f"    lifetime_kg {got['lifetime_kg']} == exact sum {total} of {len(expected)} unique readings")

frm = start.isoformat().replace("+00:00", "Z")
to = (start + timedelta(hours=49)).isoformat().replace("+00:00", "Z")
status, _, series = call("GET", f"/v1/sites/{site_id}/hourly?from={frm}&to={to}", headers=ADMIN)
check(status == 200, f"hourly: {status} {series}")
got_hours = {datetime.fromisoformat(h["hour"].replace("Z", "+00:00")): h for h in series["hours"]
             if h["readings"]}
check(set(got_hours) == set(hourly), f"hours differ: {len(got_hours)} vs {len(hourly)}")
for hour, kg in hourly.items():
    check(Decimal(repr(got_hours[hour]["total_kg"])) == kg and got_hours[hour]["readings"] == 4,
          f"hour {hour}: {got_hours[hour]} != {kg}")
print(f"    hourly series: {len(hourly)} hours, each total and count exact")

# Redis down: ingest still answers 202 and the worker drains straight from Postgres.
redis = os.environ["REDIS_CONTAINER"]
subprocess.run(["docker", "stop", "-t", "2", redis], check=True, capture_output=True)
try:
    body = {"measurements": [
        {"ts": (start + timedelta(hours=48, minutes=15 * i)).isoformat().replace("+00:00", "Z"),
         "methane_kg": 2.5} for i in range(4)]}
    headers, payload = post_until_answered(site_id, str(uuid.uuid4()), device_key, body)
    check(payload["accepted"] == 4, f"ingest with Redis down: {payload}")
    total += Decimal("10.0")
    got = wait_for_total(total, "with Redis down")
    print(f"    Redis stopped: batch accepted (202), drained from Postgres: lifetime_kg {got['lifetime_kg']}")
finally:
    subprocess.run(["docker", "start", redis], check=True, capture_output=True)

status, _, queue = call("GET", "/v1/ops/queue", headers=ADMIN)
check(status == 200, f"queue: {status}")
check(queue["pending"] == 0 and queue["dead"] == 0 and queue["workers_alive"] >= 1, f"queue: {queue}")
print(f"    queue: pending {queue['pending']}, dead {queue['dead']}, workers alive "
      f"{queue['workers_alive']}, heartbeat age {queue['worker_heartbeat_age_s']}s")
PY
say "image sizes:"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E "^(${API_IMAGE}|${WORKER_IMAGE}|${PYTHON_IMAGE}|${POSTGRES_IMAGE}|${REDIS_IMAGE}) " \
    | indent || true
