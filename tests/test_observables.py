"""Observables (`observables:` in a spec): expressions of the states computed in C by the
model's module and recorded by any monitor, as TVB's variables_of_interest 'x2 - x1'
(tvb_epileptor's `x2_minus_x1`)."""

from __future__ import annotations

import numpy as np
import pytest
from tvb.simulator import models

import mfgen
from mfgen.errors import SpecError

N_NODES = 12


@pytest.fixture(scope="module")
def run():
    model = mfgen.load("tvb_epileptor")
    return mfgen.simulate(
        model, mfgen.Connectivity.synthetic(N_NODES), duration=20.0, dt=0.1, seed=3,
        integrator="heun", coupling="difference",
        monitors=[mfgen.Raw(), mfgen.Raw(["z", "x2_minus_x1"], name="observed"),
                  mfgen.SubSample(1.0, ["x2_minus_x1"]),
                  mfgen.TemporalAverage(1.0, ["x2_minus_x1", "x1", "x2"])])


def test_an_observable_is_tvbs_variable_of_interest(run):
    """The observable of every recorded step is what TVB's Epileptor.observe gives for
    variables_of_interest ('x2 - x1', 'z') on the same states: one subtraction, exactly."""
    states = run["raw"].data  # (steps, n_state, nodes)
    tvb_model = models.Epileptor(variables_of_interest=("x2 - x1", "z"))
    tvb_model.configure()
    expected = np.stack([tvb_model.observe(state[..., None])[..., 0] for state in states])
    assert (run["observed"].data == expected[:, ::-1]).all()
    assert np.abs(expected[:, 0]).max() > 0.1  # something was observed


def test_every_monitor_records_observables(run):
    raw = run["raw"]
    sampled = run["subsample"]
    assert (sampled["x2_minus_x1"] == (raw["x2"] - raw["x1"])[9::10]).all()
    average = run["temporal_average"]
    # The average of x2 - x1 over a window and the difference of the averages: the same
    # numbers summed in another order (10 terms of size <= 3: rounding below 1e-14).
    np.testing.assert_allclose(average["x2_minus_x1"], average["x2"] - average["x1"],
                               rtol=0, atol=1e-14)
    window = (raw["x2"] - raw["x1"]).reshape(-1, 10, N_NODES).mean(axis=1)
    np.testing.assert_allclose(average["x2_minus_x1"], window, rtol=0, atol=1e-14)


def test_an_unknown_monitor_variable_names_the_recordable_ones():
    with pytest.raises(ValueError, match="recordable: .*x2_minus_x1"):
        mfgen.Simulation(mfgen.load("tvb_epileptor"), mfgen.Connectivity.synthetic(2),
                         monitors=[mfgen.Raw(["x2 - x1"])])


@pytest.mark.parametrize("observable, message", [
    ("obs: c_0 + x", "observable 'obs' uses c_0"),
    ("obs: drive", "observable 'obs' uses c_0, local_coupling"),
    ("x: 2 * x", "observable 'x' has the name of a state variable"),
    ("obs: y", "undefined symbol 'y'"),
])
def test_bad_observables_say_where(tmp_path, observable, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"""\
name: bad
state_variables:
  x: {{range: [0.0, 1.0]}}
coupling:
  c_0: x
derived:
  drive: c_0 + local_coupling * x
derivatives:
  x: -x + drive
observables:
  {observable}
""")
    with pytest.raises(SpecError, match=message) as failure:
        mfgen.load(str(path))
    assert f"{path}:11" in str(failure.value)


def test_a_run_config_records_an_observable_into_hdf5(tmp_path):
    """`mfgen run` with a monitor of the observable: checked by name, written with h5py."""
    import subprocess
    import sys
    from pathlib import Path

    import h5py

    config = tmp_path / "run.yaml"
    config.write_text("""\
spec: tvb_epileptor
connectivity: {source: synthetic, regions: 4}
integrator: heun
dt: 0.1
duration: 2.0
monitors:
  - {kind: raw, variables: [x1, x2, x2_minus_x1]}
output: {path: run.h5}
""")
    cli = Path(sys.executable).parent / "mfgen"
    done = subprocess.run([str(cli), "run", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with h5py.File(tmp_path / "run.h5") as handle:
        group = handle["monitors/raw"]
        data = group["data"][...]
        names = [v.decode() if isinstance(v, bytes) else v for v in group["variables"][()]]
    assert names == ["x1", "x2", "x2_minus_x1"] and data.shape == (20, 3, 4)
    assert (data[:, 2] == data[:, 1] - data[:, 0]).all()
