"""The Virtual Brain bridge: mfgen models inside TVB, and TVB simulators run by mfgen.

    >>> from mfgen import tvb as mftvb
    >>> JansenRit = mftvb.model_class("tvb_jansen_rit")   # a tvb.simulator.models.Model
    >>> sim = simulator.Simulator(model=JansenRit(), ...)  # TVB runs it, dfun is mfgen's C
    >>> results = mftvb.simulate(sim)                      # or: mfgen's C engine runs all of it

`model_class` gives a TVB model whose traits come from the spec (state variables, ranges,
boundaries, cvar, parameters with defaults and domains, variables_of_interest) and whose
`dfun` calls the compiled kernel. `simulate` reads a configured TVB Simulator and runs it in
`mfgen.Simulation` (with mfgen's own monitors where their windows are TVB's, else from every
step's states, from which each TVB monitor's samples are computed as TVB computes them),
returning what `Simulator.run()`
returns; whatever mfgen cannot run exactly as TVB does is refused by name
(`UnsupportedByMfgen`), never approximated.

Needs tvb-library (2.10); it is imported when this module is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import sympy
from tvb.basic.neotraits.api import Final, List, NArray, Range
from tvb.simulator import coupling as tvb_coupling
from tvb.simulator import integrators as tvb_integrators
from tvb.simulator import models as tvb_models
from tvb.simulator import monitors as tvb_monitors
from tvb.simulator import noise as tvb_noise

from mfgen.codegen.expressions import parse_expression
from mfgen.codegen.printing import NumpyPrinter
from mfgen.codegen.spec import load_spec
from mfgen.errors import Location, MfgenError, SpecError
from mfgen.runtime.connectivity import Connectivity
from mfgen.runtime.loader import load
from mfgen.runtime.model import CompiledModel, from_rows, mode_rows, to_rows
from mfgen.runtime.simulation import Raw, Simulation, SubSample, TemporalAverage

# TVB's region models and the bundled specs written from them (specs/tvb_*.yaml).
BUNDLED_TVB_SPECS = {
    "CoombesByrne": "tvb_coombes_byrne",
    "CoombesByrne2D": "tvb_coombes_byrne_2d",
    "DecoBalancedExcInh": "tvb_deco_balanced_exc_inh",
    "DumontGutkin": "tvb_dumont_gutkin",
    "Epileptor": "tvb_epileptor",
    "Epileptor2D": "tvb_epileptor_2d",
    "EpileptorCodim3": "tvb_epileptor_codim3",
    "EpileptorCodim3SlowMod": "tvb_epileptor_codim3_slow_mod",
    "EpileptorRestingState": "tvb_epileptor_resting_state",
    "GastSchmidtKnosche_SD": "tvb_gast_schmidt_knosche_sd",
    "GastSchmidtKnosche_SF": "tvb_gast_schmidt_knosche_sf",
    "Generic2dOscillator": "tvb_generic_2d_oscillator",
    "Hopfield": "tvb_hopfield",
    "JansenRit": "tvb_jansen_rit",
    "KIonEx": "tvb_kion_ex",
    "Kuramoto": "tvb_kuramoto",
    "LarterBreakspear": "tvb_larter_breakspear",
    "Linear": "tvb_linear",
    "MontbrioPazoRoxin": "tvb_montbrio_pazo_roxin",
    "ReducedSetFitzHughNagumo": "tvb_reduced_set_fitz_hugh_nagumo",
    "ReducedSetHindmarshRose": "tvb_reduced_set_hindmarsh_rose",
    "ReducedWongWang": "tvb_reduced_wong_wang",
    "ReducedWongWangExcInh": "tvb_reduced_wong_wang_exc_inh",
    "SupHopf": "tvb_sup_hopf",
    "WilsonCowan": "tvb_wilson_cowan",
    "ZerlautAdaptationFirstOrder": "tvb_zerlaut_adaptation_first_order",
    "ZerlautAdaptationSecondOrder": "tvb_zerlaut_adaptation_second_order",
    "ZetterbergJansen": "tvb_zetterberg_jansen",
}
# TVB parameters that enter only the derived mode tables (update_derived_parameters) which
# the ReducedSet specs take as parameters: the bridge passes the configured model's tables, so
# these are honoured whatever their values.
DERIVED_TABLE_INPUTS = {
    "ReducedSetFitzHughNagumo": {"mu", "sigma", "a"},
    "ReducedSetHindmarshRose": {"a", "b", "c", "d", "xo", "mu", "sigma"},
}
# TVB coupling class -> (mfgen coupling, {TVB attribute: mfgen parameter}).
COUPLINGS = {
    tvb_coupling.Linear: ("linear", {"a": "a", "b": "b"}),
    tvb_coupling.Scaling: ("scaling", {"a": "a"}),
    tvb_coupling.Difference: ("difference", {"a": "a"}),
    tvb_coupling.Sigmoidal: ("sigmoidal", {"cmin": "cmin", "cmax": "cmax",
                                           "midpoint": "midpoint", "a": "a", "sigma": "sigma"}),
    tvb_coupling.HyperbolicTangent: ("hyperbolic_tangent", {"a": "a", "b": "b",
                                                            "midpoint": "midpoint",
                                                            "sigma": "sigma"}),
    tvb_coupling.Kuramoto: ("kuramoto", {"a": "a"}),
    tvb_coupling.SigmoidalJansenRit: ("sigmoidal_jansen_rit", {
        "cmin": "cmin", "cmax": "cmax", "midpoint": "midpoint", "r": "r", "a": "a"}),
    # dynamic=True with globalT=False (_check_pre_sigmoidal); dynamic=False: STATIC_PRE_SIGMOIDAL
    tvb_coupling.PreSigmoidal: ("pre_sigmoidal", {"H": "H", "Q": "Q", "G": "G", "P": "P"}),
}
# PreSigmoidal(dynamic=False), local or global threshold: TVB reads theta[0] for a global one,
# the same as a local one with the single theta mfgen takes.
STATIC_PRE_SIGMOIDAL = ("pre_sigmoidal_static",
                        {"H": "H", "Q": "Q", "G": "G", "P": "P", "theta": "theta"})
INTEGRATORS = {
    tvb_integrators.EulerDeterministic: "euler",
    tvb_integrators.HeunDeterministic: "heun",
    tvb_integrators.RungeKutta4thOrderDeterministic: "rk4",
    tvb_integrators.EulerStochastic: "euler_maruyama",
    tvb_integrators.HeunStochastic: "heun_stochastic",
}


NOISE_CHUNK_STEPS = 10_000  # TVB's normals for this many steps at a time (memory)


class UnsupportedByMfgen(MfgenError):
    """A TVB simulator uses something mfgen's engine does not run exactly as TVB does."""


def _compiled_of(model: Any) -> CompiledModel:
    """The compiled mfgen model for a TVB model instance (an mfgen class or a TVB class with
    a bundled spec). Loading from the cache does not parse the spec (~50 ms per run)."""
    compiled = getattr(type(model), "_mfgen_model", None)
    if compiled is not None:
        return compiled
    name = type(model).__name__
    if type(model).__module__.startswith("tvb.") and name in BUNDLED_TVB_SPECS:
        return load(BUNDLED_TVB_SPECS[name])
    raise UnsupportedByMfgen(
        f"model {name}: no mfgen spec; use mfgen.tvb.model_class(spec) for the model, or one "
        f"of TVB's classes with a bundled spec: {', '.join(sorted(BUNDLED_TVB_SPECS))}")


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def model_class(spec: str | Path, class_name: str | None = None) -> type:
    """A `tvb.simulator.models.Model` subclass for `spec` (a bundled name or a path) whose
    `dfun` is the compiled kernel. Parameters are TVB NArrays (per node: shape (n_nodes,));
    boolean spec parameters are NArrays of dtype bool."""
    compiled = load(spec)
    declared = load_spec(spec)
    states = tuple(compiled.state_variables)
    attributes: dict[str, Any] = {
        "__doc__": f"mfgen model '{compiled.name}' as a TVB Model: {compiled.description}",
        "_mfgen_model": compiled,
        "_mfgen_spec": declared,
        "state_variables": states,
        "_nvar": len(states),
        "cvar": np.array(compiled.cvar, dtype=np.int32),
        "number_of_modes": compiled.n_modes,
        "state_variable_range": Final(
            label="State variable ranges [lo, hi]",
            default={s: np.array(compiled.states[s].range) for s in states}),
        "variables_of_interest": List(of=str, label="Variables watched by Monitors",
                                      choices=states, default=states),
        "dfun": _dfun,
    }
    bounded = {s: np.array([-np.inf if info.boundaries[0] is None else info.boundaries[0],
                            np.inf if info.boundaries[1] is None else info.boundaries[1]])
               for s, info in compiled.states.items() if info.boundaries != (None, None)}
    if bounded:
        attributes["state_variable_boundaries"] = Final(
            label="State variable boundaries [lo, hi]", default=bounded)
    for name, info in compiled.parameter_info.items():
        if name in attributes or hasattr(tvb_models.Model, name):
            raise MfgenError(f"parameter '{name}' of '{compiled.name}' would shadow TVB's "
                             f"Model.{name}; rename it in the spec")
        if info.boolean:
            attributes[name] = NArray(dtype=bool, default=np.array([bool(info.default)]),
                                      label=name, doc=info.description or name)
            continue
        default = np.atleast_1d(np.array(compiled.parameters[name], dtype=float))
        domain = None
        if info.range is not None and info.size is None:
            low, high = info.range
            domain = Range(lo=low, hi=high, step=(high - low) / 100 or 1.0)
        attributes[name] = NArray(default=default, domain=domain, label=name,
                                  doc=info.description or name)
    return type(class_name or _camel(compiled.name), (tvb_models.Model,), attributes)


def _parameter_values(model: Any, compiled: CompiledModel, n_nodes: int) -> dict[str, Any]:
    """A TVB model's parameter attributes as mfgen dfun arguments: one value, or one per node
    (TVB's (n,) or (n, 1) arrays); vector parameters and mode tables (TVB's (1, n_modes) and
    (n_modes, n_modes)) whole."""
    values = {}
    for name, info in compiled.parameter_info.items():
        value = np.asarray(getattr(model, name), dtype=float)
        if info.size is not None:
            values[name] = value.reshape(info.shape) if value.size == info.size else \
                value.reshape(*info.shape, -1)
        elif value.size == 1:
            values[name] = float(value.reshape(()))
        elif value.size == n_nodes:
            values[name] = value.reshape(n_nodes)
        else:
            raise UnsupportedByMfgen(f"parameter {name} has shape {value.shape}: mfgen takes "
                                     f"one value or one per node ({n_nodes})")
    return values


def _dfun(self: Any, state_variables: np.ndarray, coupling: np.ndarray,
          local_coupling: Any = 0.0) -> np.ndarray:
    """TVB's dfun signature over mfgen's kernel: (n_state, n_nodes, n_modes) arrays."""
    compiled = type(self)._mfgen_model
    if state_variables.ndim != 3 or state_variables.shape[2] != compiled.n_modes:
        raise UnsupportedByMfgen(f"{type(self).__name__}: state of shape "
                                 f"{state_variables.shape}; the model has "
                                 f"{compiled.n_modes} mode(s)")
    if np.ndim(local_coupling) != 0:
        raise UnsupportedByMfgen("surface local coupling (a matrix): mfgen takes TVB's "
                                 "region-mode scalar local coupling")
    n_nodes = state_variables.shape[1]
    parameters = _parameter_values(self, compiled, n_nodes)
    if compiled.n_modes != 1:  # the model takes TVB's layout itself
        return compiled.dfun(state_variables, coupling, float(local_coupling), **parameters)
    derivative = compiled.dfun(state_variables[..., 0], coupling[..., 0], float(local_coupling),
                               **parameters)
    return derivative[..., np.newaxis]


# -- running a configured TVB Simulator in mfgen's engine ----------------------------------------
def _refuse(what: str, why: str) -> UnsupportedByMfgen:
    return UnsupportedByMfgen(f"{what}: {why}; run it with TVB's own Simulator.run()")


def _check_pre_sigmoidal(function: Any, compiled: CompiledModel) -> None:
    """mfgen's pre_sigmoidal is TVB's PreSigmoidal with dynamic=True, globalT=False, on a
    model coupling exactly two variables (TVB's __call__ returns two rows); dynamic=False
    (pre_sigmoidal_static) takes any coupled variables and either threshold."""
    if not function.dynamic:
        return
    if function.globalT:
        # not _refuse: TVB's own Simulator.run() cannot run it either
        raise UnsupportedByMfgen(
            "coupling PreSigmoidal(globalT=True) with dynamic=True: TVB 2.10's own "
            "PreSigmoidal.__call__ fails on it (it writes the network mean into np.diag's "
            "read-only view: ValueError), so there are no TVB numbers to reproduce; "
            "mfgen.simulate(..., coupling='pre_sigmoidal_global') computes what that code means")
    if len(compiled.cvar) != 2:
        raise _refuse(f"coupling PreSigmoidal on {len(compiled.cvar)} coupled variables",
                      "TVB's PreSigmoidal returns two rows, activity and dynamic threshold; "
                      f"the spec '{compiled.name}' couples {len(compiled.cvar)}")


def _noise(simulator: Any, compiled: CompiledModel, parameters: dict[str, Any]
           ) -> tuple[dict[str, float] | None, np.random.RandomState | None]:
    """TVB's Additive or Multiplicative noise as mfgen's nsig per state, with TVB's own normal
    stream (one normal(size=(n_state, n_nodes, 1)) per step, from where its stream stands)."""
    integrator = simulator.integrator
    if not isinstance(integrator, tvb_integrators.IntegratorStochastic):
        return None, None
    noise = integrator.noise
    if type(noise) not in (tvb_noise.Additive, tvb_noise.Multiplicative):
        raise _refuse(f"noise {type(noise).__name__}",
                      "mfgen runs TVB's Additive and Multiplicative noise")
    nsig = np.asarray(noise.nsig, dtype=float)
    n_state = compiled.n_states
    if nsig.size == 1:
        nsig = np.full(n_state, float(nsig.reshape(())))
    elif nsig.shape[:1] == (n_state,) and nsig[0].size == 1:
        nsig = nsig.reshape(n_state)
    else:
        raise _refuse(f"noise nsig of shape {nsig.shape}", "mfgen takes one nsig per state")
    _check_noise_kind(noise, compiled, [s for s, v in zip(compiled.state_variables, nsig) if v],
                      simulator, parameters)
    stream = np.random.RandomState()  # continue TVB's stream, not a copy of its seed's start
    stream.set_state(noise.random_stream.get_state())
    return dict(zip(compiled.state_variables, nsig)), stream


# TVB's b and the spec's b(x) agree where both are one formula: rounding of a few operations
# (1e-15), with a floor for values near 0 where a + b x cancels. A different formula or
# coefficient differs by orders of magnitude more at some of the sampled states.
NOISE_B_TOLERANCE = 1e-12
NOISE_B_SAMPLES = 16  # random states per node in the spec's state ranges, plus TVB's current


def _check_noise_kind(noise: Any, compiled: CompiledModel, noisy: list[str], simulator: Any,
                      parameters: dict[str, Any]) -> None:
    """The spec's noise must be TVB's: additive where TVB's is Additive; with Multiplicative,
    the spec must declare multiplicative_noise for each noisy state, and its b(x), with the
    model's parameter values, must give what TVB's own `b.evaluate` gives (any TVB equation:
    its default Linear(a=1, b=0) is b(x) = x), compared at the simulator's current state and
    at random states in the spec's state ranges."""
    declared = compiled.manifest.get("multiplicative_noise", [])
    if type(noise) is tvb_noise.Additive:
        if any(state in declared for state in noisy):
            raise _refuse("noise Additive", f"the spec '{compiled.name}' declares "
                          f"multiplicative noise for {', '.join(declared)}")
        return
    for state in noisy:
        if state not in declared:
            raise _refuse(f"Multiplicative noise on {state}", f"the spec '{compiled.name}' "
                          f"does not declare multiplicative_noise for {state} (TVB's default "
                          f"b is {{{state}: {state}}})")
    n_nodes = int(simulator.number_of_nodes)
    rng = np.random.default_rng(0)
    low = np.array([info.range[0] for info in compiled.states.values()])
    high = np.array([info.range[1] for info in compiled.states.values()])
    samples = [np.asarray(simulator.current_state, dtype=float)[..., 0]] + [
        rng.uniform(low[:, None], high[:, None], (compiled.n_states, n_nodes))
        for _ in range(NOISE_B_SAMPLES)]
    packed, per_node = compiled.pack_parameters(parameters, n_nodes)
    kernel = compiled.function_address(
        "noise_b_per_node_nodes" if per_node else "noise_b_uniform_nodes")
    ffi = compiled.simulator_module.ffi
    call = ffi.cast("mf_dfun", kernel)
    coupling = np.zeros((max(len(compiled.cvar), 1), n_nodes))
    rows = [compiled.state_variables.index(state) for state in noisy]
    for state_values in samples:
        state_values = np.ascontiguousarray(state_values)
        ours = np.empty_like(state_values)
        call(n_nodes, 0, n_nodes, ffi.from_buffer("double[]", state_values),
             ffi.from_buffer("double[]", coupling), 0.0, ffi.from_buffer("double[]", packed),
             ffi.from_buffer("double[]", ours, require_writable=True))
        theirs = np.broadcast_to(np.asarray(noise.b.evaluate(state_values[..., None]),
                                            dtype=float)[..., 0], state_values.shape)
        for row in rows:
            floor = NOISE_B_TOLERANCE * max(np.abs(theirs[row]).max(), 1e-300)
            difference = np.abs(ours[row] - theirs[row])
            if not (difference <= NOISE_B_TOLERANCE * np.abs(theirs[row]) + floor).all():
                node = int(np.argmax(difference))
                state = compiled.state_variables[row]
                raise _refuse(
                    f"Multiplicative noise on {state} with b = {type(noise.b).__name__}"
                    f"({dict(noise.b.parameters)})",
                    f"the spec '{compiled.name}' declares another b({state}): at {state} = "
                    f"{state_values[row, node]:.6g} TVB's b gives {theirs[row, node]:.6g}, "
                    f"the spec's {ours[row, node]:.6g}")


MONITORS = (tvb_monitors.Raw, tvb_monitors.SubSample, tvb_monitors.TemporalAverage)


def _monitor_variables(simulator: Any) -> list[list[str]]:
    """The variables each TVB monitor records. A monitor's `voi` indexes the model's
    variables_of_interest (Simulator passes monitors model.observe(state))."""
    observed = list(simulator.model.variables_of_interest)
    result = []
    for monitor in simulator.monitors:
        if type(monitor) not in MONITORS:
            raise _refuse(f"monitor {type(monitor).__name__}",
                          "mfgen records " + ", ".join(m.__name__ for m in MONITORS))
        result.append([observed[i] for i in np.asarray(monitor.voi)])
    return result


def _tvb_output(monitor: Any, raw: np.ndarray, steps: np.ndarray, dt: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """A TVB monitor's (times, data) from every step's state, as TVB computes it: samples
    at steps divisible by istep on TVB's step counter; TemporalAverage as numpy.mean over its
    stock of the last istep steps, zeros for the steps before the first (TVB's first window
    is partial unless istep divides the history length - 1)."""
    if type(monitor) is tvb_monitors.Raw:
        return steps * dt, raw
    istep = int(monitor.istep)
    if type(monitor) is tvb_monitors.SubSample:
        taken = steps % istep == 0
        return steps[taken] * dt, raw[taken]
    before = int(steps[0] - 1) % istep  # steps of the first window before the run: zeros
    stock = np.concatenate([np.zeros((before,) + raw.shape[1:]), raw])
    windows = stock.shape[0] // istep
    stock = stock[: windows * istep].reshape((windows, istep) + raw.shape[1:])
    ends = steps[0] - before - 1 + istep * np.arange(1, windows + 1)
    return (ends - istep / 2.0) * dt, stock.mean(axis=1)


def simulate(simulator: Any, coupling_precision: str = "float32") -> list[tuple]:
    """Run a configured TVB `Simulator` in mfgen's C engine; returns what `simulator.run()`
    returns: one (times, data) per monitor, data of shape (n_samples, n_voi, n_nodes, 1) and
    times on TVB's clock (TVB counts steps from its history length).

    The model is a `model_class(...)` class or a TVB class with a bundled spec (its parameter
    values are used). coupling_precision="float32" sums the delayed coupling as TVB does
    (float32 history and weights), so traces match TVB's to rounding.
    """
    if simulator.history is None:
        simulator.configure()
    model = simulator.model
    compiled = _compiled_of(model)
    _check_model_matches_spec(model, compiled)
    modes = compiled.n_modes
    if getattr(model, "number_of_modes", 1) != modes:
        raise _refuse(f"model with {model.number_of_modes} modes",
                      f"the spec '{compiled.name}' has {modes}")
    # With modes the engine runs the kernel's view: one state row per (state, mode), xi[0]...
    kernel = compiled.kernel_model if modes != 1 else compiled

    def rows(variable: str) -> list[str]:
        return mode_rows([variable], modes) if modes != 1 else [variable]

    observables = {v: _observable(v, compiled) for v in model.variables_of_interest
                   if v not in compiled.state_variables}
    if observables and modes != 1:
        raise _refuse(f"variables_of_interest {sorted(observables)}",
                      "a model with modes records its state variables only")
    if simulator.surface is not None:
        raise _refuse("a cortical surface", "mfgen simulates region networks")
    if simulator.stimulus is not None:
        raise _refuse(f"stimulus {type(simulator.stimulus).__name__}",
                      "mfgen has no stimuli yet")
    if type(simulator.integrator) not in INTEGRATORS:
        raise _refuse(f"integrator {type(simulator.integrator).__name__}",
                      "mfgen runs " + ", ".join(c.__name__ for c in INTEGRATORS))
    if isinstance(simulator.coupling, tvb_coupling.PreSigmoidal):
        _check_pre_sigmoidal(simulator.coupling, compiled)
    if type(simulator.coupling) not in COUPLINGS:
        raise _refuse(f"coupling {type(simulator.coupling).__name__}",
                      "mfgen runs " + ", ".join(c.__name__ for c in COUPLINGS))
    integrator = simulator.integrator
    if integrator.clamped_state_variable_indices is not None:
        raise _refuse("clamped state variables", "mfgen does not clamp")
    coupling_name, names = COUPLINGS[type(simulator.coupling)]
    if isinstance(simulator.coupling, tvb_coupling.PreSigmoidal) and \
            not simulator.coupling.dynamic:
        coupling_name, names = STATIC_PRE_SIGMOIDAL
    coupling_parameters = {}
    for attribute, parameter in names.items():
        value = np.asarray(getattr(simulator.coupling, attribute), dtype=float)
        if value.size != 1:
            raise _refuse(f"coupling parameter {attribute} of shape {value.shape}",
                          "mfgen takes one value per coupling parameter")
        coupling_parameters[parameter] = float(value.reshape(()))

    tvb_connectivity = simulator.connectivity
    network = Connectivity(np.array(tvb_connectivity.weights, dtype=float),
                           np.array(tvb_connectivity.tract_lengths, dtype=float),
                           float(np.asarray(tvb_connectivity.speed).reshape(-1)[0]),
                           [str(label) for label in tvb_connectivity.region_labels],
                           np.asarray(tvb_connectivity.centres, dtype=float),
                           source="tvb.Simulator.connectivity")
    dt = float(integrator.dt)
    n_steps = int(math.ceil(simulator.simulation_length / dt))  # as Simulator.run
    horizon = int(simulator.connectivity.horizon)
    history = _initial_history(simulator, kernel, horizon)
    parameters = _parameter_values(model, compiled, network.n_regions)
    nsig, stream = _noise(simulator, compiled, parameters)
    if nsig is not None:
        nsig = {row: value for state, value in nsig.items() for row in rows(state)}
    monitor_variables = _monitor_variables(simulator)
    # A monitor of state variables whose windows start where TVB's do (no initial history
    # given, or istep divides its length - 1) runs as mfgen's own monitor; the others are
    # computed from every step's states, recorded once ("raw") for all of them.
    # A variables_of_interest expression the spec declares as an observable (the same parsed
    # expression) is computed in C and recorded like a state.
    in_c = _observables_in_c(observables, compiled)
    native = [all(v in compiled.state_variables or v in in_c for v in variables)
              and simulator.current_step % int(monitor.istep) == 0
              for monitor, variables in zip(simulator.monitors, monitor_variables)]
    needed = {name for variables, own in zip(monitor_variables, native) if not own
              for name in variables}
    needed |= {arg for v in needed if v in observables for arg in observables[v][0]}
    recorded = [row for v in compiled.state_variables if v in needed for row in rows(v)]
    monitors = [_native_monitor(monitor, [row for v in variables for row in rows(in_c.get(v, v))],
                                index, dt)
                for index, (monitor, variables, own) in enumerate(
                    zip(simulator.monitors, monitor_variables, native)) if own]
    if recorded:
        monitors.append(Raw(recorded, name="raw"))
    run = Simulation(
        kernel, network, coupling=coupling_name, coupling_parameters=coupling_parameters,
        integrator=INTEGRATORS[type(integrator)], dt=dt, noise=nsig,
        monitors=monitors, initial_history=history,
        parameters=parameters, local_coupling=0.0,  # region mode: TVB's is 0
        coupling_precision=coupling_precision)
    done, result = 0, run.result()
    while done < n_steps:  # in chunks, so TVB's normals are drawn a chunk at a time
        chunk = min(NOISE_CHUNK_STEPS, n_steps - done)
        normals = None if stream is None else to_rows(stream.normal(
            size=(chunk, compiled.n_states, network.n_regions, modes)), modes)
        result = run.run(chunk * dt, noise_array=normals)
        if result.interrupted:  # Ctrl-C: no partial TVB output
            raise KeyboardInterrupt
        done += chunk
    raw = result["raw"].data if recorded else None
    steps = simulator.current_step + 1 + np.arange(n_steps)  # TVB's step numbers
    offset = simulator.current_step * dt  # mfgen counts time from 0, TVB from current_step

    def observed(variable: str) -> np.ndarray:  # (n_steps, n_nodes, n_modes), TVB's observe
        if variable not in observables:
            return np.swapaxes(raw[:, [recorded.index(row) for row in rows(variable)]], 1, 2)
        args, function = observables[variable]
        return function(*(observed(a) for a in args))

    outputs = []
    for index, (monitor, variables, own) in enumerate(
            zip(simulator.monitors, monitor_variables, native)):
        if own:
            samples = result[f"monitor_{index}"]
            outputs.append((samples.times + offset, from_rows(samples.data, modes)))
        else:
            data = np.stack([observed(v) for v in variables], axis=1)
            outputs.append(_tvb_output(monitor, data, steps, dt))
    return outputs


def _observables_in_c(observables: dict[str, Any], compiled: CompiledModel) -> dict[str, str]:
    """{TVB variables_of_interest text: the spec's observable computing it in C}."""
    by_expression = {text: name for name, text in
                     compiled.manifest.get("observable_expressions", {}).items()}
    found = {}
    for text in observables:
        expr = parse_expression(text, Location("variables_of_interest"),
                                _StatesOnly(compiled))
        if sympy.srepr(expr) in by_expression:
            found[text] = by_expression[sympy.srepr(expr)]
    return found


def _native_monitor(monitor: Any, variables: list[str], index: int, dt: float) -> Any:
    name = f"monitor_{index}"
    if type(monitor) is tvb_monitors.Raw:
        return Raw(variables, name=name)
    kind = SubSample if type(monitor) is tvb_monitors.SubSample else TemporalAverage
    return kind(int(monitor.istep) * dt, variables, name=name)


class _StatesOnly:
    """The scope of a TVB variable_of_interest expression: the model's state variables (what
    TVB's `observe` binds), through mfgen's expression parser (never eval)."""

    def __init__(self, compiled: CompiledModel) -> None:
        self.states = {name: sympy.Symbol(name, real=True) for name in compiled.state_variables}

    def symbol(self, name: str, where: Location) -> sympy.Expr:
        if name not in self.states:
            raise SpecError(f"'{name}' is not a state variable", where)
        return self.states[name]

    def call(self, name: str, args: list, where: Location) -> sympy.Expr:
        raise SpecError(f"'{name}' cannot be called here", where)

    def derivative(self, name: str, wrt: list, args: list, where: Location) -> sympy.Expr:
        raise SpecError("no derivatives here", where)


def _observable(text: str, compiled: CompiledModel) -> tuple[list[str], Any]:
    """A variable_of_interest that is an expression of the states (Epileptor's 'x2 - x1'):
    the states it reads and a NumPy function of them, printed from the parsed expression."""
    try:
        expr = parse_expression(text, Location("variables_of_interest"), _StatesOnly(compiled))
    except SpecError as exc:
        raise _refuse(f"variables_of_interest entry {text!r}", exc.bare_message) from None
    args = sorted((s.name for s in expr.free_symbols), key=compiled.state_variables.index)
    if not args:
        raise _refuse(f"variables_of_interest entry {text!r}", "it reads no state variable")
    function = sympy.lambdify([sympy.Symbol(a, real=True) for a in args], expr,
                              modules="numpy", printer=NumpyPrinter(
                                  {"fully_qualified_modules": True}))
    return args, lambda *values: np.asarray(function(*values), dtype=float)


def _check_model_matches_spec(model: Any, compiled: CompiledModel) -> None:
    """What the spec fixes must be what the TVB instance uses: cvar, boundaries, and TVB
    parameters the spec leaves out (Hopfield's `dynamic`) at their defaults."""
    if list(np.asarray(model.cvar)) != list(compiled.cvar):
        raise _refuse(f"cvar {list(model.cvar)}",
                      f"the spec '{compiled.name}' couples {list(compiled.cvar)}")
    bounds = getattr(model, "state_variable_boundaries", None) or {}
    for name, info in compiled.states.items():
        low, high = bounds.get(name, (-np.inf, np.inf))
        tvb = (None if low <= -np.finfo(float).max else float(low),
               None if high >= np.finfo(float).max else float(high))
        if tvb != info.boundaries:
            raise _refuse(f"state_variable_boundaries of {name} {tvb}",
                          f"the spec '{compiled.name}' has {info.boundaries}")
    honoured = DERIVED_TABLE_INPUTS.get(type(model).__name__, set()) \
        if type(model).__module__.startswith("tvb.") else set()
    for name in type(model).declarative_attrs:
        trait = getattr(type(model), name)
        if isinstance(trait, NArray) and name not in {*compiled.parameters, *honoured} and \
                trait.default is not None and \
                not np.array_equal(getattr(model, name), trait.default):
            raise _refuse(f"parameter {name}={getattr(model, name)!r}",
                          f"the spec '{compiled.name}' has no {name} (TVB's default only)")


def _initial_history(simulator: Any, kernel: CompiledModel, horizon: int) -> np.ndarray:
    """TVB's configured history as mfgen's initial_history (oldest first, last = t0) in the
    kernel's rows: the coupled variables from TVB's delay ring, the current state as the last
    entry."""
    modes = simulator.model.number_of_modes
    buffer = to_rows(simulator.history.buffer, modes)  # (horizon, n_cvar * n_modes, n)
    state = to_rows(simulator.current_state, modes)  # (n_state * n_modes, n_nodes)
    now = simulator.current_step
    slots = [(now - lag) % horizon for lag in range(horizon - 1, -1, -1)]
    history = np.repeat(state[np.newaxis], horizon, axis=0)
    history[:, kernel.cvar] = buffer[slots]
    history[-1] = state
    return history
