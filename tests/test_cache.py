"""The compile cache: reuse, invalidation, concurrency, compile-error reporting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import run_in_processes

import mfgen
from mfgen.errors import CompileError
from mfgen.runtime.cache import Cache
from mfgen.runtime.toolchain import compile_module, detect_toolchain

# A self-contained spec (bundled specs may use `extends`, which a copy elsewhere can't follow).
OSCILLATOR = """
name: small_oscillator
parameters:
  d:     {default: 0.02, range: [0.0001, 1.0]}
  tau:   {default: 1.0, range: [1.0, 5.0]}
  beta:  {default: 1.0, range: [-5.0, 5.0]}
state_variables:
  V: {range: [-2.0, 4.0]}
  W: {range: [-6.0, 6.0]}
coupling:
  c_0: V
derivatives:
  V: d * tau * (W - V**3 + 3 * V**2 + c_0)
  W: d * (-2 - 10 * V - beta * W) / tau
"""


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def spec_copy(tmp_path: Path, text: str = OSCILLATOR, name: str = "osc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_second_build_loads_from_the_index_without_compiling(tmp_path, private_cache):
    path = spec_copy(tmp_path)
    first = mfgen.build(path)
    second = mfgen.build(path)
    assert first.compiled and not first.from_index
    assert not second.compiled and second.from_index
    assert second.module_dir == first.module_dir


def test_changed_equation_recompiles(tmp_path, private_cache):
    path = spec_copy(tmp_path)
    first = mfgen.build(path)
    path.write_text(OSCILLATOR.replace("- beta * W) / tau", "- 2 * beta * W) / tau"))
    second = mfgen.build(path)
    assert second.compiled
    assert second.module_dir != first.module_dir


def test_changed_parameter_default_does_not_recompile(tmp_path, private_cache):
    path = spec_copy(tmp_path)
    first = mfgen.build(path)
    path.write_text(OSCILLATOR.replace("d:     {default: 0.02,", "d:     {default: 0.05,"))
    second = mfgen.build(path)
    assert not second.compiled and not second.from_index  # re-generated, same module
    assert second.module_dir == first.module_dir
    assert mfgen.load(path).parameters["d"] == 0.05


def test_changed_extended_file_is_noticed(tmp_path, private_cache):
    base = spec_copy(tmp_path, name="base.yaml")
    child = spec_copy(tmp_path, "extends: base\nname: child\n", name="child.yaml")
    first = mfgen.build(child)
    base.write_text(OSCILLATOR.replace("- beta * W) / tau", "- 3 * beta * W) / tau"))
    second = mfgen.build(child)
    assert second.compiled and second.module_dir != first.module_dir


def _build_in_process(path: str, cache: str, queue) -> None:
    os.environ["MFGEN_CACHE_DIR"] = cache
    result = mfgen.build(path)
    queue.put((result.compiled, str(result.module_dir)))


def test_concurrent_builds_compile_once(tmp_path, private_cache):
    path = spec_copy(tmp_path)
    results = run_in_processes(_build_in_process, (str(path), str(private_cache)), 8)
    assert sum(compiled for compiled, _ in results) == 1
    assert len({module for _, module in results}) == 1
    assert not list((private_cache / "tmp").iterdir()), "a staging directory was left behind"


def test_damaged_module_is_rebuilt_with_a_warning(tmp_path, private_cache):
    path = spec_copy(tmp_path)
    built = mfgen.build(path)
    for so in built.module_dir.glob("*.so"):
        so.write_bytes(b"garbage")
    # A new process would fail to import the garbage; the import machinery caches modules
    # in this process, so check the loader's own validation path in a subprocess.
    import subprocess
    import sys
    code = f"import mfgen; m = mfgen.load({str(path)!r}); print(m.dfun([[1.0], [1.0]], [[0.0]]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr and "rebuilding" in result.stderr


def test_compile_failure_shows_compiler_message_and_source_lines(tmp_path):
    source = "#include <stdint.h>\nvoid f(void) {\n    int x = ;\n}\n"
    with pytest.raises(CompileError) as caught:
        compile_module("_mfgen_broken", source, "void f(void);", tmp_path, detect_toolchain())
    message = str(caught.value)
    assert "the C compiler failed on generated code" in message
    assert "error" in message
    assert ">>" in message and "int x = ;" in message


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Cache().root == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "modules").is_dir()
