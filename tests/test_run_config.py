"""Run config files: validation with file:line:column, overrides, the plain-data round trip."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import mfgen
from mfgen.runtime.run_config import ConfigError, load_run_config, parse_run_config

SPEC = "generic_2d_oscillator"
GOOD = f"""\
spec: {SPEC}
connectivity: {{source: synthetic, regions: 5, speed: 3.0}}
coupling: {{function: linear, parameters: {{a: 0.02}}, precision: float32}}
local_coupling: 0.1
integrator: heun_stochastic
dt: 0.05
duration: 10.0
noise: {{V: 0.001}}
parameters:
  d: 0.05
  a: [-2.0, -1.5, -1.0, -0.5, 0.0]
initial_state: {{V: 0.5}}
seed: 7
monitors:
  - {{kind: raw, variables: [V]}}
  - {{kind: tavg, period: 0.5, name: slow}}
output: {{path: out/run.h5, chunk: 2.5}}
"""


@pytest.fixture
def config_file(tmp_path):
    def write(text: str, name: str = "run.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def test_a_good_config_builds_what_simulation_takes(config_file):
    path = config_file(GOOD)
    config = load_run_config(path)
    model, connectivity, kwargs, duration = config.build()
    assert model.name == SPEC and connectivity.n_regions == 5 and connectivity.speed == 3.0
    assert duration == 10.0
    assert kwargs["coupling_parameters"] == {"a": 0.02}
    assert kwargs["coupling_precision"] == "float32" and kwargs["local_coupling"] == 0.1
    assert kwargs["noise"] == {"V": 0.001} and kwargs["seed"] == 7
    assert kwargs["parameters"]["d"] == 0.05
    np.testing.assert_array_equal(kwargs["parameters"]["a"], [-2.0, -1.5, -1.0, -0.5, 0.0])
    assert kwargs["initial_state"].shape == (2, 5)
    assert (kwargs["initial_state"][0] == 0.5).all()
    assert [m.label for m in kwargs["monitors"]] == ["raw", "slow"]
    assert kwargs["monitors"][1].kind == "temporal_average"
    assert config.resolve(config.output) == path.parent / "out" / "run.h5"
    assert config.chunk == 2.5
    result = mfgen.simulate(model, connectivity, duration=duration, **kwargs)
    assert result["raw"].data.shape == (200, 1, 5)


def test_states_not_named_start_as_without_a_config(config_file):
    """Naming one state's initial value leaves the others as mfgen draws them from the seed."""
    config = load_run_config(config_file(GOOD))
    model, connectivity, kwargs, _ = config.build()
    default = mfgen.Simulation(model, connectivity, seed=7).state
    np.testing.assert_array_equal(kwargs["initial_state"][1], default[1])


def test_the_mapping_round_trips(config_file):
    config = load_run_config(config_file(GOOD))
    again = parse_run_config(config.mapping(), "<mapping>")
    assert again.mapping() == config.mapping()


def test_overrides_set_nested_keys_and_report_their_place(config_file):
    path = config_file(GOOD)
    config = load_run_config(path, ["duration=20", "parameters.d=0.07",
                                    "coupling.parameters.a=0.5", "connectivity.regions=3"])
    assert config.duration == 20.0 and config.parameters["d"] == 0.07
    assert config.coupling_parameters == {"a": 0.5} and config.regions == 3
    with pytest.raises(ConfigError, match=r"--set dt=-1: 'dt' must be positive"):
        load_run_config(path, ["dt=-1"])
    shorthand = config_file(f"spec: {SPEC}\nconnectivity: none\n", "short.yaml")
    assert load_run_config(shorthand, ["connectivity.regions=4"]).regions == 4


BAD_CONFIGS = [
    # (config text, location, message)
    ("duration: 10\n", ":1:1", "the config needs 'spec'"),
    (f"spec: {SPEC}\nintegrater: heun\n", ":2:1", "unknown key 'integrater' in the config; "
     "hint: did you mean 'integrator'"),
    (f"spec: {SPEC}\ndt: 0\n", ":2:5", "'dt' must be positive"),
    (f"spec: {SPEC}\ndt: .nan\n", ":2:5", "'dt' must be finite"),
    (f"spec: {SPEC}\ndt: fast\n", ":2:5", "'dt' must be a number, got the text 'fast'"),
    (f"spec: {SPEC}\nduration: 0.15\n", ":2:11", "not a multiple of dt"),
    (f"spec: {SPEC}\nseed: -1\n", ":2:7", "'seed' must be between 0"),
    (f"spec: {SPEC}\nseed: 1.5\n", ":2:7", "'seed' must be a whole number"),
    (f"spec: {SPEC}\nintegrator: heun\nintegrator: rk4\n", ":3:1", "duplicate key"),
    (f"spec: {SPEC}\nintegrator: foo\n", ":2:13", "unknown integrator 'foo'"),
    (f"spec: {SPEC}\nconnectivity: {{regions: 0}}\n", ":2:25", "must be between 1"),
    (f"spec: {SPEC}\nconnectivity: {{source: tvb-default, regions: 5}}\n", ":2:37",
     "regions applies only to synthetic"),
    (f"spec: {SPEC}\ncoupling: {{precision: float16}}\n", ":2:23",
     "'coupling.precision' must be one of float64, float32"),
    (f"spec: {SPEC}\nnoise: {{V: -1}}\n", ":2:12", "'noise.V' must not be negative"),
    (f"spec: {SPEC}\nnoise: [1, 2]\n", ":2:8", "'noise' must be a mapping, got a list"),
    (f"spec: {SPEC}\nparameters: {{d: yes}}\n", ":2:17",
     "'yes' is ambiguous: YAML 1.1 reads it as the boolean True"),
    (f"spec: {SPEC}\nparameters: {{d: [1, x]}}\n", ":2:21", "'parameters.d[1]' must be a num"),
    (f"spec: {SPEC}\nmonitors: {{kind: raw}}\n", ":2:11", "'monitors' must be a list"),
    (f"spec: {SPEC}\nmonitors: [{{kind: fast}}]\n", ":2:19", "unknown monitor kind 'fast'"),
    (f"spec: {SPEC}\nmonitors: [{{kind: tavg}}]\n", ":2:12", "needs a period"),
    (f"spec: {SPEC}\nmonitors: [{{kind: raw, period: 1}}]\n", ":2:24", "takes no period"),
    (f"spec: {SPEC}\nmonitors: [{{kind: tavg, period: 0.15}}]\n", ":2:33",
     "0.15 ms is not a multiple of dt"),
    (f"spec: {SPEC}\nmonitors: [raw, raw]\n", ":2:17", "two monitors are labelled 'raw'"),
    (f"spec: {SPEC}\noutput: {{chunk: 0}}\n", ":2:17", "'output.chunk' must be positive"),
    (f"spec: {SPEC}\noutput: {{path: 1}}\n", ":2:16", "'output.path' must be text"),
    ("spec: [a, b]\n", ":1:7", "'spec' must be text, got a list"),
    ("- a\n- b\n", ":1", "a spec must be a mapping"),
    ("spec: x\n  bad: indent\n", ":2:6", "YAML syntax error"),
]


@pytest.mark.parametrize("text, where, message", BAD_CONFIGS,
                         ids=[m[:40] for _, _, m in BAD_CONFIGS])
def test_config_errors_name_file_line_and_column(config_file, text, where, message):
    path = config_file(text)
    with pytest.raises(mfgen.SpecError) as error:
        load_run_config(path)
    assert str(error.value).startswith(f"{path}{where}"), str(error.value)
    assert message in str(error.value).replace("\n  hint:", "; hint:")


MODEL_ERRORS = [
    ("parameters: {taux: 1}", ":2:14", "unknown parameter 'taux'", "did you mean 'tau'"),
    ("noise: {Q: 1}", ":2:9", "unknown state variable 'Q'", "state variables of"),
    ("coupling: sigmoid_x", ":2:11", "unknown coupling function 'sigmoid_x'", "sigmoidal"),
    ("coupling: {parameters: {zz: 1}}", ":2:25", "unknown parameter of coupling 'linear' 'zz'",
     ""),
    ("monitors: [{kind: raw, variables: [V, Q]}]", ":2:12", "unknown state variable 'Q'", ""),
    ("initial_state: {Q: 1}", ":2:17", "unknown state variable 'Q'", ""),
    ("initial_state: {V: [1, 2]}", ":2:17", "initial_state 'V' has 2 values for 68 regions", ""),
    ("connectivity: missing.zip", ":2:15", "cannot read the connectivity", "TVB connectivity"),
]


@pytest.mark.parametrize("line, where, message, hint", MODEL_ERRORS,
                         ids=[m for _, _, m, _ in MODEL_ERRORS])
def test_names_are_checked_against_the_model_with_their_place(config_file, line, where,
                                                              message, hint):
    path = config_file(f"spec: {SPEC}\n{line}\n")
    config = load_run_config(path)
    with pytest.raises(mfgen.SpecError) as error:
        config.build()
    text = str(error.value)
    assert text.startswith(f"{path}{where}: {message}"), text
    assert hint in text


def test_paths_are_relative_to_the_config_file(tmp_path, config_file):
    spec_dir = tmp_path / "models"
    spec_dir.mkdir()
    (spec_dir / "osc.yaml").write_text(f"extends: {SPEC}\nname: osc\n")
    path = config_file("spec: models/osc.yaml\nduration: 1\n")
    config = load_run_config(path)
    assert config.spec_reference() == str(spec_dir / "osc.yaml")
    from mfgen.codegen.spec import load_spec  # parsing is enough: no need to compile osc

    assert load_spec(config.spec_reference()).name == "osc"
