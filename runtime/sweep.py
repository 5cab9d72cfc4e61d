"""Parameter sweeps: many runs of one model on one network, measured, saved, resumable.

    ds = mfgen.sweep("tvb_adex_first_order", mfgen.Connectivity.tvb_default(),
                     base={"integrator": "heun_stochastic", "noise": {"noise": 1.0}},
                     duration=1000.0, sweep={"b_e": {"start": 0, "stop": 120, "num": 20},
                                             "coupling.a": [0.1, 0.2, 0.3]},
                     measures={"transient": 200, "mean": ["E"], "frequency": ["E"]},
                     store="sweep.h5")

The work goes through one seam, `run_points(points, base) -> list[PointResult]`, with two
backends: "batched" (the default) advances a chunk of points together in the simulator's
batched kernel (one C call per chunk of steps for every point, OpenMP over the points, each
point with its own parameters, noise stream and state), "single" runs one `mfgen.Simulation`
per point. Both give every point the numbers of its single run, bit for bit.
Executors: the embedded default runs chunks on the local cores (the batched kernel's threads,
or a thread pool of single runs; the C time loop releases the GIL); `scheduler="tcp://host:port"`
sends the chunks to a Dask distributed cluster, whose workers rebuild the model from the spec
text shipped with the task (or find it in their cache) and run each chunk in the batched
kernel on one thread. Only the client writes the store, as chunks finish.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from mfgen.runtime.connectivity import Connectivity
from mfgen.runtime.model import CompiledModel
from mfgen.runtime.simulation import Simulation, SimulationError, TemporalAverage, run_batch
from mfgen.runtime.sweep_bundle import SpecBundle, bundled_spec_of, load_bundle, spec_bundle
from mfgen.runtime.sweep_design import (
    DESIGNS,
    SweepError,
    design_points,
    parse_label,
    parse_quantity,
)
from mfgen.runtime.sweep_measures import Measures, compute_measures, parse_measures
from mfgen.runtime.sweep_store import (
    DONE,
    FAILED,
    PENDING,
    STATUS_NAMES,
    PointResult,
    SweepStore,
    read_store,
)

BASE_KEYS = ("coupling", "coupling_parameters", "integrator", "dt", "noise", "initial_state",
             "seed", "parameters", "local_coupling", "coupling_precision")
MAX_CHUNK_POINTS = 64
WRITE_INTERVAL = 0.5  # s between writes to the store: cheap for tiny points, little to redo
CHUNKS_PER_WORKER = 4  # enough queued work to keep every worker busy without a long tail
BACKENDS = ("batched", "single")
# Steps per batched C call: a Ctrl-C waits for at most one call (~1 s for 50 points of TVB-AdEx
# on 76 regions on two cores); per-call costs are a few microseconds.
BATCH_CALL_STEPS = 2000
LOCAL_BATCH_CHUNKS = 8  # local batched chunks per sweep: store writes and interrupts between


# -- one point -----------------------------------------------------------------------------
@dataclass
class SweepBase:
    """Everything shared by the points of a sweep (what travels to a worker, once)."""

    connectivity: Connectivity
    kwargs: dict[str, Any]  # mfgen.Simulation keyword arguments common to every point
    duration: float
    measures: Measures
    model: CompiledModel | None = None  # in-process runs
    bundle: SpecBundle | None = None  # remote runs: workers build the model from it
    chunk_steps: int = 10_000
    backend: str = "batched"  # how run_points runs a chunk (BACKENDS)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["model"] = None  # a compiled module does not pickle; the bundle rebuilds it
        return state

    def resolved_model(self) -> CompiledModel:
        if self.model is None:
            if self.bundle is None:
                raise SweepError("the sweep base has neither a model nor a spec bundle")
            self.model = load_bundle(self.bundle)
        return self.model


class _Cancelled(Exception):
    """Raised inside a point's run when the sweep is being stopped."""


def point_kwargs(base: SweepBase, point: Mapping[str, float]) -> dict[str, Any]:
    """The Simulation keyword arguments of one point: the base with the swept values set."""
    model = base.resolved_model()
    kwargs = dict(base.kwargs)
    kwargs["parameters"] = dict(kwargs.get("parameters") or {})
    kwargs["coupling_parameters"] = dict(kwargs.get("coupling_parameters") or {})
    noise = kwargs.get("noise")
    if noise is not None and not isinstance(noise, Mapping):
        noise = dict(zip(model.state_variables, np.asarray(noise, dtype=float).tolist()))
    noise = dict(noise or {})
    initial: dict[str, float] = {}
    for label, value in point.items():
        kind, name = parse_label(label, model)
        if kind == "parameters":
            kwargs["parameters"][name] = value
        elif kind == "coupling":
            kwargs["coupling_parameters"][name] = value
        elif kind == "noise":
            noise[name] = value
        elif kind == "initial":
            initial[name] = value
        elif kind == "seed":
            kwargs["seed"] = int(value)
        else:
            kwargs[kind] = value
    if noise:
        kwargs["noise"] = noise
    if initial:
        state = kwargs.get("initial_state")
        if state is None:  # the default (random, seeded) initial state, exactly as a run makes it
            state = Simulation(model, base.connectivity,
                               **{k: v for k, v in kwargs.items() if k != "initial_state"}
                               )._initial_state
        state = np.array(state, dtype=np.float64)
        for name, value in initial.items():
            state[model.state_variables.index(name)] = value
        kwargs["initial_state"] = state
    return kwargs


def run_point(index: int, point: Mapping[str, float], base: SweepBase,
              stop: threading.Event | None = None) -> PointResult:
    """Run one point through mfgen.Simulation; a blow-up or a bad value is a failed point."""
    model = base.resolved_model()
    measures = base.measures
    started = time.perf_counter()

    def check_stop(_done: int, _total: int) -> None:
        if stop is not None and stop.is_set():
            raise _Cancelled

    try:
        kwargs = point_kwargs(base, point)
        variables = measures.variables
        # One thread per point: the sweep runs points side by side on the cores, and a point
        # that also spread over the cores would oversubscribe them.
        simulation = Simulation(model, base.connectivity,
                                monitors=[TemporalAverage(measures.period, variables, "sweep")],
                                threads=1, **kwargs)
        result = simulation.run(base.duration, chunk_steps=base.chunk_steps,
                                progress=check_stop)
        if result.interrupted:
            raise KeyboardInterrupt
        monitor = result["sweep"]
        values = compute_measures(measures, monitor.times, monitor.data, variables)
    except SimulationError as exc:
        return PointResult(index, False, reason=str(exc).split("; the state before")[0],
                           wall_time=time.perf_counter() - started)
    except (ValueError, TypeError) as exc:  # this point's values are invalid
        return PointResult(index, False, reason=f"{type(exc).__name__}: {exc}",
                           wall_time=time.perf_counter() - started)
    traces = None
    if measures.traces:
        traces = {v: monitor.data[:, i].copy() for i, v in enumerate(variables)}
    return PointResult(index, True, values, traces=traces,
                       wall_time=time.perf_counter() - started)


def run_points(points: Sequence[tuple[int, Mapping[str, float]]], base: SweepBase,
               stop: threading.Event | None = None, *, threads: int = 1,
               backend: str | None = None) -> list[PointResult]:
    """The backend seam: run (index, point) pairs; returns their results in that order,
    leaving out points stopped by `stop` (they stay pending).

    backend (default: base.backend): "batched" runs the chunk in the batched kernel on
    `threads` threads; "single" runs one Simulation per point, one after the other, each on
    one thread."""
    backend = backend or base.backend
    if backend == "batched":
        return _run_batched(points, base, stop, threads)
    if backend != "single":
        raise SweepError(f"unknown sweep backend '{backend}'; choose one of "
                         f"{', '.join(BACKENDS)}")
    results = []
    for index, point in points:
        if stop is not None and stop.is_set():
            break
        results.append(run_point(index, point, base, stop))
    return results


def _run_batched(points: Sequence[tuple[int, Mapping[str, float]]], base: SweepBase,
                 stop: threading.Event | None, threads: int) -> list[PointResult]:
    """Every point of the chunk as one set of the batched kernel (runtime/simulation.py
    run_batch); a point whose values are invalid or whose run blows up fails alone."""
    model = base.resolved_model()
    measures = base.measures
    variables = measures.variables
    results: dict[int, PointResult] = {}
    simulations: list[Simulation] = []
    members: list[int] = []
    for index, point in points:
        started = time.perf_counter()
        try:
            simulations.append(Simulation(
                model, base.connectivity,
                monitors=[TemporalAverage(measures.period, variables, "sweep")], threads=1,
                **point_kwargs(base, point)))
            members.append(index)
        except (ValueError, TypeError) as exc:  # this point's values are invalid
            results[index] = PointResult(index, False, reason=f"{type(exc).__name__}: {exc}",
                                         wall_time=time.perf_counter() - started)
    outcomes = run_batch(simulations, base.duration, threads=threads,
                         chunk_steps=min(base.chunk_steps, BATCH_CALL_STEPS),
                         stop=stop.is_set if stop is not None else None)
    for index, outcome in zip(members, outcomes):
        if isinstance(outcome, SimulationError):
            results[index] = PointResult(index, False,
                                         reason=str(outcome).split("; the state before")[0],
                                         wall_time=outcome.result.wall_time)
            continue
        if outcome.interrupted:
            continue  # not finished: stays pending, runs again on resume
        monitor = outcome["sweep"]
        try:
            values = compute_measures(measures, monitor.times, monitor.data, variables)
        except (ValueError, TypeError) as exc:
            results[index] = PointResult(index, False, reason=f"{type(exc).__name__}: {exc}",
                                         wall_time=outcome.wall_time)
            continue
        traces = ({v: monitor.data[:, i].copy() for i, v in enumerate(variables)}
                  if measures.traces else None)
        results[index] = PointResult(index, True, values, traces=traces,
                                     wall_time=outcome.wall_time)
    return [results[index] for index, _ in points if index in results]


def _run_chunk_remote(base: SweepBase, points: list[tuple[int, dict[str, float]]]
                      ) -> list[PointResult]:
    """What a Dask worker runs: one chunk of points (the model cached per worker process)."""
    return run_points(points, base)


# -- progress ----------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar over points, with throughput and ETA."""

    def __init__(self, total: int, already: int, stream: TextIO | None = None,
                 interval: float = 0.5):
        self.total, self.already, self.done, self.failed = total, already, 0, 0
        self.stream = stream
        self.interval = interval
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, results: Sequence[PointResult]) -> None:
        self.done += len(results)
        self.failed += sum(not r.ok for r in results)
        now = time.perf_counter()
        if self.stream is not None and (now - self._last >= self.interval or self.finished):
            self._last = now
            self.stream.write("\r" + self.line())
            if self.finished:
                self.stream.write("\n")
            self.stream.flush()

    @property
    def finished(self) -> bool:
        return self.already + self.done >= self.total

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        saved = self.already + self.done
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = self.total - saved
        eta = f"{remaining / rate:.0f} s" if rate > 0 else "?"
        width = 30
        filled = int(width * saved / self.total) if self.total else width
        return (f"sweep [{'#' * filled}{'.' * (width - filled)}] {saved}/{self.total} points"
                f" ({self.failed} failed)  {rate:.2f} points/s  ETA {eta}   ")


# -- executors -------------------------------------------------------------------------------
def _chunks(indices: Sequence[int], points: Sequence[dict[str, float]], workers: int,
            chunk_points: int | None) -> list[list[tuple[int, dict[str, float]]]]:
    if chunk_points is None:
        chunk_points = math.ceil(len(indices) / max(1, workers * CHUNKS_PER_WORKER))
        chunk_points = max(1, min(MAX_CHUNK_POINTS, chunk_points))
    return [[(i, points[i]) for i in indices[start:start + chunk_points]]
            for start in range(0, len(indices), chunk_points)]


def _local_batch_size(n_points: int, workers: int) -> int:
    """Points per local batched chunk: about LOCAL_BATCH_CHUNKS chunks, a multiple of the
    thread count (so the threads finish a chunk together), at most MAX_CHUNK_POINTS."""
    size = max(workers, min(MAX_CHUNK_POINTS, math.ceil(n_points / LOCAL_BATCH_CHUNKS)))
    return max(workers, size - size % workers)


def _run_embedded(base: SweepBase, chunks: list[list[tuple[int, dict[str, float]]]],
                  workers: int) -> Iterator[list[PointResult]]:
    """Chunks on the local cores; yields each chunk's results as it finishes. Batched: one
    chunk at a time in the batched kernel on `workers` threads (in a background thread, so
    the client writes the store meanwhile); single: a pool of `workers` threads."""
    stop = threading.Event()
    batched = base.backend == "batched"
    pool = ThreadPoolExecutor(max_workers=1 if batched else workers,
                              thread_name_prefix="mfgen-sweep")
    try:
        futures = [pool.submit(run_points, chunk, base, stop,
                               threads=workers if batched else 1) for chunk in chunks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        stop.set()  # on Ctrl-C or an error: running points stop at their next chunk of steps
        pool.shutdown(wait=True, cancel_futures=True)


def _run_distributed(base: SweepBase, chunks: list[list[tuple[int, dict[str, float]]]],
                     client: Any) -> Iterator[list[PointResult]]:
    """Chunks as tasks on a Dask cluster; a chunk lost with its worker is rerun elsewhere."""
    from distributed import as_completed

    [shared] = client.scatter([base], broadcast=True, hash=False)
    pending = {}
    for chunk in chunks:
        future = client.submit(_run_chunk_remote, shared, chunk, pure=False, retries=2)
        pending[future.key] = future
    finished = as_completed(list(pending.values()), loop=client.loop)
    try:
        for future in finished:
            results = future.result()
            # Dropping the last reference lets the worker free the chunk's results.
            del pending[future.key]
            future.release()
            yield results
    finally:
        finished.clear()
        client.cancel(list(pending.values()))
        client.cancel([shared])


# -- the sweep -------------------------------------------------------------------------------
@dataclass
class _MemoryStore:
    """SweepStore's interface without a file (store=None)."""

    definition: dict[str, Any]
    points: Sequence[dict[str, float]]
    measure_names: Sequence[str]
    session: int = 1
    results: dict[int, PointResult] = field(default_factory=dict)

    def pending(self) -> list[int]:
        return [i for i in range(len(self.points)) if i not in self.results]

    @property
    def n_saved(self) -> int:
        return len(self.results)

    def write(self, results: Sequence[PointResult]) -> None:
        for result in results:
            self.results[result.index] = result

    def close(self) -> None:
        pass

    def data(self) -> dict[str, Any]:
        n = len(self.points)
        status = np.full(n, PENDING, np.int8)
        reason = np.array([""] * n, dtype=object)
        wall = np.full(n, np.nan)
        measures = {name: np.full(n, np.nan) for name in self.measure_names}
        traces: dict[str, np.ndarray] = {}
        for i, r in self.results.items():
            status[i] = DONE if r.ok else FAILED
            reason[i] = r.reason
            wall[i] = r.wall_time
            for name, value in r.measures.items():
                measures[name][i] = value
            for variable, trace in (r.traces or {}).items():
                traces.setdefault(variable, np.full((n, *trace.shape), np.nan))[i] = trace
        return {"definition": self.definition, "sessions": 1,
                "points": {k: np.array([p[k] for p in self.points]) for k in self.points[0]},
                "status": status, "reason": reason.astype(str),
                "session": (status != PENDING).astype(np.int32), "wall_time": wall,
                "measures": measures, "traces": traces}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=float).tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


@dataclass
class SweepReport:
    """What one call of `sweep` did (also in the Dataset's attrs)."""

    total: int
    already_saved: int
    computed: int
    failed: int
    wall_time: float
    session: int


def sweep(model: str | Path | CompiledModel, connectivity: Connectivity | None = None, *,
          base: Mapping[str, Any] | None = None, duration: float = 1000.0,
          sweep: Mapping[str, Any], design: str = "grid", n_points: int | None = None,
          random_seed: int = 0, measures: Mapping[str, Any] | None = None,
          store: str | Path | None = None, scheduler: str | Any | None = None,
          workers: int | None = None, chunk_points: int | None = None,
          progress: bool | Callable[[int, int], None] = True,
          progress_stream: TextIO | None = None, chunk_steps: int = 10_000,
          write_interval: float = WRITE_INTERVAL, backend: str = "batched") -> Any:
    """Run a parameter sweep; returns an xarray Dataset indexed by the swept quantities.

    model: a bundled spec name, a spec path or a model from mfgen.load (remote workers need
    the spec: a loaded bundled model is found by name). base: mfgen.Simulation keyword
    arguments shared by every point. sweep: label -> values (see runtime/sweep_design.py).
    measures: see runtime/sweep_measures.py. store: an HDF5 file written as points finish; an
    existing one with the same definition is resumed. scheduler: None runs on `workers` local
    threads (default: every core); an address ("tcp://host:8786") or a distributed.Client runs
    on that Dask cluster. backend: "batched" (one kernel call advances a chunk of points, on
    the local cores or one thread per Dask worker) or "single" (one Simulation per point); the
    numbers are the same bit for bit. progress: True draws a progress bar on stderr, a callable gets
    (saved, total) after every write to the store: finished points are written together at
    most every `write_interval` seconds (0: each chunk as it finishes), and at the end or on an
    interrupt.
    """
    import xarray  # noqa: F401 - fail before any work if it is missing

    from mfgen.runtime.loader import load

    if not isinstance(sweep, Mapping) or not sweep:
        raise SweepError("sweep= needs a mapping of swept quantities to their values")
    if backend not in BACKENDS:
        raise SweepError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if design not in DESIGNS:
        raise SweepError(f"unknown design '{design}'; choose one of {', '.join(DESIGNS)}")
    base = dict(base or {})
    unknown = set(base) - set(BASE_KEYS)
    if unknown:
        hint = (" (the monitor is set by measures=)" if "monitors" in unknown else "")
        raise SweepError(f"base: unknown Simulation arguments {sorted(unknown)}{hint}; known: "
                         f"{', '.join(BASE_KEYS)}")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise SweepError(f"duration must be a positive number of ms, got {duration!r}")

    spec: str | Path | None = None
    if isinstance(model, CompiledModel):
        compiled = model
    else:
        spec, compiled = model, load(model)
    if compiled.n_modes != 1:
        raise SweepError(f"model '{compiled.name}' has {compiled.n_modes} modes: sweeps run "
                         "the batched kernel and its measures on (time, region) traces, not "
                         "yet on TVB's modes layout; run each point with mfgen.simulate")
    connectivity = connectivity if connectivity is not None else Connectivity.empty(1)
    quantities = [parse_quantity(label, values, compiled, design)
                  for label, values in sweep.items()]
    points, shape = design_points(quantities, design, n_points, random_seed)
    parsed = parse_measures(measures, compiled.state_variables)
    if parsed.transient >= duration:
        raise SweepError(f"measures.transient ({parsed.transient:g} ms) must be shorter than "
                         f"the duration ({duration:g} ms)")
    sweep_base = SweepBase(connectivity, base, float(duration), parsed, compiled,
                           chunk_steps=chunk_steps, backend=backend)
    _check_base(sweep_base, points)

    n_samples = int(round(duration / base.get("dt", 0.1))) // int(
        round(parsed.period / base.get("dt", 0.1)))
    definition = {
        "model": compiled.name,
        "ir_digest": compiled.metadata.get("ir_digest", ""),
        "connectivity": {"n_regions": connectivity.n_regions, "speed": connectivity.speed,
                         **connectivity.digests()},
        "base": _jsonable(base),
        "duration": float(duration),
        "design": design,
        "quantities": [{"label": q.label, "values": list(q.values), "low": q.low,
                        "high": q.high, "log": q.log} for q in quantities],
        "shape": list(shape) if shape else None,
        "n_points": len(points),
        "random_seed": random_seed if design == "random" else None,
        "measures": parsed.as_config(),
        "n_trace_samples": n_samples,
        "mfgen_sweep_format": 1,
    }
    regions = connectivity.n_regions
    if store is not None:
        target: SweepStore | _MemoryStore = SweepStore(
            store, definition, points, parsed.names,
            (n_samples, regions) if parsed.traces else None, parsed.variables)
    else:
        target = _MemoryStore(definition, points, parsed.names)

    started = time.perf_counter()
    pending = target.pending()
    already = len(points) - len(pending)
    stream = progress_stream if progress_stream is not None else (
        sys.stderr if progress is True else None)
    bar = Progress(len(points), already, stream)
    computed = failed = 0
    client, own_client = None, False
    batches: Iterator[list[PointResult]] | None = None
    unsaved: list[PointResult] = []
    last_write = time.perf_counter()

    def save() -> None:
        """Write the finished points (batched in time: one write per WRITE_INTERVAL)."""
        nonlocal computed, failed, last_write
        if not unsaved:
            return
        batch = list(unsaved)
        unsaved.clear()
        target.write(batch)
        last_write = time.perf_counter()
        computed += len(batch)
        failed += sum(not r.ok for r in batch)
        bar.update(batch)
        if callable(progress):
            progress(target.n_saved, len(points))

    try:
        if pending:
            if scheduler is None:
                n_workers = workers or os.cpu_count() or 1
                if backend == "batched":
                    # A few large chunks: the kernel's threads share each chunk's points.
                    size = chunk_points or _local_batch_size(len(pending), n_workers)
                    chunks = _chunks(pending, points, n_workers, size)
                    batches = _run_embedded(sweep_base, chunks, n_workers)
                else:
                    # Threads cost nothing to schedule: one point per task, so an interrupt
                    # loses only the points that were running.
                    chunks = _chunks(pending, points, n_workers, chunk_points or 1)
                    batches = _run_embedded(sweep_base, chunks, min(n_workers, len(chunks)))
            else:
                client, own_client = _client(scheduler)
                sweep_base.bundle = spec_bundle(spec if spec is not None else
                                                bundled_spec_of(compiled))
                threads = sum(client.nthreads().values()) or 1
                chunks = _chunks(pending, points, threads, chunk_points)
                batches = _run_distributed(sweep_base, chunks, client)
            for results in batches:
                unsaved.extend(results)
                if time.perf_counter() - last_write >= write_interval:
                    save()
        save()
    except BaseException as exc:
        if batches is not None:
            batches.close()  # stops the local threads or cancels the cluster's tasks now
        save()  # whatever stopped the sweep, the points that finished are kept
        if isinstance(exc, KeyboardInterrupt) and stream is not None:
            stream.write(f"\ninterrupted: {target.n_saved} of {len(points)} points saved"
                         + (f" in {store}; run the same sweep again to resume" if store
                            else "") + "\n")
        raise
    finally:
        if own_client and client is not None:
            client.close()
        data = target.data() if isinstance(target, _MemoryStore) else None
        target.close()
    if data is None:
        data = read_store(store)  # type: ignore[arg-type]
    report = SweepReport(len(points), already, computed, failed,
                         time.perf_counter() - started, target.session)
    return to_dataset(data, report)


def _check_base(base: SweepBase, points: Sequence[dict[str, float]]) -> None:
    """A bad base (unknown parameter, wrong integrator, ...) fails here, once, not per point.

    A point's own values may be invalid (a zero noise amplitude with a stochastic integrator):
    that point is recorded as failed later. So the base counts as bad only when the first,
    middle and last points all fail to set up."""
    monitors = [TemporalAverage(base.measures.period, base.measures.variables, "sweep")]
    first_error = None
    for point in dict.fromkeys((0, len(points) // 2, len(points) - 1)):
        try:
            Simulation(base.resolved_model(), base.connectivity, monitors=monitors,
                       **point_kwargs(base, points[point]))
            return
        except (ValueError, TypeError) as exc:
            first_error = first_error or exc
    raise SweepError(f"the sweep cannot run (first, middle and last points): {first_error}")


def _client(scheduler: Any) -> tuple[Any, bool]:
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False
    if not isinstance(scheduler, str):
        raise SweepError(f"scheduler must be an address such as 'tcp://127.0.0.1:8786' or a "
                         f"distributed.Client, got {scheduler!r}")
    try:
        return Client(scheduler, timeout="20s", set_as_default=False), True
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}; start one "
                         "with `dask scheduler` (see docs/sweeps.md)") from None


# -- results ---------------------------------------------------------------------------------
def to_dataset(data: Mapping[str, Any], report: SweepReport | None = None) -> Any:
    """An xarray Dataset from a sweep's stored data: a grid design has one dimension per
    swept quantity; zip and random designs have a `point` dimension with the swept values as
    coordinates. Variables: every measure, `status` (done/failed/pending), `reason`,
    `wall_time`, `session`, and `trace_<var>` (..., time, region) when traces were kept."""
    import json

    import xarray as xr

    definition = data["definition"]
    labels = [q["label"] for q in definition["quantities"]]
    status = np.array([STATUS_NAMES[int(s)] for s in data["status"]])
    arrays = {"status": status, "reason": np.asarray(data["reason"]).astype(str),
              "wall_time": data["wall_time"], "session": data["session"],
              **data["measures"]}
    if definition["design"] == "grid":
        shape = tuple(definition["shape"])
        dims: list[str] = labels
        coords: dict[str, Any] = {q["label"]: np.array(q["values"])
                                  for q in definition["quantities"]}
        variables = {name: (dims, np.asarray(a).reshape(shape)) for name, a in arrays.items()}
    else:
        shape = (definition["n_points"],)
        dims = ["point"]
        coords = {label: ("point", data["points"][label]) for label in labels}
        coords["point"] = np.arange(shape[0])
        variables = {name: (dims, np.asarray(a)) for name, a in arrays.items()}
    period = definition["measures"]["period"]
    for variable, trace in data["traces"].items():
        variables[f"trace_{variable}"] = ([*dims, "time", "region"],
                                          np.asarray(trace).reshape(*shape, *trace.shape[1:]))
        coords["time"] = (np.arange(1, trace.shape[1] + 1) - 0.5) * period
    attrs: dict[str, Any] = {"definition": json.dumps(definition, sort_keys=True),
                             "model": definition["model"], "design": definition["design"],
                             "n_done": int(np.count_nonzero(status == "done")),
                             "n_failed": int(np.count_nonzero(status == "failed")),
                             "n_pending": int(np.count_nonzero(status == "pending"))}
    if report is not None:
        attrs.update({"points_computed": report.computed,
                      "points_already_saved": report.already_saved,
                      "wall_time_s": report.wall_time, "session": report.session})
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def open_sweep(path: str | Path) -> Any:
    """The xarray Dataset of a sweep file (finished or not)."""
    return to_dataset(read_store(path))
