"""Simulations of a model with modes (TVB's ReducedSet models) in TVB's layout.

The C engine runs the model's `kernel_model`: one state row per (state, mode), row
s * n_modes + m, named `xi[0]`, `xi[1]`, ... (runtime/model.py). `ModesSimulation` is the thin
adapter a user meets instead (`mfgen.Simulation(model, ...)` returns one for a model with
modes): it converts at the boundary and nowhere else.

    user (TVB's layout)                        kernel Simulation (rows)
    initial_state (n_state, n_nodes, n_modes)  (n_state * n_modes, n_nodes)
    initial_history (time, n_state, n_nodes, n_modes)   (time, n_state * n_modes, n_nodes)
    noise {state: nsig} (all modes of a state) {"xi[0]": nsig, "xi[1]": nsig, ...}
    monitor variables ["xi"] (all its modes)   ["xi[0]", "xi[1]", ...]
    results (time, variable, node, mode)       (time, variable * n_modes, node)
    noise_array (steps, n_state, n_nodes, n_modes)      (steps, n_state * n_modes, n_nodes)

Results are views of the kernel's arrays (no copy). Checkpoints hold the state
(n_state, n_nodes, n_modes), the delay ring (horizon, n_coupling, n_nodes, n_modes) and each
monitor's accumulator (n_variables, n_nodes, n_modes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mfgen.runtime.model import from_rows, mode_rows, to_rows, uniform_states
from mfgen.runtime.simulation import (
    Monitor,
    MonitorResult,
    Raw,
    Simulation,
    SimulationError,
    SimulationResult,
)


def random_initial_state(model: Any, n_nodes: int, seed: int) -> np.ndarray:
    """The initial state a Simulation draws when none is given: each (state, mode, node)
    uniform in the state's range, from `seed`. (n_state, n_nodes, n_modes)."""
    return np.ascontiguousarray(from_rows(uniform_states(model.kernel_model, n_nodes, seed),
                                          model.n_modes))


class ModesMonitorResult(MonitorResult):
    """A monitor's samples of a model with modes: data (time, variable, node, mode);
    `result["xi"]` is (time, node, mode)."""

    @property
    def n_modes(self) -> int:
        return int(self.data.shape[3])

    def __repr__(self) -> str:
        return (f"<MonitorResult: {self.data.shape[0]} samples x ({', '.join(self.variables)})"
                f" x {self.data.shape[2]} nodes x {self.data.shape[3]} modes>")


# A kernel row name in an engine message ('xi[1]'), said the user's way.
_ROW_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)\[(\d+)\]'")


class ModesSimulation:
    """A resumable simulation of a model with modes; the arguments and methods of
    `mfgen.Simulation`, with arrays in TVB's layout (module docstring). `kernel_simulation` is
    the engine's Simulation of `model.kernel_model` (one row per state and mode)."""

    def __init__(self, model: Any, connectivity: Any = None, *,
                 noise: Mapping[str, float] | Sequence[float] | None = None,
                 monitors: Sequence[Monitor] | None = None,
                 initial_state: Any = None, initial_history: Any = None,
                 n_nodes: int | None = None, **options: Any):
        self.model = model
        self.n_modes = modes = int(model.n_modes)
        n = connectivity.n_regions if connectivity is not None else n_nodes
        if initial_history is not None:
            initial_history = self._history_rows(initial_history, n)
            n = initial_history.shape[2]
        if initial_state is not None:
            initial_state = to_rows(model._modal("initial_state", initial_state,
                                                 model.n_states, n), modes)
        self.monitor_specs = list(monitors) if monitors is not None else [Raw()]
        kernel_monitors = [Monitor(spec.kind, spec.period,
                                   tuple(mode_rows(self._recorded(spec), modes)), spec.name)
                           for spec in self.monitor_specs]
        self.kernel_simulation = Simulation(
            model.kernel_model, connectivity, noise=self._kernel_noise(noise),
            monitors=kernel_monitors, initial_state=initial_state,
            initial_history=initial_history, n_nodes=n_nodes, **options)

    # -- arguments in TVB's layout -----------------------------------------------------------
    def _recorded(self, spec: Monitor) -> tuple[str, ...]:
        states = self.model.state_variables
        variables = tuple(spec.variables or states)
        unknown = [v for v in variables if v not in states]
        if unknown:
            raise ValueError(f"monitor '{spec.label}': unknown variables {unknown}; "
                             f"recordable: {', '.join(states)} (each with its "
                             f"{self.n_modes} modes)")
        return variables

    def _kernel_noise(self, noise: Any) -> Any:
        """nsig per state, applied to every mode of that state (TVB's Additive nsig)."""
        if noise is None:
            return None
        states, modes = self.model.state_variables, self.n_modes
        if isinstance(noise, Mapping):
            for name in noise:
                if name not in states:
                    raise ValueError(f"noise given for unknown state variable '{name}'; "
                                     f"states: {', '.join(states)} (an nsig applies to all "
                                     f"{modes} modes of its state)")
            return {row: value for name, value in noise.items()
                    for row in mode_rows([name], modes)}
        nsig = np.asarray(noise, dtype=float).reshape(-1)
        if nsig.shape != (len(states),):
            raise ValueError(f"noise must give one nsig per state variable ({len(states)}; "
                             f"each applies to all {modes} modes), got {nsig.shape}")
        return np.repeat(nsig, modes)

    def _history_rows(self, history: Any, n: int | None) -> np.ndarray:
        array = np.asarray(history)
        states, modes = self.model.n_states, self.n_modes
        shape = f"(n_times, {states}, {'n_nodes' if n is None else n}, {modes})"
        if array.dtype.kind not in "fiu":
            raise TypeError(f"initial_history must be a real float64 array of shape {shape}, "
                            f"got dtype {array.dtype}")
        if array.ndim != 4 or array.shape[0] < 1 or array.shape[1] != states or \
                array.shape[3] != modes or (n is not None and array.shape[2] != n):
            raise ValueError(f"initial_history must have shape {shape} (TVB's layout, oldest "
                             f"first, the last entry being t = 0) for model "
                             f"'{self.model.name}' with {modes} modes; got {array.shape}")
        return to_rows(array, modes)

    def _noise_rows(self, noise_array: Any) -> np.ndarray | None:
        if noise_array is None:
            return None
        array = np.asarray(noise_array, dtype=np.float64)
        expected = (self.model.n_states, self.n_nodes, self.n_modes)
        if array.ndim != 4 or array.shape[1:] != expected:
            raise ValueError(f"noise_array must have shape (n_steps, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}) (TVB's layout), got {array.shape}")
        return to_rows(array, self.n_modes)

    # -- what Simulation exposes -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # The run's settings as the kernel simulation holds them (same values with or
        # without modes); anything else is not part of a modes simulation's interface.
        if name in ("integrator", "dt", "seed", "local_coupling", "coupling_precision",
                    "connectivity", "n_nodes", "horizon", "coupling", "coupling_parameters",
                    "parameters", "threads", "steps_done", "time"):
            kernel = self.__dict__.get("kernel_simulation")
            if kernel is not None:
                return getattr(kernel, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    @property
    def nsig(self) -> np.ndarray:
        """TVB's Additive nsig per state variable (the same for each of its modes)."""
        return self.kernel_simulation.nsig.reshape(-1, self.n_modes)[:, 0].copy()

    @property
    def state(self) -> np.ndarray:
        """The current state (n_state, n_nodes, n_modes): a view of the array the C loop
        advances."""
        return from_rows(self.kernel_simulation.state, self.n_modes)

    @state.setter
    def state(self, value: Any) -> None:
        array = self.model._modal("state", value, self.model.n_states, self.n_nodes)
        self.kernel_simulation.state = to_rows(array, self.n_modes)

    def advance(self, n_steps: int, noise_array: Any = None) -> int:
        """Run `n_steps` steps (one C call); noise_array: (n_steps, n_state, n_nodes,
        n_modes) standard normals instead of the built-in generator."""
        return self.kernel_simulation.advance(n_steps, self._noise_rows(noise_array))

    def run(self, duration: float, *, chunk_steps: int = 2000,
            progress: Callable[[int, int], None] | None = None,
            noise_array: Any = None) -> SimulationResult:
        """As `Simulation.run`; results (time, variable, node, mode)."""
        try:
            result = self.kernel_simulation.run(duration, chunk_steps=chunk_steps,
                                                progress=progress,
                                                noise_array=self._noise_rows(noise_array))
        except SimulationError as exc:
            message = _ROW_NAME.sub(r"'\1' (mode \2)", str(exc), count=1)
            raise SimulationError(message, self._result(exc.result)) from None
        return self._result(result)

    def result(self, wall_time: float = 0.0) -> SimulationResult:
        """Every sample recorded so far, (time, variable, node, mode) views."""
        return self._result(self.kernel_simulation.result(wall_time))

    def _result(self, kernel: SimulationResult) -> SimulationResult:
        monitors = {}
        for spec in self.monitor_specs:
            samples = kernel.monitors[spec.label]
            monitors[spec.label] = ModesMonitorResult(
                samples.times, from_rows(samples.data, self.n_modes), self._recorded(spec))
        config = self._config(kernel.config)
        return SimulationResult(monitors, np.ascontiguousarray(
            from_rows(kernel.final_state, self.n_modes)), kernel.steps, config,
            interrupted=kernel.interrupted, wall_time=kernel.wall_time)

    def config(self) -> dict[str, Any]:
        """Everything needed to reproduce the run, by the user's names, with `n_modes`."""
        return self._config(self.kernel_simulation.config())

    def _config(self, kernel: Mapping[str, Any]) -> dict[str, Any]:
        config = dict(kernel)
        config["n_modes"] = self.n_modes
        config["noise_nsig"] = dict(zip(self.model.state_variables, self.nsig.tolist()))
        config["monitors"] = [{**entry, "variables": list(self._recorded(spec))}
                              for spec, entry in zip(self.monitor_specs, kernel["monitors"])]
        return config

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, np.ndarray | int | float]:
        """As `Simulation.checkpoint`, arrays in TVB's layout (module docstring)."""
        return {key: np.ascontiguousarray(from_rows(value, self.n_modes))
                if isinstance(value, np.ndarray) else value
                for key, value in self.kernel_simulation.checkpoint().items()}

    def restore(self, checkpoint: Mapping[str, Any]) -> None:
        """Continue from `checkpoint()` of a ModesSimulation built the same way."""
        converted: dict[str, Any] = {}
        for key, value in checkpoint.items():
            if isinstance(value, np.ndarray) and value.ndim >= 2:
                if value.shape[-1] != self.n_modes:
                    raise ValueError(f"checkpoint '{key}' must end with the {self.n_modes} "
                                     f"modes (TVB's layout), got shape {value.shape}")
                value = to_rows(value, self.n_modes)
            converted[key] = value
        self.kernel_simulation.restore(converted)

    def __repr__(self) -> str:
        return (f"<mfgen Simulation of '{self.model.name}' ({self.n_modes} modes) on "
                f"{self.n_nodes} nodes, t = {self.time:g} ms>")
