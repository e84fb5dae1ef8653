# gazeflow: make help lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ASSETS_MIRROR ?=
CAMERA ?= cam:0
INPUT ?= demo
ARGS ?=

.PHONY: help setup fetch test container-test soak lint run-all run-sync bench clean config-file

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: ASSETS_MIRROR=DIR (fetch offline from a mirror), INPUT=video|cam:N, CAMERA=cam:N (calibrate), ARGS='more flags'"

setup: ## make .venv, install gazeflow with its dev tools, fetch and verify the assets
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(MAKE) fetch

fetch: ## fetch the models and the demo video (from ASSETS_MIRROR when set), verified by sha384
	$(BIN)/gazeflow fetch $(if $(ASSETS_MIRROR),--mirror $(ASSETS_MIRROR))

test: ## ruff, then the unit and integration tests (real models, real processes, real sockets)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

container-test: ## build the image (podman, else docker; offline from the fetched assets) and run the compose topology on the demo; removes all it made
	$(BIN)/python -m pytest tests/test_containers.py --containers -s -p no:cacheprovider

soak: ## the demo looped at real time for 30 minutes (MINUTES=N): memory, open files and latency each minute -> out/soak.{json,png}
	$(BIN)/python tests/soak.py --minutes $(or $(MINUTES),30) --out out/soak

lint: ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

run-all: ## the demo video (or INPUT=...) through all five stage processes, real-time
	$(BIN)/gazeflow run-all --input $(INPUT) $(ARGS)

calibrate: ## calibrate the pointer on the primary monitor (ARGS='--points 16 --profile NAME ...')
	$(BIN)/gazeflow calibrate --input $(CAMERA) $(ARGS)

ctl: ## talk to the running pipeline: make ctl ARGS=pause (resume, toggle, recenter, status)
	$(BIN)/gazeflow ctl $(ARGS)

run-sync: ## the one-process synchronous baseline on the same input
	$(BIN)/gazeflow run-sync --input $(INPUT) $(ARGS)

clean: ## remove the virtual environment and the fetched assets
	rm -rf $(VENV) .assets .pytest_cache .ruff_cache *.egg-info

bench: ## models; run-sync vs run-all; what INT8 changes; workers; latency per precision and hop; the pointer (edges, filters); the view; eye state; cold and warm start; tracking (N, gaze change, fps, cores); quantize vs the published INT8; execution precision; per-stage CPU profile; decode of the demo and of MJPEG; the EyeTrax peer; selection (bench select, under Xvfb); target verdicts -> out/bench.{json,md}
	$(BIN)/gazeflow bench --input $(INPUT) --targets docs/targets.toml $(ARGS)

config-file: ## write deploy/local.toml: every setting at its default, with its help (gazeflow config --defaults)
	$(BIN)/gazeflow config --defaults --save deploy/local.toml
