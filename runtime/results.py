"""HDF5 results: written chunk by chunk as a run goes, readable with plain h5py.

Layout (`h5dump -A results.h5` shows it all):

    /                      attributes: format, status (partial | complete | interrupted |
                           failed), steps_done, steps_total, model, spec texts and their hash,
                           the resolved run config (YAML), parameters, integrator, dt, seed,
                           connectivity source and digest, versions of mfgen, NumPy, h5py,
                           HDF5, Python, the C compiler and its flags
    /region_labels         (region,) text
    /monitors/<label>/data (time, variable, region) float64, or (time, variable, region,
                           mode) for a model with modes (root attribute n_modes > 1: TVB's
                           ReducedSet models; attribute dims names the axes); attributes
                           kind, period_ms, variables, units, dims
    /monitors/<label>/time (time,) ms
    /monitors/<label>/variables (variable,) text
    /connectivity/weights, tract_lengths   (small dense networks only)
    /checkpoint_a, _b      Simulation.checkpoint() after the last chunk (state, delay ring,
                           monitor accumulators; arrays as datasets, numbers as attributes)
                           and the sample counts it matches; attribute `checkpoint` names the
                           current copy, the other is rewritten next

After every chunk the samples, then the checkpoint (into the other copy, made current after a
flush) and `steps_done` are written and the file is flushed, so a run killed between flushes
(SIGKILL, a killed job) leaves a readable file marked `partial` holding every sample up to its
last chunk; `run_to_file(..., resume=True)` continues it and the result equals an uninterrupted
run bit for bit (the noise is keyed by the absolute step). HDF5 has no journal: a kill in the
milliseconds of a flush itself can still damage the file's structure (h5py then cannot open
it); it cannot make a resume silently wrong.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.errors import MfgenError
from mfgen.runtime.simulation import DeferredInterrupt

FORMAT = "mfgen-results"
FORMAT_VERSION = 1
CHECKPOINT_GROUPS = ("checkpoint_a", "checkpoint_b")
MAX_STORED_NETWORK = 1000  # dense weights up to this many regions travel with the results


class ResultsError(MfgenError):
    """A results file cannot be written, read or resumed."""


# -- reading ----------------------------------------------------------------------------------
@dataclass
class MonitorData:
    """One monitor's samples: data (time, variable, region), or (time, variable, region,
    mode) for a model with modes; times in ms."""

    label: str
    kind: str
    period: float | None
    times: np.ndarray
    data: np.ndarray
    variables: tuple[str, ...]
    units: tuple[str, ...]

    def __getitem__(self, variable: str) -> np.ndarray:
        """One variable's trace: (time, region), or (time, region, mode)."""
        if variable not in self.variables:
            raise KeyError(f"'{variable}' was not recorded by monitor '{self.label}'; it has "
                           f"{', '.join(self.variables)}")
        return self.data[:, self.variables.index(variable)]

    def __repr__(self) -> str:
        return (f"<monitor '{self.label}': {self.kind}"
                + (f" every {self.period:g} ms" if self.period else "")
                + f", {self.data.shape[0]} samples x {', '.join(self.variables)} x "
                  f"{_nodes_and_modes(self.data, 'regions')}>")


class Results:
    """A results file read back: `results["temporal_average"]["E"]` is (time, region)."""

    def __init__(self, path: Path, attrs: dict[str, Any], monitors: dict[str, MonitorData],
                 region_labels: list[str], final_state: np.ndarray | None):
        self.path = path
        self.attrs = attrs
        self.monitors = monitors
        self.region_labels = region_labels
        self.final_state = final_state

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", ""))

    @property
    def config(self) -> dict[str, Any]:
        """The resolved run config (the same mapping `mfgen run` reads)."""
        import yaml

        return yaml.safe_load(self.attrs.get("config_yaml", "")) or {}

    @property
    def dt(self) -> float:
        return float(self.attrs["dt"])

    @property
    def n_modes(self) -> int:
        """TVB's number_of_modes of the model (data carries a mode axis when it is not 1)."""
        return int(self.attrs.get("n_modes", 1))

    @property
    def duration(self) -> float:
        """Simulated time in the file (ms)."""
        return int(self.attrs["steps_done"]) * self.dt

    def __getitem__(self, label: str) -> MonitorData:
        if label not in self.monitors:
            raise KeyError(f"no monitor '{label}' in {self.path}; it has "
                           f"{', '.join(self.monitors)}")
        return self.monitors[label]

    def __repr__(self) -> str:
        total = int(self.attrs.get("steps_total", 0)) * self.dt
        parts = [f"{label}: {m.data.shape[0]} x ({', '.join(m.variables)}) x "
                 f"{_nodes_and_modes(m.data)}" for label, m in self.monitors.items()]
        return (f"<mfgen results {self.path.name}: {self.attrs.get('model', '?')}, "
                f"{len(self.region_labels)} regions, {self.duration:g} of {total:g} ms "
                f"({self.status}); " + "; ".join(parts) + ">")

    def to_xarray(self) -> Any:
        """An xarray.Dataset: one DataArray per monitor, dims (time_<label>, variable,
        region) (and `mode` for a model with modes), units and the run's provenance as
        attributes."""
        return monitors_to_xarray(self.monitors, self.region_labels, {
            k: v for k, v in self.attrs.items() if isinstance(v, (str, int, float))})

    def plot(self, path: str | Path | None = None, *, monitor: str | None = None,
             variables: Sequence[str] | None = None, transient: float = 0.0,
             mode: int | str | None = None) -> Any:
        """Time series (each region and the mean), region x time raster and power spectrum;
        returns the matplotlib Figure (written to `path` when given). With modes, `mode` is
        the mode plotted (default 0) or "sum" (the sum over modes); the figure says which."""
        from mfgen.runtime.plotting import plot_monitor

        chosen = self[monitor] if monitor else next(iter(self.monitors.values()))
        coupling = ", ".join(f"{k} = {v:g}" for k, v in
                             json.loads(self.attrs.get("coupling_parameters", "{}")).items())
        title = (f"{self.attrs.get('model', '')} on {len(self.region_labels)} regions "
                 f"({Path(str(self.attrs.get('connectivity_source', ''))).name}), monitor "
                 f"{chosen.label}\n{self.attrs.get('integrator', '')}, dt = {self.dt:g} ms, "
                 f"{self.attrs.get('coupling', '')} coupling {coupling}, seed "
                 f"{self.attrs.get('seed', '')}; {self.path.name}")
        figure = plot_monitor(chosen, self.region_labels, title=title, variables=variables,
                              transient=transient, mode=mode)
        if path is not None:
            from mfgen.runtime.plotting import save_figure

            save_figure(figure, path)
        return figure


def monitors_to_xarray(monitors: Mapping[str, MonitorData], region_labels: Sequence[str],
                       attrs: Mapping[str, Any]) -> Any:
    import xarray

    arrays = {}
    for label, monitor in monitors.items():
        time_dim = f"time_{label}"
        dims: tuple[str, ...] = (time_dim, "variable", "region")
        coords = {time_dim: monitor.times, "variable": list(monitor.variables),
                  "region": list(region_labels)}
        if monitor.data.ndim == 4:  # a model with modes: TVB's mode axis last
            dims += ("mode",)
            coords["mode"] = list(range(monitor.data.shape[3]))
        arrays[label] = xarray.DataArray(
            monitor.data, dims=dims, coords=coords,
            attrs={"kind": monitor.kind, "period_ms": monitor.period or 0.0,
                   "units": list(monitor.units), "time_unit": "ms"})
    return xarray.Dataset(arrays, attrs=dict(attrs))


def _monitors_of(result: Any) -> dict[str, MonitorData]:
    described = {m["label"]: m for m in result.config.get("monitors", [])}
    monitors = {}
    for label, monitor in result.monitors.items():
        meta = described.get(label, {})
        monitors[label] = MonitorData(label, meta.get("kind", ""), meta.get("period"),
                                      monitor.times, monitor.data, tuple(monitor.variables),
                                      ("",) * len(monitor.variables))
    return monitors


def _region_labels(result: Any) -> list[str]:
    n = next((m.data.shape[2] for m in result.monitors.values()), result.final_state.shape[1])
    return [f"r{i}" for i in range(n)]


def _nodes_and_modes(data: np.ndarray, nodes: str = "") -> str:
    """'76' (or '76 regions'), and ' x 3 modes' when data has a mode axis."""
    text = f"{data.shape[2]}" + (f" {nodes}" if nodes else "")
    return text + (f" x {data.shape[3]} modes" if data.ndim == 4 else "")


def describe_simulation_result(result: Any) -> str:
    """A SimulationResult in one line: model, steps, monitors and their shapes."""
    parts = [f"{label}: {m.data.shape[0]} x ({', '.join(m.variables)}) x "
             f"{_nodes_and_modes(m.data)}" for label, m in result.monitors.items()]
    dt = result.config.get("dt", 0.0)
    return (f"<SimulationResult {result.config.get('model', '?')}: {result.steps} steps = "
            f"{result.steps * dt:g} ms" + ("; interrupted" if result.interrupted else "")
            + "; " + "; ".join(parts) + ">")


def simulation_result_to_xarray(result: Any) -> Any:
    attrs = {k: v for k, v in result.config.items() if isinstance(v, (str, int, float))}
    return monitors_to_xarray(_monitors_of(result), _region_labels(result), attrs)


def plot_simulation_result(result: Any, path: str | Path | None = None, *,
                           monitor: str | None = None, variables: Sequence[str] | None = None,
                           transient: float = 0.0, mode: int | str | None = None) -> Any:
    from mfgen.runtime.plotting import plot_monitor, save_figure

    monitors = _monitors_of(result)
    chosen = monitors[monitor] if monitor else next(iter(monitors.values()))
    figure = plot_monitor(chosen, _region_labels(result), variables=variables,
                          transient=transient, mode=mode,
                          title=f"{result.config.get('model', '')}: {chosen.label}")
    if path is not None:
        save_figure(figure, path)
    return figure


def load_result(path: str | Path) -> Results:
    """Read a results file written by `mfgen run` (complete or partial)."""
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r", locking=False)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: not a readable HDF5 file ({exc})") from None
    with handle:
        attrs = {k: _plain(v) for k, v in handle.attrs.items()}
        if attrs.get("format") != FORMAT:
            raise ResultsError(f"{path}: not an mfgen results file (no format='{FORMAT}' "
                               "attribute)")
        if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise ResultsError(f"{path}: written by a newer mfgen (format "
                               f"{attrs['format_version']}); upgrade mfgen")
        labels = [_text(x) for x in handle["region_labels"][()]]
        monitors = {}
        order = [_text(x) for x in attrs.get("monitor_labels", [])]  # the run's order
        for label in order + sorted(set(handle["monitors"]) - set(order)):
            group = handle["monitors"][label]
            monitors[label] = MonitorData(
                label, _text(group.attrs["kind"]), float(group.attrs["period_ms"]) or None,
                group["time"][()], group["data"][()],
                tuple(_text(v) for v in group["variables"][()]),
                tuple(_text(u) for u in group.attrs["units"]))
        current = _text(handle.attrs.get("checkpoint", ""))
        final = handle[current]["state"][()] if current in handle else None
    return Results(path, attrs, monitors, labels, final)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    return value


# -- writing ----------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import h5py

    import mfgen
    from mfgen.runtime.toolchain import detect_toolchain

    versions = {"mfgen_version": mfgen.__version__, "numpy_version": np.__version__,
                "h5py_version": h5py.__version__, "hdf5_version": h5py.version.hdf5_version,
                "python_version": platform.python_version(), "platform": platform.platform()}
    try:
        toolchain = detect_toolchain()
        versions.update(compiler=toolchain.compiler, compiler_version=toolchain.version,
                        compiler_flags=" ".join(toolchain.flags))
    except (OSError, MfgenError) as exc:  # results of a cached model need no compiler
        versions.update(compiler="unavailable", compiler_version=str(exc), compiler_flags="")
    return versions


def spec_texts(spec: str) -> dict[str, str]:
    """The text of a spec file and of every parent it extends, by path (cached build)."""
    import mfgen

    return {s["path"]: Path(s["path"]).read_text() for s in mfgen.build(spec).entry["sources"]}


def provenance(config: Any, model: Any, connectivity: Any, simulation: Any, duration: float,
               spec_sources: Mapping[str, str]) -> dict[str, Any]:
    """Attributes that make a results file cite everything needed to reproduce it."""
    import yaml

    spec_hash = hashlib.sha256()
    for name, text in spec_sources.items():
        spec_hash.update(name.encode() + b"\0" + text.encode() + b"\0")
    sim_config = simulation.config()
    # the network's two digests (kept by it; a sparse one's of its CSR, never n^2 values)
    digests = connectivity.digests()
    network_sha256 = hashlib.sha256("".join(digests[k] for k in sorted(digests)).encode())
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": model.name,
        "n_modes": int(getattr(model, "n_modes", 1)),
        "spec": config.spec_reference(),
        "spec_sources": json.dumps(dict(spec_sources)),
        "spec_sha256": spec_hash.hexdigest(),
        "module_key": model.module_key,
        "config_yaml": yaml.safe_dump(config.mapping(), sort_keys=False),
        "config_source": config.source,
        "simulation_config": json.dumps(sim_config),
        "parameters": json.dumps(sim_config["parameters"]),
        "integrator": config.integrator, "dt": config.dt, "seed": config.seed,
        "duration_ms": duration,
        "steps_total": int(round(duration / config.dt)),
        "steps_done": 0,
        "coupling": config.coupling,
        "coupling_parameters": json.dumps(sim_config["coupling_parameters"]),
        "coupling_precision": config.coupling_precision,
        "local_coupling": config.local_coupling,
        "noise_nsig": json.dumps(sim_config["noise_nsig"]),
        "connectivity_source": connectivity.source,
        "connectivity_sha256": network_sha256.hexdigest(),
        "n_regions": connectivity.n_regions,
        "speed_mm_per_ms": connectivity.speed,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "status": "partial",
        **_versions(),
    }


def monitor_layout(simulation: Any) -> list[tuple[Any, tuple[str, ...], int]]:
    """(monitor, recorded variables, period in steps) per monitor, from public attributes."""
    layout = []
    for monitor in simulation.monitor_specs:
        variables = tuple(monitor.variables or simulation.model.state_variables)
        period = 1 if monitor.kind == "raw" else int(round(monitor.period / simulation.dt))
        layout.append((monitor, variables, period))
    return layout


class ResultsWriter:
    """Appends monitor samples and a checkpoint to an HDF5 file, flushing after each chunk."""

    def __init__(self, handle: Any, simulation: Any):
        self.handle = handle
        self.simulation = simulation
        self.labels = [spec.label for spec, _, _ in monitor_layout(simulation)]

    @classmethod
    def create(cls, path: Path, simulation: Any, connectivity: Any,
               attrs: Mapping[str, Any]) -> ResultsWriter:
        import h5py

        # "x": exclusive creation (O_EXCL), which never follows a symlink planted at `path`.
        try:
            handle = h5py.File(path, "x", locking=False)
        except FileExistsError:
            raise ResultsError(f"{path} exists; pass --force to replace it or --resume to "
                               "continue it") from None
        except OSError as exc:
            raise ResultsError(f"cannot create {path}: {exc}") from None
        for key, value in attrs.items():
            handle.attrs[key] = value
        text = h5py.string_dtype()
        handle.create_dataset("region_labels", data=np.array(connectivity.region_labels,
                                                             dtype=object), dtype=text)
        weights = connectivity.weights
        if not hasattr(weights, "toarray") and connectivity.n_regions <= MAX_STORED_NETWORK:
            group = handle.create_group("connectivity")
            group.create_dataset("weights", data=weights)
            group.create_dataset("tract_lengths", data=connectivity.tract_lengths)
            group.attrs["source"] = connectivity.source
            group.attrs["speed_mm_per_ms"] = connectivity.speed
            group.attrs["tract_lengths_unit"] = "mm"
        monitors = handle.create_group("monitors")
        handle.attrs["monitor_labels"] = [spec.label for spec, _, _ in monitor_layout(simulation)]
        model = simulation.model
        n = simulation.n_nodes
        # A model with modes stores TVB's mode axis last: (time, variable, region, mode).
        modes = int(getattr(model, "n_modes", 1))
        mode_axis = (modes,) if modes != 1 else ()
        for spec, variables, _period in monitor_layout(simulation):
            group = monitors.create_group(spec.label)
            row_bytes = 8 * len(variables) * n * modes
            rows = max(1, min(4096, (1 << 20) // max(row_bytes, 1)))  # ~1 MiB chunks
            group.create_dataset("data", shape=(0, len(variables), n, *mode_axis),
                                 maxshape=(None, len(variables), n, *mode_axis), dtype="f8",
                                 chunks=(rows, len(variables), n, *mode_axis))
            group.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8",
                                 chunks=(max(rows, 1024),))
            group.create_dataset("variables", data=np.array(variables, dtype=object),
                                 dtype=text)
            group.attrs["kind"] = spec.kind
            group.attrs["period_ms"] = spec.period or 0.0
            group.attrs["dims"] = "time,variable,region" + (",mode" if mode_axis else "")
            group.attrs["time_unit"] = "ms"
            group.attrs["units"] = [model.states[v].unit if v in model.states else ""
                                    for v in variables]  # observables have no unit
        checkpoint = simulation.checkpoint()
        for name in CHECKPOINT_GROUPS:  # two copies: one is always whole (see append)
            group = handle.create_group(name)
            _write_checkpoint(group, checkpoint, create=True)
            group.attrs["samples"] = [0] * len(monitor_layout(simulation))
        handle.attrs["checkpoint"] = CHECKPOINT_GROUPS[0]
        handle.flush()
        return cls(handle, simulation)

    @classmethod
    def resume(cls, path: Path, simulation: Any, attrs: Mapping[str, Any]) -> ResultsWriter:
        """Open a partial file of the same run and restore the simulation to its checkpoint."""
        import h5py

        try:
            handle = h5py.File(path, "r+", locking=False)
        except FileNotFoundError:
            raise ResultsError(f"{path}: nothing to resume (no such file)") from None
        except OSError as exc:
            raise ResultsError(f"{path}: cannot be resumed ({exc})") from None
        try:
            status = _text(handle.attrs.get("status", ""))
            if status == "complete":
                raise ResultsError(f"{path} is already complete; nothing to resume")
            for key in ("config_yaml", "spec_sha256", "module_key", "connectivity_sha256"):
                if _text(handle.attrs.get(key, "")) != str(attrs[key]):
                    raise ResultsError(
                        f"{path} was written by a different run ({key.replace('_', ' ')} "
                        "differs); resume with the same config, or start again with --force")
            group = handle[_text(handle.attrs["checkpoint"])]
            simulation.restore(_read_checkpoint(group))
            labels = [spec.label for spec, _, _ in monitor_layout(simulation)]
            if sorted(labels) != sorted(handle["monitors"]):
                raise ResultsError(f"{path} has other monitors than this run")
            for label, count in zip(labels, group.attrs["samples"]):  # the run's order
                # Samples of a chunk whose checkpoint was not written are recomputed.
                monitor = handle["monitors"][label]
                monitor["data"].resize(int(count), axis=0)
                monitor["time"].resize(int(count), axis=0)
            handle.attrs["status"] = "partial"
            handle.attrs["resumed_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            handle.flush()
        except BaseException:
            handle.close()
            raise
        return cls(handle, simulation)

    @property
    def counts(self) -> list[int]:
        return [int(c) for c in self._current().attrs["samples"]]

    def _current(self) -> Any:
        return self.handle[_text(self.handle.attrs["checkpoint"])]

    def append(self, new: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
        """Append one chunk: (times, data) per monitor, then the checkpoint; flush. Returns
        the checkpoint written."""
        counts = []
        for label, (times, data) in zip(self.labels, new):
            group = self.handle["monitors"][label]
            start = group["data"].shape[0]
            if len(times):
                group["data"].resize(start + len(times), axis=0)
                group["data"][start:] = data
                group["time"].resize(start + len(times), axis=0)
                group["time"][start:] = times
            counts.append(start + len(times))
        # The new checkpoint goes into the other copy, flushed, and only then becomes the
        # current one: a kill while it is written leaves the previous one whole (a state from
        # one step with the counter of another would resume silently wrong).
        checkpoint = self.simulation.checkpoint()
        current = _text(self.handle.attrs["checkpoint"])
        target = CHECKPOINT_GROUPS[1 - CHECKPOINT_GROUPS.index(current)]
        group = self.handle[target]
        _write_checkpoint(group, checkpoint, create=False)
        group.attrs["samples"] = counts
        self.handle.flush()
        self.handle.attrs["checkpoint"] = target
        self.handle.attrs["steps_done"] = checkpoint["step"]
        self.handle.flush()
        return checkpoint

    def finish(self, status: str, message: str = "", wall_time: float = 0.0) -> None:
        self.handle.attrs["status"] = status
        if message:
            self.handle.attrs["message"] = message
        self.handle.attrs["wall_time_s"] = wall_time
        self.handle.flush()
        self.handle.close()


def _write_checkpoint(group: Any, checkpoint: Mapping[str, Any], *, create: bool) -> None:
    """Arrays of Simulation.checkpoint() as datasets (rewritten in place), numbers as
    attributes: whatever the simulation needs, without this module knowing its layout."""
    for key, value in checkpoint.items():
        if isinstance(value, np.ndarray):
            if create:
                group.create_dataset(key, data=value)
            else:
                group[key][...] = value
        else:
            group.attrs[key] = value


def _read_checkpoint(group: Any) -> dict[str, Any]:
    checkpoint: dict[str, Any] = {key: group[key][()] for key in group}
    checkpoint.update({key: _plain(value) for key, value in group.attrs.items()
                       if key != "samples"})
    return checkpoint


def sample_times(kind: str, period_steps: int, first: int, count: int, dt: float
                 ) -> np.ndarray:
    """Times (ms) of samples number first+1 .. first+count of a monitor (TVB's convention:
    a temporal average is stamped at the middle of its window)."""
    steps = period_steps * np.arange(first + 1, first + count + 1)
    if kind == "temporal_average":
        return (steps - period_steps / 2.0) * dt
    return steps * dt


def run_to_file(config: Any, path: str | Path, *, resume: bool = False, force: bool = False,
                progress: Callable[[int, int], None] | None = None) -> Results:
    """Run `config` (a RunConfig), writing `path` as it goes; returns the results read back.

    A non-finite state stops the run: the file keeps what was computed, marked `failed`.
    Ctrl-C stops after the current chunk is discarded; the file is marked `interrupted` and
    `resume=True` continues it.
    """
    from mfgen.runtime.simulation import Simulation, SimulationError

    path = Path(path)
    model, connectivity, kwargs, duration = config.build()
    try:
        simulation = Simulation(model, connectivity, **kwargs)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ResultsError(f"{config.source}: {exc}") from None
    attrs = provenance(config, model, connectivity, simulation, duration,
                       spec_texts(config.spec_reference()))
    if resume:
        writer = ResultsWriter.resume(path, simulation, attrs)
    else:
        if force and (path.is_symlink() or path.exists()):
            if path.is_dir():
                raise ResultsError(f"{path} is a directory")
            path.unlink()  # the link itself, never its target
        writer = ResultsWriter.create(path, simulation, connectivity, attrs)
    total = int(attrs["steps_total"])
    chunk = max(1, int(round(config.chunk / config.dt)))
    layout = monitor_layout(simulation)
    started = time.perf_counter()
    status, message = "complete", ""
    # Ctrl-C stops after the chunk in progress is computed and written (a half-written
    # checkpoint would resume wrongly); a second Ctrl-C raises at once.
    stop = DeferredInterrupt()
    try:
        stop.__enter__()
        if progress is not None:
            progress(simulation.steps_done, total)
        before = simulation.result().monitors
        taken = [before[spec.label].data.shape[0] for spec, _, _ in layout]
        while simulation.steps_done < total:
            counts = writer.counts
            steps = min(chunk, total - simulation.steps_done)
            try:
                # One C call per chunk; Ctrl-C inside returns what was completed.
                result = simulation.run(steps * simulation.dt, chunk_steps=steps)
            except SimulationError as exc:
                result = exc.result
                status, message = "failed", str(exc).split("; the state before")[0]
            if result.interrupted:
                # The file keeps the last whole chunk; --resume computes this one again.
                status, message = "interrupted", "stopped by the user (Ctrl-C); continue " \
                                                 "with --resume"
                break
            new = []
            for index, (spec, _variables, period) in enumerate(layout):
                data = result.monitors[spec.label].data[taken[index]:]
                if counts[index] + len(data) != simulation.steps_done // period:
                    raise ResultsError(f"monitor '{spec.label}' lost samples at step "
                                       f"{simulation.steps_done}; the file keeps the last "
                                       "whole chunk (resume it)")
                new.append((sample_times(spec.kind, period, counts[index], len(data),
                                         simulation.dt), data))
            checkpoint = writer.append(new)
            # Samples on disk need not stay in memory: restoring the checkpoint just written
            # drops them (same state, same numbering), so memory stays one chunk long.
            simulation.restore(checkpoint)
            taken = [0] * len(layout)
            if progress is not None:
                progress(simulation.steps_done, total)
            if stop.requested and status == "complete" and simulation.steps_done < total:
                status, message = "interrupted", "stopped by the user (Ctrl-C); continue " \
                                                 "with --resume"
            if status != "complete":
                break
    except KeyboardInterrupt:
        status = "interrupted"
        message = "stopped by the user (Ctrl-C); continue with --resume"
    except BaseException:
        writer.handle.close()
        raise
    finally:
        stop.__exit__()
    writer.finish(status, message, time.perf_counter() - started)
    if status == "failed":
        raise ResultsError(f"the run stopped: {message}; {path} holds the samples up to it "
                           "(status 'failed')")
    if status == "interrupted":
        raise KeyboardInterrupt
    return load_result(path)

