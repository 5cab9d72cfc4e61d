"""Stage 4: render the optimised kernel and the NumPy reference through Jinja templates."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
import sympy

from mfgen import __version__
from mfgen.codegen.coupling import load_coupling_functions
from mfgen.codegen.integrators import INTEGRATORS
from mfgen.codegen.ir import ModelIR
from mfgen.codegen.math_functions import SIMD_FUNCTIONS, MathFunction
from mfgen.codegen.names import c_name
from mfgen.codegen.optimize import Kernel, optimize
from mfgen.codegen.printing import numpy_expression, vector_call
from mfgen.codegen.schedule import BLOCK, THREAD_NODE_UNIT, Schedule, schedule
from mfgen.codegen.targets import C, Target

# libmvec (glibc) provides SIMD versions of these (math_functions.py); sqrt/fabs/fmax are
# instructions already.
LIBMVEC_FUNCTIONS = tuple(SIMD_FUNCTIONS)

# Steps of coupling computed in one pass where a coupling sums the history alone and every
# delay is at least BLOCK_STEPS - 1 steps (coupling.c.j2): eight floats (one 256-bit register)
# or doubles (two) per connection read.
BLOCK_STEPS = 8
# the templates' block vectors hold 8 floats or 4 doubles (256 bits): whole ones per block
assert BLOCK_STEPS % 8 == 0

# What the runtime's monitors are, by name: C kind 0 samples the state, 1 averages it.
MONITOR_KINDS = {"raw": 0, "subsample": 0, "temporal_average": 1}


def _simulator_features(f: Any, bundled: bool) -> dict[str, bool]:
    """What the shared simulator does for a bundled coupling function (a model module's own
    functions do neither): `cached_pre`, a history of pre values where pre reads the sources
    alone; `blocks`, several steps of a coupling that sums the history alone in one pass."""
    return {"cached_pre": bundled and f.pre_of_sources_only,
            "blocks": bundled and f.sums_history_alone}


def _coupling_context(functions: Any, target: Target, bundled: bool = False
                      ) -> list[dict[str, Any]]:
    """The coupling functions as the templates see them."""
    return [
        {"name": f.name, "parameters": [p for p, _ in f.parameters], "inputs": list(f.inputs),
         **_simulator_features(f, bundled),
         # Coupling functions name their own C variables (x_i, x_j, gx, parameters).
         "pre": target.printer(f.pre, mangle=False),
         "post": target.printer(f.post, mangle=False),
         # pre is x_j in a plain afferent sum: float32 rows sum eight terms as one vector,
         # in a model module's own function as in the simulator's (the same bits)
         "terms_of_sources": f.sums_history_alone,
         "sum": f.sum, "own_inputs": list(f.own_inputs),
         "first_inputs": list(f.first_inputs), "mean_rows": list(f.mean_rows),
         "own": [(row, target.printer(expression, mangle=False)) for row, expression in f.own]}
        for f in functions]


def _integrator_context() -> list[dict[str, Any]]:
    integrators = []
    for tab in INTEGRATORS.values():
        rows = [[(j, repr(float(a))) for j, a in enumerate(row) if a] for row in tab.a]
        integrators.append({
            "name": tab.name, "description": tab.description, "stages": tab.stages,
            "a": rows, "b": [(j, repr(float(b))) for j, b in enumerate(tab.b) if b],
            "stochastic": tab.stochastic, "stage_noise": tab.stage_noise})
    return integrators


def _simulator_context(target: Target, functions: Any = None) -> dict[str, Any]:
    """The simulator templates' context, for the bundled coupling functions or `functions`."""
    bundled = functions is None
    if bundled:
        functions = load_coupling_functions().values()
    return {"couplings": _coupling_context(functions, target, bundled=bundled),
            "integrators": _integrator_context(), "target": target,
            "block_steps": BLOCK_STEPS, "thread_node_unit": THREAD_NODE_UNIT}


def _coupling_manifest(function: Any, **extra: Any) -> dict[str, Any]:
    return {"name": function.name, "parameters": [[p, v] for p, v in function.parameters],
            "needs_cvars": function.needs_cvars, "sum": function.sum, **extra}


@dataclass(frozen=True)
class GeneratedSource:
    """A model module: its dfun kernels in C (a plain shared library: their interface,
    dfun.h.j2, is pasted into the source) and the NumPy reference."""

    c_source: str
    reference_source: str
    manifest: dict[str, Any]  # what the simulator exports, for the runtime (build_manifest)


@dataclass(frozen=True)
class SimulatorSource:
    """The model-independent simulator module (compiled once per toolchain and generator)."""

    c_source: str
    c_declarations: str  # simulation.h.j2, also pasted into c_source
    manifest: dict[str, Any]


def build_manifest() -> dict[str, Any]:
    """What every module exports, described for the runtime so it restates nothing: the
    integrators (stages, stochasticity), the coupling functions (index = C kind, parameters
    with defaults) and the monitor kinds. JSON-serialisable; stored in the cache index."""
    return {
        "integrators": [
            {"name": t.name, "stages": t.stages, "stochastic": t.stochastic, "order": t.order,
             "description": t.description} for t in INTEGRATORS.values()],
        "max_stages": max(t.stages for t in INTEGRATORS.values()),
        "couplings": [_coupling_manifest(f, **_simulator_features(f, bundled=True))
                      for f in load_coupling_functions().values()],
        "block_steps": BLOCK_STEPS,
        "monitors": [{"name": name, "kind": kind} for name, kind in MONITOR_KINDS.items()],
    }


def _environment(target: Target = C) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files(target.template_package))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _used_functions(exprs: list[sympy.Expr]) -> list[MathFunction]:
    """The SIMD-callable functions the kernel's C calls, sorted by name (base.c.j2 declares
    them)."""
    used: dict[str, MathFunction] = {}
    for expr in exprs:
        for node in sympy.preorder_traversal(expr):
            function = vector_call(node)
            if function is not None:
                used[function.name] = function
    return [used[name] for name in sorted(used)]


def render_simulator(target: Target = C) -> SimulatorSource:
    """The whole-network simulator for every model: time loop, coupling, integrators,
    noise, monitors (simulator.c.j2 and the pieces it includes), for `target`."""
    env = _environment(target)
    context = _simulator_context(target)
    interface = env.get_template("simulation.h.j2").render(**context)
    c_source = env.get_template("simulator.c.j2").render(
        version=__version__, interface=interface, **context)
    return SimulatorSource(c_source, interface, build_manifest())


def _printed_schedule(plan: Schedule, printed: dict[sympy.Expr, str]) -> dict[str, Any]:
    """A schedule's loops as C text for dfun.c.j2; `printed`: C text of expressions, shared
    by a kernel's two forms (printing is most of render's time)."""
    def names(symbols: list[sympy.Symbol]) -> list[str]:
        return [c_name(s.name) for s in symbols]

    return {"split": plan.split, "block": BLOCK, "block_values": names(plan.block_values),
            "loops": [{"uses": set(names(list(loop.uses()))),
                       "statements": [(c_name(s.name), printed[e]) for s, e in loop.statements],
                       "outputs": [(k, printed[e]) for k, e in loop.outputs],
                       "loads": names(loop.loads), "stores": names(loop.stores)}
                      for loop in plan.loops]}


class _Printed(dict):
    """C text of each expression asked for, printed once."""

    def __init__(self, target: Target):
        super().__init__()
        self.target = target

    def __missing__(self, expr: sympy.Expr) -> str:
        self[expr] = text = self.target.printer(expr)
        return text


def _kernel_source(env: jinja2.Environment, ir: ModelIR, kernel: Kernel, target: Target,
                   interface: str, prefix: str, kernels_only: bool) -> str:
    """dfun.c.j2 for one kernel: prefix_uniform[_nodes], prefix_per_node[_nodes]."""
    printed = _Printed(target)
    invariant = [(c_name(s.name), printed[e]) for s, e in kernel.statements
                 if s in kernel.loop_invariant]
    node_statements = [(s, e) for s, e in kernel.statements if s not in kernel.loop_invariant]
    return env.get_template("dfun.c.j2").render(
        version=__version__,
        model_name=ir.name,
        ir_digest=ir.digest()[:16],
        simd_functions=_used_functions([e for _, e in kernel.statements] + kernel.outputs),
        slots=[c_name(s) for s in ir.parameter_slots],
        states=[c_name(s.name) for s in ir.states],
        coupling=[c_name(c.name) for c in ir.coupling],
        invariant_statements=invariant,
        # the node loop split at its math calls (schedule.py): with parameters shared by all
        # nodes (loop invariants hoisted) and with per-node parameters
        uniform=_printed_schedule(schedule(node_statements, kernel.outputs), printed),
        per_node=_printed_schedule(schedule(kernel.statements, kernel.outputs), printed),
        interface=interface,
        prefix=prefix,
        kernels_only=kernels_only,
    )


def render(ir: ModelIR, kernel: Kernel, target: Target = C) -> GeneratedSource:
    """A model's module: its dfun kernels in C, and the NumPy reference. Every target runs
    the same model module (its kernels compute any range of nodes)."""
    env = _environment(target)
    interface = env.get_template("dfun.h.j2").render()
    c_source = _kernel_source(env, ir, kernel, target, interface, "dfun", False)
    if ir.observables:
        # The observables: a second kernel with the dfun signature whose outputs are the
        # observables' values (rows of `out`), so the simulator calls it as it calls dfun.
        observed = dataclasses.replace(ir, outputs=[e for _, e in ir.observables],
                                       _canonical="")
        c_source += _kernel_source(env, observed, optimize(observed), target, interface,
                                   "observe", True)
    if any(b is not None for b in ir.noise_b):
        # TVB's Multiplicative noise: b(x) per state (1 where the noise is additive), a kernel
        # with dfun's signature the simulator calls at the start of each stochastic step.
        gains = dataclasses.replace(ir, outputs=[sympy.S.One if b is None else b
                                                 for b in ir.noise_b], _canonical="")
        c_source += _kernel_source(env, gains, optimize(gains), target, interface,
                                   "noise_b", True)
    manifest = build_manifest()
    manifest["observables"] = [name for name, _ in ir.observables]
    # Observables of the states alone, as SymPy text: the TVB bridge records a TVB
    # variables_of_interest expression in C when it parses to the same expression.
    states = {sympy.Symbol(s.name, real=True) for s in ir.states}
    manifest["observable_expressions"] = {
        name: sympy.srepr(e) for name, e in ir.observables if e.free_symbols <= states}
    manifest["multiplicative_noise"] = [s.name for s, b in zip(ir.states, ir.noise_b)
                                        if b is not None]
    # b(x) of states alone, as SymPy text: the TVB bridge checks TVB's b against it.
    manifest["noise_b_expressions"] = {
        s.name: sympy.srepr(b) for s, b in zip(ir.states, ir.noise_b)
        if b is not None and b.free_symbols <= states}
    if ir.couplings:
        # The spec's coupling functions: exported from this module as mf_user_coupling_<i>.
        context = _simulator_context(target, ir.couplings)
        c_source += env.get_template("model_couplings.c.j2").render(
            interface=env.get_template("simulation.h.j2").render(**context), **context)
        manifest["couplings"] = manifest["couplings"] + [
            _coupling_manifest(f, symbol=f"mf_user_coupling_{i}")
            for i, f in enumerate(ir.couplings)]
    reference = env.get_template("reference.py.j2").render(
        version=__version__,
        model_name=ir.name,
        states=[s.name for s in ir.states],
        coupling=[c.name for c in ir.coupling],
        parameters=[(p.name, p.size) for p in ir.parameters],
        statements=[(s.name, numpy_expression(e)) for s, e in ir.program],
        outputs=[numpy_expression(e) for e in ir.outputs],
    )
    return GeneratedSource(c_source, reference, manifest)
