"""hecrypt: GPU-accelerated cryptographic kernels for privacy-preserving machine learning.

The public API is curated here; layers (imports flow one way):
``backend`` <- ``ring`` <- ``smpc`` / ``he`` <- ``ml`` <- ``cli``.
Importing hecrypt compiles nothing and touches no GPU.
"""

from . import errors
from ._version import __version__
from .backend import get_backend, resolve_device
from .ring import DEFAULT_FRAC_BITS, FixedPoint, Ring, Stream, Z2_32, Z2_64, Zq

__all__ = [
    "__version__",
    "errors",
    "get_backend",
    "resolve_device",
    "Ring",
    "Z2_64",
    "Z2_32",
    "Zq",
    "FixedPoint",
    "DEFAULT_FRAC_BITS",
    "Stream",
]
