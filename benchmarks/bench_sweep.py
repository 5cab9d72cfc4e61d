#!/usr/bin/env python
"""Sweep throughput (not a test): the issue's 20 x 20 sweep of seed 2 (TVB-AdEx first order)
on TVB's 76-region connectome, 1 s simulated per point, Heun stochastic, dt 0.1 ms.

Swept: b_e (0..120 pA) x external_input_ex_ex (0.1e-3..0.8e-3 kHz). Measures: mean and std of
E after 200 ms, dominant frequency of E. Reported, in points per second, each through
`mfgen.sweep` writing its HDF5 store:
  (a) TVB's Simulator per point (TVB 2.10 has no seed-2 class: its ZerlautAdaptationFirstOrder,
      the same five states, stands in; one point per round is timed and extrapolated)
  (b) one mfgen run per point on one thread (backend="single", workers=1), and on a pool of
      one thread per core (backend="single", workers=cores)
  (c) the batched kernel on one thread and on every core (backend="batched", the default)
  (d) a local Dask cluster, 2 worker processes x 1 thread, each chunk in the batched kernel
The machine is shared: the backends run interleaved (the order rotates each round) and the
table gives medians over rounds, with the load average around them.

Overhead of a row: (wall time x cores used - K) / K, where K is the kernel's own time for
all the points on one core (the batched kernel's C calls in the 1-thread row of the same round):
everything else (building each point's context, measures, writing, scheduling, idle cores at
the end of a chunk, the load of other processes) counts as overhead.

    .venv/bin/python benchmarks/bench_sweep.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import mfgen

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "benchmarks" / "sweep_results.md"
SPEC = "tvb_adex_first_order"
BASE = {"integrator": "heun_stochastic", "dt": 0.1, "noise": {"noise": 1.0},
        "coupling": "linear", "coupling_parameters": {"a": 0.15}, "seed": 1,
        "parameters": {"weight_noise": 1e-4, "external_input_in_ex": 0.315e-3, "E_L_e": -63.0}}
MEASURES = {"transient": 200.0, "period": 1.0, "mean": ["E"], "std": ["E"],
            "frequency": ["E"]}
DURATION = 1000.0


def grid(n: int) -> dict:
    return {"b_e": {"start": 0.0, "stop": 120.0, "num": n},
            "external_input_ex_ex": {"start": 0.1e-3, "stop": 0.8e-3, "num": n}}


def connectome() -> mfgen.Connectivity:
    try:
        return mfgen.Connectivity.tvb_default()
    except Exception as exc:  # noqa: BLE001 - tvb-data is optional for the benchmark
        warnings.warn(f"tvb-data unavailable ({exc}); using a synthetic 76-region network",
                      stacklevel=2)
        return mfgen.Connectivity.synthetic(76)


def tvb_seconds_per_point(network: mfgen.Connectivity, points: int) -> float | None:
    try:
        from tvb.datatypes.connectivity import Connectivity
        from tvb.simulator import coupling, integrators, models, monitors, noise, simulator
    except ImportError:
        return None
    times = []
    for k in range(points):
        model = models.ZerlautAdaptationFirstOrder(
            b_e=np.array([60.0 + k]), external_input_ex_ex=np.array([0.315e-3]),
            external_input_in_ex=np.array([0.315e-3]), weight_noise=np.array([1e-4]))
        nsig = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
        connectivity = Connectivity(
            weights=network.weights.copy(), tract_lengths=network.tract_lengths.copy(),
            centres=np.asarray(network.centres if network.centres is not None
                               else np.zeros((network.n_regions, 3)), dtype=float),
            region_labels=np.array(network.region_labels), speed=np.array([network.speed]))
        start = time.perf_counter()
        sim = simulator.Simulator(
            model=model, connectivity=connectivity, coupling=coupling.Linear(a=np.array([0.15])),
            integrator=integrators.HeunStochastic(dt=0.1, noise=noise.Additive(nsig=nsig)),
            monitors=(monitors.TemporalAverage(period=1.0),), simulation_length=DURATION)
        sim.configure()
        sim.run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(label: str, network: mfgen.Connectivity, n: int, cores_used: int, **options) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        ds = mfgen.sweep(SPEC, network, base=BASE, duration=DURATION, sweep=grid(n),
                         measures=MEASURES, store=Path(folder) / "sweep.h5", progress=False,
                         **options)
        wall = time.perf_counter() - start
    points = n * n
    print(f"{label}: {points} points in {wall:.1f} s = {points / wall:.2f} points/s "
          f"({ds.attrs['n_failed']} failed)", flush=True)
    return {"label": label, "wall": wall, "cores": cores_used,
            "kernel": float(np.nansum(ds.wall_time.values)), "dataset": ds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 6 x 6 grid instead of 20 x 20")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--no-tvb", action="store_true", help="skip the TVB row")
    args = parser.parse_args()
    n = 6 if args.quick else 20
    points = n * n
    cores = os.cpu_count() or 1
    network = connectome()
    mfgen.load(SPEC)
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.WARNING)
    backends = [
        ("mfgen, one run per point, 1 thread", 1, {"backend": "single", "workers": 1}),
        (f"mfgen, one run per point, pool of {cores} threads", cores,
         {"backend": "single", "workers": cores}),
        ("batched kernel, 1 thread", 1, {"workers": 1}),
        (f"batched kernel, {cores} threads", cores, {"workers": cores}),
        ("batched kernel on a local Dask cluster, 2 workers x 1 thread", 2,
         {"scheduler": cluster.scheduler_address}),
    ]
    run(backends[3][0] + " (warm-up)", network, 2, cores, **backends[3][2])  # Dask and caches
    run("warm-up", network, 2, 2, scheduler=cluster.scheduler_address)
    walls: dict[str, list[float]] = {label: [] for label, _, _ in backends}
    overheads: dict[str, list[float]] = {label: [] for label, _, _ in backends}
    tvb_times: list[float] = []
    loads = [os.getloadavg()[0]]
    datasets = {}
    for round_ in range(args.rounds):
        order = backends[round_ % len(backends):] + backends[:round_ % len(backends)]
        rows = {label: run(label, network, n, used, **options)
                for label, used, options in order}
        kernel = rows["batched kernel, 1 thread"]["kernel"]
        for label, row in rows.items():
            walls[label].append(row["wall"])
            overheads[label].append((row["wall"] * row["cores"] - kernel) / kernel)
            datasets[label] = row["dataset"]
        if not args.no_tvb:
            tvb = tvb_seconds_per_point(network, 1)
            if tvb is not None:
                tvb_times.append(tvb)
                print(f"TVB: {tvb:.2f} s per point", flush=True)
        loads.append(os.getloadavg()[0])
    cluster.close()
    reference = datasets[backends[0][0]]
    same = all(np.array_equal(reference[m].values, ds[m].values, equal_nan=True)
               for ds in datasets.values() for m in ("mean_E", "std_E", "peak_frequency_E"))
    wall = {label: float(np.median(w)) for label, w in walls.items()}
    one = points / wall[backends[0][0]]
    tvb = float(np.median(tvb_times)) if tvb_times else None
    lines = [
        "# Sweep benchmark", "",
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, "
        f"Python {sys.version.split()[0]}. Command: `.venv/bin/python benchmarks/bench_sweep.py"
        f"{' --quick' if args.quick else ''} --rounds {args.rounds}`. Load average (1 min) "
        f"before and after each round: {', '.join(f'{x:.1f}' for x in loads)} (other "
        "processes share the cores: the multi-core rows understate the speed-up). Medians of "
        f"{args.rounds} interleaved rounds.", "",
        f"{n} x {n} sweep of `{SPEC}` (b_e x external_input_ex_ex) on "
        f"{Path(network.source).name or 'the connectome'} ({network.n_regions} regions), "
        f"{DURATION:g} ms per point, Heun stochastic, dt 0.1 ms, measures mean/std/peak "
        "frequency of E, written to an HDF5 store.", "",
        "| backend | points/s | whole sweep | vs TVB | vs one run per point | overhead |",
        "|---|---|---|---|---|---|",
    ]
    if tvb is not None:
        lines.append(f"| TVB 2.10 Simulator per point (ZerlautAdaptationFirstOrder; "
                     f"{len(tvb_times)} points timed, extrapolated) | {1 / tvb:.3f} | "
                     f"{points * tvb:.0f} s | 1 | {(1 / tvb) / one:.3f} | |")
    for label, _, _ in backends:
        rate = points / wall[label]
        versus_tvb = f"{rate * tvb:.0f}x" if tvb is not None else ""
        lines.append(f"| {label} | {rate:.2f} | {wall[label]:.1f} s | {versus_tvb} | "
                     f"{rate / one:.2f} | {100 * float(np.median(overheads[label])):.1f} % |")
    two = wall["batched kernel, 1 thread"] / wall[f"batched kernel, {cores} threads"]
    lines += ["", f"Batched kernel, {cores} threads vs 1: {two:.2f}x. Overhead: (wall time x "
              "cores used - K) / K, K = the batched kernel's own time for all the points on "
              "one core (its C calls, in the 1-thread row of the same round); it includes "
              "building each point's context, the measures, writing the store, scheduling, "
              "idle cores at the end of a chunk and the time other processes took from the "
              "cores. Every backend gives the same numbers bit for bit: "
              f"{'yes' if same else 'NO'}.", ""]
    text = "\n".join(lines)
    print(text)
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
