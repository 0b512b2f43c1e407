# Developer entry points (see README.md):
#   make run    create .venv, install, migrate, print a demo account and a ready curl, then
#               start web + worker + scheduler in the foreground (Ctrl-C stops them all);
#               SIMULATOR=1 also starts the provider simulator on SIMULATOR_PORT (8090)
#   make test   install, then run the whole test suite
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
# Written after a successful install; newer than pyproject.toml means there is nothing to do.
STAMP := $(VENV)/.installed

# The first Python 3.11+ on PATH, unless PYTHON is given (evaluated only when .venv is created).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { command -v "$$p"; break; }; done)

# The dependencies declared in pyproject.toml ([project] dependencies + the test extra). They
# are installed directly: building the project itself would only leave build/ and *.egg-info
# in the work tree.
define REQUIREMENTS
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
endef
export REQUIREMENTS

.PHONY: help venv install run test lint browser chaos bench

help:
	@echo "make run    start web + worker + scheduler on http://127.0.0.1:8000 (PORT=... to change)"
	@echo "make test   run the whole test suite"
	@echo "make lint   ruff check, ruff format --check, mypy and the structural budgets"
	@echo "make browser  install Debian's Chromium for the admin browser test"
	@echo "make chaos  fault-injection scenarios (CHAOS_ARGS=--short for the quick version)"
	@echo "make bench  benchmarks against same-run baselines (BENCH_ARGS=\"--size small --skip-scale\")"
	@echo "make venv   only create $(VENV) and install the dependencies"

venv install: $(STAMP)

$(STAMP): pyproject.toml
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
	@echo "Installing dependencies from pyproject.toml into $(VENV)"
	@"$(PY)" -c "$$REQUIREMENTS" > "$(VENV)/requirements.txt"
	"$(PY)" -m pip install --quiet --disable-pip-version-check -r "$(VENV)/requirements.txt"
	@touch "$@"

# demo_setup creates var/ (VAR_DIR), migrates, collects static files for the admin, makes sure
# the demo account exists (kept in var/demo-account.json) and prints it with a ready curl.
# PORT and HOST come from the environment only: honcho is told not to read .env (settings.py
# reads it in every process anyway), because honcho would let a PORT there win over the one
# the banner shows. honcho gives the Procfile's first entry, web, the base port.
run: $(STAMP)
	"$(PY)" manage.py demo_setup --port "$${PORT:-8000}" --host "$${HOST:-127.0.0.1}"
	PATH="$(BIN):$$PATH" WEB_PORT="$${PORT:-8000}" "$(BIN)/honcho" start --env /dev/null \
		--port "$${PORT:-8000}" web worker scheduler $(if $(SIMULATOR),simulator)

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
