"""Ring arithmetic, fixed-point encoding and the CSPRNG: the layer above the backend.

Imports only :mod:`hecrypt.backend` (never CuPy or Numba directly).
"""

from .fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from .random import Stream, StreamFactory
from .rings import Z2_32, Z2_64, Ring, Zq, ring_from_name

__all__ = ["Ring", "Z2_64", "Z2_32", "Zq", "ring_from_name", "FixedPoint", "DEFAULT_FRAC_BITS",
           "Stream", "StreamFactory"]
