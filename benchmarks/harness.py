"""Shared benchmark harness: timing on a shared, noisy machine, a description of it, report
formatting, and expectations that fail loudly.

Timings are CPU time of this process (time.process_time: preemption by other processes does
not count), best of several repeats, or medians of interleaved rounds (time_interleaved);
competing variants alternate round by round so that a burst of load hits them alike. Threaded
runs need wall time (wall_best). Expectations are ratios of variants measured side by side in
one run, so that they hold on a slower or busier machine.
"""

from __future__ import annotations

import atexit
import gc
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

import mfgen

ROOT = Path(__file__).resolve().parent.parent


def _best(run: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        run()
        best = min(best, clock() - start)
    return best


def cpu_best(run: Callable[[], object], repeats: int = 5) -> float:
    """Best CPU time of `repeats` calls of run() (s)."""
    return _best(run, repeats, time.process_time)


def wall_best(run: Callable[[], object], repeats: int = 5) -> float:
    """Best wall time of `repeats` calls of run() (s): for threaded code."""
    return _best(run, repeats, time.perf_counter)


def per_call(call: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Best CPU time per call of `calls` back-to-back calls (s)."""
    def batch() -> None:
        for _ in range(calls):
            call()
    return cpu_best(batch, repeats) / calls


KERNEL_LOOP_DECLARATION = """
void repeat_kernel(uintptr_t kernel, int64_t calls, int64_t n, const double *state,
                   const double *coupling, double local_coupling, const double *params,
                   double *deriv);
"""
KERNEL_LOOP = """
#include <stdint.h>
typedef void (*kernel_fn)(const int64_t n, const double *state, const double *coupling,
                          const double local_coupling, const double *params, double *deriv);
void repeat_kernel(uintptr_t kernel, int64_t calls, int64_t n, const double *state,
                   const double *coupling, double local_coupling, const double *params,
                   double *deriv)
{
    for (int64_t i = 0; i < calls; i++)
        ((kernel_fn)kernel)(n, state, coupling, local_coupling, params, deriv);
}
"""
_kernel_loop: Any = None


def bare_kernel(model: mfgen.CompiledModel, state: np.ndarray, coupling: np.ndarray,
                out: np.ndarray, local_coupling: float = 0.0, **parameters: Any
                ) -> Callable[[int], None]:
    """`calls(k)`: the model's dfun kernel called k times from a C loop (no Python between
    the calls): what a kernel call costs inside the simulator. Keep the arrays alive."""
    global _kernel_loop
    if _kernel_loop is None:
        import importlib.util
        import tempfile

        from mfgen.runtime.toolchain import compile_module, detect_toolchain

        folder = Path(tempfile.mkdtemp(prefix="mfgen-bench-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = compile_module("_mfgen_bench_kernel_loop", KERNEL_LOOP,
                              KERNEL_LOOP_DECLARATION, folder, detect_toolchain())
        spec = importlib.util.spec_from_file_location("_mfgen_bench_kernel_loop", path)
        _kernel_loop = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_kernel_loop)
    model.dfun(state, coupling, local_coupling, out=out, **parameters)  # checks everything
    params, per_node = model.pack_parameters(parameters, state.shape[1])
    kernel = model.function_address("dfun_per_node" if per_node else "dfun_uniform")
    ffi, lib = _kernel_loop.ffi, _kernel_loop.lib
    args = [ffi.from_buffer("double[]", a) for a in (state, coupling)]
    params_buffer = ffi.from_buffer("double[]", params)
    out_buffer = ffi.from_buffer("double[]", out, require_writable=True)

    def calls(count: int) -> None:
        lib.repeat_kernel(kernel, count, state.shape[1], *args, float(local_coupling),
                          params_buffer, out_buffer)
    return calls


def kernel_seconds(calls: Callable[[int], None], count: int, repeats: int = 5) -> float:
    """Best CPU time per kernel call of `count` calls made in C (s)."""
    return cpu_best(lambda: calls(count), repeats) / count


def interleaved_rounds(variants: dict[Any, Callable[[], float]], rounds: int = 3
                       ) -> dict[Any, list[float]]:
    """Each variant measures itself (returns seconds); rounds alternate the variants (this
    machine's speed drifts within minutes): every round's measurement of each."""
    measured: dict[Any, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            measured[name].append(measure())
    return measured


def interleaved(variants: dict[Any, Callable[[], float]], rounds: int = 3) -> dict[Any, float]:
    """The best of each variant's interleaved_rounds."""
    return {name: min(times) for name, times in interleaved_rounds(variants, rounds).items()}


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median over rounds of one measurement over another taken in the same round."""
    return float(np.median([a / b for a, b in zip(numerators, denominators)]))


ISSUE_SPEED = 4.0  # mm/ms: issue 8's configuration (TVB's default connectome speed is 3)


def issue_connectome() -> mfgen.Connectivity:
    """Issue 8's network: TVB's default 76-region connectome (tvb-data) at 4 mm/ms, or a
    synthetic one of its size and density where tvb-data is missing."""
    try:
        return mfgen.Connectivity.tvb_default(speed=ISSUE_SPEED)
    except mfgen.MfgenError:
        return mfgen.Connectivity.synthetic(76, density=0.27, speed=ISSUE_SPEED)


def random_network(n: int, degree: int, seed: int = 0) -> mfgen.Connectivity:
    """n nodes, `degree` random sources each, weights in [0, 1/degree), tracts 10-150 mm."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), degree)
    cols = rng.integers(0, n, n * degree)
    weights = scipy.sparse.csr_matrix((rng.random(n * degree) / degree, (rows, cols)), (n, n))
    lengths = scipy.sparse.csr_matrix((rng.uniform(10, 150, n * degree), (rows, cols)), (n, n))
    return mfgen.Connectivity(weights, lengths, source=f"random(n={n}, degree={degree})")


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> str:
    """CPU, cores, load, Python, NumPy and the C toolchain mfgen uses."""
    from mfgen.runtime.toolchain import detect_toolchain, has_openmp

    toolchain = detect_toolchain()
    cores = usable_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{toolchain.cpu.split(' flags:')[0]}, {cores} cores (load {load:.1f}), "
            f"Python {platform.python_version()}, NumPy {np.__version__}, "
            f"{toolchain.version} ({' '.join(toolchain.flags)}; OpenMP "
            f"{'yes' if has_openmp(toolchain) else 'no'})")


def command(argv: list[str] | None = None) -> str:
    """The command line that produced a report, relative to the project root."""
    return shlex.join([os.path.relpath(sys.executable, ROOT)
                       if sys.executable.startswith(str(ROOT)) else sys.executable,
                       os.path.relpath(Path(sys.argv[0]).resolve(), ROOT),
                       *(sys.argv[1:] if argv is None else argv)])


# -- interleaved medians (many candidates, per-call times from microseconds to seconds) -------

@dataclass
class Candidate:
    label: str
    fn: Callable[[], Any]
    per_call: list[float] = field(default_factory=list)
    calls: int = 1
    rounds: int = 1
    first_call: float = float("nan")
    inner: int = 1  # calls of the timed thing one fn() makes (a C loop of kernel calls)

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
    """Median per-call CPU time of each candidate (single-threaded code: preemption by other
    jobs does not count); candidates alternate within every round.

    Each candidate gets about `target_s` of timed calls in `rounds` batches, after one
    untimed call (TVB's numba is warmed up before this). A candidate whose single call
    exceeds the batch budget runs one call per round for `min_rounds` rounds (2 past
    `very_slow_s`: fewer repetitions for slow NumPy at large N).
    """
    target_s, rounds = timing.target_s, timing.rounds
    batch_s = target_s / rounds
    for cand in candidates:
        if np.isnan(cand.first_call):  # not already made by the caller's output check
            start = time.process_time()
            cand.fn()
            cand.first_call = time.process_time() - start
        probe = cand.first_call
        if timing.first_call_only_s is not None and probe > timing.first_call_only_s:
            cand.per_call.append(probe / cand.inner)  # --quick: NumPy at large N, one call
            cand.calls, cand.rounds = 1, 0
            continue
        if probe < batch_s:  # refine the estimate for fast calls
            reps = max(1, min(1000, int(0.2 * batch_s / max(probe, 1e-9))))
            start = time.process_time()
            for _ in range(reps):
                cand.fn()
            probe = (time.process_time() - start) / reps
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
                start = time.process_time()
                for _ in range(calls):
                    fn()
                cand.per_call.append((time.process_time() - start) / (calls * cand.inner))
    finally:
        if gc_was_enabled:
            gc.enable()


# -- expectations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Expectation:
    """`measured` (a ratio of two variants timed side by side) against `limit`; `None` when it
    could not be measured (a missing optional dependency), which --check also counts as a miss:
    an expectation that is silently skipped checks nothing."""
    name: str
    measured: float | None
    limit: float
    at_most: bool  # True: measured <= limit; False: measured >= limit
    what: str

    @property
    def met(self) -> bool:
        if self.measured is None or not np.isfinite(self.measured):
            return False
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    def line(self) -> str:
        sign = "<=" if self.at_most else ">="
        value = "not measured" if self.measured is None else f"{self.measured:.3g}"
        return (f"{'ok    ' if self.met else 'MISSED'} {self.name}: {value} (expected {sign} "
                f"{self.limit:g}; {self.what})")


def report_expectations(expectations: list[Expectation], check: bool) -> int:
    """Print every expectation; with `check`, the exit status is 1 when one is missed."""
    print("\nExpectations (ratios measured side by side in this run):")
    for expectation in expectations:
        print("  " + expectation.line())
    missed = [e for e in expectations if not e.met]
    if missed:
        print(f"{len(missed)} expectation(s) MISSED" + (": failing (--check)" if check else ""),
              file=sys.stderr)
    return 1 if missed and check else 0


# -- report helpers ---------------------------------------------------------------------------

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
    info["cores"] = f"{usable_cores()} usable ({os.cpu_count()} logical)"
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
