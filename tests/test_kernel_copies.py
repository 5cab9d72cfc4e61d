"""A large kernel (second order) is compiled once: its per-node-parameter entry point runs the
uniform kernel node by node instead of a second copy of the equations (half the compile time).
Small kernels keep their vectorised per-node copy."""

from __future__ import annotations

import re

import numpy as np

import mfgen
from mfgen.runtime.checking import random_inputs


def _kernel(spec: str) -> str:
    return (mfgen.build(spec).module_dir / "kernel.c").read_text()


def test_second_order_kernel_has_one_copy_of_the_equations():
    # The seed-6 equations evaluate erfc at most twice per node (test_second_order): a second
    # copy of the equations in the module would show up as a second pair.
    kernel = _kernel("tvb_adex_second_order")
    code = kernel[kernel.index("void dfun_uniform("):]  # after the libmvec declarations
    assert 1 <= len(re.findall(r"\berfc\(", code)) <= 2
    per_node = kernel[kernel.index("void dfun_per_node_nodes("):]
    assert "dfun_uniform_nodes(_n, _i, _i + 1" in per_node


def test_first_order_kernel_keeps_its_vectorised_per_node_copy():
    kernel = _kernel("tvb_adex_first_order")
    per_node = kernel[kernel.index("void dfun_per_node_nodes("):]
    assert "#pragma omp simd" in per_node
    assert "dfun_uniform_nodes(" not in per_node


def test_per_node_parameters_node_by_node_equal_the_uniform_kernel_per_node():
    # Both evaluate the same compiled code on one node at a time, so they agree bit for bit;
    # a wrong column gather (stride, slot order) would give another node's parameters.
    model = mfgen.load("tvb_adex_second_order")
    rng = np.random.default_rng(8)
    state, coupling, local, parameters = random_inputs(model, 7, rng)
    assert len(parameters) >= 5  # per-node values for most slots, each different per node
    together = model.dfun(state, coupling, local, **parameters)
    for i in range(state.shape[1]):
        alone = model.dfun(state[:, i:i + 1], coupling[:, i:i + 1], local,
                           **{name: float(values[i]) for name, values in parameters.items()})
        np.testing.assert_array_equal(together[:, i], alone[:, 0])
