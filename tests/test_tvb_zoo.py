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
