"""Heat-maps of sweep measures over two swept quantities (`mfgen plot SWEEP_FILE`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.runtime.sweep_design import SweepError


def plot_sweep(source: str | Path | Any, out: str | Path, *,
               measures: Sequence[str] | None = None, x: str | None = None,
               y: str | None = None, select: Mapping[str, float] | None = None) -> Path:
    """Draw one heat-map per measure over two swept quantities into `out` (PNG, PDF, SVG).

    source: a sweep file or the Dataset mfgen.sweep returned. x, y: the swept quantities on
    the axes (default: the first two). A grid with more quantities needs `select` (label ->
    value) for the others. Zip and random designs are drawn as coloured points. Failed and
    pending points are left blank (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mfgen.runtime.sweep import open_sweep

    ds = source if not isinstance(source, (str, Path)) else open_sweep(source)
    import json

    definition = json.loads(ds.attrs["definition"])
    labels = [q["label"] for q in definition["quantities"]]
    if len(labels) < 2:
        raise SweepError(f"a heat-map needs two swept quantities; this sweep has {labels}")
    logs = {q["label"]: q["log"] for q in definition["quantities"]}
    x = x or labels[0]
    y = y or next(label for label in labels if label != x)
    for axis in (x, y):
        if axis not in labels:
            raise SweepError(f"'{axis}' is not a swept quantity; swept: {', '.join(labels)}")
    names = list(measures or [n for n in ds.data_vars if n not in
                              ("status", "reason", "wall_time", "session")
                              and not n.startswith("trace_")])
    for name in names:
        if name not in ds.data_vars:
            raise SweepError(f"no measure '{name}' in the sweep; measures: "
                             f"{', '.join(n for n in ds.data_vars)}")
    grid = definition["design"] == "grid"
    if grid:
        others = [label for label in labels if label not in (x, y)]
        select = dict(select or {})
        missing = [label for label in others if label not in select]
        if missing:
            raise SweepError(f"the sweep also varies {', '.join(missing)}: choose a value for "
                             "each with select={label: value}")
        ds = ds.sel({label: select[label] for label in others}, method="nearest")
    ok = ds["status"] == "done"
    columns = min(len(names), 3)
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows),
                                squeeze=False)
    for axis, name in zip(axes.flat, names):
        values = ds[name].where(ok)
        if grid:
            image = values.transpose(y, x)
            mesh = axis.pcolormesh(_edges(ds[x].values), _edges(ds[y].values),
                                   np.ma.masked_invalid(image.values), shading="flat")
            axis.set_facecolor("0.85")
        else:
            mesh = axis.scatter(ds[x].values, ds[y].values, c=values.values, s=30)
        figure.colorbar(mesh, ax=axis)
        if logs.get(x):
            axis.set_xscale("log")
        if logs.get(y):
            axis.set_yscale("log")
        axis.set_xlabel(x)
        axis.set_ylabel(y)
        axis.set_title(name)
    for axis in list(axes.flat)[len(names):]:
        axis.set_visible(False)
    figure.suptitle(f"{ds.attrs.get('model', '')}: {int((~ok).sum())} of {ok.size} points "
                    "failed or pending" if (~ok).any() else ds.attrs.get("model", ""))
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def is_sweep_file(path: str | Path) -> bool:
    """Whether `path` is an mfgen sweep file (so `mfgen plot PATH` draws heat-maps)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "definition" in f.attrs and "status" in f
    except (OSError, ValueError):
        return False


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (geometric for a positive log-spaced axis)."""
    centres = np.asarray(centres, dtype=float)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    if (centres > 0).all() and np.allclose(np.diff(np.log(centres)),
                                           np.log(centres[1] / centres[0])) \
            and not np.allclose(np.diff(centres), centres[1] - centres[0]):
        logs = np.log(centres)
        middle = (logs[1:] + logs[:-1]) / 2
        return np.exp(np.concatenate([[2 * logs[0] - middle[0]], middle,
                                      [2 * logs[-1] - middle[-1]]]))
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])
