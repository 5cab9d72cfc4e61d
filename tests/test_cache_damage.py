"""The cache under damage and pressure: corrupted modules, a tampered index, a read-only
cache, a full disk, no compiler. Nothing damaged is ever imported; each case is rebuilt with a
warning, falls back to an announced temporary cache, or fails with a message saying what to do.

Builds here use MFGEN_CFLAGS=-O0 (fast compiles; the cache logic does not depend on flags).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import run_in_processes

import mfgen
from mfgen.errors import CompileError, MfgenError
from mfgen.runtime import cache as cache_module
from mfgen.runtime import loader as loader_module
from mfgen.runtime.cache import CHECKSUM_FILE, Cache
from mfgen.runtime.toolchain import detect_toolchain

SPEC = """\
name: damage_probe
parameters:
  a: {default: 2.0}
state_variables:
  x: {range: [-1.0, 1.0]}
derivatives:
  x: -a * x + 1
"""
STATE = np.array([[0.5, -1.0]])
EXPECTED = np.array([[0.0, 3.0]])


@pytest.fixture
def fast_builds(monkeypatch, tmp_path):
    monkeypatch.setenv("MFGEN_CFLAGS", "-O0")
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_module, "_fallback", None)
    detect_toolchain.cache_clear()
    yield tmp_path / "cache"
    detect_toolchain.cache_clear()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One real build; tests start from a copy of its cache."""
    folder = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MFGEN_CFLAGS", "-O0")
        patch.setenv("MFGEN_CACHE_DIR", str(folder / "cache"))
        detect_toolchain.cache_clear()
        path = folder / "probe.yaml"
        path.write_text(SPEC)
        result = mfgen.build(path)
    detect_toolchain.cache_clear()
    return folder, result


@pytest.fixture
def built(fast_builds, tmp_path, pristine, monkeypatch):
    """The pristine cache copied here; a rebuild "compiles" by copying the pristine module
    (the detection and rebuild logic is what is tested, and it stays fast)."""
    folder, result = pristine
    shutil.copytree(folder / "cache", fast_builds)
    path = tmp_path / "probe.yaml"
    path.write_text(SPEC)
    pristine_so = _so(result.module_dir)

    def copy_module(library_name, source, workdir, toolchain):
        target = workdir / pristine_so.name
        shutil.copyfile(pristine_so, target)
        return target

    monkeypatch.setattr(loader_module, "compile_library", copy_module)
    first = mfgen.build(path)
    assert not first.compiled  # the copied module is intact and reused
    return path, first


def _so(module_dir: Path) -> Path:
    return module_dir / (module_dir / CHECKSUM_FILE).read_text().split()[1]


def truncate(d: Path) -> None:
    data = _so(d).read_bytes()
    _so(d).write_bytes(data[: len(data) // 2])


def garbage(d: Path) -> None:
    _so(d).write_bytes(b"\x7fELF" + os.urandom(4000))


def same_size_flip(d: Path) -> None:
    data = bytearray(_so(d).read_bytes())
    data[len(data) // 2] ^= 0xFF
    _so(d).write_bytes(bytes(data))


def so_missing(d: Path) -> None:
    _so(d).unlink()


def so_is_a_directory(d: Path) -> None:  # unreadable as a file, even for root
    so = _so(d)
    so.unlink()
    so.mkdir()


def checksum_missing(d: Path) -> None:
    (d / CHECKSUM_FILE).unlink()


def checksum_garbage(d: Path) -> None:
    (d / CHECKSUM_FILE).write_text("not a checksum\n")


def checksum_points_elsewhere(d: Path) -> None:
    digest = (d / CHECKSUM_FILE).read_text().split()[0]
    (d / CHECKSUM_FILE).write_text(f"{digest}  ../../../../../tmp/evil.so\n")


def reference_missing(d: Path) -> None:
    (d / "reference.py").unlink()


def reference_tampered(d: Path) -> None:
    """The NumPy reference is executed when used: it is checksummed like the module."""
    reference = d / "reference.py"
    reference.write_text(reference.read_text() + "\nopen('SENTINEL', 'w').close()\n")


def module_dir_is_a_file(d: Path) -> None:
    shutil.rmtree(d)
    d.write_text("")


DAMAGE = [truncate, garbage, same_size_flip, so_missing, so_is_a_directory, checksum_missing,
          checksum_garbage, checksum_points_elsewhere, reference_missing, reference_tampered,
          module_dir_is_a_file]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_a_damaged_module_is_detected_and_rebuilt_with_a_warning(built, damage):
    path, first = built
    damage(first.module_dir)
    with pytest.warns(UserWarning, match=r"mfgen: the cached module in .* is damaged \(.+\); "
                                         r"rebuilding it"):
        result = mfgen.build(path)
    assert result.compiled and result.module_dir == first.module_dir
    assert cache_module.module_problem(result.module_dir, result.entry["module_name"],
                                       ("reference.py",)) is None
    np.testing.assert_allclose(mfgen.load(path).dfun(STATE, np.zeros((0, 2))), EXPECTED)


def test_a_truncated_module_is_never_imported(built):
    """In a fresh process, the damaged file must not reach the dynamic loader."""
    path, first = built
    truncate(first.module_dir)
    script = textwrap.dedent(f"""
        import sys, warnings, mfgen
        from mfgen.runtime import loader
        def guard(real):
            def guarded(name, file):
                from mfgen.runtime.cache import module_problem
                assert module_problem(file.parent, name) is None, file
                return real(name, file)
            return guarded
        # Python extensions (the simulator, the dfun shim) and model libraries (ctypes)
        loader._import_file = guard(loader._import_file)
        loader._load_library = guard(loader._load_library)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = mfgen.load({str(path)!r})
        print(model.dfun([[0.5, -1.0]], __import__("numpy").zeros((0, 2))))
        print("WARNINGS", [str(w.message) for w in caught])
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert "[[0. 3.]]" in run.stdout
    assert "does not match its checksum" in run.stdout and "rebuilding it" in run.stdout


def _index_of(result, path: Path) -> Path:
    (index,) = [p for p in (result.module_dir.parents[1] / "index").glob("*.json")
                if str(path) in p.read_text()]
    return index


@pytest.mark.parametrize("entry", [
    "{not json", "[]", "{}", json.dumps({"module_key": "../../../etc", "module_name": "x",
                                         "model": {}, "sources": []}),
], ids=["garbage", "a-list", "empty", "path-as-key"])
def test_a_damaged_index_entry_is_ignored_with_a_warning(built, entry):
    path, first = built
    index = _index_of(first, path)
    index.write_text(entry)
    if entry.startswith("{not"):  # unreadable JSON is simply a missing entry
        result = mfgen.build(path)
    else:
        with pytest.warns(UserWarning, match="ignoring a damaged entry in the cache index"):
            result = mfgen.build(path)
    assert not result.compiled and result.module_dir == first.module_dir
    assert json.loads(index.read_text())["module_key"] == first.entry["module_key"]


def test_an_index_cannot_point_the_loader_elsewhere(built, tmp_path):
    """module_dir in the index is ignored: it is recomputed from the (validated) key."""
    path, first = built
    index = _index_of(first, path)
    entry = json.loads(index.read_text())
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(first.module_dir, elsewhere)
    entry["module_dir"] = str(elsewhere)
    index.write_text(json.dumps(entry))
    result = mfgen.build(path)
    assert result.from_index and result.module_dir == first.module_dir


def test_a_cache_root_that_cannot_be_created_falls_back_to_an_announced_temporary_cache(
        fast_builds, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MFGEN_CACHE_DIR", str(blocker / "cache"))
    path = tmp_path / "probe.yaml"
    path.write_text(SPEC)
    with pytest.warns(UserWarning, match=r"the cache directory .*a-file/cache cannot be written "
                                         r"\(Not a directory\); building in the temporary "
                                         r"directory .* instead"):
        model = mfgen.load(path)
    np.testing.assert_allclose(model.dfun(STATE, np.zeros((0, 2))), EXPECTED)
    assert not (blocker / "cache").exists()


def test_a_cache_that_cannot_be_written_falls_back_with_a_warning(built, monkeypatch):
    path, first = built
    path.write_text(SPEC.replace("+ 1", "+ 2"))  # something new to build
    monkeypatch.setattr(Cache, "write_problem",
                        lambda self: PermissionError(errno.EACCES, "Permission denied"))
    with pytest.warns(UserWarning, match=r"cannot be written \(Permission denied\); building in "
                                         r"the temporary directory"):
        result = mfgen.build(path)
    assert result.compiled
    assert not result.module_dir.is_relative_to(first.module_dir.parents[1])


def test_a_full_disk_during_the_build_is_a_clear_error(built, monkeypatch):
    path, first = built
    path.write_text(SPEC.replace("+ 1", "+ 3"))
    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if "build-" in str(self):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(MfgenError, match=r"the disk holding the mfgen cache at .* is full \(No "
                                         r"space left on device\).\n  Free some space, or set "
                                         r"MFGEN_CACHE_DIR"):
        mfgen.build(path)
    assert not list((first.module_dir.parents[1] / "tmp").iterdir()), "staging left behind"


def _unshare_available() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_available(),
                                   reason="needs unprivileged user+mount namespaces (unshare)")


def _in_namespace(setup: str, script: str, tmp_path: Path,
                  env: dict) -> subprocess.CompletedProcess:
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    command = f"{setup} && exec {sys.executable} {tmp_path / 'script.py'}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True,
                          timeout=300, env=env)


@needs_unshare
def test_a_read_only_cache_still_loads_and_builds_new_specs_elsewhere(built, tmp_path):
    """A real read-only mount: cached models load without writing; a new one falls back."""
    path, first = built
    cache = first.module_dir.parents[1]
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace("+ 1", "+ 4"))
    script = f"""
        import warnings, numpy as np, mfgen
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cached = mfgen.load({str(path)!r})
            print("CACHED-WARNINGS", len(caught))
            fresh = mfgen.load({str(other)!r})
        print("VALUES", cached.dfun([[0.5]], np.zeros((0, 1)))[0, 0],
              fresh.dfun([[0.5]], np.zeros((0, 1)))[0, 0])
        print("WARNINGS", [str(w.message) for w in caught])
    """
    run = _in_namespace(f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache}",
                        script, tmp_path, dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert "CACHED-WARNINGS 0" in run.stdout
    assert "VALUES 0.0 3.0" in run.stdout
    assert "cannot be written (Read-only file system); building in the temporary" in run.stdout


@needs_unshare
def test_a_really_full_disk_is_a_clear_error(fast_builds, tmp_path):
    """A 24 kB tmpfs as the cache (a small model's module takes ~40 kB): the build runs out
    of space and says so."""
    small = tmp_path / "small"
    small.mkdir()
    path = tmp_path / "probe.yaml"
    path.write_text(SPEC)
    script = f"""
        import mfgen
        try:
            mfgen.build({str(path)!r})
        except mfgen.MfgenError as exc:
            print("ERROR", exc)
    """
    env = dict(os.environ, MFGEN_CACHE_DIR=str(small / "cache"))
    run = _in_namespace(f"mount -t tmpfs -o size=24k tmpfs {small}", script, tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert "ERROR the disk holding the mfgen cache at" in run.stdout, run.stdout
    assert "Free some space, or set MFGEN_CACHE_DIR" in run.stdout


def test_a_compiler_that_does_not_run_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "false")
    detect_toolchain.cache_clear()
    try:
        with pytest.raises(CompileError, match="the C compiler 'false' does not run"):
            detect_toolchain()
    finally:
        detect_toolchain.cache_clear()


def test_no_compiler_on_the_command_line_says_what_to_do(tmp_path):
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"), PATH=str(tmp_path),
               MFGEN_CACHE_DIR=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-m", "mfgen.cli", "build", "generic_2d_oscillator"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "no C compiler found" in run.stderr and "apt-get install gcc" in run.stderr
    assert "backend='numpy'" in run.stderr


def _load_in_process(path: str, cache: str, queue) -> None:
    import warnings

    os.environ["MFGEN_CACHE_DIR"] = cache
    os.environ["MFGEN_CFLAGS"] = "-O0"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mfgen.build(path)
        model = mfgen.load(path)
    value = model.dfun(STATE, np.zeros((0, 2))).tolist()
    queue.put((result.compiled, value, [str(w.message) for w in caught]))


def test_processes_race_to_repair_a_damaged_module(built):
    """All load and compute; exactly one rebuilds (and warns); nobody imports the damage."""
    path, first = built
    truncate(first.module_dir)
    results = run_in_processes(_load_in_process, (str(path), str(first.module_dir.parents[1])),
                               4)
    assert sum(compiled for compiled, _, _ in results) == 1
    assert all(value == EXPECTED.tolist() for _, value, _ in results)
    warned = [w for _, _, caught in results for w in caught if "rebuilding it" in w]
    assert len(warned) == 1, warned


def test_a_reference_tampered_after_loading_is_never_executed(built, tmp_path, monkeypatch):
    """reference.py is read once, verified and executed from those bytes."""
    path, first = built
    monkeypatch.chdir(tmp_path)
    # Imported modules stay imported in a process: forget one an earlier test may have loaded.
    monkeypatch.delitem(sys.modules, first.entry["module_name"] + "_reference", raising=False)
    model = mfgen.load(path)
    reference_tampered(first.module_dir)
    with pytest.raises(OSError, match="reference.py in .* does not match its checksum"):
        model.reference  # noqa: B018 - the property imports it
    assert not (tmp_path / "SENTINEL").exists()
