"""Shared fixtures. A test session builds into one fresh cache directory, removed at its end;
under pytest-xdist the controller creates it and every worker builds into it (the cache is
safe for concurrent builders), so a model is compiled once per session, not once per worker.
Helpers live in tests/helpers.py."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import tempfile
import threading

import numpy as np
import pytest

_CACHE_DIR: str | None = None
_WORKER_INPUT_KEY = "mfgen_cache_dir"


def _restore_ctrl_c() -> None:
    """A shell without job control starts `make test &` with SIGINT ignored, and an ignored
    signal stays ignored across fork and exec: the tests that send a real Ctrl-C (to this
    process or to an `mfgen run` child) would see nothing happen. Python's own handler, as an
    interactive start installs it; children exec'd from here then start with the default."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports mfgen: the session's cache, so no test reads or writes
    the user's cache (an MFGEN_CACHE_DIR already set by a parent run is replaced too)."""
    global _CACHE_DIR
    _restore_ctrl_c()
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:  # an xdist worker: the controller owns the cache
        os.environ["MFGEN_CACHE_DIR"] = worker_input[_WORKER_INPUT_KEY]
        return
    _CACHE_DIR = tempfile.mkdtemp(prefix="mfgen-test-cache-")
    os.environ["MFGEN_CACHE_DIR"] = _CACHE_DIR


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist: runs in the controller for each worker
    node.workerinput[_WORKER_INPUT_KEY] = _CACHE_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_DIR is not None:  # the controller (or a run without xdist) only
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
    # The session is over: the interpreter's exit need not walk every object still alive
    # (SymPy's caches, TVB's numba functions) in a last garbage collection. That took ~1 s
    # per process, which the xdist controller waits for; atexit handlers still run.
    gc.freeze()


# The modules that take longest (wall time per module, measured under `make test` on an idle
# 2-core machine), started first: `make test` hands whole modules to its workers (--dist
# loadfile, so a module's module-scoped fixtures are set up once) in collection order, and
# --no-loadscope-reorder keeps xdist (>= 3.8) from reordering them by their number of tests.
# Longest first, so no worker is left running one of these alone at the end.
SLOWEST_MODULES_FIRST = ("test_second_order", "test_sanitizers", "test_build_budget",
                         "test_tvb_zoo", "test_second_order_mpmath", "test_cli", "test_cache",
                         "test_cache_damage", "test_simulation", "test_sweep_dask", "test_fuzz",
                         "test_simulation_engine", "test_hostile_specs", "test_tvb_bridge",
                         "test_results")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # only xdist workers collect for the scheduler
        return
    rank = {name: i for i, name in enumerate(SLOWEST_MODULES_FIRST)}
    # A stable sort: each module's tests keep their order.
    items.sort(key=lambda item: rank.get(getattr(item.module, "__name__", ""), len(rank)))


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
