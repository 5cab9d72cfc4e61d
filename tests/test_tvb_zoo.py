"""TVB's region models as bundled specs (issue 9), and the spec-language features they need:
any identifier TVB uses as a name (C names are mangled), booleans, open `.inf` bounds and
constant-expression ranges."""

from __future__ import annotations

import numpy as np
import pytest

import mfgen
from mfgen.errors import SpecError

# Names that are C keywords, libc functions (y0, y1, j0 are Bessel functions in math.h), macros
# of the headers the kernel or cffi's wrapper include (NAN, INFINITY, M_PI, Py_None, linux) or
# the kernel's own symbols (dfun_uniform): all are fine spec names now.
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
  j0: -linux * j0 + dfun_uniform
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
     "complex value"),
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
