# igospp: two commands do all set-up on a fresh machine (Python 3.11 + pip):
#   make book   builds the book into _build/html
#   make test   runs every check
# Both create .venv and install the pinned dependencies first (pip only: it is the
# installer that sees the local torch wheels; see README).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP_FLAGS := --disable-pip-version-check --quiet
BOOK_FLAGS := --all -W -n --keep-going

.PHONY: help install test unit book bench clean

help:
	@echo "make book    install into $(VENV) and build the book (_build/html)"
	@echo "make test    install into $(VENV) and run every check (lint, unit tests, doctests, strict book build)"
	@echo "make bench   time explain() per method and resolution (benchmarks/bench_explain.py)"
	@echo "make clean   remove build outputs (keeps $(VENV))"

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v[:2] == (3, 11) else "igospp needs Python 3.11, found %d.%d (set PYTHON=/path/to/python3.11)" % v[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements/constraints.txt -e ".[test,book]"
	touch $(STAMP)

install: $(STAMP)

unit: $(STAMP)
	$(BIN)/ruff check igospp_src tests benchmarks
	$(BIN)/python -m pytest

book: $(STAMP)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

test: unit book

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_explain.py

clean:
	rm -rf _build
