#!/usr/bin/env python
"""Simulation speed (not a test): mfgen's generated time loop vs TVB's own simulator.

Same configuration on both sides: TVB's default 76-region connectome (tvb-data; the synthetic
one if it is missing) with delays (speed 4 mm/ms as in issue 8, where TVB's default is 3;
dt 0.1 ms), Linear coupling
(SigmoidalJansenRit for JansenRit) summed as TVB sums it (mfgen's coupling_precision="float32"),
Heun deterministic and stochastic, a Raw monitor of every state (issue 8's configuration),
the same initial state (TVB's history filled with it) and the same simulated span (0.2 s
by default): the cost per step depends on the state a model is in (below), so both sides must
simulate the same stretch of time.
Reported: CPU time per simulated second (CPU time of this process, so preemption by other
jobs on a shared machine does not count; mfgen on one thread), us per step, node-steps/s and
the ratio. TVB and mfgen alternate in three rounds (a round: mfgen's best of 5 runs, 9 without
--quick, then one TVB run; the 1 s row: one round, mfgen's best of 3); each side's time is its
best round, and the median of the rounds' ratios is reported next to the ratio of the bests.
Issue 8's expectations are checked on the ratio of the bests (--check exits 1 on a miss).

The initial state is a fraction of each state's TVB range (state_variable_range, where TVB
draws its random initial conditions), so the first-order Zerlaut model starts with W_i = 0,
as in TVB. Then (without --quick) one long run of that model, 1 s on both sides, started from
W_i = 50 pA (a quarter of the spec's check range): with TVB's defaults (b_i = 0) W_i then
decays into subnormal numbers (below 2.2e-308) after ~0.7 s and stays there; arithmetic on
subnormals is slow on x86 (microcode assists) for NumPy and for C alike. Last, mfgen alone on
random sparse networks of 1 000 and 10 000 nodes to show how the cost grows with nodes and
connections.

    .venv/bin/python benchmarks/bench_simulation.py [--quick] [--tvb-seconds 0.2] [--check]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    Expectation,
    command,
    cpu_best,
    interleaved_rounds,
    issue_connectome,
    machine,
    median_ratio,
    random_network,
    report_expectations,
)

import mfgen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "benchmarks" / "simulation_results.md"



class Case(NamedTuple):
    tvb_class: str | None  # None: no TVB counterpart, mfgen only
    noisy: str | None      # the state the stochastic run puts noise on (None: no such run)
    nsig: float
    parameters: dict       # model parameters for a physiological regime
    coupling: str = "linear"  # a bundled coupling function (TVB's class in COUPLING)
    start: float = 0.25       # the initial state: this fraction of each state's range,
    ranges: str = "range"     # TVB's state_variable_range ("check": the spec's wider one)


COUPLING_A = 0.0125  # physiological rates with Zerlaut models (docs/provenance.md)
CASES = {
    "tvb_zerlaut_adaptation_first_order": Case("ZerlautAdaptationFirstOrder", "ou_drift", 1.0,
                                               {"weight_noise": 1e-4}),
    "tvb_zerlaut_adaptation_second_order": Case("ZerlautAdaptationSecondOrder", "ou_drift", 1.0,
                                                {"weight_noise": 1e-4}),
    "tvb_generic_2d_oscillator": Case("Generic2dOscillator", "V", 1.0, {}),
    # JansenRit with the coupling TVB pairs it with (Linear drives y1 - y2 past 1e11 here),
    # from the middle of its ranges: from a quarter, y1 - y2 falls below -1 000 and every
    # sigmoid's exp overflows, a slow path in libm (NumPy's own exp takes it in stride)
    "tvb_jansen_rit": Case("JansenRit", "y4", 1e-3, {}, "sigmoidal_jansen_rit", 0.5),
    "tvb_montbrio_pazo_roxin": Case("MontbrioPazoRoxin", "V", 1e-2, {}),
    "zerlaut_adaptation_first_order": Case(None, None, 0.0, {}),
    "tvb_adex_second_order": Case(None, "noise", 1.0, {"weight_noise": 1e-4}),
}
# mfgen's bundled coupling -> (TVB's class, its parameters), the same values on both sides
COUPLING = {"linear": ("Linear", {"a": COUPLING_A}),
            "sigmoidal_jansen_rit": ("SigmoidalJansenRit", {})}
TABLE_HEADER = ("| model | integrator | mfgen s/s | us/step | M node-steps/s | TVB s/s | ratio "
                "(of the bests) | median of the rounds' ratios |",
                "|---|---|---|---|---|---|---|---|")


# Issue 8: mfgen's simulation over TVB's Simulator on the 76-region connectome, Heun.
EXPECTED_RATIO = {"tvb_zerlaut_adaptation_first_order": 80.0, "tvb_generic_2d_oscillator": 50.0,
                  "tvb_jansen_rit": 50.0, "tvb_montbrio_pazo_roxin": 50.0}


def initial_state(model, n: int, case: Case) -> np.ndarray:
    state = np.zeros((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = getattr(model.states[name], "check_range" if case.ranges == "check"
                            else "range")
        state[k] = low + case.start * (high - low)
    if "E" in model.state_variables:
        state[model.state_variables.index("E")] = 0.005
        state[model.state_variables.index("I")] = 0.01
    return state


def mfgen_run(model, connectivity, stochastic: bool, case: Case, seconds: float,
              monitor: mfgen.Monitor | None = None):
    options = dict(coupling=case.coupling, coupling_parameters=COUPLING[case.coupling][1],
                   dt=0.1, parameters=case.parameters,
                   initial_state=initial_state(model, connectivity.n_regions, case),
                   monitors=[monitor or mfgen.Raw()], coupling_precision="float32", seed=1,
                   threads=1)
    if stochastic:
        options.update(integrator="heun_stochastic", noise={case.noisy: case.nsig})
    else:
        options.update(integrator="heun")

    def run():
        simulation = mfgen.Simulation(model, connectivity, **options)
        simulation.run(seconds * 1000.0, chunk_steps=100_000)
    return run


def tvb_run(case: Case, connectivity, stochastic: bool, seconds: float, state: np.ndarray):
    from tvb.datatypes.connectivity import Connectivity
    from tvb.simulator import coupling, integrators, models, monitors, noise, simulator

    tvb_connectivity = Connectivity(
        weights=connectivity.weights, tract_lengths=connectivity.tract_lengths,
        centres=connectivity.centres, region_labels=np.array(connectivity.region_labels),
        speed=np.array([connectivity.speed]))
    tvb_connectivity.configure()
    model = getattr(models, case.tvb_class)()
    for name, value in case.parameters.items():
        setattr(model, name, np.array([value]))
    horizon = int(connectivity.delays(0.1).max()) + 1  # TVB's history: the state throughout
    history = np.repeat(state[np.newaxis, :, :, np.newaxis], horizon, axis=0)
    nsig = np.zeros(len(model.state_variables))
    if stochastic:
        nsig[list(model.state_variables).index(case.noisy)] = case.nsig
    coupling_class, coupling_parameters = COUPLING[case.coupling]

    def run():  # a fresh integrator each time: TVB's configure() reshapes nsig in place
        if stochastic:
            integrator = integrators.HeunStochastic(dt=0.1, noise=noise.Additive(nsig=nsig))
        else:
            integrator = integrators.HeunDeterministic(dt=0.1)
        sim = simulator.Simulator(
            model=model, connectivity=tvb_connectivity, initial_conditions=history,
            coupling=getattr(coupling, coupling_class)(
                **{k: np.array([v]) for k, v in coupling_parameters.items()}),
            integrator=integrator,
            monitors=(monitors.Raw(),),
            simulation_length=seconds * 1000.0)
        sim.configure()
        sim.run()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs")
    parser.add_argument("--tvb-seconds", type=float, default=0.2,
                        help="simulated seconds per TVB run (scaled to 1 s in the table)")
    parser.add_argument("--no-tvb", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 on a missed expectation")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    repeats = 5 if args.quick else 9
    seconds = args.tvb_seconds  # the same span as TVB's (see the docstring)
    connectome = issue_connectome()
    nnz = int(np.count_nonzero(connectome.weights))
    lines = ["# Simulation benchmark", "",
             f"Machine: {machine()}", "", f"Command: `{command()}`", "",
             f"76-region connectome {connectome.source} ({nnz} connections, max delay "
             f"{connectome.delays(0.1).max()} steps), dt = 0.1 ms, Linear a = {COUPLING_A} "
             "(JansenRit: SigmoidalJansenRit at TVB's defaults), "
             "float32 coupling sums as TVB's, Raw monitor, the same initial state on both "
             f"sides. CPU seconds per simulated second (both simulate {seconds} s, scaled), "
             "TVB and mfgen alternating in three rounds, each side's best round.", "",
             *TABLE_HEADER]
    print("\n".join(lines), flush=True)
    checks: list[Expectation] = []

    def measure(spec: str, stochastic: bool, span: float, case: Case | None = None
                ) -> tuple[float, float, float]:
        """CPU seconds per simulated second, mfgen's and TVB's, over the same `span` (s), each
        the best of its rounds, and the median of the rounds' ratios. The two alternate
        round by round (this machine's speed drifts by 10-20 % within minutes): a round is
        mfgen's best of a few runs, then one TVB run."""
        case = case or CASES[spec]
        model = mfgen.load(spec)
        run = mfgen_run(model, connectome, stochastic, case, span)
        run()  # warm-up
        tvb = None
        if case.tvb_class and not args.no_tvb:
            tvb = tvb_run(case, connectome, stochastic, span,
                          initial_state(model, connectome.n_regions, case))
            tvb()  # numba compile / cache load
        variants = {"ours": lambda: cpu_best(run, repeats if span < 0.5 else 3) / span}
        if tvb is not None:
            variants["theirs"] = lambda: cpu_best(tvb, 1) / span
        measured = interleaved_rounds(variants, 1 if span >= 0.5 else 3)
        ours = min(measured["ours"])
        if tvb is None:
            return ours, float("nan"), float("nan")
        return ours, min(measured["theirs"]), median_ratio(measured["theirs"], measured["ours"])

    def row(label: str, integrator: str, ours: float, theirs: float, paired: float) -> None:
        steps = 10_000  # per simulated second at dt = 0.1 ms
        versus = (f"{theirs:.3f} | {theirs / ours:.0f}x | {paired:.0f}x" if theirs == theirs
                  else "TVB not run (no counterpart, or --no-tvb) | | ")   # NaN
        line = (f"| {label} | {integrator} | {ours:.4f} | {ours / steps * 1e6:.2f} | "
                f"{76 * steps / ours / 1e6:.2f} | {versus} |")
        lines.append(line)
        print(line, flush=True)

    for spec, case in CASES.items():
        for stochastic in (False, True):
            if stochastic and case.noisy is None:
                continue
            ours, theirs, paired = measure(spec, stochastic, seconds)
            row(spec, "heun_stochastic" if stochastic else "heun", ours, theirs, paired)
            if spec in EXPECTED_RATIO and not stochastic:
                checks.append(Expectation(f"{spec} heun TVB/mfgen", None if args.no_tvb else
                                          theirs / ours, EXPECTED_RATIO[spec], False,
                                          "TVB Simulator CPU time over mfgen's, one thread"))
    if not args.quick:
        lines += ["", "A long run (1 s on both sides) from W_i = 50 pA: W_i in subnormal numbers "
                  "from ~0.7 s (see the docstring):", "", *TABLE_HEADER]
        print("\n".join(lines[-4:]), flush=True)
        spec = "tvb_zerlaut_adaptation_first_order"
        ours, theirs, paired = measure(spec, False, 1.0, CASES[spec]._replace(ranges="check"))
        row("tvb_zerlaut_adaptation_first_order, 1 s", "heun", ours, theirs, paired)
    lines += ["", "Scaling (mfgen only, tvb_zerlaut_adaptation_first_order, heun, 0.1 s "
              "simulated, TemporalAverage 1 ms):", "",
              "| nodes | connections | s per simulated s | us/step | M node-steps/s |",
              "|---|---|---|---|---|"]
    print("\n".join(lines[-4:]), flush=True)
    model = mfgen.load("tvb_zerlaut_adaptation_first_order")
    for n, degree in ((76, 20), (1000, 20), (1000, 100), (10_000, 20)):
        network = random_network(n, degree)
        run = mfgen_run(model, network, False, CASES["tvb_zerlaut_adaptation_first_order"], 0.1,
                        mfgen.TemporalAverage(1.0))
        per_second = cpu_best(run, 1 if args.quick else 3) / 0.1
        line = (f"| {n} | {n * degree} | {per_second:.3f} | {per_second / 1e4 * 1e6:.1f} | "
                f"{n * 1e4 / per_second / 1e6:.2f} |")
        lines.append(line)
        print(line, flush=True)
    lines += ["", "Expectations:", ""] + [f"- {check.line()}" for check in checks]
    OUTPUT.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {OUTPUT}")
    return report_expectations(checks, args.check)


if __name__ == "__main__":
    sys.exit(main())
