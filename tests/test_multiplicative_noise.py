"""TVB's Multiplicative noise (`multiplicative_noise:` in a spec): the increment of a noisy
state is sqrt(dt) N sqrt(2 nsig) b(x), b evaluated at the state at the start of the step, in
TVB's stochastic Heun and Euler-Maruyama schemes. Checked against TVB's Simulator with its
default b (Linear: a = 1, b = 0, so b(S) = S) and with another b (Linear a = 0.5, b = 0.2) on
the same history and the same normals."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tvb_connectivity
from tvb.datatypes import equations
from tvb.simulator import coupling, integrators, models, monitors, noise, simulator

import mfgen
from mfgen.errors import SpecError

DT = 0.1
N_STEPS = 300
NSIG = 0.002
SPEC = """\
name: rww_multiplicative
extends: tvb_reduced_wong_wang
multiplicative_noise:
  S: S          # TVB's default b: Linear(a=1, b=0)
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("multiplicative") / "rww_multiplicative.yaml"
    path.write_text(SPEC)
    return mfgen.load(str(path))


@pytest.fixture(scope="module")
def network() -> mfgen.Connectivity:
    rng = np.random.default_rng(4)
    n = 20
    weights = rng.uniform(0.0, 1.0, (n, n)) * (rng.random((n, n)) < 0.4)
    return mfgen.Connectivity(weights, rng.uniform(1.0, 30.0, (n, n)), 3.0,
                              centres=rng.normal(size=(n, 3)))


@pytest.mark.parametrize("tvb_integrator, integrator", [
    (integrators.HeunStochastic, "heun_stochastic"),
    (integrators.EulerStochastic, "euler_maruyama"),
])
def test_multiplicative_noise_is_tvbs(model, network, tvb_integrator, integrator):
    connectivity = tvb_connectivity(network)
    horizon = int(np.rint(network.tract_lengths / 3.0 / DT).max()) + 1
    rng = np.random.default_rng(8)
    history = rng.uniform(0.1, 0.9, (horizon, 1, network.n_regions))
    sim = simulator.Simulator(
        model=models.ReducedWongWang(), connectivity=connectivity,
        coupling=coupling.Linear(a=np.array([0.05])),
        integrator=tvb_integrator(dt=DT, noise=noise.Multiplicative(
            nsig=np.array([NSIG]), noise_seed=11)),
        monitors=(monitors.Raw(),), initial_conditions=history[..., None].copy(),
        simulation_length=N_STEPS * DT)
    sim.configure()
    (_, expected), = sim.run()
    normals = np.random.RandomState(11).normal(size=(N_STEPS, 1, network.n_regions))
    result = mfgen.simulate(
        model, network, duration=N_STEPS * DT, dt=DT, integrator=integrator,
        coupling="linear", coupling_parameters={"a": 0.05}, noise={"S": NSIG},
        noise_array=normals, initial_history=history, coupling_precision="float32")
    computed = result["raw"].data
    # The noise moved S: against a run without it the traces differ by far more than the
    # tolerance, and a b(x) taken elsewhere (or additive noise) would too.
    additive = mfgen.simulate(
        mfgen.load("tvb_reduced_wong_wang"), network, duration=N_STEPS * DT, dt=DT,
        integrator=integrator, coupling="linear", coupling_parameters={"a": 0.05},
        noise={"S": NSIG}, noise_array=normals, initial_history=history,
        coupling_precision="float32")["raw"].data
    scale = np.abs(expected).max()
    assert np.abs(additive - expected[..., 0]).max() > 1e-4 * scale
    # Rounding only: TVB multiplies sqrt(dt) N by sqrt(2 nsig) b(S), mfgen N sqrt(2 nsig)
    # sqrt(dt) by b(S) (1 ulp per step), and sums the float32 coupling as TVB does (measured
    # 7e-16 of the largest S; the same run with additive noise is 0.48 away).
    assert np.abs(computed - expected[..., 0]).max() <= 1e-10 * scale


def test_multiplicative_noise_names_a_state(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("  S: S", "  s: S"))
    with pytest.raises(SpecError, match="multiplicative noise for 's', which is not a state"):
        mfgen.load(str(path))


def tvb_simulator(model_instance, network, tvb_noise, n_steps=50):
    connectivity = tvb_connectivity(network)
    horizon = int(np.rint(network.tract_lengths / 3.0 / DT).max()) + 1
    history = np.random.default_rng(2).uniform(0.1, 0.9, (horizon, 1, network.n_regions, 1))
    sim = simulator.Simulator(
        model=model_instance, connectivity=connectivity,
        coupling=coupling.Linear(a=np.array([0.05])),
        integrator=integrators.HeunStochastic(dt=DT, noise=tvb_noise),
        monitors=(monitors.Raw(),), initial_conditions=history, simulation_length=n_steps * DT)
    sim.configure()
    return sim


def test_the_tvb_bridge_runs_multiplicative_noise(model, network, tmp_path_factory):
    """mfgen.tvb.simulate of a TVB simulator with Multiplicative noise, on a model_class of
    the spec that declares it: TVB's traces (TVB's own ReducedWongWang on the same stream)."""
    from mfgen import tvb as mftvb

    path = tmp_path_factory.mktemp("bridge") / "rww_multiplicative.yaml"
    path.write_text(SPEC)
    ours = mftvb.model_class(str(path))

    def noise_():
        return noise.Multiplicative(nsig=np.array([NSIG]), noise_seed=5)

    (_, expected), = tvb_simulator(models.ReducedWongWang(), network, noise_()).run()
    (_, computed), = mftvb.simulate(tvb_simulator(ours(), network, noise_()))
    scale = np.abs(expected).max()
    assert np.abs(computed - expected).max() <= 1e-10 * scale  # as above
    # A spec without multiplicative_noise (TVB's own class: additive) is refused, and so is
    # the multiplicative spec under Additive noise: never the other kind of noise silently.
    with pytest.raises(mftvb.UnsupportedByMfgen, match="Multiplicative noise on S"):
        mftvb.simulate(tvb_simulator(models.ReducedWongWang(), network, noise_()))
    with pytest.raises(mftvb.UnsupportedByMfgen, match="declares multiplicative noise for S"):
        mftvb.simulate(tvb_simulator(ours(), network, noise.Additive(
            nsig=np.array([NSIG]), noise_seed=5)))


AFFINE_SPEC = """\
name: rww_affine_noise
extends: tvb_reduced_wong_wang
multiplicative_noise:
  S: 0.5 * S + 0.2     # TVB's Multiplicative(b=Linear(parameters={'a': 0.5, 'b': 0.2}))
"""


def test_the_tvb_bridge_runs_multiplicative_noise_with_another_b(network, tmp_path_factory):
    """TVB's Multiplicative noise with a non-default b equation, on a spec whose
    multiplicative_noise declares that b: TVB's traces; a TVB b the spec does not declare
    (other coefficients, another equation) is refused, naming both values."""
    from mfgen import tvb as mftvb

    path = tmp_path_factory.mktemp("affine") / "rww_affine_noise.yaml"
    path.write_text(AFFINE_SPEC)
    ours = mftvb.model_class(str(path))

    def noise_(b):
        return noise.Multiplicative(nsig=np.array([NSIG]), noise_seed=5, b=b)

    affine = equations.Linear(parameters={"a": 0.5, "b": 0.2})
    (_, expected), = tvb_simulator(models.ReducedWongWang(), network, noise_(affine)).run()
    (_, computed), = mftvb.simulate(tvb_simulator(ours(), network, noise_(affine)))
    scale = np.abs(expected).max()
    assert np.abs(computed - expected).max() <= 1e-10 * scale  # as above
    # b matters here: TVB's default b gives other traces, far beyond the tolerance
    (_, default_b), = tvb_simulator(models.ReducedWongWang(), network, noise_(
        equations.Linear())).run()
    assert np.abs(default_b - expected).max() > 1e-6 * scale
    for other in (equations.Linear(parameters={"a": 0.5, "b": 0.3}), equations.Gaussian()):
        with pytest.raises(mftvb.UnsupportedByMfgen, match="declares another b"):
            mftvb.simulate(tvb_simulator(ours(), network, noise_(other)))
