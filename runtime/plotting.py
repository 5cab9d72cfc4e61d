"""One figure per monitor: time series, region x time raster, power spectrum (matplotlib)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.errors import MfgenError

PANEL_LABELS = ("time series", "raster", "power spectrum")
FIGURE_SIZE = (12.0, 8.0)  # inches
DPI = 100


def _pyplot() -> Any:
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def _display(values: np.ndarray, unit: str) -> tuple[np.ndarray, str]:
    # Mean-field rates are computed in kHz; people read them in Hz.
    if unit == "kHz":
        return values * 1e3, "Hz"
    return values, unit


def _one_mode(monitor: Any, mode: int | str | None) -> tuple[Any, str]:
    """A monitor of a model with modes (data (time, variable, region, mode)) reduced to one
    trace per region: mode `mode` (default 0) or "sum" over the modes; and the words saying
    which, for the figure. Other monitors pass through."""
    if monitor.data.ndim != 4:
        if mode not in (None, 0, "0"):
            raise MfgenError(f"monitor '{monitor.label}' has no modes; plot it without a mode")
        return monitor, ""
    modes = monitor.data.shape[3]
    if mode == "sum":
        data, words = monitor.data.sum(axis=3), f"sum over the {modes} modes"
    else:
        text = "0" if mode is None else str(mode)
        if not text.isdigit() or int(text) >= modes:
            raise MfgenError(f"mode {mode!r} does not exist: the model has {modes} modes; "
                             f"give a number from 0 to {modes - 1}, or 'sum'")
        index = int(text)
        data, words = monitor.data[..., index], f"mode {index} of {modes}"
    return dataclasses.replace(monitor, data=data), words


def plot_monitor(monitor: Any, region_labels: Sequence[str], *, title: str = "",
                 variables: Sequence[str] | None = None, transient: float = 0.0,
                 mode: int | str | None = None) -> Any:
    """Figure of one monitor (`MonitorData`): the first of `variables` (default: the first
    recorded) drives the raster and the spectrum; every listed variable gets its mean over
    regions in the time-series panel, the first also each region's trace. With modes: mode
    `mode` (default 0) or "sum" over the modes, said in the title."""
    plt = _pyplot()
    monitor, mode_words = _one_mode(monitor, mode)
    if mode_words:
        title = f"{title} ({mode_words})" if title else mode_words
    chosen = list(variables) if variables else [monitor.variables[0]]
    for name in chosen:
        if name not in monitor.variables:
            raise MfgenError(f"variable '{name}' was not recorded by monitor '{monitor.label}'"
                             f" (it has {', '.join(monitor.variables)})")
    keep = monitor.times >= transient
    times = monitor.times[keep]
    if times.size < 2:
        raise MfgenError(f"monitor '{monitor.label}' has {times.size} samples after "
                         f"{transient:g} ms; nothing to plot")
    units = dict(zip(monitor.variables, monitor.units))
    figure = plt.figure(figsize=FIGURE_SIZE, dpi=DPI)
    grid = figure.add_gridspec(2, 2, width_ratios=(2.4, 1.0), height_ratios=(1.0, 1.0),
                               hspace=0.3, wspace=0.25)
    series = figure.add_subplot(grid[0, 0])
    raster = figure.add_subplot(grid[1, 0], sharex=series)
    spectrum = figure.add_subplot(grid[:, 1])
    for axes, label in zip((series, raster, spectrum), PANEL_LABELS):
        axes.set_label(label)

    first = chosen[0]
    values, unit = _display(monitor[first][keep], units.get(first, ""))
    series.plot(times, values, color="0.75", linewidth=0.4)
    for index, name in enumerate(chosen):
        trace, name_unit = _display(monitor[name][keep], units.get(name, ""))
        axis = series if index == 0 else series.twinx() if index == 1 else None
        if axis is None:
            continue  # two scales at most in one panel
        axis.plot(times, trace.mean(axis=1), color=f"C{3 + index}", linewidth=1.4,
                  label=f"mean {name}")
        axis.set_ylabel(f"{name} ({name_unit})" if name_unit else name, color=f"C{3 + index}")
    series.set_title(f"{first}: each of {values.shape[1]} regions (grey) and their mean")
    series.tick_params(labelbottom=False)

    low, high = np.percentile(values, [0.5, 99.5])  # a transient spike does not wash it out
    image = raster.imshow(values.T, aspect="auto", origin="lower", cmap="viridis",
                          interpolation="nearest", vmin=low, vmax=max(high, low + 1e-300),
                          extent=(times[0], times[-1], -0.5, values.shape[1] - 0.5))
    raster.set_xlabel("time (ms)")
    raster.set_ylabel("region")
    raster.set_title(f"{first}, region x time")
    colorbar = figure.colorbar(image, ax=raster, pad=0.01, fraction=0.04)
    colorbar.set_label(f"{first} ({unit})" if unit else first)
    colorbar.ax.set_label("colorbar")

    step = float(np.median(np.diff(times)))  # ms
    frequencies, power = _spectrum(values, 1000.0 / step)
    spectrum.loglog(frequencies[1:], power[:, 1:].T, color="0.8", linewidth=0.4)
    spectrum.loglog(frequencies[1:], power[:, 1:].mean(axis=0), color="C3", linewidth=1.6,
                    label="mean over regions")
    peak = 1 + int(np.argmax(power[:, 1:].mean(axis=0)))
    spectrum.axvline(frequencies[peak], color="C0", linestyle=":", linewidth=1)
    spectrum.set_title(f"power spectrum of {first} (peak {frequencies[peak]:.3g} Hz)")
    spectrum.set_xlabel("frequency (Hz)")
    spectrum.set_ylabel(f"power ({unit}$^2$/Hz)" if unit else "power (1/Hz)")
    spectrum.legend(loc="lower left", fontsize=8)
    if title:
        figure.suptitle(title + (f" (first {transient:g} ms skipped)" if transient else ""),
                        fontsize=11)
    return figure


def _spectrum(values: np.ndarray, sampling_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density per region (segments of ~1/4 of the trace)."""
    from scipy.signal import welch

    segment = max(8, min(values.shape[0], 2 ** int(np.log2(max(values.shape[0] // 4, 8)))))
    frequencies, power = welch(values, fs=sampling_hz, nperseg=segment, axis=0,
                               detrend="constant")
    return frequencies, np.maximum(power.T, 1e-300)  # (region, frequency); log-safe


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write a PNG to `path`, created exclusively (the caller removed an old file with its
    consent): a symlink planted at `path` is never followed."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags, 0o644)
    except FileExistsError:
        raise MfgenError(f"{path} exists; pass --force to replace it") from None
    except OSError as exc:
        raise MfgenError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        figure.savefig(handle, format="png", dpi=DPI)
    _pyplot().close(figure)
    return path
