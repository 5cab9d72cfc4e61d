"""The C toolchain: which compiler, which flags, and turning generated C into shared objects:
a model's plain library of kernels (`compile_library`), the simulator's cffi module
(`compile_module`: API mode, `FFI.set_source` + `emit_c_code`) and the dfun shim's CPython
module (`compile_extension`).

Each is compiled with one compiler call whose output is captured, so a failure shows the
compiler's message next to the generated lines it points at. There is no fallback to NumPy:
a missing or failing compiler is an error that says what to do.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import platform
import re
import shlex
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from mfgen.errors import CompileError

# -fno-trapping-math lets gcc if-convert where() (both sides computed, then a blend) so the
# node loop vectorises; IEEE results are unchanged, only FP exception flags are not kept.
BASE_FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
              "-std=gnu11")
# gcc vectorises a node loop's remainder (n % vector width nodes) with a second, narrower
# copy of the loop body: a third of a large model's compile time, for at most 3 (AVX2) or 7
# (AVX-512) nodes per call that then run the scalar loop instead; the Zerlaut kernel at 76
# nodes (4 such nodes with AVX-512) measured as fast with and without (1.39-1.58 us).
# No loop is peeled for alignment either: a peeled first iteration would depend on an array's
# address (a team member's copy of the state is elsewhere), and with it whether a node runs in
# the vector body or in scalar code (libmvec's and libm's functions differ in the last bit).
# 256-bit vectors even where gcc's tuning for the -march would pick 512-bit ones (e.g.
# x86-64-v4): 512-bit arithmetic lowers the core's clock for a while after it, which slowed a
# whole float64 run (benchmarks/engine_results.md, round 9). MFGEN_CFLAGS comes after and
# may ask for 512.
GCC_FLAGS = ("--param=vect-epilogues-nomask=0", "--param=vect-max-peeling-for-alignment=0",
             "-mprefer-vector-width=256")
COMPILE_TIMEOUT_S = 600
# cffi appends its Python wrappers (argument conversion, one call) after the simulator's source:
# gcc would spend time optimising them at -O3 for nothing measurable per call.
WRAPPERS_AT_O1 = """
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("O1")
#endif
"""


@dataclass(frozen=True)
class Toolchain:
    compiler: str
    version: str
    flags: tuple[str, ...]
    libraries: tuple[str, ...]
    cpu: str

    def identity(self) -> str:
        """Everything about the toolchain that can change the compiled module."""
        return "\n".join([self.compiler, self.version, " ".join(self.flags),
                          " ".join(self.libraries), self.cpu, sysconfig.get_config_var(
                              "EXT_SUFFIX") or ""])


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        digest = hashlib.sha256((flags.group(1) if flags else "").encode()).hexdigest()[:16]
        return f"{model.group(1) if model else platform.processor()} flags:{digest}"
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


@functools.lru_cache(maxsize=1)
def detect_toolchain() -> Toolchain:
    """The compiler ($CC or cc/gcc/clang) and flags ($MFGEN_CFLAGS adds or replaces -march)."""
    compiler = os.environ.get("CC") or next(
        (c for c in ("cc", "gcc", "clang") if shutil.which(c)), "")
    if not compiler or not shutil.which(shlex.split(compiler)[0]):
        raise CompileError(
            "no C compiler found (looked for $CC, cc, gcc, clang).\n"
            "  mfgen compiles every model to C. Install one, e.g. `apt-get install gcc` or "
            "`conda install c-compiler`, or set CC=/path/to/compiler.\n"
            "  Without a compiler you can still evaluate a spec's NumPy reference explicitly: "
            "mfgen.load(spec, backend='numpy').")
    command = shlex.split(compiler)
    try:
        probe = subprocess.run([*command, "--version"], capture_output=True, text=True,
                               timeout=60)
        if probe.returncode != 0:
            raise OSError(f"'{compiler} --version' exited with status {probe.returncode}")
        version = probe.stdout.splitlines()[0]
        is_gcc = "Free Software Foundation" in probe.stdout  # `cc` names itself cc, not gcc
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        raise CompileError(
            f"the C compiler '{compiler}' does not run: {exc}.\n"
            "  Set CC to a working C compiler (gcc or clang), or evaluate the spec's NumPy "
            "reference explicitly: mfgen.load(spec, backend='numpy').") from None
    flags = list(BASE_FLAGS) + (list(GCC_FLAGS) if is_gcc else [])
    extra = shlex.split(os.environ.get("MFGEN_CFLAGS", "-march=native"))
    flags += extra
    libraries: list[str] = []
    if platform.system() == "Linux" and _has_library(command, "libmvec.so"):
        flags.append("-DMFGEN_USE_LIBMVEC")
        libraries.append("mvec")
    libraries.append("m")
    return Toolchain(compiler, version, tuple(flags), tuple(libraries), _cpu_identity())


def _has_library(command: list[str], filename: str) -> bool:
    try:
        found = subprocess.run([*command, f"-print-file-name={filename}"], capture_output=True,
                               text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return os.path.isabs(found) and os.path.exists(found)


@functools.lru_cache(maxsize=1)
def has_openmp(toolchain: Toolchain) -> bool:
    """Whether the compiler can build OpenMP code (its runtime library is installed)."""
    command = shlex.split(toolchain.compiler)
    return any(_has_library(command, name) for name in ("libgomp.so", "libomp.so"))


def compile_module(module_name: str, c_source: str, declarations: str, workdir: Path,
                   toolchain: Toolchain) -> Path:
    """Build the cffi extension `module_name` in `workdir`; return the path of the .so."""
    import cffi  # only needed when building

    ffi = cffi.FFI()
    ffi.cdef(declarations)
    ffi.set_source(module_name, c_source + WRAPPERS_AT_O1)
    wrapper = workdir / f"{module_name}.c"
    with contextlib.redirect_stdout(io.StringIO()):  # cffi announces "generating ..."
        ffi.emit_c_code(str(wrapper))
    return _compile(wrapper, _extension_path(workdir, module_name), toolchain, ())


def compile_library(library_name: str, source: Path, workdir: Path, toolchain: Toolchain
                    ) -> Path:
    """Build the plain shared library `library_name`.so (no Python API: a model module, its
    kernels called through their addresses) from the C file `source`; return its path."""
    return _compile(source, workdir / f"{library_name}.so", toolchain, (), python=False)


def compile_extension(module_name: str, c_source: str, workdir: Path, toolchain: Toolchain,
                      options: tuple[str, ...] = ()) -> Path:
    """Build a plain CPython extension `module_name` (C source using Python's C API, with
    `options` such as NumPy's include directory) in `workdir`; return the path of the .so.
    The source's init function is PyInit_<MFGEN_MODULE_SYMBOL>, defined by the command line."""
    source = workdir / f"{module_name}.c"
    source.write_text(c_source)
    names = (f'-DMFGEN_MODULE_NAME="{module_name}"', f"-DMFGEN_MODULE_SYMBOL={module_name}")
    return _compile(source, _extension_path(workdir, module_name), toolchain,
                    (*names, *options))


def _extension_path(workdir: Path, module_name: str) -> Path:
    return workdir / f"{module_name}{sysconfig.get_config_var('EXT_SUFFIX')}"


def _compile(source: Path, target: Path, toolchain: Toolchain, options: tuple[str, ...],
             python: bool = True) -> Path:
    """Compile `source` into the shared object `target`, with Python's headers if `python`."""
    include = [f"-I{sysconfig.get_paths()['include']}"] if python else []
    command = [*shlex.split(toolchain.compiler), *toolchain.flags, *include, *options,
               str(source), "-o", str(target), *[f"-l{lib}" for lib in toolchain.libraries]]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CompileError(f"the C compiler took longer than {COMPILE_TIMEOUT_S} s") from None
    except OSError as exc:
        raise CompileError(f"cannot run the C compiler '{toolchain.compiler}': {exc}") from None
    if result.returncode != 0 or not target.exists():
        raise CompileError(_explain_failure(result.stderr or result.stdout, source, command))
    return target


def _explain_failure(output: str, source: Path, command: list[str]) -> str:
    lines = source.read_text().splitlines()
    parts = ["the C compiler failed on generated code.", f"  command: {shlex.join(command)}",
             "  compiler output:", *("    " + line for line in output.strip().splitlines()[:40])]
    numbers = dict.fromkeys(int(m.group(1)) for m in
                            re.finditer(rf"{re.escape(source.name)}:(\d+)", output))
    for number in list(numbers)[:3]:
        parts.append(f"  generated source around line {number}:")
        for i in range(max(1, number - 3), min(len(lines), number + 3) + 1):
            marker = ">>" if i == number else "  "
            parts.append(f"  {marker} {i:5d} | {lines[i - 1]}")
    parts.append("  This is a bug in mfgen or an unsupported construct in the spec; please "
                 "report it with the spec and this message.")
    return "\n".join(parts)
