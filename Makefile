# nnc4rl: `make test` and `make reproduce` set everything up on a fresh machine.
# Setup goes into a project-local virtual environment ($(VENV)). torch is installed first, as the
# CPU build unless a GPU is present (see README: "CPU and GPU installs"); every other package is pinned by
# requirements.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# Set to install torch from another index, e.g. a CUDA build (see README).
TORCH_INDEX ?=
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test lint format reproduce lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -c "import torch, sys; sys.exit(not torch.__version__.startswith('$(TORCH_VERSION)'))" 2>/dev/null; then \
		echo "torch $(TORCH_VERSION) already installed"; \
	elif [ -n "$(TORCH_INDEX)" ]; then \
		$(BIN)/pip install "torch==$(TORCH_VERSION)" --index-url "$(TORCH_INDEX)"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/pip install "torch==$(TORCH_VERSION)"; \
	elif $(BIN)/pip install --dry-run --no-index --no-deps -q "torch==$(TORCH_VERSION)+cpu" >/dev/null 2>&1; then \
		$(BIN)/pip install "torch==$(TORCH_VERSION)+cpu"; \
	else \
		$(BIN)/pip install "torch==$(TORCH_VERSION)+cpu" --index-url $(CPU_TORCH_INDEX); \
	fi
	$(BIN)/pip install -c requirements.txt -e ".[dev]"
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# nbval runs every notebook at the smoke profile: a notebook's parameter cell reads
# NNC4RL_NOTEBOOK_PROFILE (unset, as in JupyterLab, it shows the shipped mini study).
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup
	NNC4RL_NOTEBOOK_PROFILE=smoke $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks/*.ipynb

# The main job: run every notebook in notebooks/ headless (papermill) at profile $(PROFILE).
# Executed copies go to notebooks/executed/$(PROFILE)/, figures to figures/$(PROFILE)/, tables to
# data/tables/$(PROFILE)/. With TRAIN=True the sweep inside each notebook trains the runs missing
# from data/runs/$(PROFILE)/; with TRAIN=False the notebooks read only the stored runs. The default,
# `make reproduce`, redraws the shipped mini study from data/runs/mini/ in minutes and never starts
# its hours-long sweep (TRAIN=True continues it). TRAIN defaults to True only for PROFILE=smoke
# (minutes of training). Executed copies carry no timestamps,
# durations or random ids (nnc4rl.study.notebooks), so rerunning on the same data changes nothing.
# PROFILE=paper is for a cluster:
# make reproduce PROFILE=paper TRAIN=True EXECUTOR=ray ADDRESS=...
PROFILE ?= mini
TRAIN ?= $(if $(filter smoke,$(PROFILE)),True,False)
EXECUTOR ?= local
ADDRESS ?=
WORKERS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# A profile name is checked before anything runs or is created (one line, exit status 2): the
# file must exist here (or in $NNC4RL_PROFILES), and after setup its content must validate.
PROFILE_FILES := $(wildcard nnc4rl/profiles/*.yml $(if $(NNC4RL_PROFILES),$(NNC4RL_PROFILES)/*.yml))
PROFILE_NAMES := $(sort $(filter-out machine,$(basename $(notdir $(PROFILE_FILES)))))
ifneq ($(filter reproduce,$(MAKECMDGOALS)),)
ifeq ($(filter $(PROFILE),$(PROFILE_NAMES)),)
$(error make reproduce: profile=$(PROFILE) is unknown: choose one of $(PROFILE_NAMES))
endif
endif
reproduce: setup
	@$(BIN)/python -m nnc4rl.profiles "$(PROFILE)" >/dev/null
	mkdir -p notebooks/executed/$(PROFILE)
	@set -e; for nb in $(NOTEBOOKS); do \
		echo "== $$nb ($(PROFILE))"; \
		$(BIN)/papermill --cwd notebooks --kernel python3 "$$nb" \
			"notebooks/executed/$(PROFILE)/$$(basename $$nb)" \
			-p profile $(PROFILE) -p train_missing $(TRAIN) -p executor $(EXECUTOR) \
			$(if $(ADDRESS),-p address $(ADDRESS)) $(if $(WORKERS),-p workers $(WORKERS)); \
		$(BIN)/python -m nnc4rl.study.notebooks "notebooks/executed/$(PROFILE)/$$(basename $$nb)"; \
	done
	$(if $(filter mini,$(PROFILE)),$(BIN)/python -m nnc4rl.report mini)

lab: setup  # JupyterLab and ipywidgets come with the dev extra that setup installs
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) runs .pytest_cache
