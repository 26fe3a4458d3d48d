# The two commands: `make run` and `make test`. Both set up everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ENV    := set -a; . ./.stack/env; set +a;

.PHONY: run test stack lint unit bench bench-quick tools clean-stack

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

tools:
	@bash infra/ensure-tools.sh

stack: $(STAMP)
	$(BIN)/orders stack up
	$(ENV) $(BIN)/orders migrate

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Benchmarks print ratios against baselines measured in the same run (see bench/README.md).
bench: tools stack $(BENCH_STAMP)
	$(ENV) $(BIN)/python -m bench.run

bench-quick: tools stack $(BENCH_STAMP)
	$(ENV) $(BIN)/python -m bench.run --quick

lint: $(STAMP)
	$(BIN)/ruff check app projectors infra tests bench
	$(BIN)/mypy

test: tools stack lint
	$(ENV) $(BIN)/pytest

run: stack
	$(ENV) $(BIN)/orders run

clean-stack: $(STAMP)
	$(BIN)/orders stack down
