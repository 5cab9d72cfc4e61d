"""Shared fixtures. Every test session builds into its own fresh cache directory."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

# Set before mfgen is imported anywhere, so no test reads or writes the user's cache.
os.environ["MFGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="mfgen-test-cache-")

FIRST_ORDER_SPECS = [
    "generic_2d_oscillator",
    "zerlaut_adaptation_first_order",
    "tvb_adex_first_order",
    "zerlaut_2018_first_order",
]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)


@pytest.fixture
def write_spec(tmp_path):
    """Write YAML text to a spec file in tmp_path and return its path."""

    def write(text: str, name: str = "model.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def run_in_processes(target, args: tuple, count: int) -> list:
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
