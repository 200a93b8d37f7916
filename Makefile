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

.PHONY: help setup run train sweep report plot list test test-slurm test-gpu test-fast lint format bench clean \
	scenes scene-weighting \
	hw1 weighting mmoe experts transfer multifashion multilabel meta sinusoid spam

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

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

plot: setup ## mtl plot DIR=... (PNGs in DIR/plots)
	$(MTL) plot $(DIR) $(ARGS)

# A case study: run the preset's sweep, then print its report (also when some jobs failed).
NEWEST_SWEEP = $$(ls -td outputs/multirun/*/ | head -n 1)
# $(2): optional report metrics, e.g. per-task columns
MSE_COLUMNS := 'metrics=[test/mse,test/*/mse]'
ACCURACY_COLUMNS := 'metrics=[test/accuracy,test/*/accuracy]'
study = $(MTL) train -m experiment=$(1) $(ARGS); status=$$?; $(MTL) report $(NEWEST_SWEEP) $(2); exit $$status

hw1: setup ## case study: CS330 HW1, MANN on Hershey glyphs at four (K, N) (experiment=cs330_hw1)
	@$(call study,cs330_hw1)

weighting: setup ## case study: loss weighting methods compared (experiment=weighting_comparison)
	@$(call study,weighting_comparison)

mmoe: setup ## case study: MMoE vs hard sharing over task correlation (experiment=mmoe_correlation)
	@$(call study,mmoe_correlation,$(MSE_COLUMNS))

experts: setup ## case study: MMoE vs CGC vs PLE vs DSelect-k over task correlation (experiment=expert_models)
	@$(call study,expert_models,$(MSE_COLUMNS))

transfer: setup ## case study: negative transfer (experiment=negative_transfer)
	@$(call study,negative_transfer,$(MSE_COLUMNS))

multifashion: setup ## case study: sharing on MultiFashion (experiment=multifashion_sharing)
	@$(call study,multifashion_sharing,$(ACCURACY_COLUMNS))

multilabel: setup ## case study: multi-label sharing (experiment=multilabel_sharing)
	@$(call study,multilabel_sharing)

# every dense metric, per task, and the gradient-conflict statistics
SCENE_COLUMNS := 'metrics=[test/*/miou,test/*/pixel_accuracy,test/*/abs_error,test/*/rel_error,test/*/mean_angle_error,test/*/median_angle_error,test/*/within_11_25,test/*/within_22_5,test/*/within_30,diag/grad_cos/mean,diag/grad_conflict_fraction]'
SCENE_WEIGHTING_DIR ?= outputs/multirun/scene_weighting

scenes: setup ## case study: dense scene understanding, sharing (experiment=scene_sharing)
	@$(call study,scene_sharing,$(SCENE_COLUMNS))

scene-weighting: setup ## case study: dense scene understanding, every weighting method + its independent baseline (experiment=scene_weighting)
	@$(MTL) train -m experiment=scene_weighting hydra.sweep.dir=$(SCENE_WEIGHTING_DIR) $(ARGS); s1=$$?; \
	$(MTL) train -m experiment=scene_weighting model=independent '~hydra.sweeper.params.loss' \
	  hydra.sweep.dir=$(SCENE_WEIGHTING_DIR)/independent $(ARGS); s2=$$?; \
	$(MTL) report $(SCENE_WEIGHTING_DIR) $(SCENE_COLUMNS); exit $$(( s1 || s2 ))

meta: setup ## case study: meta-learners compared (experiment=meta_compare)
	@$(call study,meta_compare)

sinusoid: setup ## case study: MAML on sinusoid regression (experiment=maml_sinusoid)
	@$(call study,maml_sinusoid)

spam: setup ## case study: personal spam filters, sharing vs data per user (experiment=personal_spam)
	@$(call study,personal_spam,$(ACCURACY_COLUMNS))

list: setup ## mtl list
	$(MTL) list $(ARGS)

test: setup ## the test suite, all but the SLURM tests (.ci/run runs it, then test-slurm)
	$(BIN)/pytest -q $(ARGS)

test-slurm: setup ## SLURM tests on a single-node cluster this target starts (Debian, root; see docs/sweeps.md)
	bash tests/slurm/local_cluster.sh
	$(BIN)/pytest -q --slurm $(ARGS)

test-gpu: setup ## GPU checks on a CUDA machine, a few minutes (needs a CUDA torch: see tests/gpu/test_gpu.py)
	$(BIN)/pytest -q tests/gpu $(ARGS)

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
