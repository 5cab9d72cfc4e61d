"""Stage 2: turn a ModelSpec into the model IR: a straight-line program of SymPy assignments.

Functions are inlined call by call as named statements (`F__1__mu_G = ...`), never substituted
into one big tree: derivatives are then taken statement by statement (forward mode), which
keeps them small (0.4 s for the seed-6 TF instead of about 8 minutes as one tree).
Every name is resolved here, so undefined symbols, cycles, arity and index errors are reported
with the place they were written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import sympy

from mfgen.codegen.expressions import Argument, VectorRef, parse_expression
from mfgen.codegen.records import Parameter, State
from mfgen.codegen.spec import Expression, FunctionSpec, ModelSpec
from mfgen.errors import Location, SpecError, did_you_mean

LOCAL_COUPLING = "local_coupling"
# Inlining is exponential in the worst case (F calls G twice, G calls H twice, ...): a limit
# on the statements of one model keeps a small hostile spec from taking hours. The largest
# bundled model (second order, with derivatives) has about 1 000.
MAX_PROGRAM_STATEMENTS = 10_000


def real_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


def mode_name(name: str, mode: int, modes: int) -> str:
    """The generated name of a per-mode value (`xi__m2`); the name itself with one mode."""
    return name if modes == 1 else f"{name}__m{mode}"


@dataclass(frozen=True)
class CouplingInput:
    name: str
    state: str
    state_index: int


def structural_text(expr: sympy.Basic, memo: dict[sympy.Basic, str] | None = None) -> str:
    """`expr` as text, for digests: each node's class name and its arguments in SymPy's own
    (canonical, deterministic) order, atoms as `srepr` writes them. Two expressions get the
    same text exactly when they are the same tree. Unlike `srepr` it never sorts the terms
    of a sum (that ordering evaluates every coefficient) and it writes a subtree shared by
    several statements once per `memo`."""
    memo = {} if memo is None else memo
    known = memo.get(expr)
    if known is not None:
        return known
    if expr.args:
        text = f"{type(expr).__name__}({', '.join(structural_text(a, memo) for a in expr.args)})"
    else:
        text = sympy.srepr(expr)
    memo[expr] = text
    return text


@dataclass
class ModelIR:
    name: str
    description: str
    references: list[str]
    parameters: list[Parameter]
    # The kernel's rows: with modes, state s of mode m is row s * modes + m (named xi__m0...),
    # and so are the coupling inputs; `declared_*` are the spec's, as the user sees them.
    states: list[State]
    coupling: list[CouplingInput]
    program: list[tuple[sympy.Symbol, sympy.Expr]]  # in order; each may use earlier ones
    outputs: list[sympy.Expr]  # d(state)/dt, one per state, over program symbols and inputs
    sources: list[str] = field(default_factory=list)
    source_digest: str = ""
    resolutions: list[tuple[str, str, str]] = field(default_factory=list)  # see ModelSpec
    source_sha256: list[str] = field(default_factory=list)
    couplings: list[Any] = field(default_factory=list)  # the spec's coupling functions
    # (name, expression over program symbols and inputs): computed in C for the monitors
    observables: list[tuple[str, sympy.Expr]] = field(default_factory=list)
    # b(x) per state (None: additive): TVB's Multiplicative noise gain sqrt(2 nsig) * b(x)
    noise_b: list[sympy.Expr | None] = field(default_factory=list)
    modes: int = 1
    declared_states: list[State] = field(default_factory=list)
    declared_coupling: list[CouplingInput] = field(default_factory=list)
    _canonical: str = field(default="", repr=False, compare=False)  # memo: srepr is slow

    @property
    def parameter_slots(self) -> list[str]:
        return [slot for p in self.parameters for slot in p.slots]

    def canonical_text(self) -> str:
        """Everything that determines generated code (defaults excluded: they are data).

        Computed once: the program is not changed after `build_ir`. Expressions are written
        by `structural_text` (srepr's term sorting took about a second for a second-order
        model's ~1000 statements).
        """
        if self._canonical:
            return self._canonical
        memo: dict[sympy.Basic, str] = {}

        def text(expr: sympy.Basic) -> str:
            return structural_text(expr, memo)

        lines = [f"model {self.name}"] + ([f"modes {self.modes}"] if self.modes > 1 else [])
        lines += [f"param {p.name} {p.size}" for p in self.parameters]
        lines += [f"state {s.name}" for s in self.states]
        lines += [f"coupling {c.name} {c.state}" for c in self.coupling]
        lines += [f"{sym} = {text(expr)}" for sym, expr in self.program]
        lines += [f"d/dt {s.name} = {text(e)}" for s, e in zip(self.states, self.outputs)]
        lines += [f"observable {name} = {text(e)}" for name, e in self.observables]
        lines += [f"noise b {s.name} = {text(e)}" for s, e in zip(self.states, self.noise_b)
                  if e is not None]
        lines += [f"coupling function {f.name} {[p for p, _ in f.parameters]} {f.inputs} "
                  f"{text(f.pre)} {text(f.post)}"
                  # the sum kind and own rows only where not the default (a plain afferent sum)
                  + (f" sum={f.sum}" if f.sum != "afferent" else "")
                  + (f" own={[(r, text(e)) for r, e in f.own]}" if f.own else "")
                  + (f" mean={list(f.mean_rows)}" if f.mean_rows else "")
                  for f in self.couplings]
        self._canonical = "\n".join(lines)
        return self._canonical

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_text().encode()).hexdigest()


class _ProgramBuilder:
    """Emits statements; function instances get unique prefixes."""

    def __init__(self, budget: list[int] | None = None) -> None:
        self.program: list[tuple[sympy.Symbol, sympy.Expr]] = []
        self.instance_counter: dict[str, int] = {}
        # Partial derivatives by the shape of the statement (see _diff_by_shape), shared by all
        # instances: F_e and F_i inline the same function into statements that differ only by
        # their symbols' names.
        self.derivatives_by_shape: dict[tuple[sympy.Expr, sympy.Symbol], sympy.Expr] = {}
        # Statements left, shared with the probes that parse uncalled functions.
        self.budget = budget if budget is not None else [MAX_PROGRAM_STATEMENTS]

    def emit(self, name: str, expr: sympy.Expr, where: Location | None = None) -> sympy.Symbol:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            # Checked at every statement (model-level derived expressions and derivative
            # statements too), not only when a function is inlined.
            raise SpecError(f"the model grows beyond {MAX_PROGRAM_STATEMENTS} statements "
                            f"(here, at '{_readable(name)}')", where,
                            "a model needs a few thousand at most; compute shared values once "
                            "and pass them as arguments")
        symbol = real_symbol(name)
        self.program.append((symbol, expr))
        return symbol

    def new_instance(self, function: str) -> str:
        count = self.instance_counter.get(function, 0) + 1
        self.instance_counter[function] = count
        return f"{function}__{count}"


class _ModelScope:
    """Resolves names at model level for one mode: inputs, parameters, derived expressions
    (lazily). With modes, every mode has its scope; `siblings` are all of them, for
    mode_sum and mode_dot, which read a value in every mode."""

    def __init__(self, spec: ModelSpec, builder: _ProgramBuilder, functions: _Functions,
                 mode: int = 0, siblings: list[_ModelScope] | None = None):
        self.spec = spec
        self.builder = builder
        self.functions = functions
        self.mode = mode
        self.modes = spec.modes or 1
        self.siblings = siblings if siblings is not None else [self]
        self.values: dict[str, sympy.Expr | VectorRef] = {}
        for name in (*spec.states, *spec.coupling):
            self.values[name] = real_symbol(mode_name(name, mode, self.modes))
        self.values[LOCAL_COUPLING] = real_symbol(LOCAL_COUPLING)
        self.values.update(parameter_values(spec, mode))
        self.in_progress: list[str] = []

    def visible_names(self) -> list[str]:
        return [*self.values, *self.spec.derived]

    def symbol(self, name: str, where: Location) -> sympy.Expr | VectorRef:
        if name in self.values:
            return self.values[name]
        if name in self.spec.derived:
            return self.derived(name)
        if name in self.spec.functions:
            raise SpecError(f"'{name}' is a function; call it with arguments", where,
                            f"write {name}(...)")
        if name in self.spec.parameters:  # only mode matrices are not values
            raise SpecError(f"'{name}' is a mode matrix ([modes, modes]), not a value", where,
                            f"mix modes with it: mode_dot(x, {name})")
        raise SpecError(f"undefined symbol '{name}'", where,
                        did_you_mean(name, self.visible_names())
                        or "declare it under parameters, state_variables, coupling or derived")

    def derived(self, name: str) -> sympy.Symbol:
        if name in self.in_progress:
            cycle = " -> ".join([*self.in_progress[self.in_progress.index(name):], name])
            raise SpecError(f"cycle among derived expressions: {cycle}",
                            self.spec.derived[name].where,
                            "a derived expression cannot depend on itself")
        self.in_progress.append(name)
        expr = self.parse(self.spec.derived[name])
        self.in_progress.pop()
        symbol = self.builder.emit(mode_name(name, self.mode, self.modes), expr,
                                   self.spec.derived[name].where)
        self.values[name] = symbol
        return symbol

    # -- the mode builtins (expressions.MODE_FORMS) ---------------------------------------
    def _all_modes(self, name: str, where: Location, form: str) -> list[sympy.Expr]:
        """`name`'s value in every mode: a state, coupling input, derived expression or
        [modes] parameter."""
        parameter = self.spec.parameters.get(name)
        per_mode = name in self.spec.states or name in self.spec.coupling or \
            name in self.spec.derived or (parameter is not None and parameter.modes
                                          and len(parameter.shape) == 1)
        if not per_mode:
            raise SpecError(f"{form}() needs a per-mode value, and '{name}' is not one", where,
                            "pass a state variable, coupling input, derived expression or "
                            "[modes] parameter by name")
        values = []
        for scope in self.siblings:
            value = scope.symbol(name, where)
            assert isinstance(value, sympy.Expr)
            values.append(value)
        return values

    def mode_sum(self, name: str, where: Location) -> sympy.Expr:
        """The sum of `name` over the modes (TVB's coupling[0].sum(axis=1))."""
        return sympy.Add(*self._all_modes(name, where, "mode_sum"))

    def mode_dot(self, name: str, matrix: str, where: Location) -> sympy.Expr:
        """sum_k name_k * matrix[k, i] in mode i (TVB's numpy.dot(xi, Aik))."""
        values = self._all_modes(name, where, "mode_dot")
        parameter = self.spec.parameters.get(matrix)
        if parameter is None or not parameter.modes or len(parameter.shape) != 2:
            raise SpecError(f"the second argument of mode_dot() must be a parameter of shape "
                            f"[modes, modes], and '{matrix}' is not one", where,
                            "declare it with 'shape: [modes, modes]'")
        _check_mode_shape(parameter, self.modes)
        slots = parameter.slots
        return sympy.Add(*(value * real_symbol(slots[k * self.modes + self.mode])
                           for k, value in enumerate(values)))

    def parse(self, expression: Expression) -> sympy.Expr:
        where = expression.where or Location(self.spec.name)
        return parse_expression(expression.text, where, self)

    def call(self, name: str, args: list[Argument], where: Location) -> sympy.Expr:
        if name not in self.functions.specs and name in self.visible_names():
            raise _not_a_function(name, where)
        return self.functions.call(name, args, where)

    def derivative(self, name: str, wrt: list[str], args: list[Argument],
                   where: Location) -> sympy.Expr:
        return self.functions.derivative(name, wrt, args, where)


def _not_a_function(name: str, where: Location) -> SpecError:
    return SpecError(f"'{name}' is a value, not a function, and cannot be called", where,
                     f"write '*' to multiply: {name} * (...)")


class _FunctionScope:
    """Names inside one inlined function instance: arguments, locals, parameters."""

    def __init__(self, function: FunctionSpec, prefix: str, bound: dict[str, Argument],
                 parameters: dict[str, sympy.Expr | VectorRef], builder: _ProgramBuilder,
                 functions: _Functions):
        self.function = function
        self.prefix = prefix
        self.locals = dict(function.derived)
        # Arguments and locals shadow the model's parameters of the same name.
        self.values: dict[str, sympy.Expr | VectorRef] = {
            k: v for k, v in parameters.items() if k not in self.locals}
        # A vector argument goes by the argument's name here, so messages name what is written.
        self.values.update({k: VectorRef(k, v.elements) if isinstance(v, VectorRef) else v
                            for k, v in bound.items()})
        self.builder = builder
        self.functions = functions
        self.in_progress: list[str] = []

    def symbol(self, name: str, where: Location) -> sympy.Expr | VectorRef:
        if name in self.values:
            return self.values[name]
        if name in self.locals:
            if name in self.in_progress:
                cycle = " -> ".join([*self.in_progress[self.in_progress.index(name):], name])
                raise SpecError(f"cycle among derived expressions of function "
                                f"'{self.function.name}': {cycle}", self.locals[name].where,
                                "a derived expression cannot depend on itself")
            self.in_progress.append(name)
            expr = self.parse(self.locals[name])
            self.in_progress.pop()
            self.values[name] = self.builder.emit(f"{self.prefix}__{name}", expr,
                                                  self.locals[name].where)
            return self.values[name]
        if name in self.functions.specs:
            raise SpecError(f"'{name}' is a function; call it with arguments", where)
        hint = did_you_mean(name, [*self.values, *self.locals])
        raise SpecError(
            f"undefined symbol '{name}' in function '{self.function.name}'", where,
            hint or "a function sees only its arguments, its derived expressions and the "
            "model's parameters; pass other values as arguments")

    def parse(self, expression: Expression) -> sympy.Expr:
        where = expression.where or self.function.where or Location("<function>")
        return parse_expression(expression.text, where, self)

    def call(self, name: str, args: list[Argument], where: Location) -> sympy.Expr:
        if name not in self.functions.specs and (name in self.values or name in self.locals):
            raise _not_a_function(name, where)
        return self.functions.call(name, args, where)

    def derivative(self, name: str, wrt: list[str], args: list[Argument],
                   where: Location) -> sympy.Expr:
        return self.functions.derivative(name, wrt, args, where)


class _Functions:
    """Inlines calls of the spec's functions and their partial derivatives."""

    def __init__(self, spec: ModelSpec, builder: _ProgramBuilder, mode: int = 0):
        self.specs = spec.functions
        self.builder = builder
        self.parameters = parameter_values(spec, mode)  # a function sees its mode's values
        self.stack: list[str] = []
        # Instances inlined for differentiation, and stencil points, by (function, arguments):
        # every partial derivative of F at the same point shares one copy of F's statements.
        self.differentiable: dict[tuple, _Differentiable] = {}
        self.stencil_points: dict[tuple, sympy.Symbol] = {}

    def _lookup(self, name: str, where: Location) -> FunctionSpec:
        if name not in self.specs:
            raise SpecError(f"call of undefined function '{name}'", where,
                            did_you_mean(name, self.specs) or "declare it under functions:")
        if name in self.stack:
            chain = " -> ".join([*self.stack, name])
            raise SpecError(f"function '{name}' calls itself ({chain})", where,
                            "recursion is not supported")
        return self.specs[name]

    def _bind(self, function: FunctionSpec, args: list[Argument], where: Location,
              prefix: str, as_statements: bool) -> dict[str, Argument]:
        if len(args) != len(function.args):
            names = ", ".join(a if s is None else f"{a}[{s}]" for a, s in function.args)
            raise SpecError(f"function '{function.name}' takes {len(function.args)} "
                            f"argument(s) ({names}), got {len(args)}", where,
                            f"call it as {function.name}({names})")
        bound: dict[str, Argument] = {}
        for (arg_name, size), value in zip(function.args, args):
            if size is None:
                if isinstance(value, VectorRef):
                    raise SpecError(f"argument '{arg_name}' of '{function.name}' is a scalar "
                                    f"but the vector '{value.name}' was passed", where,
                                    f"pass one element, e.g. {value.name}[0]")
                if as_statements or not (value.is_Atom):
                    value = self.builder.emit(f"{prefix}__{arg_name}", value, where)
                bound[arg_name] = value
            else:
                if not isinstance(value, VectorRef):
                    raise SpecError(f"argument '{arg_name}' of '{function.name}' is a vector "
                                    f"of {size} elements; pass a vector by name", where,
                                    "pass a vector parameter or vector argument, without [i]")
                if len(value.elements) != size:
                    raise SpecError(f"argument '{arg_name}' of '{function.name}' needs "
                                    f"{size} elements but '{value.name}' has "
                                    f"{len(value.elements)}", where,
                                    f"pass a vector of {size} elements")
                bound[arg_name] = value
        return bound

    def _inline(self, function: FunctionSpec, args: list[Argument], where: Location,
                as_statements: bool = False) -> tuple[sympy.Symbol, dict[str, Argument], int]:
        if self.builder.budget[0] < 0:
            raise SpecError(f"the model grows beyond {MAX_PROGRAM_STATEMENTS} statements when "
                            f"its functions are inlined (here, inlining '{function.name}')",
                            where, "a function that calls others several times multiplies "
                            "them; compute shared values once and pass them as arguments")
        prefix = self.builder.new_instance(function.name)
        start = len(self.builder.program)
        bound = self._bind(function, args, where, prefix, as_statements)
        self.stack.append(function.name)
        scope = _FunctionScope(function, prefix, bound, self.parameters, self.builder, self)
        for local in scope.locals:  # parse all, so errors in unused locals are reported too
            scope.symbol(local, where)
        result = self.builder.emit(prefix, scope.parse(function.result), where)
        self.stack.pop()
        return result, bound, start

    def call(self, name: str, args: list[Argument], where: Location) -> sympy.Expr:
        return self._inline(self._lookup(name, where), args, where)[0]

    def derivative(self, name: str, wrt: list[str], args: list[Argument],
                   where: Location) -> sympy.Expr:
        function = self._lookup(name, where)
        scalar_args = [a for a, size in function.args if size is None]
        for variable in wrt:
            if variable not in scalar_args:
                raise SpecError(f"diff({name}, {variable}): '{variable}' is not a scalar "
                                f"argument of '{name}'", where,
                                did_you_mean(variable, scalar_args)
                                or f"arguments: {', '.join(scalar_args)}")
        if len(wrt) > 2:
            raise SpecError("only first and second derivatives are supported", where)
        try:
            return self._derivative(function, wrt, args, where, scalar_args)
        except SpecError as exc:
            if exc.location is not None:
                raise
            raise SpecError(exc.bare_message, where, exc.hint) from None

    def _derivative(self, function: FunctionSpec, wrt: list[str], args: list[Argument],
                    where: Location, scalar_args: list[str]) -> sympy.Expr:
        if function.derivatives.method == "finite_difference":
            return self._finite_difference(function, wrt, args, where)
        key = (function.name, tuple(args))
        instance = self.differentiable.get(key)
        if instance is None:
            result, bound, start = self._inline(function, args, where, as_statements=True)
            seeds = {a: bound[a] for a in scalar_args}
            instance = _Differentiable(result, seeds, self.builder.program[start:],
                                       self.builder.derivatives_by_shape)
            self.differentiable[key] = instance
        if len(wrt) == 1:
            return instance.first(self.builder, wrt[0]).get(instance.result, sympy.Integer(0))
        return instance.second(self.builder, wrt[0], wrt[1])

    def _finite_difference(self, function: FunctionSpec, wrt: list[str],
                           args: list[Argument], where: Location) -> sympy.Expr:
        """Central differences with the spec's step, as the seeds compute them."""
        h = sympy.Float(function.derivatives.step, precision=53)
        positions = {a: i for i, (a, _) in enumerate(function.args)}

        def at(*shifts: tuple[str, int]) -> sympy.Expr:
            shifted = list(args)
            for variable, sign in shifts:
                shifted[positions[variable]] = shifted[positions[variable]] + sign * h
            key = (function.name, tuple(shifted))
            if key not in self.stencil_points:
                self.stencil_points[key] = self._inline(function, shifted, where)[0]
            return self.stencil_points[key]

        if len(wrt) == 1:
            (x,) = wrt
            return (at((x, 1)) - at((x, -1))) / (2 * h)
        x, y = wrt
        if x == y:
            return (at((x, 1)) - 2 * at() + at((x, -1))) / h**2
        return (at((x, 1), (y, 1)) - at((x, 1), (y, -1)) - at((x, -1), (y, 1))
                + at((x, -1), (y, -1))) / (2 * h) ** 2


@dataclass
class _Differentiable:
    """One inlined instance of a function, differentiated in forward mode.

    Walking the instance's statements in order, each statement s = f(u...) gets
    ds/dx = sum_j f_j du_j/dx and d2s/dxdy = sum_j f_j d2u_j/dxdy + sum_jk f_jk du_j/dx du_k/dy,
    emitted as new statements, zero terms skipped. Partials f_j, f_jk and the first-derivative
    statements are computed once and shared by every derivative of the instance (F_x, F_xx and
    F_xy all reuse F_x).
    """

    result: sympy.Symbol
    seeds: dict[str, Argument]  # formal scalar argument -> the statement binding it
    statements: list[tuple[sympy.Symbol, sympy.Expr]]
    by_shape: dict[tuple[sympy.Expr, sympy.Symbol], sympy.Expr]
    partials: dict[tuple[sympy.Symbol, ...], sympy.Expr] = field(default_factory=dict)
    tangents: dict[str, dict[sympy.Symbol, sympy.Expr]] = field(default_factory=dict)
    seconds: dict[tuple[str, str], sympy.Expr] = field(default_factory=dict)

    def partial(self, expr: sympy.Expr, symbol: sympy.Symbol, *wrt: sympy.Symbol
                ) -> sympy.Expr:
        """d(expr)/d(wrt...) of the statement `symbol = expr`, memoised."""
        key = (symbol, *(sorted(wrt, key=str) if len(wrt) == 2 else wrt))
        if key not in self.partials:
            inner = self.partial(expr, symbol, wrt[0]) if len(wrt) == 2 else expr
            self.partials[key] = _diff_by_shape(inner, wrt[-1], self.by_shape)
        return self.partials[key]

    def first(self, builder: _ProgramBuilder, x: str) -> dict[sympy.Symbol, sympy.Expr]:
        """d(statement)/dx for every statement that depends on the argument x."""
        if x in self.tangents:
            return self.tangents[x]
        seed = self.seeds[x]
        d_x: dict[sympy.Symbol, sympy.Expr] = {seed: sympy.Integer(1)}
        for symbol, expr in self.statements:
            if symbol == seed:
                continue
            uses = sorted((u for u in expr.free_symbols if u in d_x), key=str)
            if not uses:
                continue
            dx = sum((self.partial(expr, symbol, u) * d_x[u] for u in uses), sympy.Integer(0))
            if dx != 0:
                d_x[symbol] = builder.emit(f"{symbol.name}__d__{x}", dx)
        self.tangents[x] = d_x
        return d_x

    def second(self, builder: _ProgramBuilder, x: str, y: str) -> sympy.Expr:
        """d2(result)/dxdy (symmetric: F_xy and F_yx are one statement)."""
        x, y = sorted((x, y))
        if (x, y) in self.seconds:
            return self.seconds[(x, y)]
        d_x, d_y = self.first(builder, x), self.first(builder, y)
        d_xy: dict[sympy.Symbol, sympy.Expr] = {}
        for symbol, expr in self.statements:
            if symbol in (self.seeds[x], self.seeds[y]):
                continue
            uses = sorted((u for u in expr.free_symbols if u in d_x or u in d_y), key=str)
            if not uses:
                continue
            dxy = sum((self.partial(expr, symbol, u) * d_xy[u] for u in uses if u in d_xy),
                      sympy.Integer(0))
            for u in uses:
                for v in uses:
                    if u in d_x and v in d_y:
                        second = self.partial(expr, symbol, u, v)
                        if second != 0:
                            dxy += second * d_x[u] * d_y[v]
            if dxy != 0:
                d_xy[symbol] = builder.emit(f"{symbol.name}__d2__{x}__{y}", dxy)
        self.seconds[(x, y)] = d_xy.get(self.result, sympy.Integer(0))
        return self.seconds[(x, y)]


def _diff_by_shape(expr: sympy.Expr, variable: sympy.Symbol,
                   known: dict[tuple[sympy.Expr, sympy.Symbol], sympy.Expr]) -> sympy.Expr:
    """d(expr)/d(variable), differentiated once per shape: the symbols are renamed by their
    order (same assumptions), the derivative of the renamed expression is looked up or taken,
    then renamed back. Renaming is a bijection, so the result is the derivative itself; SymPy
    rebuilds it in canonical form, the same expression `sympy.diff` gives (the generated C of
    every bundled spec is byte-identical)."""
    symbols = sorted(expr.free_symbols | {variable}, key=str)
    renamed = {s: sympy.Symbol(f"_shape{i}", **s.assumptions0) for i, s in enumerate(symbols)}
    key = (expr.xreplace(renamed), renamed[variable])
    if key not in known:
        known[key] = sympy.diff(*key)
    return known[key].xreplace({new: old for old, new in renamed.items()})


def _readable(name: str) -> str:
    """A generated statement name, shortened for a message."""
    return name if len(name) <= 60 else name[:57] + "..."


def parameter_values(spec: ModelSpec, mode: int = 0) -> dict[str, sympy.Expr | VectorRef]:
    """Parameters by name as mode `mode`'s equations see them: a [modes] parameter is its
    element for this mode; mode matrices are left out (only mode_dot reads them)."""
    values: dict[str, sympy.Expr | VectorRef] = {}
    for name, p in spec.parameters.items():
        if p.boolean:  # a condition wherever it is used: true where the value is nonzero
            values[name] = sympy.Ne(real_symbol(name), 0)
        elif p.modes:
            if len(p.shape) == 1:
                _check_mode_shape(p, spec.modes or 1)
                values[name] = real_symbol(p.slots[mode])
        elif p.size is None:
            values[name] = real_symbol(name)
        else:
            values[name] = VectorRef(name, tuple(real_symbol(slot) for slot in p.slots))
    return values


def _check_mode_shape(parameter: Parameter, modes: int) -> None:
    """A mode shape is resolved where the parameter is written: a child spec that changes
    `modes` must restate its parent's mode parameters."""
    if parameter.shape != (modes,) * len(parameter.shape):
        raise SpecError(f"parameter '{parameter.name}' has shape {list(parameter.shape)} but "
                        f"the model has {modes} modes", parameter.where,
                        "restate it (with its default) in the spec that sets 'modes'")


def _check_namespaces(spec: ModelSpec) -> None:
    sections = {
        "parameter": spec.parameters, "state variable": spec.states,
        "coupling input": spec.coupling, "function": spec.functions,
        "derived expression": spec.derived,
    }
    seen: dict[str, str] = {}
    for kind, section in sections.items():
        for name, value in section.items():
            if name in seen:
                where = value[1] if isinstance(value, tuple) else getattr(value, "where", None)
                raise SpecError(f"name clash: '{name}' is both a {seen[name]} and a {kind}",
                                where, "rename one of them")
            seen[name] = kind


def build_ir(spec: ModelSpec) -> ModelIR:
    """Resolve every name and inline every function; raise SpecError on the first problem."""
    if not spec.name:
        raise SpecError("the spec has no 'name'", spec.where, "add 'name: my_model'")
    if not spec.states:
        raise SpecError(f"'{spec.name}' declares no state_variables", spec.where,
                        "a spec without state variables can only be used through 'extends'")
    _check_namespaces(spec)
    state_names = list(spec.states)
    coupling = []
    for name, (target, where) in spec.coupling.items():
        if target not in spec.states:
            raise SpecError(f"coupling input '{name}' couples unknown state variable "
                            f"'{target}'", where,
                            did_you_mean(str(target), state_names)
                            or f"state variables: {', '.join(state_names)}")
        coupling.append(CouplingInput(name, target, state_names.index(target)))
    for state, expression in spec.derivatives.items():
        if state not in spec.states:
            raise SpecError(f"derivative given for unknown state variable '{state}'",
                            expression.where,
                            did_you_mean(state, state_names)
                            or f"state variables: {', '.join(state_names)}")
    for state, sv in spec.states.items():
        if state not in spec.derivatives:
            raise SpecError(f"state variable '{state}' has no derivative", sv.where,
                            f"add '{state}: <expression>' under derivatives:")

    modes = spec.modes or 1
    if modes > 1:
        for section, entries in (("observables", spec.observables),
                                 ("multiplicative_noise", spec.multiplicative_noise)):
            if entries:
                raise SpecError(f"'{section}' cannot be used with modes yet", spec.modes_where,
                                f"remove '{section}' or 'modes'")
    builder = _ProgramBuilder()
    scopes: list[_ModelScope] = []
    for mode in range(modes):  # every mode's equations, as TVB writes them per mode
        scopes.append(_ModelScope(spec, builder, _Functions(spec, builder, mode), mode, scopes))
    scope = scopes[0]
    for mode_scope in scopes:
        for name in spec.derived:
            if name not in mode_scope.values:
                mode_scope.derived(name)
    for fname, function in spec.functions.items():
        if function.result.where is None:
            raise SpecError(f"function '{fname}' has no return", function.where)
    # Kernel rows: state-major, mode-minor (row s * modes + m).
    outputs = [mode_scope.parse(spec.derivatives[s]) for s in state_names
               for mode_scope in scopes]
    not_states = {real_symbol(n) for n in (*spec.coupling, LOCAL_COUPLING)}

    def of_states(expression: Expression, what: str, why: str) -> sympy.Expr:
        """`expression` parsed, refused if it reaches a coupling input or local coupling."""
        value = scope.parse(expression)
        # after the parse: it may have added statements (an inlined function call)
        inputs = _inputs_of(value, dict(builder.program)) & not_states
        if inputs:
            raise SpecError(f"{what} uses {', '.join(sorted(map(str, inputs)))}",
                            expression.where, why)
        return value

    observables = []
    for name, expression in spec.observables.items():
        if name in spec.states or name in spec.parameters:
            raise SpecError(f"observable '{name}' has the name of a state variable or "
                            "parameter", expression.where, "give it another name")
        observables.append((name, of_states(
            expression, f"observable '{name}'", "observables are functions of the states and "
            "parameters (what TVB's monitors record)")))
    noise_b: list[sympy.Expr | None] = [None] * len(state_names)
    for name, expression in spec.multiplicative_noise.items():
        if name not in spec.states:
            raise SpecError(f"multiplicative noise for '{name}', which is not a state variable",
                            expression.where, did_you_mean(name, list(spec.states)) or
                            "name a state variable")
        noise_b[state_names.index(name)] = of_states(
            expression, f"the multiplicative noise of '{name}'",
            "b(x) is a function of the states and parameters (TVB's b)")
    _check_unused_functions(spec, builder)

    for p in spec.parameters.values():
        if p.modes:
            _check_mode_shape(p, modes)
    states = [dataclasses.replace(s, check_range=s.check_range or _widened(s.range))
              for s in spec.states.values()]
    kernel_states = [dataclasses.replace(s, name=mode_name(s.name, m, modes))
                     for s in states for m in range(modes)]
    kernel_coupling = [CouplingInput(mode_name(c.name, m, modes), mode_name(c.state, m, modes),
                                     c.state_index * modes + m)
                       for c in coupling for m in range(modes)]
    return ModelIR(spec.name, spec.description, spec.references, list(spec.parameters.values()),
                   kernel_states, kernel_coupling, builder.program, outputs,
                   [str(p) for p in spec.sources], spec.source_digest,
                   list(spec.resolutions), list(spec.source_sha256),
                   list(spec.couplings.values()), observables,
                   noise_b if modes == 1 else [None] * len(kernel_states),
                   modes, states, coupling)


def _inputs_of(expr: sympy.Expr, definitions: dict[sympy.Symbol, sympy.Expr]
               ) -> set[sympy.Symbol]:
    """The free symbols `expr` depends on, through the program's statements (`definitions`:
    symbol -> its expression)."""
    seen: set[sympy.Symbol] = set()
    pending = list(expr.free_symbols)
    while pending:
        symbol = pending.pop()
        if symbol in seen:
            continue
        seen.add(symbol)
        if symbol in definitions:
            pending.extend(definitions[symbol].free_symbols)
    return seen


def _check_unused_functions(spec: ModelSpec, builder: _ProgramBuilder) -> None:
    """Parse functions nobody calls too, so their errors are not silently ignored."""
    for name, function in spec.functions.items():
        if name in builder.instance_counter:
            continue
        probe = _ProgramBuilder(builder.budget)
        functions = _Functions(spec, probe)
        args: list[Argument] = []
        for arg_name, size in function.args:
            if size is None:
                args.append(real_symbol(arg_name))
            else:
                args.append(VectorRef(arg_name, tuple(real_symbol(f"{arg_name}__{i}")
                                                      for i in range(size))))
        functions.call(name, args, function.where or Location(spec.name))


def _widened(interval: tuple[float, float]) -> tuple[float, float]:
    """Default sampling interval for checks: the state range plus 10 % on each side."""
    low, high = interval
    width = high - low
    if not math.isfinite(0.1 * width) or not all(
            math.isfinite(v) for v in (low - 0.1 * width, high + 0.1 * width)):
        return (low, high)  # no room to widen within the doubles
    if width == 0:
        width = max(abs(low), 1.0)
        return (low, low + width)
    return (low - 0.1 * width, high + 0.1 * width)
