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

The `run:` section is read by `_run_section` below, a small adapter the integration points at
`runtime/run_config.py` (the `mfgen run` reader) so both commands share one format.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.errors import Location, MfgenError, SpecError
from mfgen.runtime.sweep_design import SweepError

RUN_KEYS = ("description", "spec", "connectivity", "coupling", "local_coupling", "integrator",
            "dt", "duration", "noise", "parameters", "initial_state", "seed")
SWEEP_KEYS = ("design", "quantities", "n_points", "random_seed", "measures", "store",
              "scheduler", "workers", "chunk_points")


class SweepConfigError(SpecError):
    """A sweep config is invalid; the message starts with file:line:column."""


def _where(mapping: Any, key: str, path: str) -> Location:
    where = getattr(mapping, "where", None)
    location = where(key) if where else None
    return location or Location(path)


def _run_section(run: Mapping[str, Any], path: str, folder: Path
                 ) -> tuple[str, Any, dict[str, Any], float]:
    """(spec, connectivity, Simulation kwargs, duration) from a `run:` mapping."""
    from mfgen.runtime.connectivity import Connectivity

    for key in run:
        if key not in RUN_KEYS:
            hint = ("a sweep's monitor comes from sweep.measures" if key == "monitors"
                    else "the store is sweep.store" if key == "output"
                    else f"known keys: {', '.join(RUN_KEYS)}")
            raise SweepConfigError(f"unknown key run.{key}", _where(run, key, path), hint)
    if "spec" not in run:
        raise SweepConfigError("run.spec is missing", _where(run, "spec", path),
                               "name a bundled spec or a spec path")
    spec = str(run["spec"])
    if ("/" in spec or spec.endswith((".yaml", ".yml"))) and not Path(spec).is_absolute():
        spec = str(folder / spec)
    source = run.get("connectivity", "synthetic")
    options = source if isinstance(source, Mapping) else {"source": source}
    kind = str(options.get("source", "synthetic"))
    speed = float(options.get("speed", 4.0))
    if kind == "synthetic":
        connectivity = Connectivity.synthetic(int(options.get("regions", 68)),
                                              seed=int(options.get("seed", 42)), speed=speed)
    elif kind == "tvb-default":
        connectivity = Connectivity.tvb_default(speed=speed)
    elif kind == "none":
        connectivity = Connectivity.empty(int(options.get("regions", 1)))
    else:
        zip_path = Path(kind) if Path(kind).is_absolute() else folder / kind
        try:
            connectivity = Connectivity.from_zip(zip_path, speed=speed)
        except (OSError, ValueError, MfgenError) as exc:
            raise SweepConfigError(f"cannot read the connectivity '{zip_path}': {exc}",
                                   _where(run, "connectivity", path),
                                   "give synthetic, tvb-default, none or a TVB .zip") from None
    kwargs: dict[str, Any] = {}
    coupling = run.get("coupling")
    if isinstance(coupling, str):
        kwargs["coupling"] = coupling
    elif isinstance(coupling, Mapping):
        if "function" in coupling:
            kwargs["coupling"] = str(coupling["function"])
        if "parameters" in coupling:
            kwargs["coupling_parameters"] = dict(coupling["parameters"])
        if "precision" in coupling:
            kwargs["coupling_precision"] = str(coupling["precision"])
    for key in ("local_coupling", "integrator", "dt", "noise", "seed"):
        if key in run:
            kwargs[key] = run[key]
    if "parameters" in run:
        kwargs["parameters"] = {k: np.asarray(v, dtype=float) if isinstance(v, list) else v
                                for k, v in dict(run["parameters"]).items()}
    if "initial_state" in run:
        kwargs["initial_state"] = dict(run["initial_state"])  # resolved against the model
    duration = run.get("duration", 1000.0)
    return spec, connectivity, kwargs, float(duration)


def _initial_state(values: Mapping[str, Any], model: Any, n_regions: int) -> np.ndarray:
    state = np.empty((model.n_states, n_regions))
    for row, name in enumerate(model.state_variables):
        if name not in values:
            raise SweepError(f"run.initial_state: give a value for every state; '{name}' is "
                             "missing")
        state[row] = values[name]
    return state


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
    if not isinstance(run, Mapping) or not isinstance(section, Mapping):
        raise SweepConfigError("run: and sweep: must be mappings", Location(str(path)))
    for key in section:
        if key not in SWEEP_KEYS:
            raise SweepConfigError(f"unknown key sweep.{key}", _where(section, key, str(path)),
                                   f"known keys: {', '.join(SWEEP_KEYS)}")
    if "quantities" not in section:
        raise SweepConfigError("sweep.quantities is missing", _where(data, "sweep", str(path)),
                               "name the swept quantities and their values")
    spec, connectivity, kwargs, duration = _run_section(run, str(path), path.parent)
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


def add_sweep_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `mfgen sweep` to an argparse subparsers object."""
    command = subparsers.add_parser(
        "sweep", help="run a parameter sweep from a config file (resumable)",
        description="Run a parameter sweep: a run config plus swept quantities and measures "
                    "(see docs/sweeps.md). Results go to an HDF5 file as points finish; running"
                    " the same command again resumes.")
    command.add_argument("config", help="sweep config YAML (run: and sweep: sections)")
    command.add_argument("--store", help="HDF5 result file (overrides sweep.store)")
    command.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 "
                         "(overrides sweep.scheduler); default: the local cores")
    command.add_argument("--workers", type=int, help="local threads (default: every core)")
    command.add_argument("--plot", metavar="OUT.png",
                         help="draw heat-maps of the measures over the first two quantities")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler=run_sweep_command)
    return command


def run_sweep_command(args: argparse.Namespace) -> int:
    """Handle `mfgen sweep`; returns the exit status (130 when interrupted)."""
    from mfgen.runtime.loader import load
    from mfgen.runtime.sweep import sweep
    from mfgen.runtime.sweep_plot import plot_sweep

    options = load_sweep_config(args.config)
    path, section = options.pop("_locations")
    if args.store:
        options["store"] = Path(args.store)
    if args.scheduler:
        options["scheduler"] = args.scheduler
    if args.workers:
        options["workers"] = args.workers
    if options["store"] is None:
        raise SweepConfigError("no result file: set sweep.store or pass --store",
                               _where(section, "store", path))
    initial = options["base"].get("initial_state")
    try:
        if isinstance(initial, Mapping):
            model = load(options["model"])
            options["base"]["initial_state"] = _initial_state(
                initial, model, options["connectivity"].n_regions)
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


def main(argv: list[str] | None = None) -> int:
    """`python -m mfgen.runtime.sweep_config CONFIG` (until the CLI wires `mfgen sweep`)."""
    parser = argparse.ArgumentParser(prog="mfgen")
    add_sweep_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *(argv if argv is not None else sys.argv[1:])])
    try:
        return args.handler(args)
    except MfgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
