"""Models with modes simulated like any other model (issue 9): `mfgen.simulate`,
`mfgen.Simulation`, HDF5 results, `mfgen run`, plots, in TVB's layout (n_state, n_nodes,
n_modes) wherever a user sees arrays.

The references are runs of `model.kernel_model` (one state row per state and mode, row
s * n_modes + m, what the C engine runs) with every array converted by the loops below, not
by the adapter under test; and TVB 2.10's own Simulator.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from helpers import relative_error, run_interrupted_then_resumed, tvb_connectivity

import mfgen
from mfgen.runtime.results import load_result, run_to_file
from mfgen.runtime.run_config import ConfigError, load_run_config

SPEC = "tvb_reduced_set_fitz_hugh_nagumo"
MODES = 3
STATES = ("xi", "eta", "alpha", "beta")
N = 6
DT = 0.1
STEPS = 200
COUPLING = {"a": 0.01, "b": 0.0}


@pytest.fixture(scope="module")
def model():
    return mfgen.load(SPEC)


@pytest.fixture(scope="module")
def network():
    # 4 mm/ms over the synthetic tract lengths: delays of tens of steps, so the history
    # (and its conversion) matters.
    return mfgen.Connectivity.synthetic(N, speed=4.0)


def middle_history(model, steps: int, seed: int = 0) -> np.ndarray:
    """(steps, n_state, N, n_modes), uniform in the middle fifth of each state's range (from
    the edges the model blows up within a few ms, in TVB as in mfgen), each mode drawn
    alone."""
    rng = np.random.default_rng(seed)
    columns = []
    for name in model.state_variables:
        low, high = model.states[name].range
        middle, half = (low + high) / 2, 0.1 * (high - low)
        columns.append(rng.uniform(middle - half, middle + half, (steps, N, MODES)))
    return np.stack(columns, axis=1)


# -- conversions by hand (the test's own, element by element) ----------------------------------
def rows_by_hand(tvb: np.ndarray) -> np.ndarray:
    """(..., k, n, modes) -> (..., k * modes, n), row s * modes + m."""
    *lead, k, n, modes = tvb.shape
    rows = np.empty((*lead, k * modes, n))
    for s in range(k):
        for m in range(modes):
            rows[..., s * modes + m, :] = tvb[..., s, :, m]
    return rows


def tvb_by_hand(rows: np.ndarray, modes: int = MODES) -> np.ndarray:
    """(..., k * modes, n) -> (..., k, n, modes)."""
    *lead, k_modes, n = rows.shape
    tvb = np.empty((*lead, k_modes // modes, n, modes))
    for s in range(k_modes // modes):
        for m in range(modes):
            tvb[..., s, :, m] = rows[..., s * modes + m, :]
    return tvb


def names_by_hand(states) -> list[str]:
    return [f"{s}[{m}]" for s in states for m in range(MODES)]


def run_both(model, network, *, noise=None, kernel_noise=None, noise_array=None,
             integrator="heun", seed=0):
    """The same run through mfgen.simulate (TVB's layout) and through kernel_model (rows)."""
    history = middle_history(model, 40)
    parameters = {"K11": np.linspace(0.4, 0.6, N), "e_i": [1.0, 3.0, 1.1]}
    common = dict(duration=STEPS * DT, dt=DT, coupling="linear", coupling_parameters=COUPLING,
                  integrator=integrator, seed=seed, parameters=parameters)
    modal = mfgen.simulate(
        model, network, noise=noise, initial_history=history,
        noise_array=noise_array,
        monitors=[mfgen.Raw(), mfgen.TemporalAverage(1.0, ["xi", "alpha"], name="slow")],
        **common)
    kernel = mfgen.simulate(
        model.kernel_model, network, noise=kernel_noise, initial_history=rows_by_hand(history),
        noise_array=None if noise_array is None else rows_by_hand(noise_array),
        monitors=[mfgen.Raw(names_by_hand(STATES)),
                  mfgen.TemporalAverage(1.0, names_by_hand(["xi", "alpha"]), name="slow")],
        **common)
    return modal, kernel


def assert_same_run(modal, kernel):
    for label in ("raw", "slow"):
        assert modal[label].data.shape == (kernel[label].data.shape[0],
                                           len(modal[label].variables), N, MODES)
        np.testing.assert_array_equal(modal[label].data, tvb_by_hand(kernel[label].data))
        np.testing.assert_array_equal(modal[label].times, kernel[label].times)
    assert modal["raw"].variables == STATES and modal["slow"].variables == ("xi", "alpha")
    np.testing.assert_array_equal(modal["raw"]["eta"], tvb_by_hand(kernel["raw"].data)[:, 1])
    np.testing.assert_array_equal(modal.final_state, tvb_by_hand(kernel.final_state))
    raw = modal["raw"].data  # the run means something: states moved, modes differ
    assert np.abs(raw[-1] - raw[0]).max() > 1e-3 * np.abs(raw).max()
    assert np.abs(raw[..., 0] - raw[..., 1]).max() > 1e-3 * np.abs(raw).max()


def test_a_deterministic_run_is_the_kernels_run_bit_for_bit(model, network):
    modal, kernel = run_both(model, network)
    assert_same_run(modal, kernel)
    assert modal.config["n_modes"] == MODES and modal.config["model"] == SPEC
    assert modal.config["monitors"][1]["variables"] == ["xi", "alpha"]
    assert "x 6 nodes x 3 modes" in repr(modal["raw"]) and "x 6 x 3 modes" in repr(modal)


def test_a_stochastic_run_is_the_kernels_run_bit_for_bit(model, network):
    # nsig per state applies to each of its modes (TVB's Additive nsig of shape (n_state,)).
    nsig = {"xi": 1e-3, "alpha": 2e-3}
    by_row = {f"{s}[{m}]": v for s, v in nsig.items() for m in range(MODES)}
    modal, kernel = run_both(model, network, noise=nsig, kernel_noise=by_row,
                             integrator="heun_stochastic", seed=5)
    assert_same_run(modal, kernel)
    assert modal.config["noise_nsig"] == {"xi": 1e-3, "eta": 0.0, "alpha": 2e-3, "beta": 0.0}
    quiet, _ = run_both(model, network)
    assert np.abs(modal["raw"].data - quiet["raw"].data).max() > 1e-5  # the noise mattered
    # Given normals (TVB's (n_steps, n_state, n_nodes, n_modes)), and nsig as a sequence.
    normals = np.random.default_rng(3).standard_normal((STEPS, 4, N, MODES))
    modal, kernel = run_both(model, network, noise=[1e-3, 0.0, 2e-3, 0.0],
                             kernel_noise=by_row, noise_array=normals,
                             integrator="euler_maruyama")
    assert_same_run(modal, kernel)


def test_state_checkpoints_and_chunks_in_tvbs_layout(model, network):
    history = middle_history(model, 40, seed=2)
    options = dict(coupling_parameters=COUPLING, initial_history=history,
                   monitors=[mfgen.SubSample(0.5, ["eta"])])
    whole = mfgen.Simulation(model, network, **options)
    assert isinstance(whole.state, np.ndarray) and whole.state.shape == (4, N, MODES)
    np.testing.assert_array_equal(whole.state, history[-1])  # the last entry is t = 0
    once = whole.run(10.0)
    np.testing.assert_array_equal(whole.state, once.final_state)

    parts = mfgen.Simulation(model, network, **options)
    parts.run(4.0)
    saved = parts.checkpoint()
    assert saved["state"].shape == (4, N, MODES)
    assert saved["history"].shape[1:] == (2, N, MODES)  # the coupled xi and alpha
    resumed = mfgen.Simulation(model, network, **options)
    resumed.restore(saved)
    rest = resumed.run(6.0)
    np.testing.assert_array_equal(rest["subsample"].data, once["subsample"].data[8:])
    np.testing.assert_array_equal(rest.final_state, once.final_state)

    # Setting the state (TVB's layout) is what the next step starts from (no coupling, so
    # the delayed history, which a state set later does not rewrite, plays no part).
    uncoupled = dict(coupling_parameters={"a": 0.0, "b": 0.0},
                     monitors=[mfgen.Raw(["xi", "beta"])])
    state = middle_history(model, 1, seed=9)[0]
    reset = mfgen.Simulation(model, network, initial_state=history[-1], **uncoupled)
    reset.state = state
    np.testing.assert_array_equal(reset.state, state)
    fresh = mfgen.Simulation(model, network, initial_state=state, **uncoupled)
    np.testing.assert_array_equal(reset.run(2.0)["raw"].data, fresh.run(2.0)["raw"].data)
    view = reset.state  # a view of the array the engine advances
    reset.run(0.1)
    np.testing.assert_array_equal(view, reset.state)
    with pytest.raises(ValueError, match=r"state must have shape \(4, 6, 3\)"):
        reset.state = state[..., :2]


def test_initial_state_default_and_the_configs_agree(model, network, tmp_path):
    simulation = mfgen.Simulation(model, network, seed=4)
    low, high = model.states["xi"].range
    assert simulation.state.shape == (4, N, MODES)
    assert ((simulation.state[0] >= low) & (simulation.state[0] <= high)).all()
    assert np.unique(simulation.state[0]).size == N * MODES  # each mode drawn alone
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"spec: {SPEC}\nconnectivity: {{source: synthetic, regions: {N}, "
                           "speed: 4.0}\nseed: 4\ninitial_state: {eta: [[0.1, 0.2, 0.3]], "
                           f"beta: {list(range(N))}}}\n")
    _, _, kwargs, _ = load_run_config(config_file).build(model)
    state = kwargs["initial_state"]
    # States not named start as Simulation's default does; named ones as written.
    np.testing.assert_array_equal(state[[0, 2]], simulation.state[[0, 2]])
    np.testing.assert_array_equal(state[1], np.tile([0.1, 0.2, 0.3], (N, 1)))
    np.testing.assert_array_equal(state[3], np.repeat(np.arange(N, dtype=float), MODES)
                                  .reshape(N, MODES))
    config_file.write_text(f"spec: {SPEC}\nconnectivity: none\ninitial_state:\n"
                           "  eta: [[0.1, 0.2]]\n")
    with pytest.raises(ConfigError, match=r"run.yaml:4:3: initial_state 'eta' must be a number"
                                          r".*rows of 3 values"):
        load_run_config(config_file).build(model)


@pytest.mark.parametrize("options, error, message", [
    (dict(initial_state=np.zeros((4, N))), ValueError,
     r"initial_state must have shape \(4, 6, 3\) \(TVB's layout"),
    (dict(initial_history=np.zeros((5, 4, N))), ValueError,
     r"initial_history must have shape \(n_times, 4, 6, 3\)"),
    (dict(noise={"xi[0]": 1.0}, integrator="heun_stochastic"), ValueError,
     r"unknown state variable 'xi\[0\]'; states: xi, eta, alpha, beta"),
    (dict(noise=[1.0, 2.0], integrator="heun_stochastic"), ValueError,
     r"one nsig per state variable \(4; each applies to all 3 modes\)"),
    (dict(monitors=[mfgen.Raw(["xi[1]"])]), ValueError,
     r"monitor 'raw': unknown variables \['xi\[1\]'\]; recordable: xi, eta, alpha, beta"),
    (dict(noise={"xi": 1.0}), ValueError, r"integrator 'heun' is deterministic"),
])
def test_wrong_arguments_are_refused_by_the_users_names(model, network, options, error,
                                                        message):
    with pytest.raises(error, match=message):
        mfgen.Simulation(model, network, **options)


def test_a_blow_up_names_the_state_and_its_mode(model, network):
    # xi = 1e200 in mode 1 of node 2: xi**3 overflows, and mode_dot carries it into every
    # mode of that node in the same step; the engine reports the first row, xi in mode 0.
    state = np.zeros((4, N, MODES))
    state[0, 2, 1] = 1e200
    with pytest.raises(mfgen.SimulationError, match=r"non-finite value in 'xi' \(mode 0\) at "
                                                    r"node 2 in step 1") as info:
        mfgen.simulate(model, network, duration=5.0, initial_state=state)
    assert info.value.result.final_state.shape == (4, N, MODES)


# -- results files and `mfgen run` -------------------------------------------------------------
CONFIG = f"""\
spec: {SPEC}
connectivity: {{source: synthetic, regions: {N}, speed: 4.0}}
coupling: {{function: linear, parameters: {{a: 0.01}}}}
integrator: heun_stochastic
dt: 0.1
duration: 40.0
noise: {{xi: 1.0e-3, alpha: 1.0e-3}}
initial_state: {{xi: [[-0.5, 0.0, 0.5]], eta: 0.0, alpha: [[0.5, 0.0, -0.5]], beta: 0.0}}
seed: 3
monitors:
  - {{kind: raw, variables: [xi]}}
  - {{kind: tavg, period: 1.0}}
output: {{path: run.h5, chunk: 10.0}}
"""


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG)
    return path


def test_a_results_file_holds_the_modes_axis_and_reads_back(config_path, tmp_path):
    config = load_run_config(config_path)
    model, connectivity, kwargs, duration = config.build()
    expected = mfgen.simulate(model, connectivity, duration=duration, **kwargs)
    results = run_to_file(config, tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as handle:  # plain h5py, documented names
        assert handle.attrs["n_modes"] == MODES
        data = handle["monitors/temporal_average/data"]
        assert data.shape == (40, 4, N, MODES)
        assert handle["monitors/temporal_average"].attrs["dims"] == \
            "time,variable,region,mode"
        np.testing.assert_array_equal(data[()], expected["temporal_average"].data)
        np.testing.assert_array_equal(handle["monitors/raw/data"][()], expected["raw"].data)
    assert results.n_modes == MODES and results.status == "complete"
    np.testing.assert_array_equal(results["raw"]["xi"], expected["raw"]["xi"])
    np.testing.assert_array_equal(results.final_state, expected.final_state)
    assert "x 6 regions x 3 modes" in repr(results["raw"])
    dataset = results.to_xarray()
    assert dataset["temporal_average"].dims == ("time_temporal_average", "variable", "region",
                                                "mode")
    np.testing.assert_array_equal(
        dataset["temporal_average"].sel(variable="alpha", mode=2).values,
        expected["temporal_average"].data[:, 2, :, 2])
    assert expected.to_xarray()["raw"].dims[-1] == "mode"

    figure = results.plot(monitor="temporal_average", mode="sum", variables=["alpha"])
    assert "sum over the 3 modes" in figure.get_suptitle()
    series = [a for a in figure.axes if a.get_label() == "time series"][0]
    mean = series.lines[-1].get_ydata()  # the mean over regions of the plotted trace
    np.testing.assert_allclose(mean, expected["temporal_average"]["alpha"].sum(axis=2)
                               .mean(axis=1), rtol=1e-13)  # the same sums, another order
    figure = results.plot()
    assert "mode 0 of 3" in figure.get_suptitle()
    with pytest.raises(mfgen.MfgenError, match=r"mode '3' does not exist: the model has 3 "
                                               r"modes; give a number from 0 to 2, or 'sum'"):
        results.plot(mode="3")


def test_an_interrupted_modes_run_resumes_bit_for_bit(config_path, tmp_path):
    complete, stopped, resumed = run_interrupted_then_resumed(load_run_config(config_path),
                                                              tmp_path)
    assert stopped.status == "interrupted" and stopped["raw"].data.shape[0] == 200
    for label in ("raw", "temporal_average"):
        np.testing.assert_array_equal(resumed[label].data, complete[label].data)
    np.testing.assert_array_equal(resumed.final_state, complete.final_state)


def test_mfgen_run_and_plot_of_the_example_config(tmp_path, capsys):
    from mfgen.cli import main

    example = "examples/tvb_reduced_set_fitz_hugh_nagumo.yaml"
    out, png = tmp_path / "example.h5", tmp_path / "example.png"
    status = main(["run", example, "--set", "duration=20", "--set", "output.chunk=10",
                   "--out", str(out), "--plot", str(png)])
    assert status == 0, capsys.readouterr().err
    results = load_result(out)
    assert results["temporal_average"].data.shape == (20, 2, 76, MODES)
    assert png.stat().st_size > 10_000
    assert main(["plot", str(out), "--mode", "sum", "--out", str(tmp_path / "sum.png")]) == 0
    assert main(["plot", str(out), "--mode", "x", "--out", str(tmp_path / "bad.png")]) == 2
    assert "mode 'x' does not exist" in capsys.readouterr().err


def test_sweeps_refuse_a_modes_model_by_name(model, network):
    from mfgen.runtime.sweep import SweepError

    with pytest.raises(SweepError, match=rf"model '{SPEC}' has 3 modes: sweeps run the "
                                         "batched kernel"):
        mfgen.sweep(model, network, sweep={"K11": [0.4, 0.5]}, duration=1.0, progress=False)


# -- TVB's Simulator ---------------------------------------------------------------------------
@pytest.mark.parametrize("stochastic", [False, True], ids=["heun", "heun_stochastic"])
def test_simulate_matches_tvbs_simulator(model, network, stochastic):
    """TVB's initial_conditions (horizon, n_state, n_nodes, n_modes) are mfgen's
    initial_history as they are (tests/test_tvb_simulator.py says why); float32 coupling as
    TVB sums it; the same normals for the stochastic run (TVB draws (n_state, n_nodes,
    n_modes) per step). Tolerance as tests/test_tvb_simulator.py: 1e-8 relative, floor 1e-6
    of each variable's largest value."""
    from tvb.simulator import coupling, integrators, models, monitors, noise, simulator

    horizon = int(np.rint(network.tract_lengths / network.speed / DT).max()) + 1
    history = middle_history(model, horizon, seed=6)
    nsig = np.array([1e-3, 0.0, 1e-3, 0.0])
    tvb_model = models.ReducedSetFitzHughNagumo(variables_of_interest=STATES)
    integrator = integrators.HeunStochastic(dt=DT, noise=noise.Additive(nsig=nsig,
                                                                        noise_seed=7)) \
        if stochastic else integrators.HeunDeterministic(dt=DT)
    sim = simulator.Simulator(
        model=tvb_model, connectivity=tvb_connectivity(network),
        coupling=coupling.Linear(a=np.array([0.01]), b=np.array([0.0])),
        integrator=integrator, monitors=(monitors.Raw(),),
        initial_conditions=history.copy(), simulation_length=STEPS * DT)
    sim.configure()
    assert sim.current_step == horizon - 1
    normals = None
    if stochastic:  # TVB's stream, drawn as it draws it
        stream = np.random.RandomState(7)
        normals = np.stack([stream.normal(size=(4, N, MODES)) for _ in range(STEPS)])
    ((tvb_times, expected),) = sim.run()
    computed = mfgen.simulate(
        model, network, duration=STEPS * DT, dt=DT, coupling="linear",
        coupling_parameters=COUPLING, initial_history=history,
        integrator="heun_stochastic" if stochastic else "heun",
        noise=dict(zip(STATES, nsig)) if stochastic else None, noise_array=normals,
        coupling_precision="float32")["raw"]
    assert computed.data.shape == expected.shape == (STEPS, 4, N, MODES)
    np.testing.assert_allclose(computed.times + (horizon - 1) * DT, tvb_times, rtol=0,
                               atol=1e-9)
    error = relative_error(computed.data, expected, 1e-6, axis=(0, 2, 3)).max()
    assert error <= 1e-8, error  # measured 1.3e-11 (1e+3 with the modes reversed)


def test_a_batch_refuses_a_modes_simulation_by_name(model, network):
    from mfgen.runtime.simulation import run_batch

    simulation = mfgen.Simulation(model, network)
    with pytest.raises(TypeError, match=r"run_batch takes Simulations of models without "
                                        rf"modes, got <mfgen Simulation of '{SPEC}' \(3 modes\)"):
        run_batch([simulation], 1.0)
