"""Fixed-point encoding of real numbers as ring elements.

A real ``x`` is encoded as ``round(x * 2^f)`` (round half to even, numpy's ``rint``), taken
modulo the ring size M; decoding maps the element to its signed representative in
``[-M/2, M/2)`` and divides by ``2^f``.

Limits, checked where they are public:

* ``encode`` refuses NaN, Inf and values whose encoding does not fit the signed range
  (``|round(x 2^f)| >= M/2``), raising :class:`~hecrypt.errors.EncodingError`.
* A precision is refused when it is created if a product of two encoded values (scale
  ``2^(2f)``) would leave no headroom in the ring: ``2f + 1 > log2(M) - 1``.  For Z_2^64
  the default ``f = 16`` leaves 31 bits of integer headroom for a product; 16 bits in
  Z_501337 is refused.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..backend import backend_of, get_backend, is_device_array
from ..errors import EncodingError, PrecisionError
from .rings import Ring

__all__ = ["FixedPoint", "DEFAULT_FRAC_BITS"]

DEFAULT_FRAC_BITS = 16


class FixedPoint:
    """Fixed-point encoding with ``frac_bits`` fractional bits in ``ring``."""

    __slots__ = ("ring", "frac_bits")

    def __init__(self, ring: Ring, frac_bits: int = DEFAULT_FRAC_BITS):
        if not isinstance(ring, Ring):
            raise TypeError(f"ring must be a hecrypt Ring, got {type(ring).__name__}")
        if isinstance(frac_bits, bool) or not isinstance(frac_bits, numbers.Integral):
            raise TypeError(f"frac_bits must be an integer, got {type(frac_bits).__name__}")
        frac_bits = int(frac_bits)
        if frac_bits < 0:
            raise PrecisionError(f"frac_bits must be >= 0, got {frac_bits}")
        headroom = self.product_headroom_bits(ring, frac_bits)
        if headroom < 1:
            best = max(0, int((math.floor(ring.log2_modulus) - 2) // 2))
            raise PrecisionError(
                f"{frac_bits} fractional bits leave no headroom in {ring.name} for a product "
                f"(needs 2*f + 2 <= log2 M = {ring.log2_modulus:.2f}); use frac_bits <= {best} "
                f"or a larger ring"
            )
        self.ring = ring
        self.frac_bits = frac_bits

    @staticmethod
    def product_headroom_bits(ring: Ring, frac_bits: int) -> float:
        """Bits of integer magnitude left to a product of two encodings (negative: none)."""
        return ring.log2_modulus - 1 - 2 * frac_bits

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    @property
    def max_abs(self) -> float:
        """Largest magnitude that encodes: values must satisfy ``|x| < max_abs``."""
        return (self.ring.modulus // 2) / self.scale

    @property
    def resolution(self) -> float:
        return 1.0 / self.scale

    def __repr__(self) -> str:
        return f"FixedPoint({self.ring.name}, frac_bits={self.frac_bits})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixedPoint) and other.ring == self.ring and other.frac_bits == self.frac_bits

    def __hash__(self) -> int:
        return hash((self.ring, self.frac_bits))

    # -- encode/decode -----------------------------------------------------------------
    def encode(self, x: Any, device: str | None = None) -> Any:
        """Encode reals (scalars, lists, numpy or CuPy arrays) into ring elements.

        The result lives on ``device`` (default: where ``x`` is; numpy input -> CPU).
        """
        if is_device_array(x):
            be = backend_of(x) if device is None else get_backend(device)
            xh = backend_of(x).to_numpy(x)
        else:
            be = get_backend(device) if device is not None else get_backend("cpu")
            xh = x
        try:
            arr = np.asarray(xh, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot encode {type(x).__name__} as fixed point: {exc}") from None
        if not np.all(np.isfinite(arr)):
            raise EncodingError("cannot encode NaN or Inf as fixed point")
        v = np.rint(arr * float(self.scale))
        half = float(self.ring.modulus // 2)
        if v.size and float(np.max(np.abs(v))) >= half:
            bad = float(arr.reshape(-1)[int(np.argmax(np.abs(v)))])
            raise EncodingError(
                f"value {bad!r} does not fit {self!r}: |x| must be < {self.max_abs:.6g}"
            )
        if self.ring.is_pow2:
            # |v| < 2^(bits-1) <= 2^63: exact int64, then wrap into the unsigned dtype.
            enc = v.astype(np.int64).astype(self.ring.dtype)
        else:
            enc = np.mod(v.astype(np.int64), np.int64(self.ring.q)).astype(np.uint64)
        return be.asarray(enc)

    def decode(self, a: Any, frac_bits: int | None = None) -> np.ndarray:
        """Decode ring elements to float64 (numpy).  ``frac_bits`` overrides the scale."""
        f = self.frac_bits if frac_bits is None else frac_bits
        s = self.ring.to_signed(a)
        s = backend_of(s).to_numpy(s)
        return s.astype(np.float64) / float(1 << f)

    def truncate(self, a: Any, f: int | None = None) -> Any:
        """Truncate by ``f`` bits (default ``frac_bits``): the rescale after a product."""
        return self.ring.truncate(a, self.frac_bits if f is None else f)
