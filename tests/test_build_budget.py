"""The build budget: a spec that makes SymPy or the compiler run away is stopped, with its
whole process group, and the error names the stage (issue 12).

Budgets here are small (1 CPU second) so the tests stay fast: the small specs reach the
compile stage in ~0.15 s of CPU, the runaway ones need minutes. The hung compiler's wall-clock
limit is 2 s: on a loaded machine the build (toolchain probe, C emission) can take over 1 s of
wall time to start the compiler. What each DoS spec did before the budget existed is in
SECURITY.md.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mfgen
from mfgen.errors import MfgenError
from mfgen.runtime.budget import (
    CPU_ENV,
    DEFAULT_CPU_SECONDS,
    DEFAULT_MEMORY_MB,
    MEMORY_ENV,
    BudgetExceeded,
    BuildBudget,
)
from mfgen.runtime.toolchain import detect_toolchain

# Derivatives of derivatives through functions: 0.5 kB, more than 120 s of SymPy before.
NESTED_DERIVATIVES = """\
name: nested_derivatives
state_variables:
  x: {range: [0.1, 1.0]}
functions:
  f0:
    args: [a, b]
    return: "exp(a*b)/(1+erfc(a/b))"
  f1:
    args: [a, b]
    return: "diff(f0, a, b)(a*b, a+b) * diff(f0, a, a)(a, b)"
  f2:
    args: [a, b]
    return: "diff(f1, a, b)(a*b, a+b) * diff(f1, a, a)(a, b)"
  f3:
    args: [a, b]
    return: "diff(f2, a, b)(a*b, a+b) * diff(f2, a, a)(a, b)"
  f4:
    args: [a, b]
    return: "diff(f3, a, b)(a*b, a+b) * diff(f3, a, a)(a, b)"
derivatives:
  x: "f4(x, x)"
"""

SMALL = """\
name: small
parameters:
  k: {{default: 0.5}}
state_variables:
  x: {{range: [-1.0, 1.0]}}
derivatives:
  x: -k * x + {tag}
"""

# A compiler that hangs (like a stopped gcc) or spins in a grandchild (like a
# cc1 on a huge file). It writes the pid of the process to watch into $MFGEN_TEST_PIDFILE.
HUNG_COMPILER = """\
#!/bin/sh
case "$1" in --version|-print-file-name=*) exec gcc "$@";; esac
echo $$ > "$MFGEN_TEST_PIDFILE"
exec sleep 600
"""
SPINNING_COMPILER = """\
#!/bin/sh
case "$1" in --version|-print-file-name=*) exec gcc "$@";; esac
sh -c 'echo $$ > "$MFGEN_TEST_PIDFILE"; while :; do :; done' &
wait
"""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not ours does not count)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rfind(")") + 2] != "Z"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rfind(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def _wait_pidfile(path: Path, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("the test compiler never started")


@pytest.fixture
def compiler(tmp_path, monkeypatch):
    """Install a test compiler as $CC for this test (the toolchain is detected afresh)."""

    def install(script: str) -> Path:
        path = tmp_path / "cc-under-test"
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        pidfile = tmp_path / "watched.pid"
        monkeypatch.setenv("CC", str(path))
        monkeypatch.setenv("MFGEN_TEST_PIDFILE", str(pidfile))
        detect_toolchain.cache_clear()
        return pidfile

    yield install
    detect_toolchain.cache_clear()


def test_defaults_and_environment(monkeypatch):
    monkeypatch.delenv(CPU_ENV, raising=False)
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    assert BuildBudget.from_environment() == BuildBudget(DEFAULT_CPU_SECONDS, DEFAULT_MEMORY_MB)
    monkeypatch.setenv(CPU_ENV, "12.5")
    monkeypatch.setenv(MEMORY_ENV, "300")
    assert BuildBudget.from_environment() == BuildBudget(12.5, 300.0)
    for bad in ("0", "-1", "nan", "inf", "lots"):
        monkeypatch.setenv(CPU_ENV, bad)
        with pytest.raises(MfgenError, match=f"{CPU_ENV}='{bad}' is not a positive number"):
            BuildBudget.from_environment()
    with pytest.raises(ValueError, match="memory_mb must be a positive finite number"):
        BuildBudget(memory_mb=0)


def test_runaway_sympy_is_stopped_within_its_cpu_budget(write_spec):
    path = write_spec(NESTED_DERIVATIVES)
    start = time.monotonic()
    with pytest.raises(BudgetExceeded) as info:
        mfgen.build(path, budget=BuildBudget(cpu_seconds=1))
    elapsed = time.monotonic() - start
    error = info.value
    assert error.resource == "CPU time"
    assert error.stage == "ir (inlining and derivatives)"
    assert str(error).startswith(f"the build of {path} ran out of CPU time in stage 'ir "
                                 "(inlining and derivatives)' (budget: 1 s)")
    assert CPU_ENV in str(error)
    # 1 CPU second; the wall-clock bound allows for a machine shared by several test runs.
    assert elapsed < 60
    assert _group_members(error.process_group) == []


def test_the_memory_budget_stops_a_build(write_spec):
    derived = "".join(f"  d{i}: {'x' if i == 0 else f'd{i - 1}'} * x + {i}\n"
                      for i in range(3000))
    path = write_spec(SMALL.format(tag="d2999").replace("derivatives:", "derived:\n"
                                                        + derived + "derivatives:"))
    with pytest.raises(BudgetExceeded) as info:
        mfgen.build(path, budget=BuildBudget(memory_mb=8))
    assert info.value.resource.startswith("memory")
    assert "budget: 8 MB" in str(info.value)
    assert _group_members(info.value.process_group) == []


def test_a_spec_of_3000_states_is_stopped_within_its_budget(write_spec):
    """Before: gcc kept busy past its 600 s timeout, cc1 running on after the build was
    killed. Whichever stage the 1 s budget runs out in, the group is gone afterwards."""
    n = 3000
    lines = ["name: many_states", "state_variables:"]
    lines += [f"  s{i}: {{range: [-1.0, 1.0]}}" for i in range(n)]
    lines += ["derivatives:"] + [f"  s{i}: -s{i} + tanh(s{(i + 1) % n}) * erfc(s{(i + 7) % n})"
                                 for i in range(n)]
    path = write_spec("\n".join(lines) + "\n")
    with pytest.raises(BudgetExceeded) as info:
        mfgen.build(path, budget=BuildBudget(cpu_seconds=1))
    assert info.value.resource == "CPU time"
    assert _group_members(info.value.process_group) == []


def test_the_numpy_backend_builds_under_the_budget_too(write_spec):
    path = write_spec(NESTED_DERIVATIVES.replace("nested_derivatives", "numpy_only"))
    with pytest.raises(BudgetExceeded, match="stage 'ir \\(inlining and derivatives\\)'"):
        mfgen.load(path, backend="numpy", budget=BuildBudget(cpu_seconds=1))
    # (that the numpy backend still works is tested in test_runtime.py)


def test_a_spinning_compiler_grandchild_is_killed_with_the_build(write_spec, compiler):
    """cc1 runs as a grandchild of the build: it is counted and killed with the group."""
    pidfile = compiler(SPINNING_COMPILER)
    path = write_spec(SMALL.format(tag="1.25"))
    with pytest.raises(BudgetExceeded) as info:
        mfgen.build(path, budget=BuildBudget(cpu_seconds=1))
    assert info.value.stage == "compile" and info.value.resource == "CPU time"
    assert not _alive(_wait_pidfile(pidfile))
    assert _group_members(info.value.process_group) == []


def test_a_hung_compiler_is_killed_at_the_wall_clock_limit(write_spec, compiler):
    pidfile = compiler(HUNG_COMPILER)
    path = write_spec(SMALL.format(tag="2.5"))
    start = time.monotonic()
    with pytest.raises(BudgetExceeded) as info:
        mfgen.build(path, budget=BuildBudget(cpu_seconds=30, wall_limit=2))
    assert time.monotonic() - start < 30
    assert info.value.stage == "compile" and info.value.resource == "wall-clock time"
    assert not _alive(_wait_pidfile(pidfile))


def test_the_command_line_reports_the_budget_in_one_message(write_spec, tmp_path):
    path = write_spec(NESTED_DERIVATIVES)
    env = dict(os.environ, **{CPU_ENV: "1"})
    run = subprocess.run([sys.executable, "-m", "mfgen.cli", "build", str(path)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith(f"mfgen: error: the build of {path} ran out of CPU time in "
                                 "stage 'ir (inlining and derivatives)' (budget: 1 s)"), run.stderr


def test_a_build_within_budget_is_unchanged(write_spec):
    path = write_spec(SMALL.format(tag="0.75"))
    result = mfgen.build(path, budget=BuildBudget(cpu_seconds=120))
    assert result.compiled and set(result.timings) >= {"parse", "ir", "optimize", "compile"}
    model = mfgen.load(path)
    # dx/dt = -k x + 0.75 with k = 0.5, x = 0.5: exactly 0.5 in binary floating point
    assert model.dfun(np.array([[0.5]]), np.zeros((0, 1))).tolist() == [[0.5]]


def _children() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rfind(")") + 2:].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.append(int(entry))
    return found


def test_interrupting_the_build_kills_its_group(write_spec):
    """Ctrl-C while the child works: the parent kills the group, reaps it and re-raises."""
    path = write_spec(NESTED_DERIVATIVES.replace("nested_derivatives", "interrupted"))
    # Children this process already had (e.g. multiprocessing's resource tracker, started by
    # an earlier test in the same process) are not the build's.
    earlier = set(_children())

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            mfgen.build(path, budget=BuildBudget(cpu_seconds=60))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert set(_children()) - earlier == set()


def test_killing_the_supervising_process_ends_the_build(write_spec, compiler):
    """kill -9 of the process that called mfgen.build runs no cleanup there: the build's own
    watchdog ends its group, so the compiler does not run on orphaned (it did before)."""
    pidfile = compiler(SPINNING_COMPILER)
    path = write_spec(SMALL.format(tag="3.5"))
    caller = subprocess.Popen([sys.executable, "-c", f"import mfgen; mfgen.build({str(path)!r})"],
                              env=dict(os.environ), stderr=subprocess.DEVNULL)
    try:
        spinner = _wait_pidfile(pidfile, timeout=60)
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 10
    while _alive(spinner) and time.monotonic() < deadline:
        time.sleep(0.1)
    survived = _alive(spinner)
    if survived:  # never leave a spinning process behind, even when the test fails
        os.kill(spinner, signal.SIGKILL)
    assert not survived
