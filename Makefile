# meetings-cdc developer targets. Every target does its own set-up and is safe to re-run.
SHELL := /bin/bash
PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_PORT ?= 19092
export KAFKA_PORT
KAFKA := PYTHON=$(abspath $(PY)) deploy/local/kafka.sh
REGISTRY_PORT ?= 18081
export REGISTRY_PORT
REGISTRY := PYTHON=$(abspath $(PY)) deploy/local/registry.sh
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-unit lint format bench chaos kafka-up kafka-down clean tools system-packages image
.PHONY: registry-up registry-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml simulator/pyproject.toml
	@command -v $(PYTHON_BIN) >/dev/null || { echo "need $(PYTHON_BIN) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e ./simulator
	touch $@

venv: $(VENV)/.installed ## create .venv; install the package with dev extras and the simulator

kafka-up: venv ## start the local Kafka broker (KRaft) on 127.0.0.1:$KAFKA_PORT
	$(KAFKA) up

kafka-down: ## stop the local Kafka broker started by kafka-up
	$(KAFKA) down

registry-up: venv ## start a local Apicurio Registry (Confluent API /apis/ccompat/v7) on 127.0.0.1:$REGISTRY_PORT
	$(REGISTRY) up

registry-down: ## stop the local schema registry started by registry-up
	$(REGISTRY) down

demo: venv ## broker + simulator with churn + connector + tail: watch events stream by
	PY=$(PY) deploy/local/demo.sh

tools: ## build the offline deploy validators (kustomize, helm, deploycheck) into ~/.cache
	.ci/install-tools

system-packages: ## Debian's prometheus, promtool, buildah, debootstrap for the tests (apt, once)
	.ci/install-system-packages

image: system-packages ## build localhost/meetings-cdc:test with buildah on a debootstrapped Debian base
	deploy/image/build.sh

test: venv tools system-packages ## unit + integration tests against a real broker and the simulator
	@started=0; \
	if ! $(KAFKA) status >/dev/null; then $(KAFKA) up && started=1; fi; \
	registry_started=0; \
	if ! $(REGISTRY) status >/dev/null; then \
	  if $(REGISTRY) up; then registry_started=1; else [ $$started = 1 ] && $(KAFKA) down; exit 1; fi; \
	fi; \
	export MEETINGS_CDC_TEST_REGISTRY_URL=http://127.0.0.1:$(REGISTRY_PORT)/apis/ccompat/v7; \
	MEETINGS_CDC_TEST_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$registry_started = 1 ]; then $(REGISTRY) down; fi; \
	if [ $$started = 1 ]; then $(KAFKA) down; fi; \
	exit $$rc

test-unit: venv ## the fast unit tests only (no broker)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check, mypy --strict on connector/ and the simulator, import-linter (layers)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: venv ## apply ruff format and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv ## benchmarks: prints a table, writes bench/results/latest.json
	@started=0; \
	if ! $(KAFKA) status >/dev/null; then $(KAFKA) up && started=1; fi; \
	$(PY) -m bench $(BENCH_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(KAFKA) down; fi; \
	exit $$rc

CHAOS_ARGS ?= --profile long
chaos: venv ## fault injection judged by a ground-truth oracle (long run; CHAOS_ARGS="--profile short"), then the slow tests (pytest -m slow)
	@started=0; \
	if ! $(KAFKA) status | grep -q running; then $(KAFKA) up && started=1; fi; \
	MEETINGS_CDC_TEST_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(PY) -m tests.chaos $(CHAOS_ARGS); rc=$$?; \
	MEETINGS_CDC_TEST_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(PY) -m pytest -m slow tests || rc=1; \
	if [ $$started = 1 ]; then $(KAFKA) down; fi; \
	exit $$rc

clean: ## remove caches (keeps .venv and the Kafka jar cache)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
