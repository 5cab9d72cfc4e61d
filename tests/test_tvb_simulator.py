"""mfgen's whole-network loop against the real TVB 2.10 simulator (tvb-library, a test
dependency): TVB's Generic2dOscillator and ZerlautAdaptationFirstOrder on a 76-region network
with delays, Linear coupling, Heun (deterministic, and stochastic with the same noise given to
both), Raw and TemporalAverage monitors, 1 000 steps.

How the two runs are lined up (TVB 2.10, tvb/simulator/history.py and simulator.py):
* Connectome: `mfgen.Connectivity.synthetic(76)` plus self-connections of zero length on every
  other node (delay 0, like the 66 of TVB's default connectome), handed to both; no tvb-data.
* History: TVB gets `initial_conditions` of shape (horizon, n_state, n_nodes, 1) with its own
  horizon (the largest delay over ALL pairs, 345 steps here, where mfgen's ring only spans the
  non-zero weights). TVB then sets `current_step = horizon - 1`, its ring slot t % horizon holds
  step t, and the first step's coupling at delay d reads entry horizon - 1 - d; the initial
  state is the last entry. That is mfgen's `initial_history` (oldest first, last = t0) as is.
* Samples: TVB numbers the steps it takes from `horizon`, so its Raw sample k (k = 1 ..) is at
  (horizon - 1 + k) dt where mfgen's is at k dt. TVB's TemporalAverage closes a window when
  step % istep == 0 on that same counter: its windows are mfgen's only when istep divides
  horizon - 1 (else TVB's first window is partial and padded with zeros), so the period here
  is 8 steps (344 = 8 x 43).
* Noise: TVB's Additive noise draws `random_stream.normal(size=(n_state, n_nodes, 1))` once per
  step from `RandomState(noise_seed)` (all states, also the noise-free ones) and scales it by
  sqrt(dt) sqrt(2 nsig); mfgen gets the same standard normals as `noise_array`.
* Coupling: TVB keeps history and weights in float32, sums each row with NumPy's add.reduceat
  (first term + pairwise sum of the rest) and stores the sums as float32;
  `coupling_precision="float32"` reproduces that, and the traces agree to 1e-14 .. 6e-11
  (the larger figures at zero crossings of V, relative to the 1e-6 floor: ulp-level absolute
  differences). With mfgen's default float64 coupling the largest relative differences
  measured here are, raw / averaged: Generic2dOscillator 6.7e-5 / 1.6e-4 (deterministic),
  2.8e-5 / 1.0e-4 (stochastic), both near zero crossings; Zerlaut 9.1e-8 / 8.9e-8 and
  9.4e-8 / 9.4e-8. That is TVB's float32 rounding, and why the float32 mode exists.
"""

from __future__ import annotations

import helpers
import numpy as np
import pytest
from tvb.simulator import coupling, integrators, models, monitors, noise, simulator

import mfgen

DT = 0.1
N_STEPS = 1000
AVERAGE_STEPS = 8  # divides TVB's horizon - 1 (see the module docstring)
SPEED = 4.0
TOLERANCE = 1e-8
FLOAT64_TOLERANCE = 1e-3  # mfgen's default float64 coupling vs TVB's float32 (measured <= 1.6e-4)

# Zerlaut at physiological rates on this network: every node stays between ~1 and ~20 Hz (mean
# ~3 Hz), none silent or saturated (TVB's defaults without drive are silent or near 190 Hz).
ZERLAUT_PARAMETERS = {"b_e": 10.0, "external_input_ex_ex": 0.315e-3,
                      "external_input_in_ex": 0.315e-3, "weight_noise": 1e-4}
CASES = {  # model: (mfgen spec, TVB class, Linear a, nsig for the stochastic run)
    "Generic2dOscillator": ("tvb_generic_2d_oscillator", models.Generic2dOscillator, 0.1,
                            {"V": 1e-3, "W": 1e-3}),
    "ZerlautAdaptationFirstOrder": ("tvb_zerlaut_adaptation_first_order",
                                    models.ZerlautAdaptationFirstOrder, 0.2, {"ou_drift": 1.0}),
}


@pytest.fixture(scope="module")
def network() -> mfgen.Connectivity:
    base = mfgen.Connectivity.synthetic(76)
    weights = base.weights.copy()
    nodes = np.arange(0, 76, 2)
    weights[nodes, nodes] = 0.5  # zero-length self-connections: delay 0
    return mfgen.Connectivity(weights, base.tract_lengths, SPEED, list(base.region_labels),
                              base.centres, source="synthetic(76) + self-connections")


def tvb_horizon(network: mfgen.Connectivity) -> int:
    return int(np.rint(network.tract_lengths / network.speed / DT).max()) + 1


def initial_history(model_name: str, horizon: int) -> np.ndarray:
    """(horizon, n_state, n_nodes): a different random state at every history step."""
    rng = np.random.default_rng(20261128)
    shape = (horizon, 76)
    if model_name == "Generic2dOscillator":
        return np.stack([rng.uniform(-2.0, 4.0, shape), rng.uniform(-6.0, 6.0, shape)], axis=1)
    history = np.zeros((horizon, 5, 76))  # E, I (kHz), W_e, W_i, ou_drift
    history[:, 0] = rng.uniform(0.001, 0.003, shape)
    history[:, 1] = rng.uniform(0.005, 0.010, shape)
    history[:, 2] = rng.uniform(0.0, 10.0, shape)
    return history


def run_tvb(model_name, network, history, stochastic, seed=7):
    _, model_class, a, nsig = CASES[model_name]
    parameters = ZERLAUT_PARAMETERS if model_name.startswith("Zerlaut") else {}
    model = model_class(**{k: np.array([v]) for k, v in parameters.items()})
    model.variables_of_interest = tuple(model.state_variables)
    if stochastic:
        amplitudes = np.array([nsig.get(s, 0.0) for s in model.state_variables])
        integrator = integrators.HeunStochastic(
            dt=DT, noise=noise.Additive(nsig=amplitudes, noise_seed=seed))
    else:
        integrator = integrators.HeunDeterministic(dt=DT)
    sim = simulator.Simulator(
        model=model, connectivity=helpers.tvb_connectivity(network),
        coupling=coupling.Linear(a=np.array([a]), b=np.array([0.0])), integrator=integrator,
        monitors=(monitors.Raw(), monitors.TemporalAverage(period=AVERAGE_STEPS * DT)),
        initial_conditions=history[..., None].copy(), simulation_length=N_STEPS * DT)
    sim.configure()
    horizon = history.shape[0]
    assert sim.connectivity.horizon == horizon and sim.current_step == horizon - 1
    assert (horizon - 1) % AVERAGE_STEPS == 0, "TemporalAverage windows would not line up"
    (raw_times, raw), (average_times, average) = sim.run()
    return raw_times, raw[..., 0], average_times, average[..., 0]


def run_mfgen(model_name, network, history, normals, precision, order="auto"):
    spec, _, a, nsig = CASES[model_name]
    parameters = ZERLAUT_PARAMETERS if model_name.startswith("Zerlaut") else {}
    result = mfgen.simulate(
        mfgen.load(spec), network, duration=N_STEPS * DT, dt=DT, coupling="linear",
        coupling_parameters={"a": a, "b": 0.0},
        integrator="heun" if normals is None else "heun_stochastic",
        noise=None if normals is None else nsig, noise_array=normals,
        initial_history=history, parameters=parameters, coupling_precision=precision,
        monitors=[mfgen.Raw(), mfgen.TemporalAverage(AVERAGE_STEPS * DT)], coupling_order=order)
    assert order == "auto" or result.config["coupling_order"] == order
    return result["raw"], result["temporal_average"]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest |actual - expected| / |expected|, with a floor of 1e-6 of each variable's
    largest magnitude (variables that stay exactly 0, like W_i, must then match exactly)."""
    return float(helpers.relative_error(actual, expected, 1e-6, axis=(0, 2)).max())


@pytest.mark.parametrize("stochastic", [False, True], ids=["heun", "heun_stochastic"])
@pytest.mark.parametrize("model_name", list(CASES))
def test_same_traces_as_tvb(model_name, stochastic, network):
    horizon = tvb_horizon(network)
    history = initial_history(model_name, horizon)
    raw_times, raw, average_times, average = run_tvb(model_name, network, history, stochastic)

    normals = None
    if stochastic:  # TVB's stream: one normal(size=(n_state, n_nodes, 1)) per step
        normals = np.random.RandomState(7).normal(size=(N_STEPS,) + history.shape[1:] + (1,))
        normals = normals[..., 0]
    mf_raw, mf_average = run_mfgen(model_name, network, history, normals, "float32")

    offset = (horizon - 1) * DT  # TVB's step counter starts at horizon
    assert raw.shape == mf_raw.data.shape == (N_STEPS, history.shape[1], 76)
    assert average.shape == mf_average.data.shape == (N_STEPS // AVERAGE_STEPS,) + raw.shape[1:]
    np.testing.assert_allclose(raw_times, mf_raw.times + offset, rtol=0, atol=1e-9)
    np.testing.assert_allclose(average_times, mf_average.times + offset, rtol=0, atol=1e-9)
    assert relative_error(mf_raw.data, raw) <= TOLERANCE
    assert relative_error(mf_average.data, average) <= TOLERANCE

    # The comparison means something: states move far from the start, and for Zerlaut stay
    # at physiological rates (kHz).
    assert np.abs(raw[-1, 0] - history[-1, 0]).max() > 0.1 * np.abs(history[:, 0]).max()
    if model_name.startswith("Zerlaut"):
        assert 0.0005 < raw[-1, 0].min() and raw[:, 0].max() < 0.05
        if stochastic:
            assert np.abs(raw[:, 4]).max() > 1.0  # the OU state is driven

    # mfgen's default float64 coupling is close to TVB, but not within TOLERANCE (docstring).
    raw64, average64 = run_mfgen(model_name, network, history, normals, "float64")
    assert TOLERANCE < relative_error(raw64.data, raw) <= FLOAT64_TOLERANCE
    assert relative_error(average64.data, average) <= FLOAT64_TOLERANCE


# dV/dt = c_0, dW/dt = 0: Euler steps of this Generic2dOscillator add dt times the coupling.
G2D_PROBE = {"alpha": 0.0, "f": 0.0, "e": 0.0, "g": 0.0, "I": 0.0, "d": 1.0, "tau": 1.0,
             "gamma": 1.0, "a": 0.0, "b": 0.0, "c": 0.0, "beta": 0.0}


def probe_network(seed: int, shortest_mm: float, self_loops: bool = False
                  ) -> tuple[mfgen.Connectivity, np.ndarray]:
    """200 nodes whose rows have 0 to 199 non-zero weights (NumPy's pairwise sum in all its
    branches), tracts of shortest_mm to 30 mm (with `self_loops`, a zero-length
    self-connection at every third node, as TVB's default connectome has), and a random
    history of V (W = 0)."""
    n, rng = 200, np.random.default_rng(seed)
    counts = rng.permutation(np.r_[0, 1, 7, 8, 9, 129, 130, 199, rng.integers(2, 200, n - 8)])
    weights = np.zeros((n, n))
    for i, count in enumerate(counts):
        columns = rng.choice(np.r_[0:i, i + 1:n], size=count, replace=False)
        weights[i, columns] = rng.lognormal(0.0, 1.0, count)
    lengths = rng.uniform(shortest_mm, 30.0, (n, n))
    if self_loops:
        nodes = np.arange(0, n, 3)
        weights[nodes, nodes] = rng.lognormal(0.0, 1.0, nodes.size)
        lengths[nodes, nodes] = 0.0
    network = mfgen.Connectivity(weights, lengths, SPEED, centres=rng.normal(size=(n, 3)))
    horizon = tvb_horizon(network)
    history = np.stack([rng.uniform(-2.0, 2.0, (horizon, n)), np.zeros((horizon, n))], axis=1)
    return network, history


def tvb_probe(network, history, tvb_coupling, parameters, steps: int):
    """TVB's Simulator of the probe, configured for `steps` Euler steps."""
    sim = simulator.Simulator(
        model=models.Generic2dOscillator(**{k: np.array([v]) for k, v in G2D_PROBE.items()}),
        connectivity=helpers.tvb_connectivity(network),
        coupling=tvb_coupling(**{k: np.array([v]) for k, v in parameters.items()}),
        integrator=integrators.EulerDeterministic(dt=DT), monitors=(monitors.Raw(),),
        initial_conditions=history[..., None].copy(), simulation_length=steps * DT)
    sim.configure()
    return sim


@pytest.mark.parametrize("self_loops", [False, True], ids=["", "self-loops"])
@pytest.mark.parametrize("name, tvb_coupling, parameters", [
    ("linear", coupling.Linear, {"a": 1.0, "b": 0.1}),
    ("scaling", coupling.Scaling, {"a": 0.7}),
])
def test_coupling_blocks_are_tvbs_float32_coupling_to_the_last_bit(name, tvb_coupling,
                                                                  parameters, self_loops):
    """Every step of a coupling block against TVB's own float32 coupling: on a network whose
    delays are all at least 8 steps, 8 Euler steps of dV/dt = c_0 all read the initial history,
    so V's trace is the running sum of 8 steps of coupling, all computed by one block (with
    zero-length self-connections, each step adds the node's own value then); rows of 0 to 199
    non-zero weights (NumPy's pairwise sum in all its branches). (TVB's Sigmoidal,
    the third coupling blocks run, is not a SparseCoupling in TVB 2.10: it sums the dense
    weight matrix, in another order, so no bundled coupling is its bits.)"""
    network, history = probe_network(6, shortest_mm=3.2, self_loops=self_loops)  # 8-75 steps
    steps = 8
    ((_, tvb_raw),) = tvb_probe(network, history, tvb_coupling, parameters, steps).run()
    tvb_v = tvb_raw[:, 0, :, 0]

    def mfgen_v(precision: str) -> np.ndarray:
        result = mfgen.simulate(
            mfgen.load("tvb_generic_2d_oscillator"), network, duration=steps * DT, dt=DT,
            integrator="euler", coupling=name, coupling_parameters=parameters,
            initial_history=history, parameters=G2D_PROBE, coupling_precision=precision,
            coupling_order="blocks")
        assert result.config["coupling_order"] == "blocks"
        return result["raw"]["V"]

    def error(v: np.ndarray) -> float:
        step = np.diff(np.vstack([history[-1, 0], tvb_v]), axis=0)   # dt * coupling
        return float(helpers.relative_error(np.diff(np.vstack([history[-1, 0], v]), axis=0),
                                            step, 1e-3, axis=None).max())

    assert tvb_v.shape == (steps, network.n_regions)
    assert error(mfgen_v("float32")) < 1e-11
    assert error(mfgen_v("float64")) > 1e-9  # TVB's float32 rounding is visible


def test_coupling_blocks_give_tvbs_traces(network):
    """Without the zero-length self-connections, and with tracts of at least 3 mm, every
    delay is at least 8 steps, so mfgen computes the Linear coupling 8 steps at a time from
    its history (coupling blocks): the traces are TVB's to the same tolerance as with a
    coupling per step."""
    far = mfgen.Connectivity(network.weights * (1.0 - np.eye(76)),
                             np.maximum(network.tract_lengths, 3.0), SPEED,
                             source="synthetic(76), tracts >= 3 mm")
    history = initial_history("Generic2dOscillator", tvb_horizon(far))
    _, raw, _, average = run_tvb("Generic2dOscillator", far, history, stochastic=True)
    normals = np.random.RandomState(7).normal(size=(N_STEPS,) + history.shape[1:])
    mf_raw, mf_average = run_mfgen("Generic2dOscillator", far, history, normals, "float32",
                                   order="blocks")
    assert relative_error(mf_raw.data, raw) <= TOLERANCE
    assert relative_error(mf_average.data, average) <= TOLERANCE
    assert np.abs(raw[-1, 0] - history[-1, 0]).max() > 0.1 * np.abs(history[:, 0]).max()


@pytest.mark.parametrize("name, tvb_coupling, parameters", [
    ("linear", coupling.Linear, {"a": 1.0, "b": 0.1}),
    ("scaling", coupling.Scaling, {"a": 1.0}),
    ("difference", coupling.Difference, {"a": 1.0}),
    ("hyperbolic_tangent", coupling.HyperbolicTangent,
     {"a": 0.5, "b": 1.3, "midpoint": 0.2, "sigma": 0.7}),
])
def test_float32_coupling_is_tvbs_to_the_last_bit(name, tvb_coupling, parameters):
    """The float32 mode sums each row in NumPy's add.reduceat order (first term + pairwise
    sum: 8 interleaved partial sums, blocks split above 128 terms), so its coupling is TVB's
    bit for bit; a plain running sum differs by float32 rounding (~1e-7 relative).

    One Euler step of a Generic2dOscillator reduced to dV/dt = c_0, dW/dt = 0 on a network
    whose rows have 0 to 199 non-zero weights: (V1 - V0) / dt is the coupling."""
    network, history = probe_network(5, shortest_mm=1.0)  # delays 3 .. 75 steps
    sim = tvb_probe(network, history, tvb_coupling, parameters, 1)
    tvb_c = sim.coupling(sim.current_step + 1, sim.history)[0, :, 0]

    def mfgen_coupling(precision: str) -> np.ndarray:
        result = mfgen.simulate(
            mfgen.load("tvb_generic_2d_oscillator"), network, duration=DT, dt=DT,
            integrator="euler", coupling=name, coupling_parameters=parameters,
            initial_history=history, parameters=G2D_PROBE, coupling_precision=precision)
        return (result["raw"]["V"][0] - history[-1, 0]) / DT

    def error(c: np.ndarray) -> float:
        return float(helpers.relative_error(c, tvb_c, 1e-3, axis=None).max())

    assert error(mfgen_coupling("float32")) < 1e-11
    assert error(mfgen_coupling("float64")) > 1e-9  # TVB's float32 rounding is visible
