"""Simulations under numerical blow-ups and hostile inputs.

A blow-up stops the run at the first non-finite value and names the step, node and variable;
everything computed before it is kept. Bad arguments are Python exceptions that name them,
never a crash, a hang or a read outside the arrays (tests/test_sanitizers.py runs the loops
under AddressSanitizer).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mfgen
from mfgen import Connectivity

BLOWUP = """\
name: blowup
parameters:
  r: {default: 1.0}
state_variables:
  u: {range: [0.0, 1.0]}
  v: {range: [0.0, 1.0]}
coupling:
  c_0: u
derivatives:
  u: r * u * u + c_0
  v: -v + sqrt(1 - u)
"""
INITIAL = np.array([[0.1, 0.5, 0.9], [0.0, 0.0, 0.0]])
DT = 0.01
STOCHASTIC = {"euler_maruyama", "heun_stochastic"}


@pytest.fixture(scope="module")
def blowup(tmp_path_factory):
    path = tmp_path_factory.mktemp("blowup") / "blowup.yaml"
    path.write_text(BLOWUP)
    return mfgen.load(path)


def _euler_trajectory(steps: int) -> np.ndarray:
    """u' = u**2 (no network: c_0 = 0), v' = -v + sqrt(1 - u), by forward Euler in NumPy."""
    states = [INITIAL.copy()]
    with np.errstate(invalid="ignore"):
        for _ in range(steps):
            u, v = states[-1]
            states.append(np.array([u + DT * u * u, v + DT * (-v + np.sqrt(1 - u))]))
    return np.array(states[1:])


def _blow_up(model, integrator="euler", chunk_steps=2000, **options):
    noise = {"v": 1e-9} if integrator in STOCHASTIC else None
    with pytest.raises(mfgen.SimulationError) as caught:
        mfgen.simulate(model, None, initial_state=INITIAL, integrator=integrator, dt=DT,
                       duration=10.0, chunk_steps=chunk_steps, noise=noise, **options)
    return caught.value


def test_a_blow_up_names_step_node_and_variable_and_keeps_the_run_up_to_it(blowup):
    error = _blow_up(blowup)
    expected = _euler_trajectory(40)
    bad_step = int(np.argmax(~np.isfinite(expected).all(axis=(1, 2)))) + 1  # 1-based
    u, v = expected[bad_step - 1]
    assert np.isnan(v[2]) and np.isfinite(u).all() and np.isfinite(v[:2]).all()
    assert str(error).startswith(f"non-finite value in 'v' at node 2 in step {bad_step} "
                                 f"(t = {bad_step * DT:g} ms)")
    result = error.result
    assert result.steps == bad_step - 1
    raw = result["raw"]
    assert raw.data.shape == (bad_step - 1, 2, 3)
    np.testing.assert_allclose(raw.data, expected[: bad_step - 1], rtol=1e-12)
    np.testing.assert_allclose(raw.times, DT * np.arange(1, bad_step))


def test_an_overflow_to_infinity_is_a_blow_up_too(write_spec):
    """u' = u**2 overflows (inf, not NaN) at the node that starts highest."""
    model = mfgen.load(write_spec("""
name: explosive
parameters:
  r: {default: 1.0}
state_variables:
  u: {range: [0.0, 1.0]}
derivatives:
  u: r * u * u
""", "explosive.yaml"))
    initial = np.array([[0.1, 0.5, 2.0]])
    with pytest.raises(mfgen.SimulationError) as caught:
        mfgen.simulate(model, None, initial_state=initial, integrator="euler", dt=0.01,
                       duration=100.0)
    message = str(caught.value)
    assert "'u'" in message and "node 2" in message and "step" in message
    partial = caught.value.result
    assert np.isfinite(partial["raw"].data).all()
    assert 0 < partial.steps < 10000
    assert partial["raw"].data.shape[0] == partial.steps


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4", "euler_maruyama",
                                        "heun_stochastic"])
def test_every_integrator_stops_at_the_same_step_whatever_the_chunking(blowup, integrator):
    errors = [_blow_up(blowup, integrator, chunk) for chunk in (1, 3, 7, 2000)]
    assert len({str(e) for e in errors}) == 1, [str(e) for e in errors]
    for error in errors:
        assert "at node 2" in str(error)
        result = error.result
        for label, monitor in result.monitors.items():
            assert np.isfinite(monitor.data).all(), label
        assert result["raw"].data.shape[0] == result.steps


def test_a_blow_up_on_a_delayed_network_with_per_node_parameters(blowup):
    n = 6
    rng = np.random.default_rng(11)
    connectivity = Connectivity(rng.uniform(0, 0.01, (n, n)), rng.uniform(0, 30, (n, n)))
    r = np.full(n, 0.5)
    r[4] = 40.0  # this node explodes first
    initial = np.vstack([np.full(n, 0.5), np.zeros(n)])
    with pytest.raises(mfgen.SimulationError, match="at node 4 in step") as caught:
        mfgen.simulate(blowup, connectivity, initial_state=initial, integrator="heun", dt=DT,
                       duration=50.0, parameters={"r": r},
                       monitors=[mfgen.Raw(), mfgen.TemporalAverage(0.05, ["u"])])
    result = caught.value.result
    assert result.steps > 0 and np.isfinite(result["raw"].data).all()
    assert np.isfinite(result["temporal_average"].data).all()


def test_the_final_state_of_a_stopped_run_is_the_last_finite_state(blowup):
    error = _blow_up(blowup)
    np.testing.assert_array_equal(error.result.final_state, error.result["raw"].data[-1])


def _simulation(model, **options):
    return mfgen.Simulation(model, Connectivity.synthetic(4, seed=1), **options)


@pytest.mark.parametrize(("options", "error", "message"), [
    (dict(dt=float("nan")), ValueError, "dt must be positive, got nan"),
    (dict(dt=-0.1), ValueError, "dt must be positive"),
    (dict(integrator="heun_stochastic", noise={"u": -1.0}), ValueError,
     "noise amplitudes .nsig. must be finite and non-negative"),
    (dict(integrator="heun_stochastic", noise={"u": float("nan")}), ValueError,
     "noise amplitudes .nsig. must be finite and non-negative"),
    (dict(initial_state=np.full((2, 4), np.nan)), ValueError,
     "initial_state contains NaN or infinite values"),
    (dict(initial_history=np.zeros((3, 2, 5))), ValueError,
     r"initial_history must have shape \(n_times, 2, 4\)"),
    (dict(parameters={"r": np.nan}), ValueError, "parameter 'r' contains NaN"),
    (dict(parameters={"r": np.ones(5)}), ValueError, r"parameter 'r' must have shape"),
    (dict(parameters={"q": 1.0}), TypeError, "model 'blowup' has no parameter 'q'"),
])
def test_bad_simulation_arguments_are_named(blowup, options, error, message):
    with pytest.raises(error, match=message):
        _simulation(blowup, **options)


def test_bad_run_arguments_are_named(blowup):
    simulation = _simulation(blowup, integrator="heun_stochastic", noise={"u": 0.1})
    with pytest.raises(ValueError, match="duration -1.0 ms is not a non-negative multiple"):
        simulation.run(-1.0)
    with pytest.raises(ValueError, match=r"noise_array must have shape \(10, 2, 4\)"):
        simulation.run(1.0, noise_array=np.zeros((10, 2, 3)))


@pytest.mark.parametrize("case", ["local_coupling", "coupling_parameter", "duration_nan",
                                  "duration_inf", "monitor_period", "n_nodes"])
def test_more_bad_simulation_arguments_are_named(blowup, case):
    build = {
        "local_coupling": lambda: _simulation(blowup, local_coupling=float("nan")),
        "coupling_parameter": lambda: _simulation(blowup, coupling_parameters={"a": np.nan}),
        "duration_nan": lambda: _simulation(blowup).run(float("nan")),
        "duration_inf": lambda: _simulation(blowup).run(float("inf")),
        "monitor_period": lambda: _simulation(blowup,
                                              monitors=[mfgen.SubSample(float("nan"))]),
        "n_nodes": lambda: mfgen.Simulation(blowup, None, n_nodes=-3),
    }[case]
    names = {"local_coupling": "local_coupling", "coupling_parameter": "'a'",
             "duration_nan": "duration", "duration_inf": "duration",
             "monitor_period": "period", "n_nodes": "n_nodes"}
    with pytest.raises(ValueError, match=names[case]):
        build()


HAZARDS = """
import signal, numpy as np, mfgen
from mfgen import Connectivity
model = mfgen.load({spec!r})

def alarm(*_):
    raise TimeoutError
signal.signal(signal.SIGALRM, alarm)
for chunk in (0, -5):
    signal.alarm(3)
    try:
        mfgen.Simulation(model, Connectivity.synthetic(4)).run(1.0, chunk_steps=chunk)
        print("RAN", chunk)
    except ValueError as exc:
        print("REFUSED", chunk, exc)
    except TimeoutError:
        print("HUNG", chunk)
    finally:
        signal.alarm(0)
"""
OVERFLOW = """
import warnings, numpy as np, mfgen
from mfgen import Connectivity
model = mfgen.load({spec!r})
warnings.simplefilter("ignore")
# 2.2e9 mm at 1 mm/ms and dt = 0.1 ms: 2.2e10 steps, beyond int32
connectivity = Connectivity(np.ones((2, 2)), np.full((2, 2), 2.2e9), speed=1.0)
try:
    mfgen.Simulation(model, connectivity, dt=0.1,
                     initial_state=np.full((2, 2), 0.01)).run(1.0)
    print("RAN")
except (ValueError, MemoryError, mfgen.MfgenError) as exc:
    print("REFUSED", exc)
"""


def _hazard(script: str, tmp_path) -> subprocess.CompletedProcess:
    spec = tmp_path / "blowup.yaml"
    spec.write_text(BLOWUP)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script).format(spec=str(spec))],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_a_non_positive_chunk_size_is_refused_not_an_endless_loop(blowup, tmp_path):
    run = _hazard(HAZARDS, tmp_path)
    assert "REFUSED 0" in run.stdout and "REFUSED -5" in run.stdout, run.stdout + run.stderr


def test_a_delay_beyond_int32_is_refused_not_a_segfault(blowup, tmp_path):
    run = _hazard(OVERFLOW, tmp_path)
    assert run.returncode == 0 and "REFUSED" in run.stdout, (run.returncode, run.stderr[-2000:])
