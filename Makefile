# hpsearch: `make quickstart` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is installed before the package so pip never resolves a multi-GB CUDA build on a
# machine without a GPU. Override on other machines, e.g.
#   make TORCH_SPEC=torch TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# An existing torch in the venv (a CUDA build on a GPU node, say) is always kept.
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=

.PHONY: venv quickstart test test-fast lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

quickstart: venv
	$(VENV)/bin/hpsearch optimize studies/quickstart.yaml

# The suite runs on TEST_JOBS pytest-xdist processes (most slow tests wait on subprocesses,
# heartbeats and servers rather than compute). TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 2

test: venv
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal --durations=25

# The inner loop: everything but the tests marked slow (make test and CI run them all).
test-fast: venv
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal -m "not slow"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy hpsearch

# The benchmarks of docs/benchmarks.md, each ending with "RESULT <name> <value> goal <op> <target>".
# storage_overhead runs on SQLite and on a private PostgreSQL server started for it.
bench: venv
	cd scripts/bench && ../../$(PY) trial_overhead.py
	cd scripts/bench && ../../$(PY) search_efficiency.py
	cd scripts/bench && ../../$(PY) with_postgres.py -- ../../$(PY) storage_overhead.py
	cd scripts/bench && ../../$(PY) workers.py throughput
	cd scripts/bench && ../../$(PY) scaling.py
	cd scripts/bench && ../../$(PY) cli_latency.py
	cd scripts/bench && ../../$(PY) history_quality.py
	cd scripts/bench && ../../$(PY) population.py
	cd scripts/bench && ../../$(PY) population_cnn.py
	cd scripts/bench && ../../$(PY) answer_time.py
	cd scripts/bench && ../../$(PY) calibration.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
