"""CPU backend: numpy plus Numba-compiled kernels, the reference for every GPU kernel.

Numeric contract (shared with ``kernels/``):

* ``q == 0`` means the power-of-two ring of the array's dtype (Z_2^64 for uint64, Z_2^32
  for uint32): arithmetic wraps.  Otherwise ``q`` is an odd modulus < 2**62, inputs are in
  ``[0, q)`` and outputs are in ``[0, q)``.
* Z_q products are exact: the 128-bit product is reduced with Barrett constants from
  :mod:`hecrypt.backend.modarith`.
* ``matmul`` is exact for every K: float64 GEMMs on signed, balanced limbs, with K chunked
  at the exactness limit.  Z_2^64 uses Karatsuba on 22/20/22-bit limbs (5 GEMM-equivalents,
  K <= 1024 per chunk, :func:`_matmul64_karatsuba`); Z_2^32 and Z_q use the schoolbook
  diagonals of :func:`limb_plan` (Z_2^32: 3 GEMM-equivalents; Z_q: 9, K <= 1024 per chunk).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numba as nb
import numpy as np

from ._numba import dual_kernel
from .modarith import barrett, two64_mod

U64 = nb.uint64
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ONE = np.uint64(1)


# --------------------------------------------------------------------------------------
# scalar helpers (inlined into the kernels)
# --------------------------------------------------------------------------------------
@nb.njit(inline="always", cache=True)
def _mul128(a, b):
    """Full 128-bit product of two uint64: returns (hi, lo)."""
    a_lo = a & _M32
    a_hi = a >> _S32
    b_lo = b & _M32
    b_hi = b >> _S32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)
    lo = (p0 & _M32) | (mid << _S32)
    hi = p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)
    return hi, lo


@nb.njit(inline="always", cache=True)
def _barrett_reduce(hi, lo, q, mu, k):
    """(hi*2^64 + lo) mod q for a value < q^2 (see modarith)."""
    km1 = k - _ONE
    q1 = (hi << (np.uint64(64) - km1)) | (lo >> km1)
    h2, l2 = _mul128(q1, mu)
    kp1 = k + _ONE
    q3 = (h2 << (np.uint64(64) - kp1)) | (l2 >> kp1)
    r = lo - q3 * q
    while r >= q:
        r -= q
    return r


@nb.njit(inline="always", cache=True)
def _mulmod(a, b, q, mu, k):
    hi, lo = _mul128(a, b)
    return _barrett_reduce(hi, lo, q, mu, k)


# --------------------------------------------------------------------------------------
# kernels compiled twice: parallel for large inputs, serial for small ones
# --------------------------------------------------------------------------------------
#: below this many elements a kernel runs single-threaded: waking the worker threads costs
#: more than the work (measured 0.37 ms vs 0.014 ms for a small call on a busy 2-core host)
PARALLEL_MIN = 1 << 15


_Kernel = dual_kernel(PARALLEL_MIN)


# --------------------------------------------------------------------------------------
# elementwise Z_q kernels on flat contiguous arrays
# --------------------------------------------------------------------------------------
@_Kernel
def _mulmod_flat(a, b, out, q, mu, k):
    for i in nb.prange(out.size):
        out[i] = _mulmod(a[i], b[i], q, mu, k)


@_Kernel
def _mulmod_scalar_flat(a, s, out, q, mu, k):
    for i in nb.prange(out.size):
        out[i] = _mulmod(a[i], s, q, mu, k)


@_Kernel
def _reduce_u128_flat(lo, hi, out, q, mu, k, r64):
    for i in nb.prange(out.size):
        h = hi[i] % q
        t = _mulmod(h, r64, q, mu, k)
        v = t + lo[i] % q
        if v >= q:
            v -= q
        out[i] = v


@nb.njit(cache=True)
def _sum_last_axis_q(a2d, out, q):
    n, m = a2d.shape
    for i in range(n):
        acc = np.uint64(0)
        for j in range(m):
            acc += a2d[i, j]
            if acc >= q:
                acc -= q
        out[i] = acc


# --------------------------------------------------------------------------------------
# exact limb matmul (float64 BLAS on balanced limbs)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LimbPlan:
    """How a ring matmul is split into float64 GEMMs.

    ``nlimbs`` signed limbs of ``width`` bits; diagonals ``0 .. ndiag-1`` are computed
    (``ndiag = nlimbs`` for power-of-two rings, whose higher diagonals vanish mod 2^k;
    ``2*nlimbs - 1`` for Z_q); ``kmax`` is the largest inner dimension for which every
    diagonal's partial sum stays below 2^53 in magnitude (exact in float64).
    """

    nlimbs: int
    width: int
    ndiag: int
    kmax: int
    bounds: tuple[int, ...]

    @property
    def gemm_equivalents(self) -> int:
        return sum(self._terms(d) for d in range(self.ndiag))

    def _terms(self, d: int) -> int:
        return min(d, self.nlimbs - 1) - max(0, d - self.nlimbs + 1) + 1


@lru_cache(maxsize=64)
def limb_plan(bits: int, q: int = 0) -> LimbPlan:
    """Limb plan for Z_2^bits (``q == 0``) or Z_q.

    Operands are first mapped to signed representatives (``|a| <= 2^(bits-1)`` for
    Z_2^bits, ``|a| <= (q-1)/2`` for Z_q), then split into balanced limbs
    ``a = sum_i a_i 2^(w i)`` with ``|a_i| <= 2^(w-1)`` for ``i < L-1``.
    """
    if q == 0:
        if bits == 64:
            nlimbs, width = 3, 22
        elif bits == 32:
            nlimbs, width = 2, 16
        else:  # pragma: no cover - rings are validated upstream
            raise ValueError(f"unsupported power-of-two ring Z_2^{bits}")
        maxabs = 1 << (bits - 1)
        ndiag = nlimbs
    else:
        width = 22
        maxabs = (q - 1) // 2
        # as few limbs as the modulus needs: one for q < 2^22 (e.g. 501337), three for 62 bits
        nlimbs = max(1, -(-(maxabs.bit_length() + 1) // width))
        ndiag = 2 * nlimbs - 1
    half = 1 << (width - 1)
    # top limb: (a - low limbs) / 2^(w(L-1)), |low limbs| <= half * (2^(w(L-1)) - 1)/(2^w - 1)
    low = sum(half << (width * i) for i in range(nlimbs - 1))
    top = (maxabs + low) >> (width * (nlimbs - 1))
    bounds = tuple([half] * (nlimbs - 1) + [top + 1])
    worst = 0
    for d in range(ndiag):
        s = sum(bounds[i] * bounds[d - i] for i in range(nlimbs) if 0 <= d - i < nlimbs)
        worst = max(worst, s)
    kmax = (1 << 53) // worst
    return LimbPlan(nlimbs, width, ndiag, int(kmax), bounds)


@_Kernel
def _split_rows(a, out, nlimbs, width, q, signed_shift):
    """a: (B, M, K) unsigned -> out: (B, M, nlimbs*K) float64, limbs in order 0..L-1."""
    B, M, K = a.shape
    half = np.int64(1) << np.int64(width - 1)
    mask = (np.int64(1) << np.int64(width)) - np.int64(1)
    halfq = (q - np.uint64(1)) >> np.uint64(1)
    for bm in nb.prange(B * M):
        b = bm // M
        m = bm % M
        for kk in range(K):
            u = a[b, m, kk]
            if q != 0:
                if u > halfq:
                    v = -np.int64(q - u)
                else:
                    v = np.int64(u)
            elif signed_shift == 32:
                v = np.int64(np.int32(np.uint32(u)))
            else:
                v = np.int64(u)
            for i in range(nlimbs - 1):
                li = ((v + half) & mask) - half
                out[b, m, i * K + kk] = np.float64(li)
                v = (v - li) >> np.int64(width)
            out[b, m, (nlimbs - 1) * K + kk] = np.float64(v)


@_Kernel
def _split_cols_rev(a, out, nlimbs, width, q, signed_shift):
    """a: (B, K, N) unsigned -> out: (B, nlimbs*K, N) float64, limb blocks in order L-1..0."""
    B, K, N = a.shape
    half = np.int64(1) << np.int64(width - 1)
    mask = (np.int64(1) << np.int64(width)) - np.int64(1)
    halfq = (q - np.uint64(1)) >> np.uint64(1)
    for bk in nb.prange(B * K):
        b = bk // K
        kk = bk % K
        for n in range(N):
            u = a[b, kk, n]
            if q != 0:
                if u > halfq:
                    v = -np.int64(q - u)
                else:
                    v = np.int64(u)
            elif signed_shift == 32:
                v = np.int64(np.int32(np.uint32(u)))
            else:
                v = np.int64(u)
            for i in range(nlimbs - 1):
                li = ((v + half) & mask) - half
                out[b, (nlimbs - 1 - i) * K + kk, n] = np.float64(li)
                v = (v - li) >> np.int64(width)
            out[b, kk, n] = np.float64(v)


@_Kernel
def _recombine_pow2(diags, acc, width):
    """acc += sum_d int(diags[d]) << (w d)   (mod 2^64; caller narrows for 2^32)."""
    D = diags.shape[0]
    n = acc.size
    for i in nb.prange(n):
        s = acc[i]
        for d in range(D):
            s += np.uint64(np.int64(diags[d, i])) << np.uint64(width * d)
        acc[i] = s


@_Kernel
def _recombine_q(diags, acc, pows, q, mu, k):
    """acc = (acc + sum_d (diags[d] mod q) * pows[d]) mod q."""
    D = diags.shape[0]
    n = acc.size
    qi = np.int64(q)
    for i in nb.prange(n):
        s = acc[i]
        for d in range(D):
            v = np.int64(diags[d, i]) % qi  # python-style mod: result in [0, q)
            t = _mulmod(np.uint64(v), pows[d], q, mu, k)
            s += t
            if s >= q:
                s -= q
        acc[i] = s


# --------------------------------------------------------------------------------------
# Z_2^64 on the CPU: Karatsuba on 22/20/22-bit limbs, 5 float64 GEMM-equivalents
# --------------------------------------------------------------------------------------
#: exactness limit of :func:`_matmul64_karatsuba` per K chunk (see its docstring)
KARATSUBA64_KMAX = 1024


@nb.njit(inline="always", cache=True)
def _split64(u):
    """uint64 -> balanced limbs (a0, a1, a2) with a = a0 + a1 2^22 + a2 2^42 (signed a)."""
    v = np.int64(u)
    h22 = np.int64(1) << np.int64(21)
    m22 = (np.int64(1) << np.int64(22)) - np.int64(1)
    h20 = np.int64(1) << np.int64(19)
    m20 = (np.int64(1) << np.int64(20)) - np.int64(1)
    a0 = ((v + h22) & m22) - h22
    v = (v - a0) >> np.int64(22)
    a1 = ((v + h20) & m20) - h20
    a2 = (v - a1) >> np.int64(20)
    return a0, a1, a2


@_Kernel
def _split64_rows(a, out):
    """a: (B, M, K) uint64 -> out: (B, M, 4K) float64 = [a0 | a2 | a1 | a0 + a1]."""
    B, M, K = a.shape
    for bm in nb.prange(B * M):
        b = bm // M
        m = bm % M
        for kk in range(K):
            a0, a1, a2 = _split64(a[b, m, kk])
            out[b, m, kk] = np.float64(a0)
            out[b, m, K + kk] = np.float64(a2)
            out[b, m, 2 * K + kk] = np.float64(a1)
            out[b, m, 3 * K + kk] = np.float64(a0 + a1)


@_Kernel
def _split64_cols(a, out):
    """a: (B, K, N) uint64 -> out: (B, 4K, N) float64 = [b2; b0; b1; b0 + b1]."""
    B, K, N = a.shape
    for bk in nb.prange(B * K):
        b = bk // K
        kk = bk % K
        for n in range(N):
            b0, b1, b2 = _split64(a[b, kk, n])
            out[b, kk, n] = np.float64(b2)
            out[b, K + kk, n] = np.float64(b0)
            out[b, 2 * K + kk, n] = np.float64(b1)
            out[b, 3 * K + kk, n] = np.float64(b0 + b1)


@_Kernel
def _recombine64(p, acc):
    """acc += P00 + (Pk - P00 - P11) 2^22 + D2 2^42 + P11 2^44   (mod 2^64).

    ``p`` is (4, n) float64 holding [D2 = a0 b2 + a2 b0, P00, P11, Pk]; every entry is an
    exact integer of magnitude <= 2^53, so the int64 conversions are exact.
    """
    n = acc.size
    for i in nb.prange(n):
        d2 = np.int64(p[0, i])
        p00 = np.int64(p[1, i])
        p11 = np.int64(p[2, i])
        pk = np.int64(p[3, i])
        s = (np.uint64(p00) + (np.uint64(pk - p00 - p11) << np.uint64(22))
             + (np.uint64(d2) << np.uint64(42)) + (np.uint64(p11) << np.uint64(44)))
        acc[i] += s


#: float64 scratch kept per thread and slot between matmuls (larger requests are not kept):
#: re-faulting tens of MB of fresh pages cost 20-50 ms per shared 1024 product
SCRATCH_MAX_BYTES = 64 << 20
_SCRATCH = threading.local()


def _scratch(slot: int, n: int) -> np.ndarray:
    """``n`` float64 of this thread's scratch buffer ``slot`` (contents undefined; internal only)."""
    if 8 * n > SCRATCH_MAX_BYTES:
        return np.empty(n, np.float64)
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.size < n:
        buf = bufs[slot] = np.empty(n, np.float64)
    return buf[:n]


def _matmul64_karatsuba(A: np.ndarray, Bm: np.ndarray) -> np.ndarray:
    """Exact Z_2^64 matmul of batched (Bt, M, K) @ (Bt, K, N) uint64 arrays.

    Signed representatives are split as ``a = a0 + a1 2^22 + a2 2^42`` with balanced
    ``|a0| <= 2^21``, ``|a1| <= 2^19`` and ``|a2| <= 2^21``.  Modulo 2^64 only
    ``a0 b0 + (a0 b1 + a1 b0) 2^22 + (a0 b2 + a2 b0) 2^42 + a1 b1 2^44`` matters (``a1 b2``
    and ``a2 b1`` carry weight 2^64), and Karatsuba gives the 2^22 term as
    ``(a0 + a1)(b0 + b1) - a0 b0 - a1 b1``: four GEMM calls worth five float64 GEMMs
    (``[a0 a2] @ [b2; b0]`` counts twice) instead of the schoolbook six.  Per inner index the
    largest terms are ``|a0 b2 + a2 b0| <= 2^43`` and ``|(a0+a1)(b0+b1)| <= 1.5625 * 2^42``, so
    every sum is an exact float64 integer for ``K <= 1024`` (``KARATSUBA64_KMAX``); larger K is
    chunked and the chunks are accumulated modulo 2^64.
    """
    Bt, M, K = A.shape
    N = Bm.shape[2]
    acc = np.zeros((Bt, M, N), np.uint64)
    if K == 0:
        return acc
    nchunks = math.ceil(K / KARATSUBA64_KMAX)
    kc = math.ceil(K / nchunks)
    p = _scratch(0, 4 * Bt * M * N).reshape(4, Bt, M, N)
    for c0 in range(0, K, kc):
        Ac = A[:, :, c0:c0 + kc]
        Bc = Bm[:, c0:c0 + kc, :]
        k = Ac.shape[2]
        Af = _scratch(1, Bt * M * 4 * k).reshape(Bt, M, 4 * k)
        Bf = _scratch(2, Bt * 4 * k * N).reshape(Bt, 4 * k, N)
        _split64_rows(np.ascontiguousarray(Ac), Af)
        _split64_cols(np.ascontiguousarray(Bc), Bf)
        np.matmul(Af[:, :, 0:2 * k], Bf[:, 0:2 * k, :], out=p[0])          # a0 b2 + a2 b0
        np.matmul(Af[:, :, 0:k], Bf[:, k:2 * k, :], out=p[1])              # a0 b0
        np.matmul(Af[:, :, 2 * k:3 * k], Bf[:, 2 * k:3 * k, :], out=p[2])  # a1 b1
        np.matmul(Af[:, :, 3 * k:], Bf[:, 3 * k:, :], out=p[3])            # (a0+a1)(b0+b1)
        _recombine64(p.reshape(4, -1), acc.reshape(-1))
    return acc


def _as_batched(a: np.ndarray) -> np.ndarray:
    nb_ = int(np.prod(a.shape[:-2], dtype=np.int64))
    return np.ascontiguousarray(a.reshape((nb_,) + a.shape[-2:]))


def chacha20_blocks_numpy(key: bytes, nonce: bytes, counter: int, nblocks: int) -> np.ndarray:
    """ChaCha20 (RFC 8439 section 2.3) block function vectorised over blocks in numpy.

    An independent implementation of the same keystream: the fallback when ``cryptography``
    is not installed, and a second reference for the tests.  About 0.1 GB/s.
    """
    kw = np.frombuffer(bytes(key), "<u4").astype(np.uint32)
    nw = np.frombuffer(bytes(nonce), "<u4").astype(np.uint32)
    init = np.empty((16, int(nblocks)), np.uint32)
    init[0:4] = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], np.uint32)[:, None]
    init[4:12] = kw[:, None]
    init[12] = (np.arange(int(nblocks), dtype=np.uint64) + np.uint64(counter)).astype(np.uint32)
    init[13:16] = nw[:, None]
    x = [init[i].copy() for i in range(16)]

    def rotl(v, r):
        return (v << np.uint32(r)) | (v >> np.uint32(32 - r))

    def qr(a, b, c, d):
        x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 16)  # noqa: E702
        x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 12)  # noqa: E702
        x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 8)  # noqa: E702
        x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 7)  # noqa: E702

    for _ in range(10):
        qr(0, 4, 8, 12), qr(1, 5, 9, 13), qr(2, 6, 10, 14), qr(3, 7, 11, 15)
        qr(0, 5, 10, 15), qr(1, 6, 11, 12), qr(2, 7, 8, 13), qr(3, 4, 9, 14)
    out = np.stack(x) + init
    return np.ascontiguousarray(out.T).reshape(-1)


_ZEROS = memoryview(bytes(8 << 20))  # read-only zero plaintext for keystream generation


class CPUBackend:
    """Kernels on numpy arrays.  Stateless; one instance is shared."""

    name = "cpu"
    xp = np

    # -- arrays ------------------------------------------------------------------------
    @staticmethod
    def asarray(x, dtype=None):
        if type(x).__module__.split(".")[0] == "cupy":
            x = x.get()
        return np.asarray(x, dtype=dtype)

    @staticmethod
    def to_numpy(a) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def synchronize() -> None:
        return None

    # -- elementwise -------------------------------------------------------------------
    @staticmethod
    def add(a, b, q: int = 0):
        if q == 0:
            return np.add(a, b)
        s = np.atleast_1d(np.add(a, b))  # < 2^63: no wrap
        qq = np.uint64(q)
        np.subtract(s, qq, out=s, where=s >= qq)
        return s.reshape(np.broadcast_shapes(np.shape(a), np.shape(b)))

    @staticmethod
    def sub(a, b, q: int = 0):
        if q == 0:
            return a - b
        qq = np.uint64(q)
        return np.where(a >= b, a - b, a + (qq - b))

    @staticmethod
    def neg(a, q: int = 0):
        if q == 0:
            return np.negative(a)
        return np.where(a == 0, a, np.uint64(q) - a)

    @staticmethod
    def mul(a, b, q: int = 0):
        if q == 0:
            return a * b
        a, b = np.broadcast_arrays(a, b)
        a = np.asarray(a, dtype=np.uint64, order="C")  # keeps 0-d shapes (ascontiguousarray does not)
        b = np.asarray(b, dtype=np.uint64, order="C")
        out = np.empty(a.shape, np.uint64)
        qq, mu, k = barrett(q)
        _mulmod_flat(a.reshape(-1), b.reshape(-1), out.reshape(-1), np.uint64(qq), np.uint64(mu), np.uint64(k))
        return out

    @classmethod
    def nsum(cls, arrays, q: int = 0):
        """Sum of same-shape arrays, accumulated in place in one output buffer."""
        arrays = list(arrays)
        shape = np.shape(arrays[0])
        qq = np.uint64(q)
        if len(arrays) == 1:
            return np.array(arrays[0], copy=True)
        out = np.atleast_1d(np.add(arrays[0], arrays[1]))
        for x in arrays[2:] if not q else [None, *arrays[2:]]:
            if x is not None:
                np.add(out, np.reshape(x, out.shape), out=out)
            if q:
                np.subtract(out, qq, out=out, where=out >= qq)
        return out.reshape(shape)

    @staticmethod
    def sum(a, axis=None, q: int = 0):
        if q == 0:
            return np.sum(a, axis=axis, dtype=a.dtype)
        if axis is None:
            a2 = np.ascontiguousarray(a.reshape(1, -1))
            out = np.empty(1, np.uint64)
            _sum_last_axis_q(a2, out, np.uint64(q))
            return out.reshape(())
        moved = np.moveaxis(a, axis, -1)
        shape = moved.shape[:-1]
        a2 = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]))
        out = np.empty(a2.shape[0], np.uint64)
        _sum_last_axis_q(a2, out, np.uint64(q))
        return out.reshape(shape)

    @staticmethod
    def truncate(a, f: int, q: int = 0):
        """Floor of the signed representative divided by 2^f, back in the ring."""
        if q == 0:
            sdt = np.int64 if a.dtype == np.uint64 else np.int32
            return (a.view(sdt) >> sdt(f)).view(a.dtype)
        s = a.astype(np.int64)
        s = np.where(a > np.uint64((q - 1) // 2), s - np.int64(q), s)
        t = s >> np.int64(f)
        return np.where(t < 0, t + np.int64(q), t).astype(np.uint64)

    @staticmethod
    def reduce_u128(lo, hi, q: int):
        """(lo + hi * 2^64) mod q elementwise; bias of a uniform 128-bit input < q/2^128."""
        qq, mu, k = barrett(q)
        lo = np.asarray(lo, np.uint64, order="C")
        hi = np.asarray(hi, np.uint64, order="C")
        out = np.empty(lo.shape, np.uint64)
        _reduce_u128_flat(lo.reshape(-1), hi.reshape(-1), out.reshape(-1), np.uint64(qq), np.uint64(mu),
                          np.uint64(k), np.uint64(two64_mod(q)))
        return out

    # -- matmul ------------------------------------------------------------------------
    @staticmethod
    def matmul(a, b, q: int = 0, bits: int = 64):
        """Exact ring matmul ``a @ b`` with numpy batch broadcasting."""
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("matmul operands must be at least 2-D")
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
        A = _as_batched(a)
        Bm = _as_batched(b)
        M, K = A.shape[1:]
        N = Bm.shape[2]
        out_dtype = a.dtype
        if q == 0 and bits == 64:
            return _matmul64_karatsuba(A, Bm).reshape(batch + (M, N))
        plan = limb_plan(bits, q)
        acc = np.zeros((A.shape[0], M, N), np.uint64)
        if K == 0:
            return acc.astype(out_dtype).reshape(batch + (M, N))
        L, w = plan.nlimbs, plan.width
        nchunks = math.ceil(K / plan.kmax)
        kc = math.ceil(K / nchunks)
        qq, mu, kk = barrett(q) if q else (0, 0, 0)
        pows = np.array([pow(2, w * d, q) for d in range(plan.ndiag)], np.uint64) if q else None
        for c0 in range(0, K, kc):
            Ac = np.ascontiguousarray(A[:, :, c0:c0 + kc])
            Bc = np.ascontiguousarray(Bm[:, c0:c0 + kc, :])
            k = Ac.shape[2]
            Af = np.empty((A.shape[0], M, L * k), np.float64)
            Bf = np.empty((A.shape[0], L * k, N), np.float64)
            _split_rows(Ac, Af, L, w, np.uint64(q), bits)
            _split_cols_rev(Bc, Bf, L, w, np.uint64(q), bits)
            diags = np.empty((plan.ndiag, A.shape[0], M, N), np.float64)
            for d in range(plan.ndiag):
                i0, i1 = max(0, d - L + 1), min(d, L - 1)
                j0 = L - 1 - d + i0
                np.matmul(Af[:, :, i0 * k:(i1 + 1) * k], Bf[:, j0 * k:(j0 + i1 - i0 + 1) * k, :], out=diags[d])
            dflat = diags.reshape(plan.ndiag, -1)
            if q == 0:
                _recombine_pow2(dflat, acc.reshape(-1), w)
            else:
                _recombine_q(dflat, acc.reshape(-1), pows, np.uint64(qq), np.uint64(mu), np.uint64(kk))
        return acc.astype(out_dtype).reshape(batch + (M, N))

    # -- randomness --------------------------------------------------------------------
    @staticmethod
    def chacha20_keystream(key: bytes, nonce: bytes, counter: int, nblocks: int) -> np.ndarray:
        """RFC 8439 ChaCha20 keystream blocks ``counter .. counter+nblocks-1`` as uint32 words.

        Uses the ``cryptography`` package (OpenSSL); the GPU kernel is checked against it.
        The keystream is written straight into the returned array (``update_into`` over a
        shared read-only zero buffer, in slices of at most 8 MiB): allocation, not the
        cipher, dominated the naive ``update(bytes(n))`` (measured 0.8 -> 3.3 GB/s).
        Without ``cryptography`` the same words come from :func:`chacha20_blocks_numpy`.
        The 32-bit block counter never passes 2^32 (``ValueError``).
        """
        c, nb_ = int(counter), int(nblocks)
        if not (0 <= c and 0 <= nb_ and c + nb_ <= 1 << 32):
            raise ValueError(f"ChaCha20 blocks {c} .. {c + nb_ - 1} leave RFC 8439's 32-bit block counter")
        try:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
        except ImportError:  # pragma: no cover - cryptography is a core dependency
            return chacha20_blocks_numpy(key, nonce, c, nb_)
        iv = c.to_bytes(4, "little") + bytes(nonce)
        enc = Cipher(algorithms.ChaCha20(bytes(key), iv), mode=None).encryptor()
        n = 64 * nb_
        out = np.empty(n + 64, np.uint8)  # update_into wants len(data) + block_size - 1 bytes
        step = len(_ZEROS)
        for i in range(0, n, step):
            m = min(step, n - i)
            enc.update_into(_ZEROS[:m], out[i:i + m + 63])
        return out[:n].view("<u4").view(np.uint32)
