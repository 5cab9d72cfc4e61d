"""TVB 2.10's coupling functions in mfgen, against TVB's own classes on the same history, and
coupling functions a spec declares itself (`couplings:`).

A probe model (dV/dt = c_0, dW/dt = c_1, coupling c_0: V, c_1: W) makes one Euler step of
dt = 1 ms show the coupling itself: c = (x1 - x0) / dt. TVB's side is the coupling object of a
configured TVB Simulator (JansenRit: cvar y1, y2) called on the same delayed history.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tvb_connectivity
from tvb.datatypes.connectivity import Connectivity as TVBConnectivity
from tvb.simulator import coupling, integrators, models, monitors, simulator

import mfgen
from mfgen import tvb as mftvb
from mfgen.codegen.coupling import parse_coupling_functions
from mfgen.errors import SpecError

DT = 1.0
SPEED = 3.0
N = 60

# A coupling file: a spec with only `couplings:`, brought in by `extends` (bundled or by path).
COUPLING_FILE = """\
couplings:
  user_product:
    pre: "x_j[0] * x_j[1] - x_i[1]"
    post: gx / n_nodes
"""

PROBE = """\
name: coupling_probe
extends: probe_couplings.yaml
description: the coupling rows, as derivatives
state_variables:
  V: {range: [0.0, 15.0]}
  W: {range: [0.0, 5.0]}
coupling:
  c_0: V
  c_1: W
couplings:                # the spec's own coupling functions, compiled into its module
  user_difference:
    parameters: {a: 0.1}
    pre: x_j - x_i
    post: a * gx
  user_pre_sigmoidal:     # the bundled pre_sigmoidal, written by a user
    parameters: {H: 0.5, Q: 1.0, G: 60.0, P: 1.0}
    sum: efferent
    pre: H * (Q + tanh(G * (P * x_j[0] - x_j[1])))
    post: gx
    own: [~, "H * (Q + tanh(G * (P * x_own[0] - x_own[1])))"]
  user_pre_sigmoidal_global:   # the bundled pre_sigmoidal_global, written by a user
    parameters: {H: 0.5, Q: 1.0, G: 60.0, P: 1.0}
    sum: efferent
    pre: H * (Q + tanh(G * (P * x_j[0] - x_first[1])))
    post: gx
    own: [~, {mean: "H * (Q + tanh(G * (P * x_own[0] - x_first[1])))"}]
  user_pre_sigmoidal_static:   # the bundled pre_sigmoidal_static, written by a user
    parameters: {H: 0.5, Q: 1.0, G: 60.0, P: 1.0, theta: 0.5}
    sum: reciprocal
    pre: H * (Q + tanh(G * (P * x_j - theta)))
    post: gx
derivatives:
  V: c_0
  W: c_1
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "coupling_probe.yaml"
    path.write_text(PROBE)
    (path.parent / "probe_couplings.yaml").write_text(COUPLING_FILE)
    return mfgen.load(str(path))


@pytest.fixture(scope="module")
def network() -> mfgen.Connectivity:
    """Rows with 0 to N - 1 afferents, delays 1 .. 10 steps."""
    rng = np.random.default_rng(11)
    weights = np.zeros((N, N))
    for i, count in enumerate(rng.permutation(np.r_[0, 1, N - 1, rng.integers(2, N, N - 3)])):
        columns = rng.choice(np.r_[0:i, i + 1:N], size=min(count, N - 1), replace=False)
        weights[i, columns] = rng.lognormal(0.0, 1.0, columns.size)
    lengths = rng.uniform(3.0, 30.0, (N, N))
    return mfgen.Connectivity(weights, lengths, SPEED, centres=rng.normal(size=(N, 3)))


def history_for(network: mfgen.Connectivity, low: tuple, high: tuple) -> np.ndarray:
    """(horizon, 2, N): V and W uniform in [low, high), different at every step."""
    horizon = int(np.rint(network.tract_lengths / SPEED / DT).max()) + 1
    rng = np.random.default_rng(3)
    return np.stack([rng.uniform(low[k], high[k], (horizon, N)) for k in range(2)], axis=1)


def tvb_simulator_for(network, history, tvb_function) -> simulator.Simulator:
    """A configured JansenRit simulator whose coupled variables y1, y2 carry the history's
    V, W, at its first step."""
    connectivity = tvb_connectivity(network)
    full = np.zeros((history.shape[0], 6, N, 1))
    full[:, 1, :, 0], full[:, 2, :, 0] = history[:, 0], history[:, 1]
    sim = simulator.Simulator(
        model=models.JansenRit(), connectivity=connectivity, coupling=tvb_function,
        integrator=integrators.EulerDeterministic(dt=DT), monitors=(monitors.Raw(),),
        initial_conditions=full, simulation_length=DT)
    sim.configure()
    assert sim.current_step == history.shape[0] - 1
    return sim


def tvb_coupling_rows(network, history, tvb_function) -> np.ndarray:
    """TVB's coupling (rows, N) at the first step."""
    sim = tvb_simulator_for(network, history, tvb_function)
    return np.asarray(sim.coupling(sim.current_step + 1, sim.history))[..., 0]


def mfgen_coupling_rows(probe, network, history, name, parameters, precision) -> np.ndarray:
    result = mfgen.simulate(probe, network, duration=DT, dt=DT, integrator="euler",
                            coupling=name, coupling_parameters=parameters,
                            initial_history=history, coupling_precision=precision)
    return (result["raw"].data[0] - history[-1]) / DT


def delayed(network, history) -> tuple[np.ndarray, np.ndarray]:
    """x_j as every target i sees it (i, j, cvar) and the undelayed x_i (i, cvar)."""
    delays = np.rint(network.tract_lengths / SPEED / DT).astype(int)
    last = history.shape[0] - 1
    j = np.arange(N)[None, :]
    x_j = np.stack([history[last - delays, k, j] for k in range(2)], axis=-1)
    return x_j, history[-1].T


def error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest relative difference, with a floor of 1e-3 of the largest |coupling|: sums of
    terms of both signs can land near 0, where the relative error means nothing."""
    floor = 1e-3 * np.abs(expected).max()
    return float((np.abs(actual - expected) / np.maximum(np.abs(expected), floor)).max())


def assert_presigmoidal_rows(probe, network, history, name, parameters, expected, formula):
    """mfgen's float32 mode is TVB's arithmetic (its float32 history and weights, float64 pre,
    sequential float64 sum over axis 0): equal to the rounding of (x1 - x0) / dt; float64 mode
    is the float64 formula; both are TVB's to the float32 inputs, and the formula is TVB's."""
    float32 = mfgen_coupling_rows(probe, network, history, name, parameters, "float32")
    float64 = mfgen_coupling_rows(probe, network, history, name, parameters, "float64")
    assert error(float32, expected) < 1e-12
    assert error(float64, formula) < FLOAT64_TOLERANCE
    assert error(float64, expected) < FLOAT32_TOLERANCE  # float32 inputs vs float64 ones
    assert error(formula, expected) < FLOAT32_TOLERANCE


# TVB keeps float32 history and weights, so its coupling carries float32 rounding (2**-24
# ~ 6e-8 per term; up to 59 terms of both signs): mfgen's float32 mode rounds the same inputs
# but computes sin of the float32 difference with libm's sinf where TVB's NumPy runs its own
# float32 sin kernel (Kuramoto; see TRACE_TOLERANCE), and sums dense rows in CSR order
# (SigmoidalJansenRit). Each term differs by up to a float32 ulp
# and sums cancel (floor 1e-3 of the largest): measured 2.1e-6; 1e-5 leaves margin, far below
# any wrong formula (a wrong sign, delay or 1/n_cvar changes the coupling by O(1)).
FLOAT32_TOLERANCE = 1e-5
# mfgen's float64 mode against the same formula in float64 NumPy: rounding only.
FLOAT64_TOLERANCE = 1e-12

CASES = {
    "kuramoto": (coupling.Kuramoto, {"a": 0.7}, (0.0, 0.0), (2 * np.pi, 2 * np.pi)),
    "sigmoidal_jansen_rit": (coupling.SigmoidalJansenRit,
                             {"cmin": 0.001, "cmax": 0.007, "midpoint": 5.0, "r": 0.7, "a": 2.0},
                             (0.0, 0.0), (15.0, 5.0)),
}


def numpy_formula(name, p, network, history) -> np.ndarray:
    """Each coupling's definition written out in float64 (TVB's docstrings and source)."""
    x_j, x_i = delayed(network, history)
    w = network.weights
    if name == "kuramoto":  # a / gx.shape[0] * gx, gx.shape[0] = n_cvar = 2
        terms = np.sin(x_j - x_i[:, None, :])
        return (p["a"] / 2 * np.einsum("ij,ijk->ik", w, terms)).T
    pre = p["cmin"] + (p["cmax"] - p["cmin"]) / (
        1.0 + np.exp(p["r"] * (p["midpoint"] - (x_j[..., 0] - x_j[..., 1]))))
    row = p["a"] * (w * pre).sum(axis=1)
    return np.stack([row, row])


@pytest.mark.parametrize("name", CASES)
def test_coupling_is_tvbs(name, probe, network):
    tvb_class, parameters, low, high = CASES[name]
    history = history_for(network, low, high)
    expected = tvb_coupling_rows(network, history, tvb_class(
        **{k: np.array([v]) for k, v in parameters.items()}))
    formula = numpy_formula(name, parameters, network, history)
    # One row per cvar; SigmoidalJansenRit's one pre row is broadcast over TVB's per-cvar
    # weights, so both rows are the same.
    assert expected.shape == (2, N)
    if name == "sigmoidal_jansen_rit":
        assert (expected[0] == expected[1]).all()
    float32 = mfgen_coupling_rows(probe, network, history, name, parameters, "float32")
    float64 = mfgen_coupling_rows(probe, network, history, name, parameters, "float64")
    assert error(float32, expected) < FLOAT32_TOLERANCE
    assert error(float64, expected) < FLOAT32_TOLERANCE
    assert error(float64, formula) < FLOAT64_TOLERANCE
    assert error(formula, expected) < FLOAT32_TOLERANCE  # the formula is TVB's
    assert np.abs(expected).max() > 0.1 * np.abs(formula).max() > 0


PRE_SIGMOIDAL = {"H": 0.7, "Q": 0.4, "G": 3.0, "P": 1.3}


@pytest.fixture(scope="module")
def network_with_self_connections(network) -> mfgen.Connectivity:
    """The network plus self-connections at every third node (TVB's PreSigmoidal reads the
    dynamic threshold's row from the diagonal of its delayed history)."""
    weights = network.weights.copy()
    weights[np.arange(0, N, 3), np.arange(0, N, 3)] = 0.5 + np.arange(0, N, 3) / N
    return mfgen.Connectivity(weights, network.tract_lengths, SPEED, centres=network.centres)


def pre_sigmoidal_formula(p, network, history) -> np.ndarray:
    """TVB 2.10's PreSigmoidal.__call__ (dynamic=True, globalT=False) written out in float64:
    A_ij = H (Q + tanh(G (P x_j[0] - x_j[1]))) with x_j delayed by d_ij; row 0 sums A with the
    (to, from) weights over axis 0 (the targets i, each node's own values); row 1 is the
    diagonal A_jj, with x = 0 where w_jj = 0 (TVB's sparse history keeps weighted pairs only)."""
    x_j, _ = delayed(network, history)  # (i, j, cvar): node j's values delayed by d_ij
    x_j = np.where((network.weights != 0)[..., None], x_j, 0.0)
    a = p["H"] * (p["Q"] + np.tanh(p["G"] * (p["P"] * x_j[..., 0] - x_j[..., 1])))
    return np.stack([(network.weights * a).sum(axis=0), np.diag(a)])


def test_pre_sigmoidal_is_tvbs(probe, network_with_self_connections):
    network = network_with_self_connections
    history = history_for(network, (0.0, 0.0), (1.0, 1.0))
    expected = tvb_coupling_rows(network, history, coupling.PreSigmoidal(
        **{k: np.array([v]) for k, v in PRE_SIGMOIDAL.items()}))
    formula = pre_sigmoidal_formula(PRE_SIGMOIDAL, network, history)
    assert_presigmoidal_rows(probe, network, history, "pre_sigmoidal", PRE_SIGMOIDAL, expected,
                             formula)
    # the cases the formula covers are there: self-connected nodes read their delayed values
    # in row 1, the others H Q; row 0 differs from the sum over j
    has_self = np.diag(network.weights) != 0
    assert has_self.any() and (~has_self).any()
    np.testing.assert_array_equal(expected[1, ~has_self], PRE_SIGMOIDAL["H"] * PRE_SIGMOIDAL["Q"])
    assert np.ptp(expected[1, has_self]) > 0.1
    x_j, _ = delayed(network, history)
    a = PRE_SIGMOIDAL["H"] * (PRE_SIGMOIDAL["Q"] + np.tanh(PRE_SIGMOIDAL["G"] * (
        PRE_SIGMOIDAL["P"] * x_j[..., 0] - x_j[..., 1])))
    assert error((network.weights * a).sum(axis=1), expected[0]) > 0.1


def pre_sigmoidal_global_formula(p, network, history) -> np.ndarray:
    """TVB 2.10's PreSigmoidal.__call__ with dynamic=True, globalT=True in float64: as
    pre_sigmoidal_formula with node j's threshold x_j[j, 0, 1], node 0's threshold as node j
    receives it (0 where w_j0 = 0), and row 1 the mean of the diagonal at every node."""
    x_j, _ = delayed(network, history)
    x_j = np.where((network.weights != 0)[..., None], x_j, 0.0)
    threshold = x_j[:, 0, 1]  # (j,): broadcast over the last axis of (i, j), as TVB's
    a = p["H"] * (p["Q"] + np.tanh(p["G"] * (p["P"] * x_j[..., 0] - threshold[None, :])))
    return np.stack([(network.weights * a).sum(axis=0), np.full(N, np.diag(a).mean())])


def test_pre_sigmoidal_global_is_tvbs(probe, network_with_self_connections):
    """dynamic=True, globalT=True: node 0's threshold, a network mean in row 1. TVB 2.10's own
    __call__ fails there (it writes the mean into np.diag's read-only view), so TVB's side is
    its statements, on its configured history object, with that diagonal copied."""
    network = network_with_self_connections
    history = history_for(network, (0.0, 0.0), (1.0, 1.0))
    function = coupling.PreSigmoidal(globalT=True,
                                     **{k: np.array([v]) for k, v in PRE_SIGMOIDAL.items()})
    sim = tvb_simulator_for(network, history, function)
    step = sim.current_step + 1
    with pytest.raises(ValueError, match="read-only"):
        function(step, sim.history)
    na = np.newaxis  # from here TVB 2.10's PreSigmoidal.__call__, dynamic and globalT
    g_ij = sim.history.es_weights
    _, x_j = sim.history.query(step)
    a_j = function.H * (function.Q + np.tanh(function.G * (
        function.P * x_j[:, 0] - x_j[:, 1, function.sliceT])[:, na]))
    c_0 = (g_ij[:, 0] * a_j[:, 0]).sum(axis=0)
    c_1 = np.diag(a_j[:, 0, :, 0]).copy()[:, na]  # the copy: TVB's only change
    c_1[:] = c_1.mean()
    expected = np.array([c_0, c_1])[..., 0]
    formula = pre_sigmoidal_global_formula(PRE_SIGMOIDAL, network, history)
    assert_presigmoidal_rows(probe, network, history, "pre_sigmoidal_global", PRE_SIGMOIDAL,
                             expected, formula)
    # the cases are there: nodes with and without a connection from node 0 (threshold 0),
    # one value in row 1, and the local threshold gives other numbers
    from_0 = network.weights[:, 0] != 0
    assert from_0.any() and (~from_0).any()
    assert np.ptp(expected[1]) == 0
    local = pre_sigmoidal_formula(PRE_SIGMOIDAL, network, history)
    assert error(local[0], expected[0]) > 1e-3 and error(local[1], expected[1]) > 1e-3


def test_network_mean_row_is_the_same_for_any_thread_count(probe, network_with_self_connections):
    """Each thread computes the whole network's mean itself: the same bits from 1 or 3."""
    network = network_with_self_connections
    history = history_for(network, (0.0, 0.0), (1.0, 1.0))
    simulations = [mfgen.Simulation(probe, network, dt=DT, integrator="euler",
                                    coupling="pre_sigmoidal_global",
                                    coupling_parameters=PRE_SIGMOIDAL, initial_history=history,
                                    threads=threads) for threads in (1, 3)]
    assert [s.threads for s in simulations] == [1, 3]
    runs = [simulation.run(5 * DT)["raw"].data for simulation in simulations]
    np.testing.assert_array_equal(runs[0], runs[1])
    # dW/dt = c_1, the network mean: one step of W at every node (to its rounding), not zero
    step = runs[0][-1, 1] - runs[0][-2, 1]
    assert np.ptp(step) < 1e-12 and abs(step[0]) > 0.1


PRE_SIGMOIDAL_STATIC = dict(PRE_SIGMOIDAL, theta=0.6)


def pre_sigmoidal_static_formula(p, network, history) -> np.ndarray:
    """TVB 2.10's PreSigmoidal.__call__ with dynamic=False written out in float64:
    out[k, b] = sum_a w_ba A(x_k,b delayed by d_ab), A = H (Q + tanh(G (P x - theta))), with
    x = 0 where w_ab = 0: the weight of connection b <- a, the delay and presence of a <- b."""
    x_j, _ = delayed(network, history)  # (a, b, cvar): node b's values delayed by d_ab
    x_j = np.where((network.weights != 0)[..., None], x_j, 0.0)
    a = p["H"] * (p["Q"] + np.tanh(p["G"] * (p["P"] * x_j - p["theta"])))
    return np.einsum("ba,abk->kb", network.weights, a)


@pytest.mark.parametrize("global_threshold", [False, True])
def test_pre_sigmoidal_static_is_tvbs(global_threshold, probe, network_with_self_connections):
    """dynamic=False, with a local or a global threshold (the same with one theta), on the
    asymmetric network: weights w_ba, delays d_ab and zeros where w_ab = 0."""
    network = network_with_self_connections
    history = history_for(network, (0.0, 0.0), (1.0, 1.0))
    expected = tvb_coupling_rows(network, history, coupling.PreSigmoidal(
        dynamic=False, globalT=global_threshold,
        **{k: np.array([v]) for k, v in PRE_SIGMOIDAL_STATIC.items()}))
    formula = pre_sigmoidal_static_formula(PRE_SIGMOIDAL_STATIC, network, history)
    assert_presigmoidal_rows(probe, network, history, "pre_sigmoidal_static",
                             PRE_SIGMOIDAL_STATIC, expected, formula)
    # the cases are there: connections one way only (both ways), and pairing the weight with
    # its own connection's delay, or dropping the zeros, gives other numbers
    one_way = (network.weights != 0) & (network.weights.T == 0)
    assert one_way.any() and ((network.weights != 0) & (network.weights.T != 0)).any()
    x_j, _ = delayed(network, history)
    p = PRE_SIGMOIDAL_STATIC
    unmasked = p["H"] * (p["Q"] + np.tanh(p["G"] * (p["P"] * x_j - p["theta"])))
    assert error(np.einsum("ba,abk->kb", network.weights, unmasked), expected) > 1e-3
    assert error(np.einsum("ab,abk->kb", network.weights, unmasked), expected) > 1e-3


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_a_specs_own_couplings_are_the_bundled_ones_bit_for_bit(
        precision, probe, network_with_self_connections):
    """The spec's own functions are compiled into its module and called through a pointer
    (an efferent one on the transposed connection lists): the same numbers as the bundled."""
    network = network_with_self_connections
    history = history_for(network, (0.0, 0.0), (1.0, 1.0))
    for own, bundled, parameters in (("user_difference", "difference", {"a": 0.3}),
                                     ("user_pre_sigmoidal", "pre_sigmoidal", PRE_SIGMOIDAL),
                                     ("user_pre_sigmoidal_global", "pre_sigmoidal_global",
                                      PRE_SIGMOIDAL),
                                     ("user_pre_sigmoidal_static", "pre_sigmoidal_static",
                                      PRE_SIGMOIDAL_STATIC)):
        expected = mfgen_coupling_rows(probe, network, history, bundled, parameters, precision)
        computed = mfgen_coupling_rows(probe, network, history, own, parameters, precision)
        np.testing.assert_array_equal(computed, expected)
        assert np.abs(expected).max() > 0


def test_combined_coupling_needs_enough_coupled_variables():
    with pytest.raises(ValueError, match="combines 2 coupled variables.*couples 1"):
        mfgen.Simulation(mfgen.load("tvb_linear"), mfgen.Connectivity.synthetic(4),
                         coupling="sigmoidal_jansen_rit")


@pytest.mark.parametrize("text, message", [
    ("f: {pre: 'x_j[0] - x_j', post: gx}", "mixes x_j with indexed"),
    ("f: {pre: 'x_j[9]', post: gx}", "index 9 out of range"),
    ("f: {pre: 'gx', post: gx}", "undefined symbol 'gx' in the pre of 'f'"),
    ("f: {pre: 'x_j', post: 'x_j'}", "undefined symbol 'x_j' in the post of 'f'"),
    ("f: {parameters: {n_cvar: 1}, pre: x_j, post: gx}", "clashes with a built-in"),
    ("f: {parameters: {a: [1]}, pre: x_j, post: gx}", "needs a finite number"),
    ("f: {pre: x_j}", "needs 'post'"),
    ("f: {pre: 'x_j(1)', post: gx}", "cannot call"),
    ("f: {pre: 'x_j[0]', post: gx, sum: sideways}", "'sum' of coupling function 'f' must be"),
    ("f: {pre: x_j, post: gx, sum: efferent}", "'sum: efferent' of 'f' needs a pre that ind"),
    ("f: {pre: 'x_i[0]', post: gx, sum: efferent}", "efferent pre of 'f' cannot use x_i"),
    ("f: {pre: 'x_j[0]', post: gx, own: 'x_own[0]'}", "'own' of coupling function 'f' must"),
    ("f: {pre: 'x_j[0]', post: gx, own: [x_own]}", "own row 0 of 'f' uses plain x_own"),
    ("f: {pre: 'x_j[0]', post: gx, own: [~, 'x_j[0]']}", "'x_j' cannot be indexed in own row 1"),
    ("f: {pre: 'x_j[0]', post: gx, own: [gx]}", "undefined symbol 'gx' in own row 0"),
    ("f: {pre: x_j, post: gx, own: ['x_own[0]']}", "'own' rows of 'f' need a pre that"),
    ("f: {pre: 'x_j[0]', post: gx, sum: reciprocal}", "'sum: reciprocal' of 'f' needs a pre"),
    ("f: {pre: 'x_j[0] - x_first[1]', post: gx}", "x_first.k. in 'f' needs 'sum: efferent'"),
    ("f: {pre: 'x_j[0] - x_first', post: gx, sum: efferent}", "uses plain x_first"),
    ("f: {pre: 'x_j[0]', post: gx, own: [{sum: 'x_own[0]'}]}", "own row 0 of 'f' must be"),
])
def test_bad_coupling_functions_say_where(text, message):
    with pytest.raises(SpecError, match=message) as failure:
        parse_coupling_functions(text, "couplings.yaml")
    assert "couplings.yaml:1" in str(failure.value)


def tvb_default_connectivity() -> TVBConnectivity:
    connectivity = TVBConnectivity.from_file()
    connectivity.configure()
    return connectivity


# Largest relative difference over 200 steps (floor 1e-6 of each variable's largest value).
# Kuramoto: TVB's sin(x_j - x_i) sees float32 arguments (its float32 history), so NumPy 2.x
# runs its own float32 kernel (on FMA3 CPUs: Cody-Waite reduction and a polynomial, up to
# 1.49 ulp); mfgen gives the same float32 arguments to libm's sinf (correctly rounded in
# almost all cases). They differ in the last bit for 12% of arguments in [-2 pi, 2 pi]
# (NumPy 2.4.6), and the phases carry these 6e-8 steps to 1.0e-5 (measured). 1e-8 would need
# NumPy's kernel itself compiled in, chosen as NumPy's build and the CPU choose; mfgen does
# not. JansenRit: TVB sums dense rows, zeros included, mfgen the CSR row (measured 4.1e-8;
# 2e-12 of each variable's largest value).
TRACE_TOLERANCE = {"Kuramoto": 1e-4, "JansenRit": 1e-6}


def _tvb_and_mfgen_traces(model, connectivity, tvb_function, seed: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """TVB's Raw traces and mftvb.simulate's for 20 ms of Heun on the same configured simulator,
    from one random history over the state ranges; the largest relative difference (floor 1e-6
    of each variable's largest value) after checking the times agree."""
    connectivity.set_idelays(0.1)
    rng = np.random.default_rng(seed)
    history = np.stack([rng.uniform(*model.state_variable_range[s],
                                    (connectivity.horizon, connectivity.number_of_regions))
                        for s in model.state_variables], axis=1)[..., None]

    def configured() -> simulator.Simulator:
        sim = simulator.Simulator(
            model=model, connectivity=connectivity, coupling=tvb_function,
            integrator=integrators.HeunDeterministic(dt=0.1), monitors=(monitors.Raw(),),
            initial_conditions=history, simulation_length=20.0)
        sim.configure()
        return sim

    (times, expected), = configured().run()
    (mf_times, computed), = mftvb.simulate(configured())
    np.testing.assert_allclose(mf_times, times, rtol=0, atol=1e-9)
    scale = np.abs(expected).max(axis=(0, 2, 3), keepdims=True)
    return (np.abs(computed - expected) / np.maximum(np.abs(expected), 1e-6 * scale)).max()


@pytest.mark.parametrize("model_name, tvb_function", [
    ("Kuramoto", coupling.Kuramoto(a=np.array([0.5]))),
    ("JansenRit", coupling.SigmoidalJansenRit(a=np.array([10.0]))),
])
def test_tvb_simulate_runs_the_new_couplings(model_name, tvb_function):
    """mfgen.tvb.simulate on TVB's default connectome, 20 ms of Heun: TVB's traces."""
    relative = _tvb_and_mfgen_traces(getattr(models, model_name)(), tvb_default_connectivity(),
                                     tvb_function, seed=1)
    assert relative < TRACE_TOLERANCE[model_name], relative


def test_tvb_simulate_runs_pre_sigmoidal():
    """TVB's PreSigmoidal (its defaults: dynamic threshold, G = 60) on Epileptor, whose coupled
    variables x1, x2 act through Ks, Kvf (row 0) and Kf (row 1), on TVB's default connectome
    with self-connections at a few nodes (row 1 reads them): 20 ms of Heun, TVB's traces."""
    model = models.Epileptor(Ks=np.array([-0.2]), Kvf=np.array([0.05]), Kf=np.array([0.1]))
    connectivity = TVBConnectivity.from_file()
    weights = connectivity.weights.copy()
    weights[np.arange(0, 76, 5), np.arange(0, 76, 5)] = 1.5
    connectivity.weights = weights
    connectivity.configure()
    # float32 history and weights, TVB's float64 pre and sequential sum: the coupling is TVB's
    # to rounding; what remains is the dfun's rounding (1e-15) carried over 200 steps.
    relative = _tvb_and_mfgen_traces(model, connectivity, coupling.PreSigmoidal(), seed=2)
    assert relative < 1e-8, relative


def test_tvb_simulate_runs_static_pre_sigmoidal():
    """TVB's PreSigmoidal(dynamic=False) with a global threshold (one theta: the local one's
    numbers) on Epileptor, on TVB's default connectome made asymmetric (a third of the
    connections kept one way only, so the opposite connection's zeros count) with
    self-connections at a few nodes: 20 ms of Heun, TVB's traces."""
    model = models.Epileptor(Ks=np.array([-0.2]), Kvf=np.array([0.05]), Kf=np.array([0.1]))
    connectivity = TVBConnectivity.from_file()
    weights = connectivity.weights.copy()
    rng = np.random.default_rng(5)
    upper = np.triu(rng.random(weights.shape) < 0.3, 1)
    weights[upper] = 0.0
    weights[np.arange(0, 76, 5), np.arange(0, 76, 5)] = 1.5
    assert ((weights != 0) & (weights.T == 0)).sum() > 100
    connectivity.weights = weights
    connectivity.configure()
    function = coupling.PreSigmoidal(dynamic=False, globalT=True, G=np.array([2.0]),
                                     theta=np.array([-1.0]))
    # as the dynamic case: the coupling is TVB's to rounding, the dfun's rounding remains
    relative = _tvb_and_mfgen_traces(model, connectivity, function, seed=3)
    assert relative < 1e-8, relative

