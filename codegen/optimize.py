"""Stage 3: optimise the IR program into the statements a kernel evaluates per node.

1. value numbering: statements with identical right-hand sides (the same helper called twice
   with the same arguments, derivative instances that recompute the value) become one;
2. SymPy common-subexpression elimination over all statements and outputs together;
3. dead-code elimination and scheduling in dependency order;
4. statements that depend on parameters only are marked loop-invariant (hoisted out of the
   node loop when every node shares the parameters).
No `simplify()`: it can take minutes on these expressions and gains little over CSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from mfgen.codegen.ir import LOCAL_COUPLING, ModelIR
from mfgen.codegen.printing import power_form

TRANSCENDENTAL = ("exp", "erfc", "erf", "sqrt", "log", "tanh", "sin", "cos", "pow")


@dataclass
class Kernel:
    """The optimised per-node program of one model."""

    statements: list[tuple[sympy.Symbol, sympy.Expr]]
    outputs: list[sympy.Expr]
    loop_invariant: set[sympy.Symbol]
    stats: dict[str, object]


def _value_number(program: list[tuple[sympy.Symbol, sympy.Expr]], outputs: list[sympy.Expr]
                  ) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], list[sympy.Expr]]:
    alias: dict[sympy.Basic, sympy.Basic] = {}
    seen: dict[sympy.Basic, sympy.Symbol] = {}
    kept = []
    for symbol, expr in program:
        value = expr.xreplace(alias) if alias else expr
        if value.is_Atom:
            alias[symbol] = value
        elif value in seen:
            alias[symbol] = seen[value]
        else:
            seen[value] = symbol
            kept.append((symbol, value))
    return kept, [o.xreplace(alias) for o in outputs]


def _share_square_roots(program: list[tuple[sympy.Symbol, sympy.Expr]],
                        outputs: list[sympy.Expr]
                        ) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], list[sympy.Expr]]:
    """Rewrite every b**(k/2) as r**k with one statement r = sqrt(b) per base b.

    Derivatives of sqrt(b) bring b**(-1/2), b**(-3/2), ...: printed as they stand, each is
    another sqrt or a pow() call (slow, and not vectorised); sharing the root leaves one sqrt
    per base.
    """
    roots: dict[sympy.Expr, sympy.Symbol] = {}
    names = sympy.numbered_symbols("_sqrt", real=True)
    rewritten: list[tuple[sympy.Symbol, sympy.Expr]] = []

    def rewrite(expr: sympy.Expr) -> sympy.Expr:
        powers = [p for p in expr.atoms(sympy.Pow) if p.exp.is_Rational and p.exp.q == 2]
        mapping = {}
        for power in powers:
            if power.base not in roots:
                root = next(names)
                rewritten.append((root, sympy.sqrt(rewrite(power.base))))
                roots[power.base] = root
            mapping[power] = roots[power.base] ** int(2 * power.exp)
        return expr.xreplace(mapping) if mapping else expr

    for symbol, expr in program:
        rewritten.append((symbol, rewrite(expr)))
    outputs = [rewrite(o) for o in outputs]
    return rewritten, outputs


def _share_reciprocals(program: list[tuple[sympy.Symbol, sympy.Expr]],
                       outputs: list[sympy.Expr]
                       ) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], list[sympy.Expr]]:
    """One division per denominator: b**-n becomes r**n with r = 1/b computed once.

    Quotient-rule derivatives divide by mu_G, mu_G**2, mu_G**3, ... of the same few bases;
    a division costs several multiplications (and vectorises poorly), so a base used in more
    than one quotient gets one reciprocal that the others multiply by.
    """
    uses: dict[sympy.Expr, int] = {}
    for expr in [e for _, e in program] + outputs:
        for power in expr.atoms(sympy.Pow):
            if power.exp.is_Integer and power.exp < 0:
                uses[power.base] = uses.get(power.base, 0) + (2 if power.exp < -1 else 1)
    shared = [base for base, count in uses.items() if count > 1]
    if not shared:
        return program, outputs
    names = sympy.numbered_symbols("_inv", real=True)
    reciprocal = {base: next(names) for base in shared}

    def rewrite(expr: sympy.Expr) -> sympy.Expr:
        mapping = {p: reciprocal[p.base] ** int(-p.exp) for p in expr.atoms(sympy.Pow)
                   if p.exp.is_Integer and p.exp < 0 and p.base in reciprocal}
        return expr.xreplace(mapping) if mapping else expr

    rewritten = [(r, sympy.Pow(base, -1)) for base, r in reciprocal.items()]
    rewritten += [(symbol, rewrite(expr)) for symbol, expr in program]
    return rewritten, [rewrite(o) for o in outputs]


def _schedule(defined: dict[sympy.Symbol, sympy.Expr], outputs: list[sympy.Expr]
              ) -> list[tuple[sympy.Symbol, sympy.Expr]]:
    """Statements the outputs need, each after its dependencies (iterative DFS)."""
    order: list[tuple[sympy.Symbol, sympy.Expr]] = []
    done: set[sympy.Symbol] = set()
    for output in outputs:
        roots = sorted((s for s in output.free_symbols if s in defined), key=str)
        stack = [(root, False) for root in reversed(roots)]
        while stack:
            symbol, expanded = stack.pop()
            if symbol in done:
                continue
            if expanded:
                done.add(symbol)
                order.append((symbol, defined[symbol]))
                continue
            stack.append((symbol, True))
            deps = sorted((s for s in defined[symbol].free_symbols
                           if s in defined and s not in done), key=str)
            stack.extend((dep, False) for dep in reversed(deps))
    return order


def count_operations(exprs: list[sympy.Expr]) -> int:
    return int(sum(sympy.count_ops(e) for e in exprs))


def count_calls(exprs: list[sympy.Expr]) -> dict[str, int]:
    """How many times each transcendental function is evaluated, as the C printer writes
    the powers (printing.power_form: x**0.5 is a sqrt, e**x an exp, x**12 a pow)."""
    counts = dict.fromkeys(TRANSCENDENTAL, 0)
    for expr in exprs:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, sympy.Function):
                name = type(node).__name__
                if name in counts:
                    counts[name] += 1
            elif isinstance(node, sympy.Pow):
                form = power_form(node)
                if form != "product":
                    counts["sqrt" if form == "rsqrt" else form] += 1
    return {k: v for k, v in counts.items() if v}


def optimize(ir: ModelIR) -> Kernel:
    program, outputs = _value_number(ir.program, ir.outputs)
    program, outputs = _share_square_roots(program, outputs)
    live = _schedule(dict(program), outputs)
    ops_before = count_operations([e for _, e in live] + outputs)

    temporaries = sympy.numbered_symbols("_x", real=True)
    replacements, reduced = sympy.cse([e for _, e in live] + outputs, symbols=temporaries,
                                      order="none")
    statements = list(replacements)
    statements += [(symbol, expr) for (symbol, _), expr in zip(live, reduced[: len(live)])]
    outputs = reduced[len(live):]
    # CSE temporaries may use program symbols: order everything by dependency, then fold the
    # copies CSE leaves behind (s = _x3) in that order.
    statements, outputs = _value_number(_schedule(dict(statements), outputs), outputs)
    statements, outputs = _share_reciprocals(statements, outputs)
    scheduled = _schedule(dict(statements), outputs)

    node_inputs = {sympy.Symbol(s.name, real=True) for s in ir.states}
    node_inputs |= {sympy.Symbol(c.name, real=True) for c in ir.coupling}
    node_inputs.add(sympy.Symbol(LOCAL_COUPLING, real=True))
    per_node: set[sympy.Symbol] = set()
    for symbol, expr in scheduled:
        if expr.free_symbols & (node_inputs | per_node):
            per_node.add(symbol)
    invariant = {s for s, _ in scheduled if s not in per_node}

    final = [e for _, e in scheduled] + outputs
    stats = {
        "statements_ir": len(ir.program),
        "statements": len(scheduled),
        "loop_invariant_statements": len(invariant),
        "operations_before_cse": ops_before,
        "operations_after_cse": count_operations(final),
        "calls_per_node": count_calls([e for s, e in scheduled if s in per_node] + outputs),
    }
    return Kernel(scheduled, outputs, invariant, stats)
