"""atan2 is SIMD-callable (glibc's libmvec has it from 2.35 on), so a node loop that calls it
vectorises instead of calling libm's scalar atan2 once per node."""

from __future__ import annotations

import os
import re

import numpy as np

import mfgen
from mfgen.runtime.cache import cache_root, module_file
from mfgen.runtime.toolchain import detect_toolchain

ATAN2_MODEL = """\
name: atan2_probe
state_variables:
  x: {range: [-1.0, 1.0]}
  y: {range: [-1.0, 1.0]}
coupling:
  c_0: x
derivatives:
  x: atan2(y, x) + c_0
  y: -x
"""


def glibc_has_vector_atan2() -> bool:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split() if hasattr(os, "confstr") \
        else ("", "0.0")
    major, minor = (int(part) for part in version.split(".")[:2])
    return name == "glibc" and (major, minor) >= (2, 35)


def test_atan2_calls_libmvecs_vector_atan2(tmp_path):
    path = tmp_path / "atan2_probe.yaml"
    path.write_text(ATAN2_MODEL)
    model = mfgen.load(str(path))
    library = module_file(cache_root() / "modules" / model.module_key)
    symbols = set(re.findall(rb"_ZGV[a-z]N\d+vv_atan2\b", library.read_bytes()))
    uses_libmvec = "-DMFGEN_USE_LIBMVEC" in detect_toolchain().flags
    # Where the toolchain links libmvec and glibc has the vector atan2, the node loop calls
    # it (e.g. _ZGVdN4vv_atan2: AVX2, 4 doubles); elsewhere the scalar atan2 only.
    assert bool(symbols) == (uses_libmvec and glibc_has_vector_atan2()), symbols
    # Vectorised or not, the kernel computes atan2: against NumPy's (libm's), within the
    # 4 ulp glibc documents for libmvec's vector functions.
    state = np.random.default_rng(0).uniform(-1, 1, (2, 37))
    dx = model.dfun(state, np.zeros((1, 37)))
    np.testing.assert_allclose(dx[0], np.arctan2(state[1], state[0]), rtol=4 * 2.0**-52, atol=0)


def test_a_split_node_loop_vectorises_a_sin_and_a_cos_of_one_argument():
    """In one loop gcc fuses sin(x) and cos(x) into one sincos call, which it does not
    vectorise (the EpileptorCodim3 kernels ran scalar); split at its calls
    (codegen/schedule.py), each in a loop of its own, they call libmvec's vector sin and cos
    where the toolchain links it. The noise's Box-Muller loop likewise (the simulator)."""
    model = mfgen.load("tvb_epileptor_codim3")
    library = module_file(cache_root() / "modules" / model.module_key).read_bytes()
    uses_libmvec = "-DMFGEN_USE_LIBMVEC" in detect_toolchain().flags
    for function in (b"sin", b"cos"):
        assert bool(re.search(rb"_ZGV[a-z]N\d+v_" + function + rb"\b", library)) == \
            uses_libmvec, function
    # and neither kernel (shared or per-node parameters) fell back to gcc's scalar sincos
    assert (b"sincos" in library) != uses_libmvec
    simulator = model.simulator_module.__file__
    with open(simulator, "rb") as handle:
        code = handle.read()
    assert bool(re.search(rb"_ZGV[a-z]N\d+v_sin\b", code)) == uses_libmvec
    assert (b"sincos" in code) != uses_libmvec
