"""Printers: SymPy expressions to C99 (kernels) and to NumPy (the reference).

Math formatting lives here, loops and layout in the templates (the NESTML split).
"""

from __future__ import annotations

import math

import sympy
from sympy.printing.c import C99CodePrinter
from sympy.printing.numpy import SciPyPrinter

from mfgen.codegen.math_functions import MATH_FUNCTIONS, SIMD_FUNCTIONS, MathFunction, printer_names
from mfgen.codegen.names import BUILTIN_INPUTS, c_name

MAX_MULTIPLY_POWER = 8  # x**n with |n| <= 8 prints as repeated multiplication
EXACT_INTEGERS = 2**53  # integers below this are exact doubles


def _double(value: sympy.Expr) -> float:
    """The double a SymPy constant rounds to (+-inf beyond the range, as C would compute)."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, 1 if value > 0 else -1)


def _double_literal(value: float, infinity: str, nan: str) -> str:
    # Constant folding (value numbering, derivatives) can produce 1e200*1e200 = inf: print
    # what the double arithmetic gives, never the bare word `inf`.
    if math.isnan(value):
        return nan
    if math.isinf(value):
        return infinity if value > 0 else f"(-{infinity})"
    return repr(value)


_SQRT_C = MATH_FUNCTIONS["sqrt"].c_name
_POW_C = MATH_FUNCTIONS["pow"].c_name
_SIMD_BY_CLASS = {f.sympy_name: f for f in SIMD_FUNCTIONS.values() if f.sympy_name}


def power_form(node: sympy.Pow) -> str:
    """How CPrinter writes a power, the one rule: "exp" (base e), "sqrt" (exponent 1/2),
    "rsqrt" (-1/2: 1.0/sqrt), "product" (an integer exponent up to MAX_MULTIPLY_POWER in
    magnitude: repeated multiplication) or "pow" (a call)."""
    exponent = node.exp
    if node.base == sympy.E:
        return "exp"
    if exponent == sympy.S.Half:
        return "sqrt"
    if exponent == -sympy.S.Half:
        return "rsqrt"
    if exponent.is_Integer and 0 < abs(int(exponent)) <= MAX_MULTIPLY_POWER:
        return "product"
    return "pow"


def vector_call(node: sympy.Basic) -> MathFunction | None:
    """The SIMD-callable function (libmvec) CPrinter writes `node` as a call of, or None:
    power_form for powers (sqrt and small integer powers are no calls), the table else."""
    if isinstance(node, sympy.Function):
        return _SIMD_BY_CLASS.get(type(node).__name__)
    if isinstance(node, sympy.Pow):
        form = power_form(node)
        return SIMD_FUNCTIONS[form] if form in ("exp", "pow") else None
    return None


class CPrinter(C99CodePrinter):
    """C99 with exact float literals, powers as products, no macros (M_PI) or errno traps.

    Model symbols print mangled (`names.c_name`) so any spec name is a safe C identifier;
    built-in inputs (`local_coupling`) keep their names, which the kernel's signature uses.
    Coupling functions print with `mangle=False`: their templates declare x_i, x_j, gx and
    the parameters by their plain names.
    """

    math_macros: dict = {}  # print sqrt(2) etc. as numbers: M_SQRT2 is not ISO C

    def __init__(self, mangle: bool = True) -> None:
        super().__init__()
        self.mangle = mangle
        # The table's names win; SymPy's own stay for what differentiation may introduce.
        self.known_functions = {**self.known_functions, **printer_names("c_name")}

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        if not self.mangle or expr.name in BUILTIN_INPUTS:
            return expr.name
        return c_name(expr.name)

    def _print_Float(self, expr: sympy.Float) -> str:
        return _double_literal(_double(expr), "INFINITY", "NAN")

    def _print_Integer(self, expr: sympy.Integer) -> str:
        if abs(int(expr)) < EXACT_INTEGERS:
            return f"{int(expr)}.0"
        return _double_literal(_double(expr), "INFINITY", "NAN")

    def _print_Rational(self, expr: sympy.Rational) -> str:
        if abs(int(expr.p)) < EXACT_INTEGERS and int(expr.q) < EXACT_INTEGERS:
            return f"({int(expr.p)}.0/{int(expr.q)}.0)"
        return _double_literal(_double(expr), "INFINITY", "NAN")

    def _print_Pi(self, expr: sympy.Expr) -> str:
        return repr(float(sympy.pi))

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return repr(float(sympy.E))

    def _print_Pow(self, expr: sympy.Pow) -> str:
        base, exponent = expr.base, expr.exp
        form = power_form(expr)
        if form == "exp":
            return f"exp({self._print(exponent)})"
        if form == "sqrt":
            return f"{_SQRT_C}({self._print(base)})"
        if form == "rsqrt":
            return f"(1.0/{_SQRT_C}({self._print(base)}))"
        if form == "product":
            factor = self.parenthesize(base, sympy.printing.precedence.PRECEDENCE["Mul"])
            product = "*".join([factor] * abs(int(exponent)))
            return f"({product})" if exponent > 0 else f"(1.0/({product}))"
        return f"{_POW_C}({self._print(base)}, {self._print(exponent)})"

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        result = None
        for value, condition in reversed(expr.args):
            printed = self._print(value)
            if condition == sympy.true:
                result = printed
            else:
                fallback = result if result is not None else "NAN"
                result = f"(({self._print(condition)}) ? ({printed}) : ({fallback}))"
        return result or "NAN"

    def _print_Heaviside(self, expr: sympy.Expr) -> str:
        x = self._print(expr.args[0])
        half = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(({x}) > 0.0 ? 1.0 : (({x}) < 0.0 ? 0.0 : {half}))"

    def _print_sign(self, expr: sympy.Expr) -> str:
        x = self._print(expr.args[0])
        return f"((double)(({x}) > 0.0) - (double)(({x}) < 0.0))"

    def _print_Abs(self, expr: sympy.Expr) -> str:
        return f"{self.known_functions['Abs']}({self._print(expr.args[0])})"

    # Conditions can hold boolean constants (a where() whose condition SymPy simplified to
    # Piecewise((c, ...), (True, True))): C has no `true` without <stdbool.h>.
    def _print_BooleanTrue(self, expr: sympy.Basic) -> str:
        return "1"

    def _print_BooleanFalse(self, expr: sympy.Basic) -> str:
        return "0"

    def _print_DiracDelta(self, expr: sympy.Expr) -> str:
        # The derivative of sign() or Heaviside() (a second derivative through abs, max, min):
        # zero everywhere but at the kink itself, which is what a kernel can evaluate.
        return "0.0"


class NumpyPrinter(SciPyPrinter):
    """NumPy/SciPy source for the reference; elementwise everywhere (no reductions)."""

    def __init__(self, settings: dict) -> None:
        super().__init__(settings)
        # The table's names win; SymPy's own stay for what differentiation may introduce.
        self.known_functions = {**self.known_functions, **printer_names("numpy_name")}

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return expr.name

    def _print_Float(self, expr: sympy.Float) -> str:
        return _double_literal(_double(expr), "numpy.inf", "numpy.nan")

    def _print_Integer(self, expr: sympy.Integer) -> str:
        if abs(int(expr)) < EXACT_INTEGERS:
            return str(int(expr))
        return _double_literal(_double(expr), "numpy.inf", "numpy.nan")

    def _print_Rational(self, expr: sympy.Rational) -> str:
        if abs(int(expr.p)) < EXACT_INTEGERS and int(expr.q) < EXACT_INTEGERS:
            return super()._print_Rational(expr)
        return _double_literal(_double(expr), "numpy.inf", "numpy.nan")

    # fmax/fmin, like C's: a NaN argument is ignored rather than propagated, so the reference
    # and the kernel agree wherever an argument is NaN (e.g. max(x, sqrt(x)) at x < 0).
    def _print_Max(self, expr: sympy.Expr) -> str:
        return self._fold(self.known_functions["Max"], expr.args)

    def _print_Min(self, expr: sympy.Expr) -> str:
        return self._fold(self.known_functions["Min"], expr.args)

    # Pairwise, not numpy.logical_and.reduce((a, b)): that builds an array from its operands
    # and fails when one is a scalar (a condition on a parameter) and the other an array.
    def _print_And(self, expr: sympy.Basic) -> str:
        return self._fold("numpy.logical_and", expr.args)

    def _print_Or(self, expr: sympy.Basic) -> str:
        return self._fold("numpy.logical_or", expr.args)

    def _fold(self, function: str, args: tuple) -> str:
        result = self._print(args[0])
        for arg in args[1:]:
            result = f"{function}({result}, {self._print(arg)})"
        return result

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        result = None
        for value, condition in reversed(expr.args):
            printed = self._print(value)
            if condition == sympy.true:
                result = printed
            else:
                fallback = result if result is not None else "numpy.nan"
                result = f"numpy.where({self._print(condition)}, {printed}, {fallback})"
        return result or "numpy.nan"

    def _print_Heaviside(self, expr: sympy.Expr) -> str:
        half = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"numpy.heaviside({self._print(expr.args[0])}, {half})"

    def _print_DiracDelta(self, expr: sympy.Expr) -> str:
        return "0.0"  # as in the C printer


_C = CPrinter()
_C_PLAIN = CPrinter(mangle=False)
# order="none": terms in SymPy's own (deterministic) argument order. Its default order sorts
# them by evaluating every coefficient: half of a second-order model's render time. Only the
# last bits of a sum can change, and the reference differs from the (CSE'd) kernel there anyway.
_NUMPY = NumpyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False,
                       "order": "none"})


def c_expression(expr: sympy.Expr, mangle: bool = True) -> str:
    """C for `expr`; symbols as `c_name(name)` unless `mangle` is False (coupling functions)."""
    return (_C if mangle else _C_PLAIN).doprint(expr)


def numpy_expression(expr: sympy.Expr) -> str:
    text = _NUMPY.doprint(expr)
    if not expr.free_symbols:
        # A constant statement as a NumPy scalar, not a Python float: Python raises
        # OverflowError on 1e200**2 and ZeroDivisionError on 1/0.0 where C and NumPy give inf.
        return f"numpy.float64({text})"
    return text
