# Developer entry points (see README.md):
#   make run    create .venv, install the runtime lock, migrate, print a demo account and a ready curl, then
#               start web + worker + scheduler in the foreground (Ctrl-C stops them all);
#               SIMULATOR=1 also starts the provider simulator on SIMULATOR_PORT (8090)
#   make test   install, then run the whole test suite
#   make lock   re-resolve the lock files (requirements.lock, requirements-test.lock) from
#               pyproject.toml
#   make lint   ruff check + ruff format --check + mypy (with django-stubs; [tool.mypy]) + the
#               structural budgets of scripts/check_budgets.py (sizes, twins, imports)
#   make chaos  fault injection: kill workers, schedulers, Redis and PostgreSQL under load
#               (throwaway servers; CHAOS_ARGS=--short for the quick version, see
#               docs/reliability.md)
#   make bench  benchmarks against same-run baselines and a million waiting workflows; prints a
#               table, writes docs/benchmarks.md, ends with a `BENCH ...` line (bench/run.py).
#               BENCH_ARGS="--size small --skip-scale" for a quick run. Not part of make test.
#
# With no DATABASE_URL / REDIS_URL / CELERY_BROKER_URL the service runs on embedded defaults
# (SQLite and Celery's filesystem transport under var/). PORT (default 8000) and HOST
# (default 127.0.0.1), from the environment, choose where the web process listens.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
UV := $(BIN)/uv
# The installer: uv, bootstrapped into the venv with pip (the one thing pip installs). It
# downloads and installs in parallel, from its own cache: a cold install takes a few seconds.
UV_VERSION := 0.13.9

# pyproject.toml declares the dependencies; the locks pin every package, transitive ones
# included, to one version with its hashes (`make lock` refreshes them). `make run` installs
# only the runtime lock; `make test`, `make lint` and the rest install the test lock too (a
# superset: the test extra, pinned to the same versions). A stamp newer than its lock means
# there is nothing to do; editing a lock reinstalls.
RUN_LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test
# Universal locks (every platform, Python 3.11 and newer: the Dockerfile runs 3.12).
LOCK_FLAGS := --quiet --generate-hashes --universal --python-version 3.11

# The first Python 3.11+ on PATH, unless PYTHON is given (evaluated only when .venv is created).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { command -v "$$p"; break; }; done)

.PHONY: help venv install lock run test lint browser chaos bench

help:
	@echo "make run    start web + worker + scheduler on http://127.0.0.1:8000 (PORT=... to change)"
	@echo "make test   run the whole test suite"
	@echo "make lint   ruff check, ruff format --check, mypy and the structural budgets"
	@echo "make browser  install Debian's Chromium for the admin browser test"
	@echo "make chaos  fault-injection scenarios (CHAOS_ARGS=--short for the quick version)"
	@echo "make bench  benchmarks against same-run baselines (BENCH_ARGS=\"--size small --skip-scale\")"
	@echo "make venv   only create $(VENV) and install the dependencies (with the test tools)"
	@echo "make lock   re-resolve $(RUN_LOCK) and $(TEST_LOCK) from pyproject.toml"

venv install: $(STAMP)

# The virtualenv and uv in it.
$(UV):
	@if [ ! -x "$(PY)" ]; then \
		if [ -z "$(PYTHON)" ]; then \
			echo "error: Python 3.11 or newer is required, and none was found on PATH" \
				"(tried python3, python3.13, python3.12, python3.11)." >&2; \
			echo "       Install one, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; \
			exit 1; \
		fi; \
		echo "Creating $(VENV) with $(PYTHON) ($$("$(PYTHON)" -V 2>&1))"; \
		"$(PYTHON)" -m venv "$(VENV)" || { \
			echo "error: '$(PYTHON) -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; \
			rm -rf "$(VENV)"; exit 1; }; \
	fi
	@"$(PY)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: $(VENV) runs $$("$(PY)" -V 2>&1); 3.11 or newer is required." \
			"Remove $(VENV) and run make again." >&2; exit 1; }
	"$(PY)" -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# `uv pip install`, not `sync`: the runtime and test stamps share one venv, and neither may
# uninstall what the other installed (the versions agree: the runtime lock is constrained by
# the test lock).
$(RUN_STAMP): $(RUN_LOCK) | $(UV)
	@echo "Installing $(RUN_LOCK) into $(VENV)"
	"$(UV)" pip install --quiet --python "$(PY)" --require-hashes -r "$(RUN_LOCK)"
	@touch "$@"

$(STAMP): $(TEST_LOCK) | $(UV)
	@echo "Installing $(TEST_LOCK) into $(VENV)"
	"$(UV)" pip install --quiet --python "$(PY)" --require-hashes -r "$(TEST_LOCK)"
	@touch "$@" "$(RUN_STAMP)"

# Keeps the pinned versions that still satisfy pyproject.toml (uv prefers what the output file
# already names); `make lock LOCK_ARGS=--upgrade` moves everything to the newest versions.
# tests/test_lock.py fails when pyproject.toml asks for something the locks do not satisfy.
lock: | $(UV)
	"$(UV)" pip compile pyproject.toml --extra test $(LOCK_FLAGS) $(LOCK_ARGS) -o "$(TEST_LOCK)"
	"$(UV)" pip compile pyproject.toml $(LOCK_FLAGS) $(LOCK_ARGS) -c "$(TEST_LOCK)" -o "$(RUN_LOCK)"

# demo_setup creates var/ (VAR_DIR), migrates, collects static files for the admin, makes sure
# the demo account exists (kept in var/demo-account.json) and prints it with a ready curl.
# PORT and HOST come from the environment only: honcho is told not to read .env (settings.py
# reads it in every process anyway), because honcho would let a PORT there win over the one
# the banner shows. honcho gives the Procfile's first entry, web, the base port.
# orchestrator.procfile is honcho, stopping each process with a SIGTERM to it alone and a
# SIGKILL only after 30 s (Ctrl-C: every process shuts down on its own, see that module).
run: $(RUN_STAMP)
	"$(PY)" manage.py demo_setup --port "$${PORT:-8000}" --host "$${HOST:-127.0.0.1}" \
		$(if $(SIMULATOR),--simulator "http://127.0.0.1:$${SIMULATOR_PORT:-8090}")
	PATH="$(BIN):$$PATH" WEB_PORT="$${PORT:-8000}" "$(PY)" -m orchestrator.procfile start --env /dev/null \
		--port "$${PORT:-8000}" web worker timers scheduler $(if $(SIMULATOR),simulator)

test: $(STAMP)
	"$(BIN)/pytest"

# Debian's Chromium for the admin browser test (which skips without it, unless
# REQUIRE_SERVICES=1); needs root or sudo. .ci/run calls it.
browser:
	bash scripts/install-browser.sh

lint: $(STAMP)
	"$(BIN)/ruff" check .
	"$(BIN)/ruff" format --check .
	"$(BIN)/mypy"
	"$(PY)" scripts/check_budgets.py

# Starts its own throwaway PostgreSQL and Redis; never touches DATABASE_URL or REDIS_URL.
chaos: $(STAMP)
	"$(PY)" -m tests.chaos $(CHAOS_ARGS)

# wrk (Debian) is the load generator of the accept benchmark.
bench: $(STAMP)
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	"$(PY)" -m bench.run $(BENCH_ARGS)
