"""The dfun cases of bench_dfun.py: physiological inputs for a spec, and its compiled kernel
(with and without `out=`, and bare), NumPy reference, seed port and TVB class timed side by
side at each N."""

from __future__ import annotations

import importlib.util
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from harness import ROOT, Candidate, Timing, bare_kernel, fmt_time, log, time_interleaved

from mfgen.runtime.checking import relative_error

SEED_PORTS_PATH = ROOT / "tests" / "seed_ports.py"

# spec name -> seed number (tests/seed_ports.py seedN_dfun)
SEEDS = {
    "zerlaut_adaptation_first_order": 1,
    "tvb_adex_first_order": 2,
    "generic_2d_oscillator": 3,
    "zerlaut_2018_first_order": 4,
    "zerlaut_adaptation_second_order": 5,
    "tvb_adex_second_order": 6,
    "zerlaut_2018_second_order": 7,
}
# spec name -> (TVB module, class)
TVB_CLASSES = {
    "tvb_zerlaut_adaptation_first_order": ("zerlaut", "ZerlautAdaptationFirstOrder"),
    "tvb_adex_first_order": ("zerlaut", "ZerlautAdaptationFirstOrder"),
    "tvb_zerlaut_adaptation_second_order": ("zerlaut", "ZerlautAdaptationSecondOrder"),
    "tvb_adex_second_order": ("zerlaut", "ZerlautAdaptationSecondOrder"),
    "generic_2d_oscillator": ("oscillator", "Generic2dOscillator"),
    "tvb_generic_2d_oscillator": ("oscillator", "Generic2dOscillator"),
}
# Measured on this kind of machine (from the issues): (N, unit, value).
TVB_ANCHORS = {
    "ZerlautAdaptationFirstOrder": {76: ("us/call", 109.0), 1000: ("ns/node", 350.0)},
    "ZerlautAdaptationSecondOrder": {76: ("us/call", 912.0), 1000: ("ns/node", 3311.0)},
}
# Physiological sampling ranges for the Zerlaut/AdEx family (intersected with check_range).
RATE_RANGES = {
    "E": (0.001, 0.02), "I": (0.001, 0.02),
    "W": (0.0, 100.0), "W_e": (0.0, 100.0), "W_i": (0.0, 100.0),
    "C_ee": (0.0, 1e-4), "C_ii": (0.0, 1e-4), "C_ei": (-1e-4, 1e-4),
    "noise": (0.0, 0.0), "ou_drift": (0.0, 0.0),
}


def _is_rate_model(names: list[str]) -> bool:
    return "E" in names and "I" in names


class Inputs:
    """Per-name state arrays and the coupling c_0, shared by every implementation of a spec."""

    def __init__(self, n: int, rate_model: bool, check_ranges: dict[str, tuple[float, float]],
                 seed: int):
        self.n = n
        self.rate_model = rate_model
        self.check_ranges = check_ranges
        self.rng = np.random.default_rng(seed)
        self.arrays: dict[str, np.ndarray] = {}
        if rate_model:
            self.c0 = self.rng.uniform(0.0, 0.01, n)
        else:
            self.c0 = self.rng.uniform(-0.1, 0.1, n)

    def state(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            self.arrays[name] = self._sample(name)
        return self.arrays[name]

    def _sample(self, name: str) -> np.ndarray:
        check = self.check_ranges.get(name)
        if self.rate_model and name in RATE_RANGES:
            lo, hi = RATE_RANGES[name]
            if check is not None:
                clo, chi = check
                if max(lo, clo) <= min(hi, chi):
                    lo, hi = max(lo, clo), min(hi, chi)
                else:
                    lo, hi = clo, chi
        elif check is not None:
            lo, hi = check
        else:
            lo, hi = 0.0, 0.0
        if lo == hi:
            return np.full(self.n, float(lo))
        return self.rng.uniform(lo, hi, self.n)

    def stack(self, names: list[str]) -> np.ndarray:
        return np.ascontiguousarray(np.stack([self.state(name) for name in names]))


@dataclass
class Row:
    spec: str
    n: int
    results: dict[str, Candidate]
    notes: list[str] = field(default_factory=list)
    tvb_class: str | None = None


def load_seed_ports() -> ModuleType | None:
    if not SEED_PORTS_PATH.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_bench_seed_ports", SEED_PORTS_PATH)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a port being edited must not stop the run
        sys.modules.pop(spec.name, None)
        log(f"tests/seed_ports.py does not import: {type(exc).__name__}: {exc}")
        return None
    return module


def load_tvb(specs: list[str]) -> tuple[dict[str, ModuleType], str | None, float]:
    wanted = sorted({TVB_CLASSES[s][0] for s in specs if s in TVB_CLASSES})
    modules: dict[str, ModuleType] = {}
    if not wanted:
        return modules, None, 0.0
    start = time.perf_counter()
    try:
        import importlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in wanted:
                modules[name] = importlib.import_module(f"tvb.simulator.models.{name}")
    except Exception as exc:  # noqa: BLE001 - TVB is optional here
        return {}, f"TVB not available ({type(exc).__name__}: {exc})", 0.0
    return modules, None, time.perf_counter() - start


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over the largest |b| of its variable (finite points)."""
    return float(relative_error(a, b, 1.0, axis=tuple(range(1, np.ndim(b))),
                                ignore_nonfinite=True).max())


KERNEL_CALLS = 20  # kernel calls per timed call of "C kernel only", made in a C loop


def raw_kernel(model: Any, state: np.ndarray, coupling: np.ndarray, out: np.ndarray
               ) -> Callable[[], Any]:
    """The bare kernel, KERNEL_CALLS calls from a C loop per call: `dfun` minus its Python
    wrapper and the C shim's checks, what a call costs inside the simulator."""
    calls = bare_kernel(model, state, coupling, out)
    return lambda: calls(KERNEL_CALLS)


def bench_spec(spec: str, model: Any, sizes: tuple[int, ...], seeds: ModuleType | None,
               tvb: dict[str, ModuleType], timing: Timing) -> list[Row]:
    names = list(model.state_variables)
    check = {name: tuple(info.check_range) for name, info in model.states.items()}
    rate = _is_rate_model(names)
    seed_no = SEEDS.get(spec)
    seed_fn = getattr(seeds, f"seed{seed_no}_dfun", None) if seeds and seed_no else None
    seed_states = getattr(seeds, f"SEED{seed_no}_STATES", None) if seed_fn else None
    tvb_model = None
    tvb_class = None
    if spec in TVB_CLASSES and TVB_CLASSES[spec][0] in tvb:
        module_name, tvb_class = TVB_CLASSES[spec]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tvb_model = getattr(tvb[module_name], tvb_class)()
            tvb_model.configure()
            warm = Inputs(2, rate, check, seed=1)
            start = time.perf_counter()  # numba JIT or cache load: excluded from the timings
            tvb_model.dfun(warm.stack(list(tvb_model.state_variables))[:, :, None],
                           np.zeros((len(tvb_model.cvar), 2, 1)), local_coupling=0.0)
            tvb_first_call = time.perf_counter() - start
    rows = []
    for n in sizes:
        inputs = Inputs(n, rate, check, seed=20261128 + n)
        state = inputs.stack(names)
        coupling = np.zeros((len(model.coupling_variables), n))
        if len(coupling):
            coupling[0] = inputs.c0
        out = np.empty_like(state)
        notes: list[str] = []
        candidates = [Candidate("C out=", lambda s=state, c=coupling, o=out:
                                model.dfun(s, c, 0.0, out=o))]
        if n <= 1000:
            candidates.append(Candidate("C", lambda s=state, c=coupling: model.dfun(s, c, 0.0)))
        if n <= 1000:
            candidates.append(Candidate("C kernel only", raw_kernel(model, state, coupling, out),
                                        inner=KERNEL_CALLS))
        ref_cand = Candidate("NumPy ref", lambda s=state, c=coupling:
                             model.reference.dfun(s, c, 0.0))
        candidates.append(ref_cand)
        compiled_out = model.dfun(state, coupling, 0.0)
        start = time.perf_counter()  # doubles as the reference's untimed first call
        reference_out = ref_cand.fn()
        ref_cand.first_call = time.perf_counter() - start
        bad = int(np.size(compiled_out) - np.count_nonzero(np.isfinite(compiled_out)))
        if bad:
            notes.append(f"{bad} non-finite values in the compiled output")
        notes.append(f"C vs ref max rel diff {max_rel_diff(compiled_out, reference_out):.1e}")
        if seed_fn is not None and seed_states is not None and (
                timing.seed_max_n is None or n <= timing.seed_max_n):
            seed_state = inputs.stack(list(seed_states))
            seed_coupling = np.zeros((len(seed_states), n))
            seed_coupling[0] = inputs.c0
            candidates.append(Candidate(f"seed {seed_no} port", lambda s=seed_state,
                                        c=seed_coupling: seed_fn(s, c, 0.0)))
        if tvb_model is not None:
            tvb_names = list(tvb_model.state_variables)
            tvb_state = inputs.stack(tvb_names)[:, :, None]
            tvb_coupling = np.zeros((len(tvb_model.cvar), n, 1))
            tvb_coupling[0, :, 0] = inputs.c0
            tvb_cand = Candidate("TVB", lambda s=tvb_state, c=tvb_coupling:
                                 tvb_model.dfun(s, c, local_coupling=0.0))
            candidates.append(tvb_cand)
            if len(tvb_names) == len(names):
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()  # doubles as TVB's untimed first call
                    tvb_out = tvb_cand.fn()
                    tvb_cand.first_call = time.perf_counter() - start
                notes.append(f"C vs TVB max rel diff "
                             f"{max_rel_diff(compiled_out, tvb_out[:, :, 0]):.1e}")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            time_interleaved(candidates, timing)
        results = {c.label.split(" port")[0] if c.label.startswith("seed") else c.label: c
                   for c in candidates}
        if tvb_model is not None and n == sizes[0]:
            notes.append(f"TVB first call (numba JIT or cache load) "
                         f"{fmt_time(tvb_first_call)}, excluded")
        rows.append(Row(spec, n, results, notes, tvb_class))
        log(f"    N={n:>6}: " + ", ".join(
            f"{c.label} {fmt_time(c.median)} ({len(c.per_call)}x{c.calls})" for c in candidates))
    return rows
