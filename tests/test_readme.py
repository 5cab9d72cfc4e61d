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
