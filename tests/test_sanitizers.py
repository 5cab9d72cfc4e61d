"""The generated kernels under AddressSanitizer and UndefinedBehaviorSanitizer.

A model exercising every construct (vector parameters, functions, derivatives, where/max/min,
erfc/exp/log/sqrt/pow/tanh, boundaries, two coupling inputs) is built with
`MFGEN_CFLAGS="-fsanitize=address,undefined ..."` into a private cache and run in a subprocess
(Python itself is not instrumented, so libasan is preloaded) on edge cases: zero, one and
SIMD-remainder node counts, a million nodes, per-node parameters, non-finite inputs; and the
simulation loops with zero, ordinary and the longest delays (a wrapping 10 001-step ring),
every integrator and coupling function, and a blow-up. Any
out-of-bounds access or undefined behaviour aborts the subprocess with a report. A second
subprocess makes a deliberate out-of-bounds call, proving the instrumentation is live.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mfgen.codegen.coupling import load_coupling_functions
from mfgen.runtime.toolchain import detect_toolchain

SPEC = """\
name: sanitized
parameters:
  k: {default: 0.5, range: [0.0, 1.0]}
  P: {default: [1.0, -0.5, 0.25, 2.0]}
state_variables:
  x: {range: [-1.0, 1.0], boundaries: [-5.0, 5.0]}
  y: {range: [-1.0, 1.0]}
  z: {range: [0.0, 1.0], boundaries: [0.0, null]}
coupling:
  c_0: x
  c_1: z
functions:
  F:
    args: [u, "Q[4]"]
    derived:
      s: Q[0] * u + Q[1] * u**2
    return: erfc(s) * exp(-Q[2] * u) + sqrt(abs(u) + Q[3])
derived:
  drive: F(x, P) + local_coupling * y
derivatives:
  x: -k * x + drive + c_0
  y: diff(F, u)(y, P) - y + where(x > 0 and k < 1, log(1 + x * x), max(y, z, 0.1))
  z: min(c_1, 1) * tanh(z) - z**1.5 + abs(x)**0.3 + diff(F, u, u)(z, P)
"""

EDGE_CASES = """
import numpy as np, mfgen

model = mfgen.load(SPEC)
rng = np.random.default_rng(3)
checked = 0
for n in (0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 255, 1 << 20):
    state = rng.uniform(-2, 2, (model.n_states, n))
    coupling = rng.uniform(-1, 1, (len(model.coupling_variables), n))
    per_node = {"k": rng.uniform(0, 1, n), "P": rng.uniform(-1, 1, (4, n))}
    for parameters in ({}, per_node, {"P": np.array([0.5, 0.5, 0.5, 0.5])}):
        result = model.dfun(state, coupling, 0.1, **parameters)
        if n < 1000:  # the NumPy reference of a million nodes only costs time
            reference = model.reference.dfun(state, coupling, 0.1, **parameters)
            with np.errstate(invalid="ignore"):
                ok = np.isclose(result, reference, rtol=1e-9, atol=1e-12, equal_nan=True)
            assert ok.all(), (n, parameters.keys())
        out = np.empty_like(state)
        model.dfun(state, coupling, out=out, **parameters)
        checked += 1
# non-finite and extreme inputs: computed, never trapped
special = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0, 5e-324])
state = np.tile(special, (model.n_states, 1))
coupling = np.tile(special[::-1], (len(model.coupling_variables), 1))
with np.errstate(all="ignore"):
    model.dfun(state, coupling, 1e300)
print("EDGE CASES OK", checked)

# simulations: no network, zero delays, ordinary delays, the longest delays (a 10 001-step ring
# that wraps); every integrator, coupling function and coupling precision; odd chunk sizes
from mfgen import Connectivity, Raw, SubSample, TemporalAverage
runs = 0
couplings = [c["name"] for c in model.manifest["couplings"]]
for n in (0, 1, 2, 5):
    weights = rng.uniform(0, 0.5, (n, n))
    for lengths, speed in ((np.zeros((n, n)), 4.0), (rng.uniform(0, 100, (n, n)), 4.0),
                           (np.full((n, n), 1000.0), 1.0)):
        connectivity = Connectivity(weights, lengths, speed=speed)
        for integrator in ("euler", "heun", "rk4", "euler_maruyama", "heun_stochastic"):
            noise = {"y": 0.01, "z": 0.001} if "maruyama" in integrator or "stoch" in integrator \
                else None
            # every coupling function with short delays; the 10 001-step ring with one
            for coupling in couplings if speed > 1.0 else couplings[:1]:
                simulation = mfgen.Simulation(
                    model, connectivity, integrator=integrator, coupling=coupling, dt=0.1,
                    noise=noise, monitors=[Raw(), SubSample(0.3, ["x"]), TemporalAverage(0.5)],
                    parameters={"k": rng.uniform(0, 1, n)} if runs % 2 else None,
                    coupling_precision="float32" if runs % 3 == 0 else "float64", seed=runs)
                steps = simulation.horizon + 13 if simulation.horizon > 1 else 17
                result = simulation.run(round(steps * 0.1, 10), chunk_steps=997 if n else 5)
                assert result.steps == steps
                runs += 1
# a team of three threads, each in arrays of its own (state copy, stages, a block's coupling)
team = Connectivity(rng.uniform(0, 0.5, (21, 21)), rng.uniform(5, 40, (21, 21)), speed=4.0)
for precision in ("float64", "float32"):
    simulation = mfgen.Simulation(model, team, threads=3, integrator="heun_stochastic",
                                  noise={"y": 0.01}, coupling_precision=precision,
                                  monitors=[Raw(), TemporalAverage(0.5)])
    assert simulation.coupling_order == "blocks"
    simulation.run(12.3, chunk_steps=37)
# a blow-up stops the C loop early
try:
    mfgen.simulate(model, Connectivity(np.ones((3, 3)), np.ones((3, 3))), integrator="rk4",
                   duration=50.0, parameters={"P": np.array([1.0, -0.5, -50.0, 2.0])},
                   initial_state=np.full((model.n_states, 3), 0.5))
except mfgen.SimulationError as exc:
    print("BLOW-UP STOPPED", exc.result.steps)
print("SIMULATIONS OK", runs)
"""

OUT_OF_BOUNDS = """
import ctypes
import numpy as np, mfgen

model = mfgen.load(SPEC)
n = 8
state = np.zeros((model.n_states, n))
coupling = np.zeros((len(model.coupling_variables), n))
out = np.empty_like(state)
kernel = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p)(
    model.function_address("dfun_uniform"))
print("CALLING WITH n TOO LARGE", flush=True)
kernel(n + 1, state.ctypes.data, coupling.ctypes.data, 0.0, model._default_vector.ctypes.data,
       out.ctypes.data)
print("NOT DETECTED")
"""


def _asan_runtime() -> str | None:
    try:
        toolchain = detect_toolchain()
    except Exception:  # noqa: BLE001 - no compiler: nothing to sanitize
        return None
    command = toolchain.compiler.split()
    found = subprocess.run([*command, "-print-file-name=libasan.so"], capture_output=True,
                           text=True).stdout.strip()
    return found if os.path.isabs(found) and os.path.exists(found) else None


ASAN = _asan_runtime()
pytestmark = pytest.mark.skipif(ASAN is None or not shutil.which("cc"),
                                reason="the C compiler has no AddressSanitizer runtime")


def _run(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    spec = tmp_path / "sanitized.yaml"
    spec.write_text(SPEC)
    env = dict(
        os.environ,
        MFGEN_CACHE_DIR=str(tmp_path / "cache"),
        # ASan's recommended -O1 and frame pointers; -g1 (line tables: file:line in every
        # report) instead of full -g, which only adds variable info and ~40% compile time
        # to the ASan build of the shared simulator.
        MFGEN_CFLAGS="-O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all "
                     "-fno-omit-frame-pointer",
        LD_PRELOAD=ASAN,
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98",
    )
    code = f"SPEC = {str(spec)!r}\n" + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("asan")


def test_kernels_are_clean_under_address_and_undefined_behaviour_sanitizers(folder):
    run = _run(EDGE_CASES, folder)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert "EDGE CASES OK 48" in run.stdout
    # per node count (4) and integrator (5): every coupling at two delay sets, one at the third
    n_couplings = len(load_coupling_functions())
    expected_runs = 4 * 5 * (2 * n_couplings + 1)
    assert "BLOW-UP STOPPED" in run.stdout and f"SIMULATIONS OK {expected_runs}" in run.stdout
    assert "AddressSanitizer" not in report and "runtime error" not in report


def test_the_sanitizer_is_live(folder):
    """The same instrumented module (cached by the test above), called with n one too large."""
    run = _run(OUT_OF_BOUNDS, folder)
    assert "CALLING WITH n TOO LARGE" in run.stdout, run.stderr[-3000:]
    assert "NOT DETECTED" not in run.stdout
    assert run.returncode == 99
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in run.stderr
    # -g1 is enough for the report to name the generated kernel's line
    assert re.search(r"#0 0x[0-9a-f]+ in dfun_uniform\w* \S+\.c:\d+", run.stderr), \
        run.stderr[-3000:]
