"""CPU (Numba) kernels for RNS polynomials: NTT, pointwise arithmetic, base conversion, Galois maps.

Arrays are uint64 shaped ``(..., L, N)``: ``L`` RNS limbs on axis -2 (limb ``i`` modulo
``qs[i]``), values fully reduced in ``[0, q_i)``; leading axes are a batch.  Every function
returns a new C-contiguous array with values in ``[0, q_i)`` (or writes ``out=``).  Inputs
outside ``[0, q_i)`` give unspecified results (hot loops carry no checks); shapes, dtypes and
moduli are checked.  One call processes every limb and batch entry (``prange`` over rows;
calls below :data:`PARALLEL_MIN` elements run a serial build of the same kernel).

Arithmetic (bit-identical with :mod:`hecrypt.backend.he_cuda`, since every result is the
unique residue in ``[0, q)``):

* moduli: primes (``ntt``) or odd moduli below ``2**61``
  (:data:`hecrypt.backend.ntt.MAX_PRIME_BITS`);
* NTT: Harvey lazy butterflies with Shoup twiddles, forward in ``[0, 4q)``, inverse in
  ``[0, 2q)``, one final correction;
* ``rns_mul``/``rns_fma``: exact 128-bit product, 128-bit Barrett reduction with
  ``floor(2**128/q)`` (result < 2q before one conditional subtraction);
* ``rns_mul_scalar``: Shoup multiplication by a per-limb constant;
* the 64x64->128 product uses an LLVM ``i128`` multiply (one ``mul`` instruction on x86-64).
"""

from __future__ import annotations

import functools
from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import dual_kernel
from .ntt import (
    MAX_PRIME_BITS,
    NTTTables,
    base_convert_constants,
    galois_permutation,
    shoup,
)

__all__ = [
    "ntt",
    "intt",
    "rns_add",
    "rns_sub",
    "rns_neg",
    "rns_mul",
    "rns_mul_scalar",
    "rns_fma",
    "rns_dot",
    "base_convert",
    "automorphism",
]

#: below this many elements (largest of a kernel's first three array arguments) a kernel runs
#: its single-threaded build: waking Numba's worker threads costs more than the work on small
#: calls, far more on a busy machine (N = 8192 ciphertexts: 3-4 limbs of 8192 coefficients)
PARALLEL_MIN = 1 << 17


_kernel = dual_kernel(PARALLEL_MIN)


_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_BCHUNK = 512  # coefficients per base-conversion work item


# --------------------------------------------------------------------------------------
# scalar helpers (inlined)
# --------------------------------------------------------------------------------------
@intrinsic
def _mulhi(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        x = builder.zext(args[0], i128)
        y = builder.zext(args[1], i128)
        p = builder.mul(x, y)
        return builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))

    return sig, codegen


@nb.njit(inline="always", cache=True)
def _shoup_lazy(w, wp, y, q):
    """w*y mod q in [0, 2q) for w < q, wp = floor(w 2^64 / q), any uint64 y."""
    return w * y - _mulhi(wp, y) * q


@nb.njit(inline="always", cache=True)
def _barrett128(hi, lo, q, rhi, rlo):
    """(hi 2^64 + lo) mod q for any 128-bit value; (rhi, rlo) = floor(2^128 / q), q < 2^63."""
    carry = _mulhi(lo, rlo)
    t2lo = lo * rhi
    t2hi = _mulhi(lo, rhi)
    t1 = t2lo + carry
    if t1 < t2lo:
        t2hi += _ONE
    t3 = t2hi
    u_lo = hi * rlo
    u_hi = _mulhi(hi, rlo)
    s = t1 + u_lo
    if s < t1:
        u_hi += _ONE
    qest = hi * rhi + t3 + u_hi
    r = lo - qest * q
    if r >= q:
        r -= q
    return r


# --------------------------------------------------------------------------------------
# NTT kernels: a2 is (R, N) with R = batch * L rows, row r uses limb r % L.  Radix-4 loops
# (two radix-2 stages per pass over the row, same twiddles and the same lazy ranges as
# the radix-2 formulation in kernels/ntt.cu).
# --------------------------------------------------------------------------------------
@nb.njit(inline="always", cache=True)
def _ct(x, y, w, wp, q, two_q):
    """Harvey CT butterfly: x, y in [0, 4q) -> (x + wy, x - wy) in [0, 4q)."""
    if x >= two_q:
        x -= two_q
    v = _shoup_lazy(w, wp, y, q)
    return x + v, x - v + two_q


@nb.njit(inline="always", cache=True)
def _gs(x, y, w, wp, q, two_q):
    """Harvey GS butterfly: x, y in [0, 2q) -> (x + y, w(x - y)) in [0, 2q)."""
    s = x + y
    if s >= two_q:
        s -= two_q
    return s, _shoup_lazy(w, wp, x - y + two_q, q)


@nb.njit(inline="always", cache=True)
def _red4(x, q, two_q):
    """[0, 4q) -> [0, q)."""
    if x >= two_q:
        x -= two_q
    if x >= q:
        x -= q
    return x


@nb.njit(inline="always", cache=True)
def _log2(n):
    k = 0
    while (1 << k) < n:
        k += 1
    return k


@_kernel
def _ntt_fwd(a2, psi, psip, qs):
    R, N = a2.shape
    L = qs.shape[0]
    logn = _log2(N)
    for r in nb.prange(R):
        li = r % L
        q = qs[li]
        two_q = q + q
        row = a2[r]
        w_row = psi[li]
        wp_row = psip[li]
        t = N >> 1
        m = 1
        if logn % 2 == 1:
            # odd log N: one radix-2 stage (span N/2) first
            w = w_row[1]
            wp = wp_row[1]
            for j in range(t):
                x, y = _ct(row[j], row[j + t], w, wp, q, two_q)
                row[j] = x
                row[j + t] = y
            m = 2
            t >>= 1
        # radix-4: stages (m groups, span t) and (2m, t/2); values stay in [0, 4q)
        while t >= 2:
            h = t >> 1
            for i in range(m):
                w1 = w_row[m + i]
                w1p = wp_row[m + i]
                w2 = w_row[2 * m + 2 * i]
                w2p = wp_row[2 * m + 2 * i]
                w3 = w_row[2 * m + 2 * i + 1]
                w3p = wp_row[2 * m + 2 * i + 1]
                j1 = 2 * i * t
                if h == 1:
                    # the last two stages, fused with the reduction [0, 4q) -> [0, q)
                    x0, x2 = _ct(row[j1], row[j1 + 2], w1, w1p, q, two_q)
                    x1, x3 = _ct(row[j1 + 1], row[j1 + 3], w1, w1p, q, two_q)
                    x0, x1 = _ct(x0, x1, w2, w2p, q, two_q)
                    x2, x3 = _ct(x2, x3, w3, w3p, q, two_q)
                    row[j1] = _red4(x0, q, two_q)
                    row[j1 + 1] = _red4(x1, q, two_q)
                    row[j1 + 2] = _red4(x2, q, two_q)
                    row[j1 + 3] = _red4(x3, q, two_q)
                else:
                    for j in range(j1, j1 + h):
                        x0, x2 = _ct(row[j], row[j + t], w1, w1p, q, two_q)
                        x1, x3 = _ct(row[j + h], row[j + t + h], w1, w1p, q, two_q)
                        x0, x1 = _ct(x0, x1, w2, w2p, q, two_q)
                        x2, x3 = _ct(x2, x3, w3, w3p, q, two_q)
                        row[j] = x0
                        row[j + h] = x1
                        row[j + t] = x2
                        row[j + t + h] = x3
            m <<= 2
            t >>= 2
        if N == 2:
            row[0] = _red4(row[0], q, two_q)
            row[1] = _red4(row[1], q, two_q)


@_kernel
def _ntt_inv(a2, ipsi, ipsip, qs, ninv, ninvp, last, lastp):
    R, N = a2.shape
    L = qs.shape[0]
    logn = _log2(N)
    for r in nb.prange(R):
        li = r % L
        q = qs[li]
        two_q = q + q
        row = a2[r]
        w_row = ipsi[li]
        wp_row = ipsip[li]
        t = 1
        h = N >> 1
        if logn % 2 == 0 and logn >= 2:
            # even log N: one radix-2 stage (span 1) first, so that an even number of stages
            # is left before the fused last one
            for i in range(h):
                x, y = _gs(row[2 * i], row[2 * i + 1], w_row[h + i], wp_row[h + i], q, two_q)
                row[2 * i] = x
                row[2 * i + 1] = y
            t = 2
            h >>= 1
        # radix-4: stages (h groups, span t) and (h/2, 2t); values stay in [0, 2q)
        while h > 1:
            hh = h >> 1
            for i2 in range(hh):
                wa = w_row[h + 2 * i2]
                wap = wp_row[h + 2 * i2]
                wb = w_row[h + 2 * i2 + 1]
                wbp = wp_row[h + 2 * i2 + 1]
                wc = w_row[hh + i2]
                wcp = wp_row[hh + i2]
                j1 = 4 * i2 * t
                for j in range(j1, j1 + t):
                    x0, x1 = _gs(row[j], row[j + t], wa, wap, q, two_q)
                    x2, x3 = _gs(row[j + 2 * t], row[j + 3 * t], wb, wbp, q, two_q)
                    x0, x2 = _gs(x0, x2, wc, wcp, q, two_q)
                    x1, x3 = _gs(x1, x3, wc, wcp, q, two_q)
                    row[j] = x0
                    row[j + t] = x1
                    row[j + 2 * t] = x2
                    row[j + 3 * t] = x3
            t <<= 2
            h >>= 2
        # last stage (span N/2) fused with the N^-1 scaling, then full reduction
        n_i = ninv[li]
        n_ip = ninvp[li]
        w = last[li]
        wp = lastp[li]
        for j in range(t):
            u = row[j]
            v = row[j + t]
            x = _shoup_lazy(n_i, n_ip, u + v, q)
            y = _shoup_lazy(w, wp, u - v + two_q, q)
            if x >= q:
                x -= q
            if y >= q:
                y -= q
            row[j] = x
            row[j + t] = y


# --------------------------------------------------------------------------------------
# pointwise kernels: out (B, L, N); a (Ba, L, N), b (Bb, L, N) with Ba, Bb in {1, B}
# --------------------------------------------------------------------------------------
@_kernel
def _add_k(a, b, out, qs):
    B, L, N = out.shape
    Ba = a.shape[0]
    Bb = b.shape[0]
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        x = a[bi if Ba == B else 0, li]
        y = b[bi if Bb == B else 0, li]
        o = out[bi, li]
        for n in range(N):
            s = x[n] + y[n]
            if s >= q:
                s -= q
            o[n] = s


@_kernel
def _sub_k(a, b, out, qs):
    B, L, N = out.shape
    Ba = a.shape[0]
    Bb = b.shape[0]
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        x = a[bi if Ba == B else 0, li]
        y = b[bi if Bb == B else 0, li]
        o = out[bi, li]
        for n in range(N):
            s = x[n] - y[n] + q
            if s >= q:
                s -= q
            o[n] = s


@_kernel
def _neg_k(a, out, qs):
    B, L, N = out.shape
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        x = a[bi, li]
        o = out[bi, li]
        for n in range(N):
            v = x[n]
            o[n] = q - v if v != _ZERO else _ZERO


@_kernel
def _mul_k(a, b, out, qs, rhi, rlo):
    B, L, N = out.shape
    Ba = a.shape[0]
    Bb = b.shape[0]
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        h = rhi[li]
        lo_ = rlo[li]
        x = a[bi if Ba == B else 0, li]
        y = b[bi if Bb == B else 0, li]
        o = out[bi, li]
        for n in range(N):
            u = x[n]
            v = y[n]
            o[n] = _barrett128(_mulhi(u, v), u * v, q, h, lo_)


@_kernel
def _fma_k(acc, a, b, out, qs, rhi, rlo):
    B, L, N = out.shape
    Bc = acc.shape[0]
    Ba = a.shape[0]
    Bb = b.shape[0]
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        h = rhi[li]
        lo_ = rlo[li]
        c = acc[bi if Bc == B else 0, li]
        x = a[bi if Ba == B else 0, li]
        y = b[bi if Bb == B else 0, li]
        o = out[bi, li]
        for n in range(N):
            u = x[n]
            v = y[n]
            plo = u * v
            phi = _mulhi(u, v)
            s = plo + c[n]
            if s < plo:
                phi += _ONE
            o[n] = _barrett128(phi, s, q, h, lo_)


@_kernel
def _dot_k(a, b, out, ia, ib, qs, rhi, rlo):
    """out[r] = sum_k a[k, ia[r // L], l] * b[k, ib[r // L], l] mod q_l: 128-bit sums in
    registers (products < 2^122), reduced every 63 terms."""
    B, L, N = out.shape
    K = a.shape[0]
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        h = rhi[li]
        lo_ = rlo[li]
        xa = ia[bi]
        xb = ib[bi]
        o = out[bi, li]
        for n in range(N):
            shi = _ZERO
            slo = _ZERO
            for k in range(K):
                u = a[k, xa, li, n]
                v = b[k, xb, li, n]
                plo = u * v
                phi = _mulhi(u, v)
                slo += plo
                if slo < plo:
                    phi += _ONE
                shi += phi
                if k % 63 == 62 and k + 1 < K:
                    slo = _barrett128(shi, slo, q, h, lo_)
                    shi = _ZERO
            o[n] = _barrett128(shi, slo, q, h, lo_)


@_kernel
def _mul_scalar_k(a, out, qs, s, sp):
    B, L, N = out.shape
    for r in nb.prange(B * L):
        bi = r // L
        li = r % L
        q = qs[li]
        w = s[li]
        wp = sp[li]
        x = a[bi, li]
        o = out[bi, li]
        for n in range(N):
            v = _shoup_lazy(w, wp, x[n], q)
            if v >= q:
                v -= q
            o[n] = v


@_kernel
def _base_convert_k(a, out, fq, qinv, qinvp, qhat_p, tq, rhi, rlo):
    """a (B, Lf, N) over fq -> out (B, Lt, N) over tq (fast conversion, see base_convert)."""
    B, Lf, N = a.shape
    Lt = out.shape[1]
    nchunk = (N + _BCHUNK - 1) // _BCHUNK
    for item in nb.prange(B * nchunk):
        bi = item // nchunk
        n0 = (item % nchunk) * _BCHUNK
        n1 = min(n0 + _BCHUNK, N)
        cnt = n1 - n0
        y = np.empty((Lf, cnt), dtype=np.uint64)
        for i in range(Lf):
            q = fq[i]
            w = qinv[i]
            wp = qinvp[i]
            for n in range(cnt):
                v = _shoup_lazy(w, wp, a[bi, i, n0 + n], q)
                if v >= q:
                    v -= q
                y[i, n] = v
        for j in range(Lt):
            p = tq[j]
            h = rhi[j]
            lo_ = rlo[j]
            for n in range(cnt):
                shi = _ZERO
                slo = _ZERO
                for i in range(Lf):
                    u = y[i, n]
                    c = qhat_p[j, i]
                    plo = u * c
                    phi = _mulhi(u, c)
                    slo += plo
                    if slo < plo:
                        phi += _ONE
                    shi += phi
                out[bi, j, n0 + n] = _barrett128(shi, slo, p, h, lo_)


@_kernel
def _gather_k(a, out, perm, qs):
    """out[r, i] = +/- a[r, perm[i] & 0x7fffffff]; negated mod q when bit 31 of perm[i] is set."""
    R, N = out.shape
    L = qs.shape[0]
    mask = np.uint32(0x7FFFFFFF)
    for r in nb.prange(R):
        q = qs[r % L]
        x = a[r]
        o = out[r]
        for i in range(N):
            p = perm[i]
            v = x[np.int64(p & mask)]
            if (p >> np.uint32(31)) != np.uint32(0) and v != _ZERO:
                v = q - v
            o[i] = v


# --------------------------------------------------------------------------------------
# argument checking and shape plumbing
# --------------------------------------------------------------------------------------
def _check_poly(a: Any, name: str = "a") -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint64 array (CuPy arrays go to he_cuda), got {type(a).__name__}")
    if a.dtype != np.uint64:
        raise TypeError(f"{name} must have dtype uint64, got {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{name} must be shaped (..., L, N), got shape {a.shape}")
    return a


@functools.lru_cache(maxsize=256)
def _qs_consts(qs_t: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for q in qs_t:
        if q < 3 or q % 2 == 0 or q.bit_length() > MAX_PRIME_BITS:
            raise ValueError(f"modulus {q} is out of range: need odd 3 <= q < 2**{MAX_PRIME_BITS}")
    bar = [(1 << 128) // q for q in qs_t]
    qs = np.array(qs_t, dtype=np.uint64)
    hi = np.array([b >> 64 for b in bar], dtype=np.uint64)
    lo = np.array([b & ((1 << 64) - 1) for b in bar], dtype=np.uint64)
    return qs, hi, lo


def _moduli(qs: Any, L: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(qs, NTTTables):
        qs = qs.qs
    if isinstance(qs, np.ndarray):
        if qs.ndim != 1:
            raise ValueError(f"qs must be one-dimensional (L,), got shape {qs.shape}")
        qs_t = tuple(int(q) for q in qs)
    else:
        try:
            qs_t = tuple(int(q) for q in qs)
        except TypeError:
            raise TypeError(f"qs must be a sequence or uint64 array of moduli, got {type(qs).__name__}") from None
    if len(qs_t) != L:
        raise ValueError(f"{len(qs_t)} moduli given for arrays with L={L} limbs")
    return (qs_t, *_qs_consts(qs_t))


def _as3(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape((-1,) + a.shape[-2:])


def _broadcast(*arrays: np.ndarray) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Common shape and (B?, L, N) views; a batch of 1 is broadcast inside the kernel."""
    ln = arrays[0].shape[-2:]
    for x in arrays[1:]:
        if x.shape[-2:] != ln:
            raise ValueError(f"limb/degree shapes differ: {arrays[0].shape} vs {x.shape}")
    try:
        shape = np.broadcast_shapes(*(x.shape for x in arrays))
    except ValueError:
        raise ValueError(f"shapes {[x.shape for x in arrays]} do not broadcast") from None
    B = int(np.prod(shape[:-2], dtype=np.int64))
    views = []
    for x in arrays:
        if x.shape == shape or int(np.prod(x.shape[:-2], dtype=np.int64)) == 1:
            views.append(_as3(x))
        else:  # general broadcast of batch axes: materialise
            views.append(_as3(np.broadcast_to(x, shape)))
    del B
    return shape, views


def _out(shape: tuple[int, ...], out: Any) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.uint64)
    _check_poly(out, "out")
    if out.shape != tuple(shape) or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous with shape {tuple(shape)}, got {out.shape}")
    return out


def _check_tables(a: np.ndarray, tables: NTTTables) -> None:
    if not isinstance(tables, NTTTables):
        raise TypeError(f"tables must come from make_ntt_tables, got {type(tables).__name__}")
    if a.shape[-1] != tables.N or a.shape[-2] != tables.L:
        raise ValueError(
            f"array shape {a.shape} does not match the tables (L={tables.L}, N={tables.N}): expected (..., {tables.L}, {tables.N})"
        )


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def ntt(a: np.ndarray, tables: NTTTables, *, out: np.ndarray | None = None) -> np.ndarray:
    """Forward negacyclic NTT of every limb: natural-order coefficients in ``[0, q)`` ->
    bit-reversed evaluations ``out[..., l, i] = a_l(psi_l^(2 brv(i) + 1)) mod q_l`` in ``[0, q)``.

    ``out`` may be ``a`` itself (in place) or any C-contiguous uint64 array of the same shape.
    """
    _check_poly(a)
    _check_tables(a, tables)
    res = _out(a.shape, out)
    if res is not a:
        np.copyto(res, a)
    _ntt_fwd(res.reshape(-1, tables.N), tables.psi_rev, tables.psi_rev_shoup, tables.qs)
    return res


def intt(a: np.ndarray, tables: NTTTables, *, out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`ntt`: bit-reversed evaluations in ``[0, q)`` -> natural-order
    coefficients in ``[0, q)`` (``N^-1`` included).  ``out`` may be ``a`` (in place)."""
    _check_poly(a)
    _check_tables(a, tables)
    res = _out(a.shape, out)
    if res is not a:
        np.copyto(res, a)
    _ntt_inv(
        res.reshape(-1, tables.N), tables.ipsi_rev, tables.ipsi_rev_shoup, tables.qs,
        tables.n_inv, tables.n_inv_shoup, tables.last, tables.last_shoup,
    )  # fmt: skip
    return res


def rns_add(a: np.ndarray, b: np.ndarray, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """``(a + b) mod q_l`` per limb; batch axes broadcast.  Inputs and output in ``[0, q)``."""
    _check_poly(a), _check_poly(b, "b")
    shape, (x, y) = _broadcast(a, b)
    _, q, _, _ = _moduli(qs, shape[-2])
    res = _out(shape, out)
    _add_k(x, y, res.reshape(-1, *shape[-2:]), q)
    return res


def rns_sub(a: np.ndarray, b: np.ndarray, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """``(a - b) mod q_l`` per limb; batch axes broadcast.  Inputs and output in ``[0, q)``."""
    _check_poly(a), _check_poly(b, "b")
    shape, (x, y) = _broadcast(a, b)
    _, q, _, _ = _moduli(qs, shape[-2])
    res = _out(shape, out)
    _sub_k(x, y, res.reshape(-1, *shape[-2:]), q)
    return res


def rns_neg(a: np.ndarray, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """``-a mod q_l`` per limb (0 stays 0).  Input and output in ``[0, q)``."""
    _check_poly(a)
    _, q, _, _ = _moduli(qs, a.shape[-2])
    res = _out(a.shape, out)
    _neg_k(_as3(a), res.reshape(-1, *a.shape[-2:]), q)
    return res


def rns_mul(a: np.ndarray, b: np.ndarray, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Exact pointwise ``a * b mod q_l`` (128-bit product, 128-bit Barrett); batch axes
    broadcast.  Inputs in ``[0, q)``, output in ``[0, q)``."""
    _check_poly(a), _check_poly(b, "b")
    shape, (x, y) = _broadcast(a, b)
    _, q, hi, lo = _moduli(qs, shape[-2])
    res = _out(shape, out)
    _mul_k(x, y, res.reshape(-1, *shape[-2:]), q, hi, lo)
    return res


def rns_fma(acc: np.ndarray, a: np.ndarray, b: np.ndarray, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Exact ``(acc + a * b) mod q_l``; batch axes broadcast; ``out`` may be ``acc``.  All
    inputs in ``[0, q)``, output in ``[0, q)``."""
    _check_poly(acc, "acc"), _check_poly(a), _check_poly(b, "b")
    shape, (c, x, y) = _broadcast(acc, a, b)
    _, q, hi, lo = _moduli(qs, shape[-2])
    res = _out(shape, out)
    _fma_k(c, x, y, res.reshape(-1, *shape[-2:]), q, hi, lo)
    return res


def _batch_maps(sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Broadcast batch shapes; per output batch entry, the flat batch index into each operand."""
    try:
        shape = tuple(np.broadcast_shapes(sa, sb))
    except ValueError:
        raise ValueError(f"batch shapes {sa} and {sb} do not broadcast") from None
    ia = np.ascontiguousarray(np.broadcast_to(np.arange(int(np.prod(sa, dtype=np.int64))).reshape(sa), shape)).ravel()
    ib = np.ascontiguousarray(np.broadcast_to(np.arange(int(np.prod(sb, dtype=np.int64))).reshape(sb), shape)).ravel()
    return shape, ia.astype(np.int64), ib.astype(np.int64)


def rns_dot(a: np.ndarray, b: np.ndarray, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Exact inner product over the leading axis: ``sum_k a[k] * b[k] mod q_l``.

    ``a``: ``(K, *batch_a, L, N)``, ``b``: ``(K, *batch_b, L, N)``; the batch shapes broadcast
    (numpy rules) and the result is ``(*batch, L, N)`` in ``[0, q)``.  Products are summed
    lazily in 128 bits and reduced once per 63 terms, so this is one pass for the key-switching
    inner product ``sum_j digit_j * key_j`` (instead of ``K`` calls of :func:`rns_fma`).
    """
    _check_poly(a), _check_poly(b, "b")
    if a.ndim < 3 or b.ndim < 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"rns_dot needs (K, ..., L, N) operands with the same K, got {a.shape} and {b.shape}")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"limb/degree shapes differ: {a.shape} vs {b.shape}")
    L, N = a.shape[-2:]
    batch, ia, ib = _batch_maps(a.shape[1:-2], b.shape[1:-2])
    _, q, hi, lo = _moduli(qs, L)
    K = a.shape[0]
    x = np.ascontiguousarray(a).reshape(K, -1, L, N)
    y = np.ascontiguousarray(b).reshape(K, -1, L, N)
    res = _out(batch + (L, N), out)
    if np.shares_memory(res, a) or np.shares_memory(res, b):
        raise ValueError("rns_dot: out must not overlap the inputs")
    _dot_k(x, y, res.reshape(-1, L, N), ia, ib, q, hi, lo)
    return res


@functools.lru_cache(maxsize=1024)
def _scalar_shoup(s_t: tuple[int, ...], qs_t: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    s = [v % q for v, q in zip(s_t, qs_t)]
    return np.array(s, dtype=np.uint64), np.array([shoup(v, q) for v, q in zip(s, qs_t)], dtype=np.uint64)


def rns_mul_scalar(a: np.ndarray, s: Any, qs: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """``a * s_l mod q_l`` with one scalar per limb (``s``: ``(L,)`` ints, any size; reduced
    mod ``q_l`` first).  Shoup multiplication; input and output in ``[0, q)``."""
    _check_poly(a)
    qs_t, q, _, _ = _moduli(qs, a.shape[-2])
    if type(s).__module__.split(".")[0] == "cupy":
        s = s.get()
    s_t = tuple(int(v) for v in np.asarray(s, dtype=object).ravel())
    if len(s_t) != len(qs_t):
        raise ValueError(f"s must hold one scalar per limb ({len(qs_t)}), got {len(s_t)}")
    sv, sp = _scalar_shoup(s_t, qs_t)
    res = _out(a.shape, out)
    _mul_scalar_k(_as3(a), res.reshape(-1, *a.shape[-2:]), q, sv, sp)
    return res


def base_convert(a: np.ndarray, from_qs: Any, to_qs: Any) -> np.ndarray:
    """Fast (approximate) RNS basis conversion, coefficient form, HPS/BEHZ "FastBConv".

    ``a``: ``(..., Lf, N)`` residues of ``x in [0, Q)``, ``Q = prod(from_qs)``.  Returns
    ``(..., Lt, N)`` with limb ``j`` equal to ``(sum_i [a_i (Q/q_i)^-1]_{q_i} (Q/q_i)) mod p_j``,
    i.e. the residues of ``x + u*Q`` for one integer ``0 <= u <= Lf - 1`` per coefficient
    (the same ``u`` for every target limb; ``u`` is not corrected).  Key switching tolerates
    this: the error is a multiple of Q.  Limits: ``Lf <= 63``, all moduli odd ``< 2**61``,
    source moduli pairwise coprime.  Exact integer arithmetic (bit-identical on the GPU).
    """
    _check_poly(a)
    c = base_convert_constants(from_qs, to_qs)
    Lf = c.from_qs.shape[0]
    if a.shape[-2] != Lf:
        raise ValueError(f"a has {a.shape[-2]} limbs but from_qs has {Lf} moduli")
    x = _as3(a)
    Lt = c.to_qs.shape[0]
    res = np.empty(a.shape[:-2] + (Lt, a.shape[-1]), dtype=np.uint64)
    _base_convert_k(
        x, res.reshape(-1, Lt, a.shape[-1]), c.from_qs, c.qhat_inv, c.qhat_inv_shoup,
        c.qhat_mod_p, c.to_qs, c.barrett_hi, c.barrett_lo,
    )  # fmt: skip
    return res


def automorphism(
    a: np.ndarray, galois_elt: int, N: int, ntt_form: bool, qs: Any = None, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Apply ``x -> x^g`` (``g = galois_elt``, odd in ``[1, 2N)``) to every limb.

    Coefficient form (``ntt_form=False``): ``a_j x^j -> a_j x^(g j mod 2N)`` with
    ``x^N = -1``; the sign needs the moduli, so ``qs`` is required.  NTT form (bit-reversed
    slots as produced by :func:`ntt`): the matching slot permutation (no arithmetic), so
    ``ntt(automorphism(a, g, N, False, qs)) == automorphism(ntt(a), g, N, True)``.
    """
    _check_poly(a)
    if a.shape[-1] != N:
        raise ValueError(f"a has degree {a.shape[-1]} but N={N}")
    perm = galois_permutation(galois_elt, N, bool(ntt_form))
    if ntt_form:
        q = np.zeros(a.shape[-2], dtype=np.uint64) if qs is None else _moduli(qs, a.shape[-2])[1]
    else:
        if qs is None:
            raise ValueError("automorphism in coefficient form needs qs (negation mod q_l)")
        q = _moduli(qs, a.shape[-2])[1]
    res = _out(a.shape, out)
    if res is a or np.shares_memory(res, a):
        raise ValueError("automorphism cannot work in place: out must not overlap a")
    _gather_k(np.ascontiguousarray(a).reshape(-1, N), res.reshape(-1, N), perm, q)
    return res
