"""Secret randomness for CKKS: ternary secrets, discrete Gaussian errors, uniform polynomials.

Every sample comes from a :class:`hecrypt.ring.Stream` (ChaCha20), never from numpy's or
cuRAND's statistical generators.  Samples are produced on the stream's device.

* :func:`ternary` -- uniform in ``{-1, 0, 1}`` (bias below 2^-64, from a 128-bit reduction).
* :func:`gaussian` -- discrete Gaussian of standard deviation ``sigma = 3.2`` centred at 0,
  by inversion of a 63-bit cumulative distribution table (CDT) over ``[-B, B]`` with
  ``B = 41`` (12.8 sigma; the mass outside is below 2^-120).  Each table entry is the
  cumulative probability rounded to a multiple of 2^-63, so the sampled distribution is within
  statistical distance ``(2B + 1) * 2^-63 < 2^-56`` of the ideal one.  One 64-bit word per
  sample.  The table search (``searchsorted``) is not constant-time; the timing depends on
  the sample only through the memory access pattern of a vectorised search over the whole
  array.
* :func:`uniform_rns` -- uniform residues for each prime of an RNS basis (the ``a`` parts of
  keys and symmetric ciphertexts); 128 bits reduced per residue (bias < 2^-66).
"""

from __future__ import annotations

import functools
from decimal import Decimal, getcontext

import numpy as np

from ..backend import get_backend
from ..ring import Ring, Stream

__all__ = ["SIGMA", "CDT_BOUND", "ternary", "gaussian", "uniform_rns", "cdt_table"]

SIGMA = 3.2
CDT_BOUND = 41


@functools.lru_cache(maxsize=4)
def cdt_table(sigma: float = SIGMA, bound: int = CDT_BOUND) -> np.ndarray:
    """Cumulative table ``T[k] = round(2^63 * P(X <= k - bound))`` for ``k = 0 .. 2*bound``.

    ``T[-1] == 2^63``; computed with 40-digit decimal arithmetic.
    """
    getcontext().prec = 40
    s2 = 2 * Decimal(sigma) ** 2
    w = [(-(Decimal(k * k) / s2)).exp() for k in range(-bound, bound + 1)]
    total = sum(w)
    one = Decimal(2) ** 63
    acc = Decimal(0)
    out = []
    for x in w:
        acc += x
        out.append(int((acc / total * one).to_integral_value()))
    out[-1] = 1 << 63
    return np.array(out, dtype=np.uint64)


def _xp(stream: Stream):
    return get_backend(stream.device).xp


def ternary(stream: Stream, shape) -> "np.ndarray":
    """Uniform ``{-1, 0, 1}`` as int64 with ``shape`` (on the stream's device)."""
    xp = _xp(stream)
    return stream.integers(3, shape).astype(xp.int64) - 1


def gaussian(stream: Stream, shape, sigma: float = SIGMA) -> "np.ndarray":
    """Discrete Gaussian (``sigma``, CDT over ``[-41, 41]``) as int64 with ``shape``."""
    xp = _xp(stream)
    shape = tuple(shape) if not isinstance(shape, int) else (shape,)
    n = int(np.prod(shape, dtype=np.int64))
    table = cdt_table(float(sigma))
    if n == 0:
        return xp.zeros(shape, xp.int64)
    u = stream.words(2 * n).view(xp.uint64) & xp.uint64((1 << 63) - 1)
    t = xp.asarray(table)
    idx = xp.searchsorted(t, u, side="right")
    return (idx.astype(xp.int64) - CDT_BOUND).reshape(shape)


def uniform_rns(stream: Stream, primes, shape_prefix=()) -> "np.ndarray":
    """Uniform uint64 array ``(*shape_prefix, L, N)``-style: one independent residue per prime.

    ``shape_prefix`` must end with the polynomial length; the limb axis is inserted before it:
    ``uniform_rns(s, (q0, q1), (B, N))`` has shape ``(B, 2, N)``.
    """
    xp = _xp(stream)
    *lead, n = tuple(shape_prefix)
    out = xp.empty(tuple(lead) + (len(primes), n), xp.uint64)
    for i, q in enumerate(primes):
        out[..., i, :] = stream.uniform(Ring(int(q)), tuple(lead) + (n,))
    return out
