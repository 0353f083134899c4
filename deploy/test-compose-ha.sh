#!/usr/bin/env bash
# The compose `ha` profile, end to end: build, run docker-compose.yml + docker-compose.ha.yml
# with --profile ha under a unique project name, wait for a Patroni leader and a synchronous
# standby, post a batch through the API, `docker kill` the primary's container, then check that
# a new primary is elected and that the same API container (no restart) accepts a second batch
# (202) within FAILOVER_MAX_S, like a device that retries with its Idempotency-Key; the worker's
# totals must equal both batches exactly. Finally the killed node is started again and must
# rejoin as a streaming standby. Tears everything down (`down -v`) whatever happened. Prints the
# failover times, PASS or FAIL; exits non-zero on failure. Not part of .ci/run.
#
# Environment (as deploy/test-compose.sh): COMPOSE, PYPI_INDEX_URL, EXTRA_CA_BUNDLE, KEEP_UP=1,
# WAIT_S (default 240); PYTHON_IMAGE / REDIS_IMAGE / PATRONI_IMAGE override the local images
# (deploy/build-base-images.sh builds them when missing, and emissions/patroni:15 again when
# deploy/ha/*.yml.in or deploy/compose-ha/ changed); FAILOVER_MAX_S (default 30).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WAIT_S="${WAIT_S:-240}"
FAILOVER_MAX_S="${FAILOVER_MAX_S:-30}"
started=$SECONDS

say() { printf '[test-compose-ha %3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
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

# ---- images: the local base images and emissions/patroni:15 (no public image stands in) ----
export PYTHON_IMAGE="${PYTHON_IMAGE:-emissions/python:3.11}"
export POSTGRES_IMAGE="${POSTGRES_IMAGE:-emissions/postgres:15}"
export REDIS_IMAGE="${REDIS_IMAGE:-emissions/redis:7}"
export PATRONI_IMAGE="${PATRONI_IMAGE:-emissions/patroni:15}"
# build-base-images.sh builds what is missing and rebuilds the Patroni image when
# deploy/ha/*.yml.in or deploy/compose-ha/ changed; it is quick when nothing did.
t0=$SECONDS
base_log="$(mktemp)"
if ! ENV_FILE= bash "$ROOT/deploy/build-base-images.sh" > "$base_log" 2>&1; then
    indent < "$base_log"
    rm -f "$base_log"
    fail "deploy/build-base-images.sh failed"
fi
grep -E 'docker build|debootstrap' "$base_log" | indent || true
rm -f "$base_log"
say "base images ready in $((SECONDS - t0))s"

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
PROJECT="emissions-ha-$(date +%s)-$$"
export COMPOSE_PROJECT_NAME="$PROJECT"
export API_IMAGE="${API_IMAGE:-emissions-api:test}" WORKER_IMAGE="${WORKER_IMAGE:-emissions-worker:test}"
export API_BIND=127.0.0.1
ADMIN_TOKEN="test-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export ADMIN_TOKENS="compose-ha-test:$ADMIN_TOKEN"
API_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export API_PORT
compose() {
    "${compose_cmd[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.ha.yml" \
        --profile ha "$@"
}

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [[ $status -ne 0 ]]; then
        say "logs (last 40 lines per service):"
        compose logs --no-color --tail=40 2>&1 | indent || true
    fi
    if [[ "${KEEP_UP:-0}" == 1 ]]; then
        say "KEEP_UP=1: stack left running; tear down with:"
        say "  $COMPOSE -p $PROJECT -f docker-compose.yml -f docker-compose.ha.yml --profile ha down -v --remove-orphans"
    else
        say "tearing down ($COMPOSE -p $PROJECT ... down -v)"
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
say "project $PROJECT; images: patroni=$PATRONI_IMAGE python=$PYTHON_IMAGE redis=$REDIS_IMAGE"
say "building $API_IMAGE and $WORKER_IMAGE"
build_log="$(mktemp)"
t0=$SECONDS
if ! compose build > "$build_log" 2>&1; then
    tail -40 "$build_log"
    rm -f "$build_log"
    fail "image build failed"
fi
rm -f "$build_log"
say "app images built in $((SECONDS - t0))s"

say "starting the stack"
t0=$SECONDS
compose up -d 2>&1 | indent

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
    migrate="$(state migrate)" api="$(state api)" worker="$(state worker)"
    [[ "$migrate" == exited\ *\ 0 && "$api" == "running healthy"* && "$worker" == "running healthy"* ]] && break
    [[ "$migrate" == exited\ * && "$migrate" != *\ 0 ]] && fail "migrate exited: $migrate"
    [[ "$api" == exited* || "$worker" == exited* ]] && fail "a service exited: api=$api worker=$worker"
    ((SECONDS < deadline)) || fail "not healthy after ${WAIT_S}s: migrate=$migrate api=$api worker=$worker"
    sleep 2
done
[[ "$(state postgres)" == missing ]] || fail "the single postgres service runs in HA mode: $(state postgres)"
say "healthy in $((SECONDS - t0))s: pg1..pg3 + migrate=exited(0) api=healthy worker=healthy (no single postgres)"
compose ps 2>/dev/null | indent

say "failover check against http://127.0.0.1:$API_PORT"
API="http://127.0.0.1:$API_PORT" WAIT_S="$WAIT_S" ADMIN_TOKEN="$ADMIN_TOKEN" \
FAILOVER_MAX_S="$FAILOVER_MAX_S" API_CONTAINER="$(container api)" \
PG_CONTAINERS="pg1=$(container pg1),pg2=$(container pg2),pg3=$(container pg3)" python3 - <<'PY'
import json
import os
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
NODES = dict(pair.split("=") for pair in os.environ["PG_CONTAINERS"].split(","))
API_CONTAINER = os.environ["API_CONTAINER"]
FAILOVER_MAX_S = float(os.environ["FAILOVER_MAX_S"])
dead: set[str] = set()


def check(cond, message):
    if not cond:
        print(f"    FAIL: {message}")
        sys.exit(1)


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
            return exc.code, exc.headers, json.loads(raw)
        except ValueError:
            return exc.code, exc.headers, raw.decode(errors="replace")


def members():
    """Patroni's GET /cluster, asked inside a live node's container."""
    for node, cid in NODES.items():
        if node in dead:
            continue
        out = subprocess.run(
            ["docker", "exec", cid, "python3", "-c",
             "import urllib.request; print(urllib.request.urlopen("
             "'http://127.0.0.1:8008/cluster', timeout=2).read().decode())"],
            capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return {m["name"]: m for m in json.loads(out.stdout)["members"]}
    return {}


def roles(ms):
    return {n: f"{m['role']}/{m['state']}" for n, m in sorted(ms.items())}


def wait_cluster(what, ok, timeout):
    deadline = time.monotonic() + timeout
    while True:
        ms = members()
        if ok(ms):
            return ms
        check(time.monotonic() < deadline, f"{what} not reached in {timeout:.0f}s: {roles(ms)}")
        time.sleep(0.5)


def healthy(ms, expect):
    """One leader and a sync standby among the nodes in `expect`, all of them running."""
    up = {n: m for n, m in ms.items() if n in expect and m["state"] in ("running", "streaming")}
    leaders = [n for n, m in up.items() if m["role"] == "leader"]
    syncs = [n for n, m in up.items() if m["role"] == "sync_standby"]
    return len(leaders) == 1 and bool(syncs) and set(up) == set(expect)


def batch(start, n, kg):
    return {"measurements": [
        {"ts": (start + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z"),
         "methane_kg": kg} for i in range(n)]}


def api_restarts():
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}} {{.RestartCount}} {{.State.StartedAt}}",
                          API_CONTAINER], capture_output=True, text=True, check=True)
    return out.stdout.strip()


ms = wait_cluster("a leader and a sync standby", lambda ms: healthy(ms, NODES), 60)
primary = next(n for n, m in ms.items() if m["role"] == "leader")
print(f"    cluster: {roles(ms)}")

status, _, site = call("POST", "/v1/sites",
                       {"name": f"ha-{uuid.uuid4().hex[:8]}", "emission_limit_kg": 50000}, ADMIN)
check(status == 201, f"create site: {status} {site}")
status, _, device = call("POST", "/v1/devices", {"device_id": "ha-sensor", "site_ids": [site["id"]]}, ADMIN)
check(status == 201, f"create device: {status} {device}")
auth = {"Authorization": f"Bearer {device['key']}"}
start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
status, _, answer = call("POST", f"/v1/sites/{site['id']}/measurements", batch(start, 8, 1.25),
                         {**auth, "Idempotency-Key": str(uuid.uuid4())})
check(status == 202 and answer["accepted"] == 8, f"first batch: {status} {answer}")
print(f"    batch 1 (8 readings) accepted: 202 on primary {primary}")
before = api_restarts()

# The primary's machine dies: SIGKILL to etcd, Patroni and Postgres at once.
subprocess.run(["docker", "kill", NODES[primary]], check=True, capture_output=True)
t0 = time.monotonic()
dead.add(primary)
print(f"    docker kill {primary} (the primary)")

# A device retrying one batch with one key, as devices do: until a 202.
key = str(uuid.uuid4())
body = batch(start + timedelta(hours=4), 8, 2.5)
attempts: dict[str, int] = {}
new_primary = elected_at = None
while True:
    now = time.monotonic() - t0
    check(now < FAILOVER_MAX_S, f"no 202 within {FAILOVER_MAX_S:.0f}s of the kill: {attempts}")
    if new_primary is None:
        ms = members()
        # The dead primary's keys stay in etcd until their ttl runs out: not a new leader.
        leader = [n for n, m in ms.items()
                  if m["role"] == "leader" and m["state"] == "running" and n not in dead]
        if leader:
            new_primary, elected_at = leader[0], time.monotonic() - t0
    try:
        status, headers, answer = call("POST", f"/v1/sites/{site['id']}/measurements", body,
                                       {**auth, "Idempotency-Key": key}, timeout=10)
    except OSError as exc:  # the API itself must not go away, but count it rather than crash
        attempts[type(exc).__name__] = attempts.get(type(exc).__name__, 0) + 1
        time.sleep(0.5)
        continue
    attempts[str(status)] = attempts.get(str(status), 0) + 1
    if status == 202:
        accepted_at = time.monotonic() - t0
        break
    check(status in (409, 429, 503), f"unexpected {status}: {answer}")
    time.sleep(min(float(headers.get("Retry-After", "0.5") or 0.5), 1.0))
check(answer["accepted"] == 8, f"second batch: {answer}")
if new_primary is None:
    ms = wait_cluster("a new leader", lambda ms: any(
        m["role"] == "leader" and n not in dead for n, m in ms.items()), 10)
    new_primary = next(n for n, m in ms.items() if m["role"] == "leader" and n not in dead)
    elected_at = time.monotonic() - t0
check(new_primary != primary, f"leader is still {primary}")
after = api_restarts()
check(before == after, f"the API container restarted: {before} -> {after}")
print(f"    new primary {new_primary} seen at {elected_at:.1f}s; batch 2 accepted (202) at "
      f"{accepted_at:.1f}s after the kill, same API container (no restart); answers: {attempts}")
print(f"FAILOVER primary_seen_s={elected_at:.1f} first_202_s={accepted_at:.1f}")

# Both batches count exactly once: the worker drains on the new primary.
expected = Decimal("8") * Decimal("1.25") + Decimal("8") * Decimal("2.5")
deadline = time.monotonic() + float(os.environ["WAIT_S"])
while True:
    status, _, got = call("GET", f"/v1/sites/{site['id']}", headers=ADMIN)
    if status == 200 and Decimal(repr(got["lifetime_kg"])) == expected:
        break
    check(time.monotonic() < deadline, f"lifetime_kg {got} != {expected}")
    time.sleep(0.5)
print(f"    lifetime_kg {got['lifetime_kg']} == {expected}: both batches drained, once each")
ms = wait_cluster("a sync standby after the failover", lambda ms: healthy(ms, set(NODES) - dead), 60)
print(f"    cluster without {primary}: {roles(ms)}")

# The machine comes back: Patroni rewinds the former primary and it follows the new one.
subprocess.run(["docker", "start", NODES[primary]], check=True, capture_output=True)
dead.discard(primary)
t1 = time.monotonic()
ms = wait_cluster(f"{primary} back as a standby",
                  lambda ms: healthy(ms, NODES) and ms[primary]["role"] != "leader", 120)
print(f"    {primary} restarted: streaming again as {ms[primary]['role']} after "
      f"{time.monotonic() - t1:.1f}s: {roles(ms)}")
PY
