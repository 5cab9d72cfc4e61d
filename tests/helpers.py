"""Shared test helpers (import them from here, not from conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The one relative-error measure, shared with `mfgen check` and the benchmarks.
from mfgen.runtime.checking import relative_error  # noqa: F401

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
