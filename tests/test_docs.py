"""docs/authoring.md runs as written: its YAML files are written, its commands run with the
exact error lines it quotes, its Python blocks run in order."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mfgen.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def blocks(name: str) -> list[tuple[str, str, str]]:
    return [(kind, info.strip(), body) for kind, info, body in
            BLOCK.findall((DOCS / name).read_text())]


def run_console(body: str, folder: Path, capsys) -> None:
    lines = body.strip().splitlines()
    commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    for number, index in enumerate(commands):
        end = commands[number + 1] if number + 1 < len(commands) else len(lines)
        expected = [line for line in lines[index + 1:end] if line.startswith("mfgen: error:")]
        arguments = shlex.split(lines[index][2:])
        assert arguments[0] == "mfgen"
        try:
            code = main(arguments[1:])
        except SystemExit as exc:  # argparse
            code = exc.code
        output = capsys.readouterr()
        printed = output.err.replace(f"{folder}/", "")
        if expected:
            assert code == 2, (lines[index], output.out, output.err)
            assert [line for line in printed.splitlines() if line.startswith("mfgen:")] == \
                expected
        else:
            assert code == 0, (lines[index], output.out, output.err)


def test_the_authoring_guide_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = {"yaml": 0, "console": 0, "python": 0}
    for kind, info, body in blocks("authoring.md"):
        if kind == "yaml":
            match = re.fullmatch(r"file=(\S+)", info)
            assert match, f"a YAML block without file=NAME: {body[:60]}"
            (tmp_path / match.group(1)).write_text(body)
        elif kind == "console":
            run_console(body, tmp_path, capsys)
        elif kind == "python":
            exec(compile(body, str(DOCS / "authoring.md"), "exec"), namespace)  # noqa: S102
        else:
            pytest.fail(f"unexpected block kind {kind}")
        ran[kind] += 1
    assert ran["console"] >= 8 and ran["python"] >= 3 and ran["yaml"] >= 8
    assert (tmp_path / "longer.png").stat().st_size > 10_000


def test_the_spec_language_reference_names_every_builtin_and_key():
    from mfgen.codegen import spec
    from mfgen.codegen.expressions import BUILTIN_FUNCTIONS, CONSTANTS, SPECIAL_FORMS
    from mfgen.runtime import run_config

    text = (DOCS / "spec-language.md").read_text()
    names = [*BUILTIN_FUNCTIONS, *CONSTANTS, *SPECIAL_FORMS, "local_coupling",
             *spec.TOP_LEVEL_KEYS, *spec.PARAMETER_KEYS, *spec.STATE_KEYS, *spec.FUNCTION_KEYS,
             *spec.DERIVATIVE_METHOD_KEYS, *run_config.TOP_KEYS, *run_config.MONITOR_KEYS,
             *run_config.CONNECTIVITY_KEYS, *run_config.COUPLING_KEYS, *run_config.OUTPUT_KEYS]
    missing = sorted({name for name in names if f"`{name}`" not in text})
    assert not missing, f"not documented in spec-language.md: {missing}"


def test_the_reference_yaml_examples_are_valid(tmp_path):
    """The full example of spec-language.md builds."""
    import mfgen

    example = next(body for kind, info, body in blocks("spec-language.md")
                   if kind == "yaml" and "name: reference_example" in body)
    path = tmp_path / "reference_example.yaml"
    path.write_text(example)
    model = mfgen.load(path, backend="numpy")
    assert model.state_variables == ("v", "w")
