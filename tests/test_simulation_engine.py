"""The engine's contracts: the runtime reads what the generator exports (manifest), the cache
key covers every generator input, runs name their spec, TVB's float32 rounding step by step,
checkpoints that continue bit for bit, a state that cannot corrupt memory, and Ctrl-C that
loses nothing."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import thread_counts

import mfgen
from mfgen.codegen import integrators as integrator_table
from mfgen.codegen.coupling import load_coupling_functions
from mfgen.runtime import loader
from mfgen.runtime.cache import generator_files
from mfgen.runtime.connectivity import Connectivity
from mfgen.runtime.simulation import run_batch

ROTATION = """
name: {name}
state_variables:
  x: {{range: [-1.0, 1.0]}}
  y: {{range: [-1.0, 1.0]}}
derivatives:
  x: -y
  y: x
"""
# x(t + dt) = x(t) + dt * c_0 with dt = 1 and x(t) = 0 is the coupling itself: one Euler step
# shows the coupling the C loop computed, to the last bit.
COUPLING_PROBE = """
name: coupling_probe
state_variables:
  x: {range: [0.0, 1.0]}
coupling:
  c_0: x
derivatives:
  x: c_0
"""


@pytest.fixture(scope="module")
def network() -> Connectivity:
    return Connectivity.synthetic(76, seed=7)


@pytest.fixture(scope="module")
def oscillator():
    return mfgen.load("generic_2d_oscillator")


def test_an_integrator_added_to_the_table_is_accepted_by_simulation(monkeypatch, tmp_path):
    """Issue 8: the runtime kept its own list of integrator names."""
    half = Fraction(1, 2)
    midpoint = integrator_table.Tableau("midpoint", ((), (half,)), (Fraction(0), Fraction(1)),
                                        order=2, description="explicit midpoint")
    monkeypatch.setitem(integrator_table.INTEGRATORS, "midpoint", midpoint)
    # editing codegen/integrators.py changes the generator identity: the model and the shared
    # simulator are then generated anew
    identity = loader.generator_identity() + "+midpoint"
    monkeypatch.setattr(loader, "generator_identity", lambda: identity)
    spec = tmp_path / "rotation_midpoint.yaml"
    spec.write_text(ROTATION.format(name="rotation_midpoint"))
    model = mfgen.load(spec)
    assert "midpoint" in [i["name"] for i in model.manifest["integrators"]]
    dt, steps = 0.1, 20
    result = mfgen.simulate(model, None, integrator="midpoint", dt=dt, duration=steps * dt,
                            initial_state=np.array([[1.0], [0.0]]))
    x = np.array([1.0, 0.0])
    expected = []
    for _ in range(steps):  # k1 = f(x), k2 = f(x + dt/2 k1), x += dt k2
        k1 = np.array([-x[1], x[0]])
        mid = x + dt * (0.5 * k1)
        x = x + dt * np.array([-mid[1], mid[0]])
        expected.append(x)
    # the same operations in the same order; gcc may contract x + dt*k into an fma (one
    # rounding fewer): a few ulp over 20 steps.
    np.testing.assert_allclose(result["raw"].data[:, :, 0], expected, rtol=1e-14, atol=1e-15)


def test_the_generator_identity_covers_templates_and_coupling_functions():
    """Issue 8: an edit to specs/coupling/tvb_couplings.yaml was ignored while the cache was
    warm (the identity hashed codegen/ and templates/ only); so was one to the dfun shim's C
    source (templates/dfun_call.c: .c files were not hashed)."""
    hashed = {name for name, _ in generator_files()}
    assert "mfgen.specs.coupling/tvb_couplings.yaml" in hashed
    templates = Path(mfgen.__file__).parent.parent / "templates"
    if templates.is_dir():  # a source checkout: every template file is part of the identity
        files = [path for path in templates.iterdir() if path.is_file()]
        assert "dfun_call.c" in {path.name for path in files}
        for path in files:
            assert f"mfgen.templates/{path.name}" in hashed
    # the coupling functions the generator compiles in are the ones hashed
    contents = dict(generator_files())
    data = contents["mfgen.specs.coupling/tvb_couplings.yaml"].decode()
    for name in load_coupling_functions():
        assert f"{name}:" in data


def test_every_template_file_is_installed():
    """An installed mfgen had no templates/dfun_call.c (package data listed *.j2 and *.h
    only), so every model.dfun failed there."""
    root = Path(__file__).resolve().parent.parent
    package_data = (root / "pyproject.toml").read_text().split(
        "[tool.setuptools.package-data]")[1]
    listed = re.search(r'^"mfgen\.templates" = \[(.*)\]$', package_data, re.M).group(1)
    globs = re.findall(r'"([^"]+)"', listed)
    files = [path for path in (root / "templates").iterdir() if path.is_file()]
    assert "dfun_call.c" in {path.name for path in files}
    for path in files:
        assert path.suffix == ".py" or any(path.match(g) for g in globs), path.name


def test_a_run_record_names_its_spec_files(oscillator, network):
    """Issue 8: result.config['spec_sources'] was always []."""
    result = mfgen.simulate(oscillator, network, duration=1.0)
    sources = result.config["spec_sources"]
    # the spec and the parent it extends, each with its digest
    assert sorted(Path(s["path"]).name for s in sources) == [
        "generic_2d_oscillator.yaml", "tvb_generic_2d_oscillator.yaml"]
    for source in sources:
        assert source["sha256"] == hashlib.sha256(Path(source["path"]).read_bytes()).hexdigest()


def test_float32_linear_coupling_rounds_a_times_sum_plus_b_as_numpy_does(tmp_path):
    """Issue 8: TVB's Linear post a*gx + b (float64 NumPy: two roundings) was compiled into
    one fused multiply-add, 15-19 of 76 nodes one ulp off TVB."""
    spec = tmp_path / "coupling_probe.yaml"
    spec.write_text(COUPLING_PROBE)
    model = mfgen.load(spec)
    network = Connectivity.synthetic(76, seed=3)
    dt, n = 1.0, network.n_regions
    delays = network.delays(dt)
    horizon = int(delays.max()) + 1
    rng = np.random.default_rng(5)
    history = rng.uniform(0.1, 1.0, (horizon, 1, n))
    history[-1] = 0.0  # x(0) = 0
    a, b = 0.37, 0.0123
    simulation = mfgen.Simulation(model, network, integrator="euler", dt=dt,
                                  initial_history=history, coupling_precision="float32",
                                  coupling_parameters={"a": a, "b": b})
    assert simulation.horizon > 10  # real delays (the history given may be longer)
    coupled = simulation.run(dt)["raw"].data[0, 0]
    # TVB 2.10 SparseCoupling: float32 weights and history, float32 products in CSR (column)
    # order, rows summed by np.add.reduceat and stored as float32; then post in float64.
    weights = network.weights
    terms, starts = [], []
    for i in range(n):
        columns = np.flatnonzero(weights[i])
        starts.append(len(terms))
        x_j = history[horizon - 1 - delays[i, columns], 0, columns].astype(np.float32)
        terms.extend(weights[i, columns].astype(np.float32) * x_j)
    assert all(np.diff(starts + [len(terms)]) > 0)  # reduceat needs non-empty rows
    gx = np.add.reduceat(np.array(terms, dtype=np.float32), starts).astype(np.float32)
    expected = a * gx.astype(np.float64) + b
    np.testing.assert_array_equal(coupled, expected)


CHECKPOINT_OPTIONS = dict(
    integrator="heun_stochastic", dt=0.1, noise={"V": 1e-3}, seed=9, coupling_parameters={
        "a": 0.05}, monitors=[mfgen.Raw(["V"]), mfgen.TemporalAverage(0.7, name="tavg")])


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_checkpoint_restore_continues_bit_for_bit(oscillator, network, precision, tmp_path):
    """run(a); checkpoint (through an .npz file); a new Simulation restores it; run(b) == the
    tail of run(a + b)."""
    options = dict(CHECKPOINT_OPTIONS, coupling_precision=precision)
    whole = mfgen.Simulation(oscillator, network, **options).run(25.0)
    first = mfgen.Simulation(oscillator, network, **options)
    first.run(10.3)
    checkpoint = first.checkpoint()
    assert all(isinstance(v, (np.ndarray, int, float)) for v in checkpoint.values())
    np.savez(tmp_path / "checkpoint.npz", **checkpoint)
    second = mfgen.Simulation(oscillator, network, **options)
    with np.load(tmp_path / "checkpoint.npz") as saved:
        second.restore(saved)
    assert second.steps_done == 103
    tail = second.run(14.7)
    np.testing.assert_array_equal(tail.final_state, whole.final_state)
    for label in ("raw", "tavg"):
        count = tail[label].data.shape[0]
        assert count > 0
        np.testing.assert_array_equal(tail[label].data, whole[label].data[-count:])
        np.testing.assert_array_equal(tail[label].times, whole[label].times[-count:])
    # the averaging window open at the checkpoint (step 103 of 7-step windows) is completed
    assert tail["tavg"].data.shape[0] == 250 // 7 - 103 // 7


def test_restore_refuses_a_checkpoint_of_another_configuration(oscillator, network):
    checkpoint = mfgen.Simulation(oscillator, network, **CHECKPOINT_OPTIONS).checkpoint()
    other = mfgen.Simulation(oscillator, network, **dict(CHECKPOINT_OPTIONS, seed=10))
    with pytest.raises(ValueError, match="another configuration"):
        other.restore(checkpoint)
    same = mfgen.Simulation(oscillator, network, **CHECKPOINT_OPTIONS)
    broken = dict(checkpoint, state=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"checkpoint 'state' must be float64 of shape"):
        same.restore(broken)
    with pytest.raises(ValueError, match="checkpoint has no 'history'"):
        same.restore({k: v for k, v in checkpoint.items() if k != "history"})


def test_the_state_cannot_be_replaced_by_an_array_c_would_overrun(oscillator):
    """Issue 12: assigning another shape or dtype to Simulation.state made the C loop write
    out of bounds."""
    simulation = mfgen.Simulation(oscillator, None, n_nodes=76)  # no delays: no history
    live = simulation.state
    with pytest.raises(ValueError, match=r"state must have shape \(2, 76\)"):
        simulation.state = np.zeros((2, 1000))
    with pytest.raises(TypeError, match="state must be a real float64 array"):
        simulation.state = np.zeros((2, 76), dtype=complex)
    with pytest.raises(ValueError, match="state contains NaN"):
        simulation.state = np.full((2, 76), np.nan)
    simulation.state = np.full((2, 76), 0.25, dtype=np.float32)  # converted into place
    assert simulation.state is live and (live == 0.25).all()
    expected = mfgen.simulate(oscillator, None, duration=1.0,
                              initial_state=np.full((2, 76), 0.25))
    np.testing.assert_array_equal(simulation.run(1.0)["raw"].data, expected["raw"].data)


@pytest.mark.parametrize(("options", "message"), [
    (dict(initial_history=np.full((3, 2, 4), np.nan)), "initial_history contains NaN"),
    (dict(monitors=[mfgen.SubSample(1e12)]), "period 1000000000000.0 ms is .* beyond"),
    (dict(local_coupling=10**400), "local_coupling must be a finite number"),
    (dict(local_coupling=1e400), "local_coupling must be finite"),
    (dict(seed=-1), r"seed must be an integer in \[0, 2\*\*64\)"),
    (dict(seed=2**64), r"seed must be an integer"),
    (dict(dt=10**400), "dt must be a finite number"),
    (dict(coupling_parameters={"a": 10**400}), "coupling parameter 'a' must be a finite"),
])
def test_out_of_range_options_name_the_argument(oscillator, options, message):
    with pytest.raises(ValueError, match=message):
        mfgen.Simulation(oscillator, Connectivity.synthetic(4), **options)


def test_a_real_sigint_during_the_c_loop_keeps_every_completed_step(oscillator, network):
    """Issue 12: a SIGINT arriving while C runs dropped that chunk's samples, shifting all
    later times. Now the run stops at the end of the chunk that was running, with every
    sample, and resumes exactly."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's default
    chunk, total = 20000, 200000
    options = dict(seed=4, coupling_parameters={"a": 0.01}, monitors=[mfgen.SubSample(1.0)])
    simulation = mfgen.Simulation(oscillator, network, **options)
    senders = []

    def interrupt_during_the_next_chunk(done, _total):
        if done == chunk:  # sent from another thread while this one enters the C loop again
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
            sender.start()
            senders.append(sender)

    try:
        result = simulation.run(total * 0.1, chunk_steps=chunk,
                                progress=interrupt_during_the_next_chunk)
        senders[0].join()
    finally:
        signal.signal(signal.SIGINT, previous)
    # 8 more chunks (~25 ms each) would have to pass before the signal for the run to end
    assert result.interrupted and 0 < result.steps < total
    assert result.steps % chunk == 0, "stopped inside a chunk"
    assert result["subsample"].data.shape[0] == result.steps // 10
    rest = simulation.run((total - result.steps) * 0.1, chunk_steps=chunk)
    whole = mfgen.simulate(oscillator, network, duration=total * 0.1, chunk_steps=chunk,
                           **options)
    np.testing.assert_array_equal(rest["subsample"].data, whole["subsample"].data)
    np.testing.assert_array_equal(rest["subsample"].times, whole["subsample"].times)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_results_are_bit_identical_for_any_thread_count(oscillator, precision):
    """The OpenMP target splits the nodes among threads; nothing may depend on the split
    (odd node counts, noise pairs straddling a split, monitors, float32 row sums)."""
    if oscillator.simulator_module.lib.mf_max_threads() < 2:
        pytest.skip("the simulator was built without OpenMP (MFGEN_TARGET=c)")
    network = Connectivity.synthetic(77, seed=11)
    options = dict(integrator="heun_stochastic", noise={"V": 1e-3, "W": 1e-4}, seed=21,
                   coupling_parameters={"a": 0.05}, coupling_precision=precision,
                   parameters={"a": np.linspace(-2.0, -1.0, 77)},
                   monitors=[mfgen.Raw(["V"]), mfgen.TemporalAverage(0.5)])
    runs = [mfgen.Simulation(oscillator, network, threads=threads, **options).run(
        30.0, chunk_steps=97) for threads in (1, 2, 3, 8)]
    for other in runs[1:]:
        for label in ("raw", "temporal_average"):
            np.testing.assert_array_equal(other[label].data, runs[0][label].data)
        np.testing.assert_array_equal(other.final_state, runs[0].final_state)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_vectorised_libm_calls_give_one_runs_bits_for_any_thread_count(precision):
    """The dfun kernels' node loop runs erfc, exp, ... through libmvec in its vector body and
    through libm in its scalar remainder, which differ in the last bit for some arguments:
    threads split the nodes in pairs, so a split inside a vector moved nodes from one to the
    other and two threads changed ZerlautAdaptation's traces on TVB's connectome from the
    second step on. Threads now split in whole iterations of the vector loop. Also covers
    blocks with TVB's 66 zero-length self-connections (each precision's form)."""
    model = mfgen.load("tvb_zerlaut_adaptation_first_order")
    network = Connectivity.tvb_default()
    state = np.zeros((model.n_states, network.n_regions))
    state[0], state[1] = 0.005, 0.01
    teams = thread_counts(model, 1, 2, 3)
    orders = ("rows", "auto")
    runs = {(order, threads): mfgen.Simulation(
        model, network, coupling_precision=precision, coupling_order=order, threads=threads,
        initial_state=state) for order in orders for threads in teams}
    assert runs["auto", 1].coupling_order == "blocks"
    results = {key: run.run(20.0, chunk_steps=53)["raw"].data for key, run in runs.items()}
    reference = results["rows", 1]
    for key, data in results.items():
        np.testing.assert_array_equal(data, reference, err_msg=str(key))


def test_a_team_keeps_observables_and_multiplicative_noise_per_thread(tmp_path):
    """In a team each thread works in arrays of its own (its copy of the state, the stages,
    the observables, b(x) of multiplicative noise, a block's coupling): one run's bits for any
    thread count, for a model with observables and multiplicative noise."""
    spec = tmp_path / "epileptor_multiplicative.yaml"
    spec.write_text("name: epileptor_multiplicative\nextends: tvb_epileptor\n"
                    "multiplicative_noise:\n  x1: 0.5 * x1 + 1.0\n")
    model = mfgen.load(spec)
    assert model.manifest["observables"] and model.manifest["multiplicative_noise"]
    rng = np.random.default_rng(3)
    n = 53
    network = Connectivity(rng.uniform(0.0, 0.1, (n, n)) * (rng.random((n, n)) < 0.3),
                           rng.uniform(4.0, 40.0, (n, n)), speed=4.0)
    options = dict(integrator="heun_stochastic", noise={"x1": 1e-4, "z": 1e-5}, seed=5,
                   monitors=[mfgen.Raw(), mfgen.TemporalAverage(0.5, ["x2_minus_x1"])])
    teams = thread_counts(model, 1, 2, 3)
    runs = [mfgen.Simulation(model, network, threads=threads, **options) for threads in teams]
    assert all(run.coupling_order == "blocks" for run in runs)
    results = [run.run(20.0, chunk_steps=31) for run in runs]
    for other in results[1:]:
        for label in ("raw", "temporal_average"):
            np.testing.assert_array_equal(other[label].data, results[0][label].data)
        np.testing.assert_array_equal(other.final_state, results[0].final_state)
    assert np.ptp(results[0]["temporal_average"].data) > 0


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_ring_order_coupling_has_the_bits_of_csr_order(oscillator, precision):
    """Large networks read the history ring in address order first, then sum each row in CSR
    order: every bundled coupling function (x_i, x_j, sin, exp, tanh), float64 and TVB-exact
    float32, one thread, a team of three, and a batch (one thread over blocks made for three)
    give the same bits as the CSR order; rows of 0 to 150 connections (float32 sums rows of
    9 to 129 terms on the fly, others through the terms array)."""
    n, rng = 151, np.random.default_rng(5)
    weights = _rows_of_every_length(n, rng)
    network = Connectivity(weights, rng.uniform(1.0, 60.0, (n, n)))
    functions = [c["name"] for c in oscillator.manifest["couplings"]
                 if not c.get("needs_cvars")]
    assert {"linear", "difference", "kuramoto", "sigmoidal"} <= set(functions)
    threads = thread_counts(oscillator, 1, 3)
    for coupling in functions:
        options = dict(coupling=coupling, coupling_precision=precision, seed=4,
                       integrator="heun_stochastic", noise={"V": 1e-3})
        csr = mfgen.Simulation(oscillator, network, coupling_order="rows", threads=1,
                               **options).run(8.0)
        ring = [mfgen.Simulation(oscillator, network, coupling_order="ring", threads=t,
                                 **options) for t in threads]
        results = [simulation.run(8.0) for simulation in ring]
        # the first pass ran: it leaves the last step's pre values per connection
        assert all(np.any(simulation._edge_values) for simulation in ring), coupling
        batched = mfgen.Simulation(oscillator, network, coupling_order="ring",
                                   threads=threads[-1], **options)
        results += run_batch([batched], 8.0)
        if len(threads) > 1:  # OpenMP gave fewer threads than the blocks were made for:
            fewer = mfgen.Simulation(oscillator, network, coupling_order="ring",
                                     threads=3, **options)
            fewer._sim.n_threads = 2  # ranges that are not whole blocks read in CSR order
            results.append(fewer.run(8.0))
        for result in results:
            np.testing.assert_array_equal(result["raw"].data, csr["raw"].data, err_msg=coupling)


def _rows_of_every_length(n: int, rng: np.random.Generator) -> np.ndarray:
    """Weights with rows of 0 to 150 connections (float32 sums rows of 9 to 129 terms on the
    fly, others through the terms array)."""
    counts = rng.permutation(np.r_[0, 1, 7, 8, 9, 10, 129, 130, 150,
                                   rng.integers(2, 150, n - 9)])
    weights = np.zeros((n, n))
    for i, count in enumerate(counts):
        columns = rng.choice(np.r_[0:i, i + 1:n], size=count, replace=False)
        weights[i, columns] = rng.lognormal(-3.0, 1.0, count)
    return weights


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("self_loops", [False, True], ids=["", "self-loops"])
def test_coupling_blocks_have_the_bits_of_per_step_coupling(oscillator, precision, self_loops):
    """Where every delay is at least block_steps - 1 steps, a coupling that sums the delayed
    states alone is computed block_steps steps at a time from a node-major ring: every such
    bundled function, float64 and TVB-exact float32, rows of 0 to 150 connections, calls that
    start mid-block, one thread, a team of three, a batch and a checkpoint of a per-step run
    restored mid-block give the bits of the per-step CSR coupling, over runs longer than the
    ring (it wraps). The shortest delay is exactly block_steps - 1, so a block's last step
    reads the slot its first step stored. With zero-length self-connections (as TVB's default
    connectome has) both forms add them at each step."""
    n, rng = 151, np.random.default_rng(6)
    block_steps = oscillator.manifest["block_steps"]
    lengths = rng.uniform(4.0, 60.0, (n, n))   # 10-150 steps at 4 mm/ms and dt 0.1 ms
    weights = _rows_of_every_length(n, rng)
    row = int(np.argmax(weights.sum(axis=1)))
    lengths[row, np.flatnonzero(weights[row])[0]] = (block_steps - 1) * 0.4
    if self_loops:   # every third node, rows of every length among them
        nodes = np.arange(0, n, 3)
        weights[nodes, nodes] = rng.lognormal(-3.0, 1.0, nodes.size)
        lengths[nodes, nodes] = 0.0
    network = Connectivity(weights, lengths, speed=4.0)
    delays = network.sparse(0.1)[3]
    assert delays[delays > 0].min() == block_steps - 1
    assert (delays == 0).sum() == (51 if self_loops else 0)
    functions = [c["name"] for c in oscillator.manifest["couplings"] if c.get("blocks")]
    assert {"linear", "scaling", "sigmoidal"} <= set(functions)
    threads = thread_counts(oscillator, 1, 3)
    for coupling in functions:
        options = dict(coupling=coupling, coupling_precision=precision, seed=4,
                       integrator="heun_stochastic", noise={"V": 1e-3},
                       coupling_parameters={"a": 0.7} if coupling == "linear" else None)
        per_step = mfgen.Simulation(oscillator, network, coupling_order="rows", threads=1,
                                    **options)
        assert per_step.horizon < 200
        reference = per_step.run(20.0)
        blocked = [mfgen.Simulation(oscillator, network, threads=t, **options)
                   for t in threads]
        assert all(simulation.coupling_order == "blocks" for simulation in blocked)
        results = [simulation.run(20.0, chunk_steps=13) for simulation in blocked]
        results += run_batch([mfgen.Simulation(oscillator, network, **options)], 20.0)
        first = mfgen.Simulation(oscillator, network, coupling_order="rows", **options)
        first.run(2.3)   # 23 steps: the checkpoint falls inside a block
        second = mfgen.Simulation(oscillator, network, **options)
        second.restore(first.checkpoint())   # the order of the sums is not configuration
        tail = second.run(17.7)
        np.testing.assert_array_equal(tail.final_state, reference.final_state,
                                      err_msg=coupling)
        for result in results:
            np.testing.assert_array_equal(result["raw"].data, reference["raw"].data,
                                          err_msg=coupling)


@pytest.mark.parametrize("order", ["rows", "ring", "blocks"])
def test_float64_sums_a_zero_length_self_connection_last(oscillator, order):
    """float64 sums a row's zero-length self-connection after its other connections, in
    every coupling order (so blocks can add it at each step): with weights 1e16, 1 (the
    self-connection, first in column order) and -1e16 on equal states the sum is 1; in
    column order it would be 0 (1e16 + 1 rounds to 1e16)."""
    weights = np.zeros((3, 3))
    weights[0] = [1.0, 1e16, -1e16]
    lengths = np.full((3, 3), 4.0)   # 10 steps at 4 mm/ms and dt 0.1 ms
    lengths[0, 0] = 0.0
    network = Connectivity(weights, lengths, speed=4.0)
    state = np.ones((oscillator.n_states, 3))
    simulation = mfgen.Simulation(oscillator, network, integrator="euler", initial_state=state,
                                  coupling_parameters={"a": 1.0}, coupling_order=order)
    assert simulation.coupling_order == order
    stepped = simulation.run(0.1).final_state
    for gx, node in ((1.0, 0), (0.0, 1)):
        coupling = np.zeros((len(oscillator.cvar), 3))
        coupling[:, 0] = gx
        expected = state + 0.1 * oscillator.dfun(state, coupling)
        np.testing.assert_allclose(stepped[:, node], expected[:, node], rtol=1e-15)


@pytest.mark.parametrize("order", ["rows", "blocks"])
def test_a_batch_of_models_with_different_coupled_variables_shares_nothing_wrong(
        oscillator, order):
    """run_batch shared one set's connection offsets with every set on the same network, but
    offsets are laid out by the number of coupled variables: a one-variable model batched with
    a two-variable one read with the wrong stride (out of bounds under AddressSanitizer)."""
    n, rng = 40, np.random.default_rng(4)
    network = Connectivity(rng.uniform(0.0, 1.0, (n, n)) * (rng.random((n, n)) < 0.3),
                           rng.uniform(4.0, 40.0, (n, n)), speed=4.0)
    models = [mfgen.load("tvb_wilson_cowan"), oscillator]
    assert [len(model.cvar) for model in models] == [2, 1]
    alone = [mfgen.Simulation(model, network, coupling_order=order).run(5.0)
             for model in models]
    batch = run_batch([mfgen.Simulation(model, network, coupling_order=order)
                       for model in models], 5.0)
    for one, together in zip(alone, batch):
        np.testing.assert_array_equal(together["raw"].data, one["raw"].data)


def test_a_history_too_large_is_refused_and_float32_keeps_one_ring(oscillator, monkeypatch):
    """The delay ring is refused beyond MAX_HISTORY_BYTES with the unit to check; float32 mode
    keeps TVB's float32 ring alone (it kept a float64 one too: three times the memory), so it
    runs where float64 would not fit; blocks keep the ring without its mirror."""
    from mfgen.runtime import simulation as engine

    n = 20
    network = Connectivity(np.ones((n, n)), np.full((n, n), 40.0), speed=4.0)  # 100 steps
    float64_bytes = mfgen.Simulation(oscillator, network, coupling_order="rows")._history.nbytes
    blocks = mfgen.Simulation(oscillator, network)   # blocks read the ring unmirrored
    assert blocks.coupling_order == "blocks" and blocks._history.nbytes == float64_bytes // 2
    monkeypatch.setattr(engine, "MAX_HISTORY_BYTES", float64_bytes - 1)
    with pytest.raises(ValueError, match=r"longest delay is 100 steps .* check the tract"):
        mfgen.Simulation(oscillator, network)
    ring = mfgen.Simulation(oscillator, network, coupling_precision="float32",
                            coupling_order="rows")._history
    assert ring.dtype == np.float32 and ring.nbytes == float64_bytes // 2


def test_coupling_blocks_run_where_they_can_and_say_why_not(oscillator, monkeypatch):
    from mfgen.runtime import simulation as engine

    n, rng = 30, np.random.default_rng(2)
    weights = rng.uniform(0.0, 1.0, (n, n)) * (rng.random((n, n)) < 0.3)
    lengths = rng.uniform(4.0, 40.0, (n, n))
    far = Connectivity(weights, lengths, speed=4.0)
    simulation = mfgen.Simulation(oscillator, far)
    assert simulation.coupling_order == "blocks"
    # float64, mirrored; blocks keep it unmirrored (half) and a node-major copy as large
    ring_bytes = mfgen.Simulation(oscillator, far, coupling_order="rows")._history.nbytes
    with monkeypatch.context() as patch:   # room for the ring, not for blocks' 1.5 times it
        patch.setattr(engine, "MAX_HISTORY_BYTES", ring_bytes + ring_bytes // 4)
        assert mfgen.Simulation(oscillator, far).coupling_order == "rows"
        with pytest.raises(ValueError, match="with its node-major copy would need"):
            mfgen.Simulation(oscillator, far, coupling_order="blocks")
    with pytest.raises(ValueError, match="'kuramoto' does not sum the delayed states alone"):
        mfgen.Simulation(oscillator, far, coupling="kuramoto", coupling_order="blocks")
    assert mfgen.Simulation(oscillator, far, coupling="kuramoto").coupling_order == "rows"
    near = Connectivity(weights, np.where(weights > 0, 2.4, 0.0) + lengths * (lengths > 10),
                        speed=4.0)   # some tracts of 2.4 mm: 6 steps
    with pytest.raises(ValueError, match="the shortest delay is 6 steps, under 7"):
        mfgen.Simulation(oscillator, near, coupling_order="blocks")
    assert mfgen.Simulation(oscillator, near).coupling_order == "rows"
    loops = Connectivity(np.eye(n), np.zeros((n, n)), speed=4.0)   # self-connections only
    with pytest.raises(ValueError, match="every delay is under 7 steps"):
        mfgen.Simulation(oscillator, loops, coupling_order="blocks",
                         coupling_precision="float32")
    assert mfgen.Simulation(oscillator, loops, coupling_precision="float32").coupling_order \
        == "rows"


def test_coupling_order_is_checked_and_chosen_by_size(oscillator, monkeypatch):
    from mfgen.runtime import simulation as engine

    with pytest.raises(ValueError, match="coupling_order must be one of 'auto', 'rows', "
                       "'ring', 'blocks'"):
        mfgen.Simulation(oscillator, Connectivity.synthetic(8, seed=1), coupling_order="csr")
    network = Connectivity.synthetic(40, seed=1)  # kuramoto below: no coupling blocks
    monkeypatch.setattr(engine, "RING_ORDER_MIN_NODES", 40)
    monkeypatch.setattr(engine, "numpy_huge_pages", lambda: False)
    assert mfgen.Simulation(oscillator, network, coupling="kuramoto").coupling_order == "ring"
    monkeypatch.setattr(engine, "numpy_huge_pages", lambda: True)
    assert mfgen.Simulation(oscillator, network, coupling="kuramoto").coupling_order == "rows"
    monkeypatch.setattr(engine, "RING_ORDER_MIN_NODES", 41)
    monkeypatch.setattr(engine, "numpy_huge_pages", lambda: False)
    assert mfgen.Simulation(oscillator, network, coupling="kuramoto").coupling_order == "rows"


def test_a_blow_up_is_found_at_the_same_place_by_any_thread_count(tmp_path):
    spec = tmp_path / "threaded_blowup.yaml"
    spec.write_text("""
name: threaded_blowup
parameters:
  r: {default: 1.0}
state_variables:
  u: {range: [0.0, 1.0]}
  v: {range: [0.0, 1.0]}
derivatives:
  u: r * u * u
  v: -v + sqrt(1 - u)
""")
    model = mfgen.load(spec)
    if model.simulator_module.lib.mf_max_threads() < 2:
        pytest.skip("the simulator was built without OpenMP (MFGEN_TARGET=c)")
    initial = np.zeros((2, 9))
    initial[0] = np.linspace(0.1, 0.5, 9)
    messages = []
    for threads in (1, 2, 4):
        with pytest.raises(mfgen.SimulationError) as caught:
            mfgen.simulate(model, None, initial_state=initial, integrator="euler", dt=0.01,
                           duration=50.0, threads=threads)
        messages.append((str(caught.value), caught.value.result.steps))
    # v = -v + sqrt(1 - u) turns NaN first at the node with the largest u (node 8)
    assert "'v' at node 8" in messages[0][0]
    assert messages[1:] == messages[:1] * 2


def test_threads_is_checked(oscillator):
    with pytest.raises(ValueError, match=r"threads must be an integer in \[1, 256\]"):
        mfgen.Simulation(oscillator, None, n_nodes=4, threads=0)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize(("spec", "coupling"), [
    ("generic_2d_oscillator", "hyperbolic_tangent"),   # pre(x_j) per coupled variable
    ("tvb_jansen_rit", "sigmoidal_jansen_rit"),        # pre(x_j[0], x_j[1]) combined
])
def test_a_pre_history_continues_across_threads_and_checkpoints(spec, coupling, precision):
    """A coupling whose pre reads the sources alone keeps pre(x_j) per node in a history of its
    own (computed as the state history is stored, rebuilt from it on restore): any thread
    count, and a run restored from a checkpoint, give the bits of one uninterrupted run; and
    it is the coupling TVB's formula gives (tests/test_tvb_couplings.py checks that)."""
    model = mfgen.load(spec)
    assert next(c for c in model.manifest["couplings"] if c["name"] == coupling)["cached_pre"]
    network = Connectivity.synthetic(61, seed=3)
    rng = np.random.default_rng(8)
    low, high = np.array([model.states[s].check_range for s in model.state_variables]).T
    state = low[:, None] + (high - low)[:, None] * rng.uniform(0.4, 0.6, (model.n_states, 61))
    options = dict(coupling=coupling, coupling_precision=precision, initial_state=state,
                   integrator="heun_stochastic", noise={model.state_variables[0]: 1e-4}, seed=2,
                   monitors=[mfgen.Raw()])
    whole = mfgen.Simulation(model, network, threads=1, **options)
    assert whole._pre_history.any()  # filled from the initial history
    reference = whole.run(12.0)
    threads = thread_counts(model, 2, 3)
    for count in threads:
        result = mfgen.Simulation(model, network, threads=count, **options).run(12.0)
        np.testing.assert_array_equal(result["raw"].data, reference["raw"].data)
    first = mfgen.Simulation(model, network, threads=1, **options)
    first.run(5.3)
    second = mfgen.Simulation(model, network, threads=1, **options)
    second.restore(first.checkpoint())
    tail = second.run(6.7)
    np.testing.assert_array_equal(tail.final_state, reference.final_state)
    count = tail["raw"].data.shape[0]
    np.testing.assert_array_equal(tail["raw"].data, reference["raw"].data[-count:])
