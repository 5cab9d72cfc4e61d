"""The generator's text is deterministic: the IR's canonical text (a structural
serialisation, not srepr), the C and the NumPy reference (printed in SymPy's argument order)
are the same in every process, whatever Python's hash seed: cache keys are their digests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import sympy

from mfgen.codegen.ir import structural_text

SPEC = "tvb_zerlaut_adaptation_first_order"  # Piecewise, Max, sqrt, erfc, floats, rationals


x, y = sympy.symbols("x y", real=True)


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
