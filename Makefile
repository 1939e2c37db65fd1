# Every target sets up what it needs: on a fresh machine `make demo` and `make test` are the
# only commands to type.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What `make demo` and `make sandbox` need, not the development tools.
SANDBOX_STAMP := $(VENV)/.installed-sandbox

.PHONY: demo sandbox test test-strict test-unit test-integration bench bench-engine bench-restore bench-scale bench-control bench-kill lint typecheck schemas chaos fuzz system-deps lock clean

# Dependencies exactly as the lock files pin them, by hash (requirements/, `make lock`),
# then the project itself, editable.
$(STAMP): pyproject.toml requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP) $(SANDBOX_STAMP)

$(SANDBOX_STAMP): pyproject.toml requirements/sandbox.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/sandbox.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(SANDBOX_STAMP)

# Rewrite the lock files from pyproject.toml (uv, pinned: it keeps every pin it can and
# writes the hashes of every wheel of each version, for any platform). Run the tests after.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	for extra in dev sandbox; do $(BIN)/uv pip compile pyproject.toml --extra $$extra \
		--generate-hashes --universal --python-version 3.11 --no-header \
		-o requirements/$$extra.txt; done
	$(BIN)/uv pip compile pyproject.toml --extra otel --generate-hashes --universal \
		--python-version 3.11 --no-header -o requirements/image.txt
	printf 'cyclonedx-bom==7.5.0\n' | $(BIN)/uv pip compile - --generate-hashes --universal \
		--python-version 3.11 --no-header -o requirements/build-tools.txt

# Debian packages some checks need (kubectl, promtool). Installed only when missing.
system-deps:
	@./scripts/system-deps

demo: $(SANDBOX_STAMP)
	$(BIN)/orderflow demo

# Broker, simulators and one replica kept up to practise the operator commands on (Ctrl-C).
sandbox: $(SANDBOX_STAMP)
	$(BIN)/orderflow sandbox

# Everything: unit, integration (the embedded broker, simulators over HTTP), deploy checks
# (kubectl and promtool from `make system-deps`: Debian packages, installed as root; without
# root it names them and stops). `make test-unit` needs neither and takes seconds.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -ra

# The strict broker lane (docs/brokers.md): the Kafka-semantics tests and a short chaos run
# on a second Kafka-protocol implementation that has what the embedded broker lacks
# (idempotent producer, compaction, refusals, configs). Its one dependency is pinned by hash.
test-strict: $(STAMP)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/strict-broker.txt
	TEST_BROKER=noida $(BIN)/python -m pytest -q -ra -m kafka_semantics tests/integration
	TEST_BROKER=noida $(BIN)/python -m chaos --short --replicas 1 --static-membership 1 \
		--orders 1500 --rate 12.5 --kills 6 --work-dir chaos/results/strict

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

bench: $(STAMP)
	$(BIN)/python -m bench.pipeline

# The engine's own CPU per pair (owner, journal, lanes, runner) on in-memory fakes, beside
# the floor of reading one order from JSON.
bench-engine: $(STAMP)
	$(BIN)/python -m bench.engine_cpu

# Restoring 1,000,000 tracking records: time to ready, memory, /healthz during the restore.
bench-restore: $(STAMP)
	$(BIN)/python -m bench.restore
	$(BIN)/python -m bench.restore --mix waiting

# Many Smake pairs waiting: requests a minute single, batched and with webhooks, RSS per
# pair, and the plots bench/README.md shows (about 30 minutes).
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale

# The control topic's start-up read with a year of residue, without the clean-up and with it.
bench-control: $(STAMP)
	$(BIN)/python -m bench.control_residue

# What one SIGKILL and one scale-down cost the group, per broker and membership (docs/brokers.md).
bench-kill: $(STAMP)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/strict-broker.txt
	$(BIN)/python -m bench.kill_cost

# Faults against real processes, then a count of what was lost or repeated (chaos/harness.py).
chaos: $(STAMP)
	$(BIN)/python -m chaos

# Hostile records through the real intake and hostile answers through every adapter
# (fuzz/): at least 100,000 records; fails on any crash, stall or record not accounted for.
fuzz: $(STAMP)
	$(BIN)/python -m fuzz

lint: $(STAMP)
	$(BIN)/ruff check orderflow tests bench chaos fuzz
	$(BIN)/mypy
	# Tests and tools: typed, and the fakes checked against the ports they stand in for,
	# but functions may go unannotated (as httpx checks its tests).
	$(BIN)/mypy --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls tests bench chaos fuzz
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

# Regenerate the committed JSON Schemas from the event models.
schemas: $(STAMP)
	$(BIN)/python -m orderflow.contracts.schema docs/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
