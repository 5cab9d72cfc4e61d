"""Shared test helpers (import them from here, not from conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FIRST_ORDER_SPECS = [
    "generic_2d_oscillator",
    "zerlaut_adaptation_first_order",
    "tvb_adex_first_order",
    "zerlaut_2018_first_order",
]


def run_in_processes(target: Callable[..., Any], args: tuple, count: int) -> list:
    """Start `count` spawned processes running target(*args, queue) at once; return what each
    put on the queue, after checking that every one exited cleanly."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=target, args=(*args, queue)) for _ in range(count)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return results


def relative_error(actual: Any, expected: Any, floor_fraction: float = 0.0,
                   axis: int | tuple[int, ...] | None = None) -> Any:
    """|actual - expected| / max(|expected|, floor), element-wise. The floor is
    `floor_fraction` of the largest |expected| over `axis` (e.g. per variable), so values
    crossing zero are compared at the scale of their variable; with floor_fraction 0, zeros
    must match exactly. Each caller says why it chose its floor."""
    import numpy as np

    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    scale = np.abs(expected).max(axis=axis, keepdims=True) if expected.size else 0.0
    floor = np.maximum(floor_fraction * scale, 1e-300)
    return np.abs(actual - expected) / np.maximum(np.abs(expected), floor)
