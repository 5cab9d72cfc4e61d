# mfgen: the single entry point. `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test demo bench bench-check lint fuzz clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# One pytest-xdist worker per core, at most 4 (each holds ~0.7 GB); they share one model cache.
# Whole modules per worker, in tests/conftest.py's order (slowest first), not xdist's.
# Without Hypothesis's pytest plugin: it imports Hypothesis (~1 s) at the end of every session
# even when no Hypothesis test ran; test_fuzz.py needs only Hypothesis itself, and a falsifying
# example is still printed with its test's failure.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: setup  ## run the test suite (TEST_WORKERS=0: in one process, no workers)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	    -p no:hypothesispytest

demo: setup  ## TVB-AdEx on TVB's 76-region connectome, 5 s: demo/results.h5 + demo/results.png
	$(VENV)/bin/mfgen run examples/tvb_adex.yaml --force --transient 300
	@echo "open demo/results.png: slow adaptation-driven waves crossing the 76 regions (~2 Hz);"
	@echo "plain h5py reads demo/results.h5; 'mfgen check --all' compares every bundled spec"

fuzz: setup  ## long fuzz of the expression parser and spec loader (MFGEN_FUZZ_SEED=n repeats one)
	MFGEN_FUZZ=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py

bench: setup  ## speed benchmarks (not tests): compiled kernels vs NumPy, the simulation engine
	$(PY) benchmarks/bench_dfun.py
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_sweep.py

bench-check: setup  ## the benchmarks' expectations (ratios); runs every check, fails on a miss
	@status=0; \
	$(PY) benchmarks/bench_dfun.py --quick --check --no-build --sizes 76,1000 \
	    --specs tvb_zerlaut_adaptation_first_order,tvb_zerlaut_adaptation_second_order \
	    --output build/bench-check-dfun.md || status=1; \
	$(PY) benchmarks/bench_engine.py --quick --check || status=1; \
	exit $$status

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
