"""The Python API around a compiled kernel: argument checking, parameters, backends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mfgen


@pytest.fixture(scope="module")
def oscillator():
    return mfgen.load("generic_2d_oscillator")


def test_model_exposes_spec_metadata(oscillator):
    assert oscillator.state_variables == ("V", "W")
    assert oscillator.coupling_variables == ("c_0",)
    assert list(oscillator.cvar) == [0]
    assert oscillator.parameters["d"] == 0.02
    assert oscillator.states["V"].range == (-2.0, 4.0)
    assert oscillator.parameter_info["gamma"].range == (-1.0, 1.0)
    assert "generic_2d_oscillator" in repr(oscillator)


@pytest.mark.parametrize("state_shape, coupling_shape, message", [
    ((3, 4), (1, 4), r"state must have shape \(2, n_nodes\).*got \(3, 4\)"),
    ((2,), (1, 2), r"state must have shape"),
    ((2, 4), (1, 5), r"coupling must have shape \(1, 4\).*got \(1, 5\)"),
    ((2, 4), (2, 4), r"coupling must have shape \(1, 4\)"),
])
def test_wrong_shapes_name_the_argument_and_expected_shape(oscillator, state_shape,
                                                           coupling_shape, message):
    with pytest.raises(ValueError, match=message):
        oscillator.dfun(np.zeros(state_shape), np.zeros(coupling_shape))


def test_wrong_dtype_is_a_type_error(oscillator):
    with pytest.raises(TypeError, match="state must be a real float64 array"):
        oscillator.dfun(np.zeros((2, 3), dtype=complex), np.zeros((1, 3)))
    with pytest.raises(TypeError, match="state must be a real float64 array"):
        oscillator.dfun(np.array([["a", "b"], ["c", "d"]]), np.zeros((1, 2)))


def test_non_contiguous_and_integer_inputs_are_converted(oscillator, rng):
    state = rng.normal(size=(2, 10))
    coupling = rng.normal(size=(1, 10))
    expected = oscillator.dfun(state, coupling)
    wide = np.zeros((2, 20))
    wide[:, ::2] = state
    np.testing.assert_array_equal(oscillator.dfun(wide[:, ::2], coupling), expected)
    np.testing.assert_array_equal(oscillator.dfun(np.asfortranarray(state), coupling), expected)
    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(oscillator.dfun(ints, np.zeros((1, 3))),
                                  oscillator.dfun(ints.astype(float), np.zeros((1, 3))))


def test_output_buffer_is_checked_and_filled(oscillator, rng):
    state, coupling = rng.normal(size=(2, 5)), rng.normal(size=(1, 5))
    out = np.empty((2, 5))
    assert oscillator.dfun(state, coupling, out=out) is out
    np.testing.assert_array_equal(out, oscillator.dfun(state, coupling))
    with pytest.raises(ValueError, match="out must be"):
        oscillator.dfun(state, coupling, out=np.empty((2, 6)))
    with pytest.raises(ValueError, match="out must be"):
        oscillator.dfun(state, coupling, out=np.empty((5, 2)).T)


def test_zero_nodes_returns_an_empty_result(oscillator):
    assert oscillator.dfun(np.zeros((2, 0)), np.zeros((1, 0))).shape == (2, 0)


def test_parameter_errors(oscillator):
    state, coupling = np.zeros((2, 3)), np.zeros((1, 3))
    with pytest.raises(TypeError, match="no parameter 'gama'.*did you mean 'gamma'"):
        oscillator.dfun(state, coupling, gama=1.0)
    with pytest.raises(ValueError, match=r"parameter 'a' must have shape \(\) or \(3,\)"):
        oscillator.dfun(state, coupling, a=np.ones(4))
    with pytest.raises(ValueError, match="parameter 'a' contains NaN"):
        oscillator.dfun(state, coupling, a=np.nan)
    with pytest.raises(TypeError, match="local_coupling must be a scalar"):
        oscillator.dfun(state, coupling, local_coupling="x")


def test_vector_parameter_shapes():
    model = mfgen.load("zerlaut_adaptation_first_order")
    state = np.full((3, 4), 0.01)
    coupling = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"parameter 'P_e' must have shape \(10,\) or \(10, 4\)"):
        model.dfun(state, coupling, P_e=np.ones(11))
    p_e = np.array(model.parameters["P_e"])
    np.testing.assert_array_equal(model.dfun(state, coupling, P_e=p_e),
                                  model.dfun(state, coupling))
    np.testing.assert_array_equal(model.dfun(state, coupling, P_e=np.tile(p_e[:, None], 4)),
                                  model.dfun(state, coupling))


def test_parameter_override_changes_result_without_recompiling(tmp_path, monkeypatch, rng):
    # A cache of its own: the session's is shared with other test processes (pytest-xdist).
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(tmp_path / "cache"))
    modules = tmp_path / "cache" / "modules"
    oscillator = mfgen.load("generic_2d_oscillator")
    state, coupling = rng.normal(size=(2, 8)), rng.normal(size=(1, 8))
    modules_before = sorted(os.listdir(modules))
    base = oscillator.dfun(state, coupling)
    changed = oscillator.dfun(state, coupling, d=0.5)
    np.testing.assert_allclose(changed, base * 0.5 / 0.02, rtol=1e-13)
    reloaded = mfgen.load("generic_2d_oscillator")
    assert reloaded.module_key == oscillator.module_key
    assert sorted(os.listdir(modules)) == modules_before


def test_numpy_backend_needs_no_compiler(tmp_path):
    """With no C compiler, building fails clearly and backend='numpy' still works."""
    script = textwrap.dedent("""
        import numpy as np, mfgen
        try:
            mfgen.load("generic_2d_oscillator")
        except mfgen.CompileError as exc:
            print("ERROR:", exc)
        model = mfgen.load("generic_2d_oscillator", backend="numpy")
        print("NUMPY:", model.dfun(np.ones((2, 3)), np.zeros((1, 3)))[0, 0])
    """)
    env = dict(os.environ, CC=str(tmp_path / "no-such-compiler"),
               MFGEN_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ERROR: no C compiler found" in result.stdout
    assert "backend='numpy'" in result.stdout
    # d*tau*(alpha*W - f*V^3 + e*V^2 + g*V + gamma*I) at V = W = 1 with defaults = 0.02 * 3
    assert "NUMPY: 0.06" in result.stdout
