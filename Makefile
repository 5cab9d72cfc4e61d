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

demo: setup  ## check every bundled spec, then simulate TVB-AdEx on a 68-region connectome
	$(VENV)/bin/mfgen check --all
	$(VENV)/bin/mfgen simulate tvb_adex_first_order --connectivity synthetic --regions 68 \
	  --duration 5000 --integrator heun_stochastic --noise noise=1.0 \
	  --param weight_noise=1e-4 --param external_input_ex_ex=0.315e-3 \
	  --param external_input_in_ex=0.315e-3 --param E_L_e=-63 --coupling-param a=0.15 \
	  --initial E=0.005,I=0.01 --monitor tavg:1.0 --variables E,I,W_e --seed 1 \
	  --out demo/tvb_adex_first_order.npz --plot demo/tvb_adex_first_order.png
	@echo "open demo/tvb_adex_first_order.png: slow adaptation-driven oscillations (up/down states)"

fuzz: setup  ## long fuzz of the expression parser and spec loader (MFGEN_FUZZ_SEED=n repeats one)
	MFGEN_FUZZ=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py

bench: setup  ## speed benchmarks (not tests): compiled kernels vs NumPy
	$(PY) benchmarks/bench_dfun.py
	$(PY) benchmarks/bench_sweep.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
