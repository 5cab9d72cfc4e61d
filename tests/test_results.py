"""HDF5 results: layout readable by plain h5py, provenance, incremental writing, a run killed
with SIGKILL and resumed bit for bit, load_result, repr, xarray and plots."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import run_interrupted_then_resumed

import mfgen
from mfgen.runtime.results import ResultsError, load_result, run_to_file
from mfgen.runtime.run_config import load_run_config

SPEC = "generic_2d_oscillator"
# Stochastic, delayed, two monitors whose periods do not divide the chunk (250.3 ms), so a
# resume must restore the noise position, the delay ring and a half-filled average.
CONFIG = """\
spec: SPEC
connectivity: {source: synthetic, regions: 40, speed: 2.0}
coupling: {function: linear, parameters: {a: 0.02}}
integrator: heun_stochastic
dt: 0.1
duration: DURATION
noise: {V: 0.001, W: 0.0005}
parameters: {d: 0.05}
seed: 11
monitors:
  - {kind: temporal_average, period: 1.0}
  - {kind: subsample, period: 0.7, variables: [V]}
output: {chunk: 250.3}
""".replace("SPEC", SPEC)


def write_config(folder: Path, duration: float = 100.0) -> Path:
    path = folder / "run.yaml"
    path.write_text(CONFIG.replace("DURATION", str(duration)))
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    config = load_run_config(write_config(folder))
    results = run_to_file(config, folder / "run.h5")
    return config, folder / "run.h5", results


def test_the_file_holds_what_the_simulation_computed(small_run):
    config, path, _ = small_run
    model, connectivity, kwargs, duration = config.build()
    expected = mfgen.simulate(model, connectivity, duration=duration, **kwargs)
    with h5py.File(path, "r") as handle:  # plain h5py, no mfgen
        for label in ("temporal_average", "subsample"):
            group = handle["monitors"][label]
            assert np.array_equal(group["data"][()], expected[label].data)
            assert np.array_equal(group["time"][()], expected[label].times)
            assert [v.decode() for v in group["variables"][()]] == \
                list(expected[label].variables)
            assert group.attrs["dims"] == "time,variable,region"
        assert handle["monitors/temporal_average/data"].shape == (100, 2, 40)
        assert handle["monitors/subsample/data"].shape == (142, 1, 40)
        labels = [x.decode() for x in handle["region_labels"][()]]
        assert labels == connectivity.region_labels
        assert np.array_equal(handle["connectivity/weights"][()], connectivity.weights)


def test_the_file_names_everything_needed_to_reproduce_it(small_run):
    config, path, _ = small_run
    with h5py.File(path, "r") as handle:
        attrs = dict(handle.attrs)
    assert attrs["status"] == "complete" and attrs["steps_done"] == attrs["steps_total"] == 1000
    assert attrs["model"] == SPEC and attrs["integrator"] == "heun_stochastic"
    assert attrs["dt"] == 0.1 and attrs["seed"] == 11
    sources = json.loads(attrs["spec_sources"])
    spec_path = mfgen.build(SPEC).spec_path
    assert sources[str(spec_path)] == spec_path.read_text()
    assert len(attrs["spec_sha256"]) == 64
    assert json.loads(attrs["parameters"])["d"] == 0.05
    assert attrs["connectivity_source"] == "synthetic(seed=42)"
    assert len(attrs["connectivity_sha256"]) == 64
    for key in ("mfgen_version", "numpy_version", "h5py_version", "hdf5_version",
                "compiler", "compiler_version", "compiler_flags"):
        assert attrs[key], key
    assert "-O3" in attrs["compiler_flags"]
    # The stored config is a config: run it again and get the same numbers.
    import yaml

    stored = yaml.safe_load(attrs["config_yaml"])
    assert stored["noise"] == {"V": 0.001, "W": 0.0005} and stored["seed"] == 11


def test_load_result_repr_xarray_and_plot(small_run):
    _, path, results = small_run
    text = repr(results)
    assert len(text) < 300 and "\n" not in text
    assert "100 of 100 ms (complete)" in text and "temporal_average: 100 x (V, W) x 40" in text
    dataset = load_result(path).to_xarray()
    average = dataset["temporal_average"]
    assert average.dims == ("time_temporal_average", "variable", "region")
    assert list(average["variable"].values) == ["V", "W"]
    assert average.sel(variable="V").shape == (100, 40)
    assert dataset.attrs["model"] == SPEC
    figure = results.plot(variables=["V", "W"])
    labels = sorted(axes.get_label() for axes in figure.axes)
    assert {"time series", "raster", "power spectrum"} <= set(labels)


def test_simulation_results_have_a_short_repr_and_xarray():
    model = mfgen.load(SPEC)
    result = mfgen.simulate(model, mfgen.Connectivity.synthetic(8), duration=20.0,
                            monitors=[mfgen.Raw(["V"])])
    text = repr(result)
    assert "\n" not in text and len(text) < 200 and "200 steps = 20 ms" in text
    assert "raw: 200 x (V) x 8" in text
    assert repr(result["raw"]) == "<MonitorResult: 200 samples x (V) x 8 nodes>"
    assert result.to_xarray()["raw"].shape == (200, 1, 8)


def test_mfgen_plot_writes_a_png_of_the_expected_size(small_run, tmp_path, capsys):
    from mfgen.cli import main

    _, path, _ = small_run
    out = tmp_path / "figure.png"
    assert main(["plot", str(path), "--out", str(out), "--variables", "V,W"]) == 0, \
        capsys.readouterr().err
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1200, 800)  # FIGURE_SIZE (12 x 8 in) at 100 dpi
    assert out.stat().st_size > 30_000  # three panels of data, not an empty canvas


def test_a_run_killed_with_sigkill_resumes_bit_for_bit(tmp_path):
    config_path = write_config(tmp_path, duration=2000.0)
    complete = run_to_file(load_run_config(config_path), tmp_path / "complete.h5")
    killed = tmp_path / "killed.h5"
    command = [sys.executable, "-m", "mfgen.cli", "run", str(config_path), "--out", str(killed)]
    process = subprocess.Popen([*command, "--progress", "lines"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    written = 0
    for line in process.stderr:  # one line per chunk, after it is flushed to the file
        written += "written" in line
        if written == 4:  # the start line and three chunks
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    partial = load_result(killed)
    assert partial.status == "partial"
    chunks = round(partial.duration / 250.3)
    assert 3 <= chunks < 8 and partial.duration == pytest.approx(chunks * 250.3)
    samples = partial["temporal_average"].data.shape[0]
    assert samples == int(partial.duration)  # every sample up to the last chunk
    assert np.array_equal(partial["temporal_average"].data,
                          complete["temporal_average"].data[:samples])
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = load_result(killed)
    assert final.status == "complete"
    for label in ("temporal_average", "subsample"):
        assert np.array_equal(final[label].data, complete[label].data), label
        assert np.array_equal(final[label].times, complete[label].times), label
    assert np.array_equal(final.final_state, complete.final_state)


def test_ctrl_c_marks_the_file_interrupted_and_it_resumes(tmp_path):
    config = load_run_config(write_config(tmp_path, duration=1000.0))
    complete, stopped, resumed = run_interrupted_then_resumed(config, tmp_path)
    assert stopped.status == "interrupted" and stopped.duration == pytest.approx(500.6)
    assert stopped["temporal_average"].data.shape[0] == 500
    assert np.array_equal(resumed["subsample"].data, complete["subsample"].data)


def test_resume_refuses_another_run_and_a_complete_file(small_run, tmp_path):
    _, path, _ = small_run
    other = load_run_config(write_config(tmp_path), ["seed=12"])
    with pytest.raises(ResultsError, match="already complete"):
        run_to_file(other, path, resume=True)
    partial = tmp_path / "partial.h5"
    config = load_run_config(write_config(tmp_path, duration=600.0))
    with pytest.raises(KeyboardInterrupt):
        run_to_file(config, partial, progress=lambda done, total: (
            (_ for _ in ()).throw(KeyboardInterrupt) if done > 0 else None))
    with pytest.raises(ResultsError, match="different run .config yaml differs"):
        run_to_file(other, partial, resume=True)


def test_a_file_that_is_not_results_is_refused(tmp_path):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(ResultsError, match="not an mfgen results file"):
        load_result(plain)


def test_a_real_sigint_stops_mfgen_run_cleanly_and_it_resumes(tmp_path):
    config_path = write_config(tmp_path, duration=2000.0)
    complete = run_to_file(load_run_config(config_path), tmp_path / "complete.h5")
    stopped = tmp_path / "stopped.h5"
    command = [sys.executable, "-m", "mfgen.cli", "run", str(config_path), "--out", str(stopped)]
    process = subprocess.Popen([*command, "--progress", "lines"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    written = 0
    for line in process.stderr:
        written += "written" in line
        if written == 3:
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == 130, rest
    assert "Traceback" not in rest and "continue with --resume" in rest
    partial = load_result(stopped)
    assert partial.status == "interrupted" and partial.duration < 2000.0
    assert partial["temporal_average"].data.shape[0] == int(partial.duration)  # none lost
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = load_result(stopped)
    for label in ("temporal_average", "subsample"):
        assert np.array_equal(final[label].data, complete[label].data), label


def test_a_run_that_blows_up_keeps_its_samples_marked_failed(tmp_path):
    path = tmp_path / "blow.yaml"
    path.write_text(f"spec: {SPEC}\nconnectivity: {{source: none, regions: 3}}\nduration: 50\n"
                    "parameters: {d: 1.0e+200, a: 1.0e+200}\nmonitors: [{kind: raw}]\n")
    with pytest.raises(ResultsError, match=r"non-finite value in 'V' at node 0 in step 1 "):
        run_to_file(load_run_config(path), tmp_path / "blow.h5")
    failed = load_result(tmp_path / "blow.h5")
    assert failed.status == "failed" and "non-finite" in failed.attrs["message"]


def test_a_half_written_checkpoint_is_never_resumed_from(tmp_path):
    """A kill while a checkpoint is written leaves the other, whole copy current."""
    config = load_run_config(write_config(tmp_path, duration=1000.0))

    def tear_the_other_checkpoint(path) -> None:
        with h5py.File(path, "r+") as handle:
            current = handle.attrs["checkpoint"]
            other = handle["checkpoint_b" if current == "checkpoint_a" else "checkpoint_a"]
            other["state"][...] = np.nan  # as if killed half-way through writing the next one
            other.attrs["step"] = 7

    complete, _, resumed = run_interrupted_then_resumed(config, tmp_path,
                                                        tear_the_other_checkpoint)
    assert np.array_equal(resumed["temporal_average"].data, complete["temporal_average"].data)
