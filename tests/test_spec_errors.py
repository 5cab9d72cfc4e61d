"""A bad spec gets one clear message: file:line[:col], what is wrong, and a hint saying what to do.

Every case mutates one line of a small valid spec (BASE) and pins the exact place and the key
phrases of the message and hint. Nothing is compiled: load_spec + build_ir only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfgen.codegen.ir import build_ir
from mfgen.codegen.spec import load_spec
from mfgen.errors import SpecError

# Line numbers in the tables below refer to this text (mutations keep earlier lines in place).
BASE = """\
name: toy
parameters:
  g_L: {default: 1.0, range: [0.1, 10.0]}
  E_L: {default: -65.0}
  P: {default: [0.5, 0.25, 0.125]}
state_variables:
  V: {range: [-80.0, -40.0]}
  w: {range: [0.0, 1.0]}
coupling:
  c_0: V
functions:
  F:
    args: [x, y]
    return: x * y + g_L
  poly:
    args: [u, "Q[3]"]
    return: Q[0] + Q[1] * u + Q[2] * u**2
derived:
  drive: F(V, c_0)
derivatives:
  V: -g_L * (V - E_L) + drive + poly(w, P)
  w: (P[0] * V - w) / 10
"""
W_LINE = "  w: (P[0] * V - w) / 10"  # line 22


def mutate(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once in the spec"
    return text.replace(old, new)


def spec_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        build_ir(load_spec(path))
    return info.value


def assert_spec_error(path: Path, where: str, message: str, hint: str,
                      in_file: Path | None = None) -> SpecError:
    """Loading `path` fails at `where` ("line:col") of `in_file` (default: `path` itself),
    saying `message` on one line and `hint` on a second."""
    error = spec_error(path)
    text = str(error)
    assert text.startswith(f"{(in_file or path).resolve()}:{where}: "), text
    first, *rest = text.split("\n")
    assert message in first, text
    assert len(rest) == 1 and rest[0].startswith("  hint: ") and hint in rest[0], text
    return error


def test_the_base_spec_is_valid(write_spec):
    ir = build_ir(load_spec(write_spec(BASE)))
    assert [s.name for s in ir.states] == ["V", "w"]


def test_message_is_file_line_column_then_hint(write_spec):
    path = write_spec(mutate("-g_L * (V", "-gL * (V"))
    assert str(spec_error(path)) == (
        f"{path.resolve()}:21:7: undefined symbol 'gL'\n  hint: did you mean 'g_L'?"
    )


MISTAKES = {
    # -- YAML ------------------------------------------------------------------------------
    "yaml-unclosed-brace": (
        ("  V: {range: [-80.0, -40.0]}", "  V: {range: [-80.0, -40.0]"), "8:3",
        "YAML syntax error: expected ',' or '}', but got '<scalar>' (while parsing a flow "
        "mapping started at line 7)", "close the bracket",
    ),
    "yaml-tab-indent": (
        ("  E_L: {default", "\tE_L: {default"), "4:1",
        "YAML syntax error: found character '\\t' that cannot start any token",
        "indent with spaces",
    ),
    "yaml-bad-indent": (
        ("  P: {default", " P: {default"), "5:2",
        "YAML syntax error: expected <block end>", "indent all keys of one mapping",
    ),
    "yaml-unquoted-colon": (
        ("name: toy\n", "name: toy\ndescription: Wilson-Cowan: two populations\n"), "2:26",
        "YAML syntax error: mapping values are not allowed here", "quote a value",
    ),
    "yaml-second-document": (
        (W_LINE, W_LINE + "\n---\nname: other"), "23:1",
        "a spec must be a single YAML document", "remove this '---'",
    ),
    "yaml-boolean-key": (
        ("  E_L: {default", "  on: {default"), "4:3",
        "'on' is ambiguous: YAML 1.1 reads it as the boolean True", 'quote it ("on")',
    ),
    # -- unknown keys -------------------------------------------------------------------------
    "unknown-top-level-key": (
        ("derived:\n", "derivd:\n"), "18:1",
        "unknown key 'derivd' in the spec", "did you mean 'derived'?",
    ),
    "unknown-parameter-key": (
        ("range: [0.1, 10.0]", "rnge: [0.1, 10.0]"), "3:23",
        "unknown key 'rnge' in parameter 'g_L'", "did you mean 'range'?",
    ),
    "unknown-state-key": (
        ("V: {range:", "V: {rang:"), "7:7",
        "unknown key 'rang' in state variable 'V'", "did you mean 'range'?",
    ),
    "unknown-function-key": (
        ("    return: x * y", "    retrun: x * y"), "14:5",
        "unknown key 'retrun' in function 'F'", "did you mean 'return'?",
    ),
    # -- undefined names ----------------------------------------------------------------------
    "undefined-symbol-in-function": (
        ("x * y + g_L", "x * z + g_L"), "14:17",
        "undefined symbol 'z' in function 'F'", "a function sees only its arguments",
    ),
    "misspelt-symbol-in-function": (
        ("Q[1] * u +", "Q[1] * uu +"), "17:27",
        "undefined symbol 'uu' in function 'poly'", "did you mean 'u'?",
    ),
    "undefined-function": (
        ("drive: F(V, c_0)", "drive: G(V, c_0)"), "19:10",
        "call of undefined function 'G'", "declare it under functions:",
    ),
    "misspelt-function": (
        ("poly(w, P)", "polly(w, P)"), "21:33",
        "call of undefined function 'polly'", "did you mean 'poly'?",
    ),
    "value-called-as-function": (
        ("drive: F(V, c_0)", "drive: g_L(V - E_L)"), "19:10",
        "'g_L' is a value, not a function", "write '*' to multiply: g_L * (...)",
    ),
    "constant-called-as-function": (
        ("drive: F(V, c_0)", "drive: pi(V - E_L)"), "19:10",
        "'pi' is a constant, not a function", "write '*' to multiply",
    ),
    # -- duplicates ---------------------------------------------------------------------------
    "duplicate-parameter": (
        ("  E_L: {default", "  g_L: {default"), "4:3",
        "duplicate key 'g_L' (first defined at line 3)", "remove one of the two",
    ),
    "duplicate-derivative": (
        (W_LINE, "  V: (P[0] * V - w) / 10"), "22:3",
        "duplicate key 'V' (first defined at line 21)", "remove one of the two",
    ),
    "duplicate-argument": (
        ("args: [x, y]", "args: [x, x]"), "13:15",
        "duplicate argument 'x' in function 'F'", "give each argument its own name",
    ),
    # -- states and derivatives ---------------------------------------------------------------
    "state-without-derivative": (
        (W_LINE + "\n", ""), "8:3",
        "state variable 'w' has no derivative", "add 'w: <expression>' under derivatives:",
    ),
    "derivative-of-unknown-state": (
        (W_LINE, "  ww: (P[0] * V - w) / 10"), "22:7",
        "derivative given for unknown state variable 'ww'", "did you mean 'w'?",
    ),
    "coupling-of-unknown-state": (
        ("  c_0: V", "  c_0: U"), "10:8",
        "coupling input 'c_0' couples unknown state variable 'U'", "state variables: V, w",
    ),
    # -- cycles -------------------------------------------------------------------------------
    "cycle-among-derived": (
        ("drive: F(V, c_0)", "drive: F(V, c_0) + 0.1 * echo\n  echo: 2 * drive"), "19:10",
        "cycle among derived expressions: drive -> echo -> drive", "cannot depend on itself",
    ),
    "cycle-inside-function": (
        ("    return: x * y + g_L", "    return: a\n    derived:\n      a: b + x\n      b: a * y"),
        "16:10", "cycle among derived expressions of function 'F': a -> b -> a",
        "cannot depend on itself",
    ),
    "recursive-function": (
        ("x * y + g_L", "x * F(x, y)"), "14:17",
        "function 'F' calls itself (F -> F)", "recursion is not supported",
    ),
    # -- arguments ----------------------------------------------------------------------------
    "too-few-arguments": (
        ("drive: F(V, c_0)", "drive: F(V)"), "19:10",
        "function 'F' takes 2 argument(s) (x, y), got 1", "call it as F(x, y)",
    ),
    "too-many-arguments": (
        ("poly(w, P)", "poly(w, P, V)"), "21:33",
        "function 'poly' takes 2 argument(s) (u, Q[3]), got 3", "call it as poly(u, Q[3])",
    ),
    "math-function-arity": (
        ("(P[0] * V - w) / 10", "exp(V, w) / 10"), "22:6",
        "exp() takes 1 argument(s), got 2", "call it as exp(a)",
    ),
    "vector-passed-for-scalar": (
        ("drive: F(V, c_0)", "drive: F(P, c_0)"), "19:10",
        "argument 'x' of 'F' is a scalar but the vector 'P' was passed",
        "pass one element, e.g. P[0]",
    ),
    "scalar-passed-for-vector": (
        ("poly(w, P)", "poly(w, E_L)"), "21:33",
        "argument 'Q' of 'poly' is a vector of 3 elements", "pass a vector parameter",
    ),
    "vector-of-wrong-size": (
        ("[0.5, 0.25, 0.125]", "[0.5, 0.25]"), "21:33",
        "argument 'Q' of 'poly' needs 3 elements but 'P' has 2", "pass a vector of 3 elements",
    ),
    "vector-used-as-number": (
        ("(P[0] * V - w)", "(P * V - w)"), "22:7",
        "'P' is a vector, not a number", "index it, e.g. P[0]",
    ),
    "diff-of-non-argument": (
        ("drive: F(V, c_0)", "drive: diff(F, xx)(V, c_0)"), "19:10",
        "diff(F, xx): 'xx' is not a scalar argument of 'F'", "did you mean 'x'?",
    ),
    "diff-of-vector-argument": (
        ("drive: F(V, c_0)", "drive: diff(poly, Q)(V, P)"), "19:10",
        "diff(poly, Q): 'Q' is not a scalar argument of 'poly'", "arguments: u",
    ),
    # -- vector indices -----------------------------------------------------------------------
    "index-out-of-range": (
        ("(P[0] * V - w)", "(P[3] * V - w)"), "22:7",
        "index 3 is out of range for 'P', which has 3 elements", "use an index from 0 to 2",
    ),
    "negative-index": (
        ("(P[0] * V - w)", "(P[-1] * V - w)"), "22:7",
        "index -1 is out of range for 'P'", "use an index from 0 to 2",
    ),
    "index-out-of-range-in-function": (
        ("Q[2] * u**2", "Q[3] * u**2"), "17:31",
        "index 3 is out of range for 'Q', which has 3 elements", "use an index from 0 to 2",
    ),
    "non-literal-index": (
        ("(P[0] * V - w)", "(P[w] * V - w)"), "22:7",
        "the index of 'P' must be an integer literal", "write e.g. P[0]",
    ),
    "indexed-scalar": (
        ("(P[0] * V - w)", "(g_L[0] * V - w)"), "22:7",
        "'g_L' is a scalar and cannot be indexed", "declare it with a list default",
    ),
    # -- numbers ------------------------------------------------------------------------------
    "non-numeric-default": (
        ("default: -65.0", "default: -65 mV"), "4:18",
        "default of parameter 'E_L' must be a number, got '-65 mV'", "write a plain number",
    ),
    "boolean-default-with-range": (  # YAML's true/false make a boolean parameter
        ("default: 1.0", "default: true"), "3:24",
        "boolean parameter 'g_L' cannot have a range", "remove the range",
    ),
    # YAML 1.1 forms that would change a value silently are refused with a way out.
    "yaml11-yes": (
        ("default: 1.0", "default: yes"), "3:18",
        "'yes' is ambiguous: YAML 1.1 reads it as the boolean True",
        'quote it ("yes") if it is text, or write true or false',
    ),
    "yaml11-off-in-list": (
        ("range: [0.1, 10.0]", "range: [0.1, off]"), "3:36",
        "'off' is ambiguous: YAML 1.1 reads it as the boolean False", 'quote it ("off")',
    ),
    "yaml11-octal": (
        ("default: 1.0", "default: 010"), "3:18",
        "'010' is ambiguous: YAML 1.1 reads it as the octal number 8", "plain decimal",
    ),
    "yaml11-base-60": (
        ("default: 1.0", "default: 1:30"), "3:18",
        "'1:30' is ambiguous: YAML 1.1 reads it as the base-60 number 90", "plain decimal",
    ),
    "yaml11-base-60-float": (
        ("default: 1.0", "default: 1:30.5"), "3:18",
        "'1:30.5' is ambiguous: YAML 1.1 reads it as the base-60 number 90.5", "plain decimal",
    ),
    "range-wider-than-a-double": (
        ("range: [0.1, 10.0]", "range: [-1e308, 1e308]"), "3:30",
        "range of 'g_L' [-1e+308, 1e+308] is wider than a double can hold",
        "narrower than about 1.8e308",
    ),
    "name-too-long": (
        ("  E_L: {default", "  " + "E" * 65 + ": {default"), "4:3",
        "the parameter name 'EEEEEEEEEEEEEEEEEEEE...' has 65 characters; names are limited "
        "to 64", "use a shorter name",
    ),
    "max-of-too-many-arguments": (
        (W_LINE, "  w: max(V, w, V, w, V, w, V, max(w, V))"), "22:6",
        "max() takes at most 8 arguments (nested max/min calls included), got 9",
        "compute partial maxima as derived expressions",
    ),
    "constant-function-beyond-a-double": (
        (W_LINE, "  w: erfc(-exp(exp(10))) * w"), "22:12",
        "a constant in the expression is beyond the range of a double", "rescale the constants",
    ),
    "constant-log-of-negative": (
        (W_LINE, "  w: w * abs(log(-2))"), "22:14",
        "log() of this constant is not a real number", "real numbers only",
    ),
    "nan-default": (
        ("default: -65.0", "default: .nan"), "4:18",
        "default of parameter 'E_L' must be finite, got nan", "use a finite number",
    ),
    "infinite-default": (
        ("default: -65.0", "default: -.inf"), "4:18",
        "default of parameter 'E_L' must be finite, got -inf", "use a finite number",
    ),
    "infinite-vector-element": (
        ("[0.5, 0.25, 0.125]", "[0.5, .inf, 0.125]"), "5:22",
        "default of 'P'[1] must be finite, got inf", "use a finite number",
    ),
    "reversed-range": (
        ("range: [0.0, 1.0]", "range: [1.0, 0.0]"), "8:14",
        "range of 'w' has low 1.0 above high 0.0", "write [low, high]",
    ),
    "infinite-literal": (
        ("(P[0] * V - w) / 10", "(P[0] * V - w) / 1e999"), "22:23",
        "the number inf is not finite", "use a finite value",
    ),
    "complex-constant": (
        ("(P[0] * V - w) / 10", "(P[0] * V - w) / 10 + sqrt(-1)"), "22:28",
        "sqrt() of this constant is not a real number", "real numbers only",
    ),
    # -- name clashes -------------------------------------------------------------------------
    "parameter-and-state": (
        ("  E_L: {default", "  w: {default"), "8:3",
        "name clash: 'w' is both a parameter and a state variable", "rename one of them",
    ),
    "parameter-and-derived": (
        ("drive: F(V, c_0)", "drive: F(V, c_0)\n  E_L: -60"), "20:8",
        "name clash: 'E_L' is both a parameter and a derived expression", "rename one of them",
    ),
    "parameter-and-function": (
        ("  poly:\n", "  P:\n"), "15:3",
        "name clash: 'P' is both a parameter and a function", "rename one of them",
    ),
    "state-and-coupling": (
        ("  c_0: V", "  w: V"), "10:6",
        "name clash: 'w' is both a state variable and a coupling input", "rename one of them",
    ),
    "argument-and-local": (
        ("    return: x * y + g_L", "    return: x * y\n    derived:\n      y: 2 * x"), "16:7",
        "'y' in function 'F' is both an argument and a derived expression", "rename one of them",
    ),
}


@pytest.mark.parametrize(
    ("edit", "where", "message", "hint"), MISTAKES.values(), ids=MISTAKES.keys()
)
def test_mistake_is_reported_at_its_place(write_spec, edit, where, message, hint):
    assert_spec_error(write_spec(mutate(*edit)), where, message, hint)


# Each expression replaces line 22 as `  w: "<expression>"`, so its text starts at column 7.
REFUSED_EXPRESSIONS = {
    "attribute": ("w.real", 7, "attribute access (a.b) is not allowed", "expressions may use"),
    "lambda": ("lambda: w", 7, "lambda is not allowed", "declare a function under 'functions:'"),
    "list-comprehension": ("[x for x in P]", 7, "a list comprehension is not allowed",
                           "expressions may use"),
    "generator": ("max(x for x in P)", 10, "a generator expression is not allowed",
                  "expressions may use"),
    "f-string": ("f'{w}'", 7, "an f-string is not allowed", "expressions may use"),
    "walrus": ("(y := w) + 1", 8, "the walrus operator (:=) is not allowed",
               "expressions may use"),
    "keyword-arguments": ("F(x=V, y=w)", 7, "keyword arguments are not allowed",
                          "pass arguments by position"),
    "conditional": ("V if w > 0 else 0", 7, "'a if c else b' is not allowed",
                    "write where(condition, a, b)"),
    "string": ("'fast'", 7, "the literal 'fast' is not allowed", "only numbers are allowed"),
    "string-operand": ("w + 'mV'", 11, "the literal 'mV' is not allowed",
                       "only numbers are allowed"),
    "modulo": ("w % 2", 7, "the operator '%' is not allowed", "use + - * / ** only"),
    "dict": ("{'a': w}", 7, "a dict is not allowed", "expressions may use"),
}


@pytest.mark.parametrize(
    ("expression", "column", "message", "hint"),
    REFUSED_EXPRESSIONS.values(),
    ids=REFUSED_EXPRESSIONS.keys(),
)
def test_refused_expression_construct(write_spec, expression, column, message, hint):
    path = write_spec(mutate(W_LINE, f'  w: "{expression}"'))
    error = assert_spec_error(path, f"22:{column}", message, hint)
    assert f"in '{expression}'" in str(error)


INVALID_NAMES = {
    "python-keyword": (("  E_L: {default", "  lambda: {default"), "4:3",
                       "'lambda' is a Python keyword and cannot be a parameter name"),
    "python-keyword-model": (("name: toy", "name: class"), "1:7",
                             "'class' is a Python keyword and cannot be a model name"),
    "expression-builtin": (("  E_L: {default", "  exp: {default"), "4:3",
                           "'exp' is a built-in of the expression language"),
}
DUNDER_NAMES = {
    "parameter": (("  g_L: {default", "  g__L: {default"), "3:3",
                  "parameter name 'g__L' contains '__'"),
    "argument": (("args: [x, y]", "args: [x, y__z]"), "13:15",
                 "argument name 'y__z' contains '__'"),
    "derived": (("  drive: F", "  dri__ve: F"), "19:3",
                "derived expression name 'dri__ve' contains '__'"),
}


@pytest.mark.parametrize(("edit", "where", "message"), INVALID_NAMES.values(),
                         ids=INVALID_NAMES.keys())
def test_reserved_c_and_python_names_are_refused(write_spec, edit, where, message):
    assert_spec_error(write_spec(mutate(*edit)), where, message, "choose another name")


@pytest.mark.parametrize(("edit", "where", "message"), DUNDER_NAMES.values(),
                         ids=DUNDER_NAMES.keys())
def test_double_underscore_names_are_reserved(write_spec, edit, where, message):
    assert_spec_error(write_spec(mutate(*edit)), where, message,
                      "double underscores are reserved for generated names")


def test_leading_underscore_is_not_a_name(write_spec):
    path = write_spec(mutate("  g_L: {default", "  _g: {default"))
    assert_spec_error(path, "3:3", "'_g' is not a valid parameter name",
                      "starting with a letter")


# -- YAML features that could build objects or huge documents ---------------------------------
def test_yaml_alias_is_refused(write_spec):
    path = write_spec(mutate("  E_L: {default: -65.0}",
                             "  E_L: &rest {default: -65.0}\n  E_rest: *rest"))
    assert_spec_error(path, "5:11", "YAML aliases (*name) are not allowed in specs",
                      "write the value out again")


def test_yaml_merge_key_alias_is_refused(write_spec):
    path = write_spec(mutate("  E_L: {default: -65.0}",
                             "  E_L: &rest {default: -65.0}\n  E_K: {<<: *rest}"))
    assert_spec_error(path, "5:13", "YAML aliases (*name) are not allowed", "write the value")


@pytest.mark.parametrize(
    ("tag", "shown"),
    [
        ('!!python/object/apply:os.system ["touch SENTINEL"]', "python/object/apply:os.system"),
        ("!!python/object:collections.OrderedDict {}", "python/object:collections.OrderedDict"),
        ('!!python/object/new:os.system ["touch SENTINEL"]', "python/object/new:os.system"),
        ("!!python/name:os.system", "python/name:os.system"),
        ("!include other.yaml", "!include"),
    ],
    ids=["object-apply", "object", "object-new", "name", "custom"],
)
def test_yaml_tags_are_refused(write_spec, tmp_path, monkeypatch, tag, shown):
    monkeypatch.chdir(tmp_path)
    path = write_spec(mutate("name: toy", f"name: {tag}"))
    error = assert_spec_error(path, "1:7", "YAML tags are not allowed in specs",
                              "remove the tag")
    assert shown in str(error)
    assert not (tmp_path / "SENTINEL").exists()


# -- nothing in a spec is ever executed -------------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        "__import__('os').system('touch SENTINEL')",
        "exec(\"open('SENTINEL', 'w')\")",
        "eval(\"__import__('os').system('touch SENTINEL')\")",
        "open('SENTINEL', 'w').write('x')",
        "(lambda: __import__('os').system('touch SENTINEL'))()",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "w.__class__.__init__.__globals__['os'].system('touch SENTINEL')",
    ],
)
@pytest.mark.parametrize("place", ["derivative", "function"])
def test_expressions_are_never_executed(write_spec, tmp_path, monkeypatch, payload, place):
    monkeypatch.chdir(tmp_path)
    if place == "derivative":
        text, where = mutate(W_LINE, f"  w: {json.dumps(payload)}"), "22:"
    else:
        text, where = mutate("    return: x * y + g_L", f"    return: {json.dumps(payload)}"), "14:"
    path = write_spec(text)
    error = spec_error(path)
    assert str(error).startswith(f"{path.resolve()}:{where}"), str(error)
    assert "\n  hint: " in str(error)
    assert not (tmp_path / "SENTINEL").exists()


# -- extends ----------------------------------------------------------------------------------
def test_extends_cycle_is_reported_at_the_entry_closing_it(write_spec, tmp_path):
    a = write_spec("extends: b\n", "a.yaml")
    b = write_spec("description: middle layer\nextends: [a]\n", "b.yaml")
    model = write_spec(mutate("name: toy\n", "name: toy\nextends: a\n"))
    assert_spec_error(model, "2:11",
                      "'extends' forms a cycle: model.yaml -> a.yaml -> b.yaml -> a.yaml",
                      "remove one of the extends entries", in_file=b)
    assert_spec_error(b, "1:10", "'extends' forms a cycle: b.yaml -> a.yaml -> b.yaml",
                      "remove one of the extends entries", in_file=a)


def test_spec_extending_itself(write_spec):
    path = write_spec(mutate("name: toy\n", "name: toy\nextends: model\n"))
    assert_spec_error(path, "2:10", "'extends' forms a cycle: model.yaml -> model.yaml",
                      "remove one of the extends entries")


@pytest.mark.parametrize(
    ("extends", "where", "missing", "hint"),
    [
        ("adex_transfer_functon", "2:10", "adex_transfer_functon",
         "did you mean 'adex_transfer_function'?"),
        ("[shared_rate]", "2:11", "shared_rate", "did you mean 'shared_rates'?"),
        ("[nowhere]", "2:11", "nowhere", "bundled specs: generic_2d_oscillator"),
    ],
    ids=["bundled-library", "next-to-the-spec", "nothing-close"],
)
def test_missing_parent_is_named_with_a_suggestion(write_spec, tmp_path, extends, where,
                                                   missing, hint):
    (tmp_path / "lib").mkdir()
    write_spec("description: shared\n", "lib/shared_rates.yaml")
    path = write_spec(mutate("name: toy\n", f"name: toy\nextends: {extends}\n"))
    assert_spec_error(path, where, f"no spec file or bundled spec named '{missing}'", hint)


def test_error_in_a_parent_points_into_the_parent(write_spec):
    parent = write_spec("parameters:\n  k: {default: fast}\n", "parent.yaml")
    model = write_spec(mutate("name: toy\n", "name: toy\nextends: parent\n"))
    assert_spec_error(model, "2:16", "default of parameter 'k' must be a number, got 'fast'",
                      "write a plain number", in_file=parent)


def test_scientific_notation_without_a_dot_is_a_number(write_spec):
    """YAML 1.1 would read 1e-7 as text; specs accept it as the number scientists mean."""
    from mfgen.codegen.ir import build_ir
    from mfgen.codegen.spec import load_spec

    path = write_spec("name: m\nparameters:\n  h: 1e-7\n  k: {default: -2E3, range: [-5e3, 0]}\n"
                      "state_variables:\n  x: {range: [0, 1]}\nderivatives:\n  x: -h * k * x\n")
    spec = load_spec(path)
    assert spec.parameters["h"].default == 1e-7
    assert spec.parameters["k"].default == -2000.0 and spec.parameters["k"].range == (-5e3, 0)
    build_ir(spec)


def test_an_absurdly_long_parent_name_is_a_spec_error(write_spec):
    """Found by the fuzz test: the OS refuses the file name (ENAMETOOLONG); that is just
    'no such spec', not an OSError."""
    from mfgen.codegen.spec import load_spec
    from mfgen.errors import SpecError

    path = write_spec("name: m\nextends: generic_2d_oscillator" + "1" * 400 + "\n")
    with pytest.raises(SpecError, match="no spec file or bundled spec named"):
        load_spec(path)


def test_extends_is_found_from_the_specs_folder_not_the_current_one(write_spec, tmp_path,
                                                                    monkeypatch):
    """A parent in the current directory is never picked up (issue 12)."""
    elsewhere = tmp_path / "cwd"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "sub" / "x.yaml").write_text("description: not this one\n")
    monkeypatch.chdir(elsewhere)
    (tmp_path / "spec").mkdir()
    path = write_spec(mutate("name: toy\n", "name: toy\nextends: sub/x.yaml\n"),
                      "spec/model.yaml")
    assert_spec_error(path, "2:10", "no spec file or bundled spec named 'sub/x.yaml'",
                      "bundled specs:")


def test_an_unreadable_spec_is_one_line_from_the_command_line(tmp_path):
    """`mfgen build` of a spec it may not read: one line naming the file, no PermissionError
    traceback. Root reads every file, so as root the command runs as user 'nobody'."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mfgen-unreadable-"))
    try:
        folder.chmod(0o1777)  # like /tmp: the reader can make its cache here
        path = folder / "secret.yaml"
        path.write_text(BASE)
        path.chmod(0)
        # The command line, run as 'nobody' when we are root (everything it needs imported
        # first: the interpreter's own files may not be readable by 'nobody').
        script = ("import os, sys, mfgen.cli, mfgen.codegen.locate, mfgen.codegen.spec\n"
                  "from mfgen.runtime import cache, toolchain\n"
                  "cache.generator_identity(), toolchain.detect_toolchain().identity()\n"
                  "mfgen.cli.parser()\n"  # imports what the subcommands need
                  "if os.getuid() == 0:\n    os.setgid(65534)\n    os.setuid(65534)\n"
                  f"sys.exit(mfgen.cli.main(['build', {str(path)!r}]))\n")
        env = dict(os.environ, MFGEN_CACHE_DIR=str(folder / "cache"), HOME=str(folder))
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=120, env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith(f"mfgen: error: {path}: cannot read the spec: Permission "
                                 "denied"), run.stderr


def test_huge_but_finite_ranges_are_sampled_without_overflow(write_spec):
    """`mfgen check` samples states, coupling and parameters in their ranges: high - low of
    [-1.5e308, 1.5e307] widened by 10 % on each side overflows; the samples must still be
    finite and inside (issue 12)."""
    import numpy as np

    import mfgen
    from mfgen.runtime.checking import random_inputs

    text = mutate("  V: {range: [-80.0, -40.0]}", "  V: {range: [-1.5e308, 1.5e307]}")
    text = mutate("range: [0.1, 10.0]", "range: [-1.5e308, 1.5e307]", text)
    model = mfgen.load(write_spec(text), backend="numpy")
    state, coupling, _, parameters = random_inputs(model, 1000, np.random.default_rng(1))
    low, high = model.states["V"].check_range
    assert np.isfinite(state).all() and np.isfinite(coupling).all()
    assert ((low <= state[0]) & (state[0] <= high)).all()
    assert ((-1.5e308 <= parameters["g_L"]) & (parameters["g_L"] <= 1.5e307)).all()
    # spread over the range, not collapsed to one end
    assert (state[0] > 0).any() and (state[0] < -1e308).any()


def test_the_statement_limit_holds_for_model_level_derived_expressions(write_spec,
                                                                        monkeypatch):
    """Not only inlined functions count: 41 000 plain `derived:` statements took 648 s and
    1.7 GB before (issue 12). The limit is lowered here to keep the test fast."""
    from mfgen.codegen import ir

    monkeypatch.setattr(ir, "MAX_PROGRAM_STATEMENTS", 300)
    chain = "".join(f"  d{i}: {'V' if i == 0 else f'd{i - 1}'} + 1\n" for i in range(400))
    path = write_spec(mutate("  drive: F(V, c_0)", "  drive: F(V, c_0)\n" + chain))
    # drive and F's result are statements 1 and 2, d0 (line 20) the 3rd: d298 is the 301st
    assert_spec_error(path, "318:9", "the model grows beyond 300 statements (here, at 'd298')",
                      "compute shared values")
