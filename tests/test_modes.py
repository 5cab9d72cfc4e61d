"""Models with modes (issue 9): `modes:` in the spec language, per-mode equations with
`mode_sum` and `mode_dot`, [modes] and [modes, modes] parameters, TVB's array layout
(n_state, n_nodes, n_modes), and TVB's two ReducedSet models against TVB 2.10's own classes:
their `dfun` at random states and a network simulation with TVB's Simulator."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_traits_are_tvbs, narray_traits, relative_error

import mfgen
from mfgen.errors import MfgenError, SpecError

TWO_MODES = """\
name: two_modes
modes: 2
parameters:
  k: {shape: [modes], default: [1.0, 2.0]}
  A: {shape: [modes, modes], default: [[1.0, 2.0], [3.0, 4.0]]}
  g: 1.0
state_variables:
  x: {range: [-1, 1]}
  y: {range: [-1, 1]}
coupling:
  c: x
derived:
  total: mode_sum(c)
derivatives:
  x: k * x + mode_dot(y, A)
  y: g * total + local_coupling * x
"""


@pytest.fixture(scope="module")
def two_modes(tmp_path_factory):
    path = tmp_path_factory.mktemp("modes") / "two_modes.yaml"
    path.write_text(TWO_MODES)
    return mfgen.load(path)


# One node, TVB's layout: state[s, node, mode].
STATE = np.array([[[0.5, 0.25]], [[1.0, -2.0]]])
COUPLING = np.array([[[0.125, 0.5]]])
# By hand (all exact in binary): x'_i = k_i x_i + sum_k y_k A[k, i]; y'_i = sum_k c_k + lc x_i
# x'_0 = 0.5 + (1 - 6) = -4.5, x'_1 = 0.5 + (2 - 8) = -5.5; y' = 0.625 + 0.5 x_i.
EXPECTED = np.array([[[-4.5, -5.5]], [[0.875, 0.75]]])


def test_modes_dfun_takes_tvbs_layout_and_mixes_modes(two_modes):
    assert two_modes.n_modes == 2
    assert two_modes.state_variables == ("x", "y")
    assert two_modes.coupling_variables == ("c",)
    assert two_modes.parameters["A"].shape == (2, 2)
    np.testing.assert_array_equal(two_modes.parameters["k"], [1.0, 2.0])
    np.testing.assert_array_equal(two_modes.dfun(STATE, COUPLING, 0.5), EXPECTED)
    np.testing.assert_array_equal(two_modes.reference.dfun(STATE, COUPLING, 0.5), EXPECTED)
    out = np.empty_like(STATE)
    assert two_modes.dfun(STATE, COUPLING, 0.5, out=out) is out
    np.testing.assert_array_equal(out, EXPECTED)
    # Overrides: A = identity, k = 0: x'_i = y_i.
    np.testing.assert_array_equal(
        two_modes.dfun(STATE, COUPLING, 0.5, A=np.eye(2), k=[0.0, 0.0])[0], STATE[1])


def test_modes_parameters_per_node_are_each_nodes_own(two_modes, rng):
    n = 7
    state = rng.uniform(-1, 1, (2, n, 2))
    coupling = rng.uniform(-1, 1, (1, n, 2))
    tables = rng.uniform(-1, 1, (2, 2, n))
    gains = rng.uniform(0, 2, (2, n))
    together = two_modes.dfun(state, coupling, A=tables, k=gains)
    for node in range(n):
        alone = two_modes.dfun(state[:, node:node + 1], coupling[:, node:node + 1],
                               A=tables[..., node], k=gains[:, node])
        np.testing.assert_array_equal(together[:, node:node + 1], alone)
    np.testing.assert_allclose(two_modes.reference.dfun(state, coupling, A=tables, k=gains),
                               together, rtol=1e-15, atol=0)  # same formula, same order


@pytest.mark.parametrize("call, message", [
    (lambda m: m.dfun(STATE[..., 0], COUPLING[..., 0]), r"state must have shape \(2, n_nodes, 2\)"),
    (lambda m: m.dfun(STATE, COUPLING[..., :1]), r"coupling must have shape \(1, 1, 2\)"),
    (lambda m: m.dfun(STATE, COUPLING, A=np.eye(3)), r"parameter 'A' must have shape \(2, 2\)"),
])
def test_modes_wrong_shapes_are_refused_by_name(two_modes, call, message):
    with pytest.raises(ValueError, match=message):
        call(two_modes)


def test_the_kernel_view_is_what_a_simulation_runs(two_modes):
    kernel = two_modes.kernel_model
    assert kernel.state_variables == ("x[0]", "x[1]", "y[0]", "y[1]")
    assert kernel.coupling_variables == ("c[0]", "c[1]")
    assert list(kernel.cvar) == [0, 1]
    rows = STATE.transpose(0, 2, 1).reshape(4, 1)
    np.testing.assert_array_equal(kernel.dfun(rows, COUPLING.reshape(2, 1), 0.5),
                                  EXPECTED.transpose(0, 2, 1).reshape(4, 1))
    # A Simulation of the model runs this view, in TVB's layout at its boundary
    # (tests/test_modes_simulation.py).
    simulation = mfgen.Simulation(two_modes, mfgen.Connectivity.synthetic(3))
    assert simulation.kernel_simulation.model is kernel and simulation.state.shape == (2, 3, 2)
    with pytest.raises(MfgenError, match="has 2 modes: simulate it with mfgen.Simulation"):
        two_modes.dfun_address()


@pytest.mark.parametrize("edit, where, message", [
    (("modes: 2", "modes: 0"), "2:8", "'modes' must be a whole number from 1 to 16"),
    (("shape: [modes], default: [1.0, 2.0]", "shape: [modes, 2], default: [1.0, 2.0]"), "4:14",
     "the shape of parameter 'k' must be [modes] or [modes, modes]"),
    (("default: [1.0, 2.0]}", "default: [1.0, 2.0, 3.0]}"), "4:32",
     "the default of parameter 'k' (shape [2]) must be a list of 2 numbers"),
    (("default: [[1.0, 2.0], [3.0, 4.0]]", "default: [1.0, 2.0, 3.0, 4.0]"), "5:39",
     "must be a list of 2 rows of 2 numbers"),
    (("x: k * x + mode_dot(y, A)", "x: k * x + A"), "15:14", "'A' is a mode matrix"),
    (("mode_dot(y, A)", "mode_dot(y, k)"), "15:14",
     "the second argument of mode_dot() must be a parameter of shape [modes, modes]"),
    (("mode_sum(c)", "mode_sum(g)"), "13:10", "mode_sum() needs a per-mode value"),
    (("mode_sum(c)", "mode_sum(2 * c)"), "13:10", "mode_sum() takes 1 name(s)"),
    (("derived:", "functions:\n  f: {args: [u], return: mode_sum(u)}\nderived:"), "13:26",
     "mode_sum() mixes the modes of a model-level value"),
    (("derived:", "observables:\n  both: x + y\nderived:"), "2:8",
     "'observables' cannot be used with modes yet"),
])
def test_modes_errors_name_the_place(tmp_path, edit, where, message):
    assert edit[0] in TWO_MODES
    path = tmp_path / "bad.yaml"
    path.write_text(TWO_MODES.replace(*edit))
    with pytest.raises(SpecError) as info:
        mfgen.load(path)
    assert f"bad.yaml:{where}" in str(info.value) and message in str(info.value), info.value


# -- TVB's ReducedSet models ------------------------------------------------------------------
REDUCED_SETS = {
    "tvb_reduced_set_fitz_hugh_nagumo": "ReducedSetFitzHughNagumo",
    "tvb_reduced_set_hindmarsh_rose": "ReducedSetHindmarshRose",
}
# TVB parameters that enter only update_derived_parameters (not parameters of the specs), and
# the derived tables the specs take as parameters instead.
DERIVATION_INPUTS = {
    "tvb_reduced_set_fitz_hugh_nagumo": {"mu", "sigma", "a"},
    "tvb_reduced_set_hindmarsh_rose": {"a", "b", "c", "d", "xo", "mu", "sigma"},
}
# TVB parameters its update_derived_parameters reads too (m_i = r s xo ...), where a per-node
# value cannot broadcast: one random value for all nodes.
ONE_VALUE = {"tvb_reduced_set_hindmarsh_rose": {"r", "s"}}
TABLES = {
    "tvb_reduced_set_fitz_hugh_nagumo": {"Aik", "Bik", "Cik", "e_i", "f_i", "IE_i", "II_i",
                                         "m_i", "n_i"},
    "tvb_reduced_set_hindmarsh_rose": {"A_ik", "B_ik", "C_ik", "a_i", "b_i", "c_i", "d_i",
                                       "e_i", "f_i", "h_i", "p_i", "IE_i", "II_i", "m_i", "n_i"},
}


def tvb_class(spec: str) -> type:
    from tvb.simulator import models
    return getattr(models, REDUCED_SETS[spec])


@pytest.mark.parametrize("spec", REDUCED_SETS)
def test_reduced_sets_have_tvbs_names_defaults_ranges_and_tables(spec):
    model = mfgen.load(spec)
    assert model.n_modes == tvb_class(spec).number_of_modes == 3
    assert_traits_are_tvbs(model, tvb_class(spec), DERIVATION_INPUTS[spec], TABLES[spec])


def random_tvb_model(spec: str, n: int, rng: np.random.Generator):
    """A configured TVB model with random per-node parameters (shape (n, 1)) in TVB's domains
    and random scalar derivation inputs (TVB derives its tables from one value of each; sigma
    from 0.2: at TVB's domain end 0 the normal quantiles degenerate), and the same parameters
    as mfgen dfun arguments: per node (n,), the configured tables."""
    traits = narray_traits(tvb_class(spec))
    per_node, scalars = {}, {}
    for name, trait in traits.items():
        low = max(trait.domain.lo, 0.2) if name == "sigma" else trait.domain.lo
        if name in DERIVATION_INPUTS[spec] | ONE_VALUE.get(spec, set()):
            scalars[name] = np.array([rng.uniform(low, trait.domain.hi)])
        else:
            per_node[name] = rng.uniform(low, trait.domain.hi, (n, 1))
    tvb = tvb_class(spec)(**per_node, **scalars)
    tvb.configure()
    model = mfgen.load(spec)
    parameters = {name: value[:, 0] for name, value in per_node.items()}
    parameters.update({name: float(value[0]) for name, value in scalars.items()
                       if name not in DERIVATION_INPUTS[spec]})
    for name in TABLES[spec]:
        parameters[name] = np.asarray(getattr(tvb, name)).reshape(model.parameters[name].shape)
    return tvb, parameters


def random_modal_inputs(model, n: int, rng: np.random.Generator):
    """States uniform in TVB's state_variable_range, each mode drawn alone; coupling of either
    sign up to a tenth of the coupled state's range."""
    state = np.stack([rng.uniform(*model.states[name].range, (n, 3))
                      for name in model.state_variables])
    widths = [0.1 * np.ptp(model.states[model.state_variables[i]].range) for i in model.cvar]
    coupling = np.stack([rng.uniform(-w, w, (n, 3)) for w in widths])
    return state, coupling


# As the zoo (tests/test_tvb_zoo.py): the same formulas in another order, 1e-12 relative with
# the checking module's floor (1 % of a state's largest derivative): xi' sums terms of both
# signs (-e_i xi^3 against K11 (dot - xi)), whose rounding does not cancel with them. Measured:
# ~1e-14.
RTOL = 1e-12


@pytest.mark.parametrize("spec", REDUCED_SETS)
def test_reduced_set_dfun_matches_tvbs_dfun(spec, rng):
    model = mfgen.load(spec)
    n = 1000
    state, coupling = random_modal_inputs(model, n, rng)
    default = tvb_class(spec)()
    default.configure()
    tvb, random_parameters = random_tvb_model(spec, n, rng)
    local_coupling = float(rng.uniform(-0.5, 0.5))
    for case, parameters, lc in ((default, {}, 0.0), (tvb, random_parameters, local_coupling)):
        with np.errstate(all="ignore"):
            expected = case.dfun(state, coupling, lc)
        for computed in (model.dfun(state, coupling, lc, **parameters),
                         model.reference.dfun(state, coupling, lc, **parameters)):
            assert computed.shape == expected.shape == state.shape
            assert np.isfinite(expected).all() and np.isfinite(computed).all()
            error = relative_error(computed.reshape(model.n_states, -1),
                                   expected.reshape(model.n_states, -1)).max(axis=1)
            assert max(error) <= RTOL, dict(zip(model.state_variables, error))


# -- the ReducedSet models in TVB's Simulator and in mfgen's engine ----------------------------
# Traces as in tests/test_tvb_bridge.py (its helpers and tolerance: <= 1e-8 relative, floor 1e-6
# of each variable's largest value; measured up to 5e-10 here). TVB class: (derivation inputs
# changed from TVB's defaults, so the configured tables are not the spec's defaults; Linear
# coupling strength; dt). Hindmarsh-Rose is stiff at TVB's default dt = 0.1 (Heun blows up
# from the middle of its ranges in ~10 ms, in TVB as in mfgen): dt = 0.05.
MODAL_CASES = {
    "ReducedSetFitzHughNagumo": ({"sigma": 0.5, "mu": 0.1, "a": 0.6}, 0.01, 0.1),
    "ReducedSetHindmarshRose": ({"sigma": 0.4, "xo": -1.4}, 0.01, 0.05),
}


def modal_history(model, horizon: int, n: int, seed: int = 0) -> np.ndarray:
    """(horizon, n_state, n, n_modes), uniform in the middle fifth of TVB's state ranges
    (from the edges both TVB and mfgen blow up within a few ms), each mode drawn alone."""
    rng = np.random.default_rng(seed)
    columns = []
    for name in model.state_variables:
        low, high = model.state_variable_range[name]
        middle, half = (low + high) / 2, 0.1 * (high - low)
        columns.append(rng.uniform(middle - half, middle + half, (horizon, n, 3)))
    return np.stack(columns, axis=1)


def tvb_connectivity(dt: float):
    from tvb.datatypes.connectivity import Connectivity

    connectivity = Connectivity.from_file()  # tvb-data's 76 regions, TVB's speed 3 mm/ms
    connectivity.configure()
    connectivity.set_idelays(dt)  # its horizon at this dt, as Simulator.configure computes it
    return connectivity


def modal_model(cls, name: str, **extra):
    inputs, _, _ = MODAL_CASES[name]
    return cls(**{k: np.array([v]) for k, v in inputs.items()}, **extra)


@pytest.mark.parametrize("name", MODAL_CASES)
def test_simulate_runs_tvbs_reduced_set_simulator(name):
    from test_tvb_bridge import TOLERANCE, configured
    from test_tvb_bridge import relative_error as trace_error
    from tvb.simulator import coupling, integrators, models

    from mfgen import tvb as mftvb

    _, a, dt = MODAL_CASES[name]
    cls = getattr(models, name)
    connectivity = tvb_connectivity(dt)
    history = modal_history(cls(), connectivity.horizon, connectivity.number_of_regions)

    def run(function):
        sim = configured(modal_model(cls, name), connectivity, history,
                         integrators.HeunDeterministic(dt=dt),
                         tvb_coupling=coupling.Linear(a=np.array([a])), length=500 * dt)
        return function(sim)

    expected = run(lambda sim: sim.run())
    computed = run(mftvb.simulate)
    assert all(np.isfinite(data).all() for _, data in expected)
    assert len(computed) == len(expected) == 2
    for (times, data), (tvb_times, tvb_data) in zip(computed, expected):
        assert data.shape == tvb_data.shape and data.shape[-2:] == (76, 3)
        np.testing.assert_allclose(times, tvb_times, rtol=0, atol=1e-9)
        assert trace_error(data, tvb_data) <= TOLERANCE
    raw = expected[0][1]  # the run means something: the states moved, the modes differ
    assert np.abs(raw[-1] - raw[0]).max() > 1e-3 * np.abs(raw).max()
    assert np.abs(raw[..., 0] - raw[..., 1]).max() > 1e-3 * np.abs(raw).max()


def test_reduced_set_with_tvbs_noise_and_as_a_model_class():
    """Stochastic Heun with TVB's Additive noise stream (normals of shape (n_state, n_nodes,
    n_modes) per step), and `model_class` of the spec inside TVB's own Simulator."""
    from test_tvb_bridge import TOLERANCE, configured
    from test_tvb_bridge import relative_error as trace_error
    from tvb.simulator import integrators, models, monitors, noise

    from mfgen import tvb as mftvb

    connectivity = tvb_connectivity(0.1)
    voi = ("xi", "eta", "alpha", "beta")
    history = modal_history(models.ReducedSetFitzHughNagumo(), connectivity.horizon,
                            connectivity.number_of_regions, seed=1)

    def run(cls, function, noisy=True):
        integrator = integrators.HeunStochastic(
            dt=0.1, noise=noise.Additive(nsig=np.array([1e-3, 0.0, 1e-3, 0.0]), noise_seed=7)) \
            if noisy else integrators.HeunDeterministic(dt=0.1)
        sim = configured(cls(variables_of_interest=voi), connectivity, history, integrator,
                         (monitors.Raw(), monitors.SubSample(period=0.5)))
        return function(sim)

    expected = run(models.ReducedSetFitzHughNagumo, lambda sim: sim.run())
    computed = run(models.ReducedSetFitzHughNagumo, mftvb.simulate)
    for (times, data), (tvb_times, tvb_data) in zip(computed, expected):
        np.testing.assert_allclose(times, tvb_times, rtol=0, atol=1e-9)
        assert trace_error(data, tvb_data) <= TOLERANCE
    deterministic = run(models.ReducedSetFitzHughNagumo, lambda sim: sim.run(), noisy=False)
    assert trace_error(expected[0][1], deterministic[0][1]) > 1e-6  # the noise mattered

    ReducedSet = mftvb.model_class("tvb_reduced_set_fitz_hugh_nagumo")  # noqa: N806 - a class
    assert ReducedSet.number_of_modes == 3
    tvb_defaults = models.ReducedSetFitzHughNagumo()
    tvb_defaults.configure()  # computes TVB's tables
    np.testing.assert_array_equal(ReducedSet().Aik, tvb_defaults.Aik)
    in_tvb = run(ReducedSet, lambda sim: sim.run(), noisy=False)  # TVB's loop, mfgen's dfun
    for (times, data), (tvb_times, tvb_data) in zip(in_tvb, deterministic):
        np.testing.assert_array_equal(times, tvb_times)
        assert trace_error(data, tvb_data) <= TOLERANCE



def test_mfgen_check_compares_a_modes_kernel_with_its_reference(two_modes):
    from mfgen.runtime.checking import check_model

    report = check_model(two_modes, points=200)
    assert report.passed and set(report.max_error) == {"x[0]", "x[1]", "y[0]", "y[1]"}


# -- issue 8: one record type per concept from spec to runtime ---------------------------------
@pytest.mark.parametrize("spec", ["tvb_reduced_set_fitz_hugh_nagumo", "tvb_wilson_cowan"])
def test_one_parameter_and_state_record_from_spec_to_runtime(spec):
    import dataclasses

    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.records import Parameter, State
    from mfgen.codegen.spec import load_spec

    declared = load_spec(spec)
    ir = build_ir(declared)
    model = mfgen.load(spec)  # read back from the cache index (JSON)
    assert [p.name for p in ir.parameters] == list(declared.parameters) == list(model.parameters)
    for in_ir, (name, written) in zip(ir.parameters, declared.parameters.items()):
        assert type(written) is Parameter and in_ir is written  # passed on, not copied
        assert model.parameter_info[name] == written  # the same fields (`where` aside)
        assert type(model.parameter_info[name]) is Parameter
    for in_ir, (name, written) in zip(ir.declared_states, declared.states.items()):
        assert type(written) is State and type(model.states[name]) is State
        # the IR fills in where `mfgen check` samples a state when the spec does not say
        assert in_ir == dataclasses.replace(written, check_range=in_ir.check_range)
        assert model.states[name] == in_ir
    if spec == "tvb_wilson_cowan":
        assert model.parameter_info["shift_sigmoid"].boolean


def test_show_names_the_modes_and_prints_mode_tables_by_rows():
    from mfgen.runtime.describe import describe_model

    spec = "tvb_reduced_set_fitz_hugh_nagumo"
    metadata = mfgen.load(spec).metadata
    text = describe_model(spec, metadata)
    assert "modes: 3 (arrays are (n_state, n_nodes, 3)" in text
    assert "[[0.332817, 0.185252, 0.332817], [0.598454, 0.333111, 0.598454]," in text  # Aik
    assert "mode_dot(xi, Aik)" in text
    assert r"\mathrm{mode\_dot}{\left(\mathrm{xi},\mathrm{Aik} \right)}" in \
        describe_model(spec, metadata, latex=True)


def test_a_child_that_changes_modes_restates_the_mode_parameters(tmp_path):
    (tmp_path / "parent.yaml").write_text(TWO_MODES)
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nname: three_modes\nmodes: 3\n")
    with pytest.raises(SpecError, match=r"parent.yaml:4:3: parameter 'k' has shape \[2\] but "
                                        r"the model has 3 modes"):
        mfgen.load(child)
    child.write_text("extends: parent.yaml\nname: three_modes\nmodes: 3\nparameters:\n"
                     "  k: {shape: [modes], default: [1.0, 2.0, 3.0]}\n"
                     "  A: {shape: [modes, modes], default: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}\n")
    model = mfgen.load(child)
    state = np.ones((2, 1, 3))
    # x'_i = k_i * 1 + y_i (A = identity); y'_i = sum of the three coupling values = 0
    np.testing.assert_array_equal(model.dfun(state, np.zeros((1, 1, 3))),
                                  [[[2.0, 3.0, 4.0]], [[0.0, 0.0, 0.0]]])
