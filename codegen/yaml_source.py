"""Safe YAML loading that remembers where every key and value came from.

Specs are data from strangers: only `yaml.SafeLoader` constructs are allowed and explicit tags
are refused altogether, duplicate keys are errors (YAML would silently keep the last one),
aliases are refused (they can build exponentially large documents), integers longer than a
double can hold are refused, and every mapping records the line and column of each key
so later stages can point at the exact place of a problem.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mfgen.codegen.locate import MAX_SPEC_BYTES
from mfgen.errors import Location, SpecError

MAX_DEPTH = 32
MAX_INTEGER_DIGITS = 309  # 10**309 overflows a double


class PositionedDict(dict):
    """A mapping from a spec file; `where(key)` gives the key's location."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_locations: dict[str, Location] = {}
        self.value_locations: dict[str, Location] = {}
        self.location: Location | None = None

    def where(self, key: str) -> Location | None:
        return self.key_locations.get(key, self.location)

    def value_where(self, key: str) -> Location | None:
        return self.value_locations.get(key, self.where(key))


class PositionedList(list):
    """A sequence from a spec file; `locations[i]` is the location of item i."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.locations: list[Location] = []
        self.location: Location | None = None


def _mark(path: str, mark: yaml.Mark) -> Location:
    return Location(path, mark.line + 1, mark.column + 1)


def _scalar_location(path: str, node: yaml.Node) -> Location:
    loc = _mark(path, node.start_mark)
    # Quoted scalars start one column before their text; point at the text itself.
    if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
        return Location(loc.path, loc.line, loc.column + 1)
    return loc


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that keeps positions, rejects duplicate keys, aliases and deep nesting."""

    path = "<spec>"

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise SpecError(
                "YAML aliases (*name) are not allowed in specs",
                _mark(self.path, event.start_mark),
                "write the value out again; aliases can expand a small file into a huge one",
            )
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            # Every explicit tag, even SafeLoader's own (!!binary, !!set, !!timestamp ...):
            # a spec holds plain numbers, text, lists and mappings, nothing else.
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise SpecError(f"YAML tags are not allowed in specs (found '{shown}')",
                            _mark(self.path, event.start_mark),
                            "remove the tag: specs hold plain numbers, text, lists and mappings")
        return super().compose_node(parent, index)

    def construct_document(self, node: yaml.Node) -> Any:
        _check_depth(self.path, node)
        return super().construct_document(node)


def _check_depth(path: str, root: yaml.Node) -> None:
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecError(
                f"the document is nested more than {MAX_DEPTH} levels deep",
                _mark(path, node.start_mark),
                "a model spec needs at most a handful of levels",
            )
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode) -> PositionedDict:
    loader.flatten_mapping(node)
    result = PositionedDict()
    result.location = _mark(loader.path, node.start_mark)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        where = _mark(loader.path, key_node.start_mark)
        if not isinstance(key, str):
            hint = "write the key as a name"
            if isinstance(key, bool) or key is None:
                hint = "YAML reads yes/no/on/off/true/false/null/~ as values; quote the name"
            raise SpecError(f"mapping keys must be names, got {key!r}", where, hint)
        if key in result:
            first = result.key_locations[key]
            raise SpecError(
                f"duplicate key '{key}' (first defined at line {first.line})",
                where,
                "remove one of the two; YAML would silently keep only the last",
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_locations[key] = where
        result.value_locations[key] = _scalar_location(loader.path, value_node)
    return result


def _construct_sequence(loader: _SpecLoader, node: yaml.SequenceNode) -> PositionedList:
    result = PositionedList(loader.construct_object(child, deep=True) for child in node.value)
    result.locations = [_scalar_location(loader.path, child) for child in node.value]
    result.location = _mark(loader.path, node.start_mark)
    return result


_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _refuse_yaml11(loader: _SpecLoader, node: yaml.ScalarNode, reading: str,
                   otherwise: str = "write the number in plain decimal") -> None:
    raise SpecError(f"'{node.value}' is ambiguous: YAML 1.1 reads it as {reading}",
                    _mark(loader.path, node.start_mark),
                    f"quote it (\"{node.value}\") if it is text, or {otherwise}")


def _construct_int(loader: _SpecLoader, node: yaml.ScalarNode) -> int:
    # YAML 1.1 forms that YAML 1.2 reads differently (or as text) change values silently:
    # 010 is octal 8, 1:30 is base 60 (90), 0b11 is binary. Refused, so nobody is surprised.
    text = str(node.value).lstrip("+-").replace("_", "")
    if ":" in text:
        _refuse_yaml11(loader, node, f"the base-60 number {loader.construct_yaml_int(node)}")
    if len(text) > 1 and text[0] == "0" and text[1] not in "xX":
        base = "binary" if text[1] in "bB" else "octal"
        _refuse_yaml11(loader, node, f"the {base} number {loader.construct_yaml_int(node)}")
    # YAML integers are read exactly; one with hundreds of digits would overflow a double
    # (and Python refuses to convert more than 4300 digits at all).
    digits = sum(c.isalnum() for c in str(node.value))
    if digits > MAX_INTEGER_DIGITS:
        raise SpecError(f"the integer has {digits} digits, more than a double can hold",
                        _mark(loader.path, node.start_mark),
                        "write the number in floating point, e.g. 1.5e20")
    return loader.construct_yaml_int(node)


def _construct_float(loader: _SpecLoader, node: yaml.ScalarNode) -> float:
    # .inf / -.inf / .nan are read as YAML 1.2 reads them (float inf, nan); whether a spec
    # may use them is for the spec layer to decide. 1:30.5 (base 60) is refused.
    if ":" in str(node.value):
        _refuse_yaml11(loader, node, f"the base-60 number {loader.construct_yaml_float(node)}")
    return loader.construct_yaml_float(node)


def _construct_bool(loader: _SpecLoader, node: yaml.ScalarNode) -> bool:
    # YAML 1.2 knows only true/false; yes/no/on/off are YAML 1.1 booleans that a reader (and
    # the author) takes for text.
    if str(node.value).lower() in _YAML11_BOOLEANS:
        _refuse_yaml11(loader, node, f"the boolean {loader.construct_yaml_bool(node)}",
                       "write true or false")
    return loader.construct_yaml_bool(node)


def _construct_date_as_text(loader: _SpecLoader, node: yaml.ScalarNode) -> str:
    # An unquoted 2001-12-14 in a description or reference stays text (and 2001-13-45 is no
    # longer an error from datetime).
    return str(loader.construct_scalar(node))


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_SpecLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_SpecLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date_as_text)
# YAML 1.1 reads 1e-7 (no dot) as a string; scientists write it that way, so it is a float.
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


# (part of PyYAML's problem text, what to do): the commonest slips in hand-written specs.
_SYNTAX_HINTS = (
    ("got '['", 'inside [a, b] lists, quote vector arguments: [x, "P[10]"]'),
    ("'\\t'", "indent with spaces; YAML does not allow tabs"),
    ("mapping values are not allowed", "quote a value that contains ': ', e.g. key: \"a: b\""),
    ("expected ',' or", "close the bracket, or separate the items with ','"),
    ("<block end>", "indent all keys of one mapping by the same number of spaces"),
    ("end of stream", "close the quote or bracket"),
)


def _syntax_error(exc: yaml.MarkedYAMLError, path: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    where = _mark(path, mark) if mark else Location(path)
    problem = exc.problem or "invalid YAML"
    if "could not determine a constructor" in problem:
        return SpecError(f"YAML tags are not allowed in specs ({problem})", where,
                         "remove the tag: specs hold plain numbers, text, lists and mappings")
    if "another document" in problem:
        return SpecError("a spec must be a single YAML document", where,
                         "remove this '---' and what follows, or move it to its own file")
    if exc.context and exc.context_mark:
        problem += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    hint = next((h for key, h in _SYNTAX_HINTS if key in problem), "fix the YAML syntax")
    return SpecError(f"YAML syntax error: {problem}", where, hint)


def load_yaml(text: str, path: str) -> PositionedDict:
    """Parse spec text into positioned dicts/lists; every failure is a SpecError with a place."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(
            f"the file is {len(text)} bytes; specs are limited to {MAX_SPEC_BYTES}",
            Location(path),
            "a model spec is a few kilobytes; check that this is the file you meant",
        )
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecError("the file contains a NUL byte", Location(path, line), "save it as text")
    try:
        loader = _SpecLoader(text)  # the reader refuses control characters already here
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        where = Location(path, before.count("\n") + 1, len(before) - before.rfind("\n"))
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SpecError(f"the file contains the control character U+{code:04X}", where,
                        "remove it: YAML allows only printable characters, tabs and newlines") \
            from None
    loader.path = path
    try:
        data = loader.get_single_data()
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, path) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", Location(path), "fix the YAML syntax") from None
    except RecursionError:
        raise SpecError(
            "the document is nested too deeply", Location(path), "flatten the structure"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value PyYAML cannot construct
        raise SpecError(f"YAML value cannot be read: {exc}", Location(path),
                        "write plain numbers, text, lists and mappings") from None
    finally:
        loader.dispose()
    if data is None:
        raise SpecError("the file is empty", Location(path), "write a model spec into it")
    if not isinstance(data, PositionedDict):
        raise SpecError(
            "a spec must be a mapping of sections (name:, parameters:, ...)",
            Location(path, 1),
            "see the spec language reference in the README",
        )
    return data
