"""The generator's text is deterministic: the IR's canonical text (a structural
serialisation, not srepr), the C and the NumPy reference (printed in SymPy's argument order)
are the same in every process, whatever Python's hash seed: cache keys are their digests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

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


def digests(spec: str) -> list[str]:
    """sha256 of the IR's canonical text, the C and the NumPy reference of `spec`."""
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.locate import resolve_spec_path
    from mfgen.codegen.optimize import optimize
    from mfgen.codegen.render import render
    from mfgen.codegen.spec import load_spec

    ir = build_ir(load_spec(resolve_spec_path(spec)))
    source = render(ir, optimize(ir))
    return [hashlib.sha256(t.encode()).hexdigest()
            for t in (ir.canonical_text(), source.c_source, source.reference_source)]


def test_generated_text_does_not_depend_on_the_hash_seed():
    """Cache keys are digests of these texts: another process must find this one's module.
    This process has a random hash seed (or $PYTHONHASHSEED); the other one another seed."""
    seed = str(int(os.environ.get("PYTHONHASHSEED", "0") or 0) + 1)
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from test_codegen_text import digests; print(json.dumps(digests({SPEC!r})))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == digests(SPEC)
