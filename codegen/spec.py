"""Stage 1: read a spec file (and what it extends) into a validated, positioned `ModelSpec`.

This stage checks structure only: known keys, types, names, numbers, ranges. Expressions stay
text here; `ir.py` parses them once every name in the model is known.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfgen.codegen.expressions import parse_expression
from mfgen.codegen.locate import bundled_spec_dir, read_spec_bytes, resolve_spec_path
from mfgen.codegen.names import check_name as _check_name_text
from mfgen.codegen.names import unknown_key
from mfgen.codegen.records import MODES, Parameter, State
from mfgen.codegen.yaml_source import PositionedDict, PositionedList, load_yaml
from mfgen.errors import Location, SpecError

MAX_EXTENDS_DEPTH = 8
MAX_EXTENDS_ENTRIES = 16  # parents named by one spec
MAX_SPEC_FILES = 64  # distinct files one model may be assembled from
MAX_VECTOR_SIZE = 256
MAX_MODES = 16  # a mode matrix has modes**2 elements, each a kernel parameter slot
# Generated names repeat the spec's names (F__1__mu__d__x ...): long ones make the generated
# source, and the cache, grow many times faster than the spec.
MAX_NAME_CHARS = 64
TOP_LEVEL_KEYS = ["name", "description", "references", "extends", "modes", "parameters",
                  "state_variables", "coupling", "functions", "derived", "derivatives",
                  "couplings", "observables", "multiplicative_noise"]
PARAMETER_KEYS = ["default", "shape", "range", "unit", "description"]
STATE_KEYS = ["range", "boundaries", "check_range", "unit", "description"]
FUNCTION_KEYS = ["args", "derived", "return", "description", "derivatives"]
DERIVATIVE_METHOD_KEYS = ["method", "step"]
_ARG = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\[([0-9]{1,6})\])?\Z")


@dataclass(frozen=True)
class Expression:
    """Expression text with the place it was written."""

    text: Any
    where: Location | None


@dataclass(frozen=True)
class DerivativeMethod:
    """How a function's partial derivatives are taken: exactly, or by the seeds' stencil."""

    method: str = "symbolic"  # or "finite_difference"
    step: float = 0.0


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    args: tuple[tuple[str, int | None], ...]  # (name, vector size or None)
    derived: tuple[tuple[str, Expression], ...]
    result: Expression
    derivatives: DerivativeMethod
    description: str
    where: Location | None


@dataclass
class ModelSpec:
    name: str
    description: str
    references: list[str]
    parameters: dict[str, Parameter] = field(default_factory=dict)
    states: dict[str, State] = field(default_factory=dict)
    coupling: dict[str, tuple[str, Location | None]] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    derived: dict[str, Expression] = field(default_factory=dict)
    derivatives: dict[str, Expression] = field(default_factory=dict)
    # coupling functions the model brings (`couplings:`, the coupling file format)
    couplings: dict[str, Any] = field(default_factory=dict)
    # expressions of the states a monitor can record (TVB's variables_of_interest x2 - x1)
    observables: dict[str, Expression] = field(default_factory=dict)
    # state: b(x), TVB's Multiplicative noise: the state's noise gain is sqrt(2 nsig) * b(x)
    multiplicative_noise: dict[str, Expression] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)
    where: Location | None = None
    # TVB's number_of_modes: states, coupling inputs and equations are per mode (None: not
    # written, one mode)
    modes: int | None = None
    modes_where: Location | None = None
    source_digest: str = ""
    # (spec file, name written in its 'extends', file it resolved to): the cache checks that
    # every name still resolves to the same file.
    resolutions: list[tuple[str, str, str]] = field(default_factory=list)
    source_sha256: list[str] = field(default_factory=list)  # of the bytes parsed, per source


@dataclass
class _Loading:
    """State shared by the files of one `load_spec` call.

    `roots`: where parents may live (the loaded spec's folder and the bundled specs), so a
    spec cannot make mfgen read arbitrary files (`extends: /proc/self/environ`) and echo
    them in error messages. `loaded`: every file is read and validated once, however often
    it is extended (diamonds), so a small set of files cannot cost exponential time.
    """

    roots: tuple[Path, ...]
    loaded: dict[Path, ModelSpec] = field(default_factory=dict)
    resolutions: list[tuple[str, str, str]] = field(default_factory=list)
    contents: dict[Path, bytes] = field(default_factory=dict)


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Read a spec (following `extends`) into a ModelSpec; raises SpecError with a location."""
    path = resolve_spec_path(name_or_path)
    roots = tuple(dict.fromkeys([path.parent, bundled_spec_dir().resolve()]))
    loading = _Loading(roots)
    spec = _load_file(path, chain=(), loading=loading)
    digest = hashlib.sha256()
    for source in spec.sources:  # the bytes that were parsed, not a second read
        digest.update(str(source).encode() + b"\0" + loading.contents[source] + b"\0")
    spec.source_digest = digest.hexdigest()
    spec.resolutions = list(loading.resolutions)
    spec.source_sha256 = [hashlib.sha256(loading.contents[p]).hexdigest() for p in spec.sources]
    return spec


def check_name(name: object, where: Location | None, kind: str) -> str:
    """names.check_name plus the length limit (see MAX_NAME_CHARS)."""
    if isinstance(name, str) and len(name) > MAX_NAME_CHARS:
        raise SpecError(f"the {kind} name '{name[:20]}...' has {len(name)} characters; names "
                        f"are limited to {MAX_NAME_CHARS}", where, "use a shorter name")
    return _check_name_text(name, where, kind)


def _read_text(path: Path, loading: _Loading | None = None) -> str:
    raw = read_spec_bytes(path)  # a regular file within the size limit, else a SpecError
    if loading is not None:
        loading.contents[path] = raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError("the file is not valid UTF-8", Location(str(path), line),
                        "save it as UTF-8 text") from None


def _load_file(path: Path, chain: tuple[Path, ...], loading: _Loading) -> ModelSpec:
    if path in loading.loaded:
        return loading.loaded[path]
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise SpecError("'extends' chain is too deep", Location(str(path)),
                        f"at most {MAX_EXTENDS_DEPTH} levels of specs extending specs")
    if len(loading.loaded) >= MAX_SPEC_FILES:
        raise SpecError(f"the model is assembled from more than {MAX_SPEC_FILES} spec files",
                        Location(str(path)), "merge some of the parent specs")
    data = load_yaml(_read_text(path, loading), str(path))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise unknown_key(key, TOP_LEVEL_KEYS, data.where(key), "the spec")

    spec = ModelSpec(name="", description="", references=[], where=data.location)
    parents = data.get("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list):
        raise SpecError("'extends' must be a spec name or a list of them", data.where("extends"))
    if len(parents) > MAX_EXTENDS_ENTRIES:
        raise SpecError(f"'extends' names {len(parents)} specs; at most {MAX_EXTENDS_ENTRIES} "
                        "are allowed", data.where("extends"), "merge some of the parent specs")
    for index, parent in enumerate(parents):
        where = _item_location(parents, index, data.value_where("extends"))
        if not isinstance(parent, str):
            raise SpecError(f"'extends' entries must be spec names, got {parent!r}", where)
        outside = SpecError(
            f"'extends' may name bundled specs and spec files in {loading.roots[0]} or its "
            f"subfolders; '{parent}' is not one of them", where,
            "copy the parent spec next to the spec you load (a spec must not make mfgen read "
            "files elsewhere)")
        try:
            parent_path = resolve_spec_path(parent, relative_to=path)
        except SpecError as exc:
            # The same answer whether or not a file outside exists: a spec must not be able
            # to probe the file system through error messages.
            if _names_outside(parent, path.parent) or _is_link(parent, path.parent):
                raise outside from None
            raise SpecError(exc.bare_message, where, exc.hint) from None
        if not any(parent_path.is_relative_to(root) for root in loading.roots):
            raise outside  # never says where it resolved to (symlink targets stay private)
        loading.resolutions.append((str(path), parent, str(parent_path)))
        if parent_path in (*chain, path):
            cycle = " -> ".join(p.name for p in (*chain, path, parent_path))
            raise SpecError(f"'extends' forms a cycle: {cycle}", where,
                            "remove one of the extends entries")
        _merge(spec, _load_file(parent_path, (*chain, path), loading))
    spec.sources.append(path)

    if "name" in data:
        spec.name = check_name(data["name"], data.value_where("name"), "model")
    spec.description = _text(data, "description")
    spec.references = _text_list(data, "references")
    own = ModelSpec(name=spec.name, description=spec.description, references=spec.references)
    if "modes" in data:
        own.modes, own.modes_where = _modes(data), data.value_where("modes")
    own.parameters = _parameters(data, own.modes or spec.modes or 1)
    own.states = _states(data)
    own.coupling = _coupling(data)
    own.functions = _functions(data)
    own.derived = _expressions(data, "derived", "derived expression")
    own.derivatives = _expressions(data, "derivatives", "derivative", check=False)
    own.couplings = _couplings(data)
    own.observables = _expressions(data, "observables", "observable")
    own.multiplicative_noise = _expressions(data, "multiplicative_noise",
                                            "multiplicative noise")
    _merge(spec, own)
    loading.loaded[path] = spec
    return spec


def _names_outside(name: str, folder: Path) -> bool:
    """Whether an 'extends' entry names a path outside `folder` (absolute, or through ..)."""
    if os.path.isabs(name):
        return True
    return os.path.normpath(name).split(os.sep)[0] == ".."


def _is_link(name: str, folder: Path) -> bool:
    """Whether a name resolves through a symbolic link that leads nowhere: answered like a
    link out of the folder, so a message never tells whether its target exists."""
    for candidate in (folder / name, folder / f"{name}.yaml", folder / "lib" / f"{name}.yaml"):
        try:
            if candidate.is_symlink():
                return True
        except (OSError, ValueError):
            continue
    return False


def _merge(into: ModelSpec, other: ModelSpec) -> None:
    """Later definitions replace earlier ones of the same name (how `extends` overrides)."""
    into.parameters.update(other.parameters)
    if other.states and set(into.states) <= set(other.states):
        # A spec that restates every inherited state variable restates their order too
        # (a second-order model puts its covariances between the rates and W).
        into.states.clear()
    into.states.update(other.states)
    into.coupling.update(other.coupling)
    into.functions.update(other.functions)
    into.derived.update(other.derived)
    into.derivatives.update(other.derivatives)
    into.couplings.update(other.couplings)
    into.observables.update(other.observables)
    into.multiplicative_noise.update(other.multiplicative_noise)
    if other.modes is not None:
        into.modes, into.modes_where = other.modes, other.modes_where
    for source in other.sources:
        if source not in into.sources:
            into.sources.append(source)


# -- sections --------------------------------------------------------------------------------
def _couplings(data: PositionedDict) -> dict[str, Any]:
    """The spec's own coupling functions (codegen/coupling.py's format), compiled into the
    model's module; their names must not hide a bundled coupling."""
    from mfgen.codegen.coupling import coupling_functions_from, load_coupling_functions

    section = _section(data, "couplings")
    functions = coupling_functions_from(section)
    bundled = load_coupling_functions()
    for name in functions:
        if name in bundled:
            raise SpecError(f"coupling function '{name}' is already a bundled coupling",
                            section.where(name), "give yours another name")
    return functions


def _section(data: PositionedDict, key: str) -> PositionedDict:
    value = data.get(key)
    if value is None:
        return PositionedDict()
    if not isinstance(value, PositionedDict):
        raise SpecError(f"'{key}' must be a mapping of names to definitions",
                        data.where(key), f"write '{key}:' followed by indented 'name: ...' lines")
    return value


def _text(data: PositionedDict, key: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise SpecError(f"'{key}' must be text", data.where(key))
    return str(value)


def _text_list(data: PositionedDict, key: str) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"'{key}' must be a list of text entries", data.where(key))
    return list(value)


def _number(value: Any, where: Location | None, what: str, constant: bool = False) -> float:
    """A finite number; with `constant`, text is a constant expression (ranges: '2*pi')."""
    if constant and isinstance(value, str) and where is not None:
        value = constant_value(value, where, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number, got {value!r}", where,
                        "write a plain number such as 0.5 or -65")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond 1.8e308
        number = math.inf
    if not math.isfinite(number):
        shown = repr(value) if isinstance(value, float) else "an integer beyond 1.8e308"
        raise SpecError(f"{what} must be finite, got {shown}", where, "use a finite number")
    return number


class _NoNames:
    """The scope of a constant expression: numbers, pi and functions of them, no names."""

    def symbol(self, name: str, where: Location) -> Any:
        raise SpecError(f"'{name}' is not a constant", where,
                        "ranges and bounds may use numbers, pi and functions of "
                        "them (e.g. 2*pi), not names")

    def call(self, name: str, args: list, where: Location) -> Any:
        raise SpecError(f"'{name}' cannot be called in a constant", where,
                        "only built-in functions such as exp or sqrt")

    def derivative(self, name: str, wrt: list, args: list, where: Location) -> Any:
        raise SpecError("a constant cannot take derivatives", where)


def constant_value(text: str, where: Location, what: str) -> float:
    """A constant expression (`2*pi`, `-exp(1)`) as a finite double, for ranges and bounds.

    Parsed by the expression language (never eval); any name is an error."""
    expr = parse_expression(text, where, _NoNames())
    if not expr.is_number:
        raise SpecError(f"{what} must be a constant", where, "write e.g. 2*pi")
    try:
        return float(expr)
    except (TypeError, ValueError, OverflowError):
        raise SpecError(f"{what} is not a finite real number: '{text}'", where,
                        "use a finite real constant") from None


def _is_open(value: Any) -> bool:
    """An open end of a boundary: null, or TVB's infinity (.inf / -.inf in YAML)."""
    return value is None or (isinstance(value, float) and math.isinf(value))


def _pair(value: Any, where: Location | None, what: str, allow_open: bool = False) -> tuple:
    if not isinstance(value, list) or len(value) != 2:
        raise SpecError(f"{what} must be a list of two numbers [low, high], got {value!r}", where)
    locations = getattr(value, "locations", None) or [where, where]
    pair = tuple(None if (allow_open and _is_open(v))
                 else _number(v, w or where, what, constant=True)
                 for v, w in zip(value, locations))
    if value[0] == math.inf or value[1] == -math.inf:
        raise SpecError(f"{what} has low +inf or high -inf", where,
                        "an open lower end is -.inf (or null), an open upper end .inf")
    if pair[0] is not None and pair[1] is not None and pair[0] > pair[1]:
        raise SpecError(f"{what} has low {pair[0]} above high {pair[1]}", where,
                        "write [low, high]")
    if not allow_open and not math.isfinite(pair[1] - pair[0]):
        # Sampling in it (mfgen check, random initial states) computes high - low.
        raise SpecError(f"{what} [{pair[0]:g}, {pair[1]:g}] is wider than a double can hold",
                        where, "use a range narrower than about 1.8e308")
    return pair


def _mapping_entry(section: PositionedDict, name: str, keys: list[str], context: str,
                   shorthand: str) -> PositionedDict:
    entry = section[name]
    if not isinstance(entry, PositionedDict):
        wrapped = PositionedDict({shorthand: entry})
        wrapped.key_locations[shorthand] = section.value_where(name)
        wrapped.value_locations[shorthand] = section.value_where(name)
        wrapped.location = section.where(name)
        return wrapped
    for key in entry:
        if key not in keys:
            raise unknown_key(key, keys, entry.where(key), f"{context} '{name}'")
    return entry


def _modes(data: PositionedDict) -> int:
    value = data["modes"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MODES:
        raise SpecError(f"'modes' must be a whole number from 1 to {MAX_MODES}, got {value!r}",
                        data.value_where("modes"), "write e.g. 'modes: 3' (TVB's "
                        "number_of_modes)")
    return value


def _parameter_shape(entry: PositionedDict, name: str, modes: int) -> tuple[int, ...]:
    """`shape: [modes]` or `shape: [modes, modes]`, in numbers of elements."""
    raw = entry["shape"]
    if not (isinstance(raw, list) and 1 <= len(raw) <= 2 and all(v == MODES for v in raw)):
        raise SpecError(f"the shape of parameter '{name}' must be [modes] or [modes, modes], "
                        f"got {raw!r}", entry.value_where("shape"),
                        "a per-mode parameter is [modes], a mode-mixing matrix [modes, modes]"
                        "; a plain vector needs no shape (write its default as a list)")
    return (modes,) * len(raw)


def _shaped_default(raw: Any, shape: tuple[int, ...], name: str, where: Location | None
                    ) -> tuple[float, ...]:
    """A [modes] default as a list of numbers, a [modes, modes] one as a list of rows;
    flattened row by row."""
    rows = raw if len(shape) == 2 else [raw]
    fits = isinstance(raw, list) and len(raw) == shape[0] and all(
        isinstance(row, list) and len(row) == shape[-1] for row in rows)
    if not fits:
        layout = (f"a list of {shape[0]} numbers" if len(shape) == 1 else
                  f"a list of {shape[0]} rows of {shape[1]} numbers")
        raise SpecError(f"the default of parameter '{name}' (shape {list(shape)}) must be "
                        f"{layout}", where, "one number per mode (per pair of modes)")
    values = []
    for i, row in enumerate(rows):
        row_where = _item_location(raw, i, where) if len(shape) == 2 else where
        for j, value in enumerate(row):
            values.append(_number(value, _item_location(row, j, row_where),
                                  f"default of '{name}'" + (f"[{i}]" if len(shape) == 2
                                                            else "") + f"[{j}]"))
    return tuple(values)


def _parameters(data: PositionedDict, modes: int) -> dict[str, Parameter]:
    section = _section(data, "parameters")
    result = {}
    for name in section:
        where = section.where(name)
        check_name(name, where, "parameter")
        entry = _mapping_entry(section, name, PARAMETER_KEYS, "parameter", "default")
        if "default" not in entry:
            raise SpecError(f"parameter '{name}' has no default", where,
                            "add 'default: <number>' (or a list for a vector)")
        raw = entry["default"]
        dwhere = entry.value_where("default")
        text = {"unit": _text(entry, "unit"), "description": _text(entry, "description"),
                "where": where}
        if isinstance(raw, bool):
            for key in ("range", "shape"):
                if key in entry:
                    raise SpecError(f"boolean parameter '{name}' cannot have a {key}",
                                    entry.where(key), f"remove the {key}")
            result[name] = Parameter(name, float(raw), boolean=True, **text)
            continue
        prange = None
        if "range" in entry:
            prange = _pair(entry["range"], entry.value_where("range"), f"range of '{name}'")
        if "shape" in entry:
            shape = _parameter_shape(entry, name, modes)
            result[name] = Parameter(name, _shaped_default(raw, shape, name, dwhere), shape,
                                     prange, modes=True, **text)
            continue
        if isinstance(raw, list):
            if not raw or len(raw) > MAX_VECTOR_SIZE:
                raise SpecError(f"vector parameter '{name}' must have 1 to {MAX_VECTOR_SIZE} "
                                "elements", dwhere, "split it, or use fewer elements")
            default: float | tuple[float, ...] = tuple(
                _number(v, _item_location(raw, i, dwhere), f"default of '{name}'[{i}]")
                for i, v in enumerate(raw))
            result[name] = Parameter(name, default, (len(raw),), prange, **text)
            continue
        default = _number(raw, dwhere, f"default of parameter '{name}'")
        result[name] = Parameter(name, default, (), prange, **text)
    return result


def _states(data: PositionedDict) -> dict[str, State]:
    section = _section(data, "state_variables")
    result = {}
    for name in section:
        where = section.where(name)
        check_name(name, where, "state variable")
        entry = _mapping_entry(section, name, STATE_KEYS, "state variable", "range")
        if "range" not in entry:
            raise SpecError(f"state variable '{name}' has no range", where,
                            "add 'range: [low, high]' (TVB's state_variable_range)")
        srange = _pair(entry["range"], entry.value_where("range"), f"range of '{name}'")
        bounds = (None, None)
        if "boundaries" in entry:
            bounds = _pair(entry["boundaries"], entry.value_where("boundaries"),
                           f"boundaries of '{name}'", allow_open=True)
        check = None
        if "check_range" in entry:
            check = _pair(entry["check_range"], entry.value_where("check_range"),
                          f"check_range of '{name}'")
        result[name] = State(name, srange, bounds, check, _text(entry, "unit"),
                             _text(entry, "description"), where)
    return result


def _coupling(data: PositionedDict) -> dict[str, tuple[str, Location | None]]:
    section = _section(data, "coupling")
    result = {}
    for name in section:
        where = section.where(name)
        check_name(name, where, "coupling input")
        target = section[name]
        if not isinstance(target, str):
            raise SpecError(f"coupling input '{name}' must name the state variable it couples",
                            where, f"write '{name}: E' for TVB's cvar = [E]")
        result[name] = (target, section.value_where(name))
    return result


def _expressions(data: PositionedDict, key: str, kind: str,
                 check: bool = True) -> dict[str, Expression]:
    section = _section(data, key)
    result = {}
    for name in section:
        if check:
            check_name(name, section.where(name), kind)
        value = section[name]
        if isinstance(value, (PositionedDict, PositionedList)) or value is None:
            raise SpecError(f"{kind} '{name}' must be one expression", section.where(name),
                            f"write '{name}: <expression>'")
        result[name] = Expression(value, section.value_where(name))
    return result


def _functions(data: PositionedDict) -> dict[str, FunctionSpec]:
    section = _section(data, "functions")
    result = {}
    for name in section:
        where = section.where(name)
        check_name(name, where, "function")
        entry = section[name]
        if not isinstance(entry, PositionedDict):
            raise SpecError(f"function '{name}' must be a mapping with 'args' and 'return'",
                            where)
        for key in entry:
            if key not in FUNCTION_KEYS:
                raise unknown_key(key, FUNCTION_KEYS, entry.where(key), f"function '{name}'")
        for required in ("args", "return"):
            if required not in entry:
                raise SpecError(f"function '{name}' has no '{required}'", where,
                                "functions need 'args: [x, y]' and 'return: <expression>'")
        raw_args = entry["args"]
        if not isinstance(raw_args, list):
            raise SpecError(f"'args' of function '{name}' must be a list of names",
                            entry.where("args"))
        args: list[tuple[str, int | None]] = []
        for i, arg in enumerate(raw_args):
            awhere = _item_location(raw_args, i, entry.where("args"))
            match = _ARG.match(arg) if isinstance(arg, str) else None
            if not match:
                shown = repr(arg) if len(repr(arg)) < 80 else repr(arg)[:60] + "..."
                raise SpecError(f"argument {shown} of function '{name}' is not a name",
                                awhere, "write a name, or name[size] for a vector argument")
            arg_name = check_name(match.group(1), awhere, "argument")
            if any(arg_name == a for a, _ in args):
                raise SpecError(f"duplicate argument '{arg_name}' in function '{name}'", awhere,
                                "give each argument its own name")
            size = int(match.group(2)) if match.group(2) else None
            if size is not None and not 1 <= size <= MAX_VECTOR_SIZE:
                raise SpecError(f"vector argument '{arg_name}' of function '{name}' has size "
                                f"{size}; sizes must be 1..{MAX_VECTOR_SIZE}", awhere,
                                "declare a smaller vector")
            args.append((arg_name, size))
        derived = _expressions(entry, "derived", "derived expression")
        for local in derived:
            if any(local == a for a, _ in args):
                raise SpecError(f"'{local}' in function '{name}' is both an argument and a "
                                "derived expression", entry["derived"].where(local),
                                "rename one of them")
        result[name] = FunctionSpec(
            name, tuple(args), tuple(derived.items()),
            Expression(entry["return"], entry.value_where("return")),
            _derivative_method(entry, name), _text(entry, "description"), where)
    return result


def _derivative_method(entry: PositionedDict, name: str) -> DerivativeMethod:
    raw = entry.get("derivatives", "symbolic")
    where = entry.where("derivatives")
    if raw == "symbolic":
        return DerivativeMethod()
    if not isinstance(raw, PositionedDict) or raw.get("method") != "finite_difference":
        raise SpecError(f"'derivatives' of function '{name}' must be 'symbolic' or a mapping "
                        "{method: finite_difference, step: h}", where)
    for key in raw:
        if key not in DERIVATIVE_METHOD_KEYS:
            raise unknown_key(key, DERIVATIVE_METHOD_KEYS, raw.where(key), "derivatives")
    step = _number(raw.get("step"), raw.where("step"), "finite-difference step")
    if step <= 0:
        raise SpecError(f"finite-difference step must be positive, got {step}",
                        raw.value_where("step"), "write a small positive step such as 1e-6")
    return DerivativeMethod("finite_difference", step)


def _item_location(items: Any, index: int, fallback: Location | None) -> Location | None:
    locations = getattr(items, "locations", None)
    if locations and index < len(locations):
        return locations[index]
    return fallback
