"""Ring matmul through int8 limbs: the plan and a bit-exact CPU emulation of the GPU path.

The tensor-core path of :mod:`hecrypt.backend.cuda_int8` multiplies Z_2^64 and Z_2^32
matrices with int8 x int8 -> int32 GEMMs.  This module holds everything about that
algorithm that does not need a GPU: the limb plan with its exactness limits
(:func:`int8_plan`), the choice of GEMM layout (:func:`choose_mode`), the K chunking
(:func:`chunk_bounds`) and an emulation (:func:`int8_matmul_emulated`) that runs the same
algebra on the CPU, with the int32 accumulators emulated exactly (including their
wrap-around), so that CI tests the algorithm on every commit.

Algorithm (``bits`` = 64 or 32, ``L = bits / 8`` limbs)
-----------------------------------------------------
* **Split.**  ``x = a + 0x8080...80 (mod 2^bits)``; limb ``i`` is byte ``i`` of ``x`` minus
  128, read as a signed int8 (``byte ^ 0x80``).  Then ``a = sum_i a_i 2^(8i) (mod 2^bits)``
  with every ``a_i`` in ``[-128, 127]`` (signed, balanced: cuBLAS int8 GEMMs take signed
  int8).  The top limb needs no special case: its carry is a multiple of 2^bits.
* **Diagonals.**  ``a*b = sum_d 2^(8d) S_d (mod 2^bits)`` with ``S_d = sum_{i+j=d} a_i b_j``;
  only ``d <= L-1`` matter (``2^(8d) = 0`` beyond), so Z_2^64 needs 36 of the 64 limb
  products and Z_2^32 10 of 16.  Diagonal ``d`` is *one* int8 GEMM: the ``d+1`` limb pairs
  are concatenated along K, ``[a_0 | a_1 | ... | a_d] @ [b_d ; ... ; b_0]``.
* **Exactness.**  A limb product lies in ``[-16256, 16384]`` (``+16384`` only for
  ``(-128)*(-128)``), so ``S_d`` over ``K`` terms per pair fits an int32 exactly while
  ``(d+1) * K * 16384 <= 2^31 - 1``: ``K <= k_exact(d) = floor((2^31-1) / ((d+1) 2^14))``,
  i.e. 131071, 65535, 43690, 32767, 26214, 21845, 18724, 16383 for d = 0..7.
* **Wrap-around.**  ``S_d`` enters the result as ``2^(8d) S_d mod 2^bits``, which depends
  only on ``S_d mod 2^(bits-8d)``.  An int32 accumulator that *wraps* (two's complement,
  no saturation) still holds ``S_d mod 2^32``; so every diagonal with
  ``bits - 8d <= 32`` may wrap freely: d = 4..7 for Z_2^64 and *all* diagonals (0..3) for
  Z_2^32.  Only d = 0..3 of Z_2^64 must stay exact, so K is chunked at
  ``k_exact(3) = 32767`` for Z_2^64 and not at all for Z_2^32.  Where the hardware's wrap
  has not been verified (``wrap_ok=False``) every diagonal is kept exact: chunks of
  ``k_exact(7) = 16383`` (Z_2^64) or ``k_exact(3) = 32767`` (Z_2^32).
* **Recombine.**  ``C = sum_d (int64) S_d << 8d`` in uint64 arithmetic (mod 2^64, then
  narrowed to uint32 for Z_2^32), summed over K chunks.

Why not fewer products: a limb carries at most 8 bits, so 64 bits need 8 limbs, and the
schoolbook triangle ``i + j <= 7`` has 36 pairs.  Karatsuba would need limb sums, which
take 9 bits and no longer fit int8.  What can be saved is memory traffic: for a thin
operand (few columns N, e.g. a 65536 x 1024 x 10 training step) one GEMM against a
block-Toeplitz copy of the thin operand computes all diagonals while reading the big
operand's limbs once instead of 36 times (``mode="toeplitz_b"``; ``"toeplitz_a"`` for few
rows), at 64 instead of 36 products, which is cheap there because such GEMMs are
memory-bound.  :func:`choose_mode` picks with a roofline model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import KernelError

__all__ = [
    "LIMB_MIN",
    "LIMB_MAX",
    "PROD_MAX",
    "PROD_MIN",
    "INT32_MAX",
    "MODES",
    "Int8Diagonal",
    "Int8Plan",
    "int8_plan",
    "chunk_bounds",
    "choose_mode",
    "split_limbs",
    "combine_limbs",
    "wrap_int32",
    "int8_matmul_emulated",
    "ExactnessViolation",
]

LIMB_MIN = -128
LIMB_MAX = 127
PROD_MAX = LIMB_MIN * LIMB_MIN  # 16384, only (-128)*(-128)
PROD_MIN = LIMB_MIN * LIMB_MAX  # -16256
INT32_MAX = (1 << 31) - 1
INT32_MIN = -(1 << 31)
MODES = ("diagonal", "toeplitz_b", "toeplitz_a")


class ExactnessViolation(KernelError):
    """An int32 accumulator that the algorithm needs exact would have overflowed.

    Raised only by the emulation in ``strict`` mode: it proves the chunking limits.
    """


@dataclass(frozen=True)
class Int8Diagonal:
    """One diagonal ``S_d = sum_{i+j=d} a_i b_j`` of the limb product.

    ``pairs = d + 1`` limb pairs are concatenated along K; the result is weighted by
    ``2^(8d)``, so only ``S_d mod 2^needed_bits`` matters (``needed_bits = bits - 8d``).
    ``k_exact`` is the largest K (per limb pair) for which the int32 accumulator cannot
    overflow; ``wrap_safe`` is True when ``needed_bits <= 32``, i.e. an int32 that wraps
    modulo 2^32 still carries every bit the result needs.
    """

    d: int
    pairs: int
    weight_bits: int
    needed_bits: int
    k_exact: int
    wrap_safe: bool


@dataclass(frozen=True)
class Int8Plan:
    """The int8-limb plan for Z_2^bits (see the module docstring for the derivation)."""

    bits: int
    nlimbs: int
    diagonals: tuple[Int8Diagonal, ...]

    @property
    def products(self) -> int:
        """int8 limb products per ring multiply-add (36 for Z_2^64, 10 for Z_2^32)."""
        return sum(dg.pairs for dg in self.diagonals)

    @property
    def wrap_safe_diagonals(self) -> tuple[int, ...]:
        return tuple(dg.d for dg in self.diagonals if dg.wrap_safe)

    def k_chunk(self, wrap_ok: bool = True) -> int | None:
        """Largest K per chunk: exact diagonals bound it; ``None`` means no limit.

        With ``wrap_ok`` (int32 accumulation verified to wrap) only the diagonals that are
        not wrap-safe bound K; otherwise all do.
        """
        lims = [dg.k_exact for dg in self.diagonals if not (wrap_ok and dg.wrap_safe)]
        return min(lims) if lims else None

    def describe(self) -> str:
        rows = [f"Z_2^{self.bits}: {self.nlimbs} signed int8 limbs, {len(self.diagonals)} diagonal GEMMs, "
                f"{self.products} int8 products per ring multiply-add"]
        for dg in self.diagonals:
            rows.append(f"  d={dg.d}: {dg.pairs} pairs, weight 2^{dg.weight_bits}, needs S_d mod "
                        f"2^{dg.needed_bits}, exact for K <= {dg.k_exact}"
                        + (" (int32 wrap harmless)" if dg.wrap_safe else " (must stay exact)"))
        kw, ke = self.k_chunk(True), self.k_chunk(False)
        rows.append(f"  K chunk: {kw if kw else 'none'} when int32 wraps, {ke} otherwise")
        return "\n".join(rows)

    def as_dict(self) -> dict:
        return {
            "bits": self.bits,
            "nlimbs": self.nlimbs,
            "products": self.products,
            "k_chunk_wrap": self.k_chunk(True),
            "k_chunk_exact": self.k_chunk(False),
            "diagonals": [dg.__dict__.copy() for dg in self.diagonals],
        }


def _k_exact(pairs: int) -> int:
    # sum of pairs*K products in [PROD_MIN*pairs*K, PROD_MAX*pairs*K] must fit int32
    return min(INT32_MAX // (pairs * PROD_MAX), (-INT32_MIN) // (pairs * -PROD_MIN))


@lru_cache(maxsize=4)
def int8_plan(bits: int) -> Int8Plan:
    """The int8-limb plan for Z_2^64 (``bits=64``) or Z_2^32 (``bits=32``)."""
    if bits not in (32, 64):
        raise ValueError(f"int8 limbs support Z_2^64 and Z_2^32 only, got bits={bits!r}")
    L = bits // 8
    diags = []
    for d in range(L):
        needed = bits - 8 * d
        diags.append(Int8Diagonal(d=d, pairs=d + 1, weight_bits=8 * d, needed_bits=needed,
                                  k_exact=_k_exact(d + 1), wrap_safe=needed <= 32))
    return Int8Plan(bits=bits, nlimbs=L, diagonals=tuple(diags))


def chunk_bounds(K: int, limit: int | None, align: int = 1) -> list[tuple[int, int]]:
    """Split ``range(K)`` into near-equal chunks of at most ``limit`` (``None``: one chunk).

    Chunk starts are multiples of ``align`` when that keeps every chunk within ``limit``.
    """
    if K <= 0:
        return []
    if limit is None or K <= limit:
        return [(0, K)]
    n = math.ceil(K / limit)
    kc = math.ceil(K / n)
    if align > 1:
        kc_al = -(-kc // align) * align
        if kc_al <= limit:
            kc = kc_al
    return [(s, min(K, s + kc)) for s in range(0, K, kc)]


def choose_mode(M: int, N: int, K: int, bits: int = 64, intensity: float = 300.0) -> str:
    """Pick the GEMM layout with a roofline model.

    ``intensity`` is the card's int8 multiply-adds per byte of memory traffic at which
    compute and bandwidth balance (about 300 on an H100: ~990 T int8 MAC/s over ~3.3 TB/s).
    Costs in byte-equivalents, per batch element: ``"diagonal"`` does ``P*M*N*K`` MACs
    (``P`` = 36 or 10) and reads about ``P*K*(M+N)`` limb bytes; ``"toeplitz_b"`` does
    ``L^2*M*N*K`` MACs and reads ``L*K*M + L^2*K*N``; ``"toeplitz_a"`` mirrors it.
    """
    plan = int8_plan(bits)
    L, P = plan.nlimbs, plan.products
    outb = 4 * P * M * N  # int32 diagonal outputs (written and read back), all modes alike

    def cost(macs: float, nbytes: float) -> float:
        return max(macs / intensity, nbytes + outb)

    costs = {
        "diagonal": cost(P * M * N * K, P * K * (M + N)),
        "toeplitz_b": cost(L * L * M * N * K, L * K * M + L * L * K * N),
        "toeplitz_a": cost(L * L * M * N * K, L * K * N + L * L * K * M),
    }
    return min(MODES, key=lambda m: (costs[m], MODES.index(m)))


# --------------------------------------------------------------------------------------
# limbs
# --------------------------------------------------------------------------------------
def _bias(bits: int) -> int:
    return int("80" * (bits // 8), 16)


def split_limbs(a: np.ndarray, bits: int) -> np.ndarray:
    """Signed balanced byte limbs: int8 array of shape ``(L,) + a.shape``.

    ``a`` is a uint64 (``bits=64``) or uint32 (``bits=32``) array of ring elements; the
    limbs satisfy ``sum_i limb_i 2^(8i) == a (mod 2^bits)`` and lie in ``[-128, 127]``.
    """
    dt = np.uint64 if bits == 64 else np.uint32
    a = np.asarray(a)
    if a.dtype != dt:
        raise TypeError(f"Z_2^{bits} elements must be {np.dtype(dt).name}, got {a.dtype}")
    x = a + dt(_bias(bits))  # wraps mod 2^bits
    L = bits // 8
    out = np.empty((L,) + a.shape, np.int8)
    for i in range(L):
        byte = ((x >> dt(8 * i)) & dt(0xFF)).astype(np.uint8) ^ np.uint8(0x80)
        out[i] = byte.view(np.int8)
    return out


def combine_limbs(limbs: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`split_limbs` (mod 2^bits)."""
    acc = np.zeros(limbs.shape[1:], np.uint64)
    for i in range(limbs.shape[0]):
        acc += limbs[i].astype(np.int64).astype(np.uint64) << np.uint64(8 * i)
    return acc.astype(np.uint64 if bits == 64 else np.uint32)


def wrap_int32(v: np.ndarray) -> np.ndarray:
    """Reduce int64 values to int32 with two's-complement wrap-around (as an int32 adder)."""
    v = np.asarray(v, np.int64)
    return (((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


def _gemm_i8_i32(A8: np.ndarray, B8: np.ndarray, exact_rows, strict: bool, what: str) -> np.ndarray:
    """Emulate an int8 x int8 -> int32 GEMM with a wrapping int32 accumulator.

    The exact sum is formed with float64 BLAS (every partial sum of at most 2^39 terms of
    magnitude <= 2^14 is an integer below 2^53, hence exact), then reduced modulo 2^32,
    which equals any order of wrapping int32 additions.  ``exact_rows(out) -> bool mask``
    selects the outputs that the algorithm requires exact; in ``strict`` mode an overflow
    there raises :class:`ExactnessViolation`.
    """
    k = A8.shape[-1]
    if k >= (1 << 39):  # pragma: no cover - far beyond any real shape
        raise ValueError("inner dimension too large for the float64 emulation")
    exact = np.matmul(A8.astype(np.float64), B8.astype(np.float64)).astype(np.int64)
    if strict:
        mask = exact_rows(exact)
        bad = mask & ((exact > INT32_MAX) | (exact < INT32_MIN))
        if bad.any():
            raise ExactnessViolation(f"int32 accumulator overflow in {what}: an exact diagonal "
                                     f"exceeded the int32 range (max |S| = {int(np.abs(exact[mask]).max())})")
    return wrap_int32(exact)


def _recombine(diag_vals, acc: np.ndarray) -> None:
    """acc += sum_d (int64) S_d << 8d (mod 2^64), S_d given as int32 arrays."""
    for d, s in diag_vals:
        acc += s.astype(np.int64).astype(np.uint64) << np.uint64(8 * d)


def _chunk_product(Ac: np.ndarray, Bc: np.ndarray, plan: Int8Plan, mode: str, wrap_ok: bool,
                   strict: bool, acc: np.ndarray) -> None:
    """Add one K chunk's product to ``acc`` (uint64, shape (..., M, N))."""
    L, bits = plan.nlimbs, plan.bits
    la = split_limbs(Ac, bits)  # (L, ..., M, k)
    lb = split_limbs(Bc, bits)  # (L, ..., k, N)
    k = Ac.shape[-1]
    M, N = Ac.shape[-2], Bc.shape[-1]
    must_exact = [not (wrap_ok and dg.wrap_safe) for dg in plan.diagonals]
    if mode == "diagonal":
        # A_cat = [a_0 | ... | a_{L-1}] along K; B_rev = [b_{L-1}; ...; b_0] along K.
        A_cat = np.concatenate(list(la), axis=-1)
        B_rev = np.concatenate(list(lb[::-1]), axis=-2)
        vals = []
        for d in range(L):
            A_d = A_cat[..., :, : (d + 1) * k]
            B_d = B_rev[..., (L - 1 - d) * k:, :]
            flag = must_exact[d]
            S = _gemm_i8_i32(A_d, B_d, lambda e, f=flag: np.full(e.shape, f), strict, f"diagonal {d}")
            vals.append((d, S))
        _recombine(vals, acc)
    elif mode == "toeplitz_b":
        # one GEMM: [a_0 | ... | a_{L-1}] @ T, T[i-block, d-block] = b_{d-i} (i <= d) else 0
        A_cat = np.concatenate(list(la), axis=-1)
        T = np.zeros(lb.shape[1:-2] + (L * k, L * N), np.int8)
        for d in range(L):
            for i in range(d + 1):
                T[..., i * k:(i + 1) * k, d * N:(d + 1) * N] = lb[d - i]
        mask_cols = np.repeat(np.array(must_exact), N)

        def exact_rows(e):
            return np.broadcast_to(mask_cols, e.shape)

        S = _gemm_i8_i32(A_cat, T, exact_rows, strict, "toeplitz_b GEMM")
        _recombine([(d, S[..., :, d * N:(d + 1) * N]) for d in range(L)], acc)
    elif mode == "toeplitz_a":
        # one GEMM: T @ [b_0; ...; b_{L-1}], T[d-block, j-block] = a_{d-j} (j <= d) else 0
        B_cat = np.concatenate(list(lb), axis=-2)
        T = np.zeros(la.shape[1:-2] + (L * M, L * k), np.int8)
        for d in range(L):
            for j in range(d + 1):
                T[..., d * M:(d + 1) * M, j * k:(j + 1) * k] = la[d - j]
        mask_rows = np.repeat(np.array(must_exact), M)[:, None]

        def exact_rows(e):
            return np.broadcast_to(mask_rows, e.shape)

        S = _gemm_i8_i32(T, B_cat, exact_rows, strict, "toeplitz_a GEMM")
        _recombine([(d, S[..., d * M:(d + 1) * M, :]) for d in range(L)], acc)
    else:
        raise ValueError(f"unknown int8 GEMM mode {mode!r}: expected one of {', '.join(MODES)}")


def int8_matmul_emulated(a: np.ndarray, b: np.ndarray, bits: int | None = None, *, mode: str = "diagonal",
                         wrap_ok: bool = True, k_chunk: int | None = None, strict: bool = True) -> np.ndarray:
    """``a @ b`` over Z_2^bits by the int8-limb algorithm, emulated on the CPU.

    ``a`` (..., M, K) and ``b`` (..., K, N) are uint64 (Z_2^64) or uint32 (Z_2^32) arrays
    with numpy batch broadcasting; the result is exact modulo 2^bits for every K, with the
    same dtype.  ``mode`` is one of :data:`MODES`; ``wrap_ok`` tells whether int32
    accumulators may wrap (then only non-wrap-safe diagonals bound the K chunk, see
    :meth:`Int8Plan.k_chunk`); ``k_chunk`` overrides the chunk length (tests use it to
    force chunking on small shapes, or ``0`` to disable chunking and let ``strict`` show
    that an exactness limit is real).  ``strict`` raises :class:`ExactnessViolation` if an
    accumulator that must be exact overflows int32.  Slow (float64 BLAS on 8-bit limbs):
    a test vehicle, not a CPU fast path.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("matmul operands must be at least 2-D")
    if a.dtype != b.dtype or a.dtype not in (np.uint64, np.uint32):
        raise TypeError(f"operands must both be uint64 or both uint32, got {a.dtype} and {b.dtype}")
    if bits is None:
        bits = 64 if a.dtype == np.uint64 else 32
    if (bits == 64) != (a.dtype == np.uint64):
        raise TypeError(f"bits={bits} does not match dtype {a.dtype}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    if mode not in MODES:
        raise ValueError(f"unknown int8 GEMM mode {mode!r}: expected one of {', '.join(MODES)}")
    plan = int8_plan(bits)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K = a.shape[-2:]
    N = b.shape[-1]
    acc = np.zeros(batch + (M, N), np.uint64)
    limit = plan.k_chunk(wrap_ok) if k_chunk is None else (k_chunk or None)
    for k0, k1 in chunk_bounds(K, limit):
        _chunk_product(a[..., :, k0:k1], b[..., k0:k1, :], plan, mode, wrap_ok, strict, acc)
    return acc.astype(a.dtype)
