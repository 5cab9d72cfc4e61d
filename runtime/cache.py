"""The one place that owns mfgen's compile cache.

Layout under the cache root ($MFGEN_CACHE_DIR, else $XDG_CACHE_HOME/mfgen, else ~/.cache/mfgen):

    modules/<module key>/   compiled module, its C source, the NumPy reference, the IR text
    index/<spec key>.json   spec files + digests -> module key and model metadata
    locks/<key>.lock        build locks (fcntl), so concurrent builds compile once
    tmp/                    builds in progress; renamed into modules/ atomically when complete

The module key hashes the canonical IR, the generated sources, the toolchain and mfgen's
version; parameter defaults are not part of it, so editing a default never recompiles.
The spec key hashes the spec files themselves, so an unchanged spec loads without SymPy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mfgen.errors import MfgenError


def cache_root() -> Path:
    explicit = os.environ.get("MFGEN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mfgen"


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


class Cache:
    def __init__(self, root: Path | None = None):
        self.root = root or cache_root()
        for sub in ("modules", "index", "locks", "tmp"):
            try:
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MfgenError(
                    f"cannot create the mfgen cache at {self.root}: {exc.strerror}.\n"
                    "  Set MFGEN_CACHE_DIR to a writable directory.") from None

    def module_dir(self, module_key: str) -> Path:
        return self.root / "modules" / module_key

    def index_path(self, spec_key: str) -> Path:
        return self.root / "index" / f"{spec_key}.json"

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive inter-process lock (held until the block ends)."""
        path = self.root / "locks" / f"{key}.lock"
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private directory on the cache's filesystem, removed unless moved away."""
        path = Path(tempfile.mkdtemp(prefix="build-", dir=self.root / "tmp"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, staged: Path, module_key: str) -> Path:
        """Move a finished build into place atomically (rename within one filesystem)."""
        final = self.module_dir(module_key)
        try:
            os.rename(staged, final)
        except OSError:
            if not final.exists():
                raise
            # Someone else published the same key first: theirs is identical; keep it.
        return final

    def read_index(self, spec_key: str) -> dict | None:
        try:
            return json.loads(self.index_path(spec_key).read_text())
        except (OSError, ValueError):
            return None

    def write_index(self, spec_key: str, entry: dict) -> None:
        path = self.index_path(spec_key)
        fd, tmp = tempfile.mkstemp(prefix=".index-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle, indent=1)
        os.replace(tmp, path)

    def discard(self, module_key: str) -> None:
        """Remove a damaged module directory (renamed first so no reader sees it half gone)."""
        final = self.module_dir(module_key)
        doomed = self.root / "tmp" / f"discard-{module_key}-{os.getpid()}"
        with contextlib.suppress(OSError):
            os.rename(final, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
