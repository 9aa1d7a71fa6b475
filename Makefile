# medseg_nb: every target installs what it needs into the active Python environment.
PY  ?= python
PIP ?= $(PY) -m pip
NB_WORKERS ?= 2
OUT ?= tour_out

.PHONY: help install export sync nbtest pytest test tour gallery readme clean

help:
	@echo "make tour   - install, then run the main job on built-in phantoms (writes $(OUT)/)"
	@echo "make test   - install, export, check medseg_nb/ is in step with nbs/, nbdev_test, pytest"

install:
	$(PIP) install -q -e ".[dev]"

export:
	nbdev_export

# The checked-in library must equal what the notebooks export.
sync:
	@tmp=$$(mktemp -d); cp -r medseg_nb "$$tmp/"; nbdev_export; \
	if ! diff -r -q -x __pycache__ "$$tmp/medseg_nb" medseg_nb; then \
	  echo "medseg_nb/ was out of step with nbs/: nbdev_export has now rewritten it; review and commit."; \
	  rm -rf "$$tmp"; exit 1; fi; rm -rf "$$tmp"; echo "medseg_nb/ is in step with nbs/"

# one thread per notebook: two notebooks with two torch threads each on two cores run 10x slower
nbtest:
	OMP_NUM_THREADS=1 nbdev_test --n_workers $(NB_WORKERS) --timing

pytest:
	$(PY) -m pytest -q tests

test: install sync nbtest pytest

tour: install
	medseg-nb tour --out $(OUT)

gallery: install
	medseg-nb gallery --out $(OUT)

# README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which this project does not assume)
readme:
	$(PY) -m jupyter nbconvert --to markdown --execute nbs/index.ipynb --output-dir . --output README

clean:
	rm -rf _docs _proc tour_out .pytest_cache
