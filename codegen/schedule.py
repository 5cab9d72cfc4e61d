"""The node loop split at its math calls (loop fission), for the C kernels.

A node loop whose body calls libmvec's vector functions (erfc, exp, ...) keeps every value
that lives across a call in memory (the vector ABI saves no vector register), and its body is
too long for the CPU to overlap one iteration's chain of divisions and calls with the next
one's: ZerlautAdaptation's transfer functions ran at the latency of that chain. Split at the
calls, the kernel becomes short loops over a block of nodes: arithmetic loops, each ending
with the arguments of the calls it feeds, and call loops that only evaluate the function over
the block. Each node's values go through the same operations as in one loop (a product and a
sum in different loops are not fused into one multiply-add, which the compiler may otherwise
do): ZerlautAdaptationFirstOrder at 76 nodes, 1.24 -> 0.91 us per call; EpileptorCodim3, whose
sin and cos get loops of their own, 7.2 -> 2.2 us (benchmarks/engine_results.md, round 8).

Values crossing loops go through block arrays (`block_values`); inputs (states, coupling,
parameters, loop invariants) are read again where they are used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sympy

from mfgen.codegen.printing import vector_call

# Threads split the nodes in runs of this many (stages.c.j2): whole noise pairs, and whole
# iterations of the kernels' vectorised node loops (4 doubles with AVX2, 8 with AVX-512, either
# unrolled twice), so every node is computed by the vector body or by the scalar remainder
# whatever the thread count: libmvec's and libm's erfc, exp, ... differ in the last bit for a
# third of erfc's arguments. A block is a whole number of runs, for the same reason.
THREAD_NODE_UNIT = 16
# Nodes per block: a whole number of thread runs; at most MAX_BLOCK_VALUES block arrays of it
# (16 KiB) stay in the L1 data cache.
BLOCK = 64
# Splitting pays where long chains of divisions and square roots feed the calls (their latency
# is what the split lets the CPU overlap), or where one loop would not vectorise at all (a sin
# and a cos of one argument: gcc fuses them into one sincos call, which it does not vectorise,
# though libmvec has a vector sincos), and only where few values
# cross loops. Measured per bundled spec (benchmarks/engine_results.md, round 8): the AdEx
# first-order kernels (10-13 before their calls) 0.73-0.79x the time of one loop,
# EpileptorCodim3 (sin and cos) 0.31x; LarterBreakspear (5 before its calls) 0.93x as a bare
# kernel but 1.1x in a run, WilsonCowan's sigmoids 2x, the second-order kernels (90 values
# crossing loops) 1.05-1.15x: those keep one loop.
MIN_LATENCY_OPS = 8
MAX_BLOCK_VALUES = 32


@dataclass
class Loop:
    """One loop over a block of nodes: `arithmetic` computes statements and outputs (index,
    expression); `calls` evaluates one math call per statement."""

    kind: str
    statements: list[tuple[sympy.Symbol, sympy.Expr]] = field(default_factory=list)
    outputs: list[tuple[int, sympy.Expr]] = field(default_factory=list)
    loads: list[sympy.Symbol] = field(default_factory=list)   # from earlier loops
    stores: list[sympy.Symbol] = field(default_factory=list)  # for later loops

    def uses(self) -> set[sympy.Symbol]:
        """Every symbol the loop's statements and outputs read."""
        used: set[sympy.Symbol] = set()
        for _, expr in [*self.statements, *self.outputs]:
            used |= expr.free_symbols
        return used


@dataclass
class Schedule:
    loops: list[Loop]

    @property
    def split(self) -> bool:
        return len(self.loops) > 1

    @property
    def block_values(self) -> list[sympy.Symbol]:
        """Every value a loop stores for a later one."""
        return [symbol for loop in self.loops for symbol in loop.stores]


def _latency_ops(expr: sympy.Expr) -> int:
    """Divisions and square roots in `expr` (the long-latency operations)."""
    return sum(1 for node in sympy.preorder_traversal(expr) if isinstance(node, sympy.Pow)
               and (node.exp.is_negative or node.exp in (sympy.S.Half, -sympy.S.Half)))


def _sine_and_cosine(calls: Iterable[sympy.Expr]) -> bool:
    """Whether a sin and a cos of one argument are among `calls`."""
    arguments = {type(call).__name__: set() for call in calls}
    for call in calls:
        arguments[type(call).__name__].add(call.args)
    return bool(arguments.get("sin", set()) & arguments.get("cos", set()))


def _calls_bottom_up(expr: sympy.Expr) -> list[sympy.Expr]:
    """The call nodes of `expr`, each after the calls in its arguments."""
    found: list[sympy.Expr] = []
    for node in sympy.postorder_traversal(expr):
        if vector_call(node) is not None and node not in found:
            found.append(node)
    return found


def schedule(statements: list[tuple[sympy.Symbol, sympy.Expr]], outputs: list[sympy.Expr]
             ) -> Schedule:
    """The loops of a node loop computing `statements` (in order) then `outputs`; symbols
    not defined by a statement are inputs, available in every loop."""
    # 1. Every call becomes a statement of its own, over argument symbols.
    program: list[tuple[sympy.Symbol, sympy.Expr]] = []
    calls: dict[sympy.Symbol, sympy.Expr] = {}
    replaced: dict[sympy.Expr, sympy.Symbol] = {}
    argument_symbols: dict[sympy.Expr, sympy.Symbol] = {}  # one per argument, however many calls

    def extract(expr: sympy.Expr) -> sympy.Expr:
        for call in _calls_bottom_up(expr):
            if call in replaced:
                continue
            arguments = []
            for argument in call.args:
                argument = argument.xreplace(replaced)
                if argument.free_symbols and not argument.is_Symbol:  # E, 2.5: as they are
                    if argument not in argument_symbols:
                        symbol = sympy.Symbol(f"_arg{len(argument_symbols)}", real=True)
                        program.append((symbol, argument))
                        argument_symbols[argument] = symbol
                    argument = argument_symbols[argument]
                arguments.append(argument)
            symbol = sympy.Symbol(f"_call{len(replaced)}", real=True)
            value = call.func(*arguments, evaluate=False)
            program.append((symbol, value))
            calls[symbol] = value
            replaced[call] = symbol
        return expr.xreplace(replaced) if replaced else expr

    for symbol, expr in statements:
        program.append((symbol, extract(expr)))
    final = [extract(expr) for expr in outputs]
    one_loop = Schedule([Loop("arithmetic", list(statements), list(enumerate(outputs)))])
    if not calls:
        return one_loop

    # 2. Levels: a call's result is one level above its arguments; every other value is at
    # the level of its highest operand (inputs: 0).
    level: dict[sympy.Symbol, int] = {}

    def level_of(expr: sympy.Expr) -> int:
        return max((level.get(s, 0) for s in expr.free_symbols), default=0)

    for symbol, expr in program:
        level[symbol] = level_of(expr) + (symbol in calls)
    top = max(level.values())
    loops: list[Loop] = []
    for depth in range(top + 1):
        if depth:
            # one loop per call: gcc fuses a sin and a cos of one argument in one loop into a
            # sincos call, which it does not vectorise
            loops += [Loop("calls", [(symbol, expr)]) for symbol, expr in program
                      if symbol in calls and level[symbol] == depth]
        loops.append(Loop("arithmetic", [(symbol, expr) for symbol, expr in program
                                         if symbol not in calls and level[symbol] == depth],
                          [(k, e) for k, e in enumerate(final) if level_of(e) == depth]))
    loops = [loop for loop in loops if loop.statements or loop.outputs]
    home: dict[sympy.Symbol, int] = {}   # the loop that computes each value
    for index, loop in enumerate(loops):
        for symbol, _ in loop.statements:
            home[symbol] = index

    # 3. What crosses loops goes through block arrays.
    crossing: list[sympy.Symbol] = []
    for index, loop in enumerate(loops):
        used = loop.uses()
        for symbol, _ in program:
            if symbol in used and home[symbol] != index:
                loop.loads.append(symbol)
                if symbol not in crossing:
                    crossing.append(symbol)
    for symbol in crossing:
        loops[home[symbol]].stores.append(symbol)
    last_calls = max(i for i, loop in enumerate(loops) if loop.kind == "calls")
    feeding = sum(_latency_ops(expr) for loop in loops[:last_calls] if loop.kind == "arithmetic"
                  for _, expr in loop.statements)
    if (feeding < MIN_LATENCY_OPS and not _sine_and_cosine(calls.values())) or \
            len(crossing) > MAX_BLOCK_VALUES:
        return one_loop
    return Schedule(loops)
