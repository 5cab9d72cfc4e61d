"""The `mfgen` command line: build, check, show, simulate and list model specs."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from mfgen.errors import MfgenError, printable


def _specs(args: argparse.Namespace) -> list[str]:
    from mfgen.codegen.locate import bundled_spec_names

    if args.all:
        return bundled_spec_names()
    if not args.specs:
        raise MfgenError("name one or more specs (a path or a bundled name), or pass --all")
    return list(args.specs)


def _build(args: argparse.Namespace) -> int:
    import mfgen

    for spec in _specs(args):
        start = time.perf_counter()
        result = mfgen.build(spec, force=args.force, emit_c=args.emit_c)
        elapsed = time.perf_counter() - start
        what = "compiled" if result.compiled else "cached"
        print(f"{result.entry['model']['name']:<40} {what:<9} {elapsed:8.3f} s  "
              f"{result.module_dir}")
        if args.emit_c:
            print(f"{'':<40} wrote {args.emit_c}/{result.entry['model']['name']}.c")
    return 0


def _check(args: argparse.Namespace) -> int:
    import mfgen
    from mfgen.runtime.checking import check_model

    header = (f"{'model':<38} {'states':>6} {'params':>6} {'ops/CSE':>8} {'build s':>8} "
              f"{'max rel err':>12} {'non-finite':>10}  result")
    print(header)
    print("-" * len(header))
    failed = 0
    for spec in _specs(args):
        start = time.perf_counter()
        result = mfgen.build(spec)
        build_time = time.perf_counter() - start
        model = mfgen.load(spec)
        report = check_model(model, points=args.points, seed=args.seed, rtol=args.rtol)
        failed += not report.passed
        stats = model.metadata["stats"]
        print(f"{model.name:<38} {model.n_states:>6} {len(model.parameters):>6} "
              f"{stats['operations_after_cse']:>8} {build_time:>8.3f} {report.worst:>12.2e} "
              f"{report.nonfinite:>10}  {'ok' if report.passed else 'FAILED'}"
              + ("" if result.compiled or not args.verbose else "  (from cache)"))
        if args.verbose or not report.passed:
            for name, error in report.max_error.items():
                print(f"    d{name}/dt: max relative error {error:.2e}")
            if report.nonfinite_mismatch:
                print(f"    {report.nonfinite_mismatch} values finite in one backend only")
    print(f"\ncompiled C vs NumPy reference at {args.points} random points per model "
          f"(tolerance {args.rtol:g}, relative with a floor of 1% of each row's scale)")
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    import mfgen

    for spec in _specs(args):
        result = mfgen.build(spec)
        model = result.entry["model"]
        # Spec text from strangers: terminal escapes and bidi controls are shown escaped.
        description = "\n".join(printable(line) for line in
                                model["description"].strip().splitlines())
        print(f"{model['name']}: {description}")
        print(f"  states: {', '.join(s['name'] for s in model['states'])}")
        print(f"  coupling: {', '.join(c['name'] + '<-' + c['state'] for c in model['coupling'])}")
        print(f"  parameters: {', '.join(p['name'] for p in model['parameters'])}")
        if args.stats:
            stats = model["stats"]
            calls = ", ".join(f"{k} {v}" for k, v in stats["calls_per_node"].items()) or "none"
            print(f"  statements in the IR: {stats['statements_ir']}, after optimisation: "
                  f"{stats['statements']} ({stats['loop_invariant_statements']} hoisted out "
                  "of the node loop)")
            print(f"  operations before CSE: {stats['operations_before_cse']}, after CSE: "
                  f"{stats['operations_after_cse']}")
            print(f"  transcendental calls per node: {calls}")
        if args.c:
            print((result.module_dir / "kernel.c").read_text())
    return 0


def _pairs(items: list[str] | None, what: str) -> dict[str, float]:
    result = {}
    for item in items or []:
        for part in item.split(","):
            name, sep, value = part.partition("=")
            try:
                result[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise MfgenError(f"{what} must be given as name=number, got '{part}'")
    return result


def _monitor(text: str, variables: list[str] | None):
    import mfgen

    kind, _, period = text.partition(":")
    if kind == "raw":
        return mfgen.Raw(variables)
    try:
        value = float(period)
    except ValueError:
        raise MfgenError(f"monitor '{text}': write raw, sub:PERIOD_MS or tavg:PERIOD_MS") from None
    if kind in ("sub", "subsample"):
        return mfgen.SubSample(value, variables)
    if kind in ("tavg", "temporal_average"):
        return mfgen.TemporalAverage(value, variables)
    raise MfgenError(f"unknown monitor '{kind}': use raw, sub:PERIOD_MS or tavg:PERIOD_MS")


def _simulate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    import mfgen

    model = mfgen.load(args.spec)
    if args.connectivity == "synthetic":
        connectivity = mfgen.Connectivity.synthetic(args.regions, speed=args.speed)
    elif args.connectivity == "tvb-default":
        connectivity = mfgen.Connectivity.tvb_default(speed=args.speed)
    elif args.connectivity == "none":
        connectivity = mfgen.Connectivity.empty(args.regions)
    else:
        connectivity = mfgen.Connectivity.from_zip(args.connectivity, speed=args.speed)
    n = connectivity.n_regions
    initial = None
    if args.initial:
        initial = np.zeros((model.n_states, n))
        for name, value in _pairs(args.initial, "--initial").items():
            if name not in model.state_variables:
                raise MfgenError(f"--initial: unknown state variable '{name}'")
            initial[model.state_variables.index(name)] = value
    variables = args.variables.split(",") if args.variables else None
    monitor = _monitor(args.monitor, variables)
    total = int(round(args.duration / args.dt))

    def progress(done: int, total_steps: int) -> None:
        width = 40
        filled = int(width * done / max(total_steps, 1))
        print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total_steps} steps",
              end="" if done < total_steps else "\n", file=sys.stderr, flush=True)

    print(f"simulating {model.name} on {n} regions ({connectivity.source or 'given'}), "
          f"{args.integrator}, dt = {args.dt} ms, {args.duration} ms = {total} steps")
    result = mfgen.simulate(
        model, connectivity, duration=args.duration, dt=args.dt, integrator=args.integrator,
        coupling=args.coupling, coupling_parameters=_pairs(args.coupling_param, "--coupling-param"),
        parameters=_pairs(args.param, "--param"), noise=_pairs(args.noise, "--noise") or None,
        seed=args.seed, initial_state=initial, monitors=[monitor],
        progress=progress if args.progress or sys.stderr.isatty() else None)
    trace = result[monitor.label]
    rate = total * n / max(result.wall_time, 1e-9)
    print(f"done in {result.wall_time:.2f} s ({rate / 1e6:.1f} M node-steps/s)"
          + ("; interrupted" if result.interrupted else ""))
    print(f"{'variable':<12} {'mean':>12} {'min':>12} {'max':>12}   (over time and regions)")
    for k, name in enumerate(trace.variables):
        values = trace.data[:, k]
        print(f"{name:<12} {values.mean():>12.5g} {values.min():>12.5g} {values.max():>12.5g}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, times=trace.times, data=trace.data,
                            variables=np.array(trace.variables),
                            region_labels=np.array(connectivity.region_labels),
                            config=json.dumps(result.config))
        print(f"wrote {out} (times, data[time, variable, region], variables, config)")
    if args.plot:
        _plot(trace, connectivity, model.name, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _plot(trace, connectivity, title: str, path: str) -> None:
    from pathlib import Path

    import numpy as np

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MfgenError("--plot needs matplotlib: pip install matplotlib") from None
    variable = trace.variables[0]
    values = trace[variable]
    scale, unit = (1e3, "Hz") if variable in ("E", "I") else (1.0, "")
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                         gridspec_kw={"height_ratios": [1, 1.3]})
    top.plot(trace.times, values * scale, color="0.7", linewidth=0.4)
    top.plot(trace.times, values.mean(axis=1) * scale, color="C3", linewidth=1.5,
             label="mean over regions")
    top.set_ylabel(f"{variable} {unit}")
    top.legend(loc="upper right")
    top.set_title(f"{title}: {variable} in {values.shape[1]} regions")
    image = bottom.imshow((values * scale).T, aspect="auto", origin="lower", cmap="viridis",
                          extent=[trace.times[0], trace.times[-1], 0, values.shape[1]],
                          vmax=np.percentile(values * scale, 99.5))  # transients don't hide all
    bottom.set_ylabel("region")
    bottom.set_xlabel("time (ms)")
    figure.colorbar(image, ax=bottom, orientation="horizontal", fraction=0.05, pad=0.15,
                    label=f"{variable} {unit}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _list(args: argparse.Namespace) -> int:
    from mfgen.codegen.locate import bundled_spec_dir, bundled_spec_names

    for name in bundled_spec_names():
        print(f"{name:<40} {bundled_spec_dir() / (name + '.yaml')}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mfgen", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def with_specs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("specs", nargs="*", help="spec files or bundled spec names")
        p.add_argument("--all", action="store_true", help="every bundled spec")
        return p

    build = with_specs(sub.add_parser("build", help="generate and compile specs (cached)"))
    build.add_argument("--emit-c", metavar="DIR", help="also write the generated C and NumPy")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(run=_build)

    check = with_specs(sub.add_parser("check", help="compiled kernel vs NumPy reference"))
    check.add_argument("--points", type=int, default=2000)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--rtol", type=float, default=1e-12)
    check.add_argument("-v", "--verbose", action="store_true")
    check.set_defaults(run=_check)

    show = with_specs(sub.add_parser("show", help="describe a model"))
    show.add_argument("--stats", action="store_true", help="operation and call counts")
    show.add_argument("--c", action="store_true", help="print the generated C")
    show.set_defaults(run=_show)

    sim = sub.add_parser("simulate", help="run a whole-network simulation")
    sim.add_argument("spec", help="spec file or bundled spec name")
    sim.add_argument("--connectivity", default="synthetic",
                     help="synthetic (default), tvb-default (needs tvb-data), none, or a TVB "
                          "connectivity .zip")
    sim.add_argument("--regions", type=int, default=68, help="regions of synthetic/none")
    sim.add_argument("--speed", type=float, default=3.0,
                     help="conduction speed, mm/ms (default: %(default)s, TVB's)")
    sim.add_argument("--duration", type=float, default=1000.0, help="ms")
    sim.add_argument("--dt", type=float, default=0.1, help="ms")
    sim.add_argument("--integrator", default="heun")
    sim.add_argument("--coupling", default="linear")
    sim.add_argument("--coupling-param", action="append", metavar="NAME=VALUE")
    sim.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="model parameter override (repeatable)")
    sim.add_argument("--noise", action="append", metavar="STATE=NSIG")
    sim.add_argument("--initial", action="append", metavar="STATE=VALUE",
                     help="initial value of a state on every region (default: random in "
                          "the spec's range)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--monitor", default="tavg:1.0", help="raw, sub:MS or tavg:MS")
    sim.add_argument("--variables", help="comma-separated state variables to record")
    sim.add_argument("--out", help="write the result to this .npz file")
    sim.add_argument("--plot", help="write a PNG plot of the first recorded variable")
    sim.add_argument("--progress", action="store_true", help="show a progress bar")
    sim.set_defaults(run=_simulate)

    listing = sub.add_parser("list", help="bundled specs")
    listing.set_defaults(run=_list)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except MfgenError as exc:
        print(f"mfgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
