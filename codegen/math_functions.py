"""The one table of math functions: what the expression language accepts and how each stage
prints or folds it.

The parser's whitelist and constant folding (expressions.py), the C and NumPy printers
(printing.py), the libmvec SIMD declarations (render.py, base.c.j2) and the reference table of
docs/spec-language.md (checked by tests/test_docs.py) all read this table; adding a row here is
all a new function takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy


def _real(function: Callable[..., float]) -> Callable[..., float]:
    """`function` on doubles as C computes it: overflow is inf, a non-real result NaN."""
    def apply(*values: float) -> float:
        try:
            return function(*values)
        except OverflowError:
            return math.inf
        except ValueError:  # log(-1), sqrt(-1): not a real number
            return math.nan
    return apply


@dataclass(frozen=True)
class MathFunction:
    """One math function. `arity` None: two or more arguments (max, min)."""

    name: str  # as written in a spec; also the key of MATH_FUNCTIONS
    arity: int | None
    sympy_function: Callable[..., sympy.Expr]
    sympy_name: str | None  # the SymPy class the printers dispatch on; None: printed as Pow
    c_name: str  # what the C kernel calls
    numpy_name: str | None  # what the NumPy reference calls; None: the `**` operator
    fold: Callable[..., float] | None  # the function on doubles (constant folding)
    why: str
    in_language: bool = True  # False: only the printers emit it (pow for x**y)
    simd_signature: str | None = None  # C parameter list, where glibc's libmvec has a vector
    simd_since_glibc: tuple[int, int] | None = None  # first glibc with it, if newer than 2.22
    simd_note: str = ""  # why the late one is worth the version guard


MATH_FUNCTIONS: dict[str, MathFunction] = {f.name: f for f in (
    MathFunction("exp", 1, sympy.exp, "exp", "exp", "numpy.exp", _real(math.exp),
                 "everywhere in rate models", simd_signature="double"),
    MathFunction("log", 1, sympy.log, "log", "log", "numpy.log",
                 _real(lambda v: math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)),
                 "everywhere in rate models", simd_signature="double"),
    # sympy.sqrt(x) is Pow(x, 1/2): both printers write it from their Pow rule.
    MathFunction("sqrt", 1, sympy.sqrt, None, "sqrt", "numpy.sqrt", _real(math.sqrt),
                 "everywhere in rate models (a hardware instruction: no libmvec call)"),
    MathFunction("erf", 1, sympy.erf, "erf", "erf", "scipy.special.erf", _real(math.erf),
                 "the AdEx transfer functions", simd_signature="double"),
    MathFunction("erfc", 1, sympy.erfc, "erfc", "erfc", "scipy.special.erfc", _real(math.erfc),
                 "the AdEx transfer functions (erfc of the threshold distance)",
                 simd_signature="double"),
    MathFunction("tanh", 1, sympy.tanh, "tanh", "tanh", "numpy.tanh", _real(math.tanh),
                 "sigmoids", simd_signature="double"),
    MathFunction("sin", 1, sympy.sin, "sin", "sin", "numpy.sin",
                 _real(lambda v: math.sin(v) if math.isfinite(v) else math.nan),
                 "oscillators", simd_signature="double"),
    MathFunction("cos", 1, sympy.cos, "cos", "cos", "numpy.cos",
                 _real(lambda v: math.cos(v) if math.isfinite(v) else math.nan),
                 "oscillators", simd_signature="double"),
    # atan2(y, x): the angle of x + iy.
    MathFunction("atan2", 2, sympy.atan2, "atan2", "atan2", "numpy.arctan2", _real(math.atan2),
                 "TVB's EpileptorCodim3 (Cardano's formula in real arithmetic)",
                 simd_signature="double, double", simd_since_glibc=(2, 35),
                 simd_note="EpileptorCodim3's complex roots"),
    MathFunction("abs", 1, sympy.Abs, "Abs", "fabs", "abs", _real(abs), "absolute value"),
    # fmax/fmin: a NaN argument is ignored, in the kernel and the reference alike.
    MathFunction("max", None, sympy.Max, "Max", "fmax", "numpy.fmax", lambda *v: max(v),
                 "clamps such as max(F, 0)"),
    MathFunction("min", None, sympy.Min, "Min", "fmin", "numpy.fmin", lambda *v: min(v),
                 "clamps"),
    MathFunction("pow", 2, sympy.Pow, None, "pow", None, None,
                 "x**y with an exponent that is not an integer or +-1/2", in_language=False,
                 simd_signature="double, double"),
)}

LANGUAGE_FUNCTIONS: dict[str, MathFunction] = {
    name: f for name, f in MATH_FUNCTIONS.items() if f.in_language}
SIMD_FUNCTIONS: dict[str, MathFunction] = {
    name: f for name, f in MATH_FUNCTIONS.items() if f.simd_signature is not None}


def printer_names(attribute: str) -> dict[str, str]:
    """SymPy class name -> printed name (`c_name` or `numpy_name`), for a printer's
    known_functions: the functions the printers dispatch by class."""
    return {f.sympy_name: getattr(f, attribute) for f in MATH_FUNCTIONS.values()
            if f.sympy_name is not None}
