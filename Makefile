# Every target creates (or reuses) a local venv with torch installed first (a CPU wheel).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-extended test-fast lint format type bench results docs clean mutate

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

# Regenerate every committed learning result at the current code, one grid after another, cheapest first. Hours of
# wall time on 2 cores: lunar-10seeds' 60 first runs took 71 min on 2026-11-26 (2 workers), 6x the time recorded for
# the same runs earlier; see the notes of benchmarks/README.md. Resumable: each study is a journal in
# benchmarks/studies/; rerun to go on, commit them to move machines. Each report replaces the committed one only once
# its grid is finished; classic's report is benchmarks/results/ itself.
RESULT_GRIDS ?= lunar-10seeds pendulum-10seeds classic ppo-100k a2c-20seeds lunar-500k
WORKERS ?= 2
results: $(STAMP)
	$(BIN)/python -m benchmarks.grid --preset minatar --algos ppo sppo ppo_equiv a2c sa2c --workers $(WORKERS) \
		--storage benchmarks/studies/minatar.log --report benchmarks/results/minatar --overwrite
	$(BIN)/python -m benchmarks.grid --preset atari-smoke --study-name smoke --storage benchmarks/studies/smoke.log --workers 1
	$(BIN)/python -m benchmarks.grid --preset mujoco-smoke --study-name smoke --storage benchmarks/studies/smoke.log \
		--workers 1 --report benchmarks/results/smoke --overwrite
	set -e; for grid in $(RESULT_GRIDS); do \
		report=benchmarks/results/$$grid; if [ $$grid = classic ]; then report=benchmarks/results; fi; \
		$(BIN)/python -m benchmarks.grid --preset $$grid --storage benchmarks/studies/$$grid.log --workers $(WORKERS) \
			--report $$report --overwrite; \
	done
	$(BIN)/python -m benchmarks.robustness --k 16 --steps CartPole-v1=30000 LunarLander-v3=60000 \
		--threshold LunarLander-v3=0 --workers $(WORKERS) --storage benchmarks/studies/robustness.log

# the Sphinx site, warnings as errors, into docs/_build/html
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
