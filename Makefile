# Plumbline developer commands. `make run` and `make test` work on a fresh machine with
# Python 3.11+: the virtualenv is created on first use and reinstalled when pyproject.toml
# changes.

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Interpreters tried in order when creating the virtualenv; `make PYTHON=/path/python3.12`
# picks one explicitly.
PYTHON_CANDIDATES := python3.13 python3.12 python3.11 python3 python

.DEFAULT_GOAL := help
.PHONY: help install run test test-faults lint format bench docs-briefing migrate revision compose-up

help:
	@echo "make install     create $(VENV) (Python 3.11+) and install Plumbline with dev tools"
	@echo "make run         start everything (plumbline run); embedded PostgreSQL/Redis by default"
	@echo "make test        run the test suite"
	@echo "make test-faults the fault suite: parts and servers killed under load (~8 min)"
	@echo "make lint        ruff check, ruff format --check, mypy --strict, import contracts"
	@echo "make format      ruff format and autofix"
	@echo "make bench       run the benchmarks"
	@echo "make docs-briefing  render the briefing pages in docs/ (needs soffice, pdftoppm)"
	@echo "make migrate     apply database migrations"
	@echo "make revision m='message'   autogenerate a migration"
	@echo "make compose-up  build and start the docker compose stack"

$(BIN)/python:
	@set -e; \
	python="$(PYTHON)"; \
	if [ -z "$$python" ]; then \
		for candidate in $(PYTHON_CANDIDATES); do \
			if command -v "$$candidate" >/dev/null 2>&1 && \
				"$$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
				python="$$candidate"; break; \
			fi; \
		done; \
	fi; \
	if [ -z "$$python" ]; then \
		echo "Plumbline needs Python 3.11 or newer; none of $(PYTHON_CANDIDATES) is." >&2; \
		exit 1; \
	fi; \
	echo "creating $(VENV) with $$(command -v $$python) ($$($$python --version 2>&1))"; \
	"$$python" -m venv "$(VENV)" || { \
		rm -rf "$(VENV)"; \
		echo "could not create a virtualenv: on Debian/Ubuntu install python3-venv" >&2; \
		exit 1; \
	}

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/plumbline run

# Test processes for `make test` (pytest-xdist): the tests mostly wait on PostgreSQL, HTTP and
# subprocesses, so more processes than cores still help. `make test TEST_WORKERS=0` runs the
# suite in one process.
TEST_WORKERS ?= 3

test: install
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| [ -n "$$PLUMBLINE_CHROMIUM" ] \
		|| echo "NOTE: no Chromium found: the console's browser tests will be SKIPPED (apt-get install chromium)"
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# Issue 12's fault suite (tests/faults): real processes and their own embedded servers,
# killed and restarted under load, then reconciled. Not part of `make test`.
test-faults: install
	PLUMBLINE_FAULT_SUITE=1 $(BIN)/pytest tests/faults -v

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict shared services benchmarks tests
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.sampling
	$(BIN)/python -m benchmarks.claims
	$(BIN)/python -m benchmarks.agreement
	$(BIN)/python -m benchmarks.reports
	$(BIN)/python -m benchmarks.console
	$(BIN)/python -m benchmarks.notifier
	$(BIN)/python -m benchmarks.mixed --output docs/benchmarks.md

docs-briefing: install
	$(BIN)/python -m benchmarks.render_briefing

migrate: install
	$(BIN)/plumbline migrate

# Diffs the models against a database migrated to head (embedded unless
# PLUMBLINE_DATABASE_URL is set) and writes migrations/versions/<rev>_<slug>.py.
revision: install
	@test -n "$(m)" || { echo "usage: make revision m='what changed'" >&2; exit 1; }
	$(BIN)/plumbline revision -m "$(m)"

compose-up:
	docker compose up --build -d
