"""The generator's text is fast and still deterministic: C terms in SymPy's default order
(computed by printing.ordered_terms, not SymPy's slow as_ordered_terms), the IR's canonical
text the same in every process, whatever Python's hash seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sympy
from sympy.printing.c import C99CodePrinter

from mfgen.codegen.ir import build_ir, structural_text
from mfgen.codegen.locate import resolve_spec_path
from mfgen.codegen.optimize import optimize
from mfgen.codegen.printing import CPrinter, ordered_terms
from mfgen.codegen.spec import load_spec

SPEC = "tvb_zerlaut_adaptation_first_order"  # Piecewise, Max, sqrt, erfc, floats, rationals


class SympyOrderPrinter(CPrinter):
    """The C printer with SymPy's own term order, the reference for ordered_terms."""

    def _as_ordered_terms(self, expr: sympy.Expr, order: str | None = None) -> list:
        return C99CodePrinter._as_ordered_terms(self, expr, order=order)


@pytest.fixture(scope="module")
def kernel_expressions() -> list[sympy.Expr]:
    ir = build_ir(load_spec(resolve_spec_path(SPEC)))
    kernel = optimize(ir)
    return [e for _, e in ir.program] + [e for _, e in kernel.statements] + kernel.outputs


def test_ordered_terms_is_sympys_order_on_a_bundled_model(kernel_expressions):
    sums = {node for expr in kernel_expressions for node in sympy.preorder_traversal(expr)
            if isinstance(node, sympy.Add)}
    assert len(sums) > 50  # the spec exercises the ordering, not a handful of sums
    for node in sums:
        assert ordered_terms(node) == node.as_ordered_terms(), node
    reference, printer = SympyOrderPrinter(), CPrinter()
    for expr in kernel_expressions:
        assert printer.doprint(expr) == reference.doprint(expr)


x, y, z = sympy.symbols("x y z", real=True)


@pytest.mark.parametrize("expr", [
    1 - x,  # SymPy's special case: a positive number first
    -1 + 2 * x, sympy.pi * x + x + 3, sympy.Rational(1, 3) * x - sympy.Rational(2, 7) * y,
    sympy.Float("1e-300") * x + sympy.Float("-2.5") * x**2 * y + z**sympy.Rational(1, 2),
    sympy.sqrt(2) * x - sympy.E * y + sympy.exp(x) * y**3 + sympy.Max(x, y) + 7,
    x**y + x * y + x**2 + sympy.Float(1e308) * z,
])
def test_ordered_terms_is_sympys_order_on_coefficients_of_every_kind(expr):
    assert ordered_terms(expr) == expr.as_ordered_terms()


def test_structural_text_tells_trees_apart():
    memo: dict = {}
    texts = {structural_text(e, memo) for e in (x + y, x * y, x - y, x / y, x**y, y**x,
                                                sympy.Float("0.1") * x, sympy.Rational(1, 10) * x)}
    assert len(texts) == 8
    assert structural_text(x + y) == structural_text(y + x)  # the same tree, the same text


DIGESTS = """
import hashlib, json, sys
from mfgen.codegen.ir import build_ir
from mfgen.codegen.locate import resolve_spec_path
from mfgen.codegen.optimize import optimize
from mfgen.codegen.render import render
from mfgen.codegen.spec import load_spec
ir = build_ir(load_spec(resolve_spec_path(sys.argv[1])))
source = render(ir, optimize(ir))
print(json.dumps([hashlib.sha256(t.encode()).hexdigest() for t in
                  (ir.canonical_text(), source.c_source, source.reference_source)]))
"""


def test_generated_text_does_not_depend_on_the_hash_seed():
    """Cache keys are digests of these texts: a second process must find the first's module."""
    digests = []
    for seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-c", DIGESTS, SPEC], capture_output=True,
                             text=True, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
        assert run.returncode == 0, run.stderr
        digests.append(json.loads(run.stdout))
    assert digests[0] == digests[1]
