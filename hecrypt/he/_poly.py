"""RNS polynomial helpers for CKKS, built only on the backend's HE kernels.

Every heavy operation (NTT, pointwise modular arithmetic, automorphisms) goes through
:func:`hecrypt.backend.ntt.he_ops`, which picks the Numba (CPU) or CUDA kernels from the array
type; what is here is glue written with the array module ``xp`` (numpy or cupy), so the whole
scheme runs on the device that holds the arrays.  This module never imports CuPy or Numba.

Bases are tuples of indices into the parameter prime chain ``params.primes`` (data primes
``0..L``, special prime ``P`` last).  Arrays are uint64 ``(..., len(basis), N)`` with every
residue in ``[0, q)``.

Numeric contracts:

* :meth:`PolyRing.small_to_rns` maps int64 values with ``|x| < min(q)`` exactly;
  :meth:`PolyRing.int_to_rns` maps any int64.
* :meth:`PolyRing.lift_centered` maps residues ``r`` mod ``p`` to the residues of the centred
  representative ``r - p*[r > p/2]`` modulo other primes (exact).
* :meth:`PolyRing.divide_round_last` computes ``round(a / q_last)`` exactly over the remaining
  basis (``q_last`` is odd, so there are no ties): it is the CKKS rescale and the
  key-switching ModDown.
* :meth:`PolyRing.to_float` recovers the centred integer ``x in (-Q/2, Q/2]`` of each
  coefficient as float64 by balanced mixed-radix (Garner) digits; the result is exact up to
  float64 rounding (relative error ``2^-52`` plus ``|x| * 2^-52`` per step) when ``|x| < Q/2``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ..backend.ntt import he_ops, make_ntt_tables

__all__ = ["PolyRing"]

Basis = tuple[int, ...]


class PolyRing:
    """RNS arithmetic over subsets of one prime chain, on array module ``xp``."""

    def __init__(self, primes: Sequence[int], N: int, xp=np):
        self.primes = tuple(int(p) for p in primes)
        self.N = int(N)
        self.xp = xp
        self._ops = he_ops(xp.zeros(1, xp.uint64))
        self._modup_cache: dict = {}

    # -- cached per-basis data ---------------------------------------------------------
    @functools.lru_cache(maxsize=None)
    def moduli(self, basis: Basis) -> tuple[int, ...]:
        return tuple(self.primes[i] for i in basis)

    @functools.lru_cache(maxsize=None)
    def tables(self, basis: Basis):
        return make_ntt_tables(self.moduli(basis), self.N)

    @functools.lru_cache(maxsize=None)
    def qs(self, basis: Basis) -> np.ndarray:
        """uint64 ``(L,)`` moduli on the host (the kernels' ``qs`` argument)."""
        a = np.array(self.moduli(basis), dtype=np.uint64)
        a.setflags(write=False)
        return a

    @functools.lru_cache(maxsize=None)
    def qs_col(self, basis: Basis, dtype=np.uint64):
        """Moduli as an ``(L, 1)`` column on ``xp`` (for broadcasting with ``(..., L, N)``)."""
        return self.xp.asarray(np.array(self.moduli(basis), dtype=dtype).reshape(-1, 1))

    # -- conversions -------------------------------------------------------------------
    def small_to_rns(self, x, basis: Basis):
        """int64 ``(..., N)`` with ``|x| < min q`` -> uint64 ``(..., L, N)`` residues."""
        xp = self.xp
        x = x[..., None, :]
        q = self.qs_col(basis)
        xu = x.astype(xp.uint64)  # two's complement for negatives
        return xp.where(x < 0, xu + q, xu)  # q + x (mod 2^64) == q - |x|

    def int_to_rns(self, x, basis: Basis):
        """Any int64 ``(..., N)`` -> uint64 ``(..., L, N)`` residues (Python-style mod)."""
        xp = self.xp
        q = self.qs_col(basis, np.int64)
        return (x[..., None, :] % q).astype(xp.uint64)

    def lift_centered(self, r, p: int, basis: Basis):
        """Residues ``r`` (``(..., N)`` in ``[0, p)``) of the centred value, modulo ``basis``."""
        xp = self.xp
        q = self.qs_col(basis)
        r = r[..., None, :]
        half = xp.uint64(p // 2)
        if p < min(self.moduli(basis)):
            t = r
        else:
            t = r % q
        pm = xp.asarray(np.array([p % m for m in self.moduli(basis)], dtype=np.uint64).reshape(-1, 1))
        # negative representative r - p  ==  t - (p mod q)  (mod q)
        neg = xp.where(t >= pm, t - pm, t + (q - pm))
        return xp.where(r > half, neg, t)

    def mod_up(self, c, src: Basis, dst: Basis):
        """Centred lift of every limb: ``c`` ``(..., J, N)`` residues modulo ``src`` ->
        ``(..., J, I, N)`` with ``[j, i]`` = centred ``c_j`` modulo ``dst[i]`` (exact).

        Centring (digits in ``(-q_j/2, q_j/2]``) keeps the key-switching noise zero-mean;
        uncentred digits would add a ``q_j/2 * (1 + x + ... + x^(N-1))`` component whose
        evaluation near ``x = 1`` (slot 0) is ``~N`` times larger.
        """
        xp = self.xp
        key = (src, dst)
        consts = self._modup_cache.get(key)
        if consts is None:
            sq, dq = self.moduli(src), self.moduli(dst)
            pm = np.array([[p % q for q in dq] for p in sq], dtype=np.uint64)[:, :, None]
            half = np.array([p // 2 for p in sq], dtype=np.uint64)[:, None, None]
            consts = (xp.asarray(pm), xp.asarray(half))
            self._modup_cache[key] = consts
        pm, half = consts
        q = self.qs_col(dst)
        x = c[..., :, None, :]
        t = x % q
        alt = xp.where(t >= pm, t - pm, t + (q - pm))
        return xp.where(x > half, alt, t)

    # -- kernels -----------------------------------------------------------------------
    def ntt(self, a, basis: Basis):
        return self._ops.ntt(a, self.tables(basis))

    def intt(self, a, basis: Basis):
        return self._ops.intt(a, self.tables(basis))

    def add(self, a, b, basis: Basis):
        return self._ops.rns_add(a, b, self.qs(basis))

    def sub(self, a, b, basis: Basis):
        return self._ops.rns_sub(a, b, self.qs(basis))

    def neg(self, a, basis: Basis):
        return self._ops.rns_neg(a, self.qs(basis))

    def mul(self, a, b, basis: Basis):
        return self._ops.rns_mul(a, b, self.qs(basis))

    def fma(self, acc, a, b, basis: Basis, out=None):
        return self._ops.rns_fma(acc, a, b, self.qs(basis), out=out)

    def mul_scalar(self, a, s: Sequence[int], basis: Basis):
        """``a * s_l`` with one (Python int) scalar per limb; any size, reduced mod q_l."""
        return self._ops.rns_mul_scalar(a, [int(v) for v in s], self.qs(basis))

    def mul_int(self, a, c: int, basis: Basis):
        """``a * c`` for one signed Python int ``c`` (any size)."""
        return self.mul_scalar(a, [c % q for q in self.moduli(basis)], basis)

    def automorphism(self, a, galois_elt: int, ntt_form: bool, basis: Basis):
        return self._ops.automorphism(a, int(galois_elt), self.N, bool(ntt_form), self.qs(basis))

    # -- composite operations ----------------------------------------------------------
    def divide_round_last(self, a, basis: Basis, ntt_form: bool = True):
        """``round(a / q_last)`` over ``basis[:-1]``; ``a`` is ``(..., len(basis), N)``.

        In NTT form (default) input and output are NTT form: one inverse NTT of the last limb
        and one forward NTT of the others.  This is the rescale (``q_last`` = last data prime)
        and the ModDown of key switching (``q_last`` = ``P``).
        """
        xp = self.xp
        last_b = basis[-1:]
        rest = basis[:-1]
        p = self.primes[basis[-1]]
        last = a[..., -1:, :]
        if ntt_form:
            last = self.intt(xp.ascontiguousarray(last), last_b)
        lifted = self.lift_centered(last[..., 0, :], p, rest)
        if ntt_form:
            lifted = self.ntt(lifted, rest)
        diff = self.sub(a[..., :-1, :], lifted, rest)
        return self.mul_scalar(diff, [pow(p, -1, q) for q in self.moduli(rest)], rest)

    def to_float(self, a, basis: Basis):
        """Centred integer value of each coefficient (coefficient form) as float64 ``(..., N)``.

        Balanced mixed radix: ``x = d_k + q_k (d_(k-1) + q_(k-1) (...))`` with centred digits,
        evaluated by Horner in float64; exact digits, so the only error is float rounding.
        """
        xp = self.xp
        digits = []
        cur = a
        b = basis
        while len(b) > 1:
            p = self.primes[b[-1]]
            r = cur[..., -1, :]
            d = r.astype(xp.int64)
            d = xp.where(r > xp.uint64(p // 2), d - xp.int64(p), d)
            digits.append((d, p))
            cur = self.divide_round_last(cur, b, ntt_form=False)
            b = b[:-1]
        p = self.primes[b[0]]
        r = cur[..., 0, :]
        d = r.astype(xp.int64)
        val = xp.where(r > xp.uint64(p // 2), d - xp.int64(p), d).astype(xp.float64)
        for d, p in reversed(digits):
            val = d.astype(xp.float64) + float(p) * val
        return val

