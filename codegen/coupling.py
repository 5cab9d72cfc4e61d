"""Coupling functions as data (specs/coupling/*.yaml), parsed like model expressions.

Each has `parameters` (name: default), `pre` (of x_i, x_j and the parameters) and `post` (of gx
and the parameters). They are printed to C here and compiled into every model's simulation
kernel, selected at run time by index, with parameters passed as runtime values.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sympy

from mfgen.codegen.expressions import Argument, VectorRef, parse_expression
from mfgen.codegen.names import check_name
from mfgen.codegen.yaml_source import PositionedDict, load_yaml
from mfgen.errors import Location, SpecError, did_you_mean

MAX_COUPLING_PARAMETERS = 8
COUPLING_KEYS = ("parameters", "pre", "post", "description")


@dataclass(frozen=True)
class CouplingFunction:
    name: str
    parameters: tuple[tuple[str, float], ...]
    pre: sympy.Expr  # over x_i, x_j and parameters
    post: sympy.Expr  # over gx and parameters


class _Scope:
    def __init__(self, names: dict[str, sympy.Symbol], what: str):
        self.names = names
        self.what = what

    def symbol(self, name: str, where: Location) -> sympy.Expr | VectorRef:
        if name in self.names:
            return self.names[name]
        raise SpecError(f"undefined symbol '{name}' in {self.what}", where,
                        did_you_mean(name, self.names) or f"allowed: {', '.join(self.names)}")

    def call(self, name: str, args: list[Argument], where: Location) -> sympy.Expr:
        raise SpecError(f"coupling functions cannot call '{name}'", where)

    def derivative(self, name: str, wrt: list[str], args: list[Argument],
                   where: Location) -> sympy.Expr:
        raise SpecError("coupling functions cannot take derivatives", where)


def load_coupling_functions(path: Path | None = None) -> dict[str, CouplingFunction]:
    path = path or Path(str(resources.files("mfgen.specs.coupling"))) / "tvb_couplings.yaml"
    data = load_yaml(path.read_text(), str(path))
    result = {}
    for name, entry in data.items():
        where = data.where(name)
        check_name(name, where, "coupling function")
        if not isinstance(entry, PositionedDict):
            raise SpecError(f"coupling function '{name}' must be a mapping", where)
        for key in entry:
            if key not in COUPLING_KEYS:
                raise SpecError(f"unknown key '{key}' in coupling function '{name}'",
                                entry.where(key))
        params = entry.get("parameters") or PositionedDict()
        if len(params) > MAX_COUPLING_PARAMETERS:
            raise SpecError(f"at most {MAX_COUPLING_PARAMETERS} coupling parameters", where)
        symbols = {}
        defaults = []
        for pname, value in params.items():
            check_name(pname, params.where(pname), "coupling parameter")
            symbols[pname] = sympy.Symbol(pname, real=True)
            defaults.append((pname, float(value)))
        pre_names = dict(symbols, x_i=sympy.Symbol("x_i", real=True),
                         x_j=sympy.Symbol("x_j", real=True))
        post_names = dict(symbols, gx=sympy.Symbol("gx", real=True))
        pre = parse_expression(entry["pre"], entry.value_where("pre"),
                               _Scope(pre_names, f"the pre of '{name}'"))
        post = parse_expression(entry["post"], entry.value_where("post"),
                                _Scope(post_names, f"the post of '{name}'"))
        result[name] = CouplingFunction(name, tuple(defaults), pre, post)
    return result
