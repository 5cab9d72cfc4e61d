"""Fuzzing the expression parser and the spec loader with Hypothesis.

* Expressions: generated from the expression grammar (valid constructs mixed with refused
  ones, extreme numbers, junk text). The only exception that may escape the parser is
  SpecError, and no printed constant is a bare inf or nan. At the end the accepted expressions
  become the derivatives of models (200 per model) built by the whole pipeline with the
  production compiler and flags, evaluated at random points with shared and per-node
  parameters: the C value must equal the NumPy reference value.
* Specs: mutations of a valid spec text (characters, tokens, lines, YAML syntax, numbers,
  unicode). Loading and building the IR either works or raises SpecError.

`make test` runs a short fuzz (1 500 expressions, 200 of the accepted ones compiled, 200
specs); `make fuzz` sets MFGEN_FUZZ=1 for a long run (20 000 expressions, 3 000 compiled,
3 000 specs). The short run draws the same examples every time (seed SHORT_RUN_SEED, so
`make test` cannot pass on one machine and fail on the next); the long run draws new ones
unless MFGEN_FUZZ_SEED=<n> makes it repeatable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import sympy

from mfgen.codegen.expressions import VectorRef, parse_expression
from mfgen.codegen.printing import c_expression, numpy_expression
from mfgen.errors import Location, SpecError

LONG = os.environ.get("MFGEN_FUZZ") == "1"
EXPRESSION_EXAMPLES = 20_000 if LONG else 1_500
SPEC_EXAMPLES = 3_000 if LONG else 200
MAX_COMPILED = 3_000 if LONG else 200  # accepted expressions compiled at the end
SHORT_RUN_SEED = 20261130
FUZZ_SEED = int(os.environ.get("MFGEN_FUZZ_SEED", "0")) or (None if LONG else SHORT_RUN_SEED)


# -- a scope like a model's: states x, y, z; parameter k; vector P[3]; function F(u, v) ---------
SYMBOLS = {name: sympy.Symbol(name, real=True) for name in ("x", "y", "z", "k")}
P = VectorRef("P", tuple(sympy.Symbol(f"P__{i}", real=True) for i in range(3)))
U, V = sympy.Symbol("u", real=True), sympy.Symbol("v", real=True)
F_BODY = U * V + SYMBOLS["k"] * sympy.tanh(U)


class Scope:
    def symbol(self, name, where):
        if name in SYMBOLS:
            return SYMBOLS[name]
        if name == "P":
            return P
        raise SpecError(f"undefined symbol '{name}'", where)

    def _bind(self, name, args, where):
        if name != "F" or len(args) != 2 or any(isinstance(a, VectorRef) for a in args):
            raise SpecError(f"cannot call '{name}' with these arguments", where)
        return dict(zip((U, V), args))

    def call(self, name, args, where):
        return F_BODY.xreplace(self._bind(name, args, where))

    def derivative(self, name, wrt, args, where):
        binding = self._bind(name, args, where)
        variables = {"u": U, "v": V}
        if not all(w in variables for w in wrt) or len(wrt) > 2:
            raise SpecError("bad derivative", where)
        return sympy.diff(F_BODY, *[variables[w] for w in wrt]).xreplace(binding)


ACCEPTED: dict[str, tuple[str, str]] = {}  # expression text -> (C, NumPy)
WHERE = Location("fuzz.yaml", 1, 1)


def _check_expression(text) -> None:
    try:
        expr = parse_expression(text, WHERE, Scope())
    except SpecError as exc:
        assert str(exc).startswith("fuzz.yaml:1"), str(exc)
        return
    c_code, numpy_code = c_expression(expr), numpy_expression(expr)
    bare = c_code + " " + re.sub(r"numpy\.(inf|nan)\b", "", numpy_code)
    assert not re.search(r"\b(inf|nan)\b", bare), (c_code, numpy_code)  # INFINITY, numpy.inf
    if len(ACCEPTED) < MAX_COMPILED and isinstance(text, str):
        ACCEPTED[text] = (c_code, numpy_code)


@pytest.fixture(scope="module")
def fuzzed_expressions():
    from fuzz_strategies import INPUT, fuzz

    ACCEPTED.clear()
    fuzz(_check_expression, INPUT, EXPRESSION_EXAMPLES, FUZZ_SEED)
    return dict(ACCEPTED)


def test_the_parser_raises_only_spec_errors(fuzzed_expressions):
    """(Hypothesis runs the examples in the fixture; an escaping exception fails it there.)"""
    assert len(fuzzed_expressions) >= min(100, MAX_COMPILED)


def _pipeline_spec(expressions: list[str]) -> str:
    """A model whose state e<i> has the i-th expression as derivative, in the fuzz scope."""
    lines = ["name: fuzz_pipeline", "parameters:", "  k: {default: 0.5}",
             "  P: {default: [0.5, -0.25, 1.5]}", "state_variables:",
             "  x: {range: [-2, 2]}", "  y: {range: [-2, 2]}", "  z: {range: [-2, 2]}"]
    lines += [f"  e{i}: {{range: [0, 1]}}" for i in range(len(expressions))]
    lines += ["functions:", "  F:", "    args: [u, v]", "    return: u * v + k * tanh(u)",
              "derivatives:", "  x: 0", "  y: 0", "  z: 0"]
    lines += [f"  e{i}: {json.dumps(e)}" for i, e in enumerate(expressions)]
    return "\n".join(lines) + "\n"


def _agree(c: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Where C and NumPy give the same number: equal non-finite values, or finite values
    within 1e-9 of each other (relative, or absolute below 1: libm and SciPy differ in the
    last bits, and cancellation inside an expression can magnify that)."""
    with np.errstate(invalid="ignore"):
        both_nan = np.isnan(c) & np.isnan(ref)
        same_inf = np.isinf(c) & (c == ref)
        finite = np.isfinite(c) & np.isfinite(ref)
        close = finite & (np.abs(c - ref) <= 1e-9 * np.maximum(1.0, np.abs(ref)))
        # Beyond ~1e300 one side may overflow where the other just does not.
        huge = (np.abs(np.where(np.isfinite(ref), ref, 0)) > 1e300) | (
            np.abs(np.where(np.isfinite(c), c, 0)) > 1e300)
    return both_nan | same_inf | close | huge


CHUNK = 200  # expressions per compiled model
_NUMBER = re.compile(r"(?<![\w.])\d+\.?\d*(?:e[+-]?\d+)?")


def _overflows(text: str) -> bool:
    """Whether the expression holds a literal large enough to overflow when multiplied, or a
    sin/cos/tan whose argument can reach 1e15: there one rounding of the argument moves it by
    whole periods, and libm's and NumPy's (SVML) argument reductions then give unrelated
    values (seen: sin(-3.77e81*(y-0.25))), so only the values' finiteness is compared."""
    numbers = [float(m) for m in _NUMBER.findall(text)]
    trigonometric = re.search(r"\b(sin|cos|tan)\(", text) is not None
    return any(n >= 1e150 or (trigonometric and n >= 1e15) for n in numbers)


def _refused_alone(expression: str, folder: Path) -> bool:
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.spec import load_spec

    path = folder / "alone.yaml"
    path.write_text(_pipeline_spec([expression]))
    try:
        build_ir(load_spec(path))
    except SpecError:
        return True
    return False


def test_every_accepted_expression_compiles_and_matches_numpy(fuzzed_expressions, tmp_path):
    """All accepted expressions go through the whole pipeline (IR, CSE, templates, the
    production compiler and flags) as derivatives of one model per chunk; the compiled
    kernel (shared and per-node parameters) must agree with the model's NumPy reference."""
    import mfgen

    texts = list(fuzzed_expressions)
    rng = np.random.default_rng(7)
    n = 48
    mismatches, refused = [], []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        path = tmp_path / f"fuzz_{start}.yaml"
        model = None
        while model is None:
            text = _pipeline_spec(chunk)
            path.write_text(text)
            try:
                model = mfgen.load(path)
            except SpecError as exc:
                # The fuzz scope inlines F by substitution; the model inlines it statement by
                # statement, which checks F's body with constant arguments on its own (e.g.
                # F(1e200, 1e200) * 0 overflows there). mfgen decides what is accepted.
                line = text.splitlines()[exc.location.line - 1] if exc.location else ""
                culprits = [e for e in chunk if line.endswith(json.dumps(e))] or \
                    [e for e in chunk if _refused_alone(e, tmp_path)]  # an error inside F
                assert culprits, f"{exc}\n{line}"
                chunk.remove(culprits[0])
                refused.append(culprits[0])
        state = np.zeros((model.n_states, n))
        state[:3] = rng.uniform(-2, 2, (3, n))
        state[:3, :3] = [[0.0, 1.0, -1.0], [1.0, 0.0, -1.0], [-1.0, 0.5, 0.0]]
        coupling = np.zeros((0, n))
        per_node = {"k": rng.uniform(0, 1, n), "P": rng.uniform(-1, 1, (3, n))}
        for parameters in ({}, per_node):
            with np.errstate(all="ignore"):
                computed = model.dfun(state, coupling, **parameters)
                reference = model.reference.dfun(state, coupling, **parameters)
            for row, text in enumerate(chunk, start=3):
                bad = ~_agree(computed[row], reference[row])
                if _overflows(text):
                    # With literals near 1e308 intermediate values overflow at run time, and
                    # then the kernel, whose optimiser folded 0 * x to 0, and the reference,
                    # which computes 0 * inf = NaN, may differ (SECURITY.md, known gaps).
                    bad &= np.isfinite(computed[row]) & np.isfinite(reference[row])
                if bad.any():
                    i = int(np.argmax(bad))
                    mismatches.append((text, state[:3, i].tolist(), bool(parameters),
                                       computed[row, i], reference[row, i]))
    assert not mismatches, mismatches[:5]
    assert len(refused) <= len(texts) // 20, refused  # the two scopes agree almost always


# -- spec mutations ---------------------------------------------------------------------------
BASE = """\
name: fuzzed
description: a valid spec the fuzzer mutates
parameters:
  k: {default: 0.5, range: [0.0, 1.0], unit: "1"}
  P: {default: [1.0, 2.0, 3.0]}
state_variables:
  x: {range: [-1.0, 1.0], boundaries: [null, 2.0]}
  y: {range: [-1.0, 1.0]}
coupling:
  c_0: x
functions:
  F:
    args: [u, "Q[3]"]
    derived:
      s: Q[0] * u + Q[1]
    return: s * s + Q[2] + k
    derivatives: symbolic
derived:
  drive: F(x, P) + local_coupling * y
derivatives:
  x: -k * x + drive + c_0
  y: diff(F, u)(x, P) - y + where(x > 0, 1, max(y, 0))
"""
def mutate(text: str, mutations) -> str:
    for kind, where, arg in mutations:
        position = int(where * len(text))
        lines = text.split("\n")
        line = min(int(where * len(lines)), len(lines) - 1)
        if kind == "insert":
            text = text[:position] + arg + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + arg:]
        elif kind == "replace-line":
            lines[line] = lines[line][: len(lines[line]) - len(lines[line].lstrip())] + arg
            text = "\n".join(lines)
        elif kind == "duplicate-line":
            lines.insert(line, lines[line])
            text = "\n".join(lines)
        else:
            other = min(int(arg * len(lines)), len(lines) - 1)
            lines[line], lines[other] = lines[other], lines[line]
            text = "\n".join(lines)
    return text


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for the module (Hypothesis reruns a test body many times per fixture)."""
    return tmp_path_factory.mktemp("fuzz-specs")


def test_mutated_specs_load_or_raise_spec_errors(folder):
    from fuzz_strategies import MUTATIONS, fuzz

    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.spec import load_spec

    def check(mutations) -> None:
        path = folder / "fuzzed.yaml"
        text = mutate(BASE, mutations)
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            ir = build_ir(load_spec(path))
        except SpecError as exc:
            assert str(exc).count("\n") <= 1, str(exc)
            return
        assert len(ir.outputs) == len(ir.states)

    fuzz(check, MUTATIONS, SPEC_EXAMPLES, FUZZ_SEED)


def test_the_base_spec_of_the_mutations_is_valid(folder):
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.spec import load_spec

    path = folder / "base.yaml"
    path.write_text(BASE)
    assert [s.name for s in build_ir(load_spec(path)).states] == ["x", "y"]
