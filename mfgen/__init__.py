"""mfgen: mean-field models from YAML specs to vectorised C kernels.

    >>> import mfgen
    >>> model = mfgen.load("generic_2d_oscillator")   # builds once, then loads from the cache
    >>> dx = model.dfun(state, coupling)               # compiled C
    >>> dx_ref = model.reference.dfun(state, coupling) # NumPy reference from the same spec
"""

__version__ = "0.1.0"

from mfgen.errors import CompileError, MfgenError, SpecError  # noqa: E402
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

__all__ = ["CompileError", "Connectivity", "MfgenError", "Monitor", "Raw", "Simulation",
           "SimulationError", "SimulationResult", "SpecError", "SubSample", "TemporalAverage",
           "build", "load", "open_sweep", "simulate", "sweep", "__version__"]
