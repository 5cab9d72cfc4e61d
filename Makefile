# mfgen: the single entry point. `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test demo bench lint fuzz clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: setup  ## run the test suite
	$(PY) -m pytest -q

demo: setup  ## build every bundled spec and check it against its NumPy reference
	$(VENV)/bin/mfgen check --all

bench: setup  ## speed benchmarks (not tests): compiled kernels vs NumPy
	$(PY) benchmarks/bench_dfun.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
