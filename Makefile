# The two commands: `make run` and `make test`. Both set up everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ENV    := set -a; . ./.stack/env; set +a;

.PHONY: run test stack lint bench bench-quick tools clean-stack docker-images test-docker \
	stack-cluster test-cluster

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
	$(BIN)/ruff check app projectors infra orders_cli tests bench
	$(BIN)/mypy

test: tools stack lint
	$(ENV) $(BIN)/pytest --ignore=tests/cluster
	$(MAKE) test-cluster
	$(MAKE) test-docker

# The cluster stack (three Elasticsearch nodes, a six-node Redis Cluster) beside the single
# one; its URLs go to .stack/cluster.env. The cluster suite starts or reuses it itself.
stack-cluster: stack
	$(BIN)/orders stack up --cluster

test-cluster: stack
	@started=$$(date +%s); $(ENV) $(BIN)/pytest tests/cluster \
	  && echo "test-cluster: passed in $$(( $$(date +%s) - started ))s"

# Local images from Debian's packages and the Elasticsearch zip (infra/docker/images.sh);
# starts dockerd when none answers. Cached: unchanged images are not rebuilt.
docker-images: $(STAMP)
	@bash infra/docker/images.sh; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "docker-images: skipped, no Docker engine can run here"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

# The Docker path: the compose stack, and a slice of the suite on testcontainers, both on
# the local images. The service URLs are unset so that testcontainers starts the services;
# ports publish on 127.0.0.1 and are reached there; no reaper image (it would be pulled).
# The search test runs before the projector's out-of-order test, which wants a warm engine.
DOCKER_SLICE := tests/docker tests/integration/test_write_store.py \
	tests/read/test_search_api.py::test_full_text_finds_items_customers_tracking_and_reasons \
	tests/read/test_dashboard_and_consistency.py::test_dashboard_equals_sql_recomputation \
	tests/projection/test_projector.py::test_out_of_order_commit_is_applied_to_both_sinks
# The stack's process credentials (in .stack/env) are not those of the containers.
NO_SECRETS := $(foreach n,PG_WRITER PG_READER PG_PROJECTOR PG_REBUILD ES_WRITER ES_READER \
	REDIS_PROJECTOR REDIS_READER,ORDERS_$(n)_PASSWORD_FILE=none)
test-docker: docker-images
	@if docker info >/dev/null 2>&1; then \
	  started=$$(date +%s); \
	  env -u DATABASE_URL -u ELASTICSEARCH_URL -u REDIS_URL ORDERS_TEST_IMAGES=local $(NO_SECRETS) \
	    TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_CONNECTION_MODE=docker_host \
	    TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 \
	    timeout -k 30 900 $(BIN)/pytest -W ignore::DeprecationWarning $(DOCKER_SLICE) \
	  && echo "test-docker: passed in $$(( $$(date +%s) - started ))s"; \
	else echo "test-docker: skipped, no Docker engine answers (see docker-images above)"; fi

run: stack
	$(ENV) $(BIN)/orders run

clean-stack: $(STAMP)
	$(BIN)/orders stack down --cluster
	$(BIN)/orders stack down
