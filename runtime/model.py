"""The Python face of a built model: metadata, argument checking, compiled and NumPy `dfun`.

Nothing here imports SymPy: a cached model loads in milliseconds.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mfgen.codegen.records import Parameter, State
from mfgen.errors import MfgenError, did_you_mean

_FLOAT64 = np.dtype(np.float64)


def _as_default(info: Parameter) -> float | np.ndarray:
    """A parameter's default as the Python API shows it: a float, or a read-only array of
    the parameter's shape."""
    if not info.shape:
        return float(info.default)  # type: ignore[arg-type]
    array = np.array(info.default, dtype=np.float64).reshape(info.shape)
    array.setflags(write=False)
    return array


class ModelBase:
    """Metadata and argument handling shared by the compiled kernel and the NumPy reference."""

    backend = "abstract"

    def __init__(self, metadata: Mapping[str, Any]):
        self.metadata = dict(metadata)
        self.name: str = metadata["name"]
        self.description: str = metadata["description"]
        self.references: list[str] = list(metadata["references"])
        # What the compiled module exports (integrators, coupling functions, monitor kinds),
        # as the generator described it (codegen.render.build_manifest).
        self.manifest: dict[str, Any] = dict(metadata.get("manifest") or {})
        self.states = {s["name"]: State.from_json(s) for s in metadata["states"]}
        self.state_variables: tuple[str, ...] = tuple(self.states)
        self.coupling_variables: tuple[str, ...] = tuple(c["name"] for c in metadata["coupling"])
        self.cvar = np.array([c["state_index"] for c in metadata["coupling"]], dtype=np.intp)
        # TVB's number_of_modes: arrays are (rows, n_nodes, n_modes) when it is not 1
        self.n_modes: int = int(metadata.get("modes", 1))
        self.parameter_info = {p["name"]: Parameter.from_json(p)
                               for p in metadata["parameters"]}
        self.parameters: dict[str, float | np.ndarray] = {
            name: _as_default(info) for name, info in self.parameter_info.items()}
        self._slot_offsets: dict[str, int] = {}
        offset = 0
        for name, info in self.parameter_info.items():
            self._slot_offsets[name] = offset
            offset += info.size or 1
        self.n_parameter_slots = offset
        # scalar parameters' slots: a Python float override is written there unconverted
        self._scalar_slots = {name: self._slot_offsets[name]
                              for name, info in self.parameter_info.items() if not info.shape}
        self._default_vector = np.zeros(offset)
        for name, info in self.parameter_info.items():
            start = self._slot_offsets[name]
            self._default_vector[start:start + (info.size or 1)] = info.default
        self._default_vector.setflags(write=False)

    def __repr__(self) -> str:
        modes = f", {self.n_modes} modes" if self.n_modes != 1 else ""
        return (f"<mfgen model '{self.name}' ({self.backend}{modes}): states "
                f"{', '.join(self.state_variables)}; coupling "
                f"{', '.join(self.coupling_variables) or 'none'}; "
                f"{len(self.parameters)} parameters>")

    @property
    def n_states(self) -> int:
        return len(self.state_variables)

    # -- argument checking -------------------------------------------------------------------
    def _array(self, name: str, value: Any, rows: int, n_nodes: int | None) -> np.ndarray:
        if (type(value) is np.ndarray and value.dtype == _FLOAT64 and value.ndim == 2
                and value.shape[0] == rows and (n_nodes is None or value.shape[1] == n_nodes)
                and value.flags.c_contiguous and value.flags.aligned):
            return value  # the common case, checked cheaply (call overhead matters at N=76)
        array = real_array(name, value, (rows, n_nodes), self.name)
        # A C-contiguous, aligned, native-endian float64 copy if the input is not one already.
        return np.require(array, dtype=np.float64, requirements=["C", "A"])

    def _inputs(self, state: Any, coupling: Any, local_coupling: Any
                ) -> tuple[np.ndarray, np.ndarray, float]:
        state = self._array("state", state, self.n_states, None)
        coupling = self._array("coupling", coupling, len(self.coupling_variables),
                               state.shape[1])
        if type(local_coupling) is float and math.isfinite(local_coupling):
            return state, coupling, local_coupling
        try:
            lc = float(local_coupling)
        except (TypeError, ValueError):
            raise TypeError("local_coupling must be a scalar number (TVB's region-level "
                            f"local coupling), got {local_coupling!r}") from None
        if not math.isfinite(lc):
            raise ValueError(f"local_coupling must be finite, got {lc}")
        return state, coupling, lc

    def _check_parameter(self, name: str, value: Any, n_nodes: int) -> np.ndarray:
        if name not in self.parameter_info:
            hint = did_you_mean(name, self.parameter_info)
            raise TypeError(f"model '{self.name}' has no parameter '{name}'"
                            + (f"; {hint}" if hint else ""))
        info = self.parameter_info[name]
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"parameter '{name}' must be numeric, got {value!r}") from None
        allowed = [info.shape, (*info.shape, n_nodes)]
        if array.shape not in allowed:
            expected = " or ".join(str(s) for s in allowed)
            raise ValueError(f"parameter '{name}' must have shape {expected} (scalar/shared or "
                             f"per node), got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"parameter '{name}' contains NaN or infinite values")
        return array

    def _pack(self, overrides: Mapping[str, Any], n_nodes: int) -> tuple[np.ndarray, bool]:
        """The packed parameter vector (shared) or table (n_slots, n_nodes) (per node)."""
        if not overrides:
            return self._default_vector, False
        vector = self._default_vector.copy()
        checked = {}
        for name, value in overrides.items():
            slot = self._scalar_slots.get(name)
            # a finite Python float for a scalar parameter (the common override): no NumPy
            if slot is not None and type(value) is float and value - value == 0.0:
                vector[slot] = value
            else:
                checked[name] = self._check_parameter(name, value, n_nodes)
        if not checked:
            return vector, False
        per_node = any(a.ndim == len(self.parameter_info[n].shape) + 1
                       for n, a in checked.items())
        if not per_node:
            for name, array in checked.items():
                start = self._slot_offsets[name]
                vector[start:start + (self.parameter_info[name].size or 1)] = \
                    array.reshape(-1)
            return vector, False
        table = np.empty((self.n_parameter_slots, n_nodes))
        table[:] = vector[:, None]
        for name, array in checked.items():
            start = self._slot_offsets[name]
            size = self.parameter_info[name].size or 1
            table[start:start + size] = array.reshape(size, -1)
        return table, True

    def pack_parameters(self, overrides: Mapping[str, Any], n_nodes: int
                        ) -> tuple[np.ndarray, bool]:
        """Checked parameters as the C kernels take them: (packed array, per_node)."""
        return self._pack(overrides, n_nodes)

    def parameter_values(self, **overrides: Any) -> dict[str, float | np.ndarray]:
        """All parameters with `overrides` applied (for the reference and for provenance)."""
        values = dict(self.parameters)
        for name, value in overrides.items():
            array = self._check_parameter(name, value, _nodes_of(value))
            values[name] = array if array.ndim else float(array)
        return values

    def dfun(self, state: Any, coupling: Any, local_coupling: float = 0.0, **parameters: Any
             ) -> np.ndarray:
        raise NotImplementedError


def real_array(what: str, value: Any, shape: tuple[int | None, ...], model: str,
               layout: str = "") -> np.ndarray:
    """`value` as an array of real numbers of `shape` (None: any number of nodes), or a
    TypeError/ValueError naming the argument, the expected shape and the model."""
    shape_text = "(" + ", ".join("n_nodes" if size is None else str(size) for size in shape) + ")"
    try:
        array = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the caller's input
        raise TypeError(f"{what} must be a float64 array of shape {shape_text}: {exc}") from None
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{what} must be a real float64 array of shape {shape_text}, got "
                        f"dtype {array.dtype}")
    if array.ndim != len(shape) or any(size is not None and actual != size
                                       for actual, size in zip(array.shape, shape)):
        raise ValueError(f"{what} must have shape {shape_text}{layout} for model '{model}', "
                         f"got {array.shape}")
    return array


def _nodes_of(value: Any) -> int:
    shape = np.shape(value)
    return shape[-1] if shape else 1


class CompiledModel(ModelBase):
    """A model whose `dfun` runs the generated C kernel."""

    backend = "c"

    def __init__(self, metadata: Mapping[str, Any], module: ctypes.CDLL,
                 reference: ReferenceModel | Callable[[], ReferenceModel],
                 simulator: Callable[[], Any] | None = None,
                 dfun_call: Callable[[], Any] | None = None):
        super().__init__(metadata)
        self._library = module  # the model's kernels: a plain shared library
        self._reference = reference  # a factory until first use: importing SciPy costs time
        self._simulator_factory = simulator  # the shared simulator module, loaded on first use
        self._simulator_module: Any = None
        self.module_key: str = metadata["module_key"]
        # dfun's calls go through the C shim of templates/dfun_call.c, loaded (and compiled
        # once per toolchain) on the first call; until then _call is _first_call.
        self._dfun_call_factory = dfun_call
        self._call: Callable[..., Any] = self._first_call
        self._bound: Any = None

    # -- the C interface, for the simulation runtime, benchmarks and tests -------------------
    @property
    def simulator_module(self) -> Any:
        """The model-independent simulator (cffi module: `.ffi`, `.lib`), shared by every
        model; built or loaded on first use."""
        if self._simulator_module is None:
            if self._simulator_factory is None:
                raise RuntimeError(f"model '{self.name}' was loaded without a simulator")
            self._simulator_module = self._simulator_factory()
        return self._simulator_module

    def simulator(self, integrator: str) -> Callable[..., int]:
        """The C time loop `simulate_<integrator>(mf_sim *, double *x, n_steps)`."""
        names = [i["name"] for i in self.manifest.get("integrators", [])]
        if integrator not in names:
            raise ValueError(f"unknown integrator '{integrator}'; "
                             + (did_you_mean(str(integrator), names)
                                or f"choose one of {', '.join(names)}"))
        try:
            return getattr(self.simulator_module.lib, f"simulate_{integrator}")
        except AttributeError:
            raise RuntimeError(f"the loaded simulator has no integrator '{integrator}': it "
                               "was generated by another version of mfgen's generator than "
                               f"model '{self.name}'; restart Python") from None

    def dfun_address(self, per_node: bool = False) -> int:
        """The address of the compiled dfun over a range of nodes (the simulator's mf_dfun)."""
        return self.function_address("dfun_per_node_nodes" if per_node
                                     else "dfun_uniform_nodes")

    def function_address(self, symbol: str) -> int:
        """The address of a function the module exports (its kernels; a spec's coupling
        function, `mf_user_coupling_<i>` in the manifest), for the simulator's context."""
        return int(ctypes.cast(self._library[symbol], ctypes.c_void_p).value)

    def bind_dfun(self, state: np.ndarray, coupling: np.ndarray, out: np.ndarray,
                  local_coupling: float = 0.0, **parameters: Any) -> Callable[[], Any]:
        """dfun bound to checked arrays: a call computes it into `out` with no Python checks,
        only the C shim's (`dfun` minus its wrapper, for a caller that calls it in a loop).
        Keep the arrays alive."""
        self.dfun(state, coupling, local_coupling, out=out, **parameters)  # checks everything
        params, _ = self._pack(parameters, state.shape[1])
        call, bound, lc = self._call, self._bound, float(local_coupling)
        if call(bound, state, coupling, lc, out, params) is None:
            raise ValueError("bind_dfun needs the arrays the kernel takes as they are: "
                             "float64, C-contiguous, of the model's shapes (dfun converts "
                             "others; a bound call would not)")
        return lambda: call(bound, state, coupling, lc, out, params)

    def philox(self, counter: Any, key: Any) -> list[int]:
        """Philox4x32-10 of a 4-word counter and a 2-word key, as the noise uses it."""
        ffi, lib = self.simulator_module.ffi, self.simulator_module.lib
        out = ffi.new("uint32_t[4]")
        lib.mf_philox(ffi.new("uint32_t[4]", list(counter)), ffi.new("uint32_t[2]", list(key)),
                      out)
        return list(out)

    @property
    def reference(self) -> ReferenceModel:
        """The NumPy reference generated from the same spec (same `dfun` signature)."""
        if not isinstance(self._reference, ReferenceModel):
            self._reference = self._reference()
        return self._reference

    def _first_call(self, _bound: Any, state: Any, coupling: Any, local_coupling: Any,
                    out: Any, *packed: np.ndarray) -> np.ndarray | None:
        """Load the dfun shim, bind this model's kernels to it, then make the call."""
        if self._dfun_call_factory is None:
            raise RuntimeError(f"model '{self.name}' was loaded without its dfun shim")
        shim = self._dfun_call_factory()
        # the capsule keeps this model's library and default parameters alive
        self._bound = shim.bind(self.function_address("dfun_uniform"),
                                self.function_address("dfun_per_node"),
                                self._default_vector.ctypes.data, self.n_states,
                                len(self.coupling_variables), self.n_parameter_slots,
                                (self._library, self._default_vector))
        self._call = shim.call
        return self._call(self._bound, state, coupling, local_coupling, out, *packed)

    def dfun(self, state: Any, coupling: Any, local_coupling: float = 0.0, *,
             out: np.ndarray | None = None, **parameters: Any) -> np.ndarray:
        """d(state)/dt for `state` (n_state, n_nodes) and `coupling` (n_coupling, n_nodes).

        Parameters default to the spec's values; pass overrides by name as scalars (all nodes)
        or arrays of shape (n_nodes,) (vector parameters: (size,) or (size, n_nodes)).
        """
        # The common call (float64 C arrays of the right shapes) is checked and made in C;
        # None means "not that case": the general path below converts or explains.
        params = None
        if not parameters:
            result = self._call(self._bound, state, coupling, local_coupling, out)
            if result is not None:
                return result
        elif type(state) is np.ndarray and state.ndim == 2:
            params, _ = self._pack(parameters, state.shape[1])
            result = self._call(self._bound, state, coupling, local_coupling, out, params)
            if result is not None:
                return result
        state, coupling, lc = self._inputs(state, coupling, local_coupling)
        n_nodes = state.shape[1]
        if params is None:   # packed above for these nodes where the state was an array
            params, _ = self._pack(parameters, n_nodes)
        if out is None:
            out = np.empty_like(state)
        elif not (type(out) is np.ndarray and out.dtype == _FLOAT64
                  and out.shape == state.shape and out.flags.c_contiguous
                  and out.flags.writeable and out.flags.aligned):
            raise ValueError(f"out must be a writable C-contiguous float64 array of shape "
                             f"{state.shape}")
        elif np.may_share_memory(out, state) or np.may_share_memory(out, coupling):
            # The kernel's arrays are `restrict`: writing where it reads is undefined.
            raise ValueError("out must not share memory with state or coupling; pass a "
                             "separate array")
        if n_nodes and self._call(self._bound, state, coupling, lc, out, params) is None:
            raise RuntimeError(f"mfgen: the dfun shim refused arrays checked here (model "
                               f"'{self.name}'); please report this")
        return out


class ReferenceModel(ModelBase):
    """The NumPy reference generated from the same spec (slow, simple, the test oracle)."""

    backend = "numpy"

    def __init__(self, metadata: Mapping[str, Any], reference_dfun: Callable[..., np.ndarray]):
        super().__init__(metadata)
        self._dfun = reference_dfun

    @property
    def reference(self) -> ReferenceModel:
        return self

    def dfun(self, state: Any, coupling: Any, local_coupling: float = 0.0, *,
             out: np.ndarray | None = None, **parameters: Any) -> np.ndarray:
        state, coupling, lc = self._inputs(state, coupling, local_coupling)
        n_nodes = state.shape[1]
        values = dict(self.parameters)
        for name, value in parameters.items():
            values[name] = self._check_parameter(name, value, n_nodes)
        # NumPy scalars, not Python floats: Python raises on 1e200**2 or 1/0.0 where the
        # C kernel gives inf, and the reference must agree with it.
        values = {name: v if isinstance(v, np.ndarray) and v.ndim else np.float64(v)
                  for name, v in values.items()}
        for name, info in self.parameter_info.items():  # the reference indexes P[slot]
            if len(info.shape) > 1:
                value = values[name]
                values[name] = np.reshape(value, (info.size, *np.shape(value)[len(info.shape):]))
        with np.errstate(all="ignore"):
            result = self._dfun(state, coupling, np.float64(lc), values)
        result = np.broadcast_to(result, state.shape) if result.shape != state.shape else result
        if out is not None:
            out[...] = result
            return out
        return np.array(result, dtype=np.float64)


def uniform_states(model: ModelBase, n_nodes: int, seed: int) -> np.ndarray:
    """The initial state a Simulation draws when none is given: (n_states, n_nodes), each
    state uniform in its range, from `seed`."""
    rng = np.random.default_rng(seed)
    low = np.array([model.states[s].range[0] for s in model.state_variables])
    high = np.array([model.states[s].range[1] for s in model.state_variables])
    return low[:, None] + (high - low)[:, None] * rng.random((len(low), n_nodes))


# -- models with modes (TVB's number_of_modes) ---------------------------------------------------
def to_rows(array: Any, n_modes: int) -> np.ndarray:
    """TVB's (..., k, n_nodes, n_modes) as the kernel's C-contiguous (..., k * n_modes,
    n_nodes): row i * n_modes + m is variable i in mode m."""
    array = np.asarray(array, dtype=np.float64)
    *lead, k, n_nodes, _ = array.shape
    return np.ascontiguousarray(np.swapaxes(array, -1, -2)).reshape(*lead, k * n_modes, n_nodes)


def from_rows(rows: np.ndarray, n_modes: int) -> np.ndarray:
    """The kernel's (..., k * n_modes, n_nodes) as TVB's (..., k, n_nodes, n_modes): a view."""
    *lead, k_modes, n_nodes = rows.shape
    return np.swapaxes(rows.reshape(*lead, k_modes // n_modes, n_modes, n_nodes), -1, -2)


def mode_rows(variables: Sequence[str], n_modes: int) -> list[str]:
    """The kernel's names of every mode of `variables`, in row order."""
    return [f"{name}[{m}]" for name in variables for m in range(n_modes)]


def kernel_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The kernel's view of a model with modes: one state (and coupling input) per mode,
    named `xi[0]`, `xi[1]`, ..., in the kernel's row order (state-major, row s * modes + m).
    The simulator, history, coupling, noise and monitors run this view unchanged."""
    modes = int(metadata.get("modes", 1))
    states = [{**s, "name": row} for s in metadata["states"]
              for row in mode_rows([s["name"]], modes)]
    coupling = [{"name": row, "state": state, "state_index": c["state_index"] * modes + m}
                for c in metadata["coupling"]
                for m, (row, state) in enumerate(zip(mode_rows([c["name"]], modes),
                                                     mode_rows([c["state"]], modes)))]
    return {**metadata, "modes": 1, "states": states, "coupling": coupling}


class _Modes:
    """The Python face of a model with modes: TVB's layout, state and derivative
    (n_state, n_nodes, n_modes), coupling (n_coupling, n_nodes, n_modes); converted to and
    from the kernel's rows (`kernel_model`, a model with one mode per state row) at the
    boundary."""

    kernel_model: ModelBase
    n_modes: int
    name: str
    coupling_variables: tuple[str, ...]
    n_states: int

    def _modal(self, what: str, value: Any, rows: int, n_nodes: int | None) -> np.ndarray:
        array = real_array(what, value, (rows, n_nodes, self.n_modes), self.name,
                           f" (TVB's layout: a model with {self.n_modes} modes)")
        return array.astype(np.float64, copy=False)

    def dfun(self, state: Any, coupling: Any, local_coupling: float = 0.0, *,
             out: np.ndarray | None = None, **parameters: Any) -> np.ndarray:
        """d(state)/dt in TVB's layout (n_state, n_nodes, n_modes); parameters as for a model
        without modes ([modes] parameters: (n_modes,) or (n_modes, n_nodes), mode matrices
        (n_modes, n_modes) or (n_modes, n_modes, n_nodes))."""
        state = self._modal("state", state, self.n_states, None)
        n_nodes, modes = state.shape[1], self.n_modes
        coupling = self._modal("coupling", coupling, len(self.coupling_variables), n_nodes)
        derivative = self.kernel_model.dfun(to_rows(state, modes), to_rows(coupling, modes),
                                            local_coupling, **parameters)
        result = from_rows(derivative, modes)
        if out is None:
            return np.ascontiguousarray(result)
        if not (type(out) is np.ndarray and out.dtype == _FLOAT64 and out.shape == state.shape
                and out.flags.writeable):
            raise ValueError(f"out must be a writable float64 array of shape {state.shape}")
        out[...] = result
        return out


class CompiledModesModel(_Modes, CompiledModel):
    """A compiled model with modes (see `_Modes`); `kernel_model` is what a `Simulation`
    runs (states named `xi[0]`, ...)."""

    def __init__(self, metadata: Mapping[str, Any], module: ctypes.CDLL,
                 reference: ReferenceModel | Callable[[], ReferenceModel],
                 simulator: Callable[[], Any] | None = None,
                 dfun_call: Callable[[], Any] | None = None):
        super().__init__(metadata, module, reference, simulator, dfun_call)
        self.kernel_model = CompiledModel(kernel_metadata(metadata), module,
                                          lambda: self.reference.kernel_model, simulator,
                                          dfun_call)

    def dfun_address(self, per_node: bool = False) -> int:
        raise MfgenError(f"model '{self.name}' has {self.n_modes} modes: simulate it with "
                         "mfgen.Simulation (which runs its `kernel_model`, one state per mode, "
                         "`xi[0]`, ...) or mfgen.tvb.simulate")

    def bind_dfun(self, state: np.ndarray, coupling: np.ndarray, out: np.ndarray,
                  local_coupling: float = 0.0, **parameters: Any) -> Callable[[], None]:
        raise MfgenError(f"model '{self.name}' has modes: bind its kernel_model's dfun")


class ReferenceModesModel(_Modes, ReferenceModel):
    """The NumPy reference of a model with modes, in TVB's layout."""

    def __init__(self, metadata: Mapping[str, Any], reference_dfun: Callable[..., np.ndarray]):
        super().__init__(metadata, reference_dfun)
        self.kernel_model = ReferenceModel(kernel_metadata(metadata), reference_dfun)


def compiled_model(metadata: Mapping[str, Any], module: ctypes.CDLL,
                   reference: ReferenceModel | Callable[[], ReferenceModel],
                   simulator: Callable[[], Any] | None = None,
                   dfun_call: Callable[[], Any] | None = None) -> CompiledModel:
    """The CompiledModel for a built model's metadata, with or without modes."""
    kind = CompiledModesModel if int(metadata.get("modes", 1)) != 1 else CompiledModel
    return kind(metadata, module, reference, simulator, dfun_call)


def reference_model(metadata: Mapping[str, Any], reference_dfun: Callable[..., np.ndarray]
                    ) -> ReferenceModel:
    """The ReferenceModel for a built model's metadata, with or without modes."""
    kind = ReferenceModesModel if int(metadata.get("modes", 1)) != 1 else ReferenceModel
    return kind(metadata, reference_dfun)
