"""The TVB 2.10 model specs against the real tvb-library 2.10.0 classes (a test dependency):
same parameters, defaults, ranges and states, and the same dfun at random states and
per-node parameters."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_traits_are_tvbs, narray_traits, states_in_ranges
from tvb.simulator.models import oscillator, zerlaut

import mfgen
from mfgen.runtime.checking import relative_error

TVB_CLASSES = {
    "tvb_zerlaut_adaptation_first_order": zerlaut.ZerlautAdaptationFirstOrder,
    "tvb_zerlaut_adaptation_second_order": zerlaut.ZerlautAdaptationSecondOrder,
    "tvb_generic_2d_oscillator": oscillator.Generic2dOscillator,
}


@pytest.mark.parametrize("spec", TVB_CLASSES)
def test_parameters_states_and_ranges_are_tvbs(spec):
    assert_traits_are_tvbs(mfgen.load(spec), TVB_CLASSES[spec])


def random_tvb_inputs(model, cls, n: int, rng: np.random.Generator):
    """States uniform in TVB's state ranges (check ranges where those are [0, 0]) and per-node
    parameters uniform in their domains (integers for TVB's int64 traits)."""
    state = states_in_ranges(model, n, rng)
    coupling = rng.uniform(0.0, 0.01, (1, n))
    parameters = {}
    for name, trait in narray_traits(cls).items():
        if trait.domain is None:
            continue
        if trait.dtype == np.int64:
            parameters[name] = rng.integers(trait.domain.lo, trait.domain.hi + 1, n)
        else:
            parameters[name] = rng.uniform(trait.domain.lo, trait.domain.hi, n)
    return state, coupling, parameters


def tvb_dfun(cls, state, coupling, local_coupling, parameters):
    """TVB's dfun on (n_state, n_nodes, 1) arrays. Per-node parameters: shape (n, 1) for the
    NumPy Zerlaut models, (n,) for the oscillator's numba gufunc (TVB's spatial_param_reshape)."""
    shape = (-1,) if cls is oscillator.Generic2dOscillator else (-1, 1)
    tvb = cls(**{name: np.reshape(value, shape) for name, value in parameters.items()})
    tvb.configure()
    return tvb.dfun(state[..., None], coupling[..., None], local_coupling)[..., 0]


@pytest.mark.parametrize("spec", TVB_CLASSES)
def test_dfun_matches_tvb_at_random_states_and_parameters(spec, rng):
    model, cls = mfgen.load(spec), TVB_CLASSES[spec]
    n = 1000
    state, coupling, random_parameters = random_tvb_inputs(model, cls, n, rng)
    # TVB's weight_noise default (10.5 kHz per OU unit) swamps the rates; runs use ~1e-4.
    noise = {"weight_noise": np.full(n, 1e-4)} if "weight_noise" in model.parameters else {}
    for lc, parameters in ((0.0, noise), (0.05, random_parameters)):
        computed = model.dfun(state, coupling, lc, **parameters)
        expected = tvb_dfun(cls, state, coupling, lc, parameters)
        assert np.array_equal(np.isfinite(computed), np.isfinite(expected))
        error = relative_error(computed, expected, ignore_nonfinite=True).max(axis=1)
        for name, worst in zip(model.state_variables, error):
            # Second order: TVB's finite differences (h = 1e-7 kHz) vs exact derivatives, see
            # test_second_order.py; the rest is the same arithmetic, to rounding. Floor and
            # measure as in mfgen.runtime.checking.
            tolerance = (1e-7 if name in ("E", "I") else 1e-4) \
                if spec.endswith("second_order") and name in ("E", "I", "C_ee", "C_ei", "C_ii") \
                else 1e-12
            assert worst <= tolerance, (name, worst)
