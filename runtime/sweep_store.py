"""One HDF5 file per sweep, written by the client as points finish, so a sweep can resume.

Layout (every array has one row per point, in design order):
    attrs["definition"]   JSON: model, network, base run, duration, design, measures
    attrs["digest"]       SHA-256 of the definition: a resume must match it exactly
    attrs["sessions"]     how many runs have written into the file
    points/<label>        the swept values
    status                0 pending, 1 done, 2 failed
    reason                why a point failed ('' otherwise)
    session               the run (1, 2, ...) that computed the point; 0 while pending
    wall_time             seconds the point took on its worker
    measures/<name>       one number per point (NaN while pending or failed)
    traces/<monitor var>  (point, time, region), only with measures.traces
Within a write the measures go first and the status last, and the file is flushed after each
batch: a point counts as saved only once its status says so.
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


@dataclass
class PointResult:
    """The outcome of one point: its measures, or why it failed."""

    index: int
    ok: bool
    measures: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    traces: dict[str, np.ndarray] | None = None  # variable -> (time, region)
    wall_time: float = 0.0


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
                    f.create_dataset(f"points/{label}",
                                     data=np.array([p[label] for p in points], dtype=np.float64))
                f.create_dataset("status", data=np.zeros(n, np.int8))
                f.create_dataset("reason", shape=(n,), dtype=h5py.string_dtype())
                f.create_dataset("session", data=np.zeros(n, np.int32))
                f.create_dataset("wall_time", data=np.full(n, np.nan))
                for name in measure_names:
                    f.create_dataset(f"measures/{name}", data=np.full(n, np.nan))
                if trace_shape is not None:
                    for variable in trace_variables:
                        f.create_dataset(f"traces/{variable}", shape=(n, *trace_shape),
                                         dtype=np.float64, fillvalue=np.nan,
                                         chunks=(1, *trace_shape))
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
        for result in results:
            i = result.index
            for name, value in result.measures.items():
                f[f"measures/{name}"][i] = value
            if result.traces is not None and "traces" in f:
                for variable, trace in result.traces.items():
                    f[f"traces/{variable}"][i] = trace
            f["reason"][i] = result.reason
            f["wall_time"][i] = result.wall_time
            f["session"][i] = self.session
        for result in results:
            status = DONE if result.ok else FAILED
            f["status"][result.index] = status
            self._status[result.index] = status
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
