"""Stage 4: render the optimised kernel and the NumPy reference through Jinja templates."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import jinja2
import sympy

from mfgen import __version__
from mfgen.codegen.ir import ModelIR
from mfgen.codegen.optimize import Kernel
from mfgen.codegen.printing import c_expression, numpy_expression

# libmvec (glibc) provides SIMD versions of these; sqrt/fabs/fmax are instructions already.
LIBMVEC_FUNCTIONS = ("exp", "log", "erf", "erfc", "tanh", "sin", "cos", "pow")

C_DECLARATIONS = """
void dfun_uniform(const int64_t n, const double *state, const double *coupling,
                  const double local_coupling, const double *params, double *deriv);
void dfun_per_node(const int64_t n, const double *state, const double *coupling,
                   const double local_coupling, const double *params, double *deriv);
"""


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
    printed = [(s.name, c_expression(e)) for s, e in kernel.statements]
    invariant = [(n, v) for (s, _), (n, v) in zip(kernel.statements, printed)
                 if s in kernel.loop_invariant]
    per_node = [(n, v) for (s, _), (n, v) in zip(kernel.statements, printed)
                if s not in kernel.loop_invariant]
    c_source = env.get_template("dfun.c.j2").render(
        version=__version__,
        model_name=ir.name,
        ir_digest=ir.digest()[:16],
        simd_functions=_used_functions([e for _, e in kernel.statements] + kernel.outputs),
        slots=ir.parameter_slots,
        states=[s.name for s in ir.states],
        coupling=[c.name for c in ir.coupling],
        statements=printed,
        invariant_statements=invariant,
        node_statements=per_node,
        outputs=[c_expression(e) for e in kernel.outputs],
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
