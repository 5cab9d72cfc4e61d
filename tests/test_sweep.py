"""Parameter sweeps on the local cores: designs, measures, store, resume, failures, plot, CLI.

The Dask-cluster checks are in test_sweep_dask.py. Networks are tiny and runs short: the
point is that every sweep point equals the single run it stands for.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mfgen
from mfgen.runtime.sweep import run_points
from mfgen.runtime.sweep_bundle import spec_bundle
from mfgen.runtime.sweep_config import (
    SweepConfigError,
    load_sweep_config,
)
from mfgen.runtime.sweep_design import SweepError, design_points, parse_quantity
from mfgen.runtime.sweep_measures import compute_measures, parse_measures
from mfgen.runtime.sweep_store import read_store

MODEL = "generic_2d_oscillator"
MEASURES = {"transient": 20.0, "period": 1.0, "mean": ["V"], "std": ["V"],
            "frequency": ["V"], "expressions": {"spread": "max(V) - min(W)"}}
BASE = {"integrator": "heun_stochastic", "noise": {"V": 1e-3, "W": 1e-3}, "seed": 7,
        "coupling_parameters": {"a": 0.05}}


@pytest.fixture(scope="module")
def model():
    return mfgen.load(MODEL)


@pytest.fixture(scope="module")
def network():
    return mfgen.Connectivity.synthetic(5, seed=3)


# -- designs ----------------------------------------------------------------------------------
def test_ranges_and_grid_order(model):
    log = parse_quantity("d", {"start": 0.01, "stop": 1.0, "num": 3, "log": True}, model, "grid")
    np.testing.assert_allclose(log.values, [0.01, 0.1, 1.0], rtol=1e-15)  # geomspace endpoints
    linear = parse_quantity("coupling.a", {"start": 0, "stop": 1, "num": 5}, model, "grid")
    assert linear.values == (0.0, 0.25, 0.5, 0.75, 1.0)
    points, shape = design_points([log, linear], "grid")
    assert shape == (3, 5) and len(points) == 15
    assert points[0] == {"d": log.values[0], "coupling.a": 0.0}
    assert points[1] == {"d": log.values[0], "coupling.a": 0.25}  # last quantity fastest
    assert points[5]["d"] == log.values[1]


def test_zip_and_random_designs(model):
    a = parse_quantity("a", [1.0, 2.0, 3.0], model, "zip")
    seed = parse_quantity("seed", [4, 5, 6], model, "zip")
    points, shape = design_points([a, seed], "zip")
    assert shape is None and points == [{"a": 1.0, "seed": 4.0}, {"a": 2.0, "seed": 5.0},
                                        {"a": 3.0, "seed": 6.0}]
    with pytest.raises(SweepError, match="same number of values"):
        design_points([a, parse_quantity("b", [1.0], model, "zip")], "zip")
    d = parse_quantity("d", {"start": 1e-3, "stop": 1.0, "log": True}, model, "random")
    noise = parse_quantity("noise.V", {"start": 0.0, "stop": 0.5}, model, "random")
    first, _ = design_points([d, noise], "random", n_points=200, random_seed=1)
    again, _ = design_points([d, noise], "random", n_points=200, random_seed=1)
    assert first == again  # reproducible from random_seed
    ds = np.array([p["d"] for p in first])
    assert (ds >= 1e-3).all() and (ds <= 1.0).all()
    # log-uniform: about a third of the draws in each decade (binomial sd ~ 6.7 of 200)
    per_decade = np.histogram(np.log10(ds), bins=[-3, -2, -1, 0])[0]
    assert (np.abs(per_decade - 200 / 3) < 30).all()


@pytest.mark.parametrize("label, values, message", [
    ("b_e", [1.0], "no parameter 'b_e'"),
    ("tua", [1.0], "did you mean 'tau'"),
    ("noise.X", [1.0], "no state 'X'"),
    ("coupling.zz", [1.0], "no coupling function has a parameter 'zz'"),
    ("volume.x", [1.0], "unknown kind 'volume'"),
    ("a", {"start": 0, "stop": 1}, "needs 'num'"),
    ("a", {"start": -1, "stop": 1, "num": 3, "log": True}, "positive start and stop"),
    ("a", [], "empty"),
    ("a", ["x"], "must be a number"),
])
def test_bad_quantities(model, label, values, message):
    with pytest.raises(SweepError, match=message):
        parse_quantity(label, values, model, "grid")


# -- measures ---------------------------------------------------------------------------------
def test_measures_on_known_signals():
    measures = parse_measures({"transient": 100.0, "mean": ["E"], "std": ["E"],
                               "frequency": ["E"], "expressions": {"m2": "mean(E * E) + 1"}},
                              ("E", "I"))
    times = np.arange(1, 1001) - 0.5  # 1 ms samples; 100 dropped, 900 kept
    kept = times[times >= 100.0]
    wave = 2.0 * np.sin(2 * np.pi * 10e-3 * (kept - kept[0]))  # 10 Hz: 9 whole cycles
    data = np.zeros((1000, 2, 2))
    data[times >= 100.0, 0, 0] = wave
    data[times >= 100.0, 0, 1] = 3.0  # constant region: std 0
    data[times < 100.0, 0, :] = 1e9  # the transient must not leak into any measure
    out = compute_measures(measures, times, data, ("E", "I"))
    assert out["mean_E"] == pytest.approx(1.5, abs=1e-12)  # (0 + 3) / 2
    assert out["std_E"] == pytest.approx(np.sqrt(2.0) / 2, rel=1e-12)  # (A/sqrt2 + 0) / 2
    # 900 samples at 1 kHz: bins every 10/9 Hz, 10 Hz is bin 9 (rfftfreq rounding: 1e-12)
    assert out["peak_frequency_E"] == pytest.approx(10.0, rel=1e-12)
    # One-sided PSD of the region mean (amplitude 1) at an exact bin: A^2 N / (2 fs).
    assert out["peak_power_E"] == pytest.approx(1.0 * 900 / 2000, rel=1e-9)
    assert out["m2"] == pytest.approx((2.0 + 9.0) / 2 + 1, rel=1e-12)  # mean of A^2/2 and 9


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "'__import__\\('os'\\).system' is not a function"),
    ("__import__('os')", "'__import__' is not a function"),
    ("E.real", "not allowed"),
    ("(lambda: 1)()", "'lambda: 1' is not a function"),
    ("mean(E, axis=0)", "exactly one argument"),
    ("'text'", "only numbers"),
    ("mean(Q)", "unknown name 'Q'"),
    ("mean(E", "invalid expression"),
    ("[E for E in I]", "not allowed"),
])
def test_expressions_are_never_evaluated_as_python(text, message):
    with pytest.raises(SweepError, match=message):
        parse_measures({"expressions": {"x": text}}, ("E", "I"))


def test_array_valued_expression_is_refused_before_the_sweep():
    with pytest.raises(SweepError, match=r"expressions.x: the expression gives an array.*"
                                         r"wrap it in a reduction"):
        parse_measures({"expressions": {"x": "region_mean(E) * 2"}}, ("E",))


# -- sweeps equal single runs ---------------------------------------------------------------
def _single_run_measures(model, network, kwargs, duration):
    """The same numbers computed directly from one mfgen.simulate run (not the sweep code)."""
    result = mfgen.simulate(model, network, duration=duration,
                            monitors=[mfgen.TemporalAverage(1.0, ["V", "W"])], **kwargs)
    trace = result["temporal_average"]
    keep = trace.times >= MEASURES["transient"]
    v, w = trace["V"][keep], trace["W"][keep]
    return {"mean_V": np.mean(v), "std_V": np.mean(np.std(v, axis=0)),
            "spread": np.max(v) - np.min(w)}


def test_every_point_equals_its_single_run(model, network):
    sweep = {"a": [-1.5, 0.2, 0.5], "coupling.a": [0.0, 0.01, 0.1], "noise.V": [0.0, 1e-3, 0.02],
             "initial.W": [-1.0, 0.0, 0.5], "seed": [1, 2, 3]}
    ds = mfgen.sweep(model, network, base=BASE, duration=80.0, sweep=sweep, design="zip",
                     measures=MEASURES, workers=2, chunk_points=1, progress=False)
    assert list(ds.status.values) == ["done"] * 3
    for i in range(3):
        default = mfgen.Simulation(model, network, **{**BASE, "seed": sweep["seed"][i]})
        initial = default.state.copy()  # the random initial state of that seed
        initial[model.state_variables.index("W")] = sweep["initial.W"][i]
        kwargs = {**BASE, "parameters": {"a": sweep["a"][i]},
                  "coupling_parameters": {"a": sweep["coupling.a"][i]},
                  "noise": {"V": sweep["noise.V"][i], "W": 1e-3}, "seed": sweep["seed"][i],
                  "initial_state": initial}
        expected = _single_run_measures(model, network, kwargs, 80.0)
        for name, value in expected.items():  # same run, same arithmetic: bit for bit
            assert ds[name].values[i] == value, name


def test_random_design_sweep_has_a_point_dimension(model, network):
    options = dict(base={"integrator": "heun"}, duration=10.0, design="random", n_points=5,
                   random_seed=3, sweep={"a": {"start": -1.0, "stop": 1.0},
                                         "d": {"start": 0.01, "stop": 1.0, "log": True}},
                   measures={"mean": ["V"]}, progress=False)
    ds = mfgen.sweep(model, network, **options)
    assert ds.mean_V.dims == ("point",) and ds.sizes["point"] == 5
    assert ((ds.a >= -1.0) & (ds.a <= 1.0)).all() and ((ds.d >= 0.01) & (ds.d <= 1.0)).all()
    direct = mfgen.simulate(model, network, duration=10.0, integrator="heun",
                            parameters={"a": float(ds.a[2]), "d": float(ds.d[2])},
                            monitors=[mfgen.TemporalAverage(1.0, ["V"])])
    assert ds.mean_V.values[2] == direct["temporal_average"]["V"].mean()
    np.testing.assert_array_equal(mfgen.sweep(model, network, **options).a.values, ds.a.values)


def test_blow_up_is_a_failed_point_and_the_sweep_goes_on(model, network):
    ds = mfgen.sweep(model, network, base={"integrator": "heun"}, duration=30.0,
                     sweep={"coupling.a": [0.01, 1e6, 0.02]}, design="zip",
                     measures={"mean": ["V"]}, workers=1, progress=False)
    assert list(ds.status.values) == ["done", "failed", "done"]
    assert "non-finite value in 'V'" in str(ds.reason.values[1])
    assert np.isnan(ds.mean_V.values[1]) and np.isfinite(ds.mean_V.values[[0, 2]]).all()
    assert ds.attrs["n_failed"] == 1


def test_a_points_invalid_value_is_a_failed_point(model, network):
    bar = io.StringIO()
    ds = mfgen.sweep(model, network, base={"integrator": "heun_stochastic",
                                           "noise": {"W": 1e-3}}, duration=10.0,
                     sweep={"noise.V": [1e-3, -1.0]}, design="zip", measures={"mean": ["V"]},
                     progress=True, progress_stream=bar, chunk_points=1, workers=1)
    assert list(ds.status.values) == ["done", "failed"]
    assert "must be finite and non-negative" in str(ds.reason.values[1])
    last = bar.getvalue().rstrip("\n").split("\r")[-1]  # the progress bar's final state
    assert re.fullmatch(r"sweep \[#{30}\] 2/2 points \(1 failed\)  [0-9.]+ points/s  ETA 0 s\s*",
                        last), last


def test_bad_base_fails_once_before_any_point(model, network):
    with pytest.raises(SweepError, match="no parameter 'nope'"):
        mfgen.sweep(model, network, base={"parameters": {"nope": 1.0}}, duration=10.0,
                    sweep={"a": [1.0]}, measures={"mean": ["V"]}, progress=False)
    with pytest.raises(SweepError, match="monitor is set by measures"):
        mfgen.sweep(model, network, base={"monitors": []}, duration=10.0,
                    sweep={"a": [1.0]}, measures={"mean": ["V"]}, progress=False)


# -- store, resume --------------------------------------------------------------------------
GRID = {"a": [-1.0, 0.0, 0.5], "coupling.a": {"start": 0.0, "stop": 0.1, "num": 4}}


def test_interrupted_sweep_resumes_without_recomputing(model, network, tmp_path):
    store = tmp_path / "sweep.h5"
    options = dict(base=BASE, duration=40.0, sweep=GRID, measures=MEASURES, workers=1,
                   write_interval=0.0)
    reference = mfgen.sweep(model, network, progress=False, **options)

    def interrupt_after_three(saved, total):
        if saved >= 3 and not fired:
            fired.append(saved)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this thread

    fired: list[int] = []

    with pytest.raises(KeyboardInterrupt):
        mfgen.sweep(model, network, store=store, progress=interrupt_after_three, **options)
    first = read_store(store)
    saved = np.flatnonzero(first["status"] != 0)
    assert 3 <= len(saved) < 12 and (first["session"][saved] == 1).all()

    resumed = mfgen.sweep(model, network, store=store, progress=False, **options)
    # nothing saved is computed again
    assert resumed.attrs["points_computed"] == 12 - len(saved)
    assert resumed.attrs["points_already_saved"] == len(saved)
    final = read_store(store)
    assert (final["status"] == 1).all()
    assert (final["session"][saved] == 1).all()
    assert (np.delete(final["session"], saved) == 2).all()
    for name in ("mean_V", "std_V", "peak_frequency_V", "peak_power_V", "spread"):
        np.testing.assert_array_equal(resumed[name].values, reference[name].values)
    # A third run finds everything saved and computes nothing.
    assert mfgen.sweep(model, network, store=store, progress=False,
                       **options).attrs["points_computed"] == 0


KILLED_CLIENT = """
import json, sys
import mfgen
options = json.loads(sys.argv[2])
mfgen.sweep("generic_2d_oscillator", mfgen.Connectivity.synthetic(5, seed=3), store=sys.argv[1],
            progress=lambda saved, total: print(saved, flush=True), **options)
"""


def test_a_killed_client_leaves_a_file_that_resumes(model, network, tmp_path):
    store = tmp_path / "killed.h5"
    options = dict(base=BASE, duration=400.0, measures=MEASURES, workers=1, write_interval=0.0,
                   sweep={"a": list(np.linspace(-1.5, 1.0, 10)), "coupling.a": [0.0, 0.05, 0.1]})
    child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(store),
                              json.dumps(options)], stdout=subprocess.PIPE, text=True)
    try:
        for line in child.stdout:
            if int(line) >= 3:
                time.sleep(0.003 * int(time.time_ns() % 7))  # somewhere in the next point
                break
        child.kill()  # SIGKILL: no cleanup, possibly in the middle of a write
        assert child.wait(timeout=30) == -signal.SIGKILL, "the sweep finished before the kill"
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    saved = np.flatnonzero(read_store(store)["status"] != 0)
    assert 3 <= len(saved) < 30
    resumed = mfgen.sweep(model, network, store=store, progress=False, **options)
    assert resumed.attrs["points_computed"] == 30 - len(saved)
    reference = mfgen.sweep(model, network, progress=False, **options)
    for name in ("mean_V", "std_V", "peak_frequency_V", "peak_power_V", "spread"):
        np.testing.assert_array_equal(resumed[name].values, reference[name].values)


def test_store_refuses_a_different_sweep(model, network, tmp_path):
    store = tmp_path / "sweep.h5"
    mfgen.sweep(model, network, base=BASE, duration=10.0, sweep={"a": [0.0]},
                measures={"mean": ["V"]}, store=store, progress=False)
    with pytest.raises(SweepError, match=r"different sweep \(differs in: duration, n_trace_s"):
        mfgen.sweep(model, network, base=BASE, duration=20.0, sweep={"a": [0.0]},
                    measures={"mean": ["V"]}, store=store, progress=False)


def test_traces_are_kept_on_request(model, network, tmp_path):
    ds = mfgen.sweep(model, network, base={"integrator": "heun"}, duration=10.0,
                     sweep={"a": [0.0, 0.5]}, measures={"mean": ["V"], "traces": True,
                                                        "period": 2.0},
                     store=tmp_path / "t.h5", progress=False)
    direct = mfgen.simulate(model, network, duration=10.0, integrator="heun", seed=0,
                            parameters={"a": 0.5},
                            monitors=[mfgen.TemporalAverage(2.0, ["V"])])
    assert ds.trace_V.dims == ("a", "time", "region") and ds.trace_V.shape == (2, 5, 5)
    np.testing.assert_array_equal(ds.trace_V.sel(a=0.5).values,
                                  direct["temporal_average"]["V"])
    np.testing.assert_array_equal(ds.time.values, direct["temporal_average"].times)


def test_run_points_is_the_backend_seam(model, network):
    ds = mfgen.sweep(model, network, base=BASE, duration=20.0, sweep={"a": [0.1, 0.3]},
                     measures={"mean": ["V"]}, progress=False)
    from mfgen.runtime.sweep import SweepBase

    base = SweepBase(network, BASE, 20.0, parse_measures({"mean": ["V"]},
                                                         model.state_variables), model)
    results = run_points([(1, {"a": 0.3}), (0, {"a": 0.1})], base)
    assert [r.index for r in results] == [1, 0]
    assert results[0].measures["mean_V"] == ds.mean_V.values[1]
    assert results[1].measures["mean_V"] == ds.mean_V.values[0]


def test_spec_bundle_carries_a_users_spec_and_its_parents(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "parent.yaml").write_text(
        "parameters:\n  k: 0.5\n")
    (tmp_path / "child.yaml").write_text(
        "name: sweep_child\nextends: parent\nstate_variables:\n  x: {range: [-1, 1]}\n"
        "coupling:\n  c_0: x\nderivatives:\n  x: -k * x + c_0\n")
    bundle = spec_bundle(tmp_path / "child.yaml")
    assert bundle.main == "child.yaml"
    assert dict(bundle.files) == {"child.yaml": (tmp_path / "child.yaml").read_text(),
                                  "lib/parent.yaml": "parameters:\n  k: 0.5\n"}
    assert spec_bundle(MODEL).main == f"bundled:{MODEL}.yaml"

    # What a worker does with it: the files land in its cache, the model builds from them.
    import dataclasses

    from mfgen.runtime.sweep_bundle import load_bundle

    (tmp_path / "child.yaml").unlink()  # the worker never reads the client's files
    (tmp_path / "lib" / "parent.yaml").unlink()
    model = load_bundle(bundle)
    assert model.name == "sweep_child" and model.parameters["k"] == 0.5
    assert model.metadata["ir_digest"] == bundle.ir_digest
    hostile = dataclasses.replace(bundle, files=(("../../outside.yaml", "x: 1"),))
    with pytest.raises(SweepError, match="outside its folder"):
        load_bundle(hostile)
    changed = dataclasses.replace(bundle, bundled=(("lib/tvb_adex.yaml", "0" * 64),))
    with pytest.raises(SweepError, match="different bundled spec 'lib/tvb_adex.yaml'"):
        load_bundle(changed)


# -- plot and command line --------------------------------------------------------------------
def test_heat_map_is_drawn(model, network, tmp_path):
    from matplotlib.image import imread

    from mfgen.runtime.sweep_plot import is_sweep_file, plot_sweep

    ds = mfgen.sweep(model, network, base={"integrator": "heun"}, duration=30.0,
                     sweep={"a": [-1.0, 0.0, 1.0], "d": {"start": 0.01, "stop": 0.1, "num": 3,
                                                         "log": True}},
                     measures={"transient": 10.0, "mean": ["V"], "std": ["V"]},
                     store=tmp_path / "s.h5", progress=False)
    assert is_sweep_file(tmp_path / "s.h5") and not is_sweep_file(tmp_path / "nothing.h5")
    out = plot_sweep(tmp_path / "s.h5", tmp_path / "map.png")
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 400  # two panels side by side
    assert image[..., :3].std() > 0.05  # not a blank canvas
    with pytest.raises(SweepError, match="'b' is not a swept quantity"):
        plot_sweep(ds, tmp_path / "x.png", x="b")


CONFIG = """\
run:
  spec: generic_2d_oscillator
  connectivity: {source: synthetic, regions: 4, seed: 2}
  coupling: {function: linear, parameters: {a: 0.02}}
  integrator: heun
  dt: 0.1
  duration: 30
  seed: 3
sweep:
  design: grid
  quantities:
    a: [-0.5, 0.5]
    coupling.a: {start: 0.0, stop: 0.04, num: 2}
  measures: {transient: 10, mean: [V]}
  store: out/sweep.h5
"""


def _main(capsys, *argv):
    """The `mfgen` entry point in this process: (status, stdout, stderr)."""
    from mfgen.cli import main

    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's --help and usage errors
        status = exit_.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_sweep_command_runs_a_config(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(CONFIG)
    status, out, err = _main(capsys, "sweep", config, "--quiet", "--plot", tmp_path / "map.png")
    assert status == 0, err
    assert "4 points done, 0 failed" in out
    ds = mfgen.open_sweep(tmp_path / "out" / "sweep.h5")
    assert ds.mean_V.dims == ("a", "coupling.a") and (ds.status == "done").all()
    expected = mfgen.simulate(mfgen.load(MODEL), mfgen.Connectivity.synthetic(4, seed=2),
                              duration=30.0, integrator="heun", seed=3,
                              parameters={"a": 0.5}, coupling_parameters={"a": 0.04},
                              monitors=[mfgen.TemporalAverage(1.0, ["V"])])["temporal_average"]
    assert ds.mean_V.sel(a=0.5).values[1] == expected["V"][expected.times >= 10].mean()
    assert (tmp_path / "map.png").stat().st_size > 1000
    # `mfgen plot` recognises a sweep file and draws its heat-maps.
    status, _, err = _main(capsys, "plot", tmp_path / "out" / "sweep.h5", "--out",
                           tmp_path / "again.png")
    assert status == 0, err
    assert (tmp_path / "again.png").stat().st_size > 1000
    # Again: everything is saved, nothing is computed.
    status, out, _ = _main(capsys, "sweep", config, "--quiet")
    assert status == 0 and "(0 computed now, 4 already saved)" in out
    # an existing figure is kept unless --force
    status, _, err = _main(capsys, "sweep", config, "--quiet", "--plot", tmp_path / "map.png")
    assert status == 2 and "exists; pass --force" in err
    status, out, _ = _main(capsys, "sweep", "--help")
    assert status == 0 and "--workers" in out and "(default: " in out


def test_sweep_command_errors_are_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(CONFIG.replace("    a: [-0.5, 0.5]", "    b_e: [1.0]"))
    status, _, err = _main(capsys, "sweep", config, "--quiet")
    assert status == 2 and err.count("\n") == 1, err
    assert re.match(r"mfgen: error: .*bad\.yaml:12:5: swept quantity 'b_e'", err)
    # the run: section is the `mfgen run` format, with its errors and locations
    config.write_text(CONFIG.replace("  dt: 0.1", "  dt: -0.1"))
    status, _, err = _main(capsys, "sweep", config, "--quiet")
    assert status == 2 and "bad.yaml:6:7: 'dt' must be positive" in err, err


def test_sweep_config_errors_name_the_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(CONFIG.replace("  seed: 3", "  monitors: []"))
    with pytest.raises(SweepConfigError, match=r"bad\.yaml:8:3: unknown key run.monitors"):
        load_sweep_config(config)
