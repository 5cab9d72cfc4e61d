"""Shared test helpers (import them from here, not from conftest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# The one relative-error measure, shared with `mfgen check` and the benchmarks.
from mfgen.runtime.checking import relative_error  # noqa: F401

FIRST_ORDER_SPECS = [
    "generic_2d_oscillator",
    "zerlaut_adaptation_first_order",
    "tvb_adex_first_order",
    "zerlaut_2018_first_order",
]


def thread_counts(model: Any, *counts: int) -> tuple[int, ...]:
    """The thread counts a test runs: all of `counts` where the simulator was built with
    threads (the default OpenMP target), only the single-thread ones where it was not
    (MFGEN_TARGET=c)."""
    threaded = model.simulator_module.lib.mf_max_threads() >= 2
    return tuple(count for count in counts if threaded or count == 1)


def run_in_processes(target: Callable[..., Any], args: tuple, count: int) -> list:
    """Start `count` processes running target(*args, queue) at once; return what each put on
    the queue, after checking that every one exited cleanly.

    Forked where the platform forks (mfgen's builds fork too): a spawned process would spend
    ~1 s importing NumPy, SymPy and mfgen first, and the processes would overlap less."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    queue = context.Queue()
    workers = [context.Process(target=target, args=(*args, queue)) for _ in range(count)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return results


def narray_traits(cls: type) -> dict:
    """A TVB model class's NArray traits (its parameters), by name."""
    from tvb.basic.neotraits.api import NArray
    return {name: getattr(cls, name) for name in cls.declarative_attrs
            if isinstance(getattr(cls, name), NArray)}


def open_bound(value: float) -> float | None:
    """TVB writes an open boundary as +-float max (sys.float_info.max) or inf; mfgen as None."""
    return None if abs(value) >= np.finfo(float).max else float(value)


def assert_traits_are_tvbs(model: Any, cls: type, left_out: set[str] = frozenset(),
                           derived: set[str] = frozenset()) -> None:
    """The spec's parameters (defaults, ranges), states (ranges, boundaries) and cvar are the
    TVB class's, `left_out` parameters excepted; `derived` parameters are attributes TVB's
    configure() computes (the ReducedSet mode tables), with the configured values as
    defaults (TVB's (1, n_modes) rows as (n_modes,))."""
    tvb = cls()
    tvb.configure()
    traits = narray_traits(cls)
    assert set(model.parameters) == set(traits) - set(left_out) | set(derived)
    for name in derived:
        expected = np.asarray(getattr(tvb, name))
        np.testing.assert_array_equal(model.parameters[name],
                                      expected.reshape(np.shape(model.parameters[name])),
                                      err_msg=name)
        assert model.parameter_info[name].range is None, name
    for name in set(model.parameters) - set(derived):
        trait = traits[name]
        np.testing.assert_array_equal(model.parameters[name], getattr(tvb, name), err_msg=name)
        domain = (trait.domain.lo, trait.domain.hi) if trait.domain is not None else None
        if trait.dtype == bool:
            domain = None
        assert model.parameter_info[name].range == domain, name
    assert list(model.state_variables) == list(tvb.state_variables)
    assert list(model.cvar) == list(tvb.cvar)
    for name, (low, high) in tvb.state_variable_range.items():
        assert model.states[name].range == (low, high), name
    boundaries = getattr(tvb, "state_variable_boundaries", None) or {}
    for name in model.state_variables:
        expected = (None, None)
        if name in boundaries:
            expected = (open_bound(boundaries[name][0]), open_bound(boundaries[name][1]))
        assert model.states[name].boundaries == expected, name


def run_interrupted_then_resumed(config: Any, folder: Path,
                                 before_resume: Callable[[Path], None] | None = None
                                 ) -> tuple[Any, Any, Any]:
    """`run_to_file` of a run config three ways: complete, stopped by a Ctrl-C raised from the
    progress callback at its third call (two chunks written), and that file resumed (after
    `before_resume(stopped file)`, if given). Returns (complete, stopped, resumed) results."""
    from mfgen.runtime.results import load_result, run_to_file

    complete = run_to_file(config, folder / "complete.h5")
    calls = []

    def interrupt_after_two_chunks(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    try:
        run_to_file(config, folder / "stopped.h5", progress=interrupt_after_two_chunks)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    stopped = load_result(folder / "stopped.h5")
    if before_resume is not None:
        before_resume(folder / "stopped.h5")
    resumed = run_to_file(config, folder / "stopped.h5", resume=True)
    return complete, stopped, resumed


def tvb_connectivity(network: Any) -> Any:
    """TVB's Connectivity for an mfgen Connectivity (same weights, lengths, centres, labels and
    speed), configured."""
    from tvb.datatypes.connectivity import Connectivity as TVBConnectivity

    centres = (np.zeros((network.n_regions, 3)) if network.centres is None
               else np.asarray(network.centres, dtype=float).copy())
    connectivity = TVBConnectivity(
        weights=network.weights.copy(), tract_lengths=network.tract_lengths.copy(),
        centres=centres, region_labels=np.array(network.region_labels),
        speed=np.array([network.speed]))
    connectivity.configure()
    return connectivity


def states_in_ranges(model: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n_states, n) states uniform in each state's range (its check_range where the range is
    a single point, as TVB writes some of them)."""
    state = np.empty((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = model.states[name].range
        if low == high:
            low, high = model.states[name].check_range
        state[k] = rng.uniform(low, high, n)
    return state
