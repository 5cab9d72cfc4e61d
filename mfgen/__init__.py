"""mfgen: mean-field models from YAML specs to vectorised C kernels.

    >>> import mfgen
    >>> model = mfgen.load("generic_2d_oscillator")   # builds once, then loads from the cache
    >>> dx = model.dfun(state, coupling)               # compiled C
    >>> dx_ref = model.reference.dfun(state, coupling) # NumPy reference from the same spec
"""

__version__ = "0.1.0"

from mfgen.errors import CompileError, MfgenError, SpecError  # noqa: E402
from mfgen.runtime.loader import build, load  # noqa: E402

__all__ = ["CompileError", "MfgenError", "SpecError", "build", "load", "__version__"]
