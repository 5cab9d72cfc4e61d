"""The second-order models (seeds 5, 6, 7 and TVB's): compiled kernel vs the spec's NumPy
reference, the models vs hand-written ports of the seed `dfun`s (tests/seed_ports.py, which use
the seeds' finite differences), and the derivative machinery itself on a function with a closed
form. The transfer functions' symbolic derivatives vs mpmath are in
test_second_order_mpmath.py (a module of its own so that `make test` runs it alongside)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import seed_ports

import mfgen
from mfgen.runtime.checking import check_model, random_inputs, relative_error

SECOND_ORDER_SEEDS = {
    "zerlaut_adaptation_second_order": 5,
    "tvb_adex_second_order": 6,
    "zerlaut_2018_second_order": 7,
}
SECOND_ORDER_SPECS = [*SECOND_ORDER_SEEDS, "tvb_zerlaut_adaptation_second_order"]
COVARIANCES = ("C_ee", "C_ei", "C_ii")


@pytest.mark.parametrize("spec", SECOND_ORDER_SPECS)
def test_compiled_matches_reference_at_random_states_and_parameters(spec):
    # 1000 points with the defaults, 1000 with per-node parameters drawn from their ranges,
    # states from their check ranges. Error per state row: |c - r| / max(|r|, 1e-2 max|r_row|):
    # rates are written (F - E)/T, which cancels near a fixed point, where the rounding error
    # is that of the terms (the row's scale), not of their tiny difference.
    report = check_model(mfgen.load(spec), points=2000, seed=5)
    assert report.nonfinite_mismatch == 0
    assert report.worst <= 1e-12, report.max_error


@pytest.mark.parametrize("spec", SECOND_ORDER_SPECS)
def test_compiled_derivative_terms_match_reference(spec, rng):
    # In the check ranges the derivative terms are small parts of each row (C/1e6 * d2F in
    # dE/dt). Covariances of +-1e6 make d2F dominate dE/dt and dI/dt and dF the covariance
    # rows, so this compares the kernel's derivatives themselves. Sums of second-derivative
    # terms lose a few more digits than the rates (measured <= 1.3e-11 over 40 000 points);
    # rates below 1e-3 kHz are left out: there d2F/dI2 is ill-conditioned in both (~1e-9).
    model = mfgen.load(spec)
    for parameters in ({}, None):
        state, coupling, lc, random_parameters = random_inputs(model, 1000, rng)
        for name in ("E", "I"):
            state[model.state_variables.index(name)] = rng.uniform(
                1e-3, model.states[name].check_range[1], 1000)
        for name in COVARIANCES:
            state[model.state_variables.index(name)] = rng.uniform(-1e6, 1e6, 1000)
        parameters = random_parameters if parameters is None else parameters
        computed = model.dfun(state, coupling, lc, **parameters)
        expected = model.reference.dfun(state, coupling, lc, **parameters)
        assert np.array_equal(np.isfinite(computed), np.isfinite(expected))
        assert relative_error(computed, expected, ignore_nonfinite=True).max() <= 1e-10


@pytest.mark.parametrize("spec, seed", SECOND_ORDER_SEEDS.items())
def test_defaults_states_and_coupling_are_the_seed_class_ones(spec, seed):
    model = mfgen.load(spec)
    assert list(model.state_variables) == getattr(seed_ports, f"SEED{seed}_STATES")
    defaults = getattr(seed_ports, f"SEED{seed}_DEFAULTS")
    assert set(model.parameters) == set(defaults)
    for name, value in defaults.items():
        np.testing.assert_array_equal(model.parameters[name], value, err_msg=name)
    # TVB's cvar: every state in the 2018 classes, E only in TVB-AdEx.
    expected_cvar = [0] if seed == 6 else list(range(model.n_states))
    assert list(model.cvar) == expected_cvar


def seed_state_sample(model, seed: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """States in the seed class's ranges; check ranges where the class's range is [0, 0]."""
    ranges = getattr(seed_ports, f"SEED{seed}_STATE_RANGES")
    state = np.empty((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = ranges[name]
        if low == high:
            low, high = model.states[name].check_range
        state[k] = rng.uniform(low, high, n)
    return state


@pytest.mark.parametrize("spec, seed", SECOND_ORDER_SEEDS.items())
def test_exact_derivatives_agree_with_the_seeds_finite_differences(spec, seed, rng):
    # The seeds differentiate with central differences (h = 1e-7 kHz); docs/provenance.md
    # gives their error: up to ~1e-5 relative (first) and ~6e-5 (second). Those
    # terms enter dE/dt scaled by C/1e6 and the covariance rows by C/1e3; the W rows have none.
    model = mfgen.load(spec)
    port = getattr(seed_ports, f"seed{seed}_dfun")
    n = 1000
    state = seed_state_sample(model, seed, n, rng)
    coupling = rng.uniform(0.0, 0.01, (len(model.coupling_variables), n))
    drives = {name: 0.315e-3 for name in model.parameters if name.startswith("external_input")}
    noise = {"weight_noise": 1e-4} if seed == 6 else {}
    for lc, parameters in ((0.0, noise), (0.05, {**noise, **drives})):
        computed = model.dfun(state, coupling, lc, **parameters)
        expected = port(state, coupling, lc, **parameters)
        assert np.isfinite(expected).all()
        error = relative_error(computed, expected, ignore_nonfinite=True).max(axis=1)
        for name, worst in zip(model.state_variables, error):
            tolerance = 1e-7 if name in ("E", "I") else 1e-4 if name in COVARIANCES else 1e-12
            assert worst <= tolerance, (name, worst)


def test_seed6_kernel_evaluates_erfc_twice_per_node():
    # Every derivative of F_e and F_i reuses the value's erfc (and its exp); TVB's finite
    # differences evaluate the transfer function 34 times per node.
    model = mfgen.load("tvb_adex_second_order")
    assert model.metadata["stats"]["calls_per_node"]["erfc"] <= 2
    kernel = (mfgen.build("tvb_adex_second_order").module_dir / "kernel.c").read_text()
    uniform = kernel[kernel.index("void dfun_uniform("):kernel.index("void dfun_per_node(")]
    node_loop = uniform[uniform.index("for (int64_t _i"):]
    assert 1 <= len(re.findall(r"\berfc\(", node_loop)) <= 2


# -- the derivative machinery on a function with a closed form -------------------------------
DERIVATIVE_SPEC = """
name: derivative_probe
parameters:
  k: {default: 0.7}
functions:
  F:
    args: [x, y, k]
    derived:
      e: exp(k * x)
    return: e * sin(y) + x**3 * y**2
  F_fd:
    args: [x, y, k]
    derivatives: {method: finite_difference, step: 1.0e-4}
    return: F(x, y, k)
state_variables:
  x: {range: [-1.0, 1.0]}
  y: {range: [-1.0, 1.0]}
  fx: {range: [0.0, 0.0]}
  fy: {range: [0.0, 0.0]}
  fxx: {range: [0.0, 0.0]}
  fxy: {range: [0.0, 0.0]}
  fyx: {range: [0.0, 0.0]}
  fyy: {range: [0.0, 0.0]}
  fx_diagonal: {range: [0.0, 0.0]}
  fd_fx: {range: [0.0, 0.0]}
  fd_fy: {range: [0.0, 0.0]}
  fd_fxx: {range: [0.0, 0.0]}
  fd_fxy: {range: [0.0, 0.0]}
  fd_fyy: {range: [0.0, 0.0]}
derivatives:
  x: 0
  y: 0
  fx: diff(F, x)(x, y, k)
  fy: diff(F, y)(x, y, k)
  fxx: diff(F, x, x)(x, y, k)
  fxy: diff(F, x, y)(x, y, k)
  fyx: diff(F, y, x)(x, y, k)
  fyy: diff(F, y, y)(x, y, k)
  fx_diagonal: diff(F, x)(x, x, k)   # in the first argument, the second held at the same x
  fd_fx: diff(F_fd, x)(x, y, k)
  fd_fy: diff(F_fd, y)(x, y, k)
  fd_fxx: diff(F_fd, x, x)(x, y, k)
  fd_fxy: diff(F_fd, x, y)(x, y, k)
  fd_fyy: diff(F_fd, y, y)(x, y, k)
"""


def test_partial_derivatives_exact_and_by_central_differences(write_spec, rng):
    model = mfgen.load(write_spec(DERIVATIVE_SPEC, "derivative_probe.yaml"))
    x, y = rng.uniform(-1, 1, (2, 50))
    k = 0.7
    e = np.exp(k * x)
    expected = {
        "fx": k * e * np.sin(y) + 3 * x**2 * y**2,
        "fy": e * np.cos(y) + 2 * x**3 * y,
        "fxx": k * k * e * np.sin(y) + 6 * x * y**2,
        "fxy": k * e * np.cos(y) + 6 * x**2 * y,
        "fyy": -e * np.sin(y) + 2 * x**3,
        "fx_diagonal": k * e * np.sin(x) + 3 * x**4,
    }
    expected["fyx"] = expected["fxy"]
    state = np.zeros((model.n_states, x.size))
    state[0], state[1] = x, y
    for values in (model.dfun(state, np.zeros((0, x.size))),
                   model.reference.dfun(state, np.zeros((0, x.size)))):
        row = dict(zip(model.state_variables, values))
        for name, exact in expected.items():
            np.testing.assert_allclose(row[name], exact, rtol=1e-13, atol=1e-13, err_msg=name)
            if f"fd_{name}" in row:  # truncation h^2 |F'''|/6 ~ 1e-8, round-off eps/h^2 ~ 2e-8
                np.testing.assert_allclose(row[f"fd_{name}"], exact, rtol=0, atol=1e-7,
                                           err_msg=name)
