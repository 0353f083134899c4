# One entry point for every routine task. `make install` is idempotent.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run reset test-compose test test-unit test-e2e test-ha bench bench-small bench-stream bench-ha lint fmt typecheck migrate run-api run-worker clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# --frozen: install exactly what uv.lock pins; fail instead of re-resolving.
install: $(UV)
	$(UV) sync --frozen --python $(PYTHON)

# The whole local stack (Postgres, Redis, API, worker) with or without Docker; Ctrl-C stops it.
run: install
	$(BIN)/emissions run

# Wipe the local stack's data: the directory `emissions run` names in its banner (.data/, or
# /var/lib/emissions-engine/<clone>-<hash> for root in a clone Postgres cannot reach; RUN_DATA_DIR).
reset: install
	$(BIN)/emissions reset

# Build the images, run the compose stack, prove it end to end, tear it down (needs Docker).
test-compose:
	bash deploy/test-compose.sh

test: install
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

# Failover and partitions on a 3-node Patroni cluster, each host a network namespace (root;
# apt-get install -y patroni etcd-server iptables): prints what was lost and double-counted
# (both must be 0), the recovery time and the 503s the devices saw. ~2 min.
test-ha: install
	$(BIN)/pytest -q -s tests/ha

# The dashboard in Debian's Chromium (apt-get install -y chromium), driven by Playwright.
test-e2e: install
	$(BIN)/pytest -q tests/e2e

# Throughput and latency side by side in one run; see docs/benchmarks.md.
bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# Small batches end to end, this checkout's API against BENCH_BASE's in one run, with the API's
# CPU per request split by py-spy (root, or kernel.yama.ptrace_scope 0); see docs/benchmarks.md.
BENCH_BASE ?= c909569
bench-small: install
	$(BIN)/python -m tests.bench.small_ab --base $(BENCH_BASE) --profile $(BENCH_ARGS)

# The HA cluster against the single node in one run, and failover times; see docs/scaling.md.
bench-ha: install
	$(BIN)/python -m tests.bench.ha $(BENCH_ARGS)

# The NATS JetStream relay's rate and CPU per event (nats-server installed); see docs/benchmarks.md.
bench-stream: install
	$(BIN)/python -m tests.bench.stream $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install
	$(BIN)/emissions migrate

run-api: install
	$(BIN)/emissions serve

run-worker: install
	$(BIN)/emissions worker

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache

# A local 3-node HA PostgreSQL (Patroni + etcd, strict synchronous replication) on
# 127.0.0.11-13, no root needed; prints the multi-host DATABASE_URL. Data in $(HA_DIR), kept by
# ha-down (the next ha-up resumes it; `python3 -m deploy.ha.cluster down --purge` wipes it).
HA_DIR ?= .data/ha
.PHONY: ha-up ha-down
ha-up:
	$(PYTHON) -m deploy.ha.cluster up --dir $(HA_DIR)

ha-down:
	$(PYTHON) -m deploy.ha.cluster down --dir $(HA_DIR)
