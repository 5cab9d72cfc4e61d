"""Which names a spec may declare.

Spec names are printed verbatim into C and Python, so they are checked here once: plain ASCII
identifiers, no leading underscore and no double underscore (both reserved for generated
names, so generated and user names cannot collide), not a C or Python keyword, not a C library
function or macro, not an expression-language builtin.
"""

from __future__ import annotations

import functools
import keyword
import re
from importlib import resources

from mfgen.codegen.expressions import RESERVED_NAMES
from mfgen.errors import Location, SpecError, did_you_mean

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while bool true false alignas alignof static_assert "
    "thread_local typeof nullptr constexpr asm".split()
)
# Lower-case macros and functions from <math.h>, <stdlib.h>, <stdio.h>, <errno.h>, <assert.h>,
# <stdint.h> and predefined GNU macros: a local variable with one of these names either breaks
# compilation (macros) or shadows the function the kernel needs.
C_LIBRARY_NAMES = frozenset(
    "acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cosh erf erfc exp exp2 expm1 "
    "fabs fdim floor fma fmax fmin fmod frexp hypot ilogb ldexp lgamma llrint llround log10 "
    "log1p log2 logb lrint lround modf nan nearbyint nextafter nexttoward pow remainder remquo "
    "rint round scalbln scalbn sinh tan tgamma trunc j0 j1 jn y0 y1 yn isnan isinf isfinite "
    "isnormal signbit fpclassify isgreater isgreaterequal isless islessequal islessgreater "
    "isunordered errno assert offsetof setjmp longjmp va_arg va_start va_end va_list stdin stdout "
    "stderr malloc free calloc realloc abort exit main printf size_t ptrdiff_t int8_t int16_t "
    "int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t linux unix i386 "
    "complex imaginary noreturn double_t float_t".split()
)
PYTHON_RESERVED = frozenset(keyword.kwlist) | {"numpy", "scipy", "math", "np", "None"}
BUILTIN_INPUTS = frozenset({"local_coupling"})


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
    if name in C_KEYWORDS or name in PYTHON_RESERVED:
        raise SpecError(f"'{name}' is a C or Python keyword and cannot be {a} {kind} name", where,
                        "choose another name")
    if name in C_LIBRARY_NAMES:
        raise SpecError(f"'{name}' is a C library name and cannot be {a} {kind} name", where,
                        "choose another name")
    if name in c_macro_names() or name.startswith(("Py", "PY")):
        raise SpecError(f"'{name}' is a C preprocessor macro in the kernel's headers and cannot "
                        f"be {a} {kind} name", where, "choose another name")
    return name


@functools.lru_cache(maxsize=1)
def c_macro_names() -> frozenset[str]:
    text = (resources.files("mfgen.codegen") / "c_macro_names.txt").read_text()
    return frozenset(line for line in text.split() if line and not line.startswith("#"))


def unknown_key(key: str, allowed: list[str], where: Location | None, context: str) -> SpecError:
    hint = did_you_mean(key, allowed) or ("allowed keys: " + ", ".join(allowed))
    return SpecError(f"unknown key '{key}' in {context}", where, hint)
