"""Hypothesis strategies and runner for tests/test_fuzz.py (the grammar of the fuzzed
expressions, the mutations of the fuzzed spec). A module of its own, imported by the fuzz tests
when they run: Hypothesis takes ~1 s to import, which every pytest-xdist worker would otherwise
pay while collecting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st


def fuzz(check: Callable[[Any], None], strategy: st.SearchStrategy, examples: int,
         fuzz_seed: int | None) -> None:
    """Run check(example) on `examples` examples drawn from strategy (shrinking a failure
    to a minimal falsifying example, which Hypothesis prints); repeatable with fuzz_seed."""
    test = settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))(given(strategy)(check))
    (seed(fuzz_seed)(test) if fuzz_seed else test)()


# -- expression strategy ----------------------------------------------------------------------
NUMBERS = st.one_of(
    st.integers(-5, 5).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.sampled_from(["1e308", "1e309", "1e-320", "0.0", "1e-300", "4503599627370497",
                     "9007199254740993", "0.5", "2.5", "1e200", "1" * 400]),
)
LEAVES = st.one_of(
    st.sampled_from(["x", "y", "z", "k", "pi", "P[0]", "P[1]", "P[2]", "(x + 0.5)",
                     "(y - 0.25)", "local", "P", "P[3]", "P[-1]", "nan", "inf", "e"]),
    NUMBERS,
)
UNARY = ["exp", "log", "sqrt", "erf", "erfc", "tanh", "sin", "cos", "abs"]
BAD = ["x.real", "lambda: x", "[x]", "{x}", "(x, y)", "'s'", "f'{x}'", "x if y else z",
       "(q := x)", "__import__('os')", "x // y", "x % y", "x @ y", "~x", "x << 1", "*P",
       "F(x=1, v=2)", "Symbol('x')", "eval('x')", "where(x, 1, 2)", "max(x)", "exp(x, y)",
       "diff(F, w)(x, y)", "diff(F, u, v, u)(x, y)", "diff(G, u)(x, y)", "F(P, x)", "G(x)",
       "x ** 100", "10 ** 10 ** 10", "P[0:1]", "None", "True", "...", "1j"]


def _combine(children):
    """One grammar step over already generated sub-expressions."""
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    small_power = st.tuples(children, st.integers(-9, 9)).map(lambda t: f"({t[0]})**{t[1]}")
    unary = st.tuples(st.sampled_from(UNARY), children).map(lambda t: f"{t[0]}({t[1]})")
    minus = children.map(lambda c: f"-({c})")
    extreme = st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=2,
                                                                  max_size=4)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})")
    comparison = st.tuples(children, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
                           children).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    condition = st.one_of(
        comparison,
        st.tuples(comparison, st.sampled_from(["and", "or"]), comparison).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        comparison.map(lambda c: f"not ({c})"),
        st.tuples(children, children, children).map(lambda t: f"{t[0]} < {t[1]} < {t[2]}"))
    where = st.tuples(condition, children, children).map(
        lambda t: f"where({t[0]}, {t[1]}, {t[2]})")
    call = st.tuples(children, children).map(lambda t: f"F({t[0]}, {t[1]})")
    derivative = st.tuples(st.sampled_from(["u", "v", "u, u", "u, v", "v, v"]), children,
                           children).map(lambda t: f"diff(F, {t[0]})({t[1]}, {t[2]})")
    return st.one_of(binary, small_power, unary, minus, extreme, where, call, derivative)


EXPRESSIONS = st.recursive(LEAVES, _combine, max_leaves=12)
JUNK = st.one_of(
    st.text(alphabet=st.sampled_from(list("xyzkP()[]+-*/<>=!,. 0123456789e_'\"\\:;")),
            max_size=40),
    st.text(max_size=20),  # any unicode, control characters included
    st.lists(st.sampled_from(["x", "(", ")", "+", "**", "exp", "where", ",", "P", "[", "]", "1",
                              "1e999", "diff", "F", "and", "not", "<", " "]),
             max_size=25).map("".join),
)
INPUT = st.one_of(
    EXPRESSIONS, EXPRESSIONS, EXPRESSIONS,
    st.tuples(EXPRESSIONS, st.sampled_from(BAD)).map(lambda t: f"{t[0]} + {t[1]}"),
    st.sampled_from(BAD), JUNK,
    st.integers(-(2**80), 2**80), st.floats(), st.none(), st.booleans(),
)


# -- spec mutations: (kind, where in the text, what) ------------------------------------------
TOKENS = ["&a ", "*a", "<<: *a", "!!python/object/apply:os.system ['x']", "!!binary", "{",
          "}", "[", "]", ": ", "- ", "'", '"', "\t", "\x00", "\x1b", "\u202e", "\u0445", "#",
          "---", "...", "%YAML 1.1", "? ", "|", ">", "1e999", ".nan", "-.inf", "1" * 400,
          "0x" + "f" * 300, "null", "~", "yes", "2001-13-45", "extends: generic_2d_oscillator",
          "extends: /etc/passwd", "extends: [fuzzed]", "__import__('os')", "exp", "NAN", "int",
          "diff(F, u, u)(x, P)", "F(x)", "P[7]", "x ** 100", "\\", "\n", "\n  ", "  ", "where(",
          "state_variables:", "derivatives:", "functions:", "parameters:", "range: [1, 0]",
          "default: [" + ", ".join(["1.0"] * 300) + "]"]
MUTATION = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(TOKENS)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.text(max_size=8)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 30)),
    st.tuples(st.just("replace-line"), st.floats(0, 1), st.sampled_from(TOKENS)),
    st.tuples(st.just("duplicate-line"), st.floats(0, 1), st.just("")),
    st.tuples(st.just("swap-lines"), st.floats(0, 1), st.floats(0, 1)),
)
MUTATIONS = st.lists(MUTATION, min_size=1, max_size=4)
