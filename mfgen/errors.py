"""The errors mfgen raises on purpose: each names where the problem is and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 2_000


@dataclass(frozen=True)
class Location:
    """A place in a spec file: 1-based line and column (column 0 when unknown)."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        if not self.column:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"

    def shifted(self, columns: int) -> Location:
        """The same line, `columns` further right (used for positions inside an expression)."""
        if not self.line:
            return self
        return Location(self.path, self.line, (self.column or 1) + columns)


class MfgenError(Exception):
    """Base class of every error mfgen raises deliberately."""


class SpecError(MfgenError):
    """A spec is invalid. The message starts with file:line[:col] and ends with what to do.

    Messages quote spec text; control and format characters in it (terminal escapes, bidi
    overrides, newlines) are shown escaped, so a hostile spec cannot rewrite the terminal or
    fake a second line of the message.
    """

    def __init__(self, message: str, location: Location | None = None, hint: str = ""):
        message, hint = printable(message), printable(hint)
        if len(message) > MAX_MESSAGE_CHARS:  # only ever from echoing a huge input back
            message = message[:MAX_MESSAGE_CHARS] + "... (message truncated)"
        self.location = location
        self.bare_message = message
        self.hint = hint
        # File names are shown escaped too: a parent spec's name can hold terminal escapes.
        text = f"{printable(str(location))}: {message}" if location else message
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


def printable(text: str) -> str:
    """`text` with every non-printable character (C0/C1 controls, bidi and other format
    characters, line and paragraph separators) written as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class CompileError(MfgenError):
    """The C compiler rejected generated code or is missing; the message carries its output."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A 'did you mean' hint for a misspelt name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
