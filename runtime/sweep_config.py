"""`mfgen sweep CONFIG.yaml`: a run config (`run:`) plus what to sweep and measure (`sweep:`).

    run:                         # the keys of an `mfgen run` config (no monitors, no output)
      spec: tvb_adex_first_order
      connectivity: tvb-default  # or synthetic (with regions), none, or a TVB .zip path
      coupling: {function: linear, parameters: {a: 0.15}}
      integrator: heun_stochastic
      dt: 0.1
      duration: 1000
      noise: {noise: 1.0}
      parameters: {weight_noise: 1e-4}
      seed: 1
    sweep:
      design: grid               # grid, zip or random (then n_points, random_seed)
      quantities:
        b_e: {start: 0, stop: 120, num: 20}
        external_input_ex_ex: {start: 0.2e-3, stop: 0.8e-3, num: 20, log: true}
      measures: {transient: 200, mean: [E, I], std: [E], frequency: [E]}
      store: adex_sweep.h5       # relative to the config's folder
      scheduler: tcp://10.0.0.5:8786   # optional: a Dask cluster

The `run:` section is read by `runtime/run_config.py` (the `mfgen run` reader): both commands
share one format and its file:line:column errors. `mfgen sweep` is wired in mfgen/cli.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mfgen.errors import Location, SpecError
from mfgen.runtime.sweep_design import SweepError

SWEEP_KEYS = ("design", "quantities", "n_points", "random_seed", "measures", "store",
              "scheduler", "workers", "chunk_points")


class SweepConfigError(SpecError):
    """A sweep config is invalid; the message starts with file:line:column."""


def _where(mapping: Any, key: str, path: str) -> Location:
    where = getattr(mapping, "where", None)
    location = where(key) if where else None
    return location or Location(path)


def _run_section(run: Mapping[str, Any], path: Path) -> tuple[str, Any, dict[str, Any], float]:
    """(spec reference, connectivity, Simulation kwargs, duration) from a `run:` mapping, read
    by the `mfgen run` reader (runtime/run_config.py) so both commands share one format. The
    spec stays a reference (name or path): Dask workers get its text, not a compiled module."""
    from mfgen.runtime.run_config import parse_run_config

    if not isinstance(run, Mapping):
        raise SweepConfigError("run: must be a mapping", Location(str(path)))
    for key in ("monitors", "output"):
        if key in run:
            hint = ("a sweep's monitor comes from sweep.measures" if key == "monitors"
                    else "the store is sweep.store")
            raise SweepConfigError(f"unknown key run.{key}", _where(run, key, str(path)), hint)
    config = parse_run_config(run, str(path), base_dir=path.resolve().parent)
    _model, connectivity, kwargs, duration = config.build()
    kwargs.pop("monitors")  # the sweep's monitor is made from its measures
    return config.spec_reference(), connectivity, kwargs, float(duration)


def load_sweep_config(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of mfgen.sweep from a sweep config file (checked, positioned)."""
    from mfgen.codegen.yaml_source import load_yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepConfigError(f"cannot read the sweep config: {exc}", Location(str(path))) \
            from None
    data = load_yaml(text, str(path))
    if not isinstance(data, Mapping) or "run" not in data or "sweep" not in data:
        raise SweepConfigError("a sweep config needs a 'run:' and a 'sweep:' section",
                               Location(str(path)), "see docs/sweeps.md for an example")
    for key in data:
        if key not in ("run", "sweep"):
            raise SweepConfigError(f"unknown top-level key '{key}'", _where(data, key, str(path)),
                                   "a sweep config has run: and sweep:")
    run, section = data["run"], data["sweep"]
    if not isinstance(section, Mapping):
        raise SweepConfigError("sweep: must be a mapping", Location(str(path)))
    for key in section:
        if key not in SWEEP_KEYS:
            raise SweepConfigError(f"unknown key sweep.{key}", _where(section, key, str(path)),
                                   f"known keys: {', '.join(SWEEP_KEYS)}")
    if "quantities" not in section:
        raise SweepConfigError("sweep.quantities is missing", _where(data, "sweep", str(path)),
                               "name the swept quantities and their values")
    spec, connectivity, kwargs, duration = _run_section(run, path)
    store = section.get("store")
    if store is not None:
        store = Path(store) if Path(store).is_absolute() else path.parent / str(store)
    return {"model": spec, "connectivity": connectivity, "base": kwargs, "duration": duration,
            "sweep": dict(section["quantities"]), "design": section.get("design", "grid"),
            "n_points": section.get("n_points"), "random_seed": section.get("random_seed", 0),
            "measures": dict(section.get("measures") or {}), "store": store,
            "scheduler": section.get("scheduler"), "workers": section.get("workers"),
            "chunk_points": section.get("chunk_points"),
            "_locations": (str(path), section)}


def _locate(error: SweepError, path: str, section: Mapping[str, Any]) -> SweepConfigError:
    """A SweepError from the API, placed at the config line it comes from."""
    message = str(error)
    quantities = section.get("quantities", {})
    location = _where(section, "quantities", path)
    for label in quantities:
        if f"'{label}'" in message:
            location = _where(quantities, label, path)
            break
    else:
        if message.startswith("measures"):
            location = _where(section, "measures", path)
    return SweepConfigError(message, location)


def add_sweep_command(subparsers: Any, **parser_options: Any) -> argparse.ArgumentParser:
    """Add `mfgen sweep` to an argparse subparsers object (`parser_options`: the CLI's parents
    and help formatter)."""
    description = ("Run a parameter sweep: a run config plus swept quantities and measures "
                   "(see docs/sweeps.md). Results go to an HDF5 file as points finish; running"
                   " the same command again resumes.")
    command = subparsers.add_parser(
        "sweep", help="run a parameter sweep from a config file (resumable)",
        description=description, **parser_options)
    command.add_argument("config", help="sweep config YAML (run: and sweep: sections)")
    command.add_argument("--store", help="HDF5 result file (default: the config's sweep.store)")
    command.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 "
                         "(default: the config's sweep.scheduler, else the local cores)")
    command.add_argument("--workers", type=int,
                         help="local cores (default: sweep.workers, else every core)")
    command.add_argument("--plot", metavar="OUT.png",
                         help="draw heat-maps of the measures over the first two quantities")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler=run_sweep_command)
    return command


def run_sweep_command(args: argparse.Namespace) -> int:
    """Handle `mfgen sweep`; returns the exit status (130 when interrupted)."""
    from mfgen.runtime.sweep import sweep
    from mfgen.runtime.sweep_plot import plot_sweep

    options = load_sweep_config(args.config)
    path, section = options.pop("_locations")
    if args.store:
        options["store"] = Path(args.store)
    if args.scheduler:
        options["scheduler"] = args.scheduler
    if args.workers is not None:
        if args.workers < 1:
            raise SweepConfigError(f"--workers must be at least 1, got {args.workers}",
                                   Location("<command line>"))
        options["workers"] = args.workers
    if options["store"] is None:
        raise SweepConfigError("no result file: set sweep.store or pass --store",
                               _where(section, "store", path))
    try:
        dataset = sweep(**options, progress=not args.quiet)
    except SweepError as exc:
        if isinstance(exc, SpecError):
            raise
        raise _locate(exc, path, section) from None
    except KeyboardInterrupt:
        return 130
    print(f"{dataset.attrs['n_done']} points done, {dataset.attrs['n_failed']} failed "
          f"({dataset.attrs['points_computed']} computed now, "
          f"{dataset.attrs['points_already_saved']} already saved) -> {options['store']}")
    if args.plot:
        print(f"heat-maps: {plot_sweep(dataset, args.plot)}")
    return 0
