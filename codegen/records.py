"""The records that describe a model's parameters and state variables, from spec to runtime.

One type per concept (issue 8): `spec.py` creates them from the spec text, `ir.py` passes
them on (filling in what it computes, such as a state's sampling range), the loader stores them
in the cache index as JSON and `runtime/model.py` reads them back as the same type. IR-only
data (a parameter's slots in the packed kernel vector) is derived from the record, not copied
into a second one. No SymPy here: a cached model loads without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mfgen.errors import Location

# A parameter's shape as written in a spec: `shape: [modes]` or `shape: [modes, modes]`.
MODES = "modes"


@dataclass(frozen=True)
class Parameter:
    """A runtime parameter of the kernel: never compiled in, one value or one per node.

    `default` is a float for a scalar, else the elements flattened in row-major order
    (`shape` gives their arrangement). `modes` marks a shape counted in modes (`[modes]`:
    in a per-mode equation the bare name is this mode's element; `[modes, modes]`: a mode
    matrix for `mode_dot`); a plain vector parameter (`default: [..]`) has shape (size,).
    """

    name: str
    default: float | tuple[float, ...]
    shape: tuple[int, ...] = ()
    range: tuple[float, float] | None = None
    unit: str = ""
    description: str = ""
    boolean: bool = False  # `default: true/false`: a condition (nonzero is true), 1.0 or 0.0
    modes: bool = False
    where: Location | None = field(default=None, compare=False)

    @property
    def size(self) -> int | None:
        """None for a scalar, else the number of elements (slots in the packed vector)."""
        return math.prod(self.shape) if self.shape else None

    @property
    def slots(self) -> tuple[str, ...]:
        """The generated names of its elements in the packed parameter vector, in order."""
        if not self.shape:
            return (self.name,)
        return tuple(f"{self.name}__{i}" for i in range(math.prod(self.shape)))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default if not self.shape
                else list(self.default),  # type: ignore[arg-type]
                "shape": list(self.shape), "size": self.size,
                "range": list(self.range) if self.range else None, "unit": self.unit,
                "description": self.description, "boolean": self.boolean,
                "modes": self.modes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Parameter:
        shape = tuple(data.get("shape", [data["size"]] if data.get("size") else []))
        default = tuple(float(v) for v in data["default"]) if shape else float(data["default"])
        return cls(data["name"], default, shape,
                   tuple(data["range"]) if data.get("range") else None,  # type: ignore[arg-type]
                   data.get("unit", ""), data.get("description", ""),
                   bool(data.get("boolean", False)), bool(data.get("modes", False)))


@dataclass(frozen=True)
class State:
    """A state variable: TVB's state_variable_range and state_variable_boundaries (None: an
    open end), where `mfgen check` samples it, and text for people."""

    name: str
    range: tuple[float, float]
    boundaries: tuple[float | None, float | None] = (None, None)
    check_range: tuple[float, float] | None = None  # None in a spec: the IR widens `range`
    unit: str = ""
    description: str = ""
    where: Location | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "range": list(self.range),
                "boundaries": list(self.boundaries),
                "check_range": list(self.check_range) if self.check_range else None,
                "unit": self.unit, "description": self.description}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        check = data.get("check_range")
        return cls(data["name"], tuple(data["range"]),  # type: ignore[arg-type]
                   tuple(data["boundaries"]),  # type: ignore[arg-type]
                   tuple(check) if check else None,  # type: ignore[arg-type]
                   data.get("unit", ""), data.get("description", ""))
