# A fresh machine needs Python 3.11+ and make: `make run` and `make test` do the rest.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint format clean demo bench

help:
	@echo "make run     start web, worker and beat (and a private Redis unless REDIS_URL is set)"
	@echo "make test    lint, then the test suite; pass pytest arguments as ARGS=\"-k offer\""
	@echo "make lint    ruff check, ruff format --check and the import layers (lint-imports)"
	@echo "make format  sort imports and format the code"
	@echo "make demo    a stack of its own and a one-minute simulated city; ARGS go to simulate"
	@echo "make bench   the benchmark (BENCHMARKS.md); ARGS=\"--quick\" or \"--only dispatch\""
	@echo "make clean   remove var/ (local data), staticfiles/ and .venv/"

run: $(VENV)/.installed-runtime
	$(BIN)/python scripts/stack.py run

test: $(VENV)/.installed-dev
	$(BIN)/python scripts/stack.py test $(ARGS)

demo: $(VENV)/.installed-runtime
	$(BIN)/python scripts/stack.py demo $(ARGS)

bench: $(VENV)/.installed-runtime
	$(BIN)/python -m bench $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var staticfiles $(VENV)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "this needs Python 3.11+ as $(PYTHON); try make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# Stamps: pip runs again only when a requirements file changes. The dev set
# includes the runtime one, so installing it also satisfies `make run`.
$(VENV)/.installed-runtime: requirements.txt | $(BIN)/python
	@echo "installing requirements.txt into $(VENV)"
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "installing requirements-dev.txt into $(VENV)"
	$(PIP) -r requirements-dev.txt
	@touch $@ $(VENV)/.installed-runtime
