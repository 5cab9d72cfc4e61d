"""Whole-network simulations: the time loop runs in generated C, chunk by chunk.

    result = mfgen.simulate(model, connectivity, coupling="linear", integrator="heun",
                            dt=0.1, duration=1000.0, monitors=[mfgen.Raw()])

`Simulation` holds the C context (state, ring-buffer history, step counter, monitor
accumulators), so `advance()` can be called repeatedly and continues exactly where it stopped:
the noise is drawn from a counter-based generator keyed by (seed, absolute step, state, node),
so results do not depend on the chunking.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfgen import __version__
from mfgen.errors import MfgenError, did_you_mean
from mfgen.runtime.connectivity import Connectivity, row_pointers
from mfgen.runtime.model import CompiledModel, CompiledModesModel, uniform_states

INT32_MAX = 2**31 - 1  # the C context counts monitor periods in int32
MAX_THREADS = 256  # MF_MAX_THREADS in stages.c.j2
# threads=None starts threads from this many nodes. On an idle machine two threads pay from
# ~250 nodes (1.4x; 1.6x at 500, 1.7-1.8x at 1 000: benchmarks/engine_results.md, round 6),
# but below 1 000 a step takes under ~30 us, and a thread descheduled by other work for a
# time slice costs more than many steps; `threads=2` asks for them anyway.
PARALLEL_MIN_NODES = 1000
# From this many nodes, where the history ring is on 4 KiB pages, the delayed coupling reads it
# in address order (coupling_order='ring'): 0.65-0.92x the time of CSR order at 30 000 to
# 100 000 nodes (0.84-1.21x at 10 000), but 1.2-1.8x on the transparent huge pages NumPy asks
# for (madvise), where the CSR order's random reads miss the TLB far less
# (benchmarks/engine_results.md).
RING_ORDER_MIN_NODES = 30_000
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
CHECKPOINT_FORMAT = 1
MAX_HISTORY_BYTES = 8 * 2**30  # a delay ring larger than this is a unit mistake, not a model


def numpy_huge_pages() -> bool:
    """Whether NumPy's large arrays (the history ring) get transparent huge pages: Linux with
    THP 'always' or 'madvise' (NumPy advises them unless NUMPY_MADVISE_HUGEPAGE=0). Elsewhere
    the ring-order coupling has not been measured, so CSR order stays (False is returned only
    where 4 KiB pages are certain)."""
    try:
        setting = THP_SETTING.read_text()
    except OSError:
        return True
    if "[never]" in setting:
        return False
    return "[always]" in setting or os.environ.get("NUMPY_MADVISE_HUGEPAGE", "1") != "0"


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


def _finite(name: str, value: Any) -> float:
    """`value` as a finite float, or a ValueError naming the argument (also for 10**400)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


class DeferredInterrupt:
    """Ctrl-C during a run asks the run to stop at the end of the current C chunk instead of
    raising between Python statements, so no completed step's samples are ever dropped.
    A second Ctrl-C raises at once. Installed only over Python's default SIGINT handler,
    from the main thread."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Simulation:
    """A resumable simulation of one model on one network."""

    def __new__(cls, model: Any = None, *args: Any, **kwargs: Any) -> Any:
        # A model with modes gets its adapter (TVB's layout at the boundary, this engine on
        # its kernel_model inside): runtime/modes_simulation.py.
        if cls is Simulation and isinstance(model, CompiledModesModel):
            from mfgen.runtime.modes_simulation import ModesSimulation

            return ModesSimulation(model, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, model: CompiledModel, connectivity: Connectivity | None = None, *,
                 coupling: str = "linear", coupling_parameters: Mapping[str, float] | None = None,
                 integrator: str = "heun", dt: float = 0.1,
                 noise: Mapping[str, float] | Sequence[float] | None = None,
                 monitors: Sequence[Monitor] | None = None,
                 initial_state: np.ndarray | None = None,
                 initial_history: np.ndarray | None = None, seed: int = 0,
                 parameters: Mapping[str, Any] | None = None, local_coupling: float = 0.0,
                 n_nodes: int | None = None, coupling_precision: str = "float64",
                 threads: int | None = None, coupling_order: str = "auto"):
        if not isinstance(model, CompiledModel):
            raise TypeError("simulate needs a compiled model (mfgen.load(spec)), not the "
                            "NumPy reference")
        # The integrators the module exports, as the generator described them (manifest).
        integrators = {entry["name"]: entry for entry in model.manifest["integrators"]}
        if integrator not in integrators:
            raise ValueError(f"unknown integrator '{integrator}'; "
                             + (did_you_mean(str(integrator), integrators)
                                or f"choose one of {', '.join(integrators)}"))
        try:
            dt = float(dt)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"dt must be a finite number, got {dt!r}") from None
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be positive, got {dt}")
        local_coupling = _finite("local_coupling", local_coupling)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
                not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if n_nodes is not None and (int(n_nodes) != n_nodes or n_nodes < 1):
            raise ValueError(f"n_nodes must be a positive integer, got {n_nodes}")
        if coupling_precision not in ("float64", "float32"):
            raise ValueError("coupling_precision must be 'float64' or 'float32' (TVB's "
                             f"history precision), got {coupling_precision!r}")
        self.model = model
        self.integrator = integrator
        self.dt = dt
        self.seed = int(seed)
        self.local_coupling = local_coupling
        self.coupling_precision = coupling_precision
        stochastic = bool(integrators[integrator]["stochastic"])
        self._ffi = ffi = model.simulator_module.ffi
        self._buffers = _Buffers()

        if connectivity is None:
            n = n_nodes or (np.shape(initial_state)[1] if initial_state is not None else 1)
            connectivity = Connectivity.empty(n)
        self.connectivity = connectivity
        n = connectivity.n_regions
        self.n_nodes = n
        # Coupling function and its parameters (runtime values), as compiled into the module.
        couplings = model.manifest["couplings"]
        names = [c["name"] for c in couplings]
        if coupling not in names:
            raise ValueError(f"unknown coupling '{coupling}'; choose one of {', '.join(names)}")
        entry = couplings[names.index(coupling)]
        # A combined coupling (pre over x_j[0], x_j[1], ...) reads that many coupled variables.
        if int(entry.get("needs_cvars", 0)) > len(model.cvar):
            raise ValueError(f"coupling '{coupling}' combines {entry['needs_cvars']} coupled "
                             f"variables but model '{model.name}' couples "
                             f"{len(model.cvar)}")
        sum_kind = str(entry["sum"])
        symbol = entry.get("symbol")  # a coupling function of the spec, in the model module
        # float64 sums a row's zero-length self-connection last, in every coupling order: a
        # block sums the rest of the row once and adds it at each step, the same bits
        # (float32 keeps TVB's order: a block stores each connection's products instead)
        layout = _network_layout(connectivity, self.dt, sum_kind, len(model.cvar),
                                 self_loops_last=coupling_precision == "float64" and bool(
                                     entry.get("blocks")) and not symbol)
        self._layout = layout
        # provenance of the network as this run copies it (the user may change it later)
        self._connectivity_digests = {key: value[:16] for key, value in layout.digests.items()}
        self.horizon = layout.horizon
        # the mirrored ring (two copies of each slot), float32 in float32 mode (coupling
        # blocks add a node-major copy only where it fits: _blocks_refused)
        ring_values = 2 * self.horizon * max(len(model.cvar), 1) * n
        history_bytes = ring_values * (4 if coupling_precision == "float32" else 8)
        if history_bytes > MAX_HISTORY_BYTES:
            raise ValueError(
                f"the longest delay is {self.horizon - 1} steps (tract length / speed / dt): "
                f"its history would need {history_bytes / 2**30:.1f} GiB; check the tract "
                "lengths' unit (mm), the speed (mm/ms) and dt (ms)")
        values = {name: float(value) for name, value in entry["parameters"]}
        for key, value in (coupling_parameters or {}).items():
            if key not in values:
                raise ValueError(f"coupling '{coupling}' has no parameter '{key}'; it has "
                                 f"{', '.join(values) or 'none'}")
            values[key] = _finite(f"coupling parameter '{key}'", value)
        self.coupling = coupling
        self.coupling_parameters = values
        coupling_vector = self._buffers.keep(np.array(list(values.values()) or [0.0]))

        # Parameters (shared or per node), noise.
        self.parameters = dict(parameters or {})
        packed, per_node = model.pack_parameters(self.parameters, n)
        # for the results' config: the defaults with the overrides pack_parameters checked
        self._parameter_record = {key: np.asarray(value, dtype=float).tolist() for key, value
                                  in {**model.parameters, **self.parameters}.items()}
        packed = self._buffers.keep(np.ascontiguousarray(packed))
        self.nsig = _as_noise(model, noise)
        noisy = np.flatnonzero(self.nsig).astype(np.int32)
        self._noisy_states = noisy  # the rows of a noise_array the C loop reads
        if stochastic and not noisy.size:
            raise ValueError(f"integrator '{integrator}' is stochastic: give noise="
                             "{state: nsig, ...} (TVB's Additive nsig)")
        if not stochastic and noisy.size:
            stochastic_names = [k for k, v in integrators.items() if v["stochastic"]]
            raise ValueError(f"noise was given but integrator '{integrator}' is deterministic;"
                             f" use one of {', '.join(stochastic_names)}")
        self._noisy = self._buffers.keep(noisy if noisy.size else np.zeros(1, np.int32))
        gain = self._buffers.keep(np.sqrt(2.0 * self.nsig[noisy]) if noisy.size
                                  else np.zeros(1))

        # State and history (the ring is allocated once the coupling order is known): the C
        # context points at these arrays for its whole life.
        state, history = self._initial(initial_state, initial_history)
        self._state = self._buffers.keep(state)

        # Monitors.
        self.monitor_specs = list(monitors) if monitors is not None else [Raw()]
        self._monitors = ffi.new("mf_monitor[]", max(len(self.monitor_specs), 1))
        self._monitor_meta: list[tuple[Monitor, tuple[str, ...], int]] = []
        self._accumulators: list[np.ndarray] = []
        kinds = {entry["name"]: entry["kind"] for entry in model.manifest["monitors"]}
        labels = set()
        observing = False
        for index, spec in enumerate(self.monitor_specs):
            if spec.label in labels:
                raise ValueError(f"two monitors are labelled '{spec.label}'; name them")
            labels.add(spec.label)
            if spec.kind not in kinds:
                raise ValueError(f"monitor '{spec.label}': unknown kind '{spec.kind}'; "
                                 f"choose one of {', '.join(kinds)}")
            variables = spec.variables or model.state_variables
            # States, then the spec's observables (computed in C when a monitor records one).
            recordable = [*model.state_variables, *model.manifest.get("observables", [])]
            unknown = [v for v in variables if v not in recordable]
            if unknown:
                raise ValueError(f"monitor '{spec.label}': unknown variables {unknown}; "
                                 f"recordable: {', '.join(recordable)}")
            period = 1
            if spec.kind != "raw":
                try:
                    ok = spec.period is not None and spec.period > 0 and np.isfinite(spec.period)
                except (TypeError, OverflowError):
                    ok = False
                if not ok:
                    raise ValueError(f"monitor '{spec.label}' needs a positive finite period "
                                     f"(ms), got {spec.period!r}")
                steps = round(float(spec.period) / self.dt)
                if steps > INT32_MAX:
                    raise ValueError(f"monitor '{spec.label}': period {spec.period} ms is "
                                     f"{steps} steps of dt = {self.dt} ms, beyond the "
                                     f"{INT32_MAX} steps a monitor period can have")
                period = int(steps)
                if period < 1 or abs(period * self.dt - spec.period) > 1e-9 * spec.period:
                    raise ValueError(f"monitor '{spec.label}': period {spec.period} ms is not "
                                     f"a multiple of dt = {self.dt} ms")
            voi = self._buffers.keep(np.array([recordable.index(v) for v in variables],
                                              dtype=np.int32))
            observing = observing or bool((voi >= model.n_states).any())
            accumulator = self._buffers.keep(np.zeros((len(variables), n)))
            self._accumulators.append(accumulator)
            c = self._monitors[index]
            c.kind = kinds[spec.kind]
            c.period = period
            c.n_voi = len(variables)
            c.voi = ffi.cast("int32_t *", voi.ctypes.data)
            c.accumulator = ffi.cast("double *", accumulator.ctypes.data)
            c.out = ffi.NULL
            c.capacity = 0
            c.n_out = 0
            self._monitor_meta.append((spec, tuple(variables), period))
        # Samples of finished runs per monitor (views of the arrays the C loop wrote), the
        # arrays of the run in progress, and the index of each monitor's first sample.
        self._records: list[list[np.ndarray]] = [[] for _ in self.monitor_specs]
        self._active: list[np.ndarray] | None = None
        self._first_sample = [0] * len(self.monitor_specs)

        self.threads = self._threads(threads, n)

        # The C context.
        sim = ffi.new("mf_sim *")
        sim.n_threads = self.threads
        sim.dfun = ffi.cast("mf_dfun", model.dfun_address(per_node))
        sim.n_state = model.n_states
        sim.n_cvar = len(model.cvar)
        boundaries = [model.states[name].boundaries for name in model.state_variables]
        bounded = np.array([k for k, b in enumerate(boundaries) if b != (None, None)],
                           dtype=np.int32)
        lower = np.array([-np.inf if b[0] is None else b[0] for b in boundaries])
        upper = np.array([np.inf if b[1] is None else b[1] for b in boundaries])
        for name, array, ctype in (
                ("cvar_state", model.cvar.astype(np.int32), "int32_t *"),
                ("bounded", bounded, "int32_t *"), ("lower", lower, "double *"),
                ("upper", upper, "double *")):
            array = self._buffers.keep(np.ascontiguousarray(array) if array.size
                                       else np.zeros(1, array.dtype))
            setattr(sim, name, ffi.cast(ctype, array.ctypes.data))
        sim.n_bounded = int(bounded.size)
        sim.n_nodes = n
        sim.t = 0
        sim.dt = self.dt
        sim.params = ffi.cast("double *", packed.ctypes.data)
        sim.local_coupling = self.local_coupling
        sim.horizon = self.horizon
        for name, array, ctype in (("row_ptr", layout.row_ptr, "int64_t *"),
                                   ("offset", layout.offset, "int64_t *"),
                                   ("weight", layout.weight, "double *"),
                                   ("weight32", layout.weight32, "float *")):
            array = self._buffers.keep(array if array.size else np.zeros(1, array.dtype))
            setattr(sim, name, ffi.cast(ctype, array.ctypes.data))
        block_steps = int(model.manifest["block_steps"])
        self.coupling_order = self._coupling_order(
            coupling_order, n, len(layout.col),
            # blocks: the time-major ring unmirrored, and its node-major copy mirrored
            blocks=self._blocks_refused(entry, symbol, layout, block_steps,
                                        history_bytes // 2 + history_bytes))
        # The delay ring the C loop keeps (float32 in float32 mode, as TVB's: the coupling
        # reads nothing else). The per-step orders read it mirrored, slots s and s + horizon
        # the same (no wrap-around test in C); blocks read only the first copy.
        mirrored = self.coupling_order != "blocks"
        self._history = self._buffers.keep(np.empty(
            ((2 if mirrored else 1) * self.horizon, *history.shape[1:]),
            np.float32 if coupling_precision == "float32" else np.float64))
        self._history[: self.horizon] = history
        if mirrored:
            self._history[self.horizon:] = history
        self._sort_connections(sim, layout)
        sim.block_steps = block_steps if self.coupling_order == "blocks" else 0
        self._set_up_blocks(sim, layout)
        # one row's terms per thread (float32 rows; a float32 block's: block_steps floats,
        # half as many doubles, each)
        per_term = block_steps // 2 if sim.block_steps and coupling_precision == "float32" \
            and layout.self_edge is None else 1
        sim.max_row = max(layout.longest_row, 1) * per_term
        terms = self._buffers.keep(np.zeros(sim.max_row * self.threads))
        sim.terms = ffi.cast("double *", terms.ctypes.data)
        sim.coupling_kind = names.index(coupling)
        sim.coupling_float32 = int(coupling_precision == "float32")
        sim.coupling_params = ffi.cast("double *", coupling_vector.ctypes.data)
        # A coupling function of the spec (`couplings:`) lives in the model's module.
        sim.user_coupling = ffi.cast("mf_user_coupling_fn", model.function_address(symbol)) \
            if symbol else ffi.NULL
        ring = ffi.cast("float *" if coupling_precision == "float32" else "double *",
                        self._history.ctypes.data)
        sim.history, sim.history32 = (ffi.NULL, ring) if coupling_precision == "float32" \
            else (ring, ffi.NULL)
        # pre(x_j) once per node and step, where the coupling's pre reads the sources alone
        if entry.get("cached_pre"):   # bundled couplings only (a spec's own: per connection)
            self._pre_history = self._buffers.keep(np.zeros(self._history.shape))
            sim.pre_history = ffi.cast("double *", self._pre_history.ctypes.data)
        else:
            sim.pre_history = ffi.NULL
        sim.n_noisy = int(noisy.size)
        sim.noisy_states = ffi.cast("int32_t *", self._noisy.ctypes.data)
        sim.noise_gain = ffi.cast("double *", gain.ctypes.data)
        sim.seed = self.seed
        sim.noise_in = ffi.NULL
        # TVB's Multiplicative noise, where the spec declares b(x) (multiplicative_noise:).
        if model.manifest.get("multiplicative_noise") and noisy.size:
            values = self._buffers.keep(np.zeros((self.threads, model.n_states, n)))
            sim.noise_b = ffi.cast("mf_dfun", model.function_address(
                "noise_b_per_node_nodes" if per_node else "noise_b_uniform_nodes"))
            sim.noise_b_values = ffi.cast("double *", values.ctypes.data)
        else:
            sim.noise_b = ffi.NULL
        # Observables: the model module's observe kernel, only when a monitor records one.
        n_observed = len(model.manifest.get("observables", []))
        if observing:
            observed = self._buffers.keep(np.zeros((self.threads, n_observed, n)))
            zeros = self._buffers.keep(np.zeros((max(len(model.cvar), 1), n)))
            sim.observe = ffi.cast("mf_dfun", model.function_address(
                "observe_per_node_nodes" if per_node else "observe_uniform_nodes"))
            sim.observed = ffi.cast("double *", observed.ctypes.data)
            sim.observed_coupling = ffi.cast("double *", zeros.ctypes.data)
        else:
            sim.observe = ffi.NULL
        sim.n_observed = n_observed if observing else 0
        sim.n_monitors = len(self.monitor_specs)
        sim.monitors = self._monitors
        # Per thread: the stages, the stage input, the noise, the coupling (n_cvar + 1 rows)
        # and, in a team, the thread's copy of the state (stages.c.j2, mf_steps_*).
        stages = int(model.manifest["max_stages"])
        rows = (stages + 2) * model.n_states + len(model.cvar) + 1 + (
            model.n_states if self.threads > 1 else 0)
        scratch = self._buffers.keep(np.zeros((self.threads, rows * n)))
        sim.scratch = ffi.cast("double *", scratch.ctypes.data)
        sim.scratch_per_thread = rows * n
        self._sim = sim
        model.simulator_module.lib.mf_fill_pre_history(sim)  # from the initial history
        self._state_pointer = ffi.cast("double *", self._state.ctypes.data)
        self._run = model.simulator(integrator)
        self._initial_state = state.copy()
        self._initial_state.flags.writeable = False
        # its digest once: every result's config names it
        self._initial_digest = hashlib.sha256(self._initial_state.tobytes()).hexdigest()[:16]

    # -- set-up ------------------------------------------------------------------------------
    @staticmethod
    def _coupling_order(order: str, n: int, n_connections: int, blocks: str | None) -> str:
        """'rows': the delayed coupling reads each row's connections in CSR order, every step;
        'ring': first every connection in ring-address order, then the row sums (pays once the
        ring no longer fits the caches: RING_ORDER_MIN_NODES); 'blocks': the coupling of
        several steps in one pass (coupling blocks; `blocks` says why not, None if they can
        run). All three give the same bits. 'auto': blocks where they can run, else by size."""
        orders = ("auto", "rows", "ring", "blocks")
        if order not in orders:
            raise ValueError(f"coupling_order must be one of {', '.join(map(repr, orders))}, "
                             f"got {order!r}")
        if order == "blocks" and blocks is not None:
            raise ValueError(f"coupling_order='blocks' cannot be used here: {blocks}; use "
                             "'auto'")
        if order == "auto":
            order = "blocks" if blocks is None else \
                "ring" if n >= RING_ORDER_MIN_NODES and not numpy_huge_pages() else "rows"
        return order if n_connections else "rows"

    @staticmethod
    def _blocks_refused(entry: Mapping[str, Any], symbol: str | None, layout: _NetworkLayout,
                        block_steps: int, history_bytes: int) -> str | None:
        """Why coupling blocks cannot compute this coupling, or None where they can: a
        bundled coupling that sums the history alone (manifest `blocks`, e.g. linear) over a
        network whose shortest delay is at least block_steps - 1 steps (a block's last step
        then reads history stored by its first) but for zero-length self-connections
        (added at each step), where the rings with the blocks' node-major copy
        (`history_bytes`) stay under MAX_HISTORY_BYTES."""
        delay, self_loops = layout.delay, layout.self_loops
        if symbol:
            return (f"coupling '{entry['name']}' is the spec's own: blocks run the bundled "
                    "couplings compiled into the simulator")
        if not entry.get("blocks"):
            return (f"coupling '{entry['name']}' does not sum the delayed states alone "
                    "(pre: x_j, post of gx)")
        if not delay.size:
            return "the network has no connections"
        if int(delay.max()) < block_steps - 1:   # the ring must hold a block's slots
            return (f"every delay is under {block_steps - 1} steps (tract length / speed / "
                    "dt)")
        shortest = int(delay[~self_loops].min(initial=block_steps))
        if shortest < block_steps - 1:
            return (f"the shortest delay is {shortest} steps, under {block_steps - 1} "
                    "(tract length / speed / dt), and not a zero-length self-connection")
        if history_bytes > MAX_HISTORY_BYTES:
            return (f"the history with its node-major copy would need "
                    f"{history_bytes / 2**30:.1f} GiB")
        return None

    def _set_up_blocks(self, sim: Any, layout: _NetworkLayout) -> None:
        """Coupling blocks' arrays: each connection's read of the node-major ring, the ring
        (filled from the history), the block's coupling and, with zero-length
        self-connections, each node's self-connection and the block's products."""
        ffi = self._ffi
        self._block_history = None
        for name in ("block_offset", "block_history", "block_history32", "block_coupling",
                     "self_edge", "lane_terms"):
            setattr(sim, name, ffi.NULL)
        if not sim.block_steps:
            return
        n_cvar, horizon = len(self.model.cvar), self.horizon
        if layout.self_edge is not None:
            sim.self_edge = ffi.cast("int64_t *", self._buffers.keep(layout.self_edge).ctypes.data)
            if self.coupling_precision == "float32":   # the block's products, by step
                terms = np.zeros((sim.block_steps, n_cvar, len(layout.col)), np.float32)
                sim.lane_terms = ffi.cast("float *", self._buffers.keep(terms).ctypes.data)
        offset = self._buffers.keep(layout.block_offset(sim.block_steps))
        dtype = np.float32 if self.coupling_precision == "float32" else np.float64
        self._block_history = self._buffers.keep(
            np.zeros((self.n_nodes, n_cvar, 2 * horizon), dtype))
        self._fill_block_history()
        coupling = self._buffers.keep(
            np.zeros((self.threads, sim.block_steps, n_cvar, self.n_nodes)))
        sim.block_offset = ffi.cast("int64_t *", offset.ctypes.data)
        ring = ffi.cast("double *" if dtype == np.float64 else "float *",
                        self._block_history.ctypes.data)
        sim.block_history, sim.block_history32 = (ring, ffi.NULL) if dtype == np.float64 \
            else (ffi.NULL, ring)
        sim.block_coupling = ffi.cast("double *", coupling.ctypes.data)

    def _fill_block_history(self) -> None:
        """The node-major ring from the history (both copies of each slot), as the C store
        writes it: at set-up and on restore."""
        if self._block_history is not None:
            by_node = self._history[: self.horizon].transpose(2, 1, 0)
            self._block_history[..., : self.horizon] = by_node   # in place: no temporary
            self._block_history[..., self.horizon:] = by_node

    def _sort_connections(self, sim: Any, layout: _NetworkLayout) -> None:
        """The ring-address order of each thread's block of connections (the node split of
        mf_node_range in stages.c.j2), so that a thread's first pass touches only its own rows'
        entries of edge_values."""
        row_ptr, offset, targets = layout.row_ptr, layout.offset, layout.targets
        ffi = self._ffi
        sim.n_sorted_blocks = 0
        self._edge_values = None
        if self.coupling_order != "ring":
            for name in ("sorted_bounds", "sorted_offset", "sorted_edge", "sorted_row",
                         "edge_values"):
                setattr(sim, name, ffi.NULL)
            return
        # each thread's first node, and n: the split as the C stages make it
        node_range = ffi.new("int64_t[2]")
        bounds = np.empty(self.threads + 1, dtype=np.int64)
        for thread in range(self.threads):
            self.model.simulator_module.lib.mf_thread_nodes(self.n_nodes, thread,
                                                            self.threads, node_range)
            bounds[thread], bounds[thread + 1] = node_range
        order = np.empty(len(offset), dtype=np.int64)
        for lo, hi in zip(row_ptr[bounds[:-1]], row_ptr[bounds[1:]]):
            order[lo:hi] = lo + np.argsort(offset[lo:hi], kind="stable")
        self._edge_values = np.zeros(len(offset))  # float32 mode: the terms' own type in it
        for name, array, ctype in (("sorted_bounds", bounds, "int64_t *"),
                                   ("sorted_offset", offset[order], "int64_t *"),
                                   ("sorted_edge", order, "int64_t *"),
                                   ("sorted_row", targets[order], "int32_t *"),
                                   ("edge_values", self._edge_values, "double *")):
            array = self._buffers.keep(np.ascontiguousarray(array))
            setattr(sim, name, ffi.cast(ctype, array.ctypes.data))
        sim.n_sorted_blocks = self.threads

    def _threads(self, threads: int | None, n: int) -> int:
        """Threads over the nodes: results are the same for any count (tested), so the
        default is only about speed: from PARALLEL_MIN_NODES nodes on, the cores that are idle
        now (a step waits at two barriers for its slowest thread: on a busy machine a thread
        descheduled for a time slice costs more than the whole step; measured 10-30x slower
        with 2 threads on 2 loaded cores), else one."""
        available = int(self.model.simulator_module.lib.mf_max_threads())
        if threads is None:
            if n < PARALLEL_MIN_NODES or available == 1:
                return 1
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                cores = os.cpu_count() or 1
            busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
            idle = int(cores - busy + 0.5)
            return max(1, min(idle, available, MAX_THREADS))
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or \
                not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be an integer in [1, {MAX_THREADS}], got "
                             f"{threads!r}")
        if threads > 1 and available == 1:
            raise ValueError(f"threads={threads}: the simulator was built without OpenMP "
                             "(MFGEN_TARGET=c, or a compiler without it); use threads=1")
        return int(threads)

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
            if not np.isfinite(history).all():
                raise ValueError("initial_history contains NaN or infinite values")
            if initial_state is None:
                initial_state = history[-1]
        if initial_state is None:
            initial_state = uniform_states(model, n, self.seed)
        state = np.array(initial_state, dtype=np.float64, order="C")
        if state.shape != (model.n_states, n):
            raise ValueError(f"initial_state must have shape ({model.n_states}, {n}), got "
                             f"{state.shape}")
        if not np.isfinite(state).all():
            raise ValueError("initial_state contains NaN or infinite values")
        # Slot (tau mod horizon) holds the coupled states at time tau (steps, tau <= 0); a
        # history shorter than the ring repeats its oldest entry.
        taus = np.arange(-(horizon - 1), 1)
        ring = np.empty((horizon, len(model.cvar), n))
        if initial_history is not None:
            index = np.maximum(history.shape[0] - 1 + taus, 0)
            ring[taus % horizon] = history[:, model.cvar][index]
        else:
            ring[:] = state[model.cvar]
        return state, ring

    # -- the state ---------------------------------------------------------------------------
    @property
    def state(self) -> np.ndarray:
        """The current state (n_state, n_nodes); the C loop advances this array in place."""
        return self._state

    @state.setter
    def state(self, value: Any) -> None:
        # Copied into the array the C context points at: never a new pointer, never another
        # shape or dtype in C.
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"state must be a real float64 array, got dtype {array.dtype}")
        if array.shape != self._state.shape:
            raise ValueError(f"state must have shape {self._state.shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("state contains NaN or infinite values")
        self._state[...] = array

    # -- running -----------------------------------------------------------------------------
    @property
    def steps_done(self) -> int:
        return int(self._sim.t)

    @property
    def time(self) -> float:
        return self.steps_done * self.dt

    def _begin(self, n_steps: int) -> None:
        """Allocate each monitor's output for the next `n_steps` steps, once: the C loop
        writes the samples straight into it, counting them in the C context."""
        done = self.steps_done
        active = []
        for index, (_spec, variables, period) in enumerate(self._monitor_meta):
            capacity = (done + n_steps) // period - done // period
            out = np.empty((max(capacity, 1), len(variables), self.n_nodes))
            active.append(out)
            monitor = self._monitors[index]
            monitor.out = self._ffi.cast("double *", out.ctypes.data)
            monitor.capacity = capacity
            monitor.n_out = 0
        self._active = active

    def _finish(self) -> None:
        """Keep what the run wrote (views, no copy) and detach the output arrays from C."""
        if self._active is None:
            return
        for index, out in enumerate(self._active):
            monitor = self._monitors[index]
            if monitor.n_out:
                self._records[index].append(out[: monitor.n_out])
            monitor.out = self._ffi.NULL
            monitor.capacity = 0
            monitor.n_out = 0
        self._active = None

    def _advance(self, n_steps: int, noise_array: np.ndarray | None) -> int:
        """One C call of `n_steps` steps into the outputs of the run in progress."""
        ffi, sim = self._ffi, self._sim
        noise_buffer = None
        if noise_array is not None:
            noise_array = np.asarray(noise_array, dtype=np.float64)
            expected = (n_steps, self.model.n_states, self.n_nodes)
            if noise_array.shape != expected:
                raise ValueError(f"noise_array must have shape {expected}, got "
                                 f"{noise_array.shape}")
            noise_buffer = np.ascontiguousarray(noise_array[:, self._noisy_states])
            sim.noise_in = ffi.cast("double *", noise_buffer.ctypes.data)
        try:
            return int(self._run(sim, self._state_pointer, n_steps))
        finally:
            sim.noise_in = ffi.NULL

    def advance(self, n_steps: int, noise_array: np.ndarray | None = None) -> int:
        """Run `n_steps` steps (one C call); returns the steps completed.

        noise_array: optional standard normal increments (n_steps, n_state, n_nodes) to use
        instead of the built-in generator (rows of noise-free states are ignored).
        """
        n_steps = int(n_steps)
        if n_steps <= 0:
            return 0
        self._begin(n_steps)
        try:
            return self._advance(n_steps, noise_array)
        finally:
            self._finish()

    def run(self, duration: float, *, chunk_steps: int = 2000,
            progress: Callable[[int, int], None] | None = None,
            noise_array: np.ndarray | None = None) -> SimulationResult:
        """Advance by `duration` ms in chunks; Ctrl-C stops cleanly at the end of the current
        chunk and returns the partial result (`interrupted=True`); a non-finite state raises
        SimulationError carrying it."""
        duration = _finite("duration", duration)
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
        failure = None
        completed = 0
        with DeferredInterrupt() as sigint:
            self._begin(total)
            try:
                while completed < total and not sigint.requested:
                    chunk = min(int(chunk_steps), total - completed)
                    noise = None if noise_array is None else \
                        noise_array[completed:completed + chunk]
                    done = self._advance(chunk, noise)
                    completed += done
                    if progress is not None:
                        progress(completed, total)
                    if done < chunk:
                        failure = self._blow_up_message()
                        break
            except KeyboardInterrupt:
                interrupted = True
            finally:
                self._finish()
            interrupted = interrupted or (sigint.requested and completed < total)
        result = self.result(time.perf_counter() - started)
        result.interrupted = interrupted
        result.config["steps_this_run"] = self.steps_done - start_step
        if failure is not None:
            raise SimulationError(failure, result)
        return result

    def _blow_up_message(self) -> str:
        sim = self._sim
        variable = self.model.state_variables[sim.bad_state]
        return (f"non-finite value in '{variable}' at node {sim.bad_node} in step "
                f"{sim.bad_step} (t = {sim.bad_step * self.dt:g} ms); the state before that "
                "step and the monitors up to it are in .result")

    def result(self, wall_time: float = 0.0) -> SimulationResult:
        """Every sample recorded so far (a view of the run's output when there was one run)."""
        monitors = {}
        for index, (spec, variables, period) in enumerate(self._monitor_meta):
            chunks = list(self._records[index])
            if self._active is not None and self._monitors[index].n_out:
                chunks.append(self._active[index][: self._monitors[index].n_out])
            if len(chunks) == 1:
                data = chunks[0]
            elif chunks:
                data = np.concatenate(chunks)
            else:
                data = np.empty((0, len(variables), self.n_nodes))
            steps = period * (self._first_sample[index] + np.arange(1, data.shape[0] + 1))
            times = steps * self.dt
            if spec.kind == "temporal_average":
                times = (steps - period / 2.0) * self.dt  # TVB: mid-point of the window
            monitors[spec.label] = MonitorResult(times, data, variables)
        return SimulationResult(monitors, self._state.copy(), self.steps_done, self.config(),
                                wall_time=wall_time)

    # -- checkpoints -------------------------------------------------------------------------
    def _config_digest(self) -> int:
        config = self.config()
        # neither the thread count nor the order of the coupling sums changes a bit
        for key in ("steps", "initial_state_sha256", "threads", "coupling_order"):
            config.pop(key)
        text = json.dumps(config, sort_keys=True, default=str)
        return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)

    def checkpoint(self) -> dict[str, np.ndarray | int | float]:
        """Everything needed to continue this simulation bit for bit: the step counter, the
        state, the delay ring, each monitor's accumulator and phase. Plain arrays and
        numbers (HDF5/npz friendly); `restore` it into a Simulation built the same way."""
        checkpoint: dict[str, np.ndarray | int | float] = {
            "format": CHECKPOINT_FORMAT,
            "config_digest": self._config_digest(),
            "step": self.steps_done,
            "state": self._state.copy(),
            "history": self._history[: self.horizon].astype(np.float64),
        }
        for index, accumulator in enumerate(self._accumulators):
            checkpoint[f"monitor_{index}_accumulator"] = accumulator.copy()
            checkpoint[f"monitor_{index}_phase"] = int(self._monitors[index].phase)
        return checkpoint

    def restore(self, checkpoint: Mapping[str, Any]) -> None:
        """Continue from `checkpoint` (from `checkpoint()` of a Simulation with the same
        model, network, options and monitors). Samples recorded before are dropped: the next
        run's samples continue the checkpointed run's numbering and times."""
        def get(key: str) -> Any:
            if key not in checkpoint:
                raise ValueError(f"checkpoint has no '{key}'; not made by "
                                 "Simulation.checkpoint()")
            return checkpoint[key]

        if int(get("format")) != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {get('format')} is not {CHECKPOINT_FORMAT}")
        if int(get("config_digest")) != self._config_digest():
            raise ValueError("checkpoint comes from a simulation with another configuration "
                             "(model, network, dt, integrator, coupling, parameters, noise, "
                             "seed or monitors); restore it into one built the same way")
        step = int(get("step"))
        if step < 0:
            raise ValueError(f"checkpoint step must be non-negative, got {step}")
        # the ring (float32 in float32 mode: a checkpoint holds its values as float64)
        arrays = {"state": self._state, "history": self._history[: self.horizon]}
        arrays.update({f"monitor_{i}_accumulator": a for i, a in enumerate(self._accumulators)})
        checked = {}
        for key, target in arrays.items():
            value = np.asarray(get(key))
            if value.shape != target.shape or value.dtype != np.float64:
                raise ValueError(f"checkpoint '{key}' must be float64 of shape {target.shape}, "
                                 f"got {value.dtype} {value.shape}")
            checked[key] = value
        phases = []
        for index, (_spec, _variables, period) in enumerate(self._monitor_meta):
            phase = int(get(f"monitor_{index}_phase"))
            if not 0 <= phase < period:
                raise ValueError(f"checkpoint monitor_{index}_phase must be in [0, {period}), "
                                 f"got {phase}")
            phases.append(phase)
        for key, value in checked.items():
            arrays[key][...] = value
        if self.coupling_order != "blocks":   # the per-step orders' mirror
            self._history[self.horizon:] = self._history[: self.horizon]
        self.model.simulator_module.lib.mf_fill_pre_history(self._sim)  # from the history
        self._fill_block_history()
        for index, phase in enumerate(phases):
            self._monitors[index].phase = phase
            self._first_sample[index] = step // self._monitor_meta[index][2]
            self._records[index] = []
        self._sim.t = step

    def config(self) -> dict[str, Any]:
        """Everything needed to reproduce the run (provenance)."""
        model = self.model
        return {
            "mfgen_version": __version__,
            "model": model.name,
            "module_key": model.module_key,
            "ir_digest": model.metadata.get("ir_digest", ""),
            "spec_sources": model.metadata.get("sources", []),
            "parameters": copy.deepcopy(self._parameter_record),
            "integrator": self.integrator,
            "dt": self.dt,
            "steps": self.steps_done,
            "coupling": self.coupling,
            "coupling_parameters": self.coupling_parameters,
            "coupling_precision": self.coupling_precision,
            "coupling_order": self.coupling_order,  # how it was summed (the same bits)
            "local_coupling": self.local_coupling,
            "noise_nsig": dict(zip(model.state_variables, self.nsig.tolist())),
            "seed": self.seed,
            "threads": self.threads,
            "connectivity": {"source": self.connectivity.source,
                             "n_regions": self.n_nodes,
                             "speed": self.connectivity.speed,
                             **self._connectivity_digests},
            "initial_state_sha256": self._initial_digest,
            "monitors": [{"kind": s.kind, "period": s.period, "variables": list(v),
                          "label": s.label} for s, v, _ in self._monitor_meta],
        }


def simulate(model: CompiledModel, connectivity: Connectivity | None = None, *,
             duration: float = 1000.0, chunk_steps: int = 2000,
             progress: Callable[[int, int], None] | None = None,
             noise_array: np.ndarray | None = None, **options: Any) -> SimulationResult:
    """Simulate `model` on `connectivity` for `duration` ms. See `Simulation` for options."""
    simulation = Simulation(model, connectivity, **options)
    return simulation.run(duration, chunk_steps=chunk_steps, progress=progress,
                          noise_array=noise_array)


def run_batch(simulations: Sequence[Simulation], duration: float, *, threads: int = 1,
              chunk_steps: int = 2000, stop: Callable[[], bool] | None = None
              ) -> list[SimulationResult | SimulationError]:
    """Advance many independent simulations (of one model and network, typically; any
    models of one simulator module may be mixed) together: one C call
    per chunk of steps runs every set (simulate_batch_<integrator>), in parallel over the
    sets on `threads` OpenMP threads. Each set keeps its own context (parameters, coupling
    parameters, noise amplitudes and seed, initial state, monitors), so its result equals
    `simulation.run(duration)` alone bit for bit; nothing is recompiled.

    Returns, per simulation, its SimulationResult or the SimulationError of a set that hit a
    non-finite value (the others go on). `stop()` is asked after every chunk; when it says
    True the runs end there (results marked interrupted). A SimulationResult's wall_time is
    the time spent in the kernel calls x threads / sets: the core time one set cost."""
    simulations = list(simulations)
    if not simulations:
        return []
    for simulation in simulations:  # a ModesSimulation (runtime/modes_simulation.py) is not
        if not isinstance(simulation, Simulation):  # batched: its results need converting
            raise TypeError(f"run_batch takes Simulations of models without modes, got "
                            f"{simulation!r}; run it alone with .run()")
    first = simulations[0]
    if len({id(simulation) for simulation in simulations}) != len(simulations):
        raise ValueError("a simulation appears twice in the batch: each set needs its own "
                         "Simulation (its own state and history)")
    for other in simulations[1:]:
        if other.model.simulator_module is not first.model.simulator_module or \
                other.integrator != first.integrator or other.dt != first.dt or \
                other.n_nodes != first.n_nodes:
            raise ValueError("a batch runs simulations of one simulator module, integrator, "
                             "dt and network size")
    available = int(first.model.simulator_module.lib.mf_max_threads())
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or \
            not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an integer in [1, {MAX_THREADS}], got {threads!r}")
    threads = min(int(threads), available)
    duration = _finite("duration", duration)
    total = int(round(duration / first.dt))
    if total < 0 or abs(total * first.dt - duration) > 1e-9 * max(duration, 1.0):
        raise ValueError(f"duration {duration} ms is not a non-negative multiple of "
                         f"dt = {first.dt} ms")
    for simulation in simulations:
        _share_network(first, simulation)

    ffi = first._ffi
    batch = getattr(first.model.simulator_module.lib, f"simulate_batch_{first.integrator}")
    outcomes: list[SimulationResult | SimulationError | None] = [None] * len(simulations)
    active = list(range(len(simulations)))
    failures: dict[int, str] = {}
    done = 0
    interrupted = False
    kernel_time = 0.0  # inside the C calls
    start_steps = [simulation.steps_done for simulation in simulations]
    for simulation in simulations:
        simulation._begin(total)
    try:
        while active and done < total:
            chunk = min(int(chunk_steps), total - done)
            contexts = ffi.new("mf_sim *[]", [simulations[i]._sim for i in active])
            states = ffi.new("double *[]", [simulations[i]._state_pointer for i in active])
            completed = ffi.new("int64_t[]", len(active))
            called = time.perf_counter()
            batch(contexts, states, len(active), chunk, threads, completed)
            kernel_time += time.perf_counter() - called
            for slot, index in enumerate(active):
                if completed[slot] < chunk:
                    failures[index] = simulations[index]._blow_up_message()
            active = [i for i in active if i not in failures]
            done += chunk
            if stop is not None and done < total and stop():
                interrupted = True
                break
    finally:
        for simulation in simulations:
            simulation._finish()
    share = kernel_time * threads / len(simulations)
    for index, simulation in enumerate(simulations):
        result = simulation.result(share)
        result.interrupted = interrupted and index not in failures
        result.config["steps_this_run"] = simulation.steps_done - start_steps[index]
        outcomes[index] = SimulationError(failures[index], result) if index in failures \
            else result
    return outcomes  # type: ignore[return-value]


class _NetworkLayout:
    """A network's connections as the C loop reads them, for one dt, sum kind and number of
    coupled variables, and the network's digests: the same for every Simulation built that
    way, so the Connectivity keeps it (Connectivity._derived) and its Simulations share these
    read-only arrays."""

    def __init__(self, connectivity: Connectivity, dt: float, sum_kind: str, n_cvar: int,
                 self_loops_last: bool):
        n = connectivity.n_regions
        # provenance, kept here so that a Simulation checks the network's values once
        self.digests = connectivity.digests()
        row_ptr, col, weight, delay = connectivity.sparse(dt)   # kept by the network, per dt
        self.horizon = int(delay.max(initial=0)) + 1
        if sum_kind == "efferent":
            # `sum: efferent` (TVB's PreSigmoidal): each node sums its outgoing connections,
            # so its C function gets the transposed connection lists (codegen/coupling.py).
            row_ptr, col, weight, delay = _transposed(row_ptr, col, weight, delay)
        # `sum: reciprocal` (PreSigmoidal(dynamic=False)): connection i <- j reads node i's
        # own value over i -> j (its delay d_ji), none where w_ji = 0 (offset -1: zero).
        reverse = _reverse_connections(row_ptr, col) if sum_kind == "reciprocal" else None
        targets = _rows(row_ptr)  # per connection
        # zero-length self-connections (TVB's default connectome has 66): coupling blocks
        # add them at each step
        self_loops = (col == targets) & (delay == 0)
        if self_loops_last and self_loops.any():   # each row's zero-length self-connection last
            last = np.lexsort((self_loops, targets))   # stable: the others keep their order
            col, weight, delay, self_loops = (a[last] for a in (col, weight, delay, self_loops))
        # Each connection's read of the mirrored ring, relative to the current slot.
        offset = (self.horizon - delay.astype(np.int64)) * (n_cvar * n) + col
        if reverse is not None:
            # offset of j <- i = (horizon - d_ji) * stride + i: node i's value delayed by d_ji
            offset = np.where(reverse >= 0, offset[np.maximum(reverse, 0)], -1)
        self.self_edge = None   # per node, its zero-length self-connection or -1
        if self_loops.any():
            self.self_edge = np.full(n, -1, np.int64)
            self.self_edge[targets[self_loops]] = np.flatnonzero(self_loops)
        self.row_ptr, self.col, self.weight, self.delay = row_ptr, col, weight, delay
        self.weight32 = weight.astype(np.float32)
        self.targets, self.self_loops, self.offset = targets, self_loops, offset
        self.longest_row = int(np.diff(row_ptr).max(initial=0))
        self._n_cvar = n_cvar
        self._block_offsets: dict[int, np.ndarray] = {}
        for array in vars(self).values():
            if isinstance(array, np.ndarray):
                array.flags.writeable = False

    def block_offset(self, block_steps: int) -> np.ndarray:
        """Each connection's read of the coupling blocks' node-major ring."""
        if block_steps not in self._block_offsets:
            # a zero-length self-connection's products are replaced at each step of a block
            # (mf_block_step32_*): its reads go to the slots of a block_steps - 1 delay,
            # which the ring holds (a 0 delay's last steps would read past it)
            read_delay = np.where(self.self_loops, block_steps - 1, self.delay).astype(np.int64)
            offset = self.col.astype(np.int64) * (self._n_cvar * 2 * self.horizon) + \
                (self.horizon - read_delay)
            offset.flags.writeable = False
            self._block_offsets[block_steps] = offset
        return self._block_offsets[block_steps]


def _network_layout(connectivity: Connectivity, dt: float, sum_kind: str, n_cvar: int, *,
                    self_loops_last: bool) -> _NetworkLayout:
    """The connectivity's layout for these options, kept by it while it is unchanged."""
    return connectivity._derived(
        ("layout", float(dt), sum_kind, n_cvar, self_loops_last),
        lambda: _NetworkLayout(connectivity, dt, sum_kind, n_cvar, self_loops_last))


def _rows(row_ptr: np.ndarray) -> np.ndarray:
    """Each connection's row (target node) of a CSR."""
    return np.repeat(np.arange(row_ptr.size - 1, dtype=np.int32), np.diff(row_ptr))


def _transposed(row_ptr: np.ndarray, col: np.ndarray, weight: np.ndarray, delay: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The CSR of the transposed connectome: row j lists the connections j -> i by target i
    (a stable sort keeps each column's targets ascending, the order TVB sums them in)."""
    n = row_ptr.size - 1
    rows = _rows(row_ptr)
    order = np.argsort(col, kind="stable")
    return (row_pointers(col, n), rows[order], np.ascontiguousarray(weight[order]),
            np.ascontiguousarray(delay[order]))


def _reverse_connections(row_ptr: np.ndarray, col: np.ndarray) -> np.ndarray:
    """For each connection i <- j of the CSR, the index of the connection j <- i, or -1."""
    n = row_ptr.size - 1
    rows = _rows(row_ptr).astype(np.int64)
    keys = rows * n + col.astype(np.int64)
    wanted = col.astype(np.int64) * n + rows
    if not keys.size:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")  # a sparse matrix's columns need not be sorted
    found = order[np.minimum(np.searchsorted(keys[order], wanted), keys.size - 1)]
    return np.where(keys[found] == wanted, found, -1)


def _same_layout(one: _NetworkLayout, other: _NetworkLayout) -> bool:
    """Whether two layouts hold the same connections in the same order: the same object where
    the network keeps its layout, equal arrays where it is too large to keep one. (The same
    Connectivity object is not enough: its values may have been edited in place between the
    two Simulations.)"""
    if one is other:
        return True
    pairs = [(getattr(one, name), getattr(other, name))
             for name in ("row_ptr", "col", "weight", "delay", "offset", "self_edge")]
    return one.horizon == other.horizon and all(
        a is b or (a is not None and b is not None and np.array_equal(a, b)) for a, b in pairs)


def _share_network(first: Simulation, other: Simulation) -> None:
    """Point `other`'s C context at `first`'s connectome arrays when they are the same
    network (one copy in the cache for the whole batch instead of one per set)."""
    # the offsets are laid out by the number of coupled variables: another model's stride
    if other is first or not _same_layout(first._layout, other._layout):
        return
    source, target = first._sim, other._sim
    names = []
    if first._layout is not other._layout:   # one kept layout: its arrays are one copy already
        names += ["row_ptr", "offset", "weight", "weight32"]
        if source.block_steps and target.block_steps:
            # the ring, the block's coupling and its products stay each set's own
            names.append("block_offset")
            if source.self_edge != first._ffi.NULL and target.self_edge != first._ffi.NULL:
                names.append("self_edge")
    if source.n_sorted_blocks and target.n_sorted_blocks and first.threads == other.threads:
        # the same connections; edge_values stays each set's own (sets run in parallel)
        names += ["n_sorted_blocks", "sorted_bounds", "sorted_offset", "sorted_edge",
                  "sorted_row"]
    if not names:
        return
    for name in names:
        setattr(target, name, getattr(source, name))
    other._buffers.keep(first._buffers)  # the shared arrays live as long as `other`
