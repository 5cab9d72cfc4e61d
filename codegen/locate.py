"""Finding spec files: bundled names, paths, and parents named in `extends`.

Kept free of SymPy and YAML so that loading a cached model (`mfgen.load`) stays fast.
"""

from __future__ import annotations

import os
import stat
from importlib import resources
from pathlib import Path

from mfgen.errors import Location, SpecError, did_you_mean

__all__ = ["MAX_SPEC_BYTES", "bundled_spec_dir", "bundled_spec_names", "read_spec_bytes",
           "resolve_spec_path", "sources_current"]

MAX_SPEC_BYTES = 1_000_000  # the largest seed spec is ~10 kB; anything near this is not a model


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
        # A parent named by a spec is found from the spec's own folder, never from the
        # current directory (absolute paths stay absolute).
        candidates += [relative_to.parent / text, relative_to.parent / f"{text}.yaml",
                       relative_to.parent / "lib" / f"{text}.yaml"]
    else:
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
    """Whether something that is not a folder exists there (a FIFO or device is found, then
    refused by read_spec_bytes with a message that says what it is); a name the OS refuses
    (too long, NUL, ...) is simply not a file."""
    try:
        return path.exists() and not path.is_dir()
    except (OSError, ValueError):
        return False


def read_spec_bytes(path: Path) -> bytes:
    """A spec file's bytes: a regular file of at most MAX_SPEC_BYTES, else a SpecError.

    Opened without blocking (a FIFO would wait for a writer forever) and checked with fstat
    before anything is read (/dev/zero or a 3 GB file is never read whole).
    """
    where = Location(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(f"cannot read the spec: {reason}", where,
                        "check the file's name and permissions") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError("the spec is not a regular file", where,
                            "name a .yaml file (not a directory, device or pipe)")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(
                f"the file is {info.st_size} bytes; specs are limited to {MAX_SPEC_BYTES}", where,
                "a model spec is a few kilobytes; check that this is the file you meant")
        chunks = []
        size = 0
        while size <= MAX_SPEC_BYTES:
            chunk = os.read(fd, MAX_SPEC_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror}", where,
                        "check the file's name and permissions") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_SPEC_BYTES:  # grew after fstat
        raise SpecError(f"the file is over {MAX_SPEC_BYTES} bytes; specs are limited to "
                        f"{MAX_SPEC_BYTES}", where, "check that this is the file you meant")
    return data


def sources_current(sources: list[dict], resolutions: list[list[str]]) -> bool:
    """Whether the spec files a cached model was built from are still what it would read now:
    each file unchanged (SHA-256) and each `extends` name still resolving to the same file
    (a new base.yaml next to the spec changes what `extends: base` means)."""
    import hashlib

    for source in sources:
        try:
            data = read_spec_bytes(Path(source["path"]))
        except (SpecError, TypeError, KeyError):
            return False
        if hashlib.sha256(data).hexdigest() != source["sha256"]:
            return False
    try:
        for child, name, resolved in resolutions:
            if str(resolve_spec_path(name, relative_to=Path(child))) != resolved:
                return False
    except (SpecError, TypeError, ValueError):  # gone, or a damaged index entry
        return False
    return True
