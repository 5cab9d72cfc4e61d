"""`mfgen.build` and `mfgen.load`: run the pipeline when needed, else load from the cache.

    spec file --codegen.spec--> ModelSpec --codegen.ir--> ModelIR --codegen.optimize--> Kernel
      --codegen.render--> C + NumPy source --runtime.toolchain--> shared library (cached)
      --runtime.model--> CompiledModel / ReferenceModel

A model's module is a plain shared library of its kernels (no Python API: it compiles without
Python's headers); Python calls them through the dfun shim (templates/dfun_call.c) and the
simulator through their addresses. The simulator and the shim are CPython modules compiled
once per toolchain.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.util
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mfgen import __version__
from mfgen.errors import CompileError, MfgenError
from mfgen.runtime.budget import (
    BuildBudget,
    check_generated_size,
    run_within_budget,
    stage,
)
from mfgen.runtime.cache import (
    DISK_FULL,
    Cache,
    UnsafeCacheError,
    cache_root,
    digest,
    disk_full_error,
    fallback_cache,
    generator_identity,
    is_key,
    module_file,
    module_problem,
    read_verified,
)
from mfgen.runtime.model import (
    CompiledModel,
    ModelBase,
    ReferenceModel,
    compiled_model,
    reference_model,
)
from mfgen.runtime.toolchain import (
    Toolchain,
    compile_extension,
    compile_library,
    compile_module,
    detect_toolchain,
    has_openmp,
)

if TYPE_CHECKING:
    from mfgen.codegen.targets import Target

# Part of every model module's key: a module of another format is never loaded as this one.
MODEL_MODULE_FORMAT = "shared library of kernels, no Python API"
KERNEL_FILE = "kernel.c"
SIMULATOR_FILE = "simulator.c"
DFUN_CALL_FILE = "dfun_call.c"
REFERENCE_FILE = "reference.py"


@dataclass
class BuildResult:
    """What `build` did: the index entry it wrote, timings (s) and whether it compiled."""

    spec_path: Path
    entry: dict[str, Any]
    compiled: bool
    from_index: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def module_dir(self) -> Path:
        return Path(self.entry["module_dir"])

    @property
    def stats(self) -> dict[str, Any]:
        return self.entry["model"]["stats"]


def _spec_key(path: Path, toolchain: Toolchain) -> str:
    from mfgen.codegen.locate import read_spec_bytes

    data = read_spec_bytes(path)  # first: an unreadable spec is the error to report
    return digest("spec-index", MODEL_MODULE_FORMAT, generator_identity(),
                  toolchain.identity(), str(path), data)


def _sources_unchanged(entry: dict[str, Any]) -> bool:
    from mfgen.codegen.locate import sources_current

    return sources_current(entry.get("sources", []), entry.get("extends", []))


def _default_cache() -> Cache:
    try:
        return Cache()
    except UnsafeCacheError:  # planted or shared: refused, never worked around
        raise
    except MfgenError as exc:  # the configured cache cannot even be created
        return fallback_cache(cache_root(), getattr(exc, "strerror", None) or str(exc))


def _valid_entry(entry: Any, cache: Cache) -> dict[str, Any] | None:
    """An index entry fit to use, with its module directory recomputed from its key (an
    index never makes mfgen import a module from elsewhere), or None."""
    if entry is None:
        return None
    try:
        key = entry["module_key"]
        valid = (is_key(key) and entry["module_name"] == f"_mfgen_{key[:32]}"
                 and isinstance(entry["model"], dict) and isinstance(entry["sources"], list)
                 and all(isinstance(s["path"], str) and isinstance(s["sha256"], str)
                         for s in entry["sources"]))
    except (KeyError, TypeError):
        valid = False
    if not valid:
        warnings.warn("mfgen: ignoring a damaged entry in the cache index "
                      f"({cache.root / 'index'}); regenerating it.", stacklevel=3)
        return None
    return {**entry, "module_dir": str(cache.module_dir(key))}


# How many builds this process has forked. From the second on, the generator (SymPy, Jinja,
# YAML: 0.4 s CPU to import) is imported here first, so the forks inherit it instead of each
# importing it again (`mfgen build --all`, scripts that build several specs). A process that
# builds one spec, or only loads cached models, never imports it.
_forked_builds = 0


def _import_generator_once_shared() -> None:
    global _forked_builds
    _forked_builds += 1
    if _forked_builds > 1:
        import mfgen.codegen.ir
        import mfgen.codegen.optimize
        import mfgen.codegen.render
        import mfgen.codegen.spec  # noqa: F401


def build(spec: str | Path, *, force: bool = False, emit_c: str | Path | None = None,
          cache: Cache | None = None, budget: BuildBudget | None = None) -> BuildResult:
    """Build a spec into the cache (compiling only if its generated code is new).

    The build runs under `budget` (default: `BuildBudget.from_environment()`): a spec that
    makes SymPy or the compiler exceed it ends in BudgetExceeded, its processes killed.
    """
    from mfgen.codegen.locate import resolve_spec_path

    cache = cache or _default_cache()
    toolchain = detect_toolchain()
    path = resolve_spec_path(spec)
    spec_key = _spec_key(path, toolchain)  # refuses a non-file or oversized spec unread
    if not force and emit_c is None:
        entry = _valid_entry(cache.read_index(spec_key), cache)
        if entry and _sources_unchanged(entry) and module_problem(
                Path(entry["module_dir"]), entry["module_name"], (REFERENCE_FILE,)) is None:
            return BuildResult(path, entry, compiled=False, from_index=True)
    problem = cache.write_problem()
    if problem is not None:
        if problem.errno in DISK_FULL:
            raise disk_full_error(cache.root, problem.strerror)
        cache = fallback_cache(cache.root, problem.strerror or str(problem))
    budget = budget or BuildBudget.from_environment()
    _import_generator_once_shared()
    return run_within_budget(
        lambda: _generate_and_compile(path, spec_key, toolchain, cache, force, emit_c),
        budget, what=str(path))


def _generate_and_compile(path: Path, spec_key: str, toolchain: Toolchain, cache: Cache,
                          force: bool, emit_c: str | Path | None) -> BuildResult:
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.optimize import optimize
    from mfgen.codegen.render import render
    from mfgen.codegen.spec import load_spec

    timings: dict[str, float] = {}
    start = time.perf_counter()
    stage("parse")
    spec = load_spec(path)
    timings["parse"] = time.perf_counter() - start
    mark = time.perf_counter()
    stage("ir (inlining and derivatives)")
    ir = build_ir(spec)
    timings["ir"] = time.perf_counter() - mark
    mark = time.perf_counter()
    stage("optimize (common subexpressions)")
    kernel = optimize(ir)
    timings["optimize"] = time.perf_counter() - mark
    mark = time.perf_counter()
    stage("render")
    source = render(ir, kernel)
    check_generated_size(str(path), source.c_source, source.reference_source,
                         ir.canonical_text())
    timings["render"] = time.perf_counter() - mark

    if emit_c is not None:
        out = Path(emit_c)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{ir.name}.c").write_text(source.c_source)
        (out / f"{ir.name}_reference.py").write_text(source.reference_source)

    module_key = digest("module", MODEL_MODULE_FORMAT, generator_identity(),
                        toolchain.identity(), ir.canonical_text(), source.c_source,
                        source.reference_source)
    module_name = f"_mfgen_{module_key[:32]}"
    mark = time.perf_counter()
    stage("compile")
    try:
        compiled = _compile_into_cache(cache, module_key, module_name, source, ir, toolchain,
                                       force)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(cache.root, exc.strerror) from None
        raise
    except CompileError as exc:
        if any(text in str(exc) for text in ("No space left on device",
                                             "Disk quota exceeded", "File too large")):
            raise disk_full_error(cache.root, "the compiler could not write its output") \
                from None
        raise
    timings["compile"] = time.perf_counter() - mark

    metadata = _metadata(ir, kernel.stats, module_key, source.manifest)
    entry = {
        "mfgen_version": __version__,
        "sources": metadata["sources"],
        "extends": [list(r) for r in ir.resolutions],
        "module_key": module_key,
        "module_name": module_name,
        "module_dir": str(cache.module_dir(module_key)),
        "model": metadata,
    }
    try:
        cache.write_index(spec_key, entry)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(cache.root, exc.strerror) from None
        raise
    return BuildResult(path, entry, compiled=compiled, from_index=False, timings=timings)


def _compile_into_cache(cache: Cache, module_key: str, module_name: str, source: Any, ir: Any,
                        toolchain: Toolchain, force: bool) -> bool:
    """Compile a model's module unless an intact copy is published; True if this call
    compiled."""
    files = {KERNEL_FILE: source.c_source, REFERENCE_FILE: source.reference_source,
             "ir.txt": ir.canonical_text()}
    return _publish_module(cache, module_key, module_name, files, (REFERENCE_FILE,), force,
                           lambda staged: compile_library(module_name, staged / KERNEL_FILE,
                                                          staged, toolchain))


def _publish_module(cache: Cache, module_key: str, module_name: str, files: dict[str, str],
                    required: tuple[str, ...], force: bool, compile: Callable[[Path], Path]
                    ) -> bool:
    """Compile a module (`compile(staging_dir)` -> its .so) unless an intact copy is
    published; True if this call compiled.

    Under the key's lock, in a private staging directory, published by one atomic rename
    together with the module's checksum: no reader ever sees a partial module.
    """
    with cache.lock(module_key):
        module_dir = cache.module_dir(module_key)
        if force and module_dir.exists():
            cache.discard(module_key)
        problem = module_problem(module_dir, module_name, required)
        if problem is None:
            return False
        if module_dir.exists():
            warnings.warn(f"mfgen: the cached module in {module_dir} is damaged ({problem}); "
                          "rebuilding it.", stacklevel=4)
            cache.discard(module_key)
        with cache.staging() as staged:
            for name, text in files.items():
                (staged / name).write_text(text)
            so_path = compile(staged)
            cache.write_checksum(staged, so_path)
            cache.publish(staged, module_key)
        return True


def simulator_key(toolchain: Toolchain, target: Target) -> str:
    """The simulator depends only on the generator, the toolchain and the target."""
    return digest("simulator", generator_identity(), toolchain.identity(), target.identity())


def load_simulator(cache: Cache | None = None) -> ModuleType:
    """The whole-network simulator module, compiled once per toolchain, target and generator
    version (and cached like a model's module); every model's simulation runs in it. The
    target is OpenMP where the compiler has it, else C ($MFGEN_TARGET chooses)."""
    from mfgen.codegen.targets import select_target

    toolchain = detect_toolchain()
    target = select_target(openmp_available=has_openmp(toolchain))
    # the target's flags and libraries join the toolchain's (and so the key)
    toolchain = dataclasses.replace(toolchain, flags=toolchain.flags + target.flags,
                                    libraries=target.libraries + toolchain.libraries)
    key = simulator_key(toolchain, target)
    module_name = f"_mfgen_simulator_{key[:32]}"

    def compile(staged: Path) -> Path:
        from mfgen.codegen.render import render_simulator

        source = render_simulator(target)
        (staged / SIMULATOR_FILE).write_text(source.c_source)
        return compile_module(module_name, source.c_source, source.c_declarations, staged,
                              toolchain)
    return _load_shared_module(key, module_name, compile, cache)


def load_dfun_call(cache: Cache | None = None) -> ModuleType:
    """The C shim that checks and calls a model's dfun kernel for `CompiledModel.dfun`
    (templates/dfun_call.c), compiled once per toolchain, NumPy version and generator."""
    import numpy

    toolchain = detect_toolchain()
    key = digest("dfun_call", generator_identity(), toolchain.identity(), numpy.__version__)
    module_name = f"_mfgen_dfun_call_{key[:32]}"

    def compile(staged: Path) -> Path:
        source = resources.files("mfgen.templates") / DFUN_CALL_FILE  # package data
        return compile_extension(module_name, source.read_text(), staged, toolchain,
                                 (f"-I{numpy.get_include()}",))
    return _load_shared_module(key, module_name, compile, cache)


def _load_shared_module(key: str, module_name: str, compile: Callable[[Path], Path],
                        cache: Cache | None) -> ModuleType:
    """Import a model-independent module from the cache, compiling it there first if needed."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    cache = cache or _default_cache()
    if module_problem(cache.module_dir(key), module_name) is not None:
        problem = cache.write_problem()
        if problem is not None:
            if problem.errno in DISK_FULL:
                raise disk_full_error(cache.root, problem.strerror)
            cache = fallback_cache(cache.root, problem.strerror or str(problem))
        _publish_module(cache, key, module_name, {}, (), False, compile)
    module_dir = cache.module_dir(key)
    so_path = module_file(module_dir)
    problem = module_problem(module_dir, module_name)
    if problem is not None or so_path is None:  # checked again right before the import
        raise ImportError(f"the module in {module_dir}: "
                          f"{problem or 'compiled module missing'}")
    return _import_file(module_name, so_path)


def _metadata(ir: Any, stats: dict[str, Any], module_key: str, manifest: dict[str, Any]
              ) -> dict[str, Any]:
    return {
        # What the module exports (integrators, coupling functions in C-kind order, monitor
        # kinds), as render() described it: the runtime reads this and restates nothing.
        "manifest": manifest,
        "name": ir.name,
        # The spec files (the model and every parent) and the digests of the bytes that were
        # parsed: a run names its spec, and a file edited during the build is seen as changed.
        "sources": [{"path": str(p), "sha256": h} for p, h in zip(ir.sources, ir.source_sha256)],
        "description": ir.description,
        "references": ir.references,
        "module_key": module_key,
        "ir_digest": ir.digest(),
        "stats": stats,
        # The records of codegen/records.py as JSON; states and coupling inputs as the spec
        # declares them (per mode with `modes`: the runtime shows TVB's layout).
        "parameters": [p.to_json() for p in ir.parameters],
        "modes": ir.modes,
        "states": [s.to_json() for s in ir.declared_states],
        "coupling": [{"name": c.name, "state": c.state, "state_index": c.state_index}
                     for c in ir.declared_coupling],
    }


def _import_file(module_name: str, path: Path) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def _load_library(module_name: str, path: Path) -> ctypes.CDLL:
    """A model's kernels (a plain shared library), loaded once per process."""
    if module_name not in _libraries:
        _libraries[module_name] = ctypes.CDLL(str(path))
    return _libraries[module_name]


_libraries: dict[str, ctypes.CDLL] = {}


def _import_verified(module_name: str, module_dir: Path, filename: str) -> ModuleType:
    """Import generated Python from the cache: the bytes executed are the bytes verified."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    source = read_verified(module_dir, filename)
    module = ModuleType(module_name)
    module.__file__ = str(module_dir / filename)
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    sys.modules[module_name] = module
    return module


def load(spec: str | Path, *, backend: str = "c", budget: BuildBudget | None = None
         ) -> ModelBase:
    """Load a model by bundled name or spec path, building it first if needed.

    backend='c' (default) returns a CompiledModel; backend='numpy' returns the spec's NumPy
    reference without compiling anything (for machines without a C compiler).
    """
    if backend == "numpy":
        return _reference_without_compiler(spec, budget)
    if backend != "c":
        raise ValueError(f"backend must be 'c' or 'numpy', got {backend!r}")
    cache = _default_cache()
    result = build(spec, cache=cache, budget=budget)
    entry = result.entry
    module_dir = Path(entry["module_dir"])
    try:
        return _load_entry(entry, module_dir)
    except (ImportError, OSError, AttributeError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"mfgen: the cached module for '{entry['model']['name']}' in "
                      f"{module_dir} is damaged ({exc}); rebuilding it.", stacklevel=2)
        result = build(spec, cache=cache, force=True, budget=budget)
        return _load_entry(result.entry, Path(result.entry["module_dir"]))


def _load_entry(entry: dict[str, Any], module_dir: Path) -> CompiledModel:
    problem = module_problem(module_dir, entry["module_name"], (REFERENCE_FILE,))
    so_path = module_file(module_dir)
    if problem is not None or so_path is None:  # checked again right before the import
        raise ImportError(problem or "compiled module missing")
    module = _load_library(entry["module_name"], so_path)

    def reference() -> ReferenceModel:  # imported on first use (SciPy costs ~0.1 s)
        generated = _import_verified(entry["module_name"] + "_reference", module_dir,
                                     REFERENCE_FILE)
        return reference_model(entry["model"], generated.dfun)

    cache_root_dir = module_dir.parent.parent

    def simulator() -> ModuleType:  # built or loaded on the first simulation
        return load_simulator(Cache(cache_root_dir))

    def dfun_call() -> ModuleType:  # built or loaded on the first dfun call
        return load_dfun_call(Cache(cache_root_dir))

    return compiled_model(entry["model"], module, reference, simulator, dfun_call)


def _generate_reference(spec: str | Path) -> tuple[str, str, str, dict[str, Any]]:
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.optimize import optimize
    from mfgen.codegen.render import render
    from mfgen.codegen.spec import load_spec

    stage("parse")
    spec_model = load_spec(spec)
    stage("ir (inlining and derivatives)")
    ir = build_ir(spec_model)
    stage("optimize (common subexpressions)")
    kernel = optimize(ir)
    stage("render")
    source = render(ir, kernel)
    check_generated_size(str(spec), source.reference_source, ir.canonical_text())
    return (ir.name, ir.digest(), source.reference_source,
            _metadata(ir, kernel.stats, "", source.manifest))


def _reference_without_compiler(spec: str | Path, budget: BuildBudget | None = None
                                ) -> ReferenceModel:
    # SymPy runs under the build budget here too; only the generated text comes back.
    name, ir_digest, reference_source, metadata = run_within_budget(
        lambda: _generate_reference(spec), budget or BuildBudget.from_environment(),
        what=str(spec))
    namespace: dict[str, Any] = {}
    module_name = f"_mfgen_numpy_{ir_digest[:32]}"
    module = ModuleType(module_name)
    # Our own generated source (printed from the validated IR), not spec text.
    code = compile(reference_source, f"<mfgen reference {name}>", "exec")
    exec(code, module.__dict__)  # noqa: S102
    namespace.update(module.__dict__)
    return reference_model(metadata, namespace["dfun"])


__all__ = ["BuildResult", "CompileError", "MfgenError", "build", "load"]
