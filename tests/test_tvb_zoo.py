"""TVB's region models as bundled specs (issue 9), and the spec-language features they need:
any identifier TVB uses as a name (C names are mangled), booleans, open `.inf` bounds and
constant-expression ranges."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_traits_are_tvbs, narray_traits, states_in_ranges

import mfgen
from mfgen.errors import SpecError
from mfgen.runtime.checking import relative_error

# Names that are C keywords, libc functions (y0, y1, j0 are Bessel functions in math.h), macros
# of the headers the kernel or cffi's wrapper include (NAN, INFINITY, M_PI, Py_None, linux) or
# the kernel's own symbols (dfun_uniform): all are fine spec names now, as are the words of
# the comments of the former macro list (the, one, gcc, name).
C_HOSTILE_NAMES = """\
name: int
parameters:
  A: 3.25
  C: 0.5
  NAN: 2.0
  INFINITY: 1.5
  main: 1.0
  errno: 0.25
  M_PI: 0.125
  Py_None: 1.0
  restrict: 2.0
  double: 0.5
  linux: 1.0
  dfun_uniform: 0.5
  the: 0.0
  one: 0.0
  gcc: 0.0
  name: 0.0
state_variables:
  y0: {range: [-1, 1]}
  y1: {range: [-1, 1]}
  j0: {range: [-1, 1]}
coupling:
  printf: y0
functions:
  pow:
    args: [fmax, y1]
    return: fmax * y1 + NAN
derived:
  jn: A * y0 + INFINITY
derivatives:
  y0: jn - C * y1 + printf + main * errno
  y1: pow(y0, y1) * M_PI + Py_None + restrict * double
  j0: -linux * j0 + dfun_uniform + the + one + gcc + name
"""


def test_c_keywords_libc_and_macro_names_compile_under_the_users_names(tmp_path):
    path = tmp_path / "names.yaml"
    path.write_text(C_HOSTILE_NAMES)
    model = mfgen.load(path)
    assert model.state_variables == ("y0", "y1", "j0")
    assert list(model.parameters)[:3] == ["A", "C", "NAN"]
    assert model.coupling_variables == ("printf",)
    state = np.array([[0.5], [-0.25], [0.75]])
    coupling = np.array([[0.1]])
    # By hand: y0' = 3.25*0.5 + 1.5 + 0.5*0.25 + 0.1 + 1*0.25; y1' = (0.5*-0.25 + 2)*0.125
    # + 1 + 2*0.5; j0' = -0.75 + 0.5 (all exact in binary).
    expected = np.array([[3.6], [2.234375], [-0.25]])
    np.testing.assert_array_equal(model.dfun(state, coupling), expected)
    np.testing.assert_array_equal(model.dfun(state, coupling, A=np.array([3.25])), expected)
    np.testing.assert_array_equal(model.reference.dfun(state, coupling), expected)


@pytest.mark.parametrize("name, message", [
    ("lambda", "'lambda' is a Python keyword and cannot be a parameter name"),
    ("numpy", "'numpy' is a module the NumPy reference imports and cannot be a parameter name"),
    ("exp", "'exp' is a built-in of the expression language"),
    ("g__L", "parameter name 'g__L' contains '__'"),
])
def test_names_that_break_the_spec_language_are_still_refused(tmp_path, name, message):
    path = tmp_path / "bad.yaml"
    path.write_text(C_HOSTILE_NAMES.replace("  main: 1.0", f"  {name}: 1.0"))
    with pytest.raises(SpecError, match="bad.yaml:7:3") as info:
        mfgen.load(path)
    assert message in str(info.value)


LANGUAGE_FEATURES = """\
name: booleans_and_bounds
parameters:
  flag: true
  disabled: {default: false, description: a boolean parameter is a condition}
  tau: {default: 6.283185307179586, range: [0, "2*pi"]}
state_variables:
  x: {range: [0, "2*pi"], boundaries: [-.inf, .inf]}
  y: {range: [-1, 1], boundaries: [0.0, .inf]}
derivatives:
  x: where(flag, 1, 2) + where(not disabled, 10, 20)
  y: where(flag and x > 1, tau, 0)
"""


def test_booleans_open_bounds_and_constant_ranges(tmp_path):
    path = tmp_path / "features.yaml"
    path.write_text(LANGUAGE_FEATURES)
    model = mfgen.load(path)
    two_pi = 2 * np.pi
    assert model.parameters["flag"] == 1.0 and model.parameters["disabled"] == 0.0
    assert model.parameter_info["tau"].range == (0.0, two_pi)
    assert model.parameters["tau"] == two_pi
    assert model.states["x"].range == (0.0, two_pi)
    assert model.states["x"].boundaries == (None, None)  # .inf both sides: open
    assert model.states["y"].boundaries == (0.0, None)
    state = np.array([[0.5, 2.0], [0.0, 0.0]])
    coupling = np.zeros((0, 2))
    expected = np.array([[11.0, 11.0], [0.0, two_pi]])
    np.testing.assert_array_equal(model.dfun(state, coupling), expected)
    np.testing.assert_array_equal(model.reference.dfun(state, coupling), expected)
    # Per node booleans (TVB passes bool arrays), and a scalar one.
    np.testing.assert_array_equal(
        model.dfun(state, coupling, flag=np.array([True, False]), disabled=True),
        [[21.0, 22.0], [0.0, 0.0]])


@pytest.mark.parametrize("edit, where, message", [
    (("flag: true", "flag: {default: true, range: [0, 1]}"), "3:25",
     "boolean parameter 'flag' cannot have a range"),
    (('range: [0, "2*pi"]}\nstate', 'range: [0, "2*q"]}\nstate'), "5:51",
     "'q' is not a constant"),
    (("boundaries: [0.0, .inf]", "boundaries: [.inf, .inf]"), "8:35",
     "boundaries of 'y' has low +inf or high -inf"),
    (("x: {range: [0, \"2*pi\"]", "x: {range: [0, .inf]"), "7:18",
     "range of 'x' must be finite, got inf"),
    (("x: {range: [0, \"2*pi\"]", "x: {range: [0, \"sqrt(-1)\"]"), "7:19",
     "not a real number"),
    (("x: where(flag, 1, 2)", "x: flag * 2"), "10:6",
     "a comparison cannot be used as a number"),
])
def test_language_feature_errors_name_the_place(tmp_path, edit, where, message):
    path = tmp_path / "bad.yaml"
    assert edit[0] in LANGUAGE_FEATURES
    path.write_text(LANGUAGE_FEATURES.replace(*edit))
    with pytest.raises(SpecError) as info:
        mfgen.load(path)
    assert f"bad.yaml:{where}" in str(info.value) and message in str(info.value), info.value


# -- the zoo: every bundled TVB spec against TVB 2.10's own class ------------------------------
# The Zerlaut specs are checked against TVB in tests/test_tvb_models.py (finite differences
# in the second-order one need their own tolerances).
ZOO = {
    "tvb_linear": "Linear",
    "tvb_hopfield": "Hopfield",
    "tvb_kuramoto": "Kuramoto",
    "tvb_sup_hopf": "SupHopf",
    "tvb_generic_2d_oscillator": "Generic2dOscillator",
    "tvb_wilson_cowan": "WilsonCowan",
    "tvb_reduced_wong_wang": "ReducedWongWang",
    "tvb_reduced_wong_wang_exc_inh": "ReducedWongWangExcInh",
    "tvb_deco_balanced_exc_inh": "DecoBalancedExcInh",
    "tvb_jansen_rit": "JansenRit",
    "tvb_zetterberg_jansen": "ZetterbergJansen",
    "tvb_larter_breakspear": "LarterBreakspear",
    "tvb_epileptor": "Epileptor",
    "tvb_epileptor_2d": "Epileptor2D",
    "tvb_epileptor_resting_state": "EpileptorRestingState",
    "tvb_montbrio_pazo_roxin": "MontbrioPazoRoxin",
    "tvb_coombes_byrne": "CoombesByrne",
    "tvb_coombes_byrne_2d": "CoombesByrne2D",
    "tvb_gast_schmidt_knosche_sd": "GastSchmidtKnosche_SD",
    "tvb_gast_schmidt_knosche_sf": "GastSchmidtKnosche_SF",
    "tvb_dumont_gutkin": "DumontGutkin",
    "tvb_kion_ex": "KIonEx",
    "tvb_epileptor_codim3": "EpileptorCodim3",
    "tvb_epileptor_codim3_slow_mod": "EpileptorCodim3SlowMod",
}
# TVB parameters a spec leaves out, and why.
LEFT_OUT = {
    # `dynamic` switches TVB's Hopfield to another dfun with another cvar at configure();
    # the spec is TVB's default, static Hopfield.
    "tvb_hopfield": {"dynamic"},
}


# Parameters TVB reads as one value (element [0], in update_derived_parameters) even when
# given per node: the test varies them as one random value.
ONE_VALUE = {name for point in ("start", "stop", "Ain", "Aend", "Bin", "Bend")
             for name in (f"mu1_{point}", f"mu2_{point}", f"nu_{point}")}


def tvb_class(spec: str) -> type:
    from tvb.simulator import models
    return getattr(models, ZOO[spec])


@pytest.mark.parametrize("spec", ZOO)
def test_zoo_spec_has_tvbs_names_defaults_ranges_and_boundaries(spec):
    assert_traits_are_tvbs(mfgen.load(spec), tvb_class(spec), LEFT_OUT.get(spec, set()))


def uses_numba(cls: type) -> bool:
    """TVB's numba models (ModelNumbaDfun) keep their NumPy version as `_numpy_dfun`."""
    return "_numpy_dfun" in vars(cls) or any("_numpy_dfun" in vars(base) and base is not cls
                                             for base in cls.__mro__[1:-1]
                                             if base.__name__ != "Model")


def random_zoo_inputs(model, cls, n: int, rng: np.random.Generator):
    """States uniform in TVB's state_variable_range (check_range where that is [x, x]),
    coupling of either sign up to a tenth of the coupled state's range, per-node parameters
    uniform in TVB's domains, booleans flipped from their defaults."""
    state = states_in_ranges(model, n, rng)
    coupling = np.empty((len(model.cvar), n))
    for k, index in enumerate(model.cvar):
        low, high = model.states[model.state_variables[index]].range
        width = 0.1 * (high - low) or 0.1
        coupling[k] = rng.uniform(-width, width, n)
    parameters = {}
    for name, trait in narray_traits(cls).items():
        if name not in model.parameters:
            continue
        if trait.dtype == bool:
            parameters[name] = not bool(model.parameters[name])
        elif trait.domain is not None and trait.dtype.kind in "iu":
            low, high = int(np.ceil(trait.domain.lo)), int(np.floor(trait.domain.hi))
            parameters[name] = rng.integers(low, high + 1, n)
        elif trait.domain is not None:
            size = 1 if name in ONE_VALUE else n
            parameters[name] = rng.uniform(trait.domain.lo, trait.domain.hi, size)
    return state, coupling, float(rng.uniform(-0.5, 0.5)), parameters


def tvb_derivative(cls, method: str, state, coupling, local_coupling, parameters):
    """TVB's `dfun` (numba gufunc: per-node parameters of shape (n,)) or `_numpy_dfun`
    (shape (n, 1), against TVB's (n_state, n_nodes, 1) arrays)."""
    shape = (-1,) if method == "dfun" and uses_numba(cls) else (-1, 1)
    tvb = cls(**{name: np.reshape(value, shape if np.size(value) > 1 else (1,))
                 for name, value in parameters.items()})
    tvb.configure()
    with np.errstate(all="ignore"):
        result = getattr(tvb, method)(state[..., None], coupling[..., None], local_coupling)
    return np.asarray(result)[..., 0]


# Same formulas evaluated in another order: 1e-12 relative, with the checking module's floor
# (1 % of the row's largest value): rate equations such as -S/tau + (1 - S) H gamma cancel near
# their fixed points, where the value is tiny but the rounding of each term is not.
ZOO_RTOL = 1e-12
# The EpileptorCodim3 models take x_s from Cardano's formula; TVB's form computes the smaller
# real u = mu1/2 - sqrt(D) by cancellation and loses up to ~1e-7 of dz/dt (measured against
# 50-digit arithmetic; TVB's numba and NumPy paths disagree by as much). The specs compute it
# from the product u+ u- = mu2^3/27 instead (specs/lib/tvb_epileptor_codim3.yaml), so with
# random parameters they are compared with TVB's own NumPy formula evaluated in extended
# precision (80-bit long double: the cancellation costs 2^11 less there), at 1e-10.
CARDANO = {"tvb_epileptor_codim3", "tvb_epileptor_codim3_slow_mod"}
CARDANO_RTOL = 1e-10


def tvb_extended_precision(cls, state, coupling, local_coupling, parameters):
    """TVB's `_numpy_dfun` on np.longdouble states and parameters (set past TVB's float64
    traits after configure, derived parameters recomputed)."""
    tvb = cls(**{name: np.reshape(value, (-1, 1) if np.size(value) > 1 else (1,))
                 for name, value in parameters.items()})
    tvb.configure()
    for name in narray_traits(cls):
        value = getattr(tvb, name)
        if value.dtype == np.float64:
            tvb.__dict__[name] = value.astype(np.longdouble)
    tvb.update_derived_parameters()
    result = tvb._numpy_dfun(state.astype(np.longdouble)[..., None],
                             coupling.astype(np.longdouble)[..., None], local_coupling)
    assert result.dtype == np.longdouble
    return result[..., 0].astype(float)


@pytest.mark.parametrize("spec", ZOO)
def test_zoo_dfun_matches_tvbs_numba_and_numpy_dfun(spec, rng):
    model, cls = mfgen.load(spec), tvb_class(spec)
    n = 1000
    state, coupling, lc, random_parameters = random_zoo_inputs(model, cls, n, rng)
    methods = ["dfun"] + (["_numpy_dfun"] if uses_numba(cls) else [])
    for local_coupling, parameters in ((0.0, {}), (lc, random_parameters)):
        with np.errstate(all="ignore"):
            computed = model.dfun(state, coupling, local_coupling, **{
                name: np.asarray(value, dtype=float).squeeze()
                for name, value in parameters.items()})
        if spec in CARDANO and parameters:
            expected = tvb_extended_precision(cls, state, coupling, local_coupling, parameters)
            error = relative_error(computed, expected).max(axis=1)
            assert max(error) <= CARDANO_RTOL, dict(zip(model.state_variables, error))
            continue
        for method in methods:
            expected = tvb_derivative(cls, method, state, coupling, local_coupling, parameters)
            assert expected.shape == computed.shape, method
            mismatch = np.isfinite(computed) != np.isfinite(expected)
            assert not mismatch.any(), (method, np.argwhere(mismatch)[:3])
            error = relative_error(computed, expected).max(axis=1)
            worst = dict(zip(model.state_variables, error))
            assert max(error) <= ZOO_RTOL, (method, local_coupling != 0.0, worst)
