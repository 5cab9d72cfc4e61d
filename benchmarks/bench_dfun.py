#!/usr/bin/env python
"""Speed benchmarks (not tests) for mfgen's generated kernels.

Measured side by side in one run, for every bundled spec (or those named with --specs):

* dfun time at N = 76, 1 000 and 100 000 nodes: the compiled C kernel (with a preallocated
  ``out=``, and without it at N = 76), the spec's generated NumPy reference, the hand-written
  seed port (tests/seed_ports.py) and the real TVB 2.10 ``dfun`` where they exist;
* cold build time (parse + IR + optimise + render + compile; fresh $MFGEN_CACHE_DIR, subprocess);
* warm load time (``mfgen.load`` in a fresh subprocess with a populated cache; ``import mfgen``
  reported separately).

The machine is shared and noisy, so the implementations are interleaved round by round and
medians are reported. States are physiological (E, I 0.001-0.02 kHz, W 0-100 pA, OU state 0,
coupling 0-0.01 kHz; oscillators sample their check ranges). TVB's first call (numba JIT or
cache load) is made before timing and reported separately.

    .venv/bin/python benchmarks/bench_dfun.py            # full run (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_dfun.py --quick    # short run (< 1 min, warm cache)
    .venv/bin/python benchmarks/bench_dfun.py --specs tvb_adex_first_order generic_2d_oscillator
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED_PORTS_PATH = ROOT / "tests" / "seed_ports.py"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results.md"
SIZES = (76, 1000, 100_000)

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
FIRST_ORDER_NS_PER_NODE = 20.0   # generated first-order Zerlaut kernels at N >= 1000
FIRST_ORDER_US_AT_76 = 3.5       # ... per call at N = 76
SECOND_ORDER_NS_PER_NODE = 60.0  # generated second-order kernels at N >= 1000

# Physiological sampling ranges for the Zerlaut/AdEx family (intersected with check_range).
RATE_RANGES = {
    "E": (0.001, 0.02), "I": (0.001, 0.02),
    "W": (0.0, 100.0), "W_e": (0.0, 100.0), "W_i": (0.0, 100.0),
    "C_ee": (0.0, 1e-4), "C_ii": (0.0, 1e-4), "C_ei": (-1e-4, 1e-4),
    "noise": (0.0, 0.0), "ou_drift": (0.0, 0.0),
}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "-"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_ns(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.3g}x" if value < 1000 else f"{value:.0f}x"


def seed_for(spec: str) -> int | None:
    return SEEDS.get(spec)


def order_of(spec: str) -> str:
    if "second_order" in spec:
        return "second"
    if "first_order" in spec:
        return "first"
    return "other"


def machine_info() -> dict[str, str]:
    info: dict[str, str] = {}
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    info["CPU"] = cpu
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info["cores"] = f"{usable} usable ({os.cpu_count()} logical)"
    info["OS"] = platform.platform()
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    for name in ("scipy", "cffi", "sympy", "numba", "tvb-library"):
        info[name] = _version(name)
    compiler = os.environ.get("CC") or next(
        (c for c in ("cc", "gcc", "clang") if shutil.which(c)), "")
    try:
        info["C compiler"] = subprocess.run(
            [*shlex.split(compiler), "--version"], capture_output=True, text=True,
            timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        info["C compiler"] = "not found"
    try:
        from mfgen.runtime.toolchain import detect_toolchain

        info["C flags"] = " ".join(detect_toolchain().flags)
    except Exception as exc:  # noqa: BLE001 - informational only
        info["C flags"] = f"unknown ({exc})"
    info["mfgen"] = _git_state()
    info["load average (start)"] = _loadavg()
    return info


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_state() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return f"git {head}" + (" + uncommitted changes" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def bundled_specs() -> list[str]:
    try:
        from mfgen.codegen.locate import bundled_spec_names

        return list(bundled_spec_names())
    except Exception:  # noqa: BLE001 - fall back to the folder listing
        import mfgen.specs

        return sorted(p.stem for p in Path(mfgen.specs.__file__).parent.glob("*.yaml"))


# ---------------------------------------------------------------------------------------------
# subprocess measurements: cold build, warm load
# ---------------------------------------------------------------------------------------------

COLD_BUILD_CODE = r"""
import json, sys, time
start = time.perf_counter()
import mfgen
imported = time.perf_counter()
result = mfgen.build(sys.argv[1], force=True)
done = time.perf_counter()
print("MFGEN_BENCH " + json.dumps({"import": imported - start, "build_wall": done - imported,
                                    "timings": result.timings, "compiled": result.compiled}))
"""

WARM_LOAD_CODE = r"""
import json, sys, time
start = time.perf_counter()
import numpy
numpy_done = time.perf_counter()
import mfgen
imported = time.perf_counter()
model = mfgen.load(sys.argv[1])
loaded = time.perf_counter()
print("MFGEN_BENCH " + json.dumps({"numpy": numpy_done - start, "import": imported - start,
                                    "load": loaded - imported,
                                    "sympy": "sympy" in sys.modules,
                                    "regenerated": "mfgen.codegen.ir" in sys.modules}))
"""

SYMPY_IMPORT_CODE = r"""
import json, time
start = time.perf_counter()
import sympy
print("MFGEN_BENCH " + json.dumps({"import": time.perf_counter() - start}))
"""


def run_child(code: str, spec: str, cache_dir: Path, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, MFGEN_CACHE_DIR=str(cache_dir))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code, spec], capture_output=True,
                              text=True, env=env, timeout=timeout, cwd=str(cache_dir))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith("MFGEN_BENCH "):
            data = json.loads(line[len("MFGEN_BENCH "):])
            data["process_wall"] = wall
            return data
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    error = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln),
                 lines[-1] if lines else f"exit status {proc.returncode}")
    return {"error": error[:200]}


@dataclass
class BuildStats:
    cold: list[dict[str, Any]] = field(default_factory=list)
    warm: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cache_dir: Path | None = None
    regenerated: int = 0  # warm loads that rebuilt (spec/generator edited meanwhile), redone


def measure_builds(specs: list[str], workdir: Path, cold_repeats: int, warm_repeats: int,
                   budget_s: float) -> tuple[dict[str, BuildStats], list[float]]:
    """Cold builds (each in a fresh cache) and warm loads (from the newest of those caches).

    With cold_repeats == 0 (--quick) the specs are built if needed into the normal cache
    ($MFGEN_CACHE_DIR or ~/.cache/mfgen), and the warm loads use that.
    """
    stats = {spec: BuildStats() for spec in specs}
    sympy_times: list[float] = []
    started = time.perf_counter()
    if cold_repeats == 0:
        import mfgen
        from mfgen.runtime.cache import cache_root

        log("  building into the normal cache where needed (slow only the first time)")
        for spec in specs:
            try:
                mfgen.build(spec)
                stats[spec].cache_dir = cache_root()
            except Exception as exc:  # noqa: BLE001 - a spec being edited must not stop the run
                stats[spec].error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    for rep in range(cold_repeats):
        if rep == 1:
            started = time.perf_counter()  # the budget covers the repeats only
        for spec in specs:
            entry = stats[spec]
            if entry.error or (rep and time.perf_counter() - started > budget_s):
                continue
            cache_dir = Path(tempfile.mkdtemp(prefix=f"cold-{spec}-", dir=workdir))
            log(f"  cold build {rep + 1}/{cold_repeats}: {spec}")
            data = run_child(COLD_BUILD_CODE, spec, cache_dir, timeout=600)
            if "error" in data:
                entry.error = data["error"]
                shutil.rmtree(cache_dir, ignore_errors=True)
                continue
            entry.cold.append(data)
            if entry.cache_dir is not None:
                shutil.rmtree(entry.cache_dir, ignore_errors=True)
            entry.cache_dir = cache_dir  # the newest populated cache serves the warm loads
    for rep in range(warm_repeats):
        data = run_child(SYMPY_IMPORT_CODE, "", workdir, timeout=300)
        if "import" in data:
            sympy_times.append(data["import"])
        for spec in specs:
            entry = stats[spec]
            if entry.error or entry.cache_dir is None:
                continue
            log(f"  warm load {rep + 1}/{warm_repeats}: {spec}")
            for _ in range(3):  # a regenerating load (spec or generator edited) is redone
                data = run_child(WARM_LOAD_CODE, spec, entry.cache_dir, timeout=300)
                if "error" in data or not data.get("regenerated"):
                    break
                entry.regenerated += 1
            if "error" in data:
                entry.error = f"warm load failed: {data['error']}"
                continue
            entry.warm.append(data)
    return stats, sympy_times


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    label: str
    fn: Callable[[], Any]
    per_call: list[float] = field(default_factory=list)
    calls: int = 1
    rounds: int = 1
    first_call: float = float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.per_call) if self.per_call else float("nan")

    @property
    def spread(self) -> float:
        """(max - min) / median over the rounds, a rough noise figure."""
        if len(self.per_call) < 2:
            return float("nan")
        return (max(self.per_call) - min(self.per_call)) / self.median


@dataclass(frozen=True)
class Timing:
    target_s: float        # timed calls per candidate and measurement, in seconds
    rounds: int            # interleaved rounds (batches) per measurement
    min_rounds: int        # rounds for a candidate whose single call exceeds a batch ...
    very_slow_s: float     # ... but only 2 once a single call takes longer than this
    first_call_only_s: float | None  # --quick: a call slower than this is timed just once
    seed_max_n: int | None = None  # --quick: no seed ports above this N


def time_interleaved(candidates: list[Candidate], timing: Timing) -> None:
    """Median per-call time of each candidate; candidates alternate within every round.

    Each candidate gets about `target_s` of timed calls in `rounds` batches, after one
    untimed call (TVB's numba is warmed up before this). A candidate whose single call
    exceeds the batch budget runs one call per round for `min_rounds` rounds (2 past
    `very_slow_s`: fewer repetitions for slow NumPy at large N).
    """
    target_s, rounds = timing.target_s, timing.rounds
    batch_s = target_s / rounds
    for cand in candidates:
        if np.isnan(cand.first_call):  # not already made by the caller's output check
            start = time.perf_counter()
            cand.fn()
            cand.first_call = time.perf_counter() - start
        probe = cand.first_call
        if timing.first_call_only_s is not None and probe > timing.first_call_only_s:
            cand.per_call.append(probe)  # --quick: NumPy at large N, one call is enough
            cand.calls, cand.rounds = 1, 0
            continue
        if probe < batch_s:  # refine the estimate for fast calls
            reps = max(1, min(1000, int(0.2 * batch_s / max(probe, 1e-9))))
            start = time.perf_counter()
            for _ in range(reps):
                cand.fn()
            probe = (time.perf_counter() - start) / reps
        cand.calls = max(1, int(batch_s / max(probe, 1e-9)))
        min_rounds = 2 if probe > timing.very_slow_s else timing.min_rounds
        cand.rounds = rounds if probe <= batch_s else max(
            min_rounds, min(rounds, int(round(target_s / probe))))
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            shift = r % len(candidates)
            for cand in candidates[shift:] + candidates[:shift]:
                if r >= cand.rounds:
                    continue
                fn, calls = cand.fn, cand.calls
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                cand.per_call.append((time.perf_counter() - start) / calls)
    finally:
        if gc_was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# the dfun benchmark of one spec
# ---------------------------------------------------------------------------------------------

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
    a = np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)
    b = np.asarray(b, dtype=np.float64).reshape(b.shape[0], -1)
    worst = 0.0
    for row_a, row_b in zip(a, b):
        finite = np.isfinite(row_a) & np.isfinite(row_b)
        if not finite.any():
            continue
        scale = max(np.max(np.abs(row_b[finite])), 1e-300)
        worst = max(worst, float(np.max(np.abs(row_a[finite] - row_b[finite])) / scale))
    return worst


def raw_kernel(model: Any, state: np.ndarray, coupling: np.ndarray, out: np.ndarray
               ) -> Callable[[], Any] | None:
    """The cffi kernel called directly with prepared buffers: `dfun` minus its Python wrapper."""
    return model.bind_dfun(state, coupling, out)


def bench_spec(spec: str, model: Any, sizes: tuple[int, ...], seeds: ModuleType | None,
               tvb: dict[str, ModuleType], timing: Timing) -> list[Row]:
    names = list(model.state_variables)
    check = {name: tuple(info.check_range) for name, info in model.states.items()}
    rate = _is_rate_model(names)
    seed_no = seed_for(spec)
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
        kernel = raw_kernel(model, state, coupling, out)
        if kernel is not None and n <= 1000:
            candidates.append(Candidate("C kernel only", kernel))
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


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

def _cell(cand: Candidate | None, n: int) -> str:
    if cand is None or not cand.per_call:
        return "-"
    return f"{fmt_time(cand.median)} ({fmt_ns(cand.median / n * 1e9)})"


def _expectation(row: Row) -> str:
    order = order_of(row.spec)
    compiled = row.results.get("C out=")
    if compiled is None or order == "other" or not compiled.per_call:
        return ""
    family_first = order == "first" and ("zerlaut" in row.spec or "adex" in row.spec)
    if family_first and row.n < 1000:
        plain = row.results.get("C", compiled)
        us = plain.median * 1e6
        verdict = "ok" if us <= FIRST_ORDER_US_AT_76 else f"SLOW {us / FIRST_ORDER_US_AT_76:.2g}x"
        bare = row.results.get("C kernel only")
        if bare is not None and bare.per_call:
            verdict += f" (bare kernel {fmt_time(bare.median)})"
        return f"<= {FIRST_ORDER_US_AT_76} us/call: {verdict}"
    if row.n < 1000:
        return ""
    limit = FIRST_ORDER_NS_PER_NODE if family_first else SECOND_ORDER_NS_PER_NODE
    if order == "first" and not family_first:
        return ""
    ns = compiled.median / row.n * 1e9
    verdict = "ok" if ns <= limit else f"SLOW {ns / limit:.2g}x"
    return f"<= {limit:g} ns/node: {verdict}"


def _anchor(row: Row) -> str:
    if row.tvb_class not in TVB_ANCHORS or row.n not in TVB_ANCHORS[row.tvb_class]:
        return ""
    unit, value = TVB_ANCHORS[row.tvb_class][row.n]
    cand = row.results.get("TVB")
    if cand is None or not cand.per_call:
        return f"TVB anchor {value:g} {unit}"
    measured = cand.median * 1e6 if unit == "us/call" else cand.median / row.n * 1e9
    return f"TVB anchor {value:g} {unit} (here {fmt_ns(measured)})"


def dfun_table(rows: list[Row]) -> list[str]:
    lines = [
        "| spec | N | C out= | C (no out=) | C kernel only | NumPy ref | ref/C | seed port | "
        "seed/C | TVB | TVB/C | expectation / anchor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        res = row.results
        base = res.get("C out=")
        base_t = base.median if base and base.per_call else float("nan")

        def ratio(label: str, res: dict[str, Candidate] = res, base_t: float = base_t) -> str:
            cand = res.get(label)
            return fmt_ratio(cand.median / base_t) if cand and cand.per_call else "-"

        seed_label = next((k for k in res if k.startswith("seed")), None)
        note = "; ".join(x for x in (_expectation(row), _anchor(row)) if x)
        seed_cell = (f"{seed_label.split()[1]}: {_cell(res[seed_label], row.n)}"
                     if seed_label else "-")
        lines.append(
            f"| {row.spec} | {row.n:,} | {_cell(base, row.n)} | {_cell(res.get('C'), row.n)} | "
            f"{_cell(res.get('C kernel only'), row.n)} | {_cell(res.get('NumPy ref'), row.n)} | "
            f"{ratio('NumPy ref')} | "
            f"{seed_cell} | {ratio(seed_label) if seed_label else '-'} | "
            f"{_cell(res.get('TVB'), row.n)} | {ratio('TVB')} | {note} |")
    return lines


def detail_table(rows: list[Row]) -> list[str]:
    lines = ["| spec | N | implementation | median / call | best round | ns/node (median) | "
             "rounds x calls | spread (max-min)/median |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for label, cand in row.results.items():
            if not cand.per_call:
                continue
            lines.append(f"| {row.spec} | {row.n:,} | {label} | {fmt_time(cand.median)} | "
                         f"{fmt_time(min(cand.per_call))} | "
                         f"{fmt_ns(cand.median / row.n * 1e9)} | "
                         f"{len(cand.per_call)} x {cand.calls} | "
                         f"{'-' if np.isnan(cand.spread) else f'{cand.spread:.0%}'} |")
    return lines


def build_table(stats: dict[str, BuildStats]) -> list[str]:
    lines = ["| spec | parse | IR | optimise | render | compile | stages total | "
             "build() wall | import mfgen | warm load | import + load | SymPy imported by "
             "warm load | samples (cold/warm) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for spec, entry in stats.items():
        if entry.cache_dir is None:
            lines.append(f"| {spec} | build failed: {str(entry.error).replace('|', '/')} "
                         "| | | | | | | | | | | |")
            continue

        def med(key: str, sub: str | None = None, samples: list[dict[str, Any]] = entry.cold
                ) -> float:
            values = [s[sub][key] if sub else s[key] for s in samples
                      if (s.get(sub, {}) if sub else s).get(key) is not None]
            return statistics.median(values) if values else float("nan")

        stages = [med(k, "timings") for k in ("parse", "ir", "optimize", "render", "compile")]
        total = statistics.median(sum(s["timings"].get(k, 0.0) for k in
                                      ("parse", "ir", "optimize", "render", "compile"))
                                  for s in entry.cold) if entry.cold else float("nan")
        warm = entry.warm
        imp = med("import", samples=warm)
        load = med("load", samples=warm)
        both = statistics.median(s["import"] + s["load"] for s in warm) if warm else float("nan")
        sympy = ("yes" if all(s.get("sympy") for s in warm) else
                 "no" if not any(s.get("sympy") for s in warm) else "some") if warm else "-"
        redo = f" ({entry.regenerated} regenerated, redone)" if entry.regenerated else ""
        lines.append(
            f"| {spec} | " + " | ".join(fmt_time(x) for x in stages) +
            f" | {fmt_time(total)} | {fmt_time(med('build_wall'))} | {fmt_time(imp)} | "
            f"{fmt_time(load)} | {fmt_time(both)} | {sympy} | "
            f"{len(entry.cold)}/{len(warm)}{redo} |")
    return lines


def render_report(info: dict[str, str], command: str, settings: str, rows: list[Row],
                  stats: dict[str, BuildStats], extra: list[str], elapsed: float) -> str:
    out = ["# mfgen dfun benchmarks", "",
           f"Command: `{command}` (in `{ROOT}`)", "",
           f"Settings: {settings}. Total run time {elapsed:.0f} s.", "",
           "| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out += ["", "## dfun time per call (ns per node in parentheses)", "",
            "Medians over interleaved rounds. `C out=`: compiled kernel with a preallocated "
            "output; `C`: the same without `out=` (N <= 1000). Ratios are relative to `C out=`. "
            "Seed ports are the hand-written NumPy oracles (finite differences for seeds 5-7; "
            "their erfc is `np.vectorize(math.erfc)`). TVB is tvb-library's `dfun` at its "
            "defaults, after a warm-up call.", ""]
    out += dfun_table(rows)
    out += ["", f"Anchors from the issues: TVB ZerlautAdaptationFirstOrder 350 ns/node at "
            f"N=1000 and 109 us/call at N=76; ZerlautAdaptationSecondOrder 3311 ns/node at "
            f"N=1000 (912 us/call at N=76). Expectations: generated first-order Zerlaut kernels "
            f"<= {FIRST_ORDER_NS_PER_NODE:g} ns/node at N >= 1000 and <= {FIRST_ORDER_US_AT_76} "
            f"us/call at N=76 (checked without `out=`); second order <= "
            f"{SECOND_ORDER_NS_PER_NODE:g} ns/node.", ""]
    notes = [f"- {row.spec} N={row.n:,}: {'; '.join(row.notes)}" for row in rows if row.notes]
    if notes or extra:
        out += ["### Notes", ""] + [f"- {x}" for x in extra] + notes + [""]
    out += ["## Build and load time", "",
            "Cold: `mfgen.build(spec, force=True)` in a subprocess with a fresh "
            "`MFGEN_CACHE_DIR` (stage timings from `.timings`; `build() wall` also includes "
            "SymPy's import). Warm: a fresh subprocess with the populated cache, timed inside "
            "it; `import mfgen` includes NumPy's import. A warm load that regenerated code "
            "(the spec or generator was edited meanwhile) is discarded and redone.", ""]
    out += build_table(stats)
    out += ["", "## All measurements", ""]
    out += detail_table(rows)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short run (< 1 min with a warm cache): fewer rounds, no cold "
                        "builds (specs are built into the normal cache if needed)")
    parser.add_argument("--specs", nargs="+", metavar="SPEC",
                        help="bundled spec names to benchmark (default: all; comma lists ok)")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=SIZES, help="node counts, comma-separated (default 76,1000,100000)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"markdown report path (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--no-build", action="store_true",
                        help="skip the cold-build/warm-load measurements (uses the normal cache)")
    parser.add_argument("--no-tvb", action="store_true", help="skip TVB even if installed")
    parser.add_argument("--cold-repeats", type=int, default=1, metavar="K",
                        help="cold builds per spec in a full run (default 1; each takes 2-30 s)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a kernel misses its expectation (SLOW in the table)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall_start = time.perf_counter()
    command = shlex.join([os.path.relpath(sys.executable, ROOT)
                          if sys.executable.startswith(str(ROOT)) else sys.executable,
                          os.path.relpath(Path(sys.argv[0]).resolve(), ROOT),
                          *(sys.argv[1:] if argv is None else argv)])
    import mfgen

    available = bundled_specs()
    if args.specs:
        specs = [s for item in args.specs for s in item.split(",") if s]
        unknown = [s for s in specs if s not in available]
        if unknown:
            log(f"unknown spec(s) {unknown}; bundled specs: {', '.join(available)}")
            return 2
    else:
        specs = available
    if args.quick:
        timing = Timing(target_s=0.05, rounds=3, min_rounds=2, very_slow_s=0.1,
                        first_call_only_s=0.1, seed_max_n=1000)
        cold_repeats, warm_repeats, cold_budget_s = 0, 1, 0.0
        settings = ("--quick: ~0.05 s of calls per measurement in 3 interleaved rounds; a "
                    "call slower than 0.1 s is timed once (no warm-up); seed ports only up to "
                    "N = 1,000; no cold builds (specs built if needed into the normal cache), "
                    "warm loads x1")
    else:
        timing = Timing(target_s=0.2, rounds=11, min_rounds=3, very_slow_s=0.5,
                        first_call_only_s=None)
        cold_repeats, warm_repeats, cold_budget_s = args.cold_repeats, 2, 60.0
        settings = ("full: ~0.2 s of calls per measurement in 11 interleaved rounds after an "
                    "untimed call; a call longer than one round's budget is repeated 3 times "
                    f"(2 past 0.5 s); cold builds x{cold_repeats} (repeats only within a 60 s "
                    "budget), warm loads x2")
    settings += f"; N = {', '.join(f'{n:,}' for n in args.sizes)}"
    info = machine_info()
    log(f"mfgen benchmarks: {len(specs)} spec(s): {', '.join(specs)}")
    extra: list[str] = []

    workdir = Path(tempfile.mkdtemp(prefix="mfgen-bench-"))
    try:
        stats: dict[str, BuildStats] = {}
        if not args.no_build:
            log("build / load times:")
            stats, sympy_times = measure_builds(specs, workdir, cold_repeats, warm_repeats,
                                                budget_s=cold_budget_s)
            if sympy_times:
                extra.append(f"`import sympy` alone in a fresh process: "
                             f"{fmt_time(statistics.median(sympy_times))} (median of "
                             f"{len(sympy_times)}); a warm load marked 'SymPy imported' pays it")
        seeds = load_seed_ports()
        if seeds is None:
            extra.append("tests/seed_ports.py not found: no seed-port timings")
        tvb: dict[str, ModuleType] = {}
        if not args.no_tvb:
            tvb, tvb_error, tvb_import = load_tvb(specs)
            if tvb_error:
                extra.append(tvb_error)
            elif tvb:
                extra.append(f"TVB model modules imported in {tvb_import:.1f} s "
                             f"({', '.join(sorted(tvb))})")
        rows: list[Row] = []
        for spec in specs:
            entry = stats.get(spec)
            if entry is not None and entry.cache_dir is None:
                extra.append(f"{spec}: not benchmarked, build failed: {entry.error}")
                continue
            if entry is not None and entry.cache_dir is not None:
                os.environ["MFGEN_CACHE_DIR"] = str(entry.cache_dir)
            log(f"dfun: {spec}")
            try:
                model = mfgen.load(spec)
            except Exception as exc:  # noqa: BLE001 - a spec being edited must not stop the run
                extra.append(f"{spec}: not benchmarked, load failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]}")
                continue
            try:
                rows += bench_spec(spec, model, args.sizes, seeds, tvb, timing)
            except Exception as exc:  # noqa: BLE001
                extra.append(f"{spec}: benchmark failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    info["load average (end)"] = _loadavg()
    report = render_report(info, command, settings, rows, stats, extra,
                           time.perf_counter() - wall_start)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"wrote {args.output}")
    missed = [f"{row.spec} at N = {row.n}: {_expectation(row)}" for row in rows
              if "SLOW" in _expectation(row)]
    if missed:
        log("expectations MISSED:\n  " + "\n  ".join(missed))
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
