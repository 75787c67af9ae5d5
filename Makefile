# Two entry points: `make demo` (set up + run the offline demo) and `make test` (set up, type-check
# the package, run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; pass TORCH_SPEC="torch" to take the default (CUDA) build instead.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.gte-rag-installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test,demo,bench,pdf]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gte-rag demo

test: $(STAMP)
	$(BIN)/python -m mypy gte_rag
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_encode.py

clean:
	rm -rf $(VENV) build *.egg-info
