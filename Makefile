# Every target creates (or reuses) a local venv with torch installed first (a CPU wheel).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-extended test-fast lint format type bench docs clean mutate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77"
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[zoo,envs,bench,postgres,dev,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sb3_symmetric.demo

# The whole suite but the extended tests (external suites, long learning comparisons): what CI runs
test: $(STAMP)
	$(BIN)/python -m pytest -m "not extended" --durations=15 --cov --cov-report=term

test-extended: $(STAMP)
	$(BIN)/python -m pytest -m extended --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

type: $(STAMP)
	$(BIN)/mypy

# Mutation testing (tests/MUTANTS.md; not in CI). Resumable: a rerun only tests mutants without a result yet.
# MUTANTS picks some by name pattern (and reruns them), e.g. make mutate MUTANTS='*train__mutmut_*'
MUTATE_JOBS ?= 2
MUTANTS ?=
mutate: $(STAMP)
	OMP_NUM_THREADS=1 nice -n 10 $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS)
	$(BIN)/mutmut results

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py

# the Sphinx site, warnings as errors, into docs/_build/html
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
