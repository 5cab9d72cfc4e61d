"""One HDF5 file per sweep, written by the client as points finish, so a sweep can resume.

Layout (every array has one row per point, in design order):
    attrs["definition"]   JSON: model, network, base run, duration, design, measures
    attrs["digest"]       SHA-256 of the definition: a resume must match it exactly
    attrs["sessions"]     how many runs have written into the file
    points/<label>        the swept values
    status                0 pending, 1 done, 2 failed
    reason                why a point failed ('' otherwise; UTF-8, at most 400 bytes)
    session               the run (1, 2, ...) that computed the point; 0 while pending
    wall_time             seconds the point took on its worker
    measures/<name>       one number per point (NaN while pending or failed)
    traces/<monitor var>  (point, time, region), only with measures.traces
Every dataset is allocated when the file is created, so writing a point only overwrites bytes
in place. Within a write the values go first, then a flush, then the statuses and a flush: a
point counts as saved only once its status says so, and a client killed at any moment leaves a
file that opens and resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.runtime.sweep_design import SweepError

PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
REASON_BYTES = 400  # fixed size: a variable-length string would reallocate inside the file


@dataclass
class PointResult:
    """The outcome of one point: its measures, or why it failed."""

    index: int
    ok: bool
    measures: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    traces: dict[str, np.ndarray] | None = None  # variable -> (time, region)
    wall_time: float = 0.0


def _allocate(f: Any, name: str, shape: tuple[int, ...], dtype: Any, fill: Any) -> Any:
    """A contiguous dataset whose space is allocated (and filled) now: later writes only
    overwrite bytes in place and never change the file's structure, so a process killed
    mid-write cannot leave a file that no longer opens."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    return f.create_dataset(name, shape=shape, dtype=dtype, fillvalue=fill, dcpl=dcpl)


def _reason_bytes(reason: str) -> bytes:
    data = reason.encode("utf-8")[:REASON_BYTES]
    return data.decode("utf-8", errors="ignore").encode("utf-8")  # no half character


def definition_digest(definition: dict[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class SweepStore:
    """The HDF5 file of one sweep, open for writing (one writer: the sweep's client)."""

    def __init__(self, path: str | Path, definition: dict[str, Any],
                 points: Sequence[dict[str, float]], measure_names: Sequence[str],
                 trace_shape: tuple[int, int] | None = None,
                 trace_variables: Sequence[str] = ()):
        import h5py

        self.path = Path(path)
        digest = definition_digest(definition)
        n = len(points)
        if self.path.exists():
            try:
                self.file = h5py.File(self.path, "r+")
            except OSError as exc:
                raise SweepError(f"{self.path}: cannot open the sweep file to resume ({exc}); "
                                 "is another sweep writing it?") from None
            stored = self.file.attrs.get("digest")
            if stored != digest:
                old = json.loads(self.file.attrs.get("definition", "{}"))
                self.file.close()
                raise SweepError(
                    f"{self.path} holds a different sweep (differs in: "
                    f"{', '.join(_differences(old, definition)) or 'format'}); resume only with "
                    "the same definition, or give another store path")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(self.path.name + ".creating")
            with h5py.File(partial, "w") as f:
                f.attrs["definition"] = json.dumps(definition, sort_keys=True)
                f.attrs["digest"] = digest
                f.attrs["sessions"] = 0
                for label in points[0]:
                    _allocate(f, f"points/{label}", (n,), np.float64, np.nan)[...] = \
                        np.array([p[label] for p in points], dtype=np.float64)
                _allocate(f, "status", (n,), np.int8, PENDING)
                _allocate(f, "reason", (n,), f"S{REASON_BYTES}", b"")
                _allocate(f, "session", (n,), np.int32, 0)
                _allocate(f, "wall_time", (n,), np.float64, np.nan)
                for name in measure_names:
                    _allocate(f, f"measures/{name}", (n,), np.float64, np.nan)
                if trace_shape is not None:
                    for variable in trace_variables:
                        _allocate(f, f"traces/{variable}", (n, *trace_shape), np.float64,
                                  np.nan)
            partial.replace(self.path)  # a half-created file is never taken for a sweep
            self.file = h5py.File(self.path, "r+")
        self.session = int(self.file.attrs["sessions"]) + 1
        self.file.attrs["sessions"] = self.session
        self.file.flush()
        self._status = self.file["status"][...]

    def pending(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self._status == PENDING)]

    @property
    def n_saved(self) -> int:
        return int(np.count_nonzero(self._status != PENDING))

    def write(self, results: Sequence[PointResult]) -> None:
        """Save finished points (measures first, status last), then flush."""
        f = self.file
        results = sorted(results, key=lambda r: r.index)  # h5py writes increasing indices
        if not results:
            return
        rows = [r.index for r in results]
        for name in f["measures"]:
            f[f"measures/{name}"][rows] = [r.measures.get(name, np.nan) for r in results]
        for result in results:
            if result.traces is not None and "traces" in f:
                for variable, trace in result.traces.items():
                    f[f"traces/{variable}"][result.index] = trace
        f["reason"][rows] = np.array([_reason_bytes(r.reason) for r in results],
                                     dtype=f"S{REASON_BYTES}")
        f["wall_time"][rows] = [r.wall_time for r in results]
        f["session"][rows] = np.full(len(rows), self.session, np.int32)
        f.flush()  # the values are on disk before any status says they are there
        status = np.array([DONE if r.ok else FAILED for r in results], np.int8)
        f["status"][rows] = status
        self._status[rows] = status
        f.flush()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_store(path: str | Path) -> dict[str, Any]:
    """Everything in a sweep file, as NumPy arrays and the parsed definition."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SweepError(f"{path}: not a readable sweep file ({exc})") from None
    with f:
        if "definition" not in f.attrs:
            raise SweepError(f"{path}: not an mfgen sweep file (no definition)")
        return {
            "definition": json.loads(f.attrs["definition"]),
            "sessions": int(f.attrs["sessions"]),
            "points": {k: f[f"points/{k}"][...] for k in f["points"]},
            "status": f["status"][...],
            "reason": np.array([r.decode() if isinstance(r, bytes) else str(r)
                                for r in f["reason"][...]]),
            "session": f["session"][...],
            "wall_time": f["wall_time"][...],
            "measures": {k: f[f"measures/{k}"][...] for k in f.get("measures", {})},
            "traces": {k: f[f"traces/{k}"][...] for k in f.get("traces", {})},
        }
