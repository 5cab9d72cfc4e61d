"""Which names a spec may declare, and the names they get in generated C.

A spec name is refused only where it would break the spec language itself or the generated
Python reference: it must be a plain ASCII identifier (the expression parser reads Python
syntax), not a Python keyword, not a builtin of the expression language, and free of `__` and
of a leading underscore (both reserved for generated names). Any other name works, TVB's `A`,
`C`, `y0` or `NAN` included: in C every symbol is printed as `c_name(name)`, a prefix no spec
can write, so no spec name can collide with C keywords, libc, macros of the headers the kernel
and cffi include, or the kernel's own variables. Users see their own names everywhere else.
"""

from __future__ import annotations

import keyword
import re

from mfgen.codegen.expressions import RESERVED_NAMES
from mfgen.errors import Location, SpecError, did_you_mean

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# `v__` contains `__`, which spec names may not: mangled names cannot equal a spec name, a
# C keyword, a libc function or a header macro (none starts with `v__`), and the prefix is
# injective, so two different spec or generated names never print the same C name.
C_NAME_PREFIX = "v__"
# The NumPy reference is plain Python over the user's names: it imports these modules.
PYTHON_RESERVED = frozenset(keyword.kwlist) | {"numpy", "scipy"}
BUILTIN_INPUTS = frozenset({"local_coupling"})


def c_name(name: str) -> str:
    """The identifier a spec or generated symbol has in generated C."""
    return C_NAME_PREFIX + name


def check_name(name: object, where: Location | None, kind: str) -> str:
    """Return `name` if a spec may declare it as a `kind`, else raise a SpecError."""
    if not isinstance(name, str):
        raise SpecError(f"{kind} name must be text, got {name!r}", where)
    shown = name.encode("ascii", "backslashreplace").decode()
    if not _IDENTIFIER.match(name):
        raise SpecError(
            f"'{shown}' is not a valid {kind} name",
            where,
            "names are ASCII letters, digits and '_', starting with a letter",
        )
    a = "an" if kind[0] in "aeiou" else "a"
    if "__" in name:
        raise SpecError(f"{kind} name '{name}' contains '__'", where,
                        "double underscores are reserved for generated names")
    if name in RESERVED_NAMES or name in BUILTIN_INPUTS:
        raise SpecError(f"'{name}' is a built-in of the expression language and cannot be "
                        f"declared as {a} {kind}", where, "choose another name")
    if name in PYTHON_RESERVED:
        what = "Python keyword" if keyword.iskeyword(name) else \
            "module the NumPy reference imports"
        raise SpecError(f"'{name}' is a {what} and cannot be {a} {kind} name", where,
                        "choose another name")
    return name


def unknown_key(key: str, allowed: list[str], where: Location | None, context: str) -> SpecError:
    hint = did_you_mean(key, allowed) or ("allowed keys: " + ", ".join(allowed))
    return SpecError(f"unknown key '{key}' in {context}", where, hint)
