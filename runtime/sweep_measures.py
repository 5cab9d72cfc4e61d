"""What a sweep keeps per point: numbers computed from the monitored traces after a transient.

    measures = {"transient": 200.0,            # ms dropped from the start of every trace
                "period": 1.0,                 # ms, the TemporalAverage the measures read
                "mean": ["E"], "std": ["E"],   # mean_E, std_E
                "frequency": ["E"],            # peak_frequency_E (Hz), peak_power_E
                "expressions": {"ratio": "mean(E) / mean(I)"},
                "traces": False}               # True: keep the full traces too

Definitions (traces are (time, region) after the transient):
  mean_X            mean over time and regions
  std_X             standard deviation over time, per region, averaged over regions
  peak_frequency_X  the frequency (Hz) of the largest periodogram value of the region-averaged
                    signal (mean removed), zero frequency excluded
  peak_power_X      that periodogram value (one-sided power spectral density, X^2 / Hz)
Expressions combine the traces (variable names) with + - * / **, numbers, the element-wise
functions abs exp log sqrt tanh, region_mean(x) (average over regions) and the reductions
mean std var min max (over everything); they must reduce to one number. They are parsed into a
syntax tree and walked over a whitelist, never evaluated as Python.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfgen.errors import did_you_mean
from mfgen.runtime.sweep_design import SweepError

ELEMENTWISE = {"abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh}
REDUCTIONS = {"mean": np.mean, "std": np.std, "var": np.var, "min": np.min, "max": np.max}
SHAPING = {"region_mean": lambda x: np.mean(x, axis=-1) if np.ndim(x) == 2 else x}
FUNCTIONS = {**ELEMENTWISE, **REDUCTIONS, **SHAPING}
BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
          ast.Pow: np.power}
MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 40


@dataclass(frozen=True)
class Measures:
    transient: float = 0.0
    period: float = 1.0
    mean: tuple[str, ...] = ()
    std: tuple[str, ...] = ()
    frequency: tuple[str, ...] = ()
    expressions: dict[str, ast.Expression] = field(default_factory=dict)
    expression_text: dict[str, str] = field(default_factory=dict)
    traces: bool = False

    @property
    def variables(self) -> tuple[str, ...]:
        """The state variables the monitor must record, in first-use order."""
        names: list[str] = []
        for group in (self.mean, self.std, self.frequency):
            names += group
        for tree in self.expressions.values():
            names += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                      and n.id not in FUNCTIONS]
        return tuple(dict.fromkeys(names))

    @property
    def names(self) -> list[str]:
        """The measure names, in storage order."""
        out = [f"mean_{v}" for v in self.mean] + [f"std_{v}" for v in self.std]
        for v in self.frequency:
            out += [f"peak_frequency_{v}", f"peak_power_{v}"]
        return out + list(self.expressions)

    def as_config(self) -> dict[str, Any]:
        return {"transient": self.transient, "period": self.period, "mean": list(self.mean),
                "std": list(self.std), "frequency": list(self.frequency),
                "expressions": dict(self.expression_text), "traces": self.traces}


def _variables(key: str, value: Any, states: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SweepError(f"measures.{key}: give a list of state variable names, got {value!r}")
    for name in value:
        if name not in states:
            hint = did_you_mean(name, states)
            raise SweepError(f"measures.{key}: unknown state variable '{name}'"
                             + (f"; {hint}" if hint else f"; states: {', '.join(states)}"))
    return tuple(value)


def parse_expression(name: str, text: Any, states: tuple[str, ...]) -> ast.Expression:
    """Parse and check one measure expression (syntax only; nothing is evaluated)."""
    where = f"measures.expressions.{name}"
    if not isinstance(text, str):
        raise SweepError(f"{where}: an expression must be a string, got {text!r}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise SweepError(f"{where}: expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise SweepError(f"{where}: invalid expression at column {exc.offset or 0}: "
                         f"{exc.msg}") from None

    def check(node: ast.AST, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise SweepError(f"{where}: expression nested too deeply")
        if isinstance(node, ast.Expression):
            check(node.body, depth + 1)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise SweepError(f"{where}: only numbers are allowed as constants, got "
                                 f"{node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id not in states:
                hint = did_you_mean(node.id, (*states, *FUNCTIONS))
                raise SweepError(f"{where}: unknown name '{node.id}'"
                                 + (f"; {hint}" if hint else f"; states: {', '.join(states)}"))
        elif isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            check(node.left, depth + 1)
            check(node.right, depth + 1)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            check(node.operand, depth + 1)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise SweepError(f"{where}: '{ast.unparse(node.func)}' is not a function "
                                 f"you can call; functions: {', '.join(FUNCTIONS)}")
            if node.keywords or len(node.args) != 1:
                raise SweepError(f"{where}: {node.func.id}() takes exactly one argument")
            check(node.args[0], depth + 1)
        else:
            raise SweepError(f"{where}: '{ast.unparse(node)}' is not allowed; use numbers, "
                             "state variables, + - * / ** and the functions "
                             f"{', '.join(FUNCTIONS)}")

    check(tree, 0)
    return tree


def evaluate(tree: ast.Expression, traces: Mapping[str, np.ndarray]) -> float:
    """Walk a checked expression over the traces; the result must be one number."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return traces[node.id]
        if isinstance(node, ast.BinOp):
            return BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](walk(node.args[0]))  # type: ignore[union-attr]
        raise AssertionError("unchecked expression")  # parse_expression rejects the rest

    with np.errstate(all="ignore"):
        value = walk(tree)
    if np.ndim(value) != 0:
        raise ValueError("the expression gives an array, not a number: wrap it in a reduction "
                         "such as mean(...)")
    return float(value)


def parse_measures(spec: Mapping[str, Any] | None, states: tuple[str, ...]) -> Measures:
    """Measures from their definition (a mapping as in this module's docstring)."""
    spec = dict(spec or {})
    unknown = set(spec) - {"transient", "period", "mean", "std", "frequency", "expressions",
                           "traces"}
    if unknown:
        raise SweepError(f"measures: unknown keys {sorted(unknown)}; known: transient, period,"
                         " mean, std, frequency, expressions, traces")
    numbers = {}
    for key, default in (("transient", 0.0), ("period", 1.0)):
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0 or (key == "period" and value == 0):
            sign = "positive" if key == "period" else "non-negative"
            raise SweepError(f"measures.{key}: must be a {sign} number of ms, got {value!r}")
        numbers[key] = float(value)
    expressions = spec.get("expressions", {}) or {}
    if not isinstance(expressions, Mapping):
        raise SweepError("measures.expressions: give a mapping name -> expression")
    trees = {}
    for name, text in expressions.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise SweepError(f"measures.expressions: '{name}' is not a valid measure name "
                             "(letters, digits, underscores)")
        trees[name] = parse_expression(name, text, states)
        try:  # the shape is known now: (time, region) traces in, one number out
            evaluate(trees[name], {state: np.ones((3, 2)) for state in states})
        except ValueError as exc:
            raise SweepError(f"measures.expressions.{name}: {exc}") from None
    traces = spec.get("traces", False)
    if not isinstance(traces, bool):
        raise SweepError("measures.traces: must be true or false")
    measures = Measures(numbers["transient"], numbers["period"],
                        _variables("mean", spec.get("mean", ()), states),
                        _variables("std", spec.get("std", ()), states),
                        _variables("frequency", spec.get("frequency", ()), states),
                        trees, {k: str(v) for k, v in expressions.items()}, traces)
    if not measures.variables:
        raise SweepError("measures: name at least one variable in mean, std, frequency or an "
                         "expression (otherwise the sweep keeps nothing)")
    if len(set(measures.names)) != len(measures.names):
        raise SweepError(f"measures: two measures share a name: {measures.names}")
    return measures


def compute_measures(measures: Measures, times: np.ndarray, data: np.ndarray,
                     variables: tuple[str, ...]) -> dict[str, float]:
    """The measures of one point from its monitor output data (time, variable, region)."""
    keep = times >= measures.transient
    traces = {v: data[keep, i] for i, v in enumerate(variables)}
    out: dict[str, float] = {}
    for v in measures.mean:
        out[f"mean_{v}"] = float(np.mean(traces[v])) if traces[v].size else math.nan
    for v in measures.std:
        out[f"std_{v}"] = float(np.mean(np.std(traces[v], axis=0))) if traces[v].size \
            else math.nan
    for v in measures.frequency:
        frequency, power = _spectral_peak(traces[v].mean(axis=1), measures.period)
        out[f"peak_frequency_{v}"], out[f"peak_power_{v}"] = frequency, power
    for name, tree in measures.expressions.items():
        out[name] = evaluate(tree, traces)
    return out


def _spectral_peak(signal: np.ndarray, period_ms: float) -> tuple[float, float]:
    """(frequency in Hz, one-sided periodogram value) of the largest non-zero-frequency peak."""
    n = signal.size
    if n < 4:
        return math.nan, math.nan
    sampling_hz = 1000.0 / period_ms
    spectrum = np.fft.rfft(signal - signal.mean())
    density = (np.abs(spectrum) ** 2) / (sampling_hz * n)
    density[1:] *= 2.0  # one-sided (the Nyquist bin of even n is doubled too; it is tiny)
    frequencies = np.fft.rfftfreq(n, d=1.0 / sampling_hz)
    peak = 1 + int(np.argmax(density[1:]))
    return float(frequencies[peak]), float(density[peak])
