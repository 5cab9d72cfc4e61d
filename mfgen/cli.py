"""The `mfgen` command line: build, check and show model specs; run simulations from a config
file or from flags; plot results; start a new spec.

Every user error is one line `mfgen: error: ...` and exit status 2 (a traceback only with
--debug). Output files are never overwritten without --force and are created exclusively, so
a symlink planted where an output goes is never followed.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from mfgen.errors import MfgenError, SpecError, printable
from mfgen.runtime.connectivity import TVB_SPEED

# Exceptions that carry a message about the user's input (the API raises ValueError/TypeError
# for bad arguments by design); anything else is mfgen's fault and says so.
USER_ERRORS = (MfgenError, ValueError, TypeError, OSError, OverflowError, zipfile.BadZipFile)
BUDGET_VARIABLES = {"build_cpu_seconds": "MFGEN_BUILD_CPU_SECONDS",
                    "build_memory_mb": "MFGEN_BUILD_MEMORY_MB"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`mfgen: error: ...`, status 2) and defaults in --help."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        _fail(f"{self.prog}: {message} (see '{self.prog} --help')")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except where there is none to show (flags, None) or the
    help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if any(action.default is none for none in (None, False, argparse.SUPPRESS)) or \
                "default" in text:  # `is`: a default of 0.0 == False is still shown
            return text
        return text + " (default: %(default)s)"


def _fail(message: str) -> NoReturn:
    print(f"mfgen: error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in printable_lines(str(text)) if line.strip()]
    return "; ".join(lines) if lines else "(no message)"


def printable_lines(text: str) -> list[str]:
    return [printable(line) for line in text.splitlines()]


# -- argument types: each failure names the argument through argparse ------------------------
def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not finite")
    return value


def positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got '{text}'")
    return value


def non_negative_number(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got '{text}'")
    return value


def _integer(text: str, low: int, high: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got '{text}'")
    return value


def region_count(text: str) -> int:
    return _integer(text, 1, 1_000_000)


def point_count(text: str) -> int:
    # The check compares two backends at random states; fewer than 2 says nothing.
    return _integer(text, 2, 10_000_000)


def seed_value(text: str) -> int:
    return _integer(text, 0, 2**63 - 1)


def budget_value(text: str) -> int:
    return _integer(text, 1, 10**9)


def name_value(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"write NAME=NUMBER, got '{text}'")
    return name.strip(), _number(value)


def _pairs(items: list[list[tuple[str, float]]] | None) -> dict[str, float]:
    return {name: value for group in items or [] for name, value in group}


def name_values(text: str) -> list[tuple[str, float]]:
    """NAME=NUMBER, or several separated by commas."""
    return [name_value(part) for part in text.split(",")]


def monitor_text(text: str) -> dict[str, Any]:
    kind, _, period = text.partition(":")
    kinds = {"raw": "raw", "sub": "subsample", "subsample": "subsample",
             "tavg": "temporal_average", "temporal_average": "temporal_average"}
    if kind not in kinds:
        raise argparse.ArgumentTypeError(f"unknown monitor '{kind}': write raw, sub:MS or "
                                         "tavg:MS")
    if kinds[kind] == "raw":
        if period:
            raise argparse.ArgumentTypeError("raw records every step; it takes no period")
        return {"kind": "raw"}
    if not period:
        raise argparse.ArgumentTypeError(f"'{kind}' needs a period: {kind}:MS")
    return {"kind": kinds[kind], "period": positive_number(period)}


# -- output files -----------------------------------------------------------------------------
def _claim_output(path: str | Path, force: bool, what: str) -> Path:
    """Make `path` free for an exclusive create: refuse an existing file unless --force, and
    then remove the file (or the symlink itself, never what it points to)."""
    path = Path(path)
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            raise MfgenError(f"{what} {path} is a directory; give a file name")
        if not force:
            raise MfgenError(f"{what} {path} exists; pass --force to replace it")
        path.unlink()
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_exclusive(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _shown(path: Path) -> str:
    return printable(str(path.resolve()))


# -- build budget ---------------------------------------------------------------------------
def _apply_budget(args: argparse.Namespace) -> None:
    # The build sandbox reads these variables; flags win over the environment.
    for attribute, variable in BUDGET_VARIABLES.items():
        value = getattr(args, attribute, None)
        if value is not None:
            os.environ[variable] = str(value)


# -- commands -----------------------------------------------------------------------------------
def _specs(args: argparse.Namespace) -> list[str]:
    from mfgen.codegen.locate import bundled_spec_names

    if args.all:
        return bundled_spec_names()
    if not args.specs:
        raise MfgenError("name one or more specs (a path or a bundled name), or pass --all")
    return list(args.specs)


def _build(args: argparse.Namespace) -> int:
    import mfgen
    from mfgen.runtime.loader import KERNEL_FILE, REFERENCE_FILE

    for spec in _specs(args):
        start = time.perf_counter()
        result = mfgen.build(spec, force=args.force)
        elapsed = time.perf_counter() - start
        name = result.entry["model"]["name"]
        what = "compiled" if result.compiled else "cached"
        print(f"{name:<40} {what:<9} {elapsed:8.3f} s  {printable(str(result.module_dir))}")
        if args.emit_c:
            # Copied from the cache (the exact sources compiled), never written through links.
            folder = Path(args.emit_c)
            for source, target in ((KERNEL_FILE, f"{name}.c"),
                                   (REFERENCE_FILE, f"{name}_reference.py")):
                path = _claim_output(folder / target, args.force, "--emit-c file")
                _write_exclusive(path, (result.module_dir / source).read_bytes())
                print(f"{'':<40} wrote {_shown(path)}")
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
    from mfgen.runtime.describe import describe_model

    for spec in _specs(args):
        result = mfgen.build(spec)
        print(describe_model(spec, result.entry["model"], latex=args.latex, stats=args.stats))
        if args.c:
            print((result.module_dir / "kernel.c").read_text())
    return 0


def _simulate_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """The run config equivalent to `mfgen simulate` flags."""
    connectivity: dict[str, Any] = {"source": args.connectivity, "speed": args.speed}
    if args.connectivity in ("synthetic", "none"):
        connectivity["regions"] = args.regions
    monitor = dict(args.monitor)
    if args.variables:
        monitor["variables"] = [v.strip() for v in args.variables.split(",")]
    mapping: dict[str, Any] = {
        "spec": args.spec, "connectivity": connectivity,
        "coupling": {"function": args.coupling, "parameters": _pairs(args.coupling_param),
                     "precision": args.coupling_precision},
        "local_coupling": args.local_coupling, "integrator": args.integrator, "dt": args.dt,
        "duration": args.duration, "seed": args.seed, "monitors": [monitor],
        "output": {"chunk": args.chunk},
    }
    if args.noise:
        mapping["noise"] = _pairs(args.noise)
    if args.param:
        mapping["parameters"] = _pairs(args.param)
    if args.initial:
        mapping["initial_state"] = _pairs(args.initial)
    return mapping


class _Progress:
    """tqdm bar in simulated ms with node-steps per second; `lines` prints one line per chunk
    (for logs and tests); off when not on a terminal unless asked."""

    def __init__(self, mode: str, dt: float, n_nodes: int):
        self.mode, self.dt, self.n_nodes = mode, dt, n_nodes
        self.bar: Any = None
        self.started = time.perf_counter()
        self.first: int | None = None
        self.delay = 1.0  # s: runs shorter than this never show a bar

    def __call__(self, done: int, total: int) -> None:
        if self.first is None:
            self.first = done
        if self.mode == "lines":
            print(f"mfgen: {done * self.dt:g} of {total * self.dt:g} ms written", file=sys.stderr,
                  flush=True)
            return
        if self.mode == "off" or (self.mode == "auto" and not sys.stderr.isatty()):
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total * self.dt, 6), initial=round(done * self.dt, 6),
                            unit="ms", desc="simulated", delay=self.delay, file=sys.stderr,
                            ncols=shutil.get_terminal_size().columns or 80,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} ms "
                                       "[{elapsed}<{remaining}{postfix}]")
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = (done - self.first) * self.n_nodes / elapsed
        self.bar.set_postfix_str(f"{rate / 1e6:.1f} M node-steps/s", refresh=False)
        self.bar.update(round(done * self.dt, 6) - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _summary(monitor: Any) -> None:
    over = "time, regions and modes" if monitor.data.ndim == 4 else "time and regions"
    print(f"{'variable':<12} {'unit':<6} {'mean':>12} {'min':>12} {'max':>12}   (over {over}, "
          f"monitor '{monitor.label}')")
    for k, (name, unit) in enumerate(zip(monitor.variables, monitor.units)):
        values = monitor.data[:, k]
        if values.size:
            print(f"{name:<12} {unit or '-':<6} {values.mean():>12.5g} {values.min():>12.5g} "
                  f"{values.max():>12.5g}")


def _run_config(config: Any, args: argparse.Namespace, out: str | None, plot: str | None,
                resume: bool) -> int:
    from mfgen.runtime.results import load_result, run_to_file

    if resume and args.force:
        raise MfgenError("--resume continues a file and --force replaces it: choose one")
    if out is None:
        raise MfgenError("no output file: give --out PATH or output: {path: ...} in the config")
    out_path = Path(out)
    if not resume:
        _claim_output(out_path, args.force, "--out" if args.out else "output.path")
    if plot:
        _claim_output(plot, args.force, "--plot" if args.plot else "output.plot")
    model = config.load_model()
    steps = round(config.duration / config.dt)
    print(f"simulating {model.name} ({config.connectivity}), {config.integrator}, dt = "
          f"{config.dt:g} ms, {config.duration:g} ms = {steps} steps"
          + ("; resuming" if resume else ""))
    # the shared simulator is compiled on first use (once per toolchain and mfgen version):
    # not part of the run's time
    built = time.perf_counter()
    model.simulator_module  # noqa: B018 - built or loaded here
    build_s = time.perf_counter() - built
    if build_s > 0.5:
        print(f"built the simulator in {build_s:.1f} s (once per compiler and mfgen version)")
    progress = _Progress(args.progress, config.dt, 1)
    started = time.perf_counter()
    try:
        progress.n_nodes = config.load_connectivity().n_regions
        result = run_to_file(config, out_path, resume=resume, force=False, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        print(f"mfgen: interrupted; {_shown(out_path)} keeps every finished chunk; continue "
              "with --resume", file=sys.stderr)
        return 130
    finally:
        progress.close()
    wall = time.perf_counter() - started
    n = len(result.region_labels)
    print(f"done in {wall:.2f} s ({steps * n / max(wall, 1e-9) / 1e6:.1f} M node-steps/s)")
    for monitor in result.monitors.values():
        _summary(monitor)
    print(f"wrote {_shown(out_path)}")
    if plot:
        load_result(out_path).plot(plot, transient=args.transient)
        print(f"wrote {_shown(Path(plot))}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from mfgen.runtime.run_config import load_run_config

    config = load_run_config(args.config, args.set or ())
    out = args.out or (str(config.resolve(config.output)) if config.output else None)
    plot = args.plot or (str(config.resolve(config.plot)) if config.plot else None)
    if args.no_plot:
        plot = None
    return _run_config(config, args, out, plot, args.resume)


def _save_config(mapping: dict[str, Any], path: str, force: bool) -> None:
    import yaml

    target = _claim_output(path, force, "--save-config")
    text = ("# Written by `mfgen simulate --save-config`; run it with `mfgen run "
            f"{printable(path)}`.\n" + yaml.safe_dump(mapping, sort_keys=False))
    _write_exclusive(target, text.encode())
    print(f"wrote {_shown(target)}")


def _simulate(args: argparse.Namespace) -> int:
    from mfgen.runtime.run_config import parse_run_config

    mapping = _simulate_mapping(args)
    config = parse_run_config(mapping, "<command line>")
    if args.save_config:
        _save_config(config.mapping(), args.save_config, args.force)
    if args.out and not args.out.endswith(".npz"):
        return _run_config(config, args, args.out, args.plot, resume=False)
    return _simulate_in_memory(config, args)


def _simulate_in_memory(config: Any, args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from mfgen.runtime.simulation import Simulation

    out = _claim_output(args.out, args.force, "--out") if args.out else None
    plot = _claim_output(args.plot, args.force, "--plot") if args.plot else None
    model, connectivity, kwargs, duration = config.build()
    simulation = Simulation(model, connectivity, **kwargs)
    total = round(duration / config.dt)
    n = connectivity.n_regions
    print(f"simulating {model.name} on {n} regions ({connectivity.source or 'given'}), "
          f"{config.integrator}, dt = {config.dt:g} ms, {duration:g} ms = {total} steps")
    progress = _Progress(args.progress, config.dt, n)
    try:
        result = simulation.run(duration, chunk_steps=max(1, round(config.chunk / config.dt)),
                                progress=progress)
    finally:
        progress.close()
    label = next(iter(result.monitors))
    trace = result[label]
    print(f"done in {result.wall_time:.2f} s ({total * n / max(result.wall_time, 1e-9) / 1e6:.1f}"
          " M node-steps/s)" + ("; interrupted" if result.interrupted else ""))
    over = "time, regions and modes" if trace.data.ndim == 4 else "time and regions"
    print(f"{'variable':<12} {'mean':>12} {'min':>12} {'max':>12}   (over {over})")
    for k, name in enumerate(trace.variables):
        values = trace.data[:, k]
        print(f"{name:<12} {values.mean():>12.5g} {values.min():>12.5g} {values.max():>12.5g}")
    if out is not None:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                             getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(descriptor, "wb") as handle:  # a file object: numpy adds no suffix
            np.savez_compressed(handle, times=trace.times, data=trace.data,
                                variables=np.array(trace.variables),
                                region_labels=np.array(connectivity.region_labels),
                                config=json.dumps(result.config))
        axes = "time, variable, region" + (", mode" if trace.data.ndim == 4 else "")
        print(f"wrote {_shown(out)} (times, data[{axes}], variables, config)")
    if plot is not None:
        result.plot(plot, transient=args.transient)
        print(f"wrote {_shown(plot)}")
    return 130 if result.interrupted else 0


def _plot(args: argparse.Namespace) -> int:
    from mfgen.runtime.results import load_result
    from mfgen.runtime.sweep_plot import is_sweep_file, plot_sweep

    out = args.out or str(Path(args.results).with_suffix(".png"))
    if is_sweep_file(args.results):  # heat-maps of the measures over two swept quantities
        if args.monitor:
            raise MfgenError("--monitor applies to simulation results; a sweep file has "
                             "measures (choose them with --variables)")
        path = _claim_output(out, args.force, "--out")
        measures = [v.strip() for v in args.variables.split(",")] if args.variables else None
        print(f"wrote {_shown(plot_sweep(args.results, path, measures=measures))}")
        return 0
    result = load_result(args.results)
    path = _claim_output(out, args.force, "--out")
    if args.monitor and args.monitor not in result.monitors:
        raise MfgenError(f"no monitor '{args.monitor}' in {args.results}; it has "
                         f"{', '.join(result.monitors)}")
    variables = [v.strip() for v in args.variables.split(",")] if args.variables else None
    result.plot(path, monitor=args.monitor, variables=variables, transient=args.transient,
                mode=args.mode)
    print(f"wrote {_shown(path)}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    if args.plot:  # refused before the sweep, not after it
        _claim_output(args.plot, args.force, "--plot")
    status: int = args.handler(args)  # runtime/sweep_config.py: run_sweep_command
    if status == 130:
        print("mfgen: interrupted; run the same command again to resume", file=sys.stderr)
    return status


def _new(args: argparse.Namespace) -> int:
    from mfgen.runtime.describe import starter_spec

    name = args.name[:-5] if args.name.endswith(".yaml") else args.name
    stem = Path(name).name
    if not stem.isidentifier() or not stem.isascii() or "__" in stem or not stem[0].isalpha():
        raise MfgenError(f"'{stem}' cannot name a model: use letters, digits and single "
                         "underscores, starting with a letter (e.g. my_model)")
    path = _claim_output(Path(name + ".yaml"), args.force, "spec")
    _write_exclusive(path, starter_spec(stem).encode())
    print(f"wrote {_shown(path)}; next: mfgen check {printable(str(path))}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mfgen.codegen.locate import bundled_spec_dir, bundled_spec_names

    for name in bundled_spec_names():
        print(f"{name:<40} {bundled_spec_dir() / (name + '.yaml')}")
    return 0


# -- the parser ------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    common.add_argument("--build-cpu-seconds", type=budget_value, metavar="S",
                        help="CPU-time budget of one spec build (sets MFGEN_BUILD_CPU_SECONDS; "
                             "default: that variable, else mfgen's built-in budget)")
    common.add_argument("--build-memory-mb", type=budget_value, metavar="MB",
                        help="memory budget of one spec build (sets MFGEN_BUILD_MEMORY_MB)")
    return common


def _simulation_flags(sim: argparse.ArgumentParser) -> None:
    sim.add_argument("spec", help="spec file or bundled spec name")
    sim.add_argument("--connectivity", default="synthetic",
                     help="synthetic, tvb-default (TVB's 76 regions, from tvb-data), none, or "
                          "a TVB connectivity .zip")
    sim.add_argument("--regions", type=region_count, default=68,
                     help="regions of synthetic/none")
    sim.add_argument("--speed", type=positive_number, default=TVB_SPEED,
                     help="conduction speed, mm/ms; TVB's default (default: %(default)s)")
    sim.add_argument("--duration", type=positive_number, default=1000.0, help="simulated ms")
    sim.add_argument("--dt", type=positive_number, default=0.1, help="time step, ms")
    sim.add_argument("--integrator", default="heun",
                     help="euler, heun, rk4 (deterministic); euler_maruyama, heun_stochastic "
                          "(need --noise)")
    sim.add_argument("--coupling", default="linear",
                     help="linear, scaling, difference, sigmoidal, hyperbolic_tangent")
    sim.add_argument("--coupling-param", type=name_values, action="append",
                     metavar="NAME=VALUE", help="coupling parameter, e.g. a=0.15 (repeatable)")
    sim.add_argument("--coupling-precision", choices=("float64", "float32"), default="float64",
                     help="float32 sums the delayed coupling as TVB does")
    sim.add_argument("--local-coupling", type=_number, default=0.0,
                     help="TVB's scalar local coupling")
    sim.add_argument("--param", type=name_values, action="append", metavar="NAME=VALUE",
                     help="model parameter for every region (repeatable)")
    sim.add_argument("--noise", type=name_values, action="append", metavar="STATE=NSIG",
                     help="additive noise amplitude (TVB's nsig) of a state (repeatable)")
    sim.add_argument("--initial", type=name_values, action="append", metavar="STATE=VALUE",
                     help="initial value of a state on every region; states not named start "
                          "uniformly at random in the spec's range (from --seed); the "
                          "initial state is also the constant history over the delays")
    sim.add_argument("--seed", type=seed_value, default=0, help="noise and initial-state seed")
    sim.add_argument("--monitor", type=monitor_text, default="tavg:1.0",
                     help="raw, sub:MS (subsample) or tavg:MS (temporal average)")
    sim.add_argument("--variables", help="comma-separated state variables to record "
                                         "(default: all)")
    sim.add_argument("--chunk", type=positive_number, default=500.0,
                     help="simulated ms per C call (and per write to --out)")


def _output_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--plot", metavar="PNG", help="also write a figure (time series, raster, "
                                                   "power spectrum)")
    sub.add_argument("--transient", type=non_negative_number, default=0.0,
                     help="ms left out of --plot")
    sub.add_argument("--force", action="store_true", help="replace existing output files")
    sub.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto",
                     help="auto: a bar on a terminal for runs over ~1 s; lines: one line "
                          "per written chunk")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="mfgen", description=__doc__)
    top.add_argument("--debug", action="store_true", help="show the Python traceback of an "
                                                          "error")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND",
                             parser_class=_Parser)
    common = _common()

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                              formatter_class=_HelpFormatter)

    def with_specs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("specs", nargs="*", help="spec files or bundled spec names")
        p.add_argument("--all", action="store_true", help="every bundled spec")
        return p

    build = with_specs(command("build", "generate and compile specs (cached)"))
    build.add_argument("--emit-c", metavar="DIR",
                       help="also write the generated C and NumPy reference into DIR")
    build.add_argument("--force", action="store_true",
                       help="rebuild even if cached, and replace files in --emit-c")
    build.set_defaults(run=_build)

    check = with_specs(command("check", "compare the compiled kernel with the NumPy "
                                        "reference at random states"))
    check.add_argument("--points", type=point_count, default=2000,
                       help="random states per model (at least 2)")
    check.add_argument("--seed", type=seed_value, default=0, help="random seed")
    check.add_argument("--rtol", type=positive_number, default=1e-12,
                       help="relative tolerance")
    check.add_argument("-v", "--verbose", action="store_true", help="errors per variable")
    check.set_defaults(run=_check)

    show = with_specs(command("show", "describe a model: equations, states, parameters"))
    show.add_argument("--stats", action="store_true", help="operation and call counts")
    show.add_argument("--latex", action="store_true", help="equations as LaTeX")
    show.add_argument("--c", action="store_true", help="print the generated C")
    show.set_defaults(run=_show)

    run = command("run", "run a simulation from a config file, writing HDF5 results")
    run.add_argument("config", help="run config (.yaml); see examples/tvb_adex.yaml")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a config value, nested keys with dots: --set duration=2000 "
                          "--set parameters.E_L_e=-63 (repeatable)")
    run.add_argument("--out", metavar="H5", help="results file (default: the config's "
                                                 "output.path)")
    run.add_argument("--resume", action="store_true",
                     help="continue a partial results file of the same config")
    run.add_argument("--no-plot", action="store_true", help="skip the config's output.plot")
    _output_flags(run)
    run.set_defaults(run=_run)

    sim = command("simulate", "run a simulation from flags (a shortcut for `run`)")
    _simulation_flags(sim)
    sim.add_argument("--out", metavar="PATH", help="results: HDF5 (.h5), or NumPy .npz")
    sim.add_argument("--save-config", metavar="YAML",
                     help="write the equivalent run config (for `mfgen run`)")
    _output_flags(sim)
    sim.set_defaults(run=_simulate)

    from mfgen.runtime.sweep_config import add_sweep_command

    sweep = add_sweep_command(sub, parents=[common], formatter_class=_HelpFormatter)
    sweep.add_argument("--force", action="store_true", help="replace an existing --plot figure")
    sweep.set_defaults(run=_sweep)

    plot = command("plot", "plot a results file (time series, raster, power spectrum) or a "
                           "sweep file (heat-maps of its measures)")
    plot.add_argument("results", help="HDF5 results file from `mfgen run` or `mfgen sweep`")
    plot.add_argument("--variables", help="comma-separated variables (the first one is "
                                          "rastered; default: the first recorded), or a "
                                          "sweep's measures (default: all)")
    plot.add_argument("--monitor", help="monitor label (default: the first)")
    plot.add_argument("--out", metavar="PNG", help="figure file (default: RESULTS with .png)")
    plot.add_argument("--transient", type=non_negative_number, default=0.0,
                      help="ms left out at the start")
    plot.add_argument("--mode", help="a model with modes: the mode plotted (0, 1, ...) or "
                                     "'sum' over the modes (default: 0)")
    plot.add_argument("--force", action="store_true", help="replace an existing figure")
    plot.set_defaults(run=_plot)

    new = command("new", "write a commented starter spec NAME.yaml")
    new.add_argument("name", help="model name (a C-safe identifier), optionally with a folder")
    new.add_argument("--force", action="store_true", help="replace an existing file")
    new.set_defaults(run=_new)

    listing = command("list", "bundled specs")
    listing.set_defaults(run=_list)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = parser().parse_args(argv)
        _apply_budget(args)
        return args.run(args)
    except KeyboardInterrupt:
        print("mfgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mfgen show ... | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except SystemExit:
        raise
    except SpecError as exc:
        if debug:
            raise
        hint = f"; hint: {exc.hint}" if exc.hint else ""
        text = f"{exc.location}: {exc.bare_message}" if exc.location else exc.bare_message
        print(f"mfgen: error: {_one_line(text + hint)}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        if debug:
            raise
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.filename:
            message = f"{exc.filename}: {message}"
        print(f"mfgen: error: {_one_line(message)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug in mfgen: say so in one line
        if debug:
            raise
        print(f"mfgen: internal error: {type(exc).__name__}: {_one_line(str(exc))} (run again "
              "with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
