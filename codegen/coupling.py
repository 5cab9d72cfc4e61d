"""Coupling functions as data (specs/coupling/*.yaml), parsed like model expressions.

Each has `parameters` (name: default), `pre` (of x_i, x_j and the parameters) and `post` (of gx
and the parameters). They are printed to C here and compiled into every model's simulation
kernel, selected at run time by index, with parameters passed as runtime values.

TVB's structure: pre(x_i, x_j) is applied per connection, summed with the weights, then post(gx).
A pre that uses plain x_i, x_j applies to every coupled variable (one coupling row per cvar,
TVB's SparseCoupling). A pre that indexes the coupled variables, x_j[0] - x_j[1] (TVB's
SigmoidalJansenRit), combines them into one value per node, given to every coupling row (TVB
broadcasts its one pre row over its per-cvar weights). Both may use n_cvar and n_nodes
(TVB's Kuramoto divides by gx.shape[0], which is n_cvar).

Two additions reproduce TVB's PreSigmoidal, whose own __call__ is not pre/post, for combined
functions: `sum: efferent` sums each node's outgoing connections instead of its incoming ones
(node j receives sum_i w_ij pre(x_j delayed by d_ij), TVB summing its (to, from) weights over
axis 0), and `own:` gives chosen coupling rows an expression of the node's own coupled
variables x_own[k] (delayed by its self-connection's delay; 0 without one: TVB's sparse history
holds only connections with a weight) instead of post(gx).

`sum: reciprocal` reproduces PreSigmoidal(dynamic=False), which pairs each incoming weight with
the opposite connection: node i receives sum_j w_ij pre(x_i, x_j) with x_j node i's *own* value
delayed by d_ji, the delay of its connection i -> j (0 where w_ji = 0, TVB's sparse history).
The runtime gives each afferent connection the ring address of that value (or -1: zero).

For PreSigmoidal(globalT=True), in an efferent function: `x_first[k]` (pre and own rows) is
node 0's coupled variable k as node j receives it over its connection j <- 0 (delayed by d_j0;
0 where w_j0 = 0), and an own row written `{mean: expr}` is the mean of expr over all nodes,
the same in every node's row.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sympy

from mfgen.codegen.expressions import Argument, VectorRef, parse_expression
from mfgen.codegen.names import check_name
from mfgen.codegen.yaml_source import PositionedDict, PositionedList, load_yaml
from mfgen.errors import Location, SpecError, did_you_mean

MAX_COUPLING_PARAMETERS = 8
COUPLING_KEYS = ("parameters", "pre", "post", "description", "sum", "own")
SUMS = ("afferent", "efferent", "reciprocal")


@dataclass(frozen=True)
class CouplingFunction:
    name: str
    parameters: tuple[tuple[str, float], ...]
    pre: sympy.Expr  # over x_i, x_j (or x_i_k, x_j_k) and parameters
    post: sympy.Expr  # over gx and parameters
    inputs: tuple[int, ...] = ()  # the coupled variables pre indexes; () = elementwise
    description: str = ""
    # "afferent": node i sums its incoming connections; "efferent": node j its outgoing ones
    # (TVB's PreSigmoidal); "reciprocal": weights w_ij with node i's own value delayed by d_ji
    # (TVB's PreSigmoidal(dynamic=False)); see _sum_kind
    sum: str = "afferent"
    own: tuple[tuple[int, sympy.Expr], ...] = ()  # (row, expression of x_own_k) replacing post
    own_inputs: tuple[int, ...] = ()  # the coupled variables the own expressions index
    first_inputs: tuple[int, ...] = ()  # the coupled variables x_first[k] reads (node 0's)
    mean_rows: tuple[int, ...] = ()  # own rows that are the mean over the network

    @property
    def _plain_afferent(self) -> bool:
        """Node i sums w_ij pre(...) over its incoming connections, and nothing else."""
        return self.sum == "afferent" and not (self.own or self.first_inputs or
                                               self.mean_rows)

    @property
    def pre_of_sources_only(self) -> bool:
        """Whether each connection's term is w_ij pre(x_j) with pre a function of the source's
        delayed values alone (no x_i, and more than x_j itself) in a plain afferent sum: then
        pre can be evaluated once per node and step, as the history is stored, instead of once
        per connection (the simulator's pre history)."""
        if not self._plain_afferent:
            return False
        names = {s.name for s in self.pre.free_symbols}
        sources = {n for n in names if n == "x_j" or n.startswith("x_j_")}
        targets = {n for n in names if n == "x_i" or n.startswith("x_i_")}
        return bool(sources) and not targets and not self.pre.is_Symbol

    @property
    def sums_history_alone(self) -> bool:
        """Whether each step's coupling is post(sum_j w_ij x_j(t - d_ij)): pre is the source's
        delayed value itself in a plain afferent sum of one coupled variable (post reads gx and
        parameters only). Then the coupling of the next steps, as many as the shortest delay
        allows, depends on the stored history alone and the simulator can compute several
        steps of it in one pass over the connections (its coupling blocks)."""
        if not self._plain_afferent or self.inputs:
            return False
        return self.pre.is_Symbol and self.pre.name == "x_j"

    @property
    def needs_cvars(self) -> int:
        """How many coupled variables the model must have for this function."""
        used = self.inputs + self.own_inputs + self.first_inputs + tuple(
            row for row, _ in self.own)
        return max(used) + 1 if used else 0


BUILTINS = ("x_i", "x_j", "x_own", "x_first", "gx", "n_cvar", "n_nodes")
MAX_COUPLED_INPUTS = 8  # x_j[0] .. x_j[7]


def indexed_symbol(name: str, index: int) -> sympy.Symbol:
    """x_j[k] in a pre: a C variable x_j_k (users cannot name a parameter x_...)."""
    return sympy.Symbol(f"{name}_{index}", real=True)


class _Scope:
    def __init__(self, names: dict[str, sympy.Symbol], what: str,
                 indexable: tuple[str, ...] = ()):
        self.names = names
        self.what = what
        self.indexable = indexable
        self.plain: set[str] = set()
        self.used: set[int] = set()
        self.first: set[int] = set()  # x_first[k]: node 0's, kept apart from x_j's inputs
        self.indexed_names: set[str] = set()

    def indexed(self, name: str, index: int, where: Location) -> sympy.Expr:
        if name not in self.indexable:
            raise SpecError(f"'{name}' cannot be indexed in {self.what}", where,
                            "only x_i[k], x_j[k], x_first[k] in a pre and x_own[k], "
                            "x_first[k] in an own row (coupled variable k)")
        if not 0 <= index < MAX_COUPLED_INPUTS:
            raise SpecError(f"coupled variable index {index} out of range in {self.what}",
                            where, f"use 0 to {MAX_COUPLED_INPUTS - 1}")
        (self.first if name == "x_first" else self.used).add(index)
        self.indexed_names.add(name)
        return indexed_symbol(name, index)

    def symbol(self, name: str, where: Location) -> sympy.Expr | VectorRef:
        if name in self.names:
            if name in ("x_i", "x_j", "x_own", "x_first"):
                self.plain.add(name)
            return self.names[name]
        raise SpecError(f"undefined symbol '{name}' in {self.what}", where,
                        did_you_mean(name, self.names) or f"allowed: {', '.join(self.names)}")

    def call(self, name: str, args: list[Argument], where: Location) -> sympy.Expr:
        raise SpecError(f"coupling functions cannot call '{name}'", where)

    def derivative(self, name: str, wrt: list[str], args: list[Argument],
                   where: Location) -> sympy.Expr:
        raise SpecError("coupling functions cannot take derivatives", where)


BUNDLED_COUPLINGS = "tvb_couplings.yaml"


def bundled_coupling_path() -> Path:
    return Path(str(resources.files("mfgen.specs.coupling"))) / BUNDLED_COUPLINGS


def load_coupling_functions(path: Path | None = None) -> dict[str, CouplingFunction]:
    """The coupling functions of a coupling file (default: the bundled TVB couplings)."""
    path = path or bundled_coupling_path()
    return dict(_parsed_file(path.read_text(), str(path)))


@functools.lru_cache(maxsize=8)
def _parsed_file(text: str, source: str) -> tuple[tuple[str, CouplingFunction], ...]:
    # A build reads the bundled file several times (spec names, simulator, manifest); keyed
    # by the text itself, so an edited file is parsed again. The records are frozen.
    return tuple(parse_coupling_functions(text, source).items())


def parse_coupling_functions(text: str, source: str) -> dict[str, CouplingFunction]:
    """Coupling functions from YAML text (a file, or a model spec's `couplings` section)."""
    data = load_yaml(text, source)
    if not isinstance(data, PositionedDict):
        raise SpecError("a coupling file must be a mapping of name: {parameters, pre, post}",
                        Location(source, 1, 1))
    return coupling_functions_from(data)


def coupling_functions_from(data: PositionedDict) -> dict[str, CouplingFunction]:
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
        if not isinstance(params, PositionedDict):
            raise SpecError(f"the parameters of coupling function '{name}' must be a "
                            "mapping name: default", entry.where("parameters"))
        for pname, value in params.items():
            check_name(pname, params.where(pname), "coupling parameter")
            if pname in BUILTINS or pname.startswith(("x_i_", "x_j_", "x_own_", "x_first_")):
                raise SpecError(f"coupling parameter '{pname}' clashes with a built-in name "
                                f"({', '.join(BUILTINS)}, x_i_k, x_j_k, x_own_k, x_first_k)",
                                params.where(pname),
                                "rename the parameter")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(float(value)):
                raise SpecError(f"coupling parameter '{pname}' of '{name}' needs a finite "
                                f"number as default, got {value!r}", params.value_where(pname))
            symbols[pname] = sympy.Symbol(pname, real=True)
            defaults.append((pname, float(value)))
        sizes = {"n_cvar": sympy.Symbol("n_cvar", real=True),
                 "n_nodes": sympy.Symbol("n_nodes", real=True)}
        for key in ("pre", "post"):
            if key not in entry:
                raise SpecError(f"coupling function '{name}' needs '{key}'", where,
                                "pre: x_j  and  post: a * gx  is TVB's Linear")
        pre_names = dict(symbols, x_i=sympy.Symbol("x_i", real=True),
                         x_j=sympy.Symbol("x_j", real=True),
                         x_first=sympy.Symbol("x_first", real=True), **sizes)
        post_names = dict(symbols, gx=sympy.Symbol("gx", real=True), **sizes)
        pre_scope = _Scope(pre_names, f"the pre of '{name}'",
                           indexable=("x_i", "x_j", "x_first"))
        pre = parse_expression(entry["pre"], entry.value_where("pre"), pre_scope)
        if "x_first" in pre_scope.plain:
            raise SpecError(f"the pre of '{name}' uses plain x_first", entry.value_where("pre"),
                            "index the coupled variable: x_first[1]")
        if pre_scope.used and pre_scope.plain:
            raise SpecError(f"the pre of '{name}' mixes {' and '.join(sorted(pre_scope.plain))}"
                            " with indexed x_i[k]/x_j[k]", entry.value_where("pre"),
                            "index every coupled variable (x_j[0]) or none (x_j)")
        post = parse_expression(entry["post"], entry.value_where("post"),
                                _Scope(post_names, f"the post of '{name}'"))
        kind = _sum_kind(entry, name, combined=bool(pre_scope.used),
                         uses_x_i="x_i" in pre_scope.indexed_names)
        own, own_inputs, own_first, mean_rows = _own_rows(entry, name, dict(symbols, **sizes),
                                                          combined=bool(pre_scope.used))
        first_inputs = tuple(sorted(pre_scope.first | set(own_first)))
        if first_inputs and kind != "efferent":
            raise SpecError(f"x_first[k] in '{name}' needs 'sum: efferent'", where,
                            "node 0's values as each node receives them, as TVB's "
                            "PreSigmoidal(globalT=True)")
        description = entry.get("description", "")
        result[name] = CouplingFunction(name, tuple(defaults), pre, post,
                                        tuple(sorted(pre_scope.used)), str(description),
                                        kind, own, own_inputs, first_inputs, mean_rows)
    return result


def _sum_kind(entry: PositionedDict, name: str, combined: bool, uses_x_i: bool) -> str:
    """`sum: afferent` (default: node i receives sum_j w_ij pre(x_i, x_j delayed by d_ij)),
    `efferent` (node j receives sum_i w_ij pre(x_j delayed by d_ij), as TVB's PreSigmoidal) or
    `reciprocal` (node i receives sum_j w_ij pre(x_i, x_i delayed by d_ji; 0 where w_ji = 0),
    as TVB's PreSigmoidal(dynamic=False))."""
    kind = entry.get("sum", "afferent")
    where = entry.value_where("sum")
    if kind not in SUMS:
        raise SpecError(f"'sum' of coupling function '{name}' must be one of "
                        f"{', '.join(SUMS)}, got {kind!r}", where)
    if kind == "efferent" and not combined:
        raise SpecError(f"'sum: efferent' of '{name}' needs a pre that indexes the coupled "
                        "variables (x_j[0], ...)", where, "write x_j[0] for one variable")
    if kind == "efferent" and uses_x_i:
        raise SpecError(f"the efferent pre of '{name}' cannot use x_i[k]: it sums the node's "
                        "own delayed values x_j[k] over its outgoing connections", where)
    if kind == "reciprocal" and combined:
        raise SpecError(f"'sum: reciprocal' of '{name}' needs a pre on plain x_j (one coupling "
                        "row per coupled variable), not indexed x_j[k]", where,
                        "write x_j for each coupled variable")
    return str(kind)


def _own_rows(entry: PositionedDict, name: str, names: dict[str, sympy.Symbol],
              combined: bool) -> tuple[tuple[tuple[int, sympy.Expr], ...], tuple[int, ...],
                                       tuple[int, ...], tuple[int, ...]]:
    """`own: [null, expr, ...]`: one item per coupling row (cvar order); an expression of the
    node's own coupled variables x_own[k] replaces post(gx) in its row, null keeps post(gx),
    `{mean: expr}` puts the mean of expr over all nodes in every node's row."""
    if "own" not in entry:
        return (), (), (), ()
    items = entry["own"]
    where = entry.value_where("own")
    if not isinstance(items, PositionedList) or not items:
        raise SpecError(f"'own' of coupling function '{name}' must be a list with one item "
                        "per coupling row: an expression of x_own[k], or null for post(gx)",
                        where, "own: [null, 'x_own[0] - x_own[1]']")
    if not combined:
        raise SpecError(f"'own' rows of '{name}' need a pre that indexes the coupled "
                        "variables (x_j[0], ...)", where)
    if len(items) > MAX_COUPLED_INPUTS:
        raise SpecError(f"'own' of '{name}' has {len(items)} rows; at most "
                        f"{MAX_COUPLED_INPUTS}", where)
    rows, used, first, means = [], set(), set(), []
    for row, (text, location) in enumerate(zip(items, items.locations)):
        if text is None:
            continue
        if isinstance(text, PositionedDict):
            if list(text) != ["mean"]:
                raise SpecError(f"own row {row} of '{name}' must be an expression, null or "
                                "{mean: expression}", location)
            text, location = text["mean"], text.value_where("mean")
            means.append(row)
        scope = _Scope(dict(names, x_own=sympy.Symbol("x_own", real=True),
                            x_first=sympy.Symbol("x_first", real=True)),
                       f"own row {row} of '{name}'", indexable=("x_own", "x_first"))
        expression = parse_expression(text, location, scope)
        if scope.plain:
            raise SpecError(f"own row {row} of '{name}' uses plain "
                            f"{' and '.join(sorted(scope.plain))}", location,
                            "index the coupled variable: x_own[0]")
        rows.append((row, expression))
        used |= scope.used
        first |= scope.first
    return tuple(rows), tuple(sorted(used)), tuple(sorted(first)), tuple(means)
