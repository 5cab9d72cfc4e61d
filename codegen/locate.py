"""Finding spec files: bundled names, paths, and parents named in `extends`.

Kept free of SymPy and YAML so that loading a cached model (`mfgen.load`) stays fast.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mfgen.errors import SpecError, did_you_mean

__all__ = ["bundled_spec_dir", "bundled_spec_names", "resolve_spec_path"]


def bundled_spec_dir() -> Path:
    return Path(str(resources.files("mfgen.specs")))


def bundled_spec_names() -> list[str]:
    """Names of the buildable specs shipped with mfgen (libraries under lib/ excluded)."""
    return sorted(p.stem for p in bundled_spec_dir().glob("*.yaml"))


def resolve_spec_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A spec path from a file path, a path relative to another spec, or a bundled name."""
    text = str(name_or_path)
    candidates: list[Path] = []
    if relative_to is not None:
        candidates += [relative_to.parent / text, relative_to.parent / f"{text}.yaml",
                       relative_to.parent / "lib" / f"{text}.yaml"]
    candidates += [Path(text)]
    if "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml")):
        candidates += [bundled_spec_dir() / f"{text}.yaml", bundled_spec_dir() / "lib" /
                       f"{text}.yaml"]
    for candidate in candidates:
        if _is_file(candidate):
            return candidate.resolve()
    known = bundled_spec_names()
    libraries = sorted(p.stem for p in (bundled_spec_dir() / "lib").glob("*.yaml"))
    nearby = []
    if relative_to is not None:
        folders = (relative_to.parent, relative_to.parent / "lib")
        nearby = [p.stem for folder in folders for p in folder.glob("*.yaml")]
    hint = (did_you_mean(text, [*known, *libraries, *nearby])
            or f"bundled specs: {', '.join(known)}; libraries: {', '.join(libraries)}")
    raise SpecError(f"no spec file or bundled spec named '{text}'", None, hint)


def _is_file(path: Path) -> bool:
    """Path.is_file, but a name the OS refuses (too long, NUL, ...) is simply not a file."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
