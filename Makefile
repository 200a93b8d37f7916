# mtl_cli — make targets are thin wrappers over the `mtl` command.
PYTHON ?= python3
VENV ?= .venv
# The torch requirement; override for a GPU build, e.g. make setup TORCH='torch==2.13.0 --index-url ...'
TORCH ?= torch==2.13.0
EXTRAS ?= dev,png
BIN := $(VENV)/bin
MTL := $(BIN)/mtl
STAMP := $(VENV)/.installed
ARGS ?=
DIR ?=
EXP ?=

.PHONY: help setup run train sweep report plot list test test-fast lint format bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH) "numpy>=1.24"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install mtl_cli (torch from $$TORCH)

run: setup ## the default experiment on embedded data, then its summary
	$(MTL) train $(ARGS)
	@$(MTL) report $$(ls -td outputs/runs/*/*/* | head -n 1)

train: setup ## mtl train ARGS='...'
	$(MTL) train $(ARGS)

sweep: setup ## mtl train -m experiment=$$EXP ARGS='...'
	$(MTL) train -m experiment=$(EXP) $(ARGS)

report: setup ## mtl report DIR=...
	$(MTL) report $(DIR) $(ARGS)

list: setup ## mtl list
	$(MTL) list $(ARGS)

test: setup ## the whole test suite (what .ci/run calls)
	$(BIN)/pytest -q $(ARGS)

test-fast: setup ## tests without the slow ones
	$(BIN)/pytest -q -m "not slow" $(ARGS)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check mtl_cli tests benchmarks
	$(BIN)/ruff format --check mtl_cli tests benchmarks

format: setup ## ruff format and autofix
	$(BIN)/ruff format mtl_cli tests benchmarks
	$(BIN)/ruff check --fix mtl_cli tests benchmarks

bench: setup ## speed measurements (not part of make test)
	$(BIN)/python -m benchmarks $(ARGS)

clean: ## remove build artefacts (keeps .venv and outputs/)
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
