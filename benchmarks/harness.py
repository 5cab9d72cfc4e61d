"""Shared benchmark harness: timing on a shared, noisy machine and a description of it.

Timings are CPU time of this process (time.process_time: preemption by other processes does
not count), best of several repeats, and competing variants are interleaved round by round so
that a burst of load hits them alike. Threaded runs need wall time (wall_best).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np


def cpu_best(run: Callable[[], object], repeats: int = 5) -> float:
    """Best CPU time of `repeats` calls of run() (s)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def wall_best(run: Callable[[], object], repeats: int = 5) -> float:
    """Best wall time of `repeats` calls of run() (s): for threaded code."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def per_call(call: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Best CPU time per call of `calls` back-to-back calls (s)."""
    def batch() -> None:
        for _ in range(calls):
            call()
    return cpu_best(batch, repeats) / calls


def interleaved(variants: dict[str, Callable[[], float]], rounds: int = 3) -> dict[str, float]:
    """Each variant measures itself (returns seconds); rounds alternate the variants and the
    best of each is kept."""
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            best[name] = min(best[name], measure())
    return best


def machine() -> str:
    """CPU, cores, load, Python, NumPy and the C toolchain mfgen uses."""
    from mfgen.runtime.toolchain import detect_toolchain, has_openmp

    toolchain = detect_toolchain()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{toolchain.cpu.split(' flags:')[0]}, {cores} cores (load {load:.1f}), "
            f"Python {platform.python_version()}, NumPy {np.__version__}, "
            f"{toolchain.version} ({' '.join(toolchain.flags)}; OpenMP "
            f"{'yes' if has_openmp(toolchain) else 'no'})")


def command() -> str:
    return " ".join([os.path.basename(sys.executable), *sys.argv])
