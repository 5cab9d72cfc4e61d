"""The batched kernel: many parameter sets in one C call, each equal to its single run.

Every set has its own parameters, coupling parameters, noise amplitudes, seed and initial
state; the reference is the same Simulation run alone. Same code, same arithmetic: the
comparisons are exact (bit for bit), not within a tolerance.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import mfgen
from mfgen.runtime.simulation import Simulation, SimulationError, TemporalAverage, run_batch

MODEL = "generic_2d_oscillator"


@pytest.fixture(scope="module")
def model():
    return mfgen.load(MODEL)


@pytest.fixture(scope="module")
def network():
    return mfgen.Connectivity.synthetic(6, seed=5)  # delays up to tens of steps


def _set(model, network, integrator, index, **extra):
    """Set `index`: everything that may vary per set differs from the other sets."""
    stochastic = integrator in ("euler_maruyama", "heun_stochastic")
    rng = np.random.default_rng(100 + index)
    initial = np.stack([rng.uniform(-2, 2, network.n_regions),
                        rng.uniform(-1, 1, network.n_regions)])
    options = dict(integrator=integrator, seed=11 + 7 * index,
                   parameters={"a": -1.0 + 0.6 * index, "tau": 1.0 + 0.2 * index},
                   coupling_parameters={"a": 0.01 * (index + 1)},
                   noise={"V": 1e-3 * (index + 1), "W": 2e-4} if stochastic else None,
                   initial_state=initial,
                   monitors=[mfgen.Raw(name="raw"), TemporalAverage(0.7, ["V"], "tavg")])
    options.update(extra)
    return Simulation(model, network, threads=1, **options)


def _assert_same(batched, single):
    assert batched.steps == single.steps
    np.testing.assert_array_equal(batched.final_state, single.final_state)
    for label, monitor in single.monitors.items():
        np.testing.assert_array_equal(batched[label].data, monitor.data)
        np.testing.assert_array_equal(batched[label].times, monitor.times)


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4", "euler_maruyama",
                                        "heun_stochastic"])
def test_every_set_equals_its_single_run(model, network, integrator):
    n_sets, duration = 5, 30.0
    # chunks of 77 steps: several kernel calls, none aligned with the monitor period
    outcomes = run_batch([_set(model, network, integrator, i) for i in range(n_sets)],
                         duration, threads=2, chunk_steps=77)
    for i, outcome in enumerate(outcomes):
        single = _set(model, network, integrator, i).run(duration)
        _assert_same(outcome, single)
    # the sets really differ (a batch that ran one set n times would pass the above only if
    # the references were equal too)
    finals = [o.final_state for o in outcomes]
    assert all(not np.array_equal(finals[0], f) for f in finals[1:])


def test_threads_and_per_node_parameters_do_not_change_a_set(model, network):
    per_node = np.linspace(-1.0, 0.5, network.n_regions)
    sets = [_set(model, network, "heun_stochastic", 0),
            _set(model, network, "heun_stochastic", 1, parameters={"a": per_node}),
            _set(model, network, "heun_stochastic", 2, coupling_precision="float32",
                 local_coupling=0.3)]
    one = run_batch(sets, 20.0, threads=1)
    again = [_set(model, network, "heun_stochastic", 0),
             _set(model, network, "heun_stochastic", 1, parameters={"a": per_node}),
             _set(model, network, "heun_stochastic", 2, coupling_precision="float32",
                  local_coupling=0.3)]
    two = run_batch(again, 20.0, threads=2, chunk_steps=33)
    for a, b in zip(one, two):
        _assert_same(a, b)
    single = _set(model, network, "heun_stochastic", 1, parameters={"a": per_node}).run(20.0)
    _assert_same(one[1], single)


def test_a_set_that_blows_up_fails_alone(model, network):
    sets = [_set(model, network, "heun", i) for i in range(3)]
    sets[1] = _set(model, network, "heun", 1, coupling_parameters={"a": 1e6})
    outcomes = run_batch(sets, 30.0, threads=2, chunk_steps=50)
    assert isinstance(outcomes[1], SimulationError)
    assert "non-finite value in" in str(outcomes[1])
    with pytest.raises(SimulationError) as alone:
        _set(model, network, "heun", 1, coupling_parameters={"a": 1e6}).run(30.0)
    assert str(outcomes[1]) == str(alone.value)  # same step, node and variable
    _assert_same(outcomes[1].result, alone.value.result)  # everything up to the blow-up
    for i in (0, 2):
        _assert_same(outcomes[i], _set(model, network, "heun", i).run(30.0))


def test_a_batch_refuses_what_it_cannot_run(model, network):
    same = _set(model, network, "heun", 0)
    with pytest.raises(ValueError, match="appears twice"):
        run_batch([same, same], 1.0)
    with pytest.raises(ValueError, match="one simulator module, integrator"):
        run_batch([_set(model, network, "heun", 0), _set(model, network, "rk4", 1)], 1.0)


def test_nothing_is_compiled_for_a_batch(network, tmp_path, monkeypatch):
    # A cache of its own, holding this model: the session's is shared with other test
    # processes (pytest-xdist). What a batch compiled would land in its model's cache.
    cache = tmp_path / "cache"
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(cache))
    model = mfgen.load(MODEL)
    run_batch([_set(model, network, "heun", 0)], 1.0)  # the simulator is built or loaded

    def files():
        return {os.path.join(d, f) for d, _, names in os.walk(cache) for f in names}

    before = files()
    run_batch([_set(model, network, "heun", i) for i in range(4)], 5.0, threads=2)
    assert files() == before


def test_batched_and_single_backends_give_the_same_sweep(model, network):
    options = dict(base={"integrator": "heun_stochastic", "noise": {"V": 1e-3, "W": 1e-3},
                         "seed": 3},
                   duration=40.0,
                   sweep={"a": [-1.0, 0.0, 0.5], "coupling.a": [0.0, 0.05, 1e6]},
                   measures={"transient": 10.0, "mean": ["V"], "std": ["V"],
                             "frequency": ["V"]},
                   workers=2, progress=False)
    batched = mfgen.sweep(model, network, backend="batched", **options)
    single = mfgen.sweep(model, network, backend="single", **options)
    assert (batched.status.values == single.status.values).all()
    assert (batched.status.values[:, 2] == "failed").all()  # coupling 1e6 blows up
    assert (batched.status.values[:, :2] == "done").all()
    np.testing.assert_array_equal(batched.reason.values, single.reason.values)
    for name in ("mean_V", "std_V", "peak_frequency_V", "peak_power_V"):
        np.testing.assert_array_equal(batched[name].values, single[name].values)
