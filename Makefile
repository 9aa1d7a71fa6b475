# medseg_nb: every target installs what it needs into the active Python environment.
PY  ?= python
PIP ?= $(PY) -m pip
NB_WORKERS ?= 2
OUT ?= tour_out

.PHONY: help install export sync nbtest pytest test tour gallery readme clean site site-build browser assets

help:
	@echo "make tour   - install, then run the main job on built-in phantoms (writes $(OUT)/)"
	@echo "make test   - install, export, check medseg_nb/ is in step with nbs/, run every notebook (the site build, fast), browser, pytest"
	@echo "make site   - execute every notebook and render the tutorials into site/ (offline: assets from npm)"

# make $(1), then print how long it took, named $(2)
timed = @t0=$$(date +%s); $(MAKE) --no-print-directory $(1) && echo "[make test] $(2): $$(( $$(date +%s) - t0 )) s"

# Python writes each module's compiled file (.pyc) the first time a process imports it, for the next process to read.
# Some machines set PYTHONDONTWRITEBYTECODE (these do): then no process writes one, and every kernel and test process
# compiled torch and this package again (torch and torchvision: 10 s a process, measured). Every target here writes
# them. pip itself compiles every file it installs, one after another on one core (torch's CUDA build: 57 of its 139
# s); with --no-compile it only unpacks, and only the modules something imports are compiled, once: a fresh venv's
# install took 129 s, from 205 s with pip's own compile (178 s when compileall then compiled it all on two cores).
unexport PYTHONDONTWRITEBYTECODE
install:
	$(PIP) install -q --no-compile -e ".[dev]"

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

# two worker processes of one thread each, a test file per worker at a time (a module's shared fixture is built once):
# most tests are short and single-threaded in Python, so two cores run them side by side
PYTEST_WORKERS ?= 2
# --durations: where the time goes, in every run's log (the test suite has a time budget)
pytest:
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=12 tests

# require.js, the widget renderer and MathJax for offline pages (npm registry); build/ is not committed
JS := build/js/node_modules
assets: $(JS)/requirejs
$(JS)/requirejs:
	mkdir -p build/js && cd build/js && npm install --silent --no-audit --no-fund requirejs@2 @jupyter-widgets/html-manager@1 mathjax@2.7.7

SITE_FLAGS ?=
site: install site-build
# the build alone, for targets that have installed already (a second `pip install -e` costs 20 s doing nothing)
site-build: assets
	OMP_NUM_THREADS=1 medseg-nb site --out site --assets $(JS) --workers $(NB_WORKERS) $(SITE_FLAGS)

# Debian's chromium for the browser tests (as root, or with sudo); they skip, saying why, where none can be installed
browser:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo -n apt-get install -y -qq chromium >/dev/null; fi; } || echo "no browser could be installed: the browser tests will skip"

# Every notebook runs once, in the site build: at test sizes (MEDSEG_FAST=1, as under nbdev_test), every cell
# (`#| eval: false` ones too), failing at the first error -- what `make nbtest` checks, and more; it used to run both.
# The downloads (npm's page assets, Debian's chromium) run beside pip's install: they wait on the network, pip on the
# disk. The site build and pytest keep both cores busy each, so they run one after the other. Each stage says how long
# it took: the suite has a budget (15 minutes on a fresh 2-core machine, installs included).
test:
	$(call timed,-j3 -Otarget install assets browser,installs (pip; npm assets and chromium beside it))
	$(call timed,sync,export and compare)
	$(call timed,site-build SITE_FLAGS="--fast --cell-timeout 150",site build)
	$(call timed,pytest,pytest)

tour: install
	medseg-nb tour --out $(OUT)

gallery: install
	medseg-nb gallery --out $(OUT)

# README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which this project does not assume)
readme:
	$(PY) -m jupyter nbconvert --to markdown --execute nbs/index.ipynb --output-dir . --output README

clean:
	rm -rf _docs _proc tour_out .pytest_cache site
