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

    def _shift_src(self, src: Basis):
        """Cached ``(J, N)`` array, row j = ``h_j = (q_j - 1)/2`` (see :meth:`centre_shift`)."""
        key = ("src", src)
        c = self._modup_cache.get(key)
        if c is None:
            hs = np.array([(p - 1) // 2 for p in self.moduli(src)], dtype=np.uint64)
            c = self.xp.asarray(np.repeat(hs[:, None], self.N, axis=1))
            self._modup_cache[key] = c
        return c

    def _shift_dst(self, prime_index: int, dst: Basis):
        """Cached ``(I, N)`` array, row i = ``h mod dst_i`` for ``h = (p - 1)/2``."""
        key = (prime_index, dst)
        c = self._modup_cache.get(key)
        if c is None:
            h = (self.primes[prime_index] - 1) // 2
            hd = np.array([h % q for q in self.moduli(dst)], dtype=np.uint64)
            c = self.xp.asarray(np.repeat(hd[:, None], self.N, axis=1))
            self._modup_cache[key] = c
        return c

    def centre_shift(self, c, src: Basis):
        """``y = (c + h) mod q`` per limb with ``h_j = (q_j - 1)/2``: the integer ``y_j - h_j`` is
        the centred representative of ``c_j`` in ``[-h_j, h_j]`` (input to :meth:`lift_shifted`)."""
        return self._ops.rns_add(c, self._shift_src(src), self.qs(src))

    def lift_shifted(self, y_j, j: int, src: Basis, dst: Basis):
        """Centred lift of limb ``j`` of ``src`` from its shifted residues ``y_j`` (``(..., 1, N)``,
        see :meth:`centre_shift`) to every prime of ``dst``: ``(..., len(dst), N)``.

        ``(y mod dst_i) - (h_j mod dst_i)``: one exact single-prime ``base_convert`` and one
        modular subtraction (backend kernels).
        """
        t = self._ops.base_convert(y_j, (self.primes[src[j]],), self.moduli(dst))
        return self._ops.rns_sub(t, self._shift_dst(src[j], dst), self.qs(dst))

    def mod_up_shifted(self, y, src: Basis, dst: Basis):
        """All digits at once from shifted residues ``y`` (``(..., J, N)``, see
        :meth:`centre_shift`): ``(..., J, I, N)`` centred lifts, with one broadcast ``%`` (exact:
        ``y_j < q_j``) and one modular subtraction; equal to :meth:`lift_shifted` per digit."""
        key = ("all", src, dst)
        hd = self._modup_cache.get(key)
        if hd is None:
            hd = self.xp.stack([self._shift_dst(b, dst) for b in src])
            self._modup_cache[key] = hd
        t = y[..., :, None, :] % self.qs_col(dst)
        return self._ops.rns_sub(t, hd, self.qs(dst))

    def mod_up(self, c, src: Basis, dst: Basis):
        """Centred lift of every limb: ``c`` ``(..., J, N)`` residues modulo ``src`` ->
        ``(..., J, I, N)`` with ``[j, i]`` = centred ``c_j`` modulo ``dst[i]`` (exact).

        Centring keeps the key-switching noise zero-mean; uncentred digits would add a
        ``q_j/2 * (1 + x + ... + x^(N-1))`` component whose evaluation near ``x = 1`` (slot 0)
        is ``~N`` times larger.
        """
        xp = self.xp
        y = self.centre_shift(c, src)
        parts = [self.lift_shifted(xp.ascontiguousarray(y[..., j:j + 1, :]), j, src, dst) for j in range(len(src))]
        return xp.stack(parts, axis=-3)

    def lift_centered(self, r, p_index: int, basis: Basis):
        """Limb ``r`` (``(..., 1, N)`` residues modulo ``primes[p_index]``) lifted, centred,
        to every prime of ``basis``: ``(..., L, N)``."""
        src = (p_index,)
        return self.lift_shifted(self.centre_shift(r, src), 0, src, basis)

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

    def dot(self, a, b, basis: Basis):
        """``sum_k a[k] * b[k]`` over the leading axis (batch axes broadcast), exact.

        Uses the backend's one-pass ``rns_dot`` (lazy 128-bit accumulation) when it has one,
        else a chain of ``rns_fma``.
        """
        fn = getattr(self._ops, "rns_dot", None)
        if fn is not None:
            return fn(a, b, self.qs(basis))
        acc = self.mul(a[0], b[0], basis)
        for k in range(1, a.shape[0]):
            acc = self.fma(acc, a[k], b[k], basis, out=acc)
        return acc

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
        last = xp.ascontiguousarray(a[..., -1:, :])
        if ntt_form:
            last = self.intt(last, last_b)
        lifted = self.lift_centered(last, basis[-1], rest)
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

