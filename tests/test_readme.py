"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import mfgen
from mfgen.runtime.checking import check_model

README = Path(__file__).resolve().parents[1] / "README.md"


def test_spec_language_example_builds_and_matches_its_reference(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "name: my_oscillator" in b)
    (tmp_path / "other_spec.yaml").write_text("description: an empty library\n")
    path = tmp_path / "my_oscillator.yaml"
    path.write_text(example)
    model = mfgen.load(path)
    assert model.state_variables == ("v", "w")
    assert model.parameter_info["P"].size == 2
    report = check_model(model, points=500)
    assert report.passed, report.max_error
    # v' at v = 1, w = 0, no coupling, defaults: (1*1 - 0.33*1 - 0 + 0) / 12.5
    dv = model.dfun(np.array([[1.0], [0.0]]), np.zeros((1, 1)))[0, 0]
    assert abs(dv - (1.0 - 0.33) / 12.5) < 1e-15


def test_quickstart_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    namespace: dict = {}
    for code in blocks:  # in order, sharing names, as a reader would paste them
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["dx"].shape == (2, 76)
    assert namespace["rates"].shape == (2000, 68)
    assert namespace["times"][0] == 0.5


def test_the_first_command_is_the_demo_and_its_config_runs(tmp_path):
    """`make demo` runs examples/tvb_adex.yaml; shortened here, the same config end to end."""
    from mfgen.runtime.results import run_to_file
    from mfgen.runtime.run_config import load_run_config

    text = README.read_text()
    setup = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    assert setup.splitlines()[0].startswith("make demo")
    makefile = (README.parent / "Makefile").read_text()
    assert "mfgen run examples/tvb_adex.yaml" in makefile
    config = load_run_config(README.parent / "examples" / "tvb_adex.yaml", ["duration=300"])
    assert config.connectivity == "tvb-default" and config.integrator == "heun_stochastic"
    results = run_to_file(config, tmp_path / "demo.h5")
    assert results.status == "complete" and len(results.region_labels) == 76
    rates = results["temporal_average"]["E"]
    assert rates.shape == (300, 76) and np.isfinite(rates).all()
    assert results.attrs["connectivity_source"].endswith("connectivity_76.zip")
