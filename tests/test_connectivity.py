"""Structural connectivity: TVB's zip layout, its default connectome, delays, sparse input."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import scipy.sparse

import mfgen
from mfgen.errors import MfgenError


def write_zip(path, weights, lengths, labels=None):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.txt", "\n".join(" ".join(map(str, r)) for r in weights))
        archive.writestr("tract_lengths.txt", "\n".join(" ".join(map(str, r)) for r in lengths))
        if labels:
            archive.writestr("centres.txt", "\n".join(f"{name} {i} {2 * i} {3 * i}"
                                                      for i, name in enumerate(labels)))


def test_reads_tvbs_zip_layout(tmp_path):
    weights = [[0, 1.5, 0], [2.0, 0, 0], [0, 0.5, 0]]
    lengths = [[0, 10.0, 0], [10.0, 0, 40.0], [0, 21.0, 0]]
    write_zip(tmp_path / "c.zip", weights, lengths, ["a", "b", "c"])
    connectivity = mfgen.Connectivity.from_zip(tmp_path / "c.zip", speed=2.0)
    assert connectivity.region_labels == ["a", "b", "c"]
    np.testing.assert_array_equal(connectivity.centres[2], [2, 4, 6])
    row_ptr, cols, values, delays = connectivity.sparse(dt=0.5)
    np.testing.assert_array_equal(row_ptr, [0, 1, 2, 3])  # rows are targets
    np.testing.assert_array_equal(cols, [1, 0, 1])
    np.testing.assert_array_equal(values, [1.5, 2.0, 0.5])
    np.testing.assert_array_equal(delays, [10, 10, 21])  # rint(length / speed / dt), TVB's rule


def test_missing_file_in_the_archive_is_named(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("weights.txt", "0 1\n1 0\n")
    with pytest.raises(MfgenError, match="no tract_lengths.txt"):
        mfgen.Connectivity.from_zip(tmp_path / "bad.zip")


def test_tvb_default_connectome_from_tvb_data():
    connectivity = mfgen.Connectivity.tvb_default()
    assert connectivity.n_regions == 76
    assert np.count_nonzero(connectivity.weights) == 1560  # 27 % of 76 x 76
    # TVB's default speed (3 mm/ms), so TVB's history horizon: 513 steps at dt = 0.1 ms
    # (TVB 2.10's Simulator on this connectome; tests/test_tvb_bridge.py checks it there).
    assert connectivity.speed == 3.0
    assert connectivity.delays(0.1).max() + 1 == 513
    assert mfgen.Connectivity.synthetic(10).speed == 3.0


def test_sparse_and_dense_weights_simulate_identically():
    dense = mfgen.Connectivity.synthetic(30, seed=3)
    sparse = mfgen.Connectivity(scipy.sparse.csr_matrix(dense.weights),
                                scipy.sparse.csr_matrix(dense.tract_lengths))
    model = mfgen.load("generic_2d_oscillator")
    options = dict(duration=20.0, seed=2, coupling_parameters={"a": 0.05})
    np.testing.assert_array_equal(mfgen.simulate(model, dense, **options)["raw"].data,
                                  mfgen.simulate(model, sparse, **options)["raw"].data)


@pytest.mark.parametrize(("arguments", "message"), [
    (dict(weights=np.full((3, 3), np.nan)), "weights and tract_lengths must be finite"),
    (dict(tract_lengths=-np.ones((3, 3))), "tract_lengths must be non-negative"),
    (dict(weights=np.ones((3, 2)), tract_lengths=np.ones((3, 2))), "must both be square"),
    (dict(speed=0.0), "speed must be positive"),
])
def test_bad_connectivity_is_refused(arguments, message):
    values = {"weights": np.ones((3, 3)), "tract_lengths": np.ones((3, 3)), **arguments}
    with pytest.raises(ValueError, match=message):
        mfgen.Connectivity(**values)


def test_digests_name_the_values_not_the_object():
    """Provenance: two equal networks get the same digests, a changed weight another; a
    sparse matrix's digest is of its values (it was of a Python object's address)."""
    weights = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 2.0], [0.0, 0.0, 0.0]])
    lengths = np.full((3, 3), 10.0)

    def make(w, sparse):
        return mfgen.Connectivity(scipy.sparse.csr_matrix(w) if sparse else w.copy(),
                                  lengths.copy())

    for sparse in (False, True):
        first, second = make(weights, sparse).digests(), make(weights, sparse).digests()
        assert first == second
        changed = weights.copy()
        changed[1, 2] = 2.5
        assert make(changed, sparse).digests()["weights_sha256"] != first["weights_sha256"]
        assert make(changed, sparse).digests()["tract_lengths_sha256"] == \
            first["tract_lengths_sha256"]
    # a run records the network it copied, not what the array holds later
    network = make(weights, False)
    simulation = mfgen.Simulation(mfgen.load("generic_2d_oscillator"), network)
    recorded = simulation.config()["connectivity"]["weights_sha256"]
    network.weights[0, 1] = 3.0
    assert simulation.config()["connectivity"]["weights_sha256"] == recorded


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_what_is_derived_from_a_network_follows_its_edits(sparse):
    """A network keeps its CSR and digests between Simulations, checked against a copy of its
    values: an edit in place, a new array or a new speed gives new ones; the kept arrays are
    read-only, so no caller can change them for the next."""
    weights = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 2.0], [0.0, 3.0, 0.0]])
    network = mfgen.Connectivity(scipy.sparse.csr_matrix(weights) if sparse else weights.copy(),
                                 np.full((3, 3), 10.0))
    row_ptr, cols, values, delays = network.sparse(0.1)
    digests = network.digests()
    assert network.sparse(0.1)[2] is values and network.digests() == digests
    with pytest.raises(ValueError, match="read-only"):
        values[0] = 7.0
    if sparse:
        network.weights.data[0] = 4.0   # in place
    else:
        network.weights[0, 1] = 4.0
    assert network.sparse(0.1)[2][0] == 4.0
    assert network.digests()["weights_sha256"] != digests["weights_sha256"]
    network.speed = 2.0
    assert network.sparse(0.1)[3][0] == 50   # 10 mm at 2 mm/ms and dt 0.1 ms
    assert network.sparse(0.2)[3][0] == 25
    # what is kept is not pickled (a Dask sweep sends the network to its workers)
    copy = pickle.loads(pickle.dumps(network))
    assert "_derived_values" in vars(network) and "_derived_values" not in vars(copy)
    assert copy.digests() == network.digests()


def test_simulations_on_one_network_share_its_layout_until_it_changes():
    """Simulations built alike on one network read the same read-only connection arrays (kept
    by the network); an edit in place gives the next Simulation new ones, and its run follows
    the edit as a network built with the edit from scratch does. A loop over many dt values
    keeps at most DERIVED_CACHE_MAX_KEYS layouts."""
    from mfgen.runtime.connectivity import DERIVED_CACHE_MAX_KEYS

    model = mfgen.load("tvb_generic_2d_oscillator")
    weights = np.array([[0.0, 1.0, 0.5], [0.5, 0.0, 2.0], [1.5, 3.0, 0.0]])
    lengths = np.full((3, 3), 10.0)
    network = mfgen.Connectivity(weights.copy(), lengths)
    options = dict(coupling_parameters={"a": 0.1}, seed=3, monitors=[mfgen.Raw()])
    first, second = (mfgen.Simulation(model, network, **options) for _ in range(2))
    for name in ("row_ptr", "offset", "weight", "weight32"):
        assert getattr(first._sim, name) == getattr(second._sim, name), name
    network.weights[2, 1] = 0.25                     # in place
    edited = mfgen.Simulation(model, network, **options)
    assert edited._sim.weight != first._sim.weight
    weights[2, 1] = 0.25
    fresh = mfgen.Simulation(model, mfgen.Connectivity(weights, lengths), **options)
    np.testing.assert_array_equal(edited.run(20.0)["raw"].data, fresh.run(20.0)["raw"].data)
    assert not np.array_equal(first.run(20.0)["raw"].data, fresh.result()["raw"].data)
    for step in range(DERIVED_CACHE_MAX_KEYS + 8):
        mfgen.Simulation(model, network, dt=0.01 * (step + 1), **options)
    assert len(vars(network)["_derived_values"][1]) <= DERIVED_CACHE_MAX_KEYS


def test_a_batch_runs_each_simulation_on_the_network_it_was_built_with():
    """run_batch shares connection arrays between sets on the same connections only: a
    network edited in place between two Simulations gives the second its edited weights, as
    a network built with the edit does (sharing by the same Connectivity object ran it with
    the first's)."""
    from mfgen.runtime.simulation import run_batch

    model = mfgen.load("tvb_generic_2d_oscillator")
    weights = np.array([[0.0, 1.0, 0.5], [0.5, 0.0, 2.0], [1.5, 3.0, 0.0]])
    lengths = np.full((3, 3), 10.0)
    network = mfgen.Connectivity(weights.copy(), lengths)
    options = dict(coupling_parameters={"a": 0.1}, seed=3, monitors=[mfgen.Raw()])
    before = mfgen.Simulation(model, network, **options)
    network.weights[2, 1] = 0.25
    after = mfgen.Simulation(model, network, **options)
    same = mfgen.Simulation(model, network, **options)
    results = run_batch([before, after, same], 20.0)
    weights[2, 1] = 0.25
    edited = mfgen.Simulation(model, mfgen.Connectivity(weights, lengths), **options).run(20.0)
    np.testing.assert_array_equal(results[1]["raw"].data, edited["raw"].data)
    np.testing.assert_array_equal(results[2]["raw"].data, edited["raw"].data)
    assert not np.array_equal(results[0]["raw"].data, edited["raw"].data)
    assert same._sim.weight == after._sim.weight != before._sim.weight
