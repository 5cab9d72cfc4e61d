"""The expression language: a whitelisted subset of Python syntax turned into SymPy objects.

Spec text is never evaluated. `ast.parse` only builds a syntax tree; this module walks it and
accepts numbers, names, + - * / **, unary minus, comparisons, `and`/`or`/`not`, `where(c, a, b)`,
a fixed set of mathematical functions, calls to functions the spec declares, vector indexing
with integer literals (`P_e[3]`) and partial derivatives of declared functions written
`diff(F, x)(args)` / `diff(F, x, y)(args)`. Anything else is a SpecError naming the construct.
"""

from __future__ import annotations

import ast
import math
import warnings
from dataclasses import dataclass
from typing import Protocol

import sympy

from mfgen.codegen.math_functions import LANGUAGE_FUNCTIONS
from mfgen.errors import Location, SpecError

MAX_EXPRESSION_CHARS = 20_000
MAX_NESTING = 100
MAX_INTEGER_EXPONENT = 64

# The math functions a spec may call, from the one table (math_functions.py).
BUILTIN_FUNCTIONS = LANGUAGE_FUNCTIONS
CONSTANTS = {"pi": sympy.pi}
# max()/min() of n arguments costs SymPy O(n**3) comparisons, every time the expression is
# rebuilt (substitution, differentiation): 100 arguments took ~55 s.
MAX_MINMAX_ARGUMENTS = 8
# Mode mixing (models with `modes:`): mode_sum(x) = sum over modes of x, TVB's
# coupling[0].sum(axis=1); mode_dot(x, A) = sum_k x_k A[k, i] in mode i, TVB's numpy.dot(x, A).
MODE_FORMS = {"mode_sum": 1, "mode_dot": 2}
SPECIAL_FORMS = {"where", "diff", *MODE_FORMS}
RESERVED_NAMES = frozenset(BUILTIN_FUNCTIONS) | frozenset(CONSTANTS) | SPECIAL_FORMS

_COMPARISONS = {
    ast.Lt: sympy.StrictLessThan,
    ast.LtE: sympy.LessThan,
    ast.Gt: sympy.StrictGreaterThan,
    ast.GtE: sympy.GreaterThan,
    ast.Eq: sympy.Eq,
    ast.NotEq: sympy.Ne,
}
_OPERATOR_NAMES = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~",
}


@dataclass(frozen=True)
class VectorRef:
    """A whole vector (parameter or vector argument) passed to a function by name."""

    name: str
    elements: tuple[sympy.Expr, ...]


Argument = sympy.Expr | VectorRef


class Scope(Protocol):
    """What the parser asks the model about the names it meets."""

    def symbol(self, name: str, where: Location) -> sympy.Expr | VectorRef: ...

    def call(self, name: str, args: list[Argument], where: Location) -> sympy.Expr: ...

    def derivative(
        self, name: str, wrt: list[str], args: list[Argument], where: Location
    ) -> sympy.Expr: ...


def number(value: float | int) -> sympy.Expr:
    """A numeric literal: exact integers stay Integer (so x**2 prints as x*x), others Float."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int) and abs(value) < 2**53:
        return sympy.Integer(value)
    try:
        as_float = float(value)
    except OverflowError:  # an integer beyond the largest double
        as_float = math.inf
    if not math.isfinite(as_float):
        raise ValueError(f"{value!r} is not finite")
    return sympy.Float(as_float, precision=53)


def parse_expression(text: object, where: Location, scope: Scope) -> sympy.Expr:
    """Parse one spec expression (a YAML string or number) into a SymPy expression."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise SpecError(
            f"expected an expression, got {type(text).__name__} {text!r}",
            where,
            "write the expression as a string, e.g. 'a*x + b'",
        )
    if not isinstance(text, str):
        try:
            return number(text)
        except ValueError:
            raise SpecError(f"the number {text!r} is not finite", where,
                            "use a finite value") from None
    return _Parser(text, where, scope).parse()


class _Parser:
    def __init__(self, text: str, where: Location, scope: Scope):
        self.text = text
        self.where = where
        self.scope = scope

    def fail(self, message: str, node: ast.AST | None = None, hint: str = "") -> SpecError:
        loc = self.where
        if node is not None and hasattr(node, "col_offset") and "\n" not in self.text:
            loc = self.where.shifted(node.col_offset)
        return SpecError(f"{message} in '{_shorten(self.text)}'", loc, hint)

    def parse(self) -> sympy.Expr:
        if len(self.text) > MAX_EXPRESSION_CHARS:
            raise self.fail(f"expression longer than {MAX_EXPRESSION_CHARS} characters",
                            hint="split it into named derived expressions")
        if not self.text.strip():
            raise self.fail("empty expression", hint="write the expression after the colon")
        bad = [c for c in self.text if not (c.isascii() and (c.isprintable() or c in "\n\t"))]
        if bad:
            raise SpecError(
                f"expression contains the non-ASCII or control character {bad[0]!r} "
                f"(U+{ord(bad[0]):04X})",
                self.where,
                "names and operators must be plain ASCII; retype the expression",
            )
        source = " ".join(self.text.split())  # YAML folded text: newlines are just spaces
        try:
            with warnings.catch_warnings():  # "invalid decimal literal" etc. become errors below
                warnings.simplefilter("ignore")
                tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            loc = self.where.shifted((exc.offset or 1) - 1) if exc.offset else self.where
            if "integer string conversion" in str(exc.msg):
                raise SpecError(f"an integer in '{_shorten(self.text)}' has too many digits",
                                loc, "write long numbers in floating point, e.g. 1.5e20") \
                    from None
            raise SpecError(f"syntax error in '{_shorten(self.text)}': {exc.msg}", loc,
                            "check brackets and operators") from None
        except (RecursionError, MemoryError, ValueError):
            raise self.fail("expression is nested too deeply to parse",
                            hint="split it into named derived expressions") from None
        self._check_nesting(tree.body)
        try:
            result = self.visit(tree.body)
        except SpecError:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError, MemoryError) as exc:
            # SymPy refusing what the checks below would refuse anyway (e.g. comparing or
            # taking max() of a complex constant): still the spec's fault, still a SpecError.
            raise self.fail(f"the expression cannot be evaluated ({exc})",
                            hint="the kernels compute with finite real numbers only") from None
        if isinstance(result, VectorRef):
            raise self.fail(f"'{result.name}' is a vector; an expression must be a number",
                            tree.body, f"index it, e.g. {result.name}[0]")
        if isinstance(result, sympy.logic.boolalg.Boolean) and not isinstance(result, sympy.Expr):
            raise self.fail("a comparison is not a value", tree.body,
                            "use it as the condition of where(condition, a, b)")
        if result.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise self.fail("expression evaluates to an infinite or undefined value "
                            "(division by zero?)", hint="check the constants it divides by or "
                            "takes the logarithm of")
        if result.has(sympy.I):
            raise self.fail("expression has a complex value (square root or log of a negative "
                            "number?)", hint="the kernels compute with real numbers only")
        return self._as_doubles(result)

    def _as_doubles(self, result: sympy.Expr) -> sympy.Expr:
        """Constants as the kernels will see them: finite doubles.

        SymPy folds constants exactly (1e200*1e200 is a Float of 1e400, a product of large
        integers an exact 100-digit Integer): beyond the range of a double they are refused
        (SymPy's algebra on them, such as 0 * c = 0, is not IEEE's); integers and fractions
        beyond 2**53 become the doubles they round to.
        """
        replace = {}
        for atom in result.atoms(sympy.Number):
            if atom.is_Rational and abs(atom.p) < 2**53 and atom.q < 2**53:
                continue
            try:
                value = float(atom)
            except (OverflowError, TypeError, ValueError):
                value = math.inf
            if not math.isfinite(value):
                raise self.fail("a constant in the expression is beyond the range of a double "
                                "(about 1.8e308)", hint="rescale the constants")
            if not atom.is_Float:
                replace[atom] = number(value)
        return result.xreplace(replace) if replace else result

    def _check_nesting(self, root: ast.AST) -> None:
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_NESTING:
                raise self.fail(f"expression nested more than {MAX_NESTING} levels deep", node,
                                "split it into named derived expressions")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    # -- node visitors -------------------------------------------------------------------
    def visit(self, node: ast.AST) -> sympy.Expr | VectorRef:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.fail(f"{_describe(node)} is not allowed", node,
                            _REFUSAL_HINTS.get(type(node).__name__, _GENERAL_HINT))
        return method(node)

    def value(self, node: ast.AST) -> sympy.Expr:
        """Visit a node that must be a number-valued expression."""
        result = self.visit(node)
        if isinstance(result, VectorRef):
            raise self.fail(f"'{result.name}' is a vector, not a number", node,
                            f"index it, e.g. {result.name}[0]")
        if not isinstance(result, sympy.Expr):
            raise self.fail("a comparison cannot be used as a number", node,
                            "use where(condition, a, b) to choose between values")
        if result.is_Number:
            self._check_double(result, node)
        return result

    def _check_double(self, constant: sympy.Expr, node: ast.AST) -> None:
        """A folded constant must be a finite double, checked where it is formed: SymPy would
        go on computing with it exactly (sin(exp(4e17)) needs 1e17 digits of pi)."""
        try:
            finite = math.isfinite(float(constant))
        except (OverflowError, TypeError, ValueError):
            finite = False
        if not finite:
            raise self.fail("a constant in the expression is beyond the range of a double "
                            "(about 1.8e308)", node, "rescale the constants")

    def condition(self, node: ast.AST) -> sympy.Basic:
        result = self.visit(node)
        if isinstance(result, sympy.Expr) or isinstance(result, VectorRef):
            raise self.fail("expected a comparison (e.g. x > 0)", node,
                            "conditions compare values: where(x > 0, a, b)")
        return result

    def visit_Constant(self, node: ast.Constant) -> sympy.Expr:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise self.fail(f"the literal {node.value!r} is not allowed", node,
                            "only numbers are allowed")
        try:
            return number(node.value)
        except ValueError:
            raise self.fail(f"the number {node.value!r} is not finite", node,
                            "use a finite value") from None

    def visit_Name(self, node: ast.Name) -> sympy.Expr | VectorRef:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in BUILTIN_FUNCTIONS or node.id in SPECIAL_FORMS:
            raise self.fail(f"'{node.id}' is a function; call it with arguments", node,
                            f"write {node.id}(...)")
        return self.scope.symbol(node.id, self._loc(node))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> sympy.Basic:
        if isinstance(node.op, ast.USub):
            return -self.value(node.operand)
        if isinstance(node.op, ast.UAdd):
            return self.value(node.operand)
        if isinstance(node.op, ast.Not):
            return sympy.Not(self.condition(node.operand))
        raise self.fail(f"the operator '{_OPERATOR_NAMES.get(type(node.op), '?')}' is not "
                        "allowed", node, "use + - * / ** only")

    def visit_BinOp(self, node: ast.BinOp) -> sympy.Expr:
        op = type(node.op)
        if op not in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow):
            raise self.fail(f"the operator '{_OPERATOR_NAMES.get(op, '?')}' is not allowed",
                            node, "use + - * / ** only")
        left, right = self.value(node.left), self.value(node.right)
        if op is ast.Add:
            return left + right
        if op is ast.Sub:
            return left - right
        if op is ast.Mult:
            return left * right
        if op is ast.Div:
            if right == 0:
                raise self.fail("division by zero", node, "the divisor is always 0")
            return left / right
        return self._power(left, right, node)

    def _power(self, base: sympy.Expr, exponent: sympy.Expr, node: ast.AST) -> sympy.Expr:
        constant = not base.free_symbols and not exponent.free_symbols
        if (base.is_Number and exponent.is_Number) or (
                constant and not (base.is_positive and exponent.is_Integer)):
            # Fold numerically: SymPy would compute e.g. 10**10**10 exactly and never return,
            # and leave (-pi)**pi (NaN in C, complex in Python) or pi**1e200 (inf in C, an
            # OverflowError in Python) alone. Only exact powers such as sqrt(2)**2 stay exact.
            try:
                value = float(base) ** float(exponent)
            except (OverflowError, ZeroDivisionError):
                value = math.inf
            except (TypeError, ValueError):  # not a real constant (complex): refused below
                value = math.nan
            if isinstance(value, complex) or not math.isfinite(value):
                raise self.fail("the power is not a finite real number", node,
                                "constant powers must give a finite real double")
            return number(value) if not value.is_integer() else number(int(value))
        if exponent.is_Integer and abs(int(exponent)) > MAX_INTEGER_EXPONENT:
            raise self.fail(f"integer exponent {exponent} is larger than "
                            f"{MAX_INTEGER_EXPONENT}", node, "write exp(n*log(x)) if you mean it")
        return base**exponent

    def visit_BoolOp(self, node: ast.BoolOp) -> sympy.Basic:
        parts = [self.condition(v) for v in node.values]
        return sympy.And(*parts) if isinstance(node.op, ast.And) else sympy.Or(*parts)

    def visit_Compare(self, node: ast.Compare) -> sympy.Basic:
        terms = [self.value(node.left)] + [self.value(c) for c in node.comparators]
        relations = []
        for op, left, right in zip(node.ops, terms, terms[1:]):
            if type(op) not in _COMPARISONS:
                raise self.fail("only < <= > >= == != comparisons are allowed", node,
                                "compare two numbers, e.g. where(x > 0, a, b)")
            relations.append(_COMPARISONS[type(op)](left, right))
        return sympy.And(*relations) if len(relations) > 1 else relations[0]

    def visit_Subscript(self, node: ast.Subscript) -> sympy.Expr:
        if not isinstance(node.value, ast.Name):
            raise self.fail("only named vectors can be indexed", node,
                            "index a vector parameter or argument, e.g. P[0]")
        # A scope may index names itself (coupling functions: x_j[k] is coupled variable k).
        indexed = getattr(self.scope, "indexed", None)
        if indexed is not None:
            inner = node.slice
            if not (isinstance(inner, ast.Constant) and type(inner.value) is int):
                raise self.fail(f"the index of '{node.value.id}' must be a non-negative "
                                "integer literal", node, f"write e.g. {node.value.id}[0]")
            return indexed(node.value.id, inner.value, self._loc(node))
        target = self.scope.symbol(node.value.id, self._loc(node))
        if not isinstance(target, VectorRef):
            raise self.fail(f"'{node.value.id}' is a scalar and cannot be indexed", node,
                            "declare it with a list default to make it a vector")
        index_node = node.slice
        negative = isinstance(index_node, ast.UnaryOp) and isinstance(index_node.op, ast.USub)
        inner = index_node.operand if negative else index_node
        if not (isinstance(inner, ast.Constant) and type(inner.value) is int):
            raise self.fail(f"the index of '{target.name}' must be an integer literal", node,
                            f"write e.g. {target.name}[0]")
        index = -inner.value if negative else inner.value
        size = len(target.elements)
        if not 0 <= index < size:
            raise self.fail(f"index {index} is out of range for '{target.name}', which has "
                            f"{size} elements", node, f"use an index from 0 to {size - 1}")
        return target.elements[index]

    def visit_Call(self, node: ast.Call) -> sympy.Expr:
        if node.keywords:
            raise self.fail("keyword arguments are not allowed", node,
                            "pass arguments by position")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail("starred arguments are not allowed", node,
                            "pass the arguments one by one")
        if isinstance(node.func, ast.Call):
            return self._derivative_call(node)
        if not isinstance(node.func, ast.Name):
            raise self.fail(f"{_describe(node.func)} cannot be called", node,
                            "only math functions and the spec's functions can be called")
        name = node.func.id
        if name == "where":
            if len(node.args) != 3:
                raise self.fail(f"where() takes 3 arguments (condition, a, b), got "
                                f"{len(node.args)}", node, "write where(x > 0, a, b)")
            cond = self.condition(node.args[0])
            a, b = self.value(node.args[1]), self.value(node.args[2])
            return sympy.Piecewise((a, cond), (b, True))
        if name in CONSTANTS:
            raise self.fail(f"'{name}' is a constant, not a function", node,
                            f"write '*' to multiply: {name} * (...)")
        if name in MODE_FORMS:
            return self._mode_form(name, node)
        if name == "diff":
            raise self.fail("diff(F, x) names a derivative function; call it with F's "
                            "arguments", node, "write diff(F, x)(a, b)")
        if name in BUILTIN_FUNCTIONS:
            function = BUILTIN_FUNCTIONS[name]
            arity = function.arity
            args = [self.value(a) for a in node.args]
            if arity is not None and len(args) != arity:
                raise self.fail(f"{name}() takes {arity} argument(s), got {len(args)}", node,
                                f"call it as {name}({', '.join('abc'[:arity])})")
            if arity is None and len(args) < 2:
                raise self.fail(f"{name}() takes at least 2 arguments, got {len(args)}", node,
                                f"call it as {name}(a, b, ...)")
            # SymPy flattens max(max(a, b), c) into max(a, b, c): count what it will compare.
            flat = sum(len(a.args) if isinstance(a, (sympy.Max, sympy.Min)) else 1 for a in args)
            if arity is None and flat > MAX_MINMAX_ARGUMENTS:
                raise self.fail(f"{name}() takes at most {MAX_MINMAX_ARGUMENTS} arguments "
                                f"(nested max/min calls included), got {flat}", node,
                                "compute partial maxima as derived expressions and take the "
                                f"{name}() of those")
            if all(not a.free_symbols for a in args):
                return self._fold(name, args, node)
            result = function.sympy_function(*args)
            if result.is_Number:
                self._check_double(result, node)
            return result
        args = [self.argument(a) for a in node.args]
        return self.scope.call(name, args, self._loc(node))

    def _mode_form(self, name: str, node: ast.Call) -> sympy.Expr:
        """mode_sum(x) and mode_dot(x, A): names only (they read x in every mode)."""
        arity = MODE_FORMS[name]
        usage = "mode_sum(x)" if arity == 1 else "mode_dot(x, A)"
        if len(node.args) != arity or not all(isinstance(a, ast.Name) for a in node.args):
            raise self.fail(f"{name}() takes {arity} name(s)", node,
                            f"write {usage} with a per-mode value x"
                            + (" and a [modes, modes] parameter A" if arity == 2 else ""))
        handler = getattr(self.scope, name, None)
        if handler is None:
            raise self.fail(f"{name}() mixes the modes of a model-level value", node,
                            "use it in the model's derived expressions or derivatives, not "
                            "inside a function or coupling")
        return handler(*[a.id for a in node.args], self._loc(node))  # type: ignore[attr-defined]

    def _fold(self, name: str, args: list[sympy.Expr], node: ast.AST) -> sympy.Expr:
        """A math function of constants, computed as a double: SymPy would keep exp(exp(20))
        exact and, asked its sign (abs, max, a power), evaluate it to ever more digits
        (unbounded time). Folding in floating point is also what C does."""
        try:
            values = [float(a) for a in args]
        except (TypeError, ValueError, OverflowError):
            values = [math.nan]
        fold = BUILTIN_FUNCTIONS[name].fold
        assert fold is not None, f"{name} has no fold in math_functions.py"
        value = fold(*values)
        if math.isnan(value):
            raise self.fail(f"{name}() of this constant is not a real number", node,
                            "the kernels compute with finite real numbers only")
        if not math.isfinite(value):
            raise self.fail("a constant in the expression is beyond the range of a double "
                            "(about 1.8e308)", node, "rescale the constants")
        return number(value)

    def _derivative_call(self, node: ast.Call) -> sympy.Expr:
        inner = node.func
        assert isinstance(inner, ast.Call)
        if not (isinstance(inner.func, ast.Name) and inner.func.id == "diff"):
            raise self.fail("a call result cannot be called", node,
                            "only diff(F, x)(...) is called twice")
        if inner.keywords or len(inner.args) < 2:
            raise self.fail("diff takes a function and one or two argument names", node,
                            "write diff(F, x)(a, b)")
        if not all(isinstance(a, ast.Name) for a in inner.args):
            raise self.fail("diff(F, x, ...) takes names only", node,
                            "write diff(F, x)(a, b) with F's name and its argument's name")
        fname, *wrt = [a.id for a in inner.args]  # type: ignore[attr-defined]
        args = [self.argument(a) for a in node.args]
        return self.scope.derivative(fname, wrt, args, self._loc(node))

    def argument(self, node: ast.AST) -> Argument:
        result = self.visit(node)
        if not isinstance(result, (sympy.Expr, VectorRef)):
            raise self.fail("a comparison cannot be passed as an argument", node,
                            "pass where(condition, a, b) instead")
        # An argument becomes a statement of its own: check it here, not only the result.
        if isinstance(result, sympy.Expr) and result.has(sympy.I):
            raise self.fail("an argument has a complex value (square root or log of a "
                            "negative number?)", node, "the kernels compute with real numbers "
                            "only")
        if isinstance(result, sympy.Expr) and result.has(sympy.zoo, sympy.nan, sympy.oo,
                                                         -sympy.oo):
            raise self.fail("an argument evaluates to an infinite or undefined value", node,
                            "check the constants it divides by or takes the logarithm of")
        return result

    def _loc(self, node: ast.AST) -> Location:
        if "\n" in self.text:
            return self.where
        return self.where.shifted(getattr(node, "col_offset", 0))


_GENERAL_HINT = ("expressions may use numbers, names, + - * / **, comparisons, where(), "
                 "math functions and the spec's functions")
# Refused constructs that have a direct equivalent in the expression language.
_REFUSAL_HINTS = {
    "IfExp": "write where(condition, a, b)",
    "Lambda": "declare a function under 'functions:' and call it",
}


def _describe(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access (a.b)",
        "Lambda": "lambda",
        "ListComp": "a list comprehension",
        "SetComp": "a set comprehension",
        "DictComp": "a dict comprehension",
        "GeneratorExp": "a generator expression",
        "JoinedStr": "an f-string",
        "NamedExpr": "the walrus operator (:=)",
        "IfExp": "'a if c else b'",
        "List": "a list",
        "Tuple": "a tuple",
        "Dict": "a dict",
        "Set": "a set",
        "Starred": "a starred expression",
        "Await": "await",
        "Yield": "yield",
        "Slice": "a slice",
    }
    return names.get(type(node).__name__, f"the construct '{type(node).__name__}'")


def _shorten(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
