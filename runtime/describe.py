"""Models described for people: `mfgen show` (equations, states, parameters) and the starter
spec of `mfgen new`."""

from __future__ import annotations

from typing import Any

from mfgen.errors import printable


def _bounds(pair: Any) -> str:
    if not pair:
        return "-"
    low, high = pair
    return f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"


def _default(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_default(v) for v in value) + "]"
    return f"{value:g}"


def describe_model(spec: str, model: dict[str, Any], *, latex: bool = False,
                   stats: bool = False) -> str:
    """The text `mfgen show` prints: description, states, coupling, parameters, equations."""
    from mfgen.codegen.spec import load_spec

    parsed = load_spec(spec)
    lines = [f"{model['name']}: " + " ".join(printable(line.strip()) for line in
                                              model["description"].strip().splitlines())]
    lines.append("  sources: " + ", ".join(printable(str(p)) for p in parsed.sources))
    modes = int(model.get("modes", 1))
    if modes != 1:  # TVB's layout: every state, coupling input and equation per mode
        lines.append(f"  modes: {modes} (arrays are (n_state, n_nodes, {modes}); equations per "
                     "mode)")
    lines.append(f"  states ({len(model['states'])}), in the row order of the state array:")
    for s in model["states"]:
        lines.append(f"    {s['name']:<10} {s['unit'] or '-':<8} range {_bounds(s['range']):<16}"
                     f" bounds {_bounds(s['boundaries']):<14} {printable(s['description'])}")
    coupling = ", ".join(f"{c['name']} <- {c['state']}" for c in model["coupling"]) or "none"
    lines.append(f"  coupling inputs (TVB cvar): {coupling}")
    lines.append(f"  parameters ({len(model['parameters'])}): default, unit, range")
    for p in model["parameters"]:
        default = p["default"]
        if p.get("modes") and len(p["shape"]) == 2:  # a mode matrix, row by row
            width = p["shape"][1]
            default = [default[i:i + width] for i in range(0, len(default), width)]
        lines.append(f"    {p['name']:<22} {_default(default):<14} {p['unit'] or '-':<8} "
                     f"{_bounds(p['range']):<18} {printable(p['description'])}")
    if parsed.functions:
        lines.append("  functions:")
        for function in parsed.functions.values():
            args = ", ".join(name if size is None else f"{name}[{size}]"
                             for name, size in function.args)
            lines.append(f"    {function.name}({args}):")
            for name, expression in function.derived:
                lines.append(f"      {name} = {_equation(expression, parsed, function, latex)}")
            lines.append(f"      return {_equation(function.result, parsed, function, latex)}")
    if parsed.derived:
        lines.append("  derived:")
        for name, expression in parsed.derived.items():
            lines.append(f"    {name} = {_equation(expression, parsed, None, latex)}")
    lines.append("  derivatives:")
    for name, expression in parsed.derivatives.items():
        left = rf"\frac{{d{name}}}{{dt}}" if latex else f"d{name}/dt"
        lines.append(f"    {left} = {_equation(expression, parsed, None, latex)}")
    if stats:
        numbers = model["stats"]
        calls = ", ".join(f"{k} {v}" for k, v in numbers["calls_per_node"].items()) or "none"
        lines.append(f"  statements in the IR: {numbers['statements_ir']}, after optimisation: "
                     f"{numbers['statements']} ({numbers['loop_invariant_statements']} hoisted "
                     "out of the node loop)")
        lines.append(f"  operations before CSE: {numbers['operations_before_cse']}, after CSE: "
                     f"{numbers['operations_after_cse']}")
        lines.append(f"  transcendental calls per node: {calls}")
    return "\n".join(lines)


def _equation(expression: Any, spec: Any, function: Any, latex: bool) -> str:
    text = expression.text if isinstance(expression.text, str) else repr(expression.text)
    if not latex:
        return printable(" ".join(text.split()))
    import sympy

    from mfgen.codegen.expressions import parse_expression
    from mfgen.errors import Location

    scope = _LatexScope(spec, function)
    parsed = parse_expression(expression.text, expression.where or Location("<spec>"), scope)
    return sympy.latex(parsed, symbol_names={s: _latex_name(s.name)
                                             for s in parsed.free_symbols})


def _latex_name(name: str) -> str:
    # SymPy reads suffixes such as 'cal' or 'dot' in long names as accents; spell names out.
    base, _, sub = name.partition("_")
    if "{" in name:  # vector elements, already P_{0}
        return name
    shown = base if len(base) == 1 else rf"\mathrm{{{base}}}"
    if sub:
        escaped = sub.replace("_", r"\_")
        shown += rf"_{{\mathrm{{{escaped}}}}}"
    return shown


class _LatexScope:
    """Names stay names: what `show --latex` needs is the written equation, not the inlined
    program (the parser still refuses anything outside the expression language)."""

    def __init__(self, spec: Any, function: Any):
        # [modes] parameters read as one mode's value in an equation, like scalars
        self.vectors = {name: p.size for name, p in spec.parameters.items()
                        if p.size and not p.modes}
        if function is not None:
            self.vectors.update({name: size for name, size in function.args if size})
            for name, size in function.args:
                if size is None:
                    self.vectors.pop(name, None)

    def symbol(self, name: str, where: Any) -> Any:
        import sympy

        from mfgen.codegen.expressions import VectorRef

        if name in self.vectors:
            return VectorRef(name, tuple(sympy.Symbol(f"{name}_{{{i}}}")
                                         for i in range(self.vectors[name])))
        return sympy.Symbol(name)

    def _args(self, args: list[Any]) -> list[Any]:
        import sympy

        return [sympy.Symbol(a.name) if hasattr(a, "elements") else a for a in args]

    def call(self, name: str, args: list[Any], where: Any) -> Any:
        import sympy

        return sympy.Function(name)(*self._args(args))

    def derivative(self, name: str, wrt: list[str], args: list[Any], where: Any) -> Any:
        import sympy

        return sympy.Function(rf"\partial_{{{' '.join(wrt)}}} {name}")(*self._args(args))

    def mode_sum(self, name: str, where: Any) -> Any:  # modes: written as called
        import sympy

        return sympy.Function(r"\mathrm{mode\_sum}")(sympy.Symbol(name))

    def mode_dot(self, name: str, matrix: str, where: Any) -> Any:
        import sympy

        return sympy.Function(r"\mathrm{mode\_dot}")(sympy.Symbol(name), sympy.Symbol(matrix))


STARTER_SPEC = '''\
# A starter spec written by `mfgen new {name}`. It builds and checks as written; edit it, then
#     mfgen check {name}.yaml       compiled C vs the NumPy reference at random states
#     mfgen show {name}.yaml        equations, states, parameters
#     mfgen simulate {name}.yaml --duration 1000 --coupling-param a=0.01 --plot {name}.png
# The walk-through is docs/authoring.md, every key is in docs/spec-language.md.
name: {name}                       # a C-safe identifier: letters, digits, single underscores
description: >
  Wilson-Cowan-style excitatory/inhibitory rate model: a starting point to edit.
references:
  - Wilson HR, Cowan JD (1972) Biophys J 12:1-24

# Parameters are runtime arguments (one value for all regions, or one per region); changing one
# never recompiles. `range` is where `mfgen check` samples random per-region values.
parameters:
  tau_e:   {{default: 10.0, range: [1.0, 100.0], unit: ms, description: excitatory time constant}}
  tau_i:   {{default: 20.0, range: [1.0, 100.0], unit: ms, description: inhibitory time constant}}
  w_ee:    {{default: 12.0, range: [0.0, 30.0], unit: "1", description: E to E weight}}
  w_ei:    {{default: 10.0, range: [0.0, 30.0], unit: "1", description: I to E weight}}
  w_ie:    {{default: 10.0, range: [0.0, 30.0], unit: "1", description: E to I weight}}
  w_ii:    {{default: 2.0, range: [0.0, 30.0], unit: "1", description: I to I weight}}
  theta:   {{default: 4.0, range: [0.0, 10.0], unit: "1", description: sigmoid threshold}}
  gain:    {{default: 1.2, range: [0.1, 5.0], unit: "1", description: sigmoid slope}}
  drive_e: {{default: 1.0, range: [0.0, 5.0], unit: "1", description: external drive to E}}

# One entry per state, in the row order of the state array. range: where random initial
# states are drawn; boundaries: values the integrator clamps to (null = open).
state_variables:
  E: {{range: [0.0, 1.0], boundaries: [0.0, 1.0], unit: "1", description: excitatory activity}}
  I: {{range: [0.0, 1.0], boundaries: [0.0, 1.0], unit: "1", description: inhibitory activity}}

# Network input: c_e receives the coupling function of the other regions' E (TVB's cvar).
coupling:
  c_e: E

# Functions are inlined; they see their arguments, their own `derived` and the parameters.
functions:
  sigmoid:
    args: [x]
    return: 1 / (1 + exp(-gain * (x - theta)))

# Intermediate quantities, in any order. local_coupling is TVB's scalar local coupling.
derived:
  input_e: w_ee * E - w_ei * I + drive_e + c_e + local_coupling * E
  input_i: w_ie * E - w_ii * I

# Exactly one time derivative per state variable (per ms).
derivatives:
  E: (sigmoid(input_e) - E) / tau_e
  I: (sigmoid(input_i) - I) / tau_i
'''


def starter_spec(name: str) -> str:
    """The commented spec `mfgen new NAME` writes."""
    return STARTER_SPEC.format(name=name)
