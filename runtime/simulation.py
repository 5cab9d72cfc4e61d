"""Whole-network simulations: the time loop runs in generated C, chunk by chunk.

    result = mfgen.simulate(model, connectivity, coupling="linear", integrator="heun",
                            dt=0.1, duration=1000.0, monitors=[mfgen.Raw()])

`Simulation` holds the C context (state, ring-buffer history, step counter, monitor
accumulators), so `advance()` can be called repeatedly and continues exactly where it stopped:
the noise is drawn from a counter-based generator keyed by (seed, absolute step, state, node),
so results do not depend on the chunking.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfgen import __version__
from mfgen.errors import MfgenError
from mfgen.runtime.connectivity import Connectivity
from mfgen.runtime.model import CompiledModel

INTEGRATOR_NAMES = ("euler", "heun", "rk4", "euler_maruyama", "heun_stochastic")
STOCHASTIC = {"euler_maruyama", "heun_stochastic"}
SCRATCH_STAGES = 4  # the largest tableau (rk4); matches max_stages in the template
MAX_HISTORY_BYTES = 8 * 2**30  # a delay ring larger than this is a unit mistake, not a model


class SimulationError(MfgenError):
    """A run stopped early; `.result` holds everything computed up to that point."""

    def __init__(self, message: str, result: SimulationResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Monitor:
    """What to record: every `period` ms (a sample, or the average over the period)."""

    kind: str  # "raw", "subsample" or "temporal_average"
    period: float | None = None  # ms; None for raw (every step)
    variables: tuple[str, ...] | None = None  # None: all state variables
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.kind


def Raw(variables: Sequence[str] | None = None, name: str = "") -> Monitor:  # noqa: N802
    return Monitor("raw", None, tuple(variables) if variables else None, name)


def SubSample(period: float, variables: Sequence[str] | None = None,  # noqa: N802
              name: str = "") -> Monitor:
    return Monitor("subsample", period, tuple(variables) if variables else None, name)


def TemporalAverage(period: float, variables: Sequence[str] | None = None,  # noqa: N802
                    name: str = "") -> Monitor:
    return Monitor("temporal_average", period, tuple(variables) if variables else None, name)


@dataclass
class MonitorResult:
    times: np.ndarray  # (n_samples,) in ms
    data: np.ndarray  # (n_samples, n_variables, n_nodes)
    variables: tuple[str, ...]

    def __getitem__(self, variable: str) -> np.ndarray:
        """The trace of one variable: (n_samples, n_nodes)."""
        return self.data[:, self.variables.index(variable)]

    def __repr__(self) -> str:
        return (f"<MonitorResult: {self.data.shape[0]} samples x ({', '.join(self.variables)})"
                f" x {self.data.shape[2]} nodes>")


@dataclass
class SimulationResult:
    monitors: dict[str, MonitorResult]
    final_state: np.ndarray
    steps: int
    config: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    wall_time: float = 0.0

    def __getitem__(self, monitor: str) -> MonitorResult:
        return self.monitors[monitor]

    # Short repr, xarray and plots (runtime/results.py, runtime/plotting.py).
    def __repr__(self) -> str:
        from mfgen.runtime.results import describe_simulation_result

        return describe_simulation_result(self)

    def to_xarray(self) -> Any:
        from mfgen.runtime.results import simulation_result_to_xarray

        return simulation_result_to_xarray(self)

    def plot(self, path: Any = None, **options: Any) -> Any:
        from mfgen.runtime.results import plot_simulation_result

        return plot_simulation_result(self, path, **options)


@dataclass
class _Buffers:
    """Arrays the C context points into; kept alive as long as the simulation."""

    arrays: list[Any] = field(default_factory=list)

    def keep(self, array: Any) -> Any:
        self.arrays.append(array)
        return array


def _as_noise(model: CompiledModel, noise: Mapping[str, float] | Sequence[float] | None
              ) -> np.ndarray:
    nsig = np.zeros(model.n_states)
    if noise is None:
        return nsig
    if isinstance(noise, Mapping):
        for name, value in noise.items():
            if name not in model.state_variables:
                raise ValueError(f"noise given for unknown state variable '{name}'; states: "
                                 f"{', '.join(model.state_variables)}")
            nsig[model.state_variables.index(name)] = value
    else:
        nsig = np.asarray(noise, dtype=float).reshape(-1)
        if nsig.shape != (model.n_states,):
            raise ValueError(f"noise must give one nsig per state variable "
                             f"({model.n_states}), got {nsig.shape}")
    if not (np.isfinite(nsig).all() and (nsig >= 0).all()):
        raise ValueError("noise amplitudes (nsig) must be finite and non-negative")
    return nsig


class Simulation:
    """A resumable simulation of one model on one network."""

    def __init__(self, model: CompiledModel, connectivity: Connectivity | None = None, *,
                 coupling: str = "linear", coupling_parameters: Mapping[str, float] | None = None,
                 integrator: str = "heun", dt: float = 0.1,
                 noise: Mapping[str, float] | Sequence[float] | None = None,
                 monitors: Sequence[Monitor] | None = None,
                 initial_state: np.ndarray | None = None,
                 initial_history: np.ndarray | None = None, seed: int = 0,
                 parameters: Mapping[str, Any] | None = None, local_coupling: float = 0.0,
                 n_nodes: int | None = None, coupling_precision: str = "float64"):
        if not isinstance(model, CompiledModel):
            raise TypeError("simulate needs a compiled model (mfgen.load(spec)), not the "
                            "NumPy reference")
        if integrator not in INTEGRATOR_NAMES:
            raise ValueError(f"unknown integrator '{integrator}'; choose one of "
                             f"{', '.join(INTEGRATOR_NAMES)}")
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be positive, got {dt}")
        if not np.isfinite(local_coupling):
            raise ValueError(f"local_coupling must be finite, got {local_coupling}")
        if n_nodes is not None and (int(n_nodes) != n_nodes or n_nodes < 1):
            raise ValueError(f"n_nodes must be a positive integer, got {n_nodes}")
        self.model = model
        self.integrator = integrator
        self.dt = float(dt)
        self.seed = int(seed)
        self._ffi = model._ffi
        self._lib = model._lib
        self._buffers = _Buffers()
        ffi = self._ffi

        if connectivity is None:
            n = n_nodes or (np.shape(initial_state)[1] if initial_state is not None else 1)
            connectivity = Connectivity.empty(n)
        self.connectivity = connectivity
        n = connectivity.n_regions
        self.n_nodes = n
        row_ptr, col, weight, delay = connectivity.sparse(self.dt)
        self.horizon = int(delay.max(initial=0)) + 1
        history_bytes = self.horizon * max(len(model.cvar), 1) * n * 8
        if history_bytes > MAX_HISTORY_BYTES:
            raise ValueError(
                f"the longest delay is {self.horizon - 1} steps (tract length / speed / dt): "
                f"its history would need {history_bytes / 2**30:.1f} GiB; check the tract "
                "lengths' unit (mm), the speed (mm/ms) and dt (ms)")

        # Coupling function and its parameters (runtime values), as compiled into the module.
        couplings = model.metadata["couplings"]
        names = [c["name"] for c in couplings]
        if coupling not in names:
            raise ValueError(f"unknown coupling '{coupling}'; choose one of {', '.join(names)}")
        values = {name: float(value) for name, value in couplings[names.index(coupling)][
            "parameters"]}
        for key, value in (coupling_parameters or {}).items():
            if key not in values:
                raise ValueError(f"coupling '{coupling}' has no parameter '{key}'; it has "
                                 f"{', '.join(values) or 'none'}")
            if not np.isfinite(value):
                raise ValueError(f"coupling parameter '{key}' must be finite, got {value}")
            values[key] = float(value)
        self.coupling = coupling
        self.coupling_parameters = values
        coupling_vector = self._buffers.keep(np.array(list(values.values()) or [0.0]))

        # Parameters (shared or per node), noise.
        self.parameters = dict(parameters or {})
        packed, per_node = model._pack(self.parameters, n)
        packed = self._buffers.keep(np.ascontiguousarray(packed))
        self.nsig = _as_noise(model, noise)
        noisy = np.flatnonzero(self.nsig).astype(np.int32)
        if integrator in STOCHASTIC and not noisy.size:
            raise ValueError(f"integrator '{integrator}' is stochastic: give noise="
                             "{state: nsig, ...} (TVB's Additive nsig)")
        if integrator not in STOCHASTIC and noisy.size:
            raise ValueError(f"noise was given but integrator '{integrator}' is deterministic;"
                             " use 'heun_stochastic' or 'euler_maruyama'")
        self._noisy = self._buffers.keep(noisy if noisy.size else np.zeros(1, np.int32))
        gain = self._buffers.keep(np.sqrt(2.0 * self.nsig[noisy]) if noisy.size
                                  else np.zeros(1))

        # State and history.
        state, history = self._initial(initial_state, initial_history)
        self.state = state
        self._history = self._buffers.keep(history)

        # Monitors.
        self.monitor_specs = list(monitors) if monitors is not None else [Raw()]
        self._monitors = ffi.new("mf_monitor[]", max(len(self.monitor_specs), 1))
        self._monitor_meta = []
        labels = set()
        for index, spec in enumerate(self.monitor_specs):
            if spec.label in labels:
                raise ValueError(f"two monitors are labelled '{spec.label}'; name them")
            labels.add(spec.label)
            variables = spec.variables or model.state_variables
            unknown = [v for v in variables if v not in model.state_variables]
            if unknown:
                raise ValueError(f"monitor '{spec.label}': unknown variables {unknown}")
            period = 1
            if spec.kind != "raw":
                if spec.period is None or not np.isfinite(spec.period) or spec.period <= 0:
                    raise ValueError(f"monitor '{spec.label}' needs a positive period (ms)")
                period = int(round(spec.period / self.dt))
                if period < 1 or abs(period * self.dt - spec.period) > 1e-9 * spec.period:
                    raise ValueError(f"monitor '{spec.label}': period {spec.period} ms is not "
                                     f"a multiple of dt = {self.dt} ms")
            voi = self._buffers.keep(np.array([model.state_variables.index(v)
                                               for v in variables], dtype=np.int32))
            accumulator = self._buffers.keep(np.zeros((len(variables), n)))
            c = self._monitors[index]
            c.kind = 1 if spec.kind == "temporal_average" else 0
            c.period = period
            c.n_voi = len(variables)
            c.voi = ffi.cast("int32_t *", voi.ctypes.data)
            c.accumulator = ffi.cast("double *", accumulator.ctypes.data)
            self._monitor_meta.append((spec, tuple(variables), period))
        self._samples: list[list[np.ndarray]] = [[] for _ in self.monitor_specs]

        # The C context.
        sim = ffi.new("mf_sim *")
        sim.n_nodes = n
        sim.t = 0
        sim.dt = self.dt
        sim.params = ffi.cast("double *", packed.ctypes.data)
        sim.per_node = int(per_node)
        sim.local_coupling = float(local_coupling)
        sim.horizon = self.horizon
        for name, array, ctype in (("row_ptr", row_ptr, "int64_t *"), ("col", col, "int32_t *"),
                                   ("weight", weight, "double *"), ("delay", delay, "int32_t *")):
            array = self._buffers.keep(np.ascontiguousarray(array) if array.size
                                       else np.zeros(1, array.dtype))
            setattr(sim, name, ffi.cast(ctype, array.ctypes.data))
        sim.coupling_kind = names.index(coupling)
        if coupling_precision not in ("float64", "float32"):
            raise ValueError("coupling_precision must be 'float64' or 'float32' (TVB's "
                             f"history precision), got {coupling_precision!r}")
        sim.coupling_float32 = int(coupling_precision == "float32")
        self.coupling_precision = coupling_precision
        sim.coupling_params = ffi.cast("double *", coupling_vector.ctypes.data)
        sim.history = ffi.cast("double *", self._history.ctypes.data)
        sim.n_noisy = int(noisy.size)
        sim.noisy_states = ffi.cast("int32_t *", self._noisy.ctypes.data)
        sim.noise_gain = ffi.cast("double *", gain.ctypes.data)
        sim.seed = self.seed & 0xFFFFFFFFFFFFFFFF
        sim.noise_in = ffi.NULL
        sim.n_monitors = len(self.monitor_specs)
        sim.monitors = self._monitors
        scratch = self._buffers.keep(
            np.zeros(((SCRATCH_STAGES + 2) * model.n_states + len(model.cvar) + 1) * n))
        sim.scratch = ffi.cast("double *", scratch.ctypes.data)
        self._sim = sim
        self._run = getattr(self._lib, f"simulate_{integrator}")
        self.local_coupling = float(local_coupling)
        self._initial_state = state.copy()

    # -- set-up ------------------------------------------------------------------------------
    def _initial(self, initial_state: np.ndarray | None, initial_history: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        model, n, horizon = self.model, self.n_nodes, self.horizon
        if initial_history is not None:
            history = np.asarray(initial_history, dtype=np.float64)
            if history.ndim != 3 or history.shape[1:] != (model.n_states, n) or \
                    history.shape[0] < 1:
                raise ValueError(f"initial_history must have shape (n_times, {model.n_states},"
                                 f" {n}), oldest first, the last entry being t = 0; got "
                                 f"{history.shape}")
            if initial_state is None:
                initial_state = history[-1]
        if initial_state is None:
            rng = np.random.default_rng(self.seed)
            low = np.array([model.states[s].range[0] for s in model.state_variables])
            high = np.array([model.states[s].range[1] for s in model.state_variables])
            initial_state = low[:, None] + (high - low)[:, None] * rng.random((len(low), n))
        state = np.array(initial_state, dtype=np.float64, order="C")
        if state.shape != (model.n_states, n):
            raise ValueError(f"initial_state must have shape ({model.n_states}, {n}), got "
                             f"{state.shape}")
        if not np.isfinite(state).all():
            raise ValueError("initial_state contains NaN or infinite values")
        ring = np.empty((horizon, len(model.cvar), n))
        # Slot (tau mod horizon) holds the coupled states at time tau (steps, tau <= 0).
        for tau in range(-(horizon - 1), 1):
            if initial_history is not None:
                index = history.shape[0] - 1 + tau
                source = history[max(index, 0)]
            else:
                source = state
            ring[tau % horizon] = source[model.cvar]
        return state, ring

    # -- running -----------------------------------------------------------------------------
    @property
    def steps_done(self) -> int:
        return int(self._sim.t)

    @property
    def time(self) -> float:
        return self.steps_done * self.dt

    def advance(self, n_steps: int, noise_array: np.ndarray | None = None) -> int:
        """Run `n_steps` steps (one C call); returns the steps completed.

        noise_array: optional standard normal increments (n_steps, n_state, n_nodes) to use
        instead of the built-in generator (rows of noise-free states are ignored).
        """
        ffi, sim = self._ffi, self._sim
        n_steps = int(n_steps)
        if n_steps <= 0:
            return 0
        outputs = []
        for index, (_spec, variables, period) in enumerate(self._monitor_meta):
            done = self.steps_done
            capacity = (done + n_steps) // period - done // period
            out = np.empty((max(capacity, 1), len(variables), self.n_nodes))
            outputs.append(out)
            self._monitors[index].out = ffi.cast("double *", out.ctypes.data)
            self._monitors[index].capacity = capacity
        noise_buffer = None
        if noise_array is not None:
            noise_array = np.asarray(noise_array, dtype=np.float64)
            expected = (n_steps, self.model.n_states, self.n_nodes)
            if noise_array.shape != expected:
                raise ValueError(f"noise_array must have shape {expected}, got "
                                 f"{noise_array.shape}")
            noise_buffer = np.ascontiguousarray(noise_array[:, np.flatnonzero(self.nsig)])
            sim.noise_in = ffi.cast("double *", noise_buffer.ctypes.data)
        try:
            done = self._run(sim, ffi.cast("double *", self.state.ctypes.data), n_steps)
        finally:
            sim.noise_in = ffi.NULL
        for index, out in enumerate(outputs):
            self._samples[index].append(out[: self._monitors[index].n_out].copy())
        return int(done)

    def run(self, duration: float, *, chunk_steps: int = 2000,
            progress: Callable[[int, int], None] | None = None,
            noise_array: np.ndarray | None = None) -> SimulationResult:
        """Advance by `duration` ms in chunks; Ctrl-C stops cleanly and returns the partial
        result (`interrupted=True`); a non-finite state raises SimulationError carrying it."""
        if not np.isfinite(duration):
            raise ValueError(f"duration must be a finite number of ms, got {duration}")
        if int(chunk_steps) < 1:
            raise ValueError(f"chunk_steps must be at least 1, got {chunk_steps}")
        total = int(round(duration / self.dt))
        if total < 0 or abs(total * self.dt - duration) > 1e-9 * max(duration, 1.0):
            raise ValueError(f"duration {duration} ms is not a non-negative multiple of "
                             f"dt = {self.dt} ms")
        if noise_array is not None and np.shape(noise_array)[0] != total:
            raise ValueError(f"noise_array must have {total} steps (duration / dt), got "
                             f"{np.shape(noise_array)[0]}")
        start_step, started = self.steps_done, time.perf_counter()
        interrupted = False
        completed = 0
        try:
            while completed < total:
                chunk = min(chunk_steps, total - completed)
                noise = None if noise_array is None else noise_array[completed:completed + chunk]
                done = self.advance(chunk, noise)
                completed += done
                if progress is not None:
                    progress(completed, total)
                if done < chunk:
                    sim = self._sim
                    variable = self.model.state_variables[sim.bad_state]
                    result = self.result(time.perf_counter() - started)
                    raise SimulationError(
                        f"non-finite value in '{variable}' at node {sim.bad_node} in step "
                        f"{sim.bad_step} (t = {sim.bad_step * self.dt:g} ms); the state "
                        f"before that step and the monitors up to it are in .result", result)
        except KeyboardInterrupt:
            interrupted = True
        result = self.result(time.perf_counter() - started)
        result.interrupted = interrupted
        result.config["steps_this_run"] = self.steps_done - start_step
        return result

    def result(self, wall_time: float = 0.0) -> SimulationResult:
        monitors = {}
        for index, (spec, variables, period) in enumerate(self._monitor_meta):
            chunks = self._samples[index]
            data = np.concatenate(chunks) if chunks else np.empty((0, len(variables),
                                                                   self.n_nodes))
            steps = period * np.arange(1, data.shape[0] + 1)
            times = steps * self.dt
            if spec.kind == "temporal_average":
                times = (steps - period / 2.0) * self.dt  # TVB: mid-point of the window
            monitors[spec.label] = MonitorResult(times, data, variables)
        return SimulationResult(monitors, self.state.copy(), self.steps_done, self.config(),
                                wall_time=wall_time)

    def config(self) -> dict[str, Any]:
        """Everything needed to reproduce the run (provenance)."""
        model = self.model

        def digest(array: np.ndarray) -> str:
            return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]

        return {
            "mfgen_version": __version__,
            "model": model.name,
            "module_key": model.module_key,
            "ir_digest": model.metadata.get("ir_digest", ""),
            "spec_sources": model.metadata.get("sources", []),
            "parameters": {k: (np.asarray(v).tolist()) for k, v in
                           model.parameter_values(**self.parameters).items()},
            "integrator": self.integrator,
            "dt": self.dt,
            "steps": self.steps_done,
            "coupling": self.coupling,
            "coupling_parameters": self.coupling_parameters,
            "coupling_precision": self.coupling_precision,
            "local_coupling": self.local_coupling,
            "noise_nsig": dict(zip(model.state_variables, self.nsig.tolist())),
            "seed": self.seed,
            "connectivity": {"source": self.connectivity.source,
                             "n_regions": self.n_nodes,
                             "speed": self.connectivity.speed,
                             "weights_sha256": digest(self.connectivity.weights),
                             "tract_lengths_sha256": digest(self.connectivity.tract_lengths)},
            "initial_state_sha256": digest(self._initial_state),
            "monitors": [{"kind": s.kind, "period": s.period, "variables": list(v),
                          "label": s.label} for s, v, _ in self._monitor_meta],
        }

    # -- checkpoints (minimal; the engine branch supplies the full version, same format) -------
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly: step counter, state, history ring and
        the monitors' accumulators and phases; plain arrays and numbers."""
        checkpoint: dict[str, Any] = {"format": 1, "step": self.steps_done,
                                      "state": self.state.copy(),
                                      "history": self._history.copy()}
        for index, (_, _variables, period) in enumerate(self._monitor_meta):
            checkpoint[f"monitor_{index}_accumulator"] = self._accumulator(index).copy()
            checkpoint[f"monitor_{index}_phase"] = self.steps_done % period
        return checkpoint

    def _accumulator(self, index: int) -> np.ndarray:
        size = len(self._monitor_meta[index][1]) * self.n_nodes
        return np.frombuffer(self._ffi.buffer(self._monitors[index].accumulator, 8 * size))

    def restore(self, checkpoint: Mapping[str, Any]) -> None:
        """Continue from `checkpoint()` of a simulation built with the same arguments;
        samples recorded before are dropped (the engine's semantics)."""
        state = np.asarray(checkpoint["state"], dtype=np.float64)
        history = np.asarray(checkpoint["history"], dtype=np.float64)
        if state.shape != self.state.shape or history.shape != self._history.shape:
            raise ValueError("the checkpoint does not fit this simulation (shapes differ)")
        self.state[...] = state
        self._history[...] = history
        for index in range(len(self._monitor_meta)):
            self._accumulator(index)[...] = np.asarray(
                checkpoint[f"monitor_{index}_accumulator"], dtype=np.float64).reshape(-1)
        self._sim.t = int(checkpoint["step"])
        self._samples = [[] for _ in self.monitor_specs]

def simulate(model: CompiledModel, connectivity: Connectivity | None = None, *,
             duration: float = 1000.0, chunk_steps: int = 2000,
             progress: Callable[[int, int], None] | None = None,
             noise_array: np.ndarray | None = None, **options: Any) -> SimulationResult:
    """Simulate `model` on `connectivity` for `duration` ms. See `Simulation` for options."""
    simulation = Simulation(model, connectivity, **options)
    return simulation.run(duration, chunk_steps=chunk_steps, progress=progress,
                          noise_array=noise_array)
