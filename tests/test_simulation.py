"""Simulations in generated C: vs a NumPy reference loop, convergence orders, noise
statistics, reproducibility, monitors (blow-ups: test_simulation_robustness.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import relative_error
from simulation_reference import simulate_reference

import mfgen
from mfgen.runtime.connectivity import Connectivity

LINEAR_SPEC = """
name: linear_rotation_and_ou
parameters:
  k: {default: 1.0, range: [0.5, 2.0]}
  tau: {default: 5.0, range: [1.0, 10.0]}
state_variables:
  x: {range: [-1.0, 1.0]}
  y: {range: [-1.0, 1.0]}
  ou: {range: [0.0, 0.0]}
coupling:
  c_0: x
derivatives:
  x: -k * y + c_0
  y: k * x
  ou: -ou / tau
"""


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory):
    """A rotation (x, y) and an OU process (ou): compiled once for every test here."""
    path = tmp_path_factory.mktemp("linear") / "linear.yaml"
    path.write_text(LINEAR_SPEC)
    return mfgen.load(path)


@pytest.fixture(scope="module")
def network():
    return Connectivity.synthetic(76, seed=7)


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4", "euler_maruyama",
                                        "heun_stochastic"])
def test_c_loop_matches_numpy_reference_loop_on_a_delayed_network(integrator, network, rng):
    model = mfgen.load("tvb_adex_first_order")
    n, dt, steps = network.n_regions, 0.1, 1000
    state = np.zeros((model.n_states, n))
    state[0] = rng.uniform(0.001, 0.02, n)
    state[1] = rng.uniform(0.005, 0.03, n)
    state[2] = rng.uniform(0, 50, n)
    stochastic = integrator in ("euler_maruyama", "heun_stochastic")
    nsig = np.array([0, 0, 0, 0, 1.0]) if stochastic else None
    normals = rng.standard_normal((steps, model.n_states, n)) if stochastic else None
    parameters = {"weight_noise": 1e-4, "external_input_ex_ex": 0.315e-3,
                  "external_input_in_ex": 0.315e-3, "b_e": 10.0}
    coupling = {"a": 0.3, "b": 0.0}
    simulation = mfgen.Simulation(
        model, network, coupling="linear", coupling_parameters=coupling,
        integrator=integrator, dt=dt, initial_state=state, parameters=parameters,
        noise={"noise": 1.0} if stochastic else None, monitors=[mfgen.Raw()])
    assert simulation.horizon > 100  # real delays
    result = simulation.run(steps * dt, noise_array=normals)
    lower = np.array([0.0, 0.0, -np.inf, -np.inf, -np.inf])
    upper = np.full(5, np.inf)
    expected = simulate_reference(
        lambda x, c: model.reference.dfun(x, c, 0.0, **parameters), state, network.weights,
        network.delays(dt), model.cvar, steps, dt, integrator, lower, upper,
        coupling_a=coupling["a"], nsig=nsig, normals=normals)
    traces = result["raw"].data
    assert traces.shape == expected.shape
    # floor: 1e-6 of each variable's largest value (W_i and the OU state cross zero)
    assert relative_error(traces, expected, 1e-6, axis=(0, 2)).max() <= 1e-10
    assert np.abs(expected[-1, 0] - state[0]).max() > 1e-4, "the network should move"


def convergence_slope(integrator, model):
    errors, dts = [], [0.2, 0.1, 0.05, 0.025]
    for dt in dts:
        simulation = mfgen.Simulation(model, None, integrator=integrator, dt=dt,
                                      initial_state=np.array([[1.0], [0.0], [0.0]]),
                                      monitors=[mfgen.Raw(["x", "y"])])
        result = simulation.run(2.0)
        final = result["raw"].data[-1, :, 0]
        exact = np.array([np.cos(2.0), np.sin(2.0)])  # x' = -y, y' = x
        errors.append(np.abs(final - exact).max())
    return np.polyfit(np.log(dts), np.log(errors), 1)[0]


@pytest.mark.parametrize("integrator, order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_convergence_order(integrator, order, linear_model):
    assert abs(convergence_slope(integrator, linear_model) - order) < 0.2


def test_ou_state_has_the_stationary_variance_nsig_tau(linear_model):
    model = linear_model
    n, dt, nsig, tau = 4000, 0.01, 0.5, 5.0
    simulation = mfgen.Simulation(
        model, None, n_nodes=n, integrator="heun_stochastic", dt=dt,
        noise={"ou": nsig}, initial_state=np.zeros((3, n)), seed=3,
        parameters={"tau": tau}, monitors=[mfgen.SubSample(5.0, ["ou"])])
    simulation.run(25.0)  # burn-in of 5 tau
    samples = simulation.run(100.0)["subsample"].data[4:, 0]  # 16 samples, 1 tau apart
    variance = samples.var()
    expected = nsig * tau  # Var = nsig * tau for dOU = -OU/tau dt + sqrt(2 nsig) dW
    # ~16 x 4000 samples with correlation exp(-1) between neighbours: SE of the variance
    # ~ 2.5 % -> a 10 % band is ~4 standard errors.
    assert abs(variance / expected - 1) < 0.1
    assert abs(samples.mean()) < 0.05 * np.sqrt(expected)


def test_euler_maruyama_weak_order_one_on_a_linear_sde(linear_model):
    """Stationary variance of EM for dX = -X/tau dt + sqrt(2 nsig) dW is
    nsig*tau / (1 - dt/(2 tau)): the weak error in the second moment is first order in dt."""
    model = linear_model
    n, nsig, tau = 20000, 1.0, 1.0
    errors, dts = [], [0.4, 0.2, 0.1]
    for dt in dts:
        simulation = mfgen.Simulation(
            model, None, n_nodes=n, integrator="euler_maruyama", dt=dt, noise={"ou": nsig},
            initial_state=np.zeros((3, n)), seed=11, parameters={"tau": tau},
            monitors=[mfgen.SubSample(2.0, ["ou"])])
        simulation.run(10.0)
        samples = simulation.run(60.0)["subsample"].data[:, 0]
        errors.append(samples.var() / (nsig * tau) - 1)
        predicted = 1 / (1 - dt / (2 * tau)) - 1
        assert abs(errors[-1] - predicted) < 0.02  # SE ~ 0.0025 with 600k samples
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - 1) < 0.2


def test_same_seed_same_numbers_whatever_the_chunking(network):
    model = mfgen.load("tvb_adex_first_order")
    options = dict(integrator="heun_stochastic", dt=0.1, noise={"noise": 1.0}, seed=42,
                   parameters={"weight_noise": 1e-3}, coupling_parameters={"a": 0.2},
                   initial_state=np.full((5, network.n_regions), 0.01),
                   monitors=[mfgen.Raw(["E", "noise"]), mfgen.TemporalAverage(1.0)])
    whole = mfgen.simulate(model, network, duration=50.0, chunk_steps=500, **options)
    pieces = mfgen.simulate(model, network, duration=50.0, chunk_steps=37, **options)
    for name in ("raw", "temporal_average"):
        np.testing.assert_array_equal(whole[name].data, pieces[name].data)
        np.testing.assert_array_equal(whole[name].times, pieces[name].times)
    other = mfgen.simulate(model, network, duration=50.0, **dict(options, seed=43))
    assert not np.array_equal(whole["raw"].data, other["raw"].data)


def test_philox_known_answers():
    """Random123's published Philox4x32-10 test vectors."""
    model = mfgen.load("generic_2d_oscillator")
    vectors = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for counter, key, expected in vectors:
        assert model.philox(counter, key) == expected


def test_the_noise_is_box_muller_of_philox_and_standard_normal():
    """mf_normals (the built-in generator, vectorised) against Box-Muller written here over the
    tested Philox words, at libmvec's 4 ulp, for nodes past a 64-pair block and an odd count;
    and 200 000 of its values have a standard normal's mean, variance and tails."""
    model = mfgen.load("generic_2d_oscillator")
    ffi, lib = model.simulator_module.ffi, model.simulator_module.lib
    seed, step, q, n = 0x1234_5678_9ABC_DEF0, 3_000_000_007, 2, 301
    out = np.empty(n)
    lib.mf_normals(seed, step, q, n, ffi.cast("double *", out.ctypes.data))
    key = [seed & 0xFFFFFFFF, seed >> 32]
    expected = np.empty(n + 1)
    for pair in range((n + 1) // 2):
        words = model.philox([pair, q, step & 0xFFFFFFFF, step >> 32], key)
        a, b = words[1] << 32 | words[0], words[3] << 32 | words[2]
        u1, u2 = ((a >> 11) + 1.0) * 2.0**-53, (b >> 11) * 2.0**-53
        radius = np.sqrt(-2.0 * np.log(u1))
        expected[2 * pair: 2 * pair + 2] = radius * np.cos(2 * np.pi * u2), \
            radius * np.sin(2 * np.pi * u2)
    np.testing.assert_allclose(out, expected[:n], rtol=4e-15, atol=4e-15)
    draws = np.empty((200, 1000))
    for row, values in enumerate(draws):
        lib.mf_normals(7, row, 0, 1000, ffi.cast("double *", values.ctypes.data))
    assert abs(draws.mean()) < 0.01 and abs(draws.var() - 1.0) < 0.01   # 4.5 and 3.2 sigma
    assert abs((np.abs(draws) > 1.96).mean() - 0.05) < 0.003
    assert abs(np.corrcoef(draws[:, :-1].ravel(), draws[:, 1:].ravel())[0, 1]) < 0.01


def test_monitors_raw_subsample_and_temporal_average_agree(network):
    model = mfgen.load("generic_2d_oscillator")
    result = mfgen.simulate(
        model, network, duration=20.0, dt=0.1, integrator="heun", seed=5,
        coupling_parameters={"a": 0.01},
        monitors=[mfgen.Raw(), mfgen.SubSample(1.0, ["V"]), mfgen.TemporalAverage(2.0, ["W"])])
    raw, sub, avg = result["raw"], result["subsample"], result["temporal_average"]
    assert raw.data.shape == (200, 2, 76) and sub.data.shape == (20, 1, 76)
    np.testing.assert_allclose(raw.times[:2], [0.1, 0.2])
    np.testing.assert_array_equal(sub.data[:, 0], raw["V"][9::10])
    np.testing.assert_allclose(sub.times, raw.times[9::10])
    windows = raw["W"].reshape(10, 20, 76).mean(axis=1)
    np.testing.assert_allclose(avg["W"], windows, rtol=1e-12)
    np.testing.assert_allclose(avg.times, (np.arange(1, 11) * 20 - 10) * 0.1)
    assert result.config["model"] == "generic_2d_oscillator"
    assert result.config["seed"] == 5 and result.config["integrator"] == "heun"


@pytest.mark.parametrize("kwargs, message", [
    (dict(integrator="midpoint"), "unknown integrator 'midpoint'"),
    (dict(integrator="heun_stochastic"), "is stochastic: give noise"),
    (dict(noise={"V": 0.1}), "integrator 'heun' is deterministic"),
    (dict(noise={"X": 0.1}, integrator="heun_stochastic"), "unknown state variable 'X'"),
    (dict(coupling="cubic"), "unknown coupling 'cubic'"),
    (dict(coupling_parameters={"z": 1}), "has no parameter 'z'"),
    (dict(monitors=[mfgen.SubSample(0.15)]), "not a multiple of dt"),
    (dict(initial_state=np.zeros((3, 4))), r"initial_state must have shape \(2, 4\)"),
])
def test_bad_simulation_options_are_reported(kwargs, message):
    model = mfgen.load("generic_2d_oscillator")
    with pytest.raises(ValueError, match=message):
        mfgen.Simulation(model, Connectivity.synthetic(4), **kwargs)


def test_cli_simulate_writes_a_result_file(tmp_path, capsys):
    from mfgen.cli import main

    out = tmp_path / "run.npz"
    code = main(["simulate", "generic_2d_oscillator", "--regions", "10", "--duration", "20",
                 "--coupling-param", "a=0.01", "--monitor", "tavg:2.0", "--variables", "V",
                 "--param", "d=0.05", "--seed", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "200 steps" in printed and "M node-steps/s" in printed
    saved = np.load(out)
    assert saved["data"].shape == (10, 1, 10)
    assert list(saved["variables"]) == ["V"]
    np.testing.assert_allclose(saved["times"], np.arange(1, 11) * 2.0 - 1.0)
    import json
    config = json.loads(str(saved["config"]))
    assert config["parameters"]["d"] == 0.05 and config["seed"] == 3


def test_ctrl_c_between_chunks_returns_the_partial_result(network):
    """Ctrl-C (KeyboardInterrupt) stops cleanly at a chunk boundary with what was computed."""
    model = mfgen.load("generic_2d_oscillator")
    simulation = mfgen.Simulation(model, network, seed=4, coupling_parameters={"a": 0.01})

    def interrupt_after_three_chunks(done, total):
        if done >= 300:
            raise KeyboardInterrupt

    result = simulation.run(100.0, chunk_steps=100, progress=interrupt_after_three_chunks)
    assert result.interrupted and result.steps == 300
    assert result["raw"].data.shape == (300, 2, 76)
    resumed = simulation.run(70.0, chunk_steps=100)  # the run can go on where it stopped
    assert not resumed.interrupted and resumed.steps == 1000
    whole = mfgen.simulate(model, network, duration=100.0, seed=4,
                           coupling_parameters={"a": 0.01})
    np.testing.assert_array_equal(resumed["raw"].data, whole["raw"].data)
