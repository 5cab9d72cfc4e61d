"""Stage 4: render the optimised kernel and the NumPy reference through Jinja templates."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import jinja2
import sympy

from mfgen import __version__
from mfgen.codegen.coupling import load_coupling_functions
from mfgen.codegen.integrators import INTEGRATORS
from mfgen.codegen.ir import ModelIR
from mfgen.codegen.names import c_name
from mfgen.codegen.optimize import Kernel
from mfgen.codegen.printing import c_expression, numpy_expression

# libmvec (glibc) provides SIMD versions of these; sqrt/fabs/fmax are instructions already.
LIBMVEC_FUNCTIONS = ("exp", "log", "erf", "erfc", "tanh", "sin", "cos", "pow")

C_DECLARATIONS = """
void dfun_uniform(const int64_t n, const double *state, const double *coupling,
                  const double local_coupling, const double *params, double *deriv);
void dfun_per_node(const int64_t n, const double *state, const double *coupling,
                   const double local_coupling, const double *params, double *deriv);
typedef struct {
    int32_t kind; int32_t period; int32_t n_voi; const int32_t *voi; double *accumulator;
    int32_t phase; double *out; int64_t capacity; int64_t n_out;
} mf_monitor;
typedef struct {
    int64_t n_nodes; int64_t t; double dt; const double *params; int32_t per_node;
    double local_coupling; int64_t horizon; const int64_t *row_ptr; const int32_t *col;
    const double *weight; const int32_t *delay; int32_t coupling_kind;
    int32_t coupling_float32; const double *coupling_params; double *history; int32_t n_noisy;
    const int32_t *noisy_states; const double *noise_gain; uint64_t seed;
    const double *noise_in; int32_t n_monitors; mf_monitor *monitors; double *scratch;
    int64_t bad_step; int64_t bad_node; int32_t bad_state;
} mf_sim;
void mf_philox(const uint32_t *counter, const uint32_t *key, uint32_t *out);
void mf_normals(uint64_t seed, int64_t step, int32_t q, int64_t n_nodes, double *out);
""" + "".join(
    f"int64_t simulate_{name}(mf_sim *sim, double *x, int64_t n_steps);\n"
    for name in INTEGRATORS)


def _literal(value: float | None, open_end: str) -> str:
    return open_end if value is None else repr(float(value))


def _simulation_context(ir: ModelIR) -> dict:
    couplings = [
        {"name": f.name, "parameters": [p for p, _ in f.parameters],
         "pre": c_expression(f.pre, mangle=False),
         "post": c_expression(f.post, mangle=False)}
        for f in load_coupling_functions().values()]
    integrators = []
    for tab in INTEGRATORS.values():
        rows = [[(j, repr(float(a))) for j, a in enumerate(row) if a] for row in tab.a]
        integrators.append({
            "name": tab.name, "description": tab.description, "stages": tab.stages,
            "a": rows, "b": [(j, repr(float(b))) for j, b in enumerate(tab.b) if b],
            "stochastic": tab.stochastic, "stage_noise": tab.stage_noise})
    return {
        "cvar": [c.state_index for c in ir.coupling],
        "lower": [_literal(s.boundaries[0], "-INFINITY") for s in ir.states],
        "upper": [_literal(s.boundaries[1], "INFINITY") for s in ir.states],
        "bounded": [k for k, s in enumerate(ir.states) if s.boundaries != (None, None)],
        "couplings": couplings,
        "integrators": integrators,
        "max_stages": max(t.stages for t in INTEGRATORS.values()),
    }


@dataclass(frozen=True)
class GeneratedSource:
    c_source: str
    c_declarations: str
    reference_source: str


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("mfgen.templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _used_functions(exprs: list[sympy.Expr]) -> list[str]:
    used = set()
    for expr in exprs:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, sympy.Function) and type(node).__name__ in LIBMVEC_FUNCTIONS:
                used.add(type(node).__name__)
            elif isinstance(node, sympy.Pow) and not node.exp.is_Integer and \
                    abs(node.exp) != sympy.S.Half:
                used.add("pow")
    return sorted(used)


def render(ir: ModelIR, kernel: Kernel) -> GeneratedSource:
    env = _environment()
    printed = [(c_name(s.name), c_expression(e)) for s, e in kernel.statements]
    invariant = [(n, v) for (s, _), (n, v) in zip(kernel.statements, printed)
                 if s in kernel.loop_invariant]
    per_node = [(n, v) for (s, _), (n, v) in zip(kernel.statements, printed)
                if s not in kernel.loop_invariant]
    c_source = env.get_template("dfun.c.j2").render(
        version=__version__,
        model_name=ir.name,
        ir_digest=ir.digest()[:16],
        simd_functions=_used_functions([e for _, e in kernel.statements] + kernel.outputs),
        slots=[c_name(s) for s in ir.parameter_slots],
        states=[c_name(s.name) for s in ir.states],
        coupling=[c_name(c.name) for c in ir.coupling],
        statements=printed,
        invariant_statements=invariant,
        node_statements=per_node,
        outputs=[c_expression(e) for e in kernel.outputs],
        **_simulation_context(ir),
    )
    reference = env.get_template("reference.py.j2").render(
        version=__version__,
        model_name=ir.name,
        states=[s.name for s in ir.states],
        coupling=[c.name for c in ir.coupling],
        parameters=[(p.name, p.size) for p in ir.parameters],
        statements=[(s.name, numpy_expression(e)) for s, e in ir.program],
        outputs=[numpy_expression(e) for e in ir.outputs],
    )
    return GeneratedSource(c_source, C_DECLARATIONS, reference)
