"""codegen/math_functions.py is the one list of math functions: the parser's whitelist, the
constant folding, both printers and the libmvec declarations derive from it, so adding a row is
all a new function takes. Each test compares a stage's set with the table's, or what a stage
prints with the name the table gives; nothing is compiled."""

from __future__ import annotations

import math
import re

import sympy

from mfgen.codegen import expressions, render
from mfgen.codegen.expressions import RESERVED_NAMES, VectorRef, parse_expression
from mfgen.codegen.math_functions import (
    LANGUAGE_FUNCTIONS,
    MATH_FUNCTIONS,
    SIMD_FUNCTIONS,
    printer_names,
)
from mfgen.codegen.optimize import count_calls
from mfgen.codegen.printing import _C, _NUMPY, c_expression, numpy_expression
from mfgen.errors import Location, SpecError

X, Y = sympy.symbols("x y", real=True)
ARGUMENTS = (X, Y)


class Scope:
    """x and y are symbols; no spec functions."""

    def symbol(self, name: str, where: Location) -> sympy.Expr | VectorRef:
        return {"x": X, "y": Y}[name]

    def call(self, name, args, where):
        raise SpecError(f"unknown function {name}", where)

    def derivative(self, name, wrt, args, where):
        raise SpecError("no derivatives here", where)


def parse(text: str) -> sympy.Expr:
    return parse_expression(text, Location("test.yaml", 1, 1), Scope())


def call_of(function) -> sympy.Expr:
    """function(x) or function(x, y): the table's SymPy function on symbols."""
    return function.sympy_function(*ARGUMENTS[:function.arity or 2])


def test_the_parser_accepts_exactly_the_tables_language_functions():
    assert set(expressions.BUILTIN_FUNCTIONS) == set(LANGUAGE_FUNCTIONS)
    assert set(LANGUAGE_FUNCTIONS) <= RESERVED_NAMES
    assert "pow" in MATH_FUNCTIONS and "pow" not in LANGUAGE_FUNCTIONS  # printer-only
    for name, function in LANGUAGE_FUNCTIONS.items():
        arguments = ", ".join("xy"[:function.arity or 2])
        assert parse(f"{name}({arguments})") == call_of(function), name


def test_every_language_function_folds_constants_as_math_does():
    # atan2 had no fold before the table: atan2(1, 2) raised a KeyError instead of folding.
    assert all(f.fold is not None for f in LANGUAGE_FUNCTIONS.values())
    expected = {"exp": math.exp(0.5), "log": math.log(0.5), "sqrt": math.sqrt(0.5),
                "erf": math.erf(0.5), "erfc": math.erfc(0.5), "tanh": math.tanh(0.5),
                "sin": math.sin(0.5), "cos": math.cos(0.5), "atan2": math.atan2(0.5, 2.0),
                "abs": 0.5, "max": 2.0, "min": 0.5}
    assert set(expected) == set(LANGUAGE_FUNCTIONS)  # a new row needs a line here too
    for name, function in LANGUAGE_FUNCTIONS.items():
        arguments = "0.5" if function.arity == 1 else "0.5, 2.0"
        # Same double operations in both: exact equality.
        assert float(parse(f"{name}({arguments})")) == expected[name], name


def test_both_printers_print_the_tables_names():
    assert printer_names("c_name").items() <= _C.known_functions.items()
    assert printer_names("numpy_name").items() <= _NUMPY.known_functions.items()
    for name, function in MATH_FUNCTIONS.items():
        expr = call_of(function)
        assert c_expression(expr).startswith(f"{function.c_name}("), name
        if function.numpy_name is None:  # pow: the ** operator
            assert numpy_expression(expr) == "x**y"
        else:
            assert numpy_expression(expr).startswith(f"{function.numpy_name}("), name


def test_the_simd_declarations_are_the_tables():
    assert set(render.LIBMVEC_FUNCTIONS) == set(SIMD_FUNCTIONS)
    every_call = [call_of(f) for f in SIMD_FUNCTIONS.values()]
    used = render._used_functions(every_call)
    assert [f.name for f in used] == sorted(SIMD_FUNCTIONS)
    # sqrt, abs, max, min are instructions: never declared.
    assert render._used_functions([sympy.sqrt(X), sympy.Abs(X), sympy.Max(X, Y)]) == []
    # what the printer calls is what is declared: a power over MAX_MULTIPLY_POWER is pow(),
    # one within it products, e**x exp()
    for power, called in ((X**10, "pow"), (X**-9, "pow"), (X**8 / Y**3, None),
                          (sympy.Pow(sympy.E, X, evaluate=False), "exp")):
        names = [f.name for f in render._used_functions([power])]
        assert names == ([called] if called else []), power
        assert (f"{called}(" in c_expression(power)) if called else \
            "pow(" not in c_expression(power)
        # and the build's call counts say the same (optimize.count_calls)
        assert count_calls([power]) == ({called: 1} if called else {}), power
    assert count_calls([1 / sympy.sqrt(X), sympy.sqrt(X), X**1.5]) == {"sqrt": 2, "pow": 1}

    text = render._environment().get_template("base.c.j2").render(
        kernels_only=False, version="test", model_name="m", ir_digest="0", interface="",
        simd_functions=used)
    declared = re.findall(r"#pragma omp declare simd notinbranch\ndouble (\w+)\(([^)]*)\);",
                          text)
    assert dict(declared) == {f.c_name: f.simd_signature for f in SIMD_FUNCTIONS.values()}
    # A function newer than the oldest glibc is declared behind its version guard.
    for f in SIMD_FUNCTIONS.values():
        if f.simd_since_glibc:
            major, minor = f.simd_since_glibc
            guard = (f"#if __GLIBC__ > {major} || (__GLIBC__ == {major} && "
                     f"__GLIBC_MINOR__ >= {minor})\n#pragma omp declare simd notinbranch\n"
                     f"double {f.c_name}(")
            assert guard in text


def test_the_spec_language_reference_lists_exactly_the_tables_functions():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "spec-language.md").read_text()
    section = text.split("Built-in functions and constants:", 1)[1].split("\n\n", 2)[1]
    documented = {name for row in section.splitlines()[2:]
                  for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    others = {*expressions.CONSTANTS, *expressions.SPECIAL_FORMS, "local_coupling"}
    assert documented - others == set(LANGUAGE_FUNCTIONS)
