"""Simulation config files: one YAML file that says everything about a run.

    config = load_run_config("examples/tvb_adex.yaml", overrides=["duration=2000"])
    model, connectivity, simulation_kwargs, duration_ms = config.build()

The file is read with the spec loader (safe YAML, no aliases or tags, duplicate keys refused)
and every error names `file:line:column`. Relative paths in the file (spec, connectivity,
output) are relative to the file's own folder, so a config and its spec travel together.
"""

from __future__ import annotations

import copy
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.errors import Location, SpecError, did_you_mean
from mfgen.runtime.connectivity import TVB_SPEED

TOP_KEYS = ("description", "spec", "connectivity", "coupling", "local_coupling", "integrator",
            "dt", "duration", "noise", "parameters", "initial_state", "seed", "monitors",
            "output")
CONNECTIVITY_KEYS = ("source", "regions", "speed", "seed")
COUPLING_KEYS = ("function", "parameters", "precision")
MONITOR_KEYS = ("kind", "period", "variables", "name")
OUTPUT_KEYS = ("path", "chunk", "plot")
MONITOR_KINDS = {"raw": "raw", "subsample": "subsample", "sub": "subsample",
                 "temporal_average": "temporal_average", "tavg": "temporal_average"}
CONNECTIVITY_BUILTINS = ("synthetic", "tvb-default", "none")
MAX_REGIONS = 1_000_000
MAX_SYNTHETIC_REGIONS = 10_000  # the synthetic connectome is built dense: n^2 doubles, twice
MAX_MONITOR_PERIOD_STEPS = 2**31 - 1  # the kernel counts a monitor period in int32
DEFAULT_CHUNK_MS = 500.0


class ConfigError(SpecError):
    """A run config is invalid; the message starts with file:line:column."""


@dataclass
class MonitorConfig:
    kind: str
    period: float | None
    variables: tuple[str, ...] | None
    name: str
    where: Location | None = None


@dataclass
class RunConfig:
    """A validated run config. `mapping()` is its resolved, plain-data form (for provenance
    and `--save-config`); `build()` turns it into what `mfgen.Simulation` takes."""

    spec: str
    connectivity: str = "synthetic"
    regions: int = 68
    speed: float = TVB_SPEED
    connectivity_seed: int = 42
    coupling: str = "linear"
    coupling_parameters: dict[str, float] = field(default_factory=dict)
    coupling_precision: str = "float64"
    local_coupling: float = 0.0
    integrator: str = "heun"
    dt: float = 0.1
    duration: float = 1000.0
    noise: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    initial_state: dict[str, Any] | None = None
    seed: int = 0
    monitors: list[MonitorConfig] = field(default_factory=list)
    output: str | None = None
    plot: str | None = None
    chunk: float = DEFAULT_CHUNK_MS
    description: str = ""
    source: str = "<config>"
    base_dir: Path = field(default_factory=Path.cwd)
    locations: dict[str, Location | None] = field(default_factory=dict)

    # -- the plain-data form ------------------------------------------------------------------
    def mapping(self) -> dict[str, Any]:
        """The config as plain data, paths resolved: loading it again gives the same run."""
        data: dict[str, Any] = {}
        if self.description:
            data["description"] = self.description
        data["spec"] = self.spec_reference()
        connectivity: dict[str, Any] = {"source": self.connectivity_reference(),
                                        "speed": self.speed}
        if self.connectivity in ("synthetic", "none"):
            connectivity["regions"] = self.regions
        if self.connectivity == "synthetic":
            connectivity["seed"] = self.connectivity_seed
        data["connectivity"] = connectivity
        data["coupling"] = {"function": self.coupling, "parameters": dict(self.coupling_parameters),
                            "precision": self.coupling_precision}
        data["local_coupling"] = self.local_coupling
        data["integrator"] = self.integrator
        data["dt"] = self.dt
        data["duration"] = self.duration
        if self.noise:
            data["noise"] = dict(self.noise)
        if self.parameters:
            data["parameters"] = copy.deepcopy(self.parameters)
        if self.initial_state is not None:
            data["initial_state"] = copy.deepcopy(self.initial_state)
        data["seed"] = self.seed
        data["monitors"] = [{k: v for k, v in (("kind", m.kind), ("period", m.period),
                                                ("variables", list(m.variables or ()) or None),
                                                ("name", m.name)) if v not in (None, "")}
                            for m in self.monitors]
        output: dict[str, Any] = {"chunk": self.chunk}
        if self.output:
            output["path"] = str(self.resolve(self.output))
        if self.plot:
            output["plot"] = str(self.resolve(self.plot))
        data["output"] = output
        return data

    def spec_reference(self) -> str:
        if _is_path(self.spec):
            return str(self.resolve(self.spec))
        return self.spec

    def connectivity_reference(self) -> str:
        if self.connectivity in CONNECTIVITY_BUILTINS:
            return self.connectivity
        return str(self.resolve(self.connectivity))

    def resolve(self, path: str) -> Path:
        return (self.base_dir / path).resolve() if not Path(path).is_absolute() else Path(path)

    def where(self, key: str) -> Location:
        return self.locations.get(key) or Location(self.source)

    # -- turning it into a simulation ---------------------------------------------------------
    def load_model(self) -> Any:
        import mfgen

        return mfgen.load(self.spec_reference())

    def load_connectivity(self) -> Any:
        from mfgen.errors import MfgenError
        from mfgen.runtime.connectivity import Connectivity

        if self.connectivity == "synthetic":
            return Connectivity.synthetic(self.regions, seed=self.connectivity_seed,
                                          speed=self.speed)
        if self.connectivity == "tvb-default":
            return Connectivity.tvb_default(speed=self.speed)
        if self.connectivity == "none":
            return Connectivity.empty(self.regions)
        path = self.resolve(self.connectivity)
        try:
            return Connectivity.from_zip(path, speed=self.speed)
        except MfgenError as exc:
            raise ConfigError(str(exc), self.where("connectivity")) from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"cannot read the connectivity '{path}': {reason}",
                              self.where("connectivity"),
                              "give a TVB connectivity .zip (weights.txt, tract_lengths.txt)") \
                from None

    def build(self, model: Any = None) -> tuple[Any, Any, dict[str, Any], float]:
        """(model, connectivity, simulation_kwargs, duration_ms); names checked against the
        model with the config's locations."""
        model = model if model is not None else self.load_model()
        connectivity = self.load_connectivity()
        n = connectivity.n_regions
        states = model.state_variables

        def known(name: str, names: Sequence[str], what: str, key: str) -> None:
            if name not in names:
                hint = did_you_mean(name, names) or f"{what}s of {model.name}: {', '.join(names)}"
                raise ConfigError(f"unknown {what} '{name}'", self.where(key), hint)

        for name in self.parameters:
            known(name, list(model.parameter_info), "parameter", f"parameters.{name}")
        for name in self.noise:
            known(name, states, "state variable", f"noise.{name}")
        couplings = model.manifest["couplings"]
        names = [c["name"] for c in couplings]
        known(self.coupling, names, "coupling function", "coupling.function")
        coupling_parameters = [p[0] for p in couplings[names.index(self.coupling)]["parameters"]]
        for name in self.coupling_parameters:
            known(name, coupling_parameters, f"parameter of coupling '{self.coupling}'",
                  f"coupling.parameters.{name}")
        monitors = []
        from mfgen.runtime.simulation import Monitor

        for index, monitor in enumerate(self.monitors):
            observables = list(model.manifest.get("observables", []))
            for variable in monitor.variables or ():
                known(variable, [*states, *observables],
                      "state variable or observable" if observables else "state variable",
                      f"monitors.{index}")
            monitors.append(Monitor(monitor.kind, monitor.period, monitor.variables,
                                    monitor.name))
        parameters = {}
        for name, value in self.parameters.items():
            parameters[name] = np.asarray(value, dtype=np.float64) if isinstance(value, list) \
                else float(value)
        initial = None
        if self.initial_state is not None:
            initial = self._initial_state(model, n)
        kwargs: dict[str, Any] = {
            "coupling": self.coupling, "coupling_parameters": dict(self.coupling_parameters),
            "coupling_precision": self.coupling_precision, "integrator": self.integrator,
            "dt": self.dt, "noise": dict(self.noise) or None, "monitors": monitors,
            "initial_state": initial, "seed": self.seed, "parameters": parameters,
            "local_coupling": self.local_coupling,
        }
        return model, connectivity, kwargs, self.duration

    def _initial_state(self, model: Any, n: int) -> np.ndarray:
        # States not named start like mfgen's default: uniform in the spec's range, drawn from
        # the run's seed, so naming one state does not change how the others start.
        modes = int(getattr(model, "n_modes", 1))
        if modes != 1:  # TVB's layout (n_state, n_regions, n_modes)
            from mfgen.runtime.modes_simulation import random_initial_state

            state = random_initial_state(model, n, self.seed)
            for name, value in (self.initial_state or {}).items():
                self._modal_initial(model, state, name, value, n, modes)
            return state
        from mfgen.runtime.model import uniform_states

        state = uniform_states(model, n, self.seed)
        for name, value in (self.initial_state or {}).items():
            key = f"initial_state.{name}"
            if name not in model.state_variables:
                hint = did_you_mean(name, model.state_variables) or \
                    f"states of {model.name}: {', '.join(model.state_variables)}"
                raise ConfigError(f"unknown state variable '{name}'", self.where(key), hint)
            values = np.asarray(value, dtype=np.float64)
            if values.ndim == 1 and values.shape[0] != n:
                raise ConfigError(f"initial_state '{name}' has {values.shape[0]} values for "
                                  f"{n} regions", self.where(key),
                                  "give one number for every region, or one per region")
            state[model.state_variables.index(name)] = values
        return state

    def _modal_initial(self, model: Any, state: np.ndarray, name: str, value: Any, n: int,
                       modes: int) -> None:
        """One state of a model with modes: a number (every region and mode), one value per
        region (all its modes), one row of n_modes values (every region) or n_regions rows
        of n_modes values."""
        key = f"initial_state.{name}"
        if name not in model.state_variables:
            hint = did_you_mean(name, model.state_variables) or \
                f"states of {model.name}: {', '.join(model.state_variables)}"
            raise ConfigError(f"unknown state variable '{name}'", self.where(key), hint)
        try:
            values = np.asarray(value, dtype=np.float64)
        except ValueError:  # ragged rows
            values = np.zeros((0, 0))
        index = model.state_variables.index(name)
        if values.ndim == 0:
            state[index] = values
        elif values.shape == (n,):
            state[index] = values[:, None]
        elif values.shape in ((1, modes), (n, modes)):
            state[index] = values
        else:
            raise ConfigError(f"initial_state '{name}' must be a number, {n} values (one per "
                              f"region), or rows of {modes} values (one per mode: one row for "
                              f"every region, or {n} rows)", self.where(key),
                              f"e.g. {name}: [[0.1, 0.2, 0.3]] for {modes} modes"
                              if modes == 3 else "")


# -- reading ---------------------------------------------------------------------------------
def load_run_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read and validate a run config file; `overrides` are `key.sub=value` texts (--set)."""
    from mfgen.codegen.yaml_source import MAX_SPEC_BYTES, load_yaml

    path = Path(path)
    where = Location(str(path))
    try:
        if not path.is_file():
            raise ConfigError("no such config file" if not path.exists() else
                              "not a regular file", where, "give the path of a .yaml run config")
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where,
                          "save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config: {exc.strerror}", where,
                          "check the path and its permissions") from None
    data = load_yaml(text, str(path))
    for override in overrides:
        _apply_override(data, override)
    config = parse_run_config(data, str(path), base_dir=path.resolve().parent)
    return config


def _apply_override(data: Any, override: str) -> None:
    from mfgen.codegen.yaml_source import PositionedDict, load_yaml

    key, sep, value = override.partition("=")
    where = Location(f"--set {override}")
    if not sep or not key.strip():
        raise ConfigError("an override is written key=value (nested keys with dots)", where,
                          "e.g. --set duration=2000 or --set parameters.E_L_e=-63")
    parts = [p.strip() for p in key.split(".")]
    if any(not p for p in parts):
        raise ConfigError(f"empty key part in '{key}'", where, "write keys like a.b.c")
    parsed = load_yaml(f"value: {value}" if value.strip() else "value: null", where.path)["value"]
    node = data
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if child is None or isinstance(child, str) and part in ("connectivity", "coupling"):
            # `connectivity: tvb-default` shorthand becomes a mapping to set a sub-key.
            fresh = PositionedDict()
            if isinstance(child, str):
                fresh["source" if part == "connectivity" else "function"] = child
            node[part] = fresh
            node.key_locations[part] = where
            child = fresh
        if not isinstance(child, dict):
            raise ConfigError(f"'{part}' is not a mapping, so '{key}' cannot be set", where,
                              f"set '{part}' itself")
        node = child
    node[parts[-1]] = parsed
    if isinstance(node, PositionedDict):
        node.key_locations[parts[-1]] = where
        node.value_locations[parts[-1]] = where


def parse_run_config(mapping: Mapping[str, Any], source: str, *,
                     base_dir: Path | None = None) -> RunConfig:
    """Validate a config mapping (from a file, or built from command-line flags)."""
    reader = _Reader(source)
    if not isinstance(mapping, Mapping):
        raise ConfigError("a run config is a mapping of settings (spec:, duration:, ...)",
                          Location(source, 1), "see examples/tvb_adex.yaml")
    reader.keys(mapping, TOP_KEYS, "the config", required=("spec",))
    config = RunConfig(spec="", source=source, base_dir=base_dir or Path.cwd())
    loc = config.locations
    config.description = reader.text(mapping, "description", "", loc)
    config.spec = reader.text(mapping, "spec", None, loc)

    connectivity = mapping.get("connectivity", "synthetic")
    if isinstance(connectivity, str):
        config.connectivity = connectivity
        loc["connectivity"] = reader.value_at(mapping, "connectivity")
    else:
        section = reader.section(mapping, "connectivity")
        reader.keys(section, CONNECTIVITY_KEYS, "connectivity")
        config.connectivity = reader.text(section, "source", "synthetic", loc, "connectivity")
        config.regions = reader.integer(section, "regions", 68, 1, MAX_REGIONS, loc,
                                        "connectivity.regions")
        config.speed = reader.number(section, "speed", TVB_SPEED, loc, "connectivity.speed",
                                     positive=True)
        config.connectivity_seed = reader.integer(section, "seed", 42, 0, 2**32 - 1, loc,
                                                  "connectivity.seed")
        if config.connectivity == "synthetic" and config.regions > MAX_SYNTHETIC_REGIONS:
            raise ConfigError(f"a synthetic connectome of {config.regions} regions would take "
                              f"{2 * 8 * config.regions**2 / 2**30:.0f} GiB (it is dense); at "
                              f"most {MAX_SYNTHETIC_REGIONS}", reader.value_at(section, "regions"),
                              "use source: none, or a connectivity .zip")
        if config.connectivity not in ("synthetic", "none") and "regions" in section:
            raise ConfigError("regions applies only to synthetic and none connectivity",
                              reader.key_at(section, "regions"),
                              "remove it: a connectivity file sets the number of regions")
    if not config.connectivity:
        raise ConfigError("connectivity source is empty", config.where("connectivity"),
                          f"use {', '.join(CONNECTIVITY_BUILTINS)} or a .zip path")

    coupling = mapping.get("coupling", "linear")
    if isinstance(coupling, str):
        config.coupling = coupling
        loc["coupling.function"] = reader.value_at(mapping, "coupling")
    else:
        section = reader.section(mapping, "coupling")
        reader.keys(section, COUPLING_KEYS, "coupling")
        config.coupling = reader.text(section, "function", "linear", loc, "coupling.function")
        config.coupling_parameters = reader.numbers(section, "parameters", loc,
                                                    "coupling.parameters")
        config.coupling_precision = reader.choice(section, "precision", "float64",
                                                  ("float64", "float32"), loc,
                                                  "coupling.precision")
    config.local_coupling = reader.number(mapping, "local_coupling", 0.0, loc)
    config.integrator = reader.text(mapping, "integrator", "heun", loc)
    _check_integrator(config, reader)
    config.dt = reader.number(mapping, "dt", 0.1, loc, positive=True)
    config.duration = reader.number(mapping, "duration", 1000.0, loc, positive=True)
    steps = round(config.duration / config.dt)
    if abs(steps * config.dt - config.duration) > 1e-9 * config.duration:
        raise ConfigError(f"duration {config.duration:g} ms is not a multiple of dt = "
                          f"{config.dt:g} ms", config.where("duration"),
                          f"use e.g. {steps * config.dt:g}")
    if steps > 2**62:
        raise ConfigError(f"duration / dt = {steps:.3g} steps is too many",
                          config.where("duration"), "check the units (ms)")
    config.noise = reader.numbers(mapping, "noise", loc, "noise", non_negative=True)
    config.parameters = reader.parameter_values(mapping, "parameters", loc)
    if mapping.get("initial_state") is not None:
        config.initial_state = reader.parameter_values(mapping, "initial_state", loc)
    config.seed = reader.integer(mapping, "seed", 0, 0, 2**63 - 1, loc)
    config.monitors = reader.monitors(mapping, config)
    if "output" in mapping and mapping["output"] is not None:
        if isinstance(mapping["output"], str):
            config.output = mapping["output"]
            loc["output.path"] = reader.value_at(mapping, "output")
        else:
            section = reader.section(mapping, "output")
            reader.keys(section, OUTPUT_KEYS, "output")
            config.output = reader.text(section, "path", None, loc, "output.path") \
                if section.get("path") is not None else None
            config.plot = reader.text(section, "plot", None, loc, "output.plot") \
                if section.get("plot") is not None else None
            config.chunk = reader.number(section, "chunk", DEFAULT_CHUNK_MS, loc,
                                         "output.chunk", positive=True)
    return config


def _check_integrator(config: RunConfig, reader: _Reader) -> None:
    from mfgen.codegen.integrators import INTEGRATORS  # the registry the generator compiles

    names = tuple(INTEGRATORS)
    if config.integrator not in names:
        raise ConfigError(f"unknown integrator '{config.integrator}'",
                          config.where("integrator"),
                          did_you_mean(config.integrator, names) or
                          f"integrators: {', '.join(names)}")


def _is_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))


class _Reader:
    """Typed access to a positioned mapping; every failure is a ConfigError with a place."""

    def __init__(self, source: str):
        self.source = source

    def key_at(self, data: Any, key: str) -> Location:
        where = data.where(key) if hasattr(data, "where") else None
        return where or Location(self.source)

    def value_at(self, data: Any, key: str) -> Location:
        where = data.value_where(key) if hasattr(data, "value_where") else None
        return where or Location(self.source)

    def keys(self, data: Mapping[str, Any], allowed: Sequence[str], what: str,
             required: Sequence[str] = ()) -> None:
        for key in data:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"{what} takes: {', '.join(allowed)}"
                raise ConfigError(f"unknown key '{key}' in {what}", self.key_at(data, key), hint)
        for key in required:
            if key not in data:
                where = getattr(data, "location", None) or Location(self.source)
                raise ConfigError(f"{what} needs '{key}'", where,
                                  "e.g. spec: tvb_adex_first_order (a bundled name or a path)")

    def section(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a mapping, got {_kind(value)}",
                              self.value_at(data, key), f"write {key}: {{name: value, ...}}")
        return value

    def text(self, data: Mapping[str, Any], key: str, default: str | None,
             loc: dict[str, Location | None], name: str | None = None) -> str:
        name = name or key
        loc[name] = self.value_at(data, key)
        if key not in data:
            if default is None:
                raise ConfigError(f"'{name}' is required", self.key_at(data, key), "")
            return default
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"'{name}' must be text, got {_kind(value)}",
                              self.value_at(data, key), "quote it if it looks like a number")
        return value

    def choice(self, data: Mapping[str, Any], key: str, default: str, options: Sequence[str],
               loc: dict[str, Location | None], name: str) -> str:
        value = self.text(data, key, default, loc, name)
        if value not in options:
            raise ConfigError(f"'{name}' must be one of {', '.join(options)}, got '{value}'",
                              self.value_at(data, key), did_you_mean(value, options))
        return value

    def number(self, data: Mapping[str, Any], key: str, default: float,
               loc: dict[str, Location | None], name: str | None = None, *,
               positive: bool = False) -> float:
        name = name or key
        loc[name] = self.value_at(data, key)
        if key not in data:
            return default
        return self._number(data[key], self.value_at(data, key), name, positive=positive)

    def _number(self, value: Any, where: Location, name: str, *, positive: bool = False,
                non_negative: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{name}' must be a number, got {_kind(value)}", where,
                              "write a plain number such as 0.1 or 1e-3")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"'{name}' must be finite, got {value}", where, "")
        if positive and number <= 0:
            raise ConfigError(f"'{name}' must be positive, got {value}", where, "")
        if non_negative and number < 0:
            raise ConfigError(f"'{name}' must not be negative, got {value}", where, "")
        return number

    def integer(self, data: Mapping[str, Any], key: str, default: int, low: int, high: int,
                loc: dict[str, Location | None], name: str | None = None) -> int:
        name = name or key
        loc[name] = self.value_at(data, key)
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{name}' must be a whole number, got {_kind(value)}",
                              self.value_at(data, key), "")
        if not low <= value <= high:
            raise ConfigError(f"'{name}' must be between {low} and {high}, got {value}",
                              self.value_at(data, key), "")
        return value

    def numbers(self, data: Mapping[str, Any], key: str, loc: dict[str, Location | None],
                name: str, *, non_negative: bool = False) -> dict[str, float]:
        if data.get(key) is None:
            return {}
        section = self.section(data, key)
        result = {}
        for entry, value in section.items():
            where = self.value_at(section, entry)
            loc[f"{name}.{entry}"] = self.key_at(section, entry)
            result[entry] = self._number(value, where, f"{name}.{entry}",
                                         non_negative=non_negative)
        return result

    def parameter_values(self, data: Mapping[str, Any], key: str,
                         loc: dict[str, Location | None]) -> dict[str, Any]:
        """name: number, or a list (a vector parameter, or one value per region)."""
        if data.get(key) is None:
            return {}
        section = self.section(data, key)
        result: dict[str, Any] = {}
        for entry, value in section.items():
            where = self.value_at(section, entry)
            loc[f"{key}.{entry}"] = self.key_at(section, entry)
            if isinstance(value, list):
                rows = []
                for index, item in enumerate(value):
                    item_where = item_location(value, index, where)
                    if isinstance(item, list):
                        rows.append([self._number(x, item_location(item, j, item_where),
                                                  f"{key}.{entry}[{index}][{j}]")
                                     for j, x in enumerate(item)])
                    else:
                        rows.append(self._number(item, item_where, f"{key}.{entry}[{index}]"))
                if not rows:
                    raise ConfigError(f"'{key}.{entry}' is an empty list", where,
                                      "give a number, or one value per region")
                result[entry] = rows
            else:
                result[entry] = self._number(value, where, f"{key}.{entry}")
        return result

    def monitors(self, data: Mapping[str, Any], config: RunConfig) -> list[MonitorConfig]:
        if data.get("monitors") is None:
            return [MonitorConfig("temporal_average", 1.0, None, "")]
        items = data["monitors"]
        where = self.value_at(data, "monitors")
        if not isinstance(items, list) or not items:
            raise ConfigError("'monitors' must be a list of monitors", where,
                              "e.g. monitors: [{kind: temporal_average, period: 1.0}]")
        monitors = []
        for index, item in enumerate(items):
            item_where = item_location(items, index, where)
            config.locations[f"monitors.{index}"] = item_where
            if isinstance(item, str):
                item = {"kind": item}
            if not isinstance(item, Mapping):
                raise ConfigError(f"monitor {index + 1} must be a mapping, got {_kind(item)}",
                                  item_where, "e.g. {kind: raw, variables: [E, I]}")
            self.keys(item, MONITOR_KEYS, f"monitor {index + 1}", required=())
            loc: dict[str, Location | None] = {}
            kind_text = self.text(item, "kind", None, loc, "kind") if "kind" in item else None
            if kind_text is None:
                raise ConfigError(f"monitor {index + 1} needs a kind", item_where,
                                  f"kinds: {', '.join(sorted(set(MONITOR_KINDS.values())))}")
            if kind_text not in MONITOR_KINDS:
                raise ConfigError(f"unknown monitor kind '{kind_text}'",
                                  self.value_at(item, "kind"),
                                  did_you_mean(kind_text, MONITOR_KINDS) or
                                  "kinds: raw, subsample, temporal_average")
            kind = MONITOR_KINDS[kind_text]
            period = None
            if kind == "raw":
                if "period" in item:
                    raise ConfigError("a raw monitor records every step; it takes no period",
                                      self.key_at(item, "period"), "remove period, or use "
                                      "kind: subsample")
            else:
                if "period" not in item:
                    raise ConfigError(f"monitor {index + 1} ({kind}) needs a period (ms)",
                                      item_where, "e.g. period: 1.0")
                period = self.number(item, "period", 1.0, loc, "period", positive=True)
                steps = round(period / config.dt)
                if steps > MAX_MONITOR_PERIOD_STEPS:
                    raise ConfigError(f"monitor period {period:g} ms is {steps:.3g} steps; at "
                                      f"most {MAX_MONITOR_PERIOD_STEPS} are supported",
                                      self.value_at(item, "period"), "check the unit (ms)")
                if steps < 1 or abs(steps * config.dt - period) > 1e-9 * period:
                    raise ConfigError(f"monitor period {period:g} ms is not a multiple of dt "
                                      f"= {config.dt:g} ms", self.value_at(item, "period"),
                                      f"use a multiple such as {max(steps, 1) * config.dt:g}")
            variables = None
            if item.get("variables") is not None:
                names = item["variables"]
                if isinstance(names, str):
                    names = [names]
                if not isinstance(names, list) or not names or \
                        not all(isinstance(n, str) for n in names):
                    raise ConfigError("monitor variables must be a list of state names",
                                      self.value_at(item, "variables"), "e.g. [E, I]")
                variables = tuple(names)
            name = self.text(item, "name", "", loc, "name") if "name" in item else ""
            monitors.append(MonitorConfig(kind, period, variables, name, item_where))
        labels = [m.name or m.kind for m in monitors]
        for index, label in enumerate(labels):
            if labels.index(label) != index:
                raise ConfigError(f"two monitors are labelled '{label}'",
                                  monitors[index].where, "give each a distinct name:")
        return monitors


def item_location(items: Any, index: int, fallback: Location) -> Location:
    locations = getattr(items, "locations", None)
    if locations and index < len(locations):
        return locations[index]
    return fallback


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {value} (write a number)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text '{value}'"
    return f"{type(value).__name__} {value!r}"
