"""CKKS encoder: N/2 complex slots <-> integer polynomial coefficients (canonical embedding).

A real polynomial ``m(x)`` of degree < N is identified with its values at the primitive
2N-th roots of unity ``zeta^(2k+1)``, ``zeta = exp(i pi / N)``; the values at conjugate roots
are conjugates, so ``N/2`` of them are free: slot ``i`` is ``m(zeta^(5^i mod 2N))`` (the
ordering under which the Galois element ``5^k`` rotates the slots left by ``k`` and
``2N - 1`` conjugates them).

All ``N`` values come from one complex FFT of size ``N``::

    m(zeta^(2k+1)) = sum_j (m_j zeta^j) w^(jk),   w = exp(2 pi i / N)
    =>  values = N * ifft(m * zeta^j),   m = Re(zeta^-j * fft(values) / N)

Numeric contract: :meth:`encode` returns ``round(scale * m)`` as int64 coefficients; the
rounding adds at most 1/2 per coefficient, i.e. an error of about ``sqrt(N/12) / scale`` per
slot.  Coefficients must stay below ``2^62`` in magnitude (else :class:`EncodingError`):
with scale ``2^40`` that allows slot values up to ``~2^21 / sqrt(N)``-ish in the worst case
and far larger typical values.  The FFT itself contributes a relative error of
``~ 1e-16 * log2(N)``, which is far below the CKKS noise; on the GPU the same formulas run
through ``cupy.fft`` and may differ from the CPU within that bound.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EncodingError

__all__ = ["CKKSEncoder", "MAX_COEFF_BITS"]

MAX_COEFF_BITS = 62


class CKKSEncoder:
    """Encoder for ring degree ``N`` on array module ``xp`` (numpy or cupy)."""

    def __init__(self, poly_degree: int, xp=np):
        n = int(poly_degree)
        if n < 4 or n & (n - 1):
            raise ValueError("poly_degree must be a power of two >= 4")
        self.N = n
        self.slots = n // 2
        self.xp = xp
        m = 2 * n
        # exponent 5^i mod 2N for each slot, and its conjugate -5^i mod 2N; both odd
        e = np.empty(self.slots, np.int64)
        g = 1
        for i in range(self.slots):
            e[i] = g
            g = g * 5 % m
        pos = (e - 1) // 2
        neg = ((m - e) - 1) // 2
        j = np.arange(n, dtype=np.float64)
        twist = np.exp(1j * math.pi * j / n)  # zeta^j
        self._pos = xp.asarray(pos)
        self._neg = xp.asarray(neg)
        self._twist = xp.asarray(twist)
        self._untwist = xp.asarray(np.conj(twist) / n)

    # -- slots -> coefficients ---------------------------------------------------------
    def slot_values(self, values, *, allow_complex: bool = True):
        """Validate ``values`` (shape ``(..., m)``, ``m <= N/2``) -> complex ``(..., N/2)`` on xp.

        Missing slots are zero.  Raises ``ValueError`` for too many values, ``TypeError``
        for non-numeric input and :class:`EncodingError` for NaN/Inf.
        """
        xp = self.xp
        v = xp.asarray(values)
        if v.dtype == object or not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise TypeError(f"values must be numeric, got dtype {v.dtype}")
        if v.ndim == 0:
            v = v.reshape(1)
        if v.shape[-1] > self.slots:
            raise ValueError(f"{v.shape[-1]} values do not fit in {self.slots} slots (poly_degree {self.N})")
        if xp.iscomplexobj(v):
            if not allow_complex:
                raise TypeError("complex values are not allowed here")
            v = v.astype(xp.complex128)
        else:
            v = v.astype(xp.float64)
        if not bool(xp.isfinite(v).all()):
            raise EncodingError("cannot encode NaN or Inf")
        if v.shape[-1] < self.slots:
            pad = xp.zeros(v.shape[:-1] + (self.slots - v.shape[-1],), v.dtype)
            v = xp.concatenate([v, pad], axis=-1)
        return v

    def encode(self, values, scale: float):
        """``round(scale * m)`` as int64 ``(..., N)`` for slot values ``(..., <= N/2)``."""
        xp = self.xp
        z = self.slot_values(values)
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        full = xp.zeros(z.shape[:-1] + (self.N,), xp.complex128)
        full[..., self._pos] = z
        full[..., self._neg] = xp.conj(z)
        coeffs = (xp.fft.fft(full, axis=-1) * self._untwist).real
        coeffs = xp.rint(coeffs * scale)
        if coeffs.size and float(xp.abs(coeffs).max()) >= 2.0 ** MAX_COEFF_BITS:
            raise EncodingError(f"values too large for scale 2^{math.log2(scale):.1f}: encoded coefficients "
                                f"exceed 2^{MAX_COEFF_BITS} (reduce the values or the scale)")
        return coeffs.astype(xp.int64)

    # -- coefficients -> slots ---------------------------------------------------------
    def decode(self, coeffs, scale: float):
        """Complex slot values ``(..., N/2)`` of float coefficients ``(..., N)`` divided by ``scale``."""
        xp = self.xp
        c = xp.asarray(coeffs, dtype=xp.float64)
        vals = xp.fft.ifft(c * self._twist, axis=-1) * (self.N / scale)
        return vals[..., self._pos]
