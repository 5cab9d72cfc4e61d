"""The compile cache: reuse, invalidation, concurrency, compile-error reporting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from helpers import run_in_processes

import mfgen
from mfgen.errors import CompileError, SpecError
from mfgen.runtime import cache as cache_module
from mfgen.runtime.cache import Cache, UnsafeCacheError
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
    # Fast compiles: what is cached, reused or rebuilt does not depend on the flags.
    monkeypatch.setenv("MFGEN_CFLAGS", "-O0")
    # The toolchain (flags included) is detected once per process: detect it again here, as
    # the subprocesses of these tests do, whatever test ran before in this process.
    detect_toolchain.cache_clear()
    yield tmp_path / "cache"
    detect_toolchain.cache_clear()


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


# -- a planted cache (issue 12) ---------------------------------------------------------------
@pytest.mark.parametrize("planted", ["root", "modules"])
def test_a_cache_directory_others_can_write_is_refused(tmp_path, private_cache, planted):
    Cache(private_cache)
    target = private_cache if planted == "root" else private_cache / "modules"
    target.chmod(0o777)
    with pytest.raises(UnsafeCacheError, match=rf"refusing to use the mfgen cache directory "
                       rf"{target}: it can be written by other users \(mode drwxrwxrwx\)"):
        mfgen.build(spec_copy(tmp_path))


def test_a_cache_inside_a_folder_others_can_change_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # others could rename the cache away and put theirs in its place
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(shared / "cache"))
    with pytest.raises(UnsafeCacheError, match=f"it is inside {shared}, which another user "
                       "can change"):
        mfgen.build(spec_copy(tmp_path))


def test_a_new_cache_is_created_private(tmp_path, monkeypatch):
    root = tmp_path / "a" / "b" / "cache"
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(root))
    old_mask = os.umask(0)  # even with a permissive umask
    try:
        Cache()
    finally:
        os.umask(old_mask)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", root, root / "modules"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


@pytest.mark.skipif(os.getuid() != 0, reason="creating a folder owned by another user needs "
                    "root; the world-writable cases above run everywhere")
def test_a_cache_directory_owned_by_another_user_is_refused(tmp_path, private_cache):
    Cache(private_cache)
    os.chown(private_cache, 65534, 65534)
    with pytest.raises(UnsafeCacheError, match="it is owned by another user \\(uid 65534\\)"):
        mfgen.build(spec_copy(tmp_path))


# -- what a cached model was built from ------------------------------------------------------
def test_extends_that_now_resolves_to_another_file_rebuilds(tmp_path, private_cache):
    (tmp_path / "lib").mkdir()
    spec_copy(tmp_path, name="lib/base.yaml")
    child = spec_copy(tmp_path, "extends: base\nname: child\n", name="child.yaml")
    first = mfgen.build(child)
    # A new base.yaml next to the spec comes before lib/ on the search path.
    spec_copy(tmp_path, OSCILLATOR.replace("- beta * W) / tau", "- 4 * beta * W) / tau"),
              name="base.yaml")
    second = mfgen.build(child)
    assert second.compiled and second.module_dir != first.module_dir
    assert str(tmp_path / "base.yaml") in [s["path"] for s in second.entry["sources"]]


@pytest.mark.parametrize("replacement", ["fifo", "dev-zero", "sparse-3-GB"])
def test_a_cached_models_parent_replaced_by_a_non_file_fails_fast(tmp_path, private_cache,
                                                                   replacement):
    base = spec_copy(tmp_path, name="base.yaml")
    child = spec_copy(tmp_path, "extends: base\nname: child\n", name="child.yaml")
    mfgen.build(child)
    base.unlink()
    if replacement == "fifo":
        os.mkfifo(base)
        expected = "the spec is not a regular file"
    elif replacement == "dev-zero":
        base.symlink_to("/dev/zero")
        expected = "'base' is not one of them"
    else:
        base.touch()
        os.truncate(base, 3_000_000_000)
        expected = "the file is 3000000000 bytes; specs are limited to 1000000"
    start = time.monotonic()
    with pytest.raises(SpecError, match=expected):
        mfgen.build(child)
    assert time.monotonic() - start < 30  # a load, no read of a FIFO or of 3 GB


# -- the build lock ---------------------------------------------------------------------------
HOLD_AND_STOP = """
import os, signal, sys
from pathlib import Path
from mfgen.runtime.cache import Cache
with Cache(Path(sys.argv[1])).lock("k" * 64, hold_limit_s=float(sys.argv[2])):
    print("locked", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # a build stopped while it holds the lock
"""


def test_a_lock_held_by_a_stopped_build_is_announced_then_broken(private_cache, monkeypatch):
    Cache(private_cache)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_STOP, str(private_cache), "1.2"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        monkeypatch.setattr(cache_module, "LOCK_NOTICE_S", 0.3)
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Cache(private_cache).lock("k" * 64):
                waited = time.monotonic() - start
        messages = [str(w.message) for w in caught]
        assert any(f"waiting for process {holder.pid}, which is building the same model" in m
                   for m in messages), messages
        assert any("broke the build lock" in m and f"(process {holder.pid})" in m
                   for m in messages), messages
        assert 0.3 < waited < 30  # the notice first; the holder's deadline: 1.2 s after it locked
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
