# Two entry points: `make reproduce` (everything, paper scale) and `make test`;
# `make publish` then writes the run's results page, figures and report into docs/.
# A run in pieces (README, "A run in pieces"): `make reproduce HOURS=2` stops at the
# deadline and archives into runs/$(RUN); `make resume` restores it on a fresh clone;
# `make figures` redraws figures, claims, summary and report from it without training.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
RUN ?= paper
CHECKOUT ?= .
HOURS ?=

.PHONY: reproduce archive resume figures publish publish-run test smoke bench install

PROFILE := --workflow-profile workflow/profiles/default
ARCHIVE := $(BIN)/python -m ldnn.archive --run runs/$(RUN) --checkout $(CHECKOUT)

reproduce: install
ifdef HOURS
	$(ARCHIVE) run --hours $(HOURS) --cores $(CORES)
else
	$(BIN)/snakemake $(PROFILE) --cores $(CORES)
endif

archive: install
	$(ARCHIVE) store

resume: install
	$(ARCHIVE) restore --cores $(CORES)

figures: install
	$(ARCHIVE) figures --cores $(CORES)

# Run in the checkout that produced results/, at the commit that produced it.
publish: install
	$(BIN)/python -m ldnn.publish results docs --command "make reproduce CORES=$(CORES)"
	$(BIN)/snakemake $(PROFILE) --report docs/report.html

# The archived run instead: redrawn from runs/$(RUN) in CHECKOUT (at the run's commit), its
# times from the pieces.
publish-run: figures
	$(BIN)/python -m ldnn.publish $(CHECKOUT)/results docs --checkout $(CHECKOUT) --run runs/$(RUN) \
	  --command "make reproduce HOURS=… (then make resume and again, piece by piece)"
	cp $(CHECKOUT)/results/report.html docs/report.html

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
