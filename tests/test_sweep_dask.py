"""Sweeps on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1 (ports chosen by the OS), started here and always torn down.

Checks: a sweep on the cluster equals the embedded run bit for bit; killing a worker while it
runs a chunk loses nothing; interrupting the client and resuming computes no saved point again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import mfgen
from mfgen.runtime.sweep_store import read_store

MODEL = "generic_2d_oscillator"
BASE = {"integrator": "heun_stochastic", "noise": {"V": 1e-3, "W": 1e-4}, "seed": 5,
        "coupling_parameters": {"a": 0.05}}
MEASURES = {"transient": 20.0, "mean": ["V"], "std": ["V"], "frequency": ["V"],
            "expressions": {"range_V": "max(V) - min(V)"}}
NAMES = ("mean_V", "std_V", "peak_frequency_V", "peak_power_V", "range_V")
START_TIMEOUT = 60.0  # s; two cores shared with other jobs


def dask_client(address: str, timeout: float):
    """A distributed.Client (imported here: ~0.4 s that every test process would otherwise
    pay while collecting, not only the one that runs this module)."""
    import distributed

    return distributed.Client(address, timeout=timeout)


@dataclass
class LoopbackCluster:
    folder: Path
    scheduler_file: Path
    address: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, *command: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([str(Path(sys.executable).parent / "dask"), *command],
                                   stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        self.processes[name] = process
        return process

    def add_worker(self, name: str) -> subprocess.Popen:
        return self.start(name, "worker", "--scheduler-file", str(self.scheduler_file),
                          "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                          "--no-dashboard", "--memory-limit", "0", "--name", name,
                          "--local-directory", str(self.folder / name))

    def wait_for_workers(self, count: int) -> None:
        with dask_client(self.address, START_TIMEOUT) as client:
            client.wait_for_workers(count, timeout=START_TIMEOUT)

    def worker_address(self, name: str, client) -> str:
        workers = client.scheduler_info()["workers"]
        return next(address for address, info in workers.items() if info["name"] == name)

    def stop(self) -> None:
        if self.address:
            try:  # the scheduler closes its workers: quicker than a SIGTERM each
                with dask_client(self.address, 10) as client:
                    client.shutdown()
            except (OSError, TimeoutError):
                pass
        # A clean shutdown ends every process in ~0.8 s, but after a worker was killed the
        # others can take ~15 s to close gracefully; these are throw-away processes of this
        # test (their scratch space in its folder), so a short grace and then SIGKILL.
        deadline = time.monotonic() + 1.0
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    mfgen.load(MODEL)  # compiled once into the session cache, which the workers share
    cluster = LoopbackCluster(folder, folder / "scheduler.json")
    try:
        cluster.start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
                      "--no-dashboard", "--scheduler-file", str(cluster.scheduler_file))
        deadline = time.monotonic() + START_TIMEOUT
        while not cluster.scheduler_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            assert cluster.processes["scheduler"].poll() is None, \
                (folder / "scheduler.log").read_text()
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written in one go, but give it a moment
        cluster.address = json.loads(cluster.scheduler_file.read_text())["address"]
        assert cluster.address.startswith("tcp://127.0.0.1:")
        cluster.add_worker("w0")
        cluster.add_worker("w1")
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def network():
    return mfgen.Connectivity.synthetic(6, seed=4)


def _embedded(network, sweep, duration):
    return mfgen.sweep(MODEL, network, base=BASE, duration=duration, sweep=sweep,
                       measures=MEASURES, workers=1, progress=False)


def _assert_same(ds, reference):
    assert (ds.status.values == "done").all()
    for name in NAMES:  # same runs, same arithmetic on another process: bit for bit
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)


def test_cluster_sweep_equals_the_embedded_run(cluster, network, tmp_path):
    sweep = {"a": [-1.0, 0.0, 0.5], "noise.V": [0.0, 1e-3], "seed": [1, 2]}
    reference = _embedded(network, sweep, 40.0)
    ds = mfgen.sweep(mfgen.load(MODEL), network, base=BASE, duration=40.0, sweep=sweep,
                     measures=MEASURES, scheduler=cluster.address, store=tmp_path / "s.h5",
                     progress=False)
    _assert_same(ds, reference)
    assert ds.mean_V.dims == ("a", "noise.V", "seed")
    with dask_client(cluster.address, START_TIMEOUT) as client:  # a Client too
        again = mfgen.sweep(MODEL, network, base=BASE, duration=40.0, sweep=sweep,
                            measures=MEASURES, scheduler=client, progress=False)
        assert client.status == "running"  # the caller's client is left open
    _assert_same(again, reference)


def test_a_dying_worker_loses_nothing(cluster, network):
    sweep = {"a": list(np.linspace(-1.5, 1.0, 16))}
    reference = _embedded(network, sweep, 200.0)
    victim = cluster.processes["w0"]
    with dask_client(cluster.address, START_TIMEOUT) as watcher:
        victim_address = cluster.worker_address("w0", watcher)
        killed_with: list[tuple] = []

        def kill_w0_mid_chunk(saved, total):
            if killed_with:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # wait until it is running a chunk
                running = watcher.processing().get(victim_address, ())
                if running:
                    victim.send_signal(signal.SIGKILL)
                    killed_with.append(tuple(running))
                    return
                time.sleep(0.005)

        try:
            ds = mfgen.sweep(MODEL, network, base=BASE, duration=200.0, sweep=sweep,
                             measures=MEASURES, scheduler=cluster.address, chunk_points=1,
                             write_interval=0.0, progress=kill_w0_mid_chunk)
            assert killed_with, "w0 never ran a chunk while the sweep was going"
            assert victim.wait(timeout=10) == -signal.SIGKILL
            _assert_same(ds, reference)  # its chunk was recomputed on w1, nothing lost
            assert victim_address not in watcher.scheduler_info()["workers"]
        finally:
            if victim.poll() is None:
                victim.kill()
            cluster.add_worker("w2")  # back to two workers for the next test
            cluster.wait_for_workers(2)


def test_interrupted_client_resumes_without_recomputing(cluster, network, tmp_path):
    sweep = {"a": [-1.0, -0.5, 0.0, 0.5], "coupling.a": [0.0, 0.02, 0.04]}
    reference = _embedded(network, sweep, 40.0)
    store = tmp_path / "resume.h5"
    options = dict(base=BASE, duration=40.0, sweep=sweep, measures=MEASURES, store=store,
                   scheduler=cluster.address, chunk_points=1, write_interval=0.0)

    def interrupt_after_four(saved, total):
        if saved >= 4 and not fired:
            fired.append(saved)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C in the client

    fired: list[int] = []

    with pytest.raises(KeyboardInterrupt):
        mfgen.sweep(MODEL, network, progress=interrupt_after_four, **options)
    saved = np.flatnonzero(read_store(store)["status"] != 0)
    assert 4 <= len(saved) < 12
    resumed = mfgen.sweep(MODEL, network, progress=False, **options)
    assert resumed.attrs["points_computed"] == 12 - len(saved)  # no saved point recomputed
    final = read_store(store)
    assert (final["session"][saved] == 1).all() and (np.delete(final["session"], saved) == 2
                                                     ).all()
    _assert_same(resumed, reference)
