# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheels are enough for the demo and the tests; a GPU machine gets CUDA wheels by
# installing the torch build it needs first (see README).
TORCH_SPEC ?= torch==2.13.0
# Every other dependency (runtime, fallback and dev extras, and theirs) at the exact
# versions and hashes CI tested; `make lock` refreshes it and the deploy subset.
LOCK := requirements/lock.txt
DEPLOY_LOCK := requirements/deploy-lock.txt
UV_SPEC ?= uv==0.13.9
# A Milvus 2.5 server binary for the tests of the english analyzer (Milvus Lite 3.x has
# none), kept out of the main environment: it is also the package milvus-lite.
MILVUS25 := $(VENV)/milvus-lite-2.5
MILVUS25_LOCK := requirements/milvus-lite-2.5.txt
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet \
	--excludes requirements/unlocked.txt --custom-compile-command "make lock"

.PHONY: demo test lint lock bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	touch $@

$(VENV)/.locked: $(LOCK) pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

$(MILVUS25)/.installed: $(MILVUS25_LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps --target $(MILVUS25) -r $(MILVUS25_LOCK)
	touch $@

demo: $(VENV)/.locked
	$(BIN)/ragbot demo

test: $(VENV)/.locked $(MILVUS25)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(VENV)/.locked
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Newest releases allowed by pyproject.toml; the deploy lock keeps the same versions.
lock: | $(BIN)/python
	$(BIN)/pip install --quiet "$(UV_SPEC)"
	$(BIN)/uv pip compile pyproject.toml --extra fallback --extra dev --upgrade $(LOCK_FLAGS) \
		-o $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --constraints $(LOCK) $(LOCK_FLAGS) -o $(DEPLOY_LOCK)

clean:
	rm -rf $(VENV) ragbot_data .pytest_cache .ruff_cache
