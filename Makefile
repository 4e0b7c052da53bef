# fraudflow: `make run` scores real transactions with the bundled model; `make test` runs every test.
# Both set up what they need (a Python venv with the ONNX Runtime library, test tools) on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SAMPLES := samples/test-days.jsonl.gz
ANSWERS := out/answers.jsonl

# The ONNX Runtime library from the onnxruntime wheel in the venv (override to use another).
ORT_DYLIB_PATH ?= $(firstword $(wildcard $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*))
export ORT_DYLIB_PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help run test test-rust test-python test-e2e test-infra bench lint fmt setup setup-dev clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.runtime: requirements/runtime.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements/runtime.txt
	touch $@

# The lock pins every package and is installed without dependency resolution: see its header for
# why (no triton, CPU xgboost: about 1.5 GB less on disk than resolving requirements/dev.txt).
# PyTorch and its CUDA libraries (4.2 GB installed) go in one package per pip call first: pip holds
# every wheel of a call on disk until it has installed them all, and on a short disk the 3 GB of
# compressed wheels on top of what they unpack to is what ran out.
$(VENV)/.dev: $(VENV)/.runtime requirements/dev.lock model-export/pyproject.toml
	grep -E '^(torch|nvidia-|cuda-)' requirements/dev.lock | while read -r pkg; do \
	  $(VPY) -m pip install --quiet --no-deps "$$pkg"; done
	$(VPY) -m pip install --quiet --no-deps -r requirements/dev.lock
	$(VPY) -m pip install --quiet --no-deps -e ./model-export
	touch $@

setup: $(VENV)/.runtime ## Install what `make run` needs (ONNX Runtime library)
setup-dev: $(VENV)/.dev ## Install what `make test` needs (PyTorch, moto, cargo-lambda, ...)

run: $(VENV)/.runtime ## Score real test-week transactions with the bundled model and print a summary
	@# Re-evaluated here: the venv (and so the library) may have just been created.
	cargo build --release --quiet -p fraudflow-cli
	ORT_DYLIB_PATH="$$(ls $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" \
	  target/release/fraudflow score --input $(SAMPLES) --output $(ANSWERS) --batch-size 1 --require-model
	@echo
	@echo "Answers are in $(ANSWERS). The three highest-scored:"
	@$(VPY) -c 'import json,sys; a=[json.loads(l) for l in open("$(ANSWERS)")]; a=[x for x in a if "fraud_probability" in x]; a.sort(key=lambda x: -x["fraud_probability"]); [print(json.dumps(x)) for x in a[:3]]'

test: $(VENV)/.dev lint test-rust test-python test-e2e test-infra ## Run every test (lint, Rust, Python, end-to-end, infra)

lint: $(VENV)/.dev ## Formatting and lints: cargo fmt, clippy -D warnings, ruff
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check model-export tests bench

test-rust: $(VENV)/.dev ## Rust unit and integration tests (golden vectors, local S3)
	ORT_DYLIB_PATH="$$(ls $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" \
	  cargo test --workspace

test-python: $(VENV)/.dev ## model-export tests (features, training smoke run, export parity)
	cd model-export && ../$(VPY) -m pytest -q

test-e2e: $(VENV)/.dev ## End to end: local S3 + the function under `cargo lambda watch`; the bench scripts' tables
	ORT_DYLIB_PATH="$$(ls $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" \
	  $(VPY) -m pytest -q tests/e2e tests/bench

test-infra: ## Infra offline: SAM lint/validate, checkov, sam build + package check, deploy to moto
	infra/test.sh -q

# BENCH_ARGS=--quick for a short run of the cold-start / Python-peer driver.
BENCH_ARGS ?=
bench: $(VENV)/.dev ## Benchmarks: criterion (scoring), cold start / latency / memory against a Python peer, the targets table
	ORT_DYLIB_PATH="$$(ls $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" \
	  cargo bench -p fraudflow --bench scoring
	cargo build --release --quiet -p fraudflow-scorer -p fraudflow-cli
	ORT_DYLIB_PATH="$$(ls $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" \
	  $(VPY) bench/coldstart.py --markdown out/bench-peer.md --json out/bench-peer.json $(BENCH_ARGS)
	ORT_DYLIB_PATH="$$(ls $(CURDIR)/$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" \
	  $(VPY) bench/targets.py --peer out/bench-peer.json --markdown out/bench-targets.md

fmt: ## Format Rust and Python
	cargo fmt --all
	$(VENV)/bin/ruff format model-export tests

clean: ## Remove build outputs (keeps the venv)
	cargo clean
	rm -rf out
