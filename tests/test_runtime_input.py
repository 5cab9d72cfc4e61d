"""Hostile and broken arrays at run time: a Python exception naming the argument, or a correct
result, never a crash or a read or write outside the arrays (tests/test_sanitizers.py runs
the same kernels under AddressSanitizer)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import mfgen


@pytest.fixture(scope="module")
def oscillator():
    return mfgen.load("generic_2d_oscillator")


@pytest.fixture(scope="module")
def vector_model():
    return mfgen.load("zerlaut_adaptation_first_order")


STATE = np.array([[0.5, -1.0, 2.0, 0.0], [0.25, 1.0, -3.0, 0.0]])
COUPLING = np.array([[0.0, 0.5, -0.5, 1.0]])


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize(("call", "error", "message"), [
    (dict(local_coupling=np.nan), ValueError, "local_coupling must be finite, got nan"),
    (dict(local_coupling=-np.inf), ValueError, "local_coupling must be finite, got -inf"),
    (dict(local_coupling=np.ones(4)), TypeError, "local_coupling must be a scalar number"),
    (dict(a=np.nan), ValueError, "parameter 'a' contains NaN or infinite values"),
    (dict(a=[0.0, 1.0, np.inf, 0.0]), ValueError, "parameter 'a' contains NaN or infinite"),
    (dict(a=np.ones(5)), ValueError, r"parameter 'a' must have shape \(\) or \(4,\)"),
    (dict(a=np.ones((4, 1))), ValueError, r"parameter 'a' must have shape \(\) or \(4,\)"),
    (dict(a="fast"), TypeError, "parameter 'a' must be numeric, got 'fast'"),
    (dict(a=1 + 2j), TypeError, "parameter 'a' must be numeric"),
    (dict(a=object()), TypeError, "parameter 'a' must be numeric"),
    (dict(a=None), ValueError, "parameter 'a' contains NaN"),
    (dict(state=None), TypeError, "state must be a real float64 array"),
    (dict(state=STATE.astype(bool)), TypeError, "state must be a real float64 array"),
    (dict(state=STATE.astype(complex)), TypeError, "state must be a real float64 array"),
    (dict(state=STATE[None]), ValueError, r"state must have shape \(2, n_nodes\)"),
    (dict(state=STATE.T), ValueError, r"state must have shape \(2, n_nodes\)"),
    (dict(state=[[1.0, 2.0], [3.0]]), TypeError, "state must be a float64 array"),
    (dict(coupling=COUPLING[:, :3]), ValueError, r"coupling must have shape \(1, 4\)"),
    (dict(coupling=np.zeros((0, 4))), ValueError, r"coupling must have shape \(1, 4\)"),
    (dict(coupling="x"), TypeError, "coupling must be a real float64 array"),
    (dict(nonexistent=1.0), TypeError, "has no parameter 'nonexistent'"),
])
def test_bad_arguments_raise_naming_the_argument(oscillator, backend, call, error, message):
    model = oscillator if backend == "c" else oscillator.reference
    arguments = {"state": STATE, "coupling": COUPLING, **call}
    with pytest.raises(error, match=message):
        model.dfun(arguments.pop("state"), arguments.pop("coupling"), **arguments)


def test_out_must_be_a_separate_writable_aligned_buffer(oscillator):
    state = STATE.copy()
    for out, message in [
        (state, "out must not share memory with state or coupling"),
        (np.empty((2, 4))[:, :], None),
        (np.empty((2, 8))[:, ::2], "out must be a writable C-contiguous"),
        (np.empty((4, 2)).T, "out must be a writable C-contiguous"),
        (np.empty((2, 4), dtype=np.float32), "out must be a writable C-contiguous"),
        (np.broadcast_to(np.empty(4), (2, 4)), "out must be a writable C-contiguous"),
        (_unaligned((2, 4)), "out must be a writable C-contiguous"),
        (np.empty((2, 5)), "out must be a writable C-contiguous"),
    ]:
        if message is None:
            oscillator.dfun(state, COUPLING, out=out)
            continue
        with pytest.raises(ValueError, match=message):
            oscillator.dfun(state, COUPLING, out=out)
    np.testing.assert_array_equal(state, STATE)  # nothing wrote into the input
    both = np.zeros((3, 4))
    with pytest.raises(ValueError, match="must not share memory"):
        oscillator.dfun(both[:2], both[2:], out=both[:2])


def _unaligned(shape) -> np.ndarray:
    raw = np.zeros(int(np.prod(shape)) * 8 + 1, dtype=np.uint8)
    array = np.frombuffer(raw.data, dtype=np.float64, count=int(np.prod(shape)),
                          offset=1).reshape(shape)
    assert not array.flags.aligned and array.flags.c_contiguous
    return array


@pytest.mark.parametrize("variant", ["unaligned", "big-endian", "fortran", "strided",
                                     "broadcast", "float32", "int", "read-only", "list"])
def test_unusual_but_valid_layouts_give_the_same_result(oscillator, variant):
    expected = oscillator.dfun(STATE, COUPLING)
    if variant == "unaligned":
        state = _unaligned(STATE.shape)
        state[...] = STATE
    elif variant == "big-endian":
        state = STATE.astype(">f8")
    elif variant == "fortran":
        state = np.asfortranarray(STATE)
    elif variant == "strided":
        state = np.repeat(STATE, 2, axis=1)[:, ::2]
    elif variant == "broadcast":
        state = np.broadcast_to(STATE[:, :1], STATE.shape)
        expected = oscillator.dfun(np.ascontiguousarray(state), COUPLING)
    elif variant == "float32":
        state = STATE.astype(np.float32)
        expected = oscillator.dfun(state.astype(np.float64), COUPLING)
    elif variant == "int":
        state = np.round(STATE).astype(np.int64)
        expected = oscillator.dfun(state.astype(np.float64), COUPLING)
    elif variant == "read-only":
        state = STATE.copy()
        state.setflags(write=False)
    else:
        state = STATE.tolist()
    np.testing.assert_array_equal(oscillator.dfun(state, COUPLING), expected)
    np.testing.assert_array_equal(oscillator.reference.dfun(state, COUPLING),
                                  oscillator.reference.dfun(np.array(state, dtype=float),
                                                            COUPLING))


def test_non_finite_states_propagate_without_crashing(oscillator):
    state = np.array([[np.nan, np.inf, -np.inf, 1e308], [0.0, 0.0, 1e308, -1e308]])
    with np.errstate(all="ignore"):
        computed = oscillator.dfun(state, COUPLING)
        reference = oscillator.reference.dfun(state, COUPLING)
    np.testing.assert_array_equal(np.isnan(computed), np.isnan(reference))
    finite = np.isfinite(reference)
    np.testing.assert_allclose(computed[finite], reference[finite], rtol=1e-12)


def test_extreme_parameter_values_agree_with_the_reference(oscillator):
    """1e300 squared, 0 in a divisor: inf/NaN in both backends, never a Python exception."""
    for parameters in ({"tau": 0.0}, {"d": 1e300, "tau": 1e300}, {"a": -1e308, "e": 1e308}):
        with np.errstate(all="ignore"):
            computed = oscillator.dfun(STATE, COUPLING, **parameters)
            reference = oscillator.reference.dfun(STATE, COUPLING, **parameters)
        np.testing.assert_array_equal(np.isnan(computed), np.isnan(reference))
        same = np.isfinite(reference)
        np.testing.assert_allclose(computed[same], reference[same], rtol=1e-12)


def test_vector_parameter_shapes_are_checked(vector_model):
    n = 3
    state = np.full((vector_model.n_states, n), 0.01)
    coupling = np.zeros((len(vector_model.coupling_variables), n))
    size = vector_model.parameter_info["P_e"].size
    for bad in (np.ones(size - 1), np.ones((size, n + 1)), np.ones((n, size)),
                np.ones((size, n, 1)), np.full(size, np.nan)):
        with pytest.raises(ValueError, match="parameter 'P_e'"):
            vector_model.dfun(state, coupling, P_e=bad)


@pytest.mark.parametrize("n_nodes", [0, 1, 2, 3, 5, 7, 8, 9, 17, 1000])
def test_any_number_of_nodes(oscillator, n_nodes, rng):
    state = rng.uniform(-2, 2, (2, n_nodes))
    coupling = rng.uniform(-1, 1, (1, n_nodes))
    a = rng.uniform(-2, 0, n_nodes)
    for kwargs in ({}, {"a": a}):
        buffer = np.full(2 * n_nodes + 16, 123.0)  # canaries after the output
        out = buffer[: 2 * n_nodes].reshape(2, n_nodes)
        result = oscillator.dfun(state, coupling, out=out, **kwargs)
        assert result is out
        np.testing.assert_allclose(result, oscillator.reference.dfun(state, coupling, **kwargs),
                                   rtol=1e-12, atol=1e-300)
        assert (buffer[2 * n_nodes:] == 123.0).all(), "the kernel wrote past the output"


@pytest.mark.parametrize("n_nodes", [1, 7, 76, 5000])  # 5000 x 5 values: run without the GIL
def test_the_c_checked_call_equals_a_direct_kernel_call_bit_for_bit(vector_model, n_nodes,
                                                                    rng):
    """model.dfun is checked and made in C (templates/dfun_call.c); the same kernel called
    directly (ctypes, at its address in the model's library) must give the same bits, with
    shared and with per-node parameters."""
    state = rng.uniform(0.0, 0.02, (vector_model.n_states, n_nodes))
    coupling = rng.uniform(0.0, 0.01, (len(vector_model.coupling_variables), n_nodes))
    kernel_type = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p)
    name = next(iter(vector_model.parameters))
    for kernel, overrides in (("dfun_uniform", {}),
                              ("dfun_per_node", {name: rng.uniform(0.5, 1.5, n_nodes)})):
        params, per_node = vector_model.pack_parameters(overrides, n_nodes)
        assert per_node == (kernel == "dfun_per_node")
        direct = np.empty_like(state)
        kernel_type(vector_model.function_address(kernel))(
            n_nodes, state.ctypes.data, coupling.ctypes.data, 0.25, params.ctypes.data,
            direct.ctypes.data)
        np.testing.assert_array_equal(vector_model.dfun(state, coupling, 0.25, **overrides),
                                      direct)
        out = np.full_like(state, np.nan)
        assert vector_model.dfun(state, coupling, 0.25, out=out, **overrides) is out
        np.testing.assert_array_equal(out, direct)
        bound = np.full_like(state, np.nan)
        vector_model.bind_dfun(state, coupling, bound, 0.25, **overrides)()
        np.testing.assert_array_equal(bound, direct)
    with pytest.raises(ValueError, match="bind_dfun needs the arrays the kernel takes"):
        vector_model.bind_dfun(state.astype(np.float32), coupling, np.empty_like(state))


def test_partial_overlap_with_an_input_is_refused(oscillator):
    """`out` sharing any byte with what the kernel reads is refused, however it is sliced."""
    block = np.zeros((5, 4))
    block[:2] = STATE
    block[2] = COUPLING
    for out in (block[1:3], block[2:4]):  # overlaps the state's last row / the coupling row
        with pytest.raises(ValueError, match="must not share memory"):
            oscillator.dfun(block[:2], block[2:3], out=out)
    np.testing.assert_array_equal(oscillator.dfun(block[:2], block[2:3], out=block[3:5]),
                                  oscillator.dfun(STATE, COUPLING))


def test_the_dfun_shim_takes_only_its_own_capsules(oscillator):
    oscillator.dfun(STATE, COUPLING)  # loads the shim
    call = oscillator._call
    with pytest.raises((TypeError, ValueError)):
        call(object(), STATE, COUPLING, 0.0, None)
    with pytest.raises(TypeError):
        call(oscillator._bound, STATE, COUPLING)


def test_a_numpy_scalar_local_coupling_takes_the_c_call(oscillator):
    """np.float64 is a float: the C-checked call takes it (and gives the Python call's bits)."""
    expected = oscillator.dfun(STATE, COUPLING, 0.3)
    np.testing.assert_array_equal(oscillator.dfun(STATE, COUPLING, np.float64(0.3)), expected)
    assert oscillator._call(oscillator._bound, STATE, COUPLING, np.float64(0.3), None) is not None


def test_float_overrides_take_the_c_call_with_the_general_paths_bits(vector_model, rng):
    """Shared float overrides are packed without NumPy and passed to the C call; NumPy scalars
    (the general path's conversion), per-node arrays and the reference must agree."""
    n = 9
    state = rng.uniform(0.0, 0.02, (vector_model.n_states, n))
    coupling = rng.uniform(0.0, 0.01, (len(vector_model.coupling_variables), n))
    scalars = [name for name, info in vector_model.parameter_info.items() if not info.shape][:4]
    floats = {name: float(vector_model.parameters[name]) * 1.1 for name in scalars}
    fast = vector_model.dfun(state, coupling, **floats)
    converted = vector_model.dfun(state, coupling, **{k: np.float64(v) for k, v in floats.items()})
    per_node = vector_model.dfun(state, coupling, **{k: np.full(n, v) for k, v in floats.items()})
    np.testing.assert_array_equal(fast, converted)
    np.testing.assert_allclose(fast, per_node, rtol=1e-14)
    np.testing.assert_allclose(fast, vector_model.reference.dfun(state, coupling, **floats),
                               rtol=1e-12, atol=1e-12 * np.abs(fast).max())
    assert not np.array_equal(fast, vector_model.dfun(state, coupling))  # the overrides count
