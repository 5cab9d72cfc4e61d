#!/usr/bin/env python
"""TVB's Simulator vs mfgen.tvb.simulate on the same configured simulator (not a test).

For every TVB class with a bundled spec: TVB's default 76-region connectome (tvb-data) at
TVB's speed (3 mm/ms), Linear coupling, HeunDeterministic dt = 0.1 ms, a TemporalAverage(1 ms)
monitor, 1 s simulated, the same initial history (the middle fifth of each state range). Three
models blow up at dt = 0.1 ms from that history, in TVB and mfgen alike, and run at a smaller
dt (DT_MS below; the table says which). Reported: CPU seconds of `simulator.run()` (one run)
and of `mfgen.tvb.simulate` (median of three), both after a warm-up (mfgen's build is cached),
their ratio, and the largest relative difference of the averaged traces. CPU time, so that
other jobs on a shared machine do not count; both run on one thread here. Where the traces
differ by more than 1e-6, TVB runs again from its history multiplied by (1 + 1e-15), and the
table gives how far TVB's own traces move ("TVB against itself"): such a model amplifies any
rounding difference.

    .venv/bin/python benchmarks/bench_tvb_zoo.py [--length 1000] [--models JansenRit,Linear]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np

# Models whose Heun steps at TVB's dt = 0.1 ms overflow within a few ms from the benchmark's
# history (TVB returns NaN, mfgen raises SimulationError): the largest dt tried that runs 1 s.
DT_MS = {"CoombesByrne": 0.05, "GastSchmidtKnosche_SF": 0.05, "ReducedSetHindmarshRose": 0.05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=float, default=1000.0, help="simulated ms")
    parser.add_argument("--models", default="", help="comma-separated TVB class names")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from tvb.datatypes.connectivity import Connectivity
    from tvb.simulator import coupling, integrators, models, monitors, simulator

    from mfgen import tvb as mftvb

    connectivity = Connectivity.from_file()
    connectivity.configure()
    connectivity.set_idelays(0.1)
    names = args.models.split(",") if args.models else sorted(mftvb.BUNDLED_TVB_SPECS)
    print("| TVB model | TVB s | mfgen s | speed-up | max rel. diff |")
    print("|---|---|---|---|---|")
    for name in names:
        cls = getattr(models, name)
        probe = cls()
        rng = np.random.default_rng(0)
        columns = []
        for variable in probe.state_variables:
            low, high = probe.state_variable_range[variable]
            middle, half = (low + high) / 2, 0.1 * (high - low)
            columns.append(rng.uniform(middle - half, middle + half,
                                       (connectivity.horizon, connectivity.number_of_regions)))
        # (horizon, n_state, n_nodes, n_modes): the ReducedSet models have three modes
        history = np.repeat(np.stack(columns, axis=1)[..., None], probe.number_of_modes, -1)

        dt = DT_MS.get(name, 0.1)

        def configured(length: float, cls=cls, history=history, dt=dt) -> simulator.Simulator:
            model = cls()
            model.variables_of_interest = tuple(model.state_variables)[:1]
            sim = simulator.Simulator(
                model=model, connectivity=connectivity, coupling=coupling.Linear(
                    a=np.array([0.001])),
                integrator=integrators.HeunDeterministic(dt=dt),
                monitors=(monitors.TemporalAverage(period=1.0),),
                initial_conditions=history.copy(), simulation_length=length)
            sim.configure()
            return sim

        try:
            configured(10.0).run()
            mftvb.simulate(configured(10.0))  # builds or loads the module
            sim = configured(args.length)
            start = time.process_time()
            ((_, expected),) = sim.run()
            tvb_seconds = time.process_time() - start
            runs = []
            for _ in range(3):
                sim = configured(args.length)
                start = time.process_time()
                ((_, computed),) = mftvb.simulate(sim)
                runs.append(time.process_time() - start)
            mfgen_seconds = float(np.median(runs))
        except Exception as exc:  # noqa: BLE001 - report and go on to the next model
            print(f"| {name} | - | - | - | {type(exc).__name__}: {str(exc)[:60]} |")
            continue
        difference = _largest_difference(computed, expected)
        itself = ""
        if difference > 1e-6:
            ((_, perturbed),) = configured(args.length, history=history * (1 + 1e-15)).run()
            itself = f" (TVB against itself: {_largest_difference(perturbed, expected):.1e})"
        label = name if dt == 0.1 else f"{name} (dt {dt} ms)"
        print(f"| {label} | {tvb_seconds:.2f} | {mfgen_seconds:.3f} | "
              f"{tvb_seconds / mfgen_seconds:.0f}x | {difference:.1e}{itself} |", flush=True)


def _largest_difference(traces: np.ndarray, expected: np.ndarray) -> float:
    """Relative to TVB's traces, with a floor of 1e-6 of their largest value."""
    from mfgen.runtime.checking import relative_error

    return float(np.nanmax(relative_error(traces, expected, 1e-6, axis=None)))


if __name__ == "__main__":
    main()
