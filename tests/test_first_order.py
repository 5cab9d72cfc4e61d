"""The four first-order seed models: compiled kernel vs the spec's NumPy reference and vs
hand-written ports of the seed `dfun`s (tests/seed_ports.py, written from the seed text)."""

from __future__ import annotations

import numpy as np
import pytest
import seed_ports
from helpers import FIRST_ORDER_SPECS, relative_error

import mfgen

SEED_OF_SPEC = {
    "zerlaut_adaptation_first_order": 1,
    "tvb_adex_first_order": 2,
    "generic_2d_oscillator": 3,
    "zerlaut_2018_first_order": 4,
}


def max_relative_error(computed: np.ndarray, expected: np.ndarray) -> float:
    """Max over points of |c - e| / max(|e|, 1% of the row's largest |e|); NaNs must agree.

    The floor: derivatives are written (F - E)/T, which cancels near fixed points; its
    rounding error scales with the terms (the row's scale), not with the tiny difference.
    """
    assert np.array_equal(np.isfinite(computed), np.isfinite(expected)), "NaN pattern differs"
    return float(relative_error(computed, expected, 1e-2, axis=1,
                                ignore_nonfinite=True).max())


def random_point_set(model, n, rng, widen=0.0):
    state = np.empty((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = model.states[name].check_range
        pad = widen * (high - low)
        state[k] = rng.uniform(low - pad, high + pad, n)
    coupling = rng.uniform(0, 0.01, (len(model.coupling_variables), n))
    return state, coupling


def random_parameters(model, n, rng):
    return {name: rng.uniform(*info.range, n) for name, info in model.parameter_info.items()
            if info.size is None and info.range is not None}


@pytest.mark.parametrize("spec", FIRST_ORDER_SPECS)
def test_compiled_matches_reference_at_random_states_and_parameters(spec, rng):
    model = mfgen.load(spec)
    # States across the check ranges and 10 % beyond (where rates may go negative -> NaN).
    state, coupling = random_point_set(model, 1500, rng, widen=0.1)
    for parameters in ({}, random_parameters(model, 1500, rng)):
        computed = model.dfun(state, coupling, 0.05, **parameters)
        expected = model.reference.dfun(state, coupling, 0.05, **parameters)
        assert np.isfinite(expected).mean() > 0.5, "too few finite points to be a real test"
        assert max_relative_error(computed, expected) <= 1e-12


@pytest.mark.parametrize("spec", FIRST_ORDER_SPECS)
def test_compiled_matches_hand_written_seed_port(spec, rng):
    seed = SEED_OF_SPEC[spec]
    port = getattr(seed_ports, f"seed{seed}_dfun")
    model = mfgen.load(spec)
    assert list(model.state_variables) == getattr(seed_ports, f"SEED{seed}_STATES")
    state, coupling = random_point_set(model, 1000, rng)
    full_coupling = np.zeros((model.n_states, state.shape[1]))
    full_coupling[model.cvar] = coupling  # the ports read coupling[0] only
    for lc in (0.0, 0.07):
        computed = model.dfun(state, coupling, lc)
        with np.errstate(invalid="ignore"):
            expected = port(state, full_coupling, lc)
        assert max_relative_error(computed, expected) <= 1e-10
    # Random scalar parameters, passed to both by the seed's own names.
    parameters = {name: float(rng.uniform(*info.range))
                  for name, info in model.parameter_info.items()
                  if info.size is None and info.range is not None}
    computed = model.dfun(state, coupling, 0.02, **parameters)
    with np.errstate(invalid="ignore"):  # some random parameter sets give NaN in both
        expected = port(state, full_coupling, 0.02, **parameters)
    assert max_relative_error(computed, expected) <= 1e-10


@pytest.mark.parametrize("spec", FIRST_ORDER_SPECS)
def test_defaults_are_the_seed_class_defaults(spec):
    seed = SEED_OF_SPEC[spec]
    defaults = getattr(seed_ports, f"SEED{seed}_DEFAULTS")
    model = mfgen.load(spec)
    assert set(model.parameters) == set(defaults)
    for name, value in defaults.items():
        np.testing.assert_array_equal(model.parameters[name], value, err_msg=name)


@pytest.mark.parametrize("spec", ["zerlaut_adaptation_first_order", "tvb_adex_first_order"])
def test_per_node_parameters_equal_a_loop_of_scalar_calls(spec, rng):
    model = mfgen.load(spec)
    n = 12
    state, coupling = random_point_set(model, n, rng)
    tau = rng.uniform(5.0, 20.0, n)
    p_e = np.array(model.parameters["P_e"])[:, None] * rng.uniform(0.95, 1.05, (1, n))
    together = model.dfun(state, coupling, 0.01, T=tau, P_e=p_e)
    one_by_one = np.column_stack([
        model.dfun(state[:, [i]], coupling[:, [i]], 0.01, T=tau[i], P_e=p_e[:, i])[:, 0]
        for i in range(n)])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-14, atol=0)
    reference = model.reference.dfun(state, coupling, 0.01, T=tau, P_e=p_e)
    assert max_relative_error(together, reference) <= 1e-12


def test_oscillator_v_m_override_is_per_node(rng):
    model = mfgen.load("generic_2d_oscillator")
    state, coupling = random_point_set(model, 6, rng)
    v_m = np.array([0.0, 1.5, 0.0, -0.5, 0.0, 2.0])
    driven = model.dfun(state, coupling, 0.0, V_m=v_m)
    overridden = state.copy()
    overridden[0, v_m != 0] = v_m[v_m != 0]
    np.testing.assert_allclose(driven, model.dfun(overridden, coupling, 0.0), rtol=1e-15)
    assert not np.allclose(driven, model.dfun(state, coupling, 0.0))
