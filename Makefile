# Two entry points: `make reproduce` (everything, paper scale) and `make test`;
# `make publish` then writes the run's results page, figures and report into docs/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: reproduce publish test smoke bench install

PROFILE := --workflow-profile workflow/profiles/default

reproduce: install
	$(BIN)/snakemake $(PROFILE) --cores $(CORES)

# Run in the checkout that produced results/, at the commit that produced it.
publish: install
	$(BIN)/python -m ldnn.publish results docs --command "make reproduce CORES=$(CORES)"
	$(BIN)/snakemake $(PROFILE) --report docs/report.html

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
