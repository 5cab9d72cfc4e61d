"""A CPU-time and memory budget for building a spec (parse, SymPy, C compiler).

A spec is untrusted, and a small one can make SymPy or the C compiler work for hours or use
gigabytes. The build therefore runs in a forked child process that leads its own process group
(the compiler and its cc1 inherit the group):

* the child has RLIMIT_CPU (its own CPU seconds) and RLIMIT_AS (its address space now plus the
  memory budget) set, so a runaway stage fails inside the child with a budget error;
* the parent watches the whole group: total CPU of every live process in it (cc1 included),
  and wall-clock time (a stopped or stuck build uses no CPU but must still end), and kills the
  whole group with SIGKILL when the budget is spent, so nothing is left running, orphaned;
* the child reports the stage it is in, so the error names the stage that ran out.

Defaults are generous (the largest bundled spec builds in about a tenth of them); set
MFGEN_BUILD_CPU_SECONDS / MFGEN_BUILD_MEMORY_MB, or pass `BuildBudget` to `mfgen.build`.
Where `os.fork` is missing (Windows) the build runs in-process without these limits.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import resource
import select
import signal
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mfgen.errors import CompileError, Location, MfgenError, SpecError

CPU_ENV = "MFGEN_BUILD_CPU_SECONDS"
MEMORY_ENV = "MFGEN_BUILD_MEMORY_MB"
# The largest bundled specs (tvb_*_second_order) build in ~7 s of CPU (SymPy and gcc) with
# ~100 MB resident; these defaults leave a wide margin on slow machines and still stop a
# runaway build.
DEFAULT_CPU_SECONDS = 300.0
DEFAULT_MEMORY_MB = 2048.0
# Wall clock allowed per CPU second: a loaded machine runs the build slower than its CPU time,
# but a stopped (SIGSTOP) or hung build must still end.
WALL_FACTOR = 4.0
WALL_SLACK_S = 60.0
POLL_S = 0.25
# Generated C, NumPy reference and IR text of one model (the largest bundled model: 0.8 MB):
# what a spec can make mfgen write into the cache and hand to the compiler.
MAX_GENERATED_BYTES = 16_000_000

T = TypeVar("T")


class BudgetExceeded(MfgenError):
    """The build of a spec used more CPU time, memory or wall-clock time than its budget."""

    def __init__(self, stage: str, resource_name: str, limit: str, spec: str = ""):
        self.stage = stage
        self.resource = resource_name
        self.process_group: int | None = None  # the group that was killed
        where = f" of {spec}" if spec else ""
        super().__init__(
            f"the build{where} ran out of {resource_name} in stage '{stage}' (budget: {limit}); "
            f"the process group was stopped.\n  hint: a spec this expensive is probably a "
            f"mistake or hostile; to allow more, set {CPU_ENV} / {MEMORY_ENV} (or pass "
            "budget=BuildBudget(...))")


@dataclass(frozen=True)
class BuildBudget:
    """CPU seconds (all processes of the build together) and memory (MB) of one build."""

    cpu_seconds: float = DEFAULT_CPU_SECONDS
    memory_mb: float = DEFAULT_MEMORY_MB
    wall_limit: float | None = None  # default: WALL_FACTOR * cpu_seconds + WALL_SLACK_S

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_mb", "wall_limit"):
            value = getattr(self, name)
            if value is None and name == "wall_limit":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"BuildBudget {name} must be a positive finite number, "
                                 f"got {value!r}")

    @property
    def wall_seconds(self) -> float:
        """Wall-clock seconds before a build that is stopped or waiting is killed."""
        if self.wall_limit is not None:
            return float(self.wall_limit)
        return WALL_FACTOR * self.cpu_seconds + WALL_SLACK_S

    @classmethod
    def from_environment(cls) -> BuildBudget:
        """The default budget, overridden by MFGEN_BUILD_CPU_SECONDS / MFGEN_BUILD_MEMORY_MB."""
        values = {}
        for field_name, variable, default in (("cpu_seconds", CPU_ENV, DEFAULT_CPU_SECONDS),
                                              ("memory_mb", MEMORY_ENV, DEFAULT_MEMORY_MB)):
            text = os.environ.get(variable, "").strip()
            if not text:
                values[field_name] = default
                continue
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise MfgenError(f"{variable}={text!r} is not a positive number of "
                                 f"{'seconds' if field_name == 'cpu_seconds' else 'megabytes'}"
                                 f" (default {default:g})")
            values[field_name] = value
        return cls(**values)


def check_generated_size(spec_path: str, *texts: str) -> None:
    """Refuse generated sources beyond MAX_GENERATED_BYTES, before they are written."""
    size = sum(len(text) for text in texts)
    if size > MAX_GENERATED_BYTES:
        raise SpecError(f"the generated source is {size} bytes; the limit is "
                        f"{MAX_GENERATED_BYTES}", Location(spec_path),
                        "the spec generates far more code than any model needs; shorten names "
                        "and share repeated expressions")


# -- the child side --------------------------------------------------------------------------
_channel: int | None = None  # write end of the pipe to the parent, in a budgeted child only
_stage = "start"
_budget: BuildBudget | None = None  # the budget of the build this child runs


def stage(name: str) -> None:
    """Announce the stage the build is entering (named in a budget error)."""
    global _stage
    _stage = name
    _send(("stage", name))


def in_budgeted_child() -> bool:
    return _channel is not None


def current_wall_seconds() -> float:
    """The wall-clock limit of the build running in this process (a lock's deadline)."""
    return (_budget or BuildBudget.from_environment()).wall_seconds


def _send(message: tuple) -> None:
    if _channel is None:
        return
    data = pickle.dumps(message)
    payload = struct.pack("!I", len(data)) + data
    while payload:
        written = os.write(_channel, payload)
        payload = payload[written:]


def _on_cpu_limit(signum: int, frame: Any) -> None:
    raise _OutOfCpu()


class _OutOfCpu(BaseException):
    """Raised by SIGXCPU in the child; BaseException so `except Exception` cannot eat it."""


def _address_space_now() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(work: Callable[[], T], budget: BuildBudget, write_fd: int) -> None:
    """Runs in the forked child; never returns."""
    global _channel, _budget
    status = 0
    try:
        _channel = write_fd
        _budget = budget
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, and kills the group
        signal.signal(signal.SIGXCPU, _on_cpu_limit)
        # A backstop 1 s above the budget: the parent's sampling of the whole group is what
        # normally stops the build (and names the resource); this catches a parent that
        # cannot keep up. Compiler processes inherit it, each for itself.
        cpu = int(math.ceil(budget.cpu_seconds)) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        memory = _address_space_now() + int(budget.memory_mb * 1024 * 1024)
        with contextlib.suppress(ValueError, OSError):  # a lower hard limit already applies
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        _watch_parent(os.getppid())
        with warnings.catch_warnings():
            # Forwarded as they happen (a build waiting for a lock says so at once); the
            # parent's filters decide what is shown.
            warnings.simplefilter("always")
            warnings.showwarning = _forward_warning
            try:
                result: tuple = ("result", work())
            except _OutOfCpu:
                result = ("exceeded", "CPU time")
            except MemoryError:
                result = ("exceeded", "memory")
            except RecursionError:
                result = ("error", MfgenError(f"the build ran too deep a recursion in stage "
                                              f"'{_stage}'; the spec is too deeply nested"))
            except SpecError as exc:
                result = ("spec_error", exc.bare_message, exc.location, exc.hint)
            except CompileError as exc:
                # cc1 inherits the limits: its "out of memory" is the budget's doing.
                text = str(exc)
                result = (("exceeded", "memory") if any(
                    m in text for m in ("out of memory", "virtual memory exhausted",
                                        "Cannot allocate memory")) else ("error", exc))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                result = ("error", _portable(exc))
        try:
            _send(result)
        except MemoryError:
            _send(("exceeded", "memory"))
    except BaseException:  # noqa: BLE001 - the parent reports a child that died silently
        status = 70
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)  # no atexit handlers: they belong to the parent


def _watch_parent(parent: int) -> None:
    """If the process that supervises this build dies (SIGKILL, SIGTERM: no `finally` runs
    there), end the whole build group, compiler included, instead of running on orphaned."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="mfgen-budget-watch", daemon=True).start()


def _forward_warning(message: Warning | str, category: type[Warning], *args: Any,
                     **kwargs: Any) -> None:
    _send(("warning", str(message), category))


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling unchanged, else an MfgenError with its text."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
        if type(copy) is type(exc) and str(copy) == str(exc):
            return exc
    except Exception:  # noqa: BLE001 - an unpicklable exception is sent as text
        pass
    return MfgenError(f"{type(exc).__name__}: {exc}")


# -- the parent side -------------------------------------------------------------------------
def run_within_budget(work: Callable[[], T], budget: BuildBudget, what: str = "") -> T:
    """Run `work()` in a child process group under `budget`; return its (picklable) result.

    Exceptions raised by `work` are raised here; SpecError keeps its location and hint.
    """
    if not hasattr(os, "fork") or in_budgeted_child():
        return work()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(read_fd)
        _child(work, budget, write_fd)
    os.close(write_fd)
    with contextlib.suppress(OSError):  # also done by the child; whichever runs first
        os.setpgid(pid, pid)
    try:
        return _supervise(pid, read_fd, budget, what)
    except BudgetExceeded as exc:
        exc.process_group = pid
        raise
    finally:
        os.close(read_fd)


def _supervise(pid: int, read_fd: int, budget: BuildBudget, what: str) -> Any:
    groups = {pid}  # the child leads its own group; the compiler and its children are in it
    current = "start"
    outcome: tuple | None = None
    buffer = b""
    started = time.monotonic()
    exited_status: int | None = None
    # Resident memory is counted from the child's first measurement: right after the fork it
    # shares (and counts) every page of this process.
    baseline: int | None = None
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], POLL_S)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                buffer += chunk
                while len(buffer) >= 4:
                    (size,) = struct.unpack("!I", buffer[:4])
                    if len(buffer) < 4 + size:
                        break
                    message = pickle.loads(buffer[4: 4 + size])  # from our own child
                    buffer = buffer[4 + size:]
                    kind = message[0]
                    if kind == "stage":
                        current = message[1]
                    elif kind == "warning":
                        warnings.warn(message[1], message[2], stacklevel=4)
                    else:
                        outcome = message
                if not chunk:  # the child closed the pipe: it has exited
                    break
            if outcome is not None:
                break
            if exited_status is not None:
                break  # it exited and wrote nothing more within POLL_S
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                # It may have written its outcome after the select above and then exited:
                # read the pipe once more before concluding there is no result.
                exited_status = status
                continue
            elapsed = time.monotonic() - started
            if elapsed > budget.wall_seconds:
                raise BudgetExceeded(current, "wall-clock time",
                                     f"{budget.wall_seconds:g} s", what)
            cpu, resident = _group_usage(groups)
            baseline = resident if baseline is None else baseline
            if cpu > budget.cpu_seconds:
                raise BudgetExceeded(current, "CPU time", f"{budget.cpu_seconds:g} s", what)
            if resident - baseline > budget.memory_mb * 1024 * 1024:
                raise BudgetExceeded(current, "memory", f"{budget.memory_mb:g} MB", what)
    finally:
        # Always: the child and whatever it started (compiler, cc1) end with this call.
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        used = 0.0
        if exited_status is None:
            with contextlib.suppress(ChildProcessError):
                _, exited_status, usage = os.wait4(pid, 0)
                # the child with every descendant it waited for (the compiler, cc1)
                used = usage.ru_utime + usage.ru_stime
    if outcome is None:
        if exited_status is not None and os.WIFSIGNALED(exited_status):
            number = os.WTERMSIG(exited_status)
            if number in (signal.SIGXCPU, signal.SIGKILL):
                raise BudgetExceeded(current, "CPU time", f"{budget.cpu_seconds:g} s", what)
            if number in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
                # GMP aborts when an allocation fails, so memory is the likely cause.
                raise BudgetExceeded(current, "memory (the process aborted)",
                                     f"{budget.memory_mb:g} MB", what)
            raise MfgenError(f"the build process died from signal {number} in stage "
                             f"'{current}'")
        raise MfgenError(f"the build process ended without a result in stage '{current}'")
    kind = outcome[0]
    if kind == "result":
        return outcome[1]
    if kind == "error" and used >= budget.cpu_seconds:
        # A compiler process that reached the inherited RLIMIT_CPU before the group total was
        # sampled: the compiler "failed" because the budget ran out.
        raise BudgetExceeded(current, "CPU time", f"{budget.cpu_seconds:g} s", what)
    if kind == "exceeded":
        limit = (f"{budget.cpu_seconds:g} s" if outcome[1] == "CPU time"
                 else f"{budget.memory_mb:g} MB")
        raise BudgetExceeded(current, outcome[1], limit, what)
    if kind == "spec_error":
        raise SpecError(outcome[1], outcome[2], outcome[3])
    raise outcome[1]


def _group_usage(groups: set[int]) -> tuple[float, int]:
    """CPU seconds and resident bytes of every live process in the given process groups
    (Linux /proc; zero elsewhere, where the child's own rlimits still apply)."""
    total = 0.0
    resident = 0
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0, 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                text = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        # fields[2] is the process group; [11], [12] utime, stime; [13], [14] of waited
        # children (the compiler driver's finished cc1 and as).
        if len(fields) > 21 and int(fields[2]) in groups:
            total += sum(int(f) for f in fields[11:15]) / ticks
            resident += int(fields[21]) * page
    return total, resident
