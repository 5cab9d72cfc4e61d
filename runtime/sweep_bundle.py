"""Shipping a model to Dask workers as text: a spec and its parents, rebuilt on the worker.

Nothing but text travels: the worker writes the spec files into its cache folder (or reads a
bundled spec from its own mfgen after checking the hash), builds the model once per process
(or finds the compiled module in its cache) and checks that its IR digest is the client's.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from mfgen.runtime.model import CompiledModel
from mfgen.runtime.sweep_design import SweepError


@dataclass(frozen=True)
class SpecBundle:
    """A spec and its parents as text: what a worker needs to build the model itself.

    files: (relative path, text) of the specs in the main spec's folder or below;
    bundled: (path inside mfgen's bundled specs, sha256) of bundled parents, which workers read
    from their own mfgen after checking the hash."""

    main: str  # relative path of the main spec, or "bundled:<path>"
    files: tuple[tuple[str, str], ...]
    bundled: tuple[tuple[str, str], ...]
    ir_digest: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr((self.main, self.files, self.bundled)).encode()).hexdigest()


def spec_bundle(spec: str | Path) -> SpecBundle:
    """Read a spec (bundled name or path) and every file it extends into a SpecBundle."""
    from mfgen.codegen.locate import bundled_spec_dir
    from mfgen.runtime.loader import build

    result = build(spec)
    main_path = result.spec_path.resolve()
    bundled_dir = bundled_spec_dir().resolve()
    files, bundled = [], []
    main = ""
    for source in result.entry["sources"]:
        path = Path(source["path"]).resolve()
        if path.is_relative_to(bundled_dir):
            relative = path.relative_to(bundled_dir).as_posix()
            bundled.append((relative, source["sha256"]))
            if path == main_path:
                main = f"bundled:{relative}"
        elif path.is_relative_to(main_path.parent):
            relative = path.relative_to(main_path.parent).as_posix()
            files.append((relative, path.read_text(encoding="utf-8")))
            if path == main_path:
                main = relative
        else:  # the loader only allows parents beside or below the spec; be explicit anyway
            raise SweepError(f"{path}: a parent spec outside the folder of {main_path} cannot "
                             "be shipped to workers; move it beside the spec")
    return SpecBundle(main, tuple(sorted(files)), tuple(sorted(bundled)),
                      result.entry["model"]["ir_digest"])


_WORKER_MODELS: dict[str, CompiledModel] = {}
_WORKER_LOCK = threading.Lock()


def load_bundle(bundle: SpecBundle) -> CompiledModel:
    """The model of a SpecBundle, built (or found in the cache) once per process."""
    from mfgen.codegen.locate import bundled_spec_dir
    from mfgen.runtime.cache import cache_root
    from mfgen.runtime.loader import load

    with _WORKER_LOCK:
        if bundle.digest in _WORKER_MODELS:
            return _WORKER_MODELS[bundle.digest]
        bundled_dir = bundled_spec_dir()
        for relative, sha in bundle.bundled:
            local = bundled_dir / relative
            if not local.is_file() or hashlib.sha256(local.read_bytes()).hexdigest() != sha:
                raise SweepError(f"this worker's mfgen has a different bundled spec '{relative}'"
                                 " than the client's; install the same mfgen version on both")
        if bundle.main.startswith("bundled:"):
            path = bundled_dir / bundle.main.removeprefix("bundled:")
        else:
            folder = cache_root() / "sweep-specs" / bundle.digest[:32]
            for relative, text in bundle.files:
                target = (folder / relative).resolve()
                if ".." in Path(relative).parts or Path(relative).is_absolute() or \
                        not target.is_relative_to(folder.resolve()):
                    raise SweepError(f"spec bundle names a file outside its folder: {relative!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.is_file() or target.read_text(encoding="utf-8") != text:
                    staged = target.with_name(f".{target.name}.{os.getpid()}")
                    staged.write_text(text, encoding="utf-8")
                    staged.replace(target)
            path = folder / bundle.main
        model = load(path)
        if model.metadata.get("ir_digest") != bundle.ir_digest:
            raise SweepError(f"the worker built a different model from '{bundle.main}' (IR digest"
                             " differs); install the same mfgen version on client and workers")
        _WORKER_MODELS[bundle.digest] = model
        return model


def bundled_spec_of(model: CompiledModel) -> str:
    """The bundled spec of a loaded model, when it is one (remote workers need spec text)."""
    from mfgen.codegen.locate import bundled_spec_names

    if model.name in bundled_spec_names():
        bundle_model = spec_bundle(model.name)
        if bundle_model.ir_digest == model.metadata.get("ir_digest"):
            return model.name
    raise SweepError(f"model '{model.name}' was loaded from a spec file: pass the spec path "
                     "(or bundled name) as `model` so that Dask workers can build it")
