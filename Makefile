# Two entry points: `make reproduce` (everything, paper scale) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: reproduce test smoke bench install

PROFILE := --workflow-profile workflow/profiles/default

reproduce: install
	$(BIN)/snakemake $(PROFILE) --cores $(CORES)

test: install
	$(BIN)/python -m pytest

smoke: install
	$(BIN)/snakemake $(PROFILE) --cores $(CORES) --configfile tests/smoke.yaml

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@
