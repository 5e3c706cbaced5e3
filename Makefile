# Two commands do all the set-up on a fresh machine:
#   make repro   creates .venv if needed, prints the plan and runs the embedded default `dvc repro`, stages in parallel
#   make test    creates .venv if needed, runs ruff (lint, format check) and the test suite
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro study test

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: this machine's CPU build; an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# the plan checks params.yaml first: DVC reads the stages' outputs before any stage's own check runs; then DVC's
# stages, each as soon as its upstream is done, on cluster.local_workers workers of submitit's local executor
# (docs/cluster.md)
repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m orchestration.plan && PATH="$(CURDIR)/$(BIN):$$PATH" python -m orchestration.cluster --executor local

# every method over params-study.yaml's seeds, a round at a time, each committed to results/study/ (docs/study.md);
# ARGS="--step 4": four seeds a round, for more cores
study: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m orchestration.study $(ARGS)

# ruff first (pyproject.toml: line length 120; lint and format), then the tests
test: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest
