"""Specs are code from strangers: a corpus of hostile and broken specs, each with the exact
error it must end in, run under an audit hook that proves nothing else happens.

Each case is data: the text (or bytes) of a spec, or of a folder of specs, and the expected
`SpecError` (file:line:column, message, hint), or ACCEPTED for inputs that are harmless and
must be carried safely through to compiled code. All cases run in one subprocess
(`hostile_runner.py`) whose audit hook records every file written, process started and code
object executed; `test_the_corpus_runs_nothing_and_writes_only_the_cache` checks that record.
Every payload would create a file named SENTINEL if any part of it ever ran.

tests/test_spec_errors.py pins the everyday mistakes; this file is about malice and abuse.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import mfgen

HERE = Path(__file__).resolve().parent
INJECT = '*/ system("touch SENTINEL"); /*'

# Line numbers below refer to this text: edits keep earlier lines in place.
BASE = """\
name: target
description: a small valid model that every hostile case edits
parameters:
  k: {default: 0.5, range: [0.0, 1.0], unit: "1", description: gain}
  P: {default: [1.0, 2.0, 3.0]}
state_variables:
  x: {range: [-1.0, 1.0]}
  y: {range: [-1.0, 1.0]}
coupling:
  c_0: x
functions:
  F:
    args: [u, v]
    return: u * v + k
derivatives:
  x: -k * x + F(x, y) + c_0
  y: P[0] * x - y
"""
Y_LINE = "  y: P[0] * x - y"  # line 17; a quoted expression there starts at column 7


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def expression(payload: str) -> str:
    """BASE with the derivative of y replaced by `payload` (a JSON string is a YAML string)."""
    return edit(Y_LINE, "  y: " + json.dumps(payload, ensure_ascii=False))


ACCEPTED = "accepted"
ANY_EXPRESSION = ("expressions may use numbers, names, + - * / **, comparisons, where(), math "
                  "functions and the spec's functions")
ONLY_NUMBERS = "only numbers are allowed"
NOT_CALLABLE = "only math functions and the spec's functions can be called"
UNDEFINED = "declare it under parameters, state_variables, coupling or derived"
NOT_A_NAME = "names are ASCII letters, digits and '_', starting with a letter"
CHOOSE = "choose another name"
NO_TAGS = "remove the tag: specs hold plain numbers, text, lists and mappings"
ASCII_ONLY = "names and operators must be plain ASCII; retype the expression"
TOO_BIG = "a model spec is a few kilobytes; check that this is the file you meant"


@dataclass
class Case:
    """One hostile input. `files`: relative path -> text or bytes (model.yaml is loaded);
    `where` is 'line:col', 'line' or '' (the file itself); `in_file` when the error points
    into another file than model.yaml; `make` builds files that need the case's folder."""

    files: dict[str, str | bytes]
    where: str = ""
    message: str = ""
    hint: str = ""
    in_file: str = "model.yaml"
    make: object = None  # callable(folder) -> None, for links and files outside the folder
    compile: bool = False
    checks: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.message == ACCEPTED


def spec(text: str | bytes, where: str = "", message: str = "", hint: str = "") -> Case:
    return Case({"model.yaml": text}, where, message, hint)


def expr(payload: str, column: int, message: str, hint: str) -> Case:
    return spec(expression(payload), f"17:{column}", message, hint)


def big_file(size: int) -> bytes:
    return BASE.encode() + b"#" * (size - len(BASE))


def _chain(depth: int, width: int) -> dict[str, str]:
    """model.yaml extends lib/l0 `width` times, l0 extends l1 `width` times, ...: without
    reading each file once, loading it would read width**depth files."""
    files = {"model.yaml": edit("name: target", "name: target\nextends: ["
                                + ", ".join(["lib/l0"] * width) + "]")}
    for level in range(depth):
        parents = ", ".join([f"l{level + 1}"] * width) if level + 1 < depth else ""
        files[f"lib/l{level}.yaml"] = (f"extends: [{parents}]\n" if parents else "") + \
            f"parameters:\n  q{level}: 1.0\n"
    return files


def _function_bomb(levels: int) -> str:
    """f(i) calls f(i-1) twice: inlined, 2**levels statements from a 1 kB file."""
    lines = ["  f0:", "    args: [a]", "    return: a + 1"]
    for i in range(1, levels):
        lines += [f"  f{i}:", "    args: [a]", f"    return: f{i - 1}(a) * f{i - 1}(a + 1)"]
    text = edit("  F:\n", "\n".join(lines) + "\n  F:\n")
    return edit(Y_LINE, f"  y: f{levels - 1}(x)", text)


def _outside_file(name: str):
    def make(folder: Path) -> None:
        (folder.parent / f"{folder.name}-{name}").write_text("description: outside\n")
    return make


def _touch(path: Path) -> Path:
    path.touch()
    return path


def _symlink_out(folder: Path) -> None:
    outside = folder.parent / f"{folder.name}-secret.yaml"
    outside.write_text("description: a file the spec must not make mfgen read\n")
    (folder / "innocent.yaml").symlink_to(outside)


CASES: dict[str, Case] = {
    # -- Python code in expressions -----------------------------------------------------------
    "import-os-system": expr(
        "__import__('os').system('touch SENTINEL')", 7,
        "attribute access (a.b) cannot be called in '__import__('os').system('touch SENTINEL')'",
        NOT_CALLABLE),
    "import-call": expr("__import__()", 7, "call of undefined function '__import__'",
                        "declare it under functions:"),
    "dunder-builtins": expr("__builtins__", 7, "undefined symbol '__builtins__'", UNDEFINED),
    "dunder-attribute": expr("x.__class__", 7,
                             "attribute access (a.b) is not allowed in 'x.__class__'",
                             ANY_EXPRESSION),
    "class-walk": expr("().__class__.__base__.__subclasses__()", 7,
                       "attribute access (a.b) cannot be called in "
                       "'().__class__.__base__.__subclasses__()'", NOT_CALLABLE),
    "function-globals": expr("F.__globals__", 7,
                             "attribute access (a.b) is not allowed in 'F.__globals__'",
                             ANY_EXPRESSION),
    "lambda-call": expr("(lambda: __import__('os').system('touch SENTINEL'))()", 7,
                        "lambda cannot be called in "
                        "'(lambda: __import__('os').system('touch SENTINEL'))()'", NOT_CALLABLE),
    "list-comprehension": expr("[__import__('os') for _ in P]", 7,
                               "a list comprehension is not allowed in "
                               "'[__import__('os') for _ in P]'", ANY_EXPRESSION),
    "set-comprehension": expr("{x for x in P}", 7,
                              "a set comprehension is not allowed in '{x for x in P}'",
                              ANY_EXPRESSION),
    "dict-comprehension": expr("{x: 1 for x in P}", 7,
                               "a dict comprehension is not allowed in '{x: 1 for x in P}'",
                               ANY_EXPRESSION),
    "generator": expr("max(x for x in P)", 10,
                      "a generator expression is not allowed in 'max(x for x in P)'",
                      ANY_EXPRESSION),
    "f-string": expr("f'{__import__(\"os\").system(\"touch SENTINEL\")}'", 7,
                     "an f-string is not allowed in "
                     "'f'{__import__(\"os\").system(\"touch SENTINEL\")}''", ANY_EXPRESSION),
    "walrus": expr("(q := x) * q", 8, "the walrus operator (:=) is not allowed in '(q := x) * q'",
                   ANY_EXPRESSION),
    "exec": expr("exec('import os')", 12,
                 "the literal 'import os' is not allowed in 'exec('import os')'", ONLY_NUMBERS),
    "eval": expr("eval('1')", 12, "the literal '1' is not allowed in 'eval('1')'", ONLY_NUMBERS),
    "open": expr("open('SENTINEL', 'w')", 12,
                 "the literal 'SENTINEL' is not allowed in 'open('SENTINEL', 'w')'", ONLY_NUMBERS),
    "globals-call": expr("globals()", 7, "call of undefined function 'globals'",
                         "declare it under functions:"),
    "conditional-expression": expr("x if x > 0 else y", 7,
                                   "'a if c else b' is not allowed in 'x if x > 0 else y'",
                                   "write where(condition, a, b)"),
    "await": expr("await x", 7, "await is not allowed in 'await x'", ANY_EXPRESSION),
    "yield": expr("(yield x)", 8, "yield is not allowed in '(yield x)'", ANY_EXPRESSION),
    "starred-arguments": expr("max(*P)", 7, "starred arguments are not allowed in 'max(*P)'",
                              "pass the arguments one by one"),
    "keyword-argument": expr("max(x, key=abs)", 7,
                             "keyword arguments are not allowed in 'max(x, key=abs)'",
                             "pass arguments by position"),
    "slice": expr("P[0:2]", 7, "the index of 'P' must be an integer literal in 'P[0:2]'",
                  "write e.g. P[0]"),
    "bytes-literal": expr("b'\\x00'", 7, "the literal b'\\x00' is not allowed in 'b'\\x00''",
                          ONLY_NUMBERS),
    "complex-literal": expr("x * 1j", 11, "the literal 1j is not allowed in 'x * 1j'",
                            ONLY_NUMBERS),
    "ellipsis": expr("...", 7, "the literal Ellipsis is not allowed in '...'", ONLY_NUMBERS),
    "bitwise-invert": expr("~x", 7, "the operator '~' is not allowed in '~x'",
                           "use + - * / ** only"),
    "shift": expr("x << 2", 7, "the operator '<<' is not allowed in 'x << 2'",
                  "use + - * / ** only"),
    "identity-comparison": expr("where(x is None, 1, 2)", 18,
                                "the literal None is not allowed in 'where(x is None, 1, 2)'",
                                ONLY_NUMBERS),
    "statement-separator": expr("x; import os", 8,
                                "syntax error in 'x; import os': invalid syntax",
                                "check brackets and operators"),
    "assignment": expr("x = 1", 9, "syntax error in 'x = 1': invalid syntax",
                       "check brackets and operators"),
    "subscript-call": expr("P[0](x)", 7, "the construct 'Subscript' cannot be called in "
                           "'P[0](x)'", NOT_CALLABLE),
    # -- SymPy-specific escapes ---------------------------------------------------------------
    "sympy-Function": expr("Function('f')(x)", 7,
                           "a call result cannot be called in 'Function('f')(x)'",
                           "only diff(F, x)(...) is called twice"),
    "sympy-Symbol": expr("Symbol('x')", 14, "the literal 'x' is not allowed in 'Symbol('x')'",
                         ONLY_NUMBERS),
    "sympy-S": expr("S(1) * x", 7, "call of undefined function 'S'",
                    "declare it under functions:"),
    "sympy-sympify": expr("sympify('x')", 15,
                          "the literal 'x' is not allowed in 'sympify('x')'", ONLY_NUMBERS),
    "sympy-lambdify": expr("lambdify(x, x)", 7, "call of undefined function 'lambdify'",
                           "declare it under functions:"),
    "sympy-N": expr("N(pi)", 7, "call of undefined function 'N'", "declare it under functions:"),
    "diff-of-builtin": expr("diff(__import__, x)(x)", 7,
                            "call of undefined function '__import__'",
                            "declare it under functions:"),
    "diff-with-string": expr("diff(F, 'u')(x, y)", 7,
                             "diff(F, x, ...) takes names only in 'diff(F, 'u')(x, y)'",
                             "write diff(F, x)(a, b) with F's name and its argument's name"),
    "diff-not-called": expr("diff(F, u)", 7,
                            "diff(F, x) names a derivative function; call it with F's arguments "
                            "in 'diff(F, u)'", "write diff(F, x)(a, b)"),
    # -- numeric tricks -----------------------------------------------------------------------
    "literal-1e999": expr("x * 1e999", 11, "the number inf is not finite in 'x * 1e999'",
                          "use a finite value"),
    "nan-name": expr("nan * x", 7, "undefined symbol 'nan'", UNDEFINED),
    "inf-name": expr("inf + x", 7, "undefined symbol 'inf'", UNDEFINED),
    "power-10**10": expr("x**10**10", 7,
                         "integer exponent 10000000000 is larger than 64 in 'x**10**10'",
                         "write exp(n*log(x)) if you mean it"),
    "power-minus-10**10": expr("x**-(10**10)", 7,
                               "integer exponent -10000000000 is larger than 64 in "
                               "'x**-(10**10)'", "write exp(n*log(x)) if you mean it"),
    "power-tower-of-numbers": expr("10**10**10", 7,
                                   "the power is not a finite real number in '10**10**10'",
                                   "constant powers must give a finite real double"),
    "float-power-overflow": expr("2.0**1e6", 7,
                                 "the power is not a finite real number in '2.0**1e6'",
                                 "constant powers must give a finite real double"),
    "constant-product-overflow": expr(
        "1e200 * 1e200 * x", 7, "a constant in the expression is beyond the range of a double "
        "(about 1.8e308) in '1e200 * 1e200 * x'", "rescale the constants"),
    "exact-integer-overflow": expr(
        "x * " + "*".join(["999999999999999"] * 25), 7,
        "a constant in the expression is beyond the range of a double (about 1.8e308) in "
        "'x * 999999999999999*999999999999999*999999999999999*99999...'",
        "rescale the constants"),
    "overflow-through-a-function": spec(edit(Y_LINE, "  y: F(1e200, 1e200) * 0"), "14:13",
                                        "a constant in the expression is beyond the range of a "
                                        "double (about 1.8e308) in 'u * v + k'",
                                        "rescale the constants"),
    "integer-literal-5000-digits": expr(
        "1" * 5000, 7, "an integer in '111111111111111111111111111111111111111111111111111111111"
        "...' has too many digits", "write long numbers in floating point, e.g. 1.5e20"),
    "parentheses-300-deep": expr(
        "(" * 300 + "x" + ")" * 300, 207, "syntax error in '" + "(" * 57 + "...': too many "
        "nested parentheses", "check brackets and operators"),
    "unary-minus-3000-deep": expr("-" * 3000 + "x", 7, "expression is nested too deeply to "
                                  "parse in '" + "-" * 57 + "...'",
                                  "split it into named derived expressions"),
    "calls-150-deep": expr("exp(" * 150 + "x" + ")" * 150, 407,
                           "expression nested more than 100 levels deep in '"
                           + "exp(" * 14 + "e...'", "split it into named derived expressions"),
    "expression-20001-chars": expr("+".join(["x"] * 10001), 7, "expression longer than 20000 "
                                   "characters in '" + "x+" * 28 + "x...'",
                                   "split it into named derived expressions"),
    "division-by-zero": expr("x / (y - y)", 7, "division by zero in 'x / (y - y)'",
                             "the divisor is always 0"),
    # Math functions of constants are folded as doubles where they are written.
    "log-of-zero": expr("log(0) * x", 7, "a constant in the expression is beyond the range of "
                        "a double (about 1.8e308) in 'log(0) * x'", "rescale the constants"),
    "complex-in-comparison": expr("where(sqrt(-1) < x, 1, 2)", 13,
                                  "sqrt() of this constant is not a real number in "
                                  "'where(sqrt(-1) < x, 1, 2)'",
                                  "the kernels compute with finite real numbers only"),
    "complex-in-max": expr("max(x, sqrt(-1))", 14, "sqrt() of this constant is not a real "
                           "number in 'max(x, sqrt(-1))'",
                           "the kernels compute with finite real numbers only"),
    # -- issue 12: one-line specs that made SymPy work without bound --------------------------
    # sign of a huge constant: evaluated to ever more digits (> 120 s, killed, before)
    "sign-of-huge-constant": expr("x * abs(sin(exp(exp(20))))", 19, "a constant in the "
                                  "expression is beyond the range of a double (about 1.8e308) "
                                  "in 'x * abs(sin(exp(exp(20))))'", "rescale the constants"),
    "max-of-huge-constant": expr("max(x, sin(exp(exp(13))))", 18, "a constant in the "
                                 "expression is beyond the range of a double (about 1.8e308) "
                                 "in 'max(x, sin(exp(exp(13))))'", "rescale the constants"),
    # an OverflowError traceback from sympy.cse, before
    "erfc-of-huge-constant": expr("erfc(-exp(exp(10))) * x", 13, "a constant in the "
                                  "expression is beyond the range of a double (about 1.8e308) "
                                  "in 'erfc(-exp(exp(10))) * x'", "rescale the constants"),
    # max() is cubic in its arguments: 100 took ~10 s, 40 with a derivative > 120 s, before
    "max-of-100": expr("max(" + ", ".join(f"x*{i}" for i in range(1, 101)) + ")", 7,
                       "max() takes at most 8 arguments (nested max/min calls included), got "
                       "100 in 'max(x*1, x*2, x*3, x*4, x*5, x*6, x*7, x*8, x*9, x*10, x*...'",
                       "compute partial maxima as derived expressions"),
    "max-nested-flattened": expr("max(max(x, y, k, c_0), max(2*x, 2*y, 2*k), max(x, P[1]))",
                                 7, "max() takes at most 8 arguments (nested max/min calls "
                                 "included), got 9 in 'max(max(x, y, k, c_0), max(2*x, 2*y, "
                                 "2*k), max(x, P[1]))'", "compute partial maxima as derived "
                                 "expressions"),
    "long-identifier": spec(edit("  k: {default", "  " + "k" * 200 + ": {default"), "4:3",
                            "the parameter name 'kkkkkkkkkkkkkkkkkkkk...' has 200 characters; "
                            "names are limited to 64", "use a shorter name"),
    "yaml11-octal": spec(edit("  k: {default: 0.5", "  k: {default: 010"), "4:16",
                         "'010' is ambiguous: YAML 1.1 reads it as the octal number 8",
                         'quote it ("010") if it is text, or write the number in plain decimal'),
    "yaml11-base-60": spec(edit("  k: {default: 0.5", "  k: {default: 1:30"), "4:16",
                           "'1:30' is ambiguous: YAML 1.1 reads it as the base-60 number 90",
                           'quote it ("1:30")'),
    "yaml11-on-as-value": spec(edit("description: a small", "description: on\nreferences: a "
                                    "small"), "2:14", "'on' is ambiguous: YAML 1.1 reads it as "
                               "the boolean True", 'quote it ("on") if it is text, or write '
                               "true or false"),
    "zero-to-negative-power": expr("0**-1 * x", 7,
                                   "the power is not a finite real number in '0**-1 * x'",
                                   "constant powers must give a finite real double"),
    "negative-base-cube-root": expr("(-8)**(1/3) * x", 7,
                                    "the power is not a finite real number in '(-8)**(1/3) * x'",
                                    "constant powers must give a finite real double"),
    "index-10**20": expr("P[99999999999999999999]", 7, "index 99999999999999999999 is out of "
                         "range for 'P', which has 3 elements in 'P[99999999999999999999]'",
                         "use an index from 0 to 2"),
    "boolean-index": expr("P[True]", 7, "the index of 'P' must be an integer literal in "
                          "'P[True]'", "write e.g. P[0]"),
    "integer-400-digits-in-yaml": spec(edit("default: 0.5,", "default: 1" + "0" * 400 + ","),
                                       "4:16", "the integer has 401 digits, more than a double "
                                       "can hold", "write the number in floating point, e.g. "
                                       "1.5e20"),
    "integer-5000-digits-in-yaml": spec(edit("default: 0.5,", "default: 1" + "0" * 5000 + ","),
                                        "4:16", "the integer has 5001 digits, more than a "
                                        "double can hold", "write the number in floating "
                                        "point, e.g. 1.5e20"),
    "hex-integer-beyond-double": spec(edit("default: 0.5,", "default: 0x" + "f" * 300 + ","),
                                      "4:16", "default of parameter 'k' must be finite, got an "
                                      "integer beyond 1.8e308", "use a finite number"),
    "nan-in-range": spec(edit("  x: {range: [-1.0, 1.0]}", "  x: {range: [.nan, 1.0]}"),
                         "7:15", "range of 'x' must be finite, got nan", "use a finite number"),
    "vector-of-1000": spec(edit("[1.0, 2.0, 3.0]", "[" + ", ".join(["1.0"] * 1000) + "]"),
                            "5:16", "vector parameter 'P' must have 1 to 256 elements",
                            "split it, or use fewer elements"),
    "vector-argument-of-100000": spec(edit("args: [u, v]", 'args: [u, "v[100000]"]'), "13:16",
                                      "vector argument 'v' of function 'F' has size 100000; "
                                      "sizes must be 1..256", "declare a smaller vector"),
    "vector-size-5000-digits": spec(edit("args: [u, v]", 'args: [u, "v[' + "1" * 5000 + ']"]'),
                                    "13:16", "argument 'v[" + "1" * 57 + "... of function 'F' "
                                    "is not a name",
                                    "write a name, or name[size] for a vector argument"),
    "inlining-bomb": spec(_function_bomb(30), "17:21", "the model grows beyond 10000 statements "
                          "(here, at 'f0__3336')", "a model needs a few thousand at most; "
                          "compute shared values once and pass them as arguments"),
    # -- C injection through any text that could reach the generated source --------------------
    "comment-escape-in-model-name": spec(edit("name: target", f"name: '{INJECT}'"), "1:8",
                                         f"'{INJECT}' is not a valid model name", NOT_A_NAME),
    "include-as-parameter-name": spec(edit("  k: {default", '  "#include <stdlib.h>": {default'),
                                      "4:3", "'#include <stdlib.h>' is not a valid parameter "
                                      "name", NOT_A_NAME),
    "newline-in-state-name": spec(edit("  y: {range", '  "y\\nint main": {range'), "8:3",
                                  "'y\\nint main' is not a valid state variable name",
                                  NOT_A_NAME),
    "backslash-in-function-name": spec(edit("  F:\n", '  "F\\\\":\n'), "12:3",
                                       "'F\\' is not a valid function name", NOT_A_NAME),
    "trigraph-in-coupling-name": spec(edit("  c_0: x", '  "c??/": x'), "10:3",
                                      "'c??/' is not a valid coupling input name", NOT_A_NAME),
    "injection-as-argument": spec(
        edit("args: [u, v]", 'args: [u, "v); system(\\"touch SENTINEL\\"); double w("]'),
        "13:16", "argument 'v); system(\"touch SENTINEL\"); double w(' of function 'F' is not "
        "a name", "write a name, or name[size] for a vector argument"),
    "injection-after-vector-size": spec(edit("args: [u, v]", 'args: [u, "v[3]; system()"]'),
                                        "13:16", "argument 'v[3]; system()' of function 'F' is "
                                        "not a name",
                                        "write a name, or name[size] for a vector argument"),
    "injection-as-coupling-target": spec(edit("  c_0: x", f"  c_0: '{INJECT}'"), "10:9",
                                         f"coupling input 'c_0' couples unknown state variable "
                                         f"'{INJECT}'", "state variables: x, y"),
    "injection-as-derived-name": spec(
        edit("derivatives:", "derived:\n  'a = system(\"id\"); double b': 1\nderivatives:"),
        "16:3", "'a = system(\"id\"); double b' is not a valid derived expression name",
        NOT_A_NAME),
    "shell-in-extends": spec(edit("name: target", "name: target\nextends: '$(touch SENTINEL)'"),
                             "2:11", "no spec file or bundled spec named '$(touch SENTINEL)'",
                             "bundled specs: generic_2d_oscillator"),
    # -- names that shadow C, the preprocessor, Python or the language ------------------------
    "shadow-exp": spec(edit("  k: {default", "  exp: {default"), "4:3", "'exp' is a built-in "
                       "of the expression language and cannot be declared as a parameter",
                       CHOOSE),
    "shadow-erfc": spec(edit("  y: {range", "  erfc: {range"), "8:3", "'erfc' is a built-in of "
                        "the expression language and cannot be declared as a state variable",
                        CHOOSE),
    # C keywords, libc and header macros (int, main, fmax, NAN, Py_None, ...) are accepted:
    # generated C mangles every spec name (tests/test_tvb_zoo.py compiles them).
    "shadow-local_coupling": spec(edit("  k: {default", "  local_coupling: {default"), "4:3",
                                  "'local_coupling' is a built-in of the expression language "
                                  "and cannot be declared as a parameter", CHOOSE),
    "shadow-generated-name": spec(edit("  k: {default", "  _state: {default"), "4:3",
                                  "'_state' is not a valid parameter name", NOT_A_NAME),
    "shadow-numpy": spec(edit("  k: {default", "  numpy: {default"), "4:3", "'numpy' is a module "
                         "the NumPy reference imports and cannot be a parameter name", CHOOSE),
    "shadow-lambda": spec(edit("  k: {default", "  lambda: {default"), "4:3", "'lambda' is a "
                          "Python keyword and cannot be a parameter name", CHOOSE),
    "shadow-where": spec(edit("  F:\n", "  where:\n"), "12:3", "'where' is a built-in of the "
                         "expression language and cannot be declared as a function", CHOOSE),
    # -- unicode tricks -----------------------------------------------------------------------
    "homoglyph-parameter": spec(edit("  k: {default", "  \u043a: {default"), "4:3",
                                "'\\u043a' is not a valid parameter name", NOT_A_NAME),
    "homoglyph-in-expression": expr("\u0445 * k", 7, "expression contains the non-ASCII or "
                                    "control character '\u0445' (U+0445)", ASCII_ONLY),
    "bidi-override-in-name": spec(edit("  k: {default", '  "k\u202e": {default'), "4:3",
                                  "'k\\u202e' is not a valid parameter name", NOT_A_NAME),
    "bidi-override-in-expression": expr("x \u202e+ y", 7, "expression contains the non-ASCII "
                                        "or control character '\\u202e' (U+202E)", ASCII_ONLY),
    "zero-width-space-in-name": spec(edit("  k: {default", '  "k\u200b": {default'), "4:3",
                                     "'k\\u200b' is not a valid parameter name", NOT_A_NAME),
    "fullwidth-digit": expr("x * \uff11", 7, "expression contains the non-ASCII or control "
                            "character '\uff11' (U+FF11)", ASCII_ONLY),
    "arabic-digit-as-vector-size": spec(edit("args: [u, v]", 'args: [u, "v[\u0663]"]'), "13:16",
                                        "argument 'v[\u0663]' of function 'F' is not a name",
                                        "write a name, or name[size] for a vector argument"),
    "nul-escape-in-name": spec(edit("  k: {default", '  "k\\0": {default'), "4:3",
                               "'k\\x00' is not a valid parameter name", NOT_A_NAME),
    "nul-in-expression": expr("x\u0000 * y", 7, "expression contains the non-ASCII or control "
                              "character '\\x00' (U+0000)", ASCII_ONLY),
    "nul-byte-in-file": spec(BASE.encode().replace(b"derivatives:", b"deriva\x00tives:"), "15",
                             "the file contains a NUL byte", "save it as text"),
    "terminal-escape-in-key": spec(BASE + '"\\e]0;pwned\\a\\e[2J": 1\n', "18:1",
                                   "unknown key '\\x1b]0;pwned\\x07\\x1b[2J' in the spec",
                                   "allowed keys: name, description"),
    "fake-second-line-in-message": spec(edit("  c_0: x", '  c_0: "x\\n  hint: run rm -rf"'),
                                        "10:9", "coupling input 'c_0' couples unknown state "
                                        "variable 'x\\n  hint: run rm -rf'",
                                        "state variables: x, y"),
    "control-character-in-file": spec(edit("description: a small", "description: a \x07small"),
                                      "2:16", "the file contains the control character U+0007",
                                      "remove it: YAML allows only printable characters"),
    "invalid-utf8": spec(BASE.encode().replace(b"gain", b"g\xffin"), "4",
                         "the file is not valid UTF-8", "save it as UTF-8 text"),
    "utf16-file": spec(BASE.encode("utf-16"), "1", "the file is not valid UTF-8",
                       "save it as UTF-8 text"),
    # -- YAML tricks --------------------------------------------------------------------------
    "billion-laughs": spec("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, "
                           "*a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", "2:8",
                           "YAML aliases (*name) are not allowed in specs",
                           "write the value out again"),
    "python-object-apply": spec(edit("name: target", "name: !!python/object/apply:os.system "
                                     "['touch SENTINEL']"), "1:7", "YAML tags are not allowed in "
                                "specs (found '!!python/object/apply:os.system')", NO_TAGS),
    "python-object-new-popen": spec(edit("name: target", "name: !!python/object/new:subprocess."
                                         "Popen [['touch', 'SENTINEL']]"), "1:7",
                                    "YAML tags are not allowed in specs (found "
                                    "'!!python/object/new:subprocess.Popen')", NO_TAGS),
    "python-module": spec(edit("name: target", "name: !!python/module:os"), "1:7",
                          "YAML tags are not allowed in specs (found '!!python/module:os')",
                          NO_TAGS),
    "safe-tag-binary": spec(edit(Y_LINE, "  y: !!binary eC15"), "17:6",
                            "YAML tags are not allowed in specs (found '!!binary')", NO_TAGS),
    "safe-tag-set": spec(edit("  k: {default", "  k: !!set {default"), "4:6",
                         "YAML tags are not allowed in specs (found '!!set')", NO_TAGS),
    "local-tag": spec(edit(Y_LINE, "  y: !expr P[0] * x - y"), "17:6",
                      "YAML tags are not allowed in specs (found '!expr')", NO_TAGS),
    "duplicate-key-shadowing-name": spec(BASE + "name: other\n", "18:1",
                                         "duplicate key 'name' (first defined at line 1)",
                                         "remove one of the two"),
    "duplicate-return": spec(edit("    return: u * v + k", "    return: u * v + k\n    "
                                  "return: __import__"), "15:5",
                             "duplicate key 'return' (first defined at line 14)",
                             "remove one of the two"),
    "nesting-40-levels": spec(edit("description: a small valid model that every hostile case "
                                   "edits", "description: " + "[" * 40 + "]" * 40), "2:45",
                              "the document is nested more than 32 levels deep",
                              "a model spec needs at most a handful of levels"),
    "nesting-3000-levels": spec("a: " + "[" * 3000 + "]" * 3000 + "\n", "",
                                 "the document is nested too deeply", "flatten the structure"),
    "top-level-list": spec("- name: target\n", "1", "a spec must be a mapping of sections "
                           "(name:, parameters:, ...)", "see the spec language reference"),
    "comments-only": spec("# nothing to see\n", "", "the file is empty",
                          "write a model spec into it"),
    "file-of-50-MB": spec(big_file(50_000_000), "", "the file is 50000000 bytes; specs are "
                          "limited to 1000000", TOO_BIG),
    "file-of-1-MB-and-1-byte": spec(big_file(1_000_001), "", "the file is 1000001 bytes; specs "
                                    "are limited to 1000000", TOO_BIG),
    # -- extends: reading other files -----------------------------------------------------------
    "extends-etc-passwd": spec(edit("name: target", "name: target\nextends: /etc/passwd"),
                               "2:10", "'extends' may name bundled specs and spec files in "
                               "{dir} or its subfolders; '/etc/passwd' is not one of them",
                               "copy the parent spec next to the spec you load"),
    "extends-proc-environ": spec(edit("name: target", "name: target\nextends: "
                                      "/proc/self/environ"), "2:10",
                                 "'extends' may name bundled specs and spec files in {dir} or "
                                 "its subfolders; '/proc/self/environ' is not one of them",
                                 "copy the parent spec next to the spec you load"),
    "extends-dot-dot": Case({"model.yaml": edit("name: target", "name: target\nextends: "
                                                "../{name}-up.yaml")}, "2:10",
                            "'extends' may name bundled specs and spec files in {dir} or its "
                            "subfolders; '../{name}-up.yaml' is not one of them",
                            "copy the parent spec next to the spec you load",
                            make=_outside_file("up.yaml")),
    # A link to a file that does not exist gets the same answer as a link out of the folder.
    "extends-dangling-symlink": Case({"model.yaml": edit("name: target", "name: target\nextends: "
                                                         "dangling")}, "2:10",
                                     "'extends' may name bundled specs and spec files in {dir} "
                                     "or its subfolders; 'dangling' is not one of them",
                                     "copy the parent spec next to the spec you load",
                                     make=lambda folder: (folder / "dangling.yaml").symlink_to(
                                         "/nonexistent/secret.yaml")),
    # A file outside that does not exist gets the same answer: no probing through messages.
    "extends-dot-dot-missing": spec(edit("name: target", "name: target\nextends: "
                                         "../{name}-nothing.yaml"), "2:10",
                                    "'extends' may name bundled specs and spec files in {dir} "
                                    "or its subfolders; '../{name}-nothing.yaml' is not one of "
                                    "them", "copy the parent spec next to the spec you load"),
    "extends-absolute-missing": spec(edit("name: target", "name: target\nextends: "
                                          "/nonexistent/x.yaml"), "2:10",
                                     "'extends' may name bundled specs and spec files in {dir} "
                                     "or its subfolders; '/nonexistent/x.yaml' is not one of "
                                     "them", "copy the parent spec next to the spec you load"),
    # Parents are read as regular files within the size limit: no hang, no MemoryError.
    "extends-a-fifo": Case({"model.yaml": edit("name: target", "name: target\nextends: pipe")},
                           "", "the spec is not a regular file", "name a .yaml file",
                           make=lambda folder: os.mkfifo(folder / "pipe.yaml"),
                           in_file="pipe.yaml"),
    "extends-dev-zero": Case({"model.yaml": edit("name: target", "name: target\nextends: zero")},
                             "2:10", "'extends' may name bundled specs and spec files in {dir} "
                             "or its subfolders; 'zero' is not one of them",
                             "copy the parent spec next to the spec you load",
                             make=lambda folder: (folder / "zero.yaml").symlink_to("/dev/zero")),
    "extends-sparse-3-GB": Case({"model.yaml": edit("name: target", "name: target\nextends: "
                                                    "big")}, "",
                                "the file is 3000000000 bytes; specs are limited to 1000000",
                                TOO_BIG, make=lambda folder: os.truncate(
                                    _touch(folder / "big.yaml"), 3_000_000_000),
                                in_file="big.yaml"),
    # A parent whose file name holds a terminal escape: shown escaped, not sent raw.
    "parent-name-with-escape": Case({"model.yaml": edit("name: target", "name: target\n"
                                                        "extends: \"p\\e[2J\""),
                                     "p\x1b[2J.yaml": "parameters:\n  k: {default: 010}\n"},
                                    "2:16", "'010' is ambiguous: YAML 1.1 reads it as the octal "
                                    "number 8", 'quote it ("010")', in_file="p\x1b[2J.yaml"),
    # extends: sub/x.yaml is found in the spec's folder, not in the current directory.
    "extends-subfolder-relative-to-the-spec": Case(
        {"model.yaml": edit("name: target", "name: target\nextends: sub/x.yaml"),
         "sub/x.yaml": "parameters:\n  k: {default: 1:30}\n"}, "2:16",
        "'1:30' is ambiguous: YAML 1.1 reads it as the base-60 number 90", 'quote it ("1:30")',
        in_file="sub/x.yaml"),
    "extends-symlink-out": Case({"model.yaml": edit("name: target", "name: target\nextends: "
                                                    "innocent")}, "2:10",
                                "'extends' may name bundled specs and spec files in {dir} or "
                                "its subfolders; 'innocent' is not one of them",
                                "copy the parent spec next to the spec you load",
                                make=_symlink_out),
    "extends-17-parents": spec(edit("name: target", "name: target\nextends: ["
                                    + ", ".join(["target"] * 17) + "]"), "2:1",
                               "'extends' names 17 specs; at most 16 are allowed",
                               "merge some of the parent specs"),
    "extends-65-files": Case({"model.yaml": edit("name: target", "name: target\nextends: ["
                                                 + ", ".join(f"p{i}" for i in range(16)) + "]"),
                              **{f"p{i}.yaml": "extends: [" + ", ".join(
                                  f"q{i}_{j}" for j in range(5)) + "]\n" for i in range(16)},
                              **{f"q{i}_{j}.yaml": "description: leaf\n"
                                 for i in range(16) for j in range(5)}},
                             "", "the model is assembled from more than 64 spec files",
                             "merge some of the parent specs", in_file="q10_4.yaml"),
    "extends-9-deep": Case({"model.yaml": edit("name: target", "name: target\nextends: d0"),
                            **{f"d{i}.yaml": f"extends: d{i + 1}\n" for i in range(9)},
                            "d9.yaml": "description: bottom\n"}, "",
                           "'extends' chain is too deep", "at most 8 levels of specs extending "
                           "specs", in_file="d7.yaml"),
    # -- harmless inputs that must be accepted and carried safely ------------------------------
    "diamond-16-wide-7-deep": Case(_chain(7, 16), message=ACCEPTED),
    "dates-stay-text": spec(edit("description: a small valid model that every hostile case "
                                 "edits", "description: 2001-13-45"), message=ACCEPTED),
    "anchor-without-alias": spec(edit("name: target", "name: &n target"), message=ACCEPTED),
    "windows-line-endings": spec(BASE.replace("\n", "\r\n"), message=ACCEPTED),
    "byte-order-mark": spec("\ufeff" + BASE, message=ACCEPTED),
    "tab-inside-expression": spec(edit(Y_LINE, '  y: "P[0]\\t* x - y"'), message=ACCEPTED),

}

# Names that mean something to SymPy, to the generated C (template macros and functions, the
# simulation loop's locals, libm functions mfgen never calls) or to Python: legal spec names,
# which must come out as plain variables.
SPECIAL_NAMES = ["E", "I", "S", "N", "Q", "O", "oo", "zoo", "Symbol", "Function", "Integer",
                 "sympify", "lambdify", "gamma", "beta", "STATE", "DERIV", "COUPLING",
                 "NODE_PARAM", "N_STATE", "N_CVAR", "LOWER", "UPPER", "CVAR_STATE", "mf_sim",
                 "mf_rhs", "mf_clamp", "mf_philox", "dfun_uniform", "dfun_per_node", "dfun",
                 "simulate_euler", "sim", "ffi", "lib", "print", "open", "exec", "eval", "len",
                 "range", "x_j", "gx", "horizon", "exp10", "sincos", "drem", "significand",
                 "u1", "two_pi"]
TEXT_PAYLOAD = (INJECT + ' #include "/etc/passwd" ??/ trailing backslash \\ """ \'\'\' '
                "{{ 7*7 }} {% include 'x' %} %s%n \u202e bidi \x1b[2J")
HARMLESS = f"""\
name: harmless
description: {json.dumps(TEXT_PAYLOAD)}
references: [{json.dumps(INJECT)}, "#define exp(x) system(x)", "line\\nbreak ??/"]
parameters:
  k: {{default: 0.5, unit: {json.dumps(INJECT)}, description: {json.dumps(TEXT_PAYLOAD)}}}
""" + "".join(f"  {name}: {{default: {(i % 7 + 1) / 8}}}\n"
              for i, name in enumerate(SPECIAL_NAMES)) + f"""\
state_variables:
  x: {{range: [-1.0, 1.0], unit: "\\\\", description: {json.dumps(TEXT_PAYLOAD)}}}
  y: {{range: [-1.0, 1.0]}}
coupling:
  c_0: x
functions:
  F:
    description: {json.dumps(TEXT_PAYLOAD)}
    args: [u, v]
    return: u * v + k
derived:
  rounded: 9007199254740993
  huge: 1e200
derivatives:
  x: -k * x + F(x, y) + c_0 + {" + ".join(SPECIAL_NAMES)}
  y: where(huge * huge > 1e300, 1, 0) + rounded * 1e-16 - y
"""
HARMLESS_STATE = [[0.25, -0.5, 1.0], [0.5, 0.125, -1.0]]
HARMLESS_COUPLING = [[0.0, 1.0, -2.0]]


def harmless_expected() -> np.ndarray:
    x, y = np.array(HARMLESS_STATE)
    c_0 = np.array(HARMLESS_COUPLING)[0]
    special = sum((i % 7 + 1) / 8 for i in range(len(SPECIAL_NAMES)))
    return np.array([-0.5 * x + (x * y + 0.5) + c_0 + special,
                     1 + 9007199254740992 * 1e-16 - y])


CASES["harmless-text-names-and-constants"] = Case(
    {"model.yaml": HARMLESS}, message=ACCEPTED, compile=True,
    checks={"state": HARMLESS_STATE, "coupling": HARMLESS_COUPLING})


# -- running the corpus -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Write every case into its own folder and run them all in one audited subprocess."""
    root = tmp_path_factory.mktemp("hostile")
    work = root / "work"  # the subprocess's working directory: `touch SENTINEL` lands here
    work.mkdir()
    cache = root / "cache"
    cases = []
    for name, case in CASES.items():
        folder = root / "specs" / name
        folder.mkdir(parents=True)
        for relative, content in case.files.items():
            target = folder / relative.format(name=name)
            target.parent.mkdir(parents=True, exist_ok=True)
            content = content.replace("{name}", name) if isinstance(content, str) else content
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        if case.make:
            case.make(folder)
        cases.append({"id": name, "path": str(folder / "model.yaml"), "compile": case.compile,
                      **case.checks})
    (root / "cases.json").write_text(json.dumps(cases))
    (root / "tmp").mkdir()
    before = sorted(str(p) for p in root.rglob("*"))
    # -O0: the harmless spec compiles in 1 s instead of 11; the escaping is what is tested here.
    env = dict(os.environ, MFGEN_CACHE_DIR=str(cache), HOME=str(work), MFGEN_CFLAGS="-O0",
               TMPDIR=str(root / "tmp"), PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, str(HERE / "hostile_runner.py"),
                          str(root / "cases.json"), str(root / "results.json")],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-5000:]
    report = json.loads((root / "results.json").read_text())
    report.update(root=root, work=work, cache=cache, before=before, stderr=run.stderr,
                  seconds=time.perf_counter() - start)
    return report


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert sum(not c.accepted for c in CASES.values()) >= 40


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.accepted])
def test_hostile_spec_ends_in_its_spec_error(corpus, name):
    case = CASES[name]
    outcome = corpus["results"][name]
    assert outcome["status"] == "SpecError", outcome.get("traceback") or outcome
    folder = corpus["root"] / "specs" / name
    in_file = (folder / case.in_file).resolve()
    expected_location = f"{in_file}:{case.where}" if case.where else str(in_file)
    assert outcome["location"] == expected_location, outcome["text"]
    message = case.message.replace("{dir}", str(folder.resolve())).replace("{name}", name)
    if message.endswith(" is "):  # the resolved path after it depends on the machine
        assert outcome["message"].startswith(message), outcome["text"]
    else:
        assert outcome["message"] == message, outcome["text"]
    assert case.hint and outcome["hint"].startswith(case.hint), outcome["text"]
    # One line of message, one of hint: nothing from the spec can forge more lines.
    assert outcome["text"].count("\n") == 1, outcome["text"]
    assert outcome["text"].isprintable() or outcome["text"].replace("\n", "").isprintable()


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.accepted])
def test_harmless_spec_is_accepted(corpus, name):
    outcome = corpus["results"][name]
    assert outcome["status"] == "accepted", outcome.get("text")
    assert outcome["seconds"] < (120 if CASES[name].compile else 10)


def test_harmless_text_and_names_compile_to_the_right_values(corpus):
    outcome = corpus["results"]["harmless-text-names-and-constants"]
    expected = harmless_expected()
    np.testing.assert_allclose(outcome["values"], expected, rtol=1e-14)
    np.testing.assert_allclose(outcome["per_node"], expected, rtol=1e-14)
    np.testing.assert_allclose(outcome["reference"], expected, rtol=1e-14)
    module_dir = Path(outcome["module_dir"])
    for generated in ("kernel.c", "reference.py"):
        text = (module_dir / generated).read_text()
        for fragment in ("system(", "SENTINEL", "/etc/passwd", "#define exp", "??/", "{{",
                         "{%", "\u202e", "\x1b", "rounded = 9007199254740993"):
            assert fragment not in text, (generated, fragment)
    # 9007199254740993 became the double it rounds to; huge * huge (inf) folded away
    kernel = (module_dir / "kernel.c").read_text()
    statements = [line for line in kernel.splitlines() if " = " in line and "//" not in line
                  and not line.lstrip().startswith(("*", "/*"))]
    assert "1.9007199254740992 - v__y" in kernel  # spec names are mangled in C
    assert not [line for line in statements if re.search(r"\binf\b", line)]


def _inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root + os.sep)


def _trusted_code(filename: str, markers: list[str], cache: str) -> bool:
    """Code run by the corpus comes from a file of Python, its packages, mfgen or the cache
    (imports, Jinja templates, the generated reference), or is generated by Python itself
    (dataclasses, namedtuples: '<string>') and then uses nothing a payload would."""
    if filename.startswith("<"):
        return filename.startswith("<frozen ") or not markers
    roots = {sys.prefix, sys.base_prefix, str(Path(mfgen.__file__).resolve().parents[1]), cache}
    return os.path.isfile(filename) and any(_inside(filename, root) for root in roots)


def test_the_corpus_runs_nothing_and_writes_only_the_cache(corpus):
    cache = str(corpus["cache"].resolve())
    compiler = os.path.basename(corpus["compiler"].split()[0])
    problems = []
    for event in corpus["events"]:
        kind = event[0]
        if kind == "write" and not _inside(event[1], cache):
            problems.append(event)
        elif kind == "move" and not all(_inside(p, cache) for p in event[1:]):
            problems.append(event)
        elif kind == "touch" and event[2] is not None and not _inside(event[2], cache):
            problems.append(event)
        elif kind == "process" and os.path.basename(event[1]) != compiler:
            problems.append(event)
        elif kind == "exec" and not _trusted_code(event[1], event[2], cache):
            problems.append(event)  # code from outside Python, mfgen and the cache ran
        elif kind == "dlopen" and not (event[1] and _inside(event[1], cache)):
            problems.append(event)  # a library loaded from anywhere but the cache
        elif kind == "forbidden":
            problems.append(event)
    assert not problems, problems
    # The one compiled spec is built in one forked child (the build budget), nothing else forks.
    assert [e for e in corpus["events"] if e[0] == "fork"] == [["fork"]]
    compiles = [e for e in corpus["events"] if e[0] == "process"
                and any(a.endswith(".c") for a in e[2])]
    # besides it, at most mfgen's own dfun shim (templates/dfun_call.c, once per toolchain)
    models = [e for e in compiles if not any("_mfgen_dfun_call_" in a for a in e[2])]
    assert len(models) == 1, "exactly the one harmless spec is compiled"
    assert len(compiles) - len(models) <= 1
    # Nothing appeared anywhere but in the cache (the subprocess's results file aside).
    after = sorted(str(p) for p in corpus["root"].rglob("*")
                   if not str(p).startswith(str(corpus["cache"]))
                   and p.name != "results.json")
    assert after == corpus["before"]
    assert not list(corpus["root"].rglob("SENTINEL"))
    assert not (Path.cwd() / "SENTINEL").exists()


def test_a_50_MB_spec_is_refused_before_it_is_read(corpus):
    assert corpus["results"]["file-of-50-MB"]["seconds"] < 0.5


def test_no_case_is_slow(corpus):
    slow = {n: round(r["seconds"], 1) for n, r in corpus["results"].items()
            if r["seconds"] > 8 and not CASES[n].compile}
    assert not slow


def test_the_statement_limit_stops_the_inlining_bomb_early(write_spec, monkeypatch):
    from mfgen.codegen import ir
    from mfgen.codegen.spec import load_spec
    from mfgen.errors import SpecError

    monkeypatch.setattr(ir, "MAX_PROGRAM_STATEMENTS", 300)
    path = write_spec(_function_bomb(60))
    start = time.perf_counter()
    with pytest.raises(SpecError, match="grows beyond 300 statements"):
        ir.build_ir(load_spec(path))
    assert time.perf_counter() - start < 5


def test_the_command_line_shows_spec_text_escaped(corpus):
    """`mfgen show` prints a spec's description: terminal escapes must not reach the terminal."""
    path = corpus["root"] / "specs" / "harmless-text-names-and-constants" / "model.yaml"
    env = dict(os.environ, MFGEN_CACHE_DIR=str(corpus["cache"]), MFGEN_CFLAGS="-O0")
    run = subprocess.run([sys.executable, "-m", "mfgen.cli", "show", str(path)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert "harmless: */ system" in run.stdout
    assert "\x1b" not in run.stdout and "\u202e" not in run.stdout
    assert "\\x1b[2J" in run.stdout and "\\u202e" in run.stdout
