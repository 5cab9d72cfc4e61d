"""The node loop split at its math calls (codegen/schedule.py): the loops' structure, and the
compiled kernels over blocks of nodes (the same values for any split of the nodes into
thread ranges, and the NumPy reference's)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import sympy
from helpers import relative_error

import mfgen
from mfgen.codegen.printing import vector_call
from mfgen.codegen.schedule import (
    BLOCK,
    MAX_BLOCK_VALUES,
    MIN_LATENCY_OPS,
    THREAD_NODE_UNIT,
    schedule,
)
from mfgen.runtime.checking import DEFAULT_RTOL, random_inputs

x, y, z, a, b, c = sympy.symbols("x y z a b c", real=True)


def test_a_kernel_without_calls_is_one_loop():
    plan = schedule([(a, x * y + 1), (b, sympy.sqrt(a) / z + a**2)], [b, a])
    assert not plan.split and plan.block_values == []
    assert plan.loops[0].statements == [(a, x * y + 1), (b, sympy.sqrt(a) / z + a**2)]


# MIN_LATENCY_OPS divisions and square roots before the calls: the long chains splitting lets
# the CPU overlap
LONG = [(a, sum((1 / (x + k * y) for k in range(MIN_LATENCY_OPS - 1)), sympy.S.Zero)
         + sympy.sqrt(x + y + 1))]


def test_calls_split_the_loop_by_level():
    """Each call is evaluated in a loop that only calls, after the loop computing its argument;
    what a later loop reads is stored by the loop that computes it and loaded where read."""
    plan = schedule([*LONG, (b, sympy.erfc(a / z) / a), (c, sympy.exp(b) + x**1.5)],
                    [c + a, 2 * x])
    kinds = [loop.kind for loop in plan.loops]
    assert kinds == ["arithmetic", "calls", "calls", "arithmetic", "calls", "arithmetic"]
    # one call per loop (a sin and a cos of one argument in one loop fuse into scalar sincos)
    assert all(len(loop.statements) == 1 and vector_call(loop.statements[0][1]) is not None
               for loop in plan.loops if loop.kind == "calls")
    first_calls = [plan.loops[i].statements[0][1] for i in (1, 2)]
    assert {type(e).__name__ for e in first_calls} == {"erfc", "Pow"}  # x**1.5: pow()
    assert [type(e).__name__ for _, e in plan.loops[4].statements] == ["exp"]
    assert plan.loops[0].outputs == [(1, 2 * x)] and plan.loops[5].outputs[0][0] == 0
    for index, loop in enumerate(plan.loops):
        defined = {s for s, _ in loop.statements}
        assert set(loop.loads) == loop.uses() & set(plan.block_values) - defined
        for symbol in loop.stores:
            assert symbol in defined
            assert any(symbol in later.loads for later in plan.loops[index + 1:])
    assert BLOCK % THREAD_NODE_UNIT == 0   # a block is whole thread runs


def test_only_long_chains_or_a_sine_and_cosine_split_the_loop():
    """Under MIN_LATENCY_OPS divisions and square roots before the last call (a sigmoid's
    1 / (1 + exp(...)) has its division after it), or over MAX_BLOCK_VALUES values crossing
    loops, the kernel stays one loop (measured slower split); a sin and a cos of one argument
    split it (in one loop gcc fuses them into the scalar sincos)."""
    sigmoid = [(a, x * y + 1), (b, 1 / (1 + sympy.exp(-a))), (c, 1 / (1 + sympy.exp(b / z)))]
    assert not schedule(sigmoid, [c]).split
    assert schedule([*LONG, *sigmoid], [c]).split
    short = [(a, 1 / (x + y) + sympy.sqrt(x))]
    assert not schedule([*short, (b, sympy.exp(a))], [b]).split
    assert not schedule([*short, (b, sympy.sin(a) + sympy.cos(x))], [b]).split
    assert schedule([*short, (b, sympy.sin(a) + sympy.cos(a))], [b]).split
    # of one compound argument too: it is computed once, for both calls
    plan = schedule([*short, (b, sympy.sin(a * x) + sympy.cos(a * x))], [b])
    assert plan.split and [s for s, e in plan.loops[0].statements if e == a * x] == \
        [sympy.Symbol("_arg0", real=True)]
    many = [(sympy.Symbol(f"t{i}", real=True), x / (y + i)) for i in range(MAX_BLOCK_VALUES + 1)]
    total = sum((symbol for symbol, _ in many), sympy.S.Zero)
    assert not schedule([*many, (a, sympy.exp(x) + total)], [a]).split
    few = many[:MIN_LATENCY_OPS]
    assert schedule([*few, (a, sympy.exp(x) + sum(s for s, _ in few))], [a]).split
    assert "_block_" not in _kernel_c("tvb_wilson_cowan")
    assert "_block_" in _kernel_c("tvb_zerlaut_adaptation_first_order")


def _kernel_c(spec: str) -> str:
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.locate import resolve_spec_path
    from mfgen.codegen.optimize import optimize
    from mfgen.codegen.render import render
    from mfgen.codegen.spec import load_spec

    ir = build_ir(load_spec(resolve_spec_path(spec)))
    return render(ir, optimize(ir)).c_source


def test_constants_stay_in_a_calls_arguments():
    plan = schedule([*LONG, (b, sympy.Pow(sympy.E, x * a, evaluate=False) + sympy.Pow(x, 2.5))],
                    [b])
    calls = [expr for loop in plan.loops if loop.kind == "calls" for _, expr in loop.statements]
    # e**(x y): E stays the base (printed exp); x**2.5: 2.5 stays the exponent (pow)
    assert sorted((str(e.base), str(e.exp)) for e in calls) == \
        [("E", "_arg0"), ("x", str(sympy.Float(2.5)))]
    assert plan.split


def _nodes_kernel(model: mfgen.CompiledModel, per_node: bool):
    signature = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                 ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double,
                                 ctypes.c_void_p, ctypes.c_void_p)
    return signature(model.dfun_address(per_node=per_node))


@pytest.mark.parametrize("per_node", [False, True], ids=["shared", "per-node"])
@pytest.mark.parametrize("spec", ["tvb_zerlaut_adaptation_first_order", "tvb_epileptor_codim3"])
def test_split_kernels_give_each_node_the_same_bits_in_any_thread_range(spec, per_node):
    """Over 3 blocks and a remainder, each kernel (parameters shared by all nodes, and per
    node) run on thread-like ranges (starts on 16-node runs, as the simulator splits nodes)
    gives every node the bits of one call over all nodes, and agrees with the NumPy reference
    (at `mfgen check`'s tolerance)."""
    model = mfgen.load(spec)
    assert "_block_" in _kernel_c(spec)
    n = 3 * 64 + 13
    state, coupling, local, parameters = random_inputs(model, n, np.random.default_rng(5))
    if not per_node:
        parameters = {}
    packed, packed_per_node = model.pack_parameters(parameters, n)
    assert packed_per_node == per_node
    packed = np.ascontiguousarray(packed, dtype=np.float64)
    kernel = _nodes_kernel(model, per_node)

    def over(ranges):
        out = np.full_like(state, np.nan)
        for begin, end in ranges:
            kernel(n, begin, end, state.ctypes.data, coupling.ctypes.data, local,
                   packed.ctypes.data, out.ctypes.data)
        return out

    whole = over([(0, n)])
    for bounds in ([0, 16, n], [0, 80, 144, n], [0, 48, 64, 192, n]):
        np.testing.assert_array_equal(over(zip(bounds[:-1], bounds[1:])), whole)
    expected = model.reference.dfun(state, coupling, local, **parameters)
    np.testing.assert_array_equal(np.isfinite(whole), np.isfinite(expected))
    assert (relative_error(whole, expected, ignore_nonfinite=True) <= DEFAULT_RTOL).all()
