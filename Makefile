# The README's commands. Each target creates the virtual environment it needs.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: demo test test-citus lint format bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,parquet,frames,web]'
	touch $@

## demo: set up, then run the main job on the embedded SQLite default
demo: $(BIN)/.installed
	$(BIN)/iftb-db demo

## test: set up, then run the whole suite on SQLite and a throwaway PostgreSQL
test: $(BIN)/.installed
	$(BIN)/pytest

## test-citus: the Citus tier: every PostgreSQL test on a throwaway Citus cluster (Citus installed)
test-citus: $(BIN)/.installed
	$(BIN)/pytest --citus

## lint: ruff and mypy, as CI runs them
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the benchmark harness; writes docs/performance.md
bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
