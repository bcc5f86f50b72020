# igospp: two commands do all set-up on a fresh machine (Python 3.11, pip, npm; Debian for chromium):
#   make book   builds the book into _build/html
#   make test   runs every check
# Both create .venv and install the pinned dependencies first (pip only: it is the
# installer that sees the local torch wheels; see README).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VENDOR := book/_static/vendor
FONTS := book/_extra/book/chapters/@jupyter-widgets/html-manager/dist
PIP_FLAGS := --disable-pip-version-check --quiet
BOOK_FLAGS := --all -W -n --keep-going
# Executed chapters record no progress bars (igospp shows them in interactive sessions).
export TQDM_DISABLE := 1
# glibc keeps freed memory for reuse instead of faulting it in again at every model call: the
# same numbers, faster on a CPU (README, Speed; benchmarks/bench_malloc.py); set it yourself to
# override, or to empty for glibc's defaults.
export GLIBC_TUNABLES ?= glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=268435456
NBVAL_FLAGS := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: help install test unit notebooks-check nbval book browser chromium vendor chapters chapter refs times \
        bench clean

help:
	@echo "make book     install into $(VENV) and build the book (_build/html)"
	@echo "make test     install and run every check: lint, unit tests and doctests, notebook checks,"
	@echo "              nbval on the tiny profile, strict book build, headless-browser check"
	@echo "make chapters re-execute every chapter in place with its book profile (papermill)"
	@echo "make chapter NB=book/chapters/04_igospp.ipynb PROFILE=full"
	@echo "              one chapter with a profile (book: the default, tiny, full = book/params/full/<chapter>.yaml)"
	@echo "              into _build/runs/<profile>/; or PARAMS=FILE, a flat parameter file such as"
	@echo "              book/params/full/08_benchmark_table2.yaml (the paper's Table 2)"
	@echo "make refs     regenerate the tiny reference notebooks in tests/notebooks (book/params/tiny/)"
	@echo "make times    run times of the committed chapters"
	@echo "make bench    time explain() per method and resolution (benchmarks/bench_explain.py)"
	@echo "make clean    remove build outputs (keeps $(VENV))"

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v[:2] == (3, 11) else "igospp needs Python 3.11, found %d.%d (set PYTHON=/path/to/python3.11)" % v[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements/constraints.txt -e ".[test,book]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

install: $(STAMP)

# JavaScript the static book serves itself (no CDN): require.js and the Jupyter widget manager, from npm.
$(VENDOR)/.stamp: book/vendor/package.json book/vendor/package-lock.json
	cd book/vendor && npm ci --no-audit --no-fund --ignore-scripts --silent
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/html-manager
	cp book/vendor/node_modules/requirejs/require.js $(VENDOR)/
	cd book/vendor/node_modules/@jupyter-widgets/html-manager/dist && \
	  cp embed-amd.js libembed-amd.js *.woff *.woff2 *.ttf *.eot *.svg ../../../../../_static/vendor/html-manager/
	rm -rf book/_extra && mkdir -p "$(FONTS)"
	cp book/_static/vendor/html-manager/*.woff* book/_static/vendor/html-manager/*.ttf \
	  book/_static/vendor/html-manager/*.eot book/_static/vendor/html-manager/*.svg "$(FONTS)/"
	touch $@

vendor: $(VENDOR)/.stamp

unit: $(STAMP)
	$(BIN)/ruff check igospp_src tests benchmarks tools book
	$(BIN)/python -m pytest

notebooks-check: $(STAMP)
	$(BIN)/python tools/nbtool.py check

nbval: $(STAMP)
	$(BIN)/python -m pytest $(NBVAL_FLAGS) tests/notebooks

book: $(STAMP) vendor
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

chromium:
	@command -v chromium > /dev/null || { \
	  echo "installing Debian's chromium for the browser check"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; }

browser: book chromium
	$(BIN)/python -m pytest tests/browser --book -p no:cacheprovider

test: unit notebooks-check nbval browser

chapters: $(STAMP)
	$(BIN)/python tools/nbtool.py chapters

# make chapter NB=book/chapters/04_igospp.ipynb [PROFILE=full | PARAMS=book/params/full/04_igospp.yaml]
chapter: $(STAMP)
	$(if $(NB),,$(error make chapter needs NB=book/chapters/NN_name.ipynb (and PROFILE=... or PARAMS=...)))
	$(BIN)/python tools/nbtool.py run $(NB) $(if $(PROFILE),--profile $(PROFILE)) $(if $(PARAMS),--params $(PARAMS))

refs: $(STAMP)
	$(BIN)/python tools/nbtool.py refs

times: $(STAMP)
	$(BIN)/python tools/nbtool.py times

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_explain.py

clean:
	rm -rf _build
