"""Sweep designs: which quantities vary, over which values, and the list of points they make.

A swept quantity is named by what it changes:

    b_e  or  parameters.b_e      a model parameter (one value for all nodes)
    coupling.a                   a coupling-function parameter
    noise.E                      the additive noise amplitude (TVB's nsig) of state E
    initial.E                    the initial value of state E (all nodes; history included)
    local_coupling, seed         the Simulation arguments of the same name

Its values are a list, a linear range `{start, stop, num}` or a log range
`{start, stop, num, log: true}`. Designs: `grid` (every combination, first quantity slowest),
`zip` (the i-th value of each, lists of equal length) and `random` (`n_points` draws, uniform
in each quantity's [start, stop] or log-uniform, from `random_seed`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfgen.errors import MfgenError, did_you_mean

DESIGNS = ("grid", "zip", "random")
KINDS = ("parameters", "coupling", "noise", "initial")
PLAIN = ("local_coupling", "seed")


class SweepError(MfgenError):
    """A sweep definition is invalid (the message names the quantity and what to do)."""


@dataclass(frozen=True)
class Quantity:
    """One swept quantity: `kind` (parameters, coupling, noise, initial or a plain Simulation
    argument) and `name` inside it; `label` is how it is written in specs and results."""

    kind: str
    name: str
    values: tuple[float, ...]
    low: float | None = None  # the range, for random designs
    high: float | None = None
    log: bool = False

    @property
    def label(self) -> str:
        if self.kind in PLAIN:
            return self.kind
        return self.name if self.kind == "parameters" else f"{self.kind}.{self.name}"


def parse_label(label: str, model: Any) -> tuple[str, str]:
    """(kind, name) of a quantity label, checked against the model's names."""
    if not isinstance(label, str) or not label:
        raise SweepError(f"a swept quantity must be named by a string, got {label!r}")
    if label in PLAIN:
        return label, label
    kind, dot, name = label.partition(".")
    if not dot:
        kind, name = "parameters", label
    if kind not in KINDS:
        raise SweepError(f"swept quantity '{label}': unknown kind '{kind}'; write a model "
                         f"parameter name, or one of {', '.join(k + '.NAME' for k in KINDS)}, "
                         f"{', '.join(PLAIN)}")
    if kind == "parameters":
        known = list(model.parameter_info)
        if name not in known:
            hint = did_you_mean(name, known)
            raise SweepError(f"swept quantity '{label}': model '{model.name}' has no parameter "
                             f"'{name}'" + (f"; {hint}" if hint else ""))
        if model.parameter_info[name].size is not None:
            raise SweepError(f"swept quantity '{label}': '{name}' is a vector parameter; sweep "
                             "scalar parameters only")
    elif kind in ("noise", "initial"):
        if name not in model.state_variables:
            hint = did_you_mean(name, model.state_variables)
            raise SweepError(f"swept quantity '{label}': model '{model.name}' has no state "
                             f"'{name}'" + (f"; {hint}" if hint else
                                            f"; states: {', '.join(model.state_variables)}"))
    elif kind == "coupling":
        known = sorted({p[0] for c in model.manifest["couplings"] for p in c["parameters"]})
        if name not in known:
            hint = did_you_mean(name, known)
            raise SweepError(f"swept quantity '{label}': no coupling function has a parameter "
                             f"'{name}'" + (f"; {hint}" if hint else
                                            f"; coupling parameters: {', '.join(known)}"))
    return kind, name


def _number(label: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise SweepError(f"swept quantity '{label}': '{key}' must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise SweepError(f"swept quantity '{label}': '{key}' must be finite, got {value!r}")
    return number


def parse_quantity(label: str, spec: Any, model: Any, design: str) -> Quantity:
    """A Quantity from its definition: a list, {start, stop, num[, log]} or, for random
    designs, {start, stop[, log]}."""
    kind, name = parse_label(label, model)
    if isinstance(spec, (list, tuple, np.ndarray)):
        values = tuple(_number(label, "values", v) for v in np.asarray(spec, dtype=object)
                       .reshape(-1))
        if not values:
            raise SweepError(f"swept quantity '{label}': the list of values is empty")
        return Quantity(kind, name, values, min(values), max(values))
    if not isinstance(spec, Mapping):
        raise SweepError(f"swept quantity '{label}': give a list of values or a range "
                         "{start: ..., stop: ..., num: ...[, log: true]}, got "
                         f"{type(spec).__name__}")
    unknown = set(spec) - {"start", "stop", "num", "log"}
    if unknown:
        raise SweepError(f"swept quantity '{label}': unknown range keys {sorted(unknown)}; a "
                         "range has start, stop, num and optionally log")
    if "start" not in spec or "stop" not in spec:
        raise SweepError(f"swept quantity '{label}': a range needs start and stop")
    start, stop = _number(label, "start", spec["start"]), _number(label, "stop", spec["stop"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SweepError(f"swept quantity '{label}': 'log' must be true or false")
    if log and (start <= 0 or stop <= 0):
        raise SweepError(f"swept quantity '{label}': a log range needs positive start and stop,"
                         f" got {start:g} and {stop:g}")
    values: tuple[float, ...] = ()
    if "num" in spec:
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
            raise SweepError(f"swept quantity '{label}': 'num' must be a positive integer, "
                             f"got {num!r}")
        values = tuple(float(v) for v in (np.geomspace(start, stop, int(num)) if log
                                          else np.linspace(start, stop, int(num))))
    elif design != "random":
        raise SweepError(f"swept quantity '{label}': a range needs 'num' (the number of "
                         "values) unless the design is random")
    return Quantity(kind, name, values, min(start, stop), max(start, stop), log)


def check_value(quantity: Quantity, value: float) -> None:
    if quantity.kind == "seed" and (value != int(value) or value < 0):
        raise SweepError(f"swept quantity 'seed': values must be non-negative integers, got "
                         f"{value:g}")


def design_points(quantities: Sequence[Quantity], design: str, n_points: int | None = None,
                  random_seed: int = 0) -> tuple[list[dict[str, float]], tuple[int, ...] | None]:
    """The points (label -> value) of a design, and the grid shape (None unless grid)."""
    if design not in DESIGNS:
        raise SweepError(f"unknown design '{design}'; choose one of {', '.join(DESIGNS)}")
    if not quantities:
        raise SweepError("a sweep needs at least one swept quantity")
    labels = [q.label for q in quantities]
    if len(set(labels)) != len(labels):
        raise SweepError(f"a quantity is swept twice: {labels}")
    shape: tuple[int, ...] | None = None
    if design == "grid":
        rows = list(itertools.product(*(q.values for q in quantities)))
        shape = tuple(len(q.values) for q in quantities)
    elif design == "zip":
        lengths = {q.label: len(q.values) for q in quantities}
        if len(set(lengths.values())) != 1:
            raise SweepError(f"a zip design needs the same number of values for every "
                             f"quantity, got {lengths}")
        rows = list(zip(*(q.values for q in quantities)))
    else:
        if n_points is None or isinstance(n_points, bool) or int(n_points) != n_points \
                or n_points < 1:
            raise SweepError(f"a random design needs n_points (a positive integer), got "
                             f"{n_points!r}")
        rng = np.random.default_rng(random_seed)
        columns = []
        for q in quantities:
            if q.kind == "seed":
                columns.append(rng.integers(int(q.low), int(q.high) + 1, int(n_points))
                               .astype(float))
            elif q.log:
                columns.append(np.exp(rng.uniform(np.log(q.low), np.log(q.high), int(n_points))))
            else:
                columns.append(rng.uniform(q.low, q.high, int(n_points)))
        rows = [tuple(float(c[i]) for c in columns) for i in range(int(n_points))]
    points = [dict(zip(labels, row)) for row in rows]
    for q in quantities:
        for point in points:
            check_value(q, point[q.label])
    return points, shape
