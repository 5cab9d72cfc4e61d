"""Compare a compiled kernel with its NumPy reference at random points (`mfgen check`).

Error measure, per state variable k: |c - r| / max(|r|, 1e-2 * max|r_k|). The floor is there
because rate equations are written (F - E)/T: near a fixed point F and E cancel, so the value
is tiny while both terms, and their rounding errors, are of the size of the whole row.
Non-finite values must occur at the same points in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mfgen.runtime.model import CompiledModel, ModelBase

DEFAULT_RTOL = 1e-12
FLOOR_FRACTION = 1e-2


@dataclass
class CheckReport:
    model: str
    points: int
    rtol: float
    max_error: dict[str, float] = field(default_factory=dict)
    nonfinite: int = 0
    nonfinite_mismatch: int = 0

    @property
    def worst(self) -> float:
        return max(self.max_error.values(), default=0.0)

    @property
    def passed(self) -> bool:
        return self.nonfinite_mismatch == 0 and self.worst <= self.rtol


def relative_error(actual: np.ndarray, expected: np.ndarray,
                   floor_fraction: float = FLOOR_FRACTION,
                   axis: int | tuple[int, ...] | None = -1,
                   ignore_nonfinite: bool = False) -> np.ndarray:
    """|actual - expected| / max(|expected|, floor), element-wise: mfgen's one relative-error
    measure (checks, tests, benchmarks). The floor is `floor_fraction` of the largest finite
    |expected| over `axis` (per state variable by default: see the module docstring); with
    floor_fraction 0, zeros must match exactly. A point where either side is not finite
    gives NaN (so `error <= tol` fails), or 0 with `ignore_nonfinite` (when the caller
    compares the non-finite patterns separately)."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    finite = np.isfinite(expected) & np.isfinite(actual)
    scale = (np.where(finite, np.abs(expected), 0.0).max(axis=axis, keepdims=True)
             if expected.size else 0.0)
    floor = np.maximum(floor_fraction * scale, np.finfo(float).tiny)
    with np.errstate(invalid="ignore"):
        error = np.abs(actual - expected) / np.maximum(np.abs(expected), floor)
    return np.where(finite, error, 0.0 if ignore_nonfinite else np.nan)


def random_inputs(model: ModelBase, n: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, float, dict[str, np.ndarray]]:
    """States in their check ranges, coupling and per-node parameters in their ranges."""
    state = np.empty((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = model.states[name].check_range
        state[k] = _uniform(rng, low, high, n)
    coupling = np.empty((len(model.coupling_variables), n))
    for k, index in enumerate(model.cvar):
        low, high = model.states[model.state_variables[index]].check_range
        coupling[k] = _uniform(rng, 0.0, (0.1 * high - 0.1 * low) or 0.1, n)
    parameters = {}
    for name, info in model.parameter_info.items():
        if info.size is None and info.range is not None:
            parameters[name] = _uniform(rng, info.range[0], info.range[1], n)
    return state, coupling, float(rng.uniform(0.0, 0.1)), parameters


def _uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    """Uniform in [low, high] without forming high - low (it overflows for [-1e308, 1e308],
    where numpy raises OverflowError)."""
    u = rng.uniform(0.0, 1.0, n)
    return low * (1.0 - u) + high * u


def check_model(model: CompiledModel, points: int = 2000, seed: int = 0,
                rtol: float = DEFAULT_RTOL) -> CheckReport:
    """Compiled vs reference: half the points with defaults, half with random parameters."""
    rng = np.random.default_rng(seed)
    # A model with modes is checked row by row of its kernel (states xi[0], xi[1], ...).
    model = getattr(model, "kernel_model", model)
    report = CheckReport(model.name, points, rtol)
    half = max(points // 2, 1)
    state, coupling, lc, parameters = random_inputs(model, half, rng)
    cases = [(state, coupling, lc, {})]
    state, coupling, lc, parameters = random_inputs(model, points - half, rng)
    cases.append((state, coupling, lc, parameters))
    for state, coupling, lc, params in cases:
        computed = model.dfun(state, coupling, lc, **params)
        reference = model.reference.dfun(state, coupling, lc, **params)
        report.nonfinite += int((~np.isfinite(reference)).sum())
        report.nonfinite_mismatch += int((np.isfinite(computed) != np.isfinite(reference)).sum())
        errors = relative_error(computed, reference, ignore_nonfinite=True).max(axis=1)
        for name, error in zip(model.state_variables, errors):
            report.max_error[name] = max(report.max_error.get(name, 0.0), float(error))
    return report
