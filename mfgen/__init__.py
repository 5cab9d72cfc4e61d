"""mfgen: mean-field models from YAML specs to vectorised C kernels.

    >>> import mfgen
    >>> model = mfgen.load("generic_2d_oscillator")   # builds once, then loads from the cache
    >>> dx = model.dfun(state, coupling)               # compiled C
    >>> dx_ref = model.reference.dfun(state, coupling) # NumPy reference from the same spec
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from mfgen.errors import CompileError, MfgenError, SpecError  # noqa: E402
from mfgen.runtime.budget import BudgetExceeded, BuildBudget  # noqa: E402
from mfgen.runtime.connectivity import Connectivity  # noqa: E402
from mfgen.runtime.loader import build, load  # noqa: E402
from mfgen.runtime.simulation import (  # noqa: E402
    Monitor,
    Raw,
    Simulation,
    SimulationError,
    SimulationResult,
    SubSample,
    TemporalAverage,
    simulate,
)
from mfgen.runtime.sweep import open_sweep, sweep  # noqa: E402

if TYPE_CHECKING:
    from mfgen.runtime.results import Results
    from mfgen.runtime.run_config import RunConfig


def load_result(path: str) -> Results:
    """Read a results file written by `mfgen run` (complete or partial)."""
    from mfgen.runtime.results import load_result as read  # lazily: h5py costs ~0.1 s

    return read(path)


def load_run_config(path: str, overrides: tuple[str, ...] = ()) -> RunConfig:
    """Read and validate a run config file (see docs/spec-language.md, run configs)."""
    from mfgen.runtime.run_config import load_run_config as read

    return read(path, overrides)


__all__ = ["BudgetExceeded", "BuildBudget", "CompileError", "Connectivity", "MfgenError",
           "Monitor", "Raw", "Simulation",
           "SimulationError", "SimulationResult", "SpecError", "SubSample", "TemporalAverage",
           "build", "load", "load_result", "load_run_config", "open_sweep", "simulate",
           "sweep", "__version__"]
