"""Z_2^64 / Z_2^32 ring matmul on the integer tensor cores: int8 limbs, cuBLAS int8 GEMMs.

The algorithm, its exactness limits and a CPU emulation live in
:mod:`hecrypt.backend.int8_limbs`; this module runs it on a GPU:

1. a fused split kernel (``kernels/int8_limbs.cu``) turns each uint64/uint32 operand into
   signed balanced int8 limbs, laid out K-contiguous per row with the limb blocks in the
   order the diagonal GEMMs need (A ascending, B reversed, or block-Toeplitz);
2. int8 x int8 -> int32 GEMMs through cuBLAS (``cublasGemmEx`` /
   ``cublasGemmStridedBatchedEx`` with ``CUBLAS_COMPUTE_32I``, "TN" layout, i.e. both
   operands K-contiguous, the layout the integer tensor cores read natively); one GEMM per
   diagonal (8 for Z_2^64, 4 for Z_2^32: 36 / 10 int8 products per ring multiply-add), or
   one block-Toeplitz GEMM for thin operands (:func:`~hecrypt.backend.int8_limbs.choose_mode`);
3. a fused recombine kernel: ``out (+)= sum_d (int64) S_d << 8d`` mod 2^bits.

Exactness: every result is exact modulo 2^bits for every shape.  K is cut into chunks of at
most ``int8_plan(bits).k_chunk(wrap_ok)`` (32767 for Z_2^64 and no limit for Z_2^32 once the
card's int32 accumulation has been seen to wrap; 16383 / 32767 otherwise), and chunk
results are summed in the ring.  Whether the accumulators wrap (two's complement) or
saturate is probed once per device (:func:`wrap_probe`) before it is relied on; it only
matters for K above 16383 (Z_2^64) or 32767 (Z_2^32).

Public entry points (used by :class:`hecrypt.backend.cuda.CUDABackend`):

* :func:`int8_matmul` ``(a, b, bits) -> cupy array``
* :func:`int8_selfcheck` ``(backend) -> bool``: small random cases (all modes, chunked and
  batched) against the CPU reference; warns and returns False on any mismatch or error.
* :func:`int8_plan` ``(bits)``: the limb plan (diagonals, exact K limits) for docs / info.

Also here, because only this layer may touch CuPy: the float64 baselines measured by the
tensor-core benchmark (:func:`f64_blocks16_matmul`, CrypTen's 16-bit-block method with its
10 products, and :func:`f64_limb6_matmul`, six products on balanced 22-bit limbs) and the
plain int8 GEMM (:func:`int8_gemm`) that sets the card's ideal.

Nothing here imports CuPy or touches a GPU at import time.
"""

from __future__ import annotations

import functools
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KernelError
from .int8_limbs import (
    INT32_MAX,
    LIMB_MIN,
    MODES,
    Int8Plan,
    choose_mode,
    chunk_bounds,
    int8_plan,
)

__all__ = [
    "int8_matmul",
    "int8_selfcheck",
    "int8_plan",
    "wrap_probe",
    "int8_gemm",
    "f64_blocks16_matmul",
    "f64_limb6_matmul",
    "KERNEL_FILE",
    "KERNEL_ENTRIES",
]

KERNEL_FILE = "int8_limbs.cu"
KERNEL_ENTRIES = (
    "i8l_split_u64_kc", "i8l_split_u64_rc", "i8l_split_u32_kc", "i8l_split_u32_rc",
    "i8l_recombine_u64", "i8l_recombine_u32",
    "i8l_f64_split_u64_kc", "i8l_f64_split_u64_rc", "i8l_f64_split_u32_kc", "i8l_f64_split_u32_rc",
    "i8l_f64_recombine_u64", "i8l_f64_recombine_u32",
)

# cuBLAS / CUDA enums (cublas_api.h, library_types.h)
_OP_N, _OP_T = 0, 1
_R_64F, _R_8I, _R_32I = 1, 3, 10
_COMPUTE_64F, _COMPUTE_32I = 70, 72
_GEMM_DEFAULT = -1
_POINTER_MODE_HOST = 0

_KP_ALIGN = 16   # limb block width (bytes) and int8 leading dimensions: multiples of 16
_NP_ALIGN = 4    # int32 output leading dimension: multiple of 4 elements (16 bytes)
_MAX_ROWS = 65535 * 32  # split grid.y limit (32 rows per tile)
_MAX_BATCH = 65535      # split grid.z limit

_lock = threading.Lock()
_wrap_state: dict[int, bool] = {}


def _cupy():
    import cupy

    return cupy


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------
def _kernel_source_path() -> Path:
    """Locate kernels/int8_limbs.cu: the backend's kernel directory, else the source tree."""
    try:  # the GPU helper's locator (installed wheel: hecrypt/_kernels)
        from . import kernels as _k  # noqa: PLC0415

        d = Path(_k.kernel_source_dir())
        if (d / KERNEL_FILE).is_file():
            return d / KERNEL_FILE
    except Exception:  # pragma: no cover - depends on the install
        pass
    here = Path(__file__).resolve()
    for cand in (here.parents[1] / "_kernels" / KERNEL_FILE, here.parents[2] / "kernels" / KERNEL_FILE):
        if cand.is_file():
            return cand
    raise KernelError(f"cannot find the CUDA source {KERNEL_FILE} (looked in hecrypt/_kernels and kernels/)")


def kernel_source() -> str:
    """The CUDA C source of the split / recombine kernels."""
    return _kernel_source_path().read_text()


@functools.lru_cache(maxsize=None)
def _own_module(device_id: int):
    """Fallback loader (NVRTC) when the backend's shared kernel loader is unavailable."""
    cupy = _cupy()
    try:
        return cupy.RawModule(code=kernel_source(), options=("-std=c++17",))
    except Exception as exc:  # pragma: no cover - needs a GPU
        raise KernelError(f"compiling {KERNEL_FILE} with NVRTC failed: {exc}") from exc


def _kernel(name: str):
    """A kernel of int8_limbs.cu on the current device: through the backend's loader
    (prebuilt fatbin first, NVRTC otherwise, cached per device), else compiled here."""
    try:
        from . import kernels as _k  # noqa: PLC0415
    except Exception:  # pragma: no cover - loader missing
        _k = None
    if _k is not None and hasattr(_k, "get_function"):
        return _k.get_function(Path(KERNEL_FILE).stem, name)
    cupy = _cupy()  # pragma: no cover
    return _own_module(cupy.cuda.Device().id).get_function(name)  # pragma: no cover


# --------------------------------------------------------------------------------------
# cuBLAS
# --------------------------------------------------------------------------------------
def _cublas():
    from cupy_backends.cuda.libs import cublas

    return cublas


def _handle():
    cupy = _cupy()
    cublas = _cublas()
    h = cupy.cuda.device.get_cublas_handle()
    cublas.setStream(h, cupy.cuda.get_current_stream().ptr)
    cublas.setPointerMode(h, _POINTER_MODE_HOST)
    return h


def _gemm_tn(m: int, n: int, k: int, A: int, lda: int, B: int, ldb: int, C: int, ldc: int, *,
             dtype: str, batch: int = 1, sA: int = 0, sB: int = 0, sC: int = 0) -> None:
    """Column-major ``C (m x n) = A^T (m x k) @ B (k x n)`` with both A and B K-contiguous.

    In row-major terms: ``C_rm (n x m, pitch ldc) = B_rm (n x k, pitch ldb) @ A_rm (m x k,
    pitch lda)^T``.  ``dtype`` "i8" (int8 in, int32 out, int32 compute) or "f64".
    Pointers and strides are in elements of the respective types.
    """
    cublas = _cublas()
    h = _handle()
    if dtype == "i8":
        alpha, beta = np.array(1, np.int32), np.array(0, np.int32)
        at, ct, comp = _R_8I, _R_32I, _COMPUTE_32I
    else:
        alpha, beta = np.array(1.0, np.float64), np.array(0.0, np.float64)
        at, ct, comp = _R_64F, _R_64F, _COMPUTE_64F
    if batch == 1:
        cublas.gemmEx(h, _OP_T, _OP_N, m, n, k, alpha.ctypes.data, A, at, lda, B, at, ldb,
                      beta.ctypes.data, C, ct, ldc, comp, _GEMM_DEFAULT)
    else:
        cublas.gemmStridedBatchedEx(h, _OP_T, _OP_N, m, n, k, alpha.ctypes.data, A, at, lda, sA, B, at, ldb, sB,
                                    beta.ctypes.data, C, ct, ldc, sC, batch, comp, _GEMM_DEFAULT)


def int8_gemm(a8, bt8):
    """Plain int8 GEMM on the tensor cores: ``a8 (M, K) @ bt8 (N, K)^T -> int32 (M, N)``.

    Both operands are C-contiguous int8 with K % 16 == 0 (the layout cuBLAS's IMMA kernels
    read natively).  The int32 result is the accumulator as the hardware leaves it (see
    :func:`wrap_probe` for what happens past 2^31).  Used for the card's int8 rate.
    """
    cupy = _cupy()
    if a8.dtype != cupy.int8 or bt8.dtype != cupy.int8 or a8.ndim != 2 or bt8.ndim != 2:
        raise TypeError("int8_gemm takes two 2-D int8 arrays")
    M, K = a8.shape
    N = bt8.shape[0]
    if bt8.shape[1] != K or K % _KP_ALIGN or N % _NP_ALIGN:
        raise ValueError(f"int8_gemm needs K % {_KP_ALIGN} == 0 and N % {_NP_ALIGN} == 0, got {a8.shape}, {bt8.shape}")
    a8 = cupy.ascontiguousarray(a8)
    bt8 = cupy.ascontiguousarray(bt8)
    c = cupy.empty((M, N), cupy.int32)
    _gemm_tn(N, M, K, _addr(bt8), K, _addr(a8), K, _addr(c), N, dtype="i8")
    return c


def wrap_probe() -> bool:
    """True if this device's int8 GEMMs wrap int32 accumulators modulo 2^32 (no saturation).

    Runs a 16 x 16 x (2^17 + 64) GEMM of -128s, whose exact entries are 2^31 + 2^20, and
    compares with the two's-complement value.  Cached per device.
    """
    cupy = _cupy()
    dev = cupy.cuda.Device().id
    with _lock:
        if dev in _wrap_state:
            return _wrap_state[dev]
    K = (1 << 17) + 64
    a8 = cupy.full((16, K), LIMB_MIN, cupy.int8)
    c = int8_gemm(a8, a8)
    exact = K * LIMB_MIN * LIMB_MIN
    wrapped = ((exact + (1 << 31)) % (1 << 32)) - (1 << 31)
    got = cupy.asnumpy(c)
    ok = bool((got == wrapped).all())
    if not ok and bool((got == INT32_MAX).all()):
        warnings.warn("int8 tensor-core GEMMs saturate int32 accumulators on this device; the int8 ring "
                      "matmul keeps every diagonal exact (smaller K chunks)", RuntimeWarning, stacklevel=2)
    with _lock:
        _wrap_state[dev] = ok
    return ok


# --------------------------------------------------------------------------------------
# the tensor-core ring matmul
# --------------------------------------------------------------------------------------
def _addr(x) -> int:
    """Device address of an array's first element."""
    return x.data.ptr


def _strided_view(x):
    """(B, R, C) array with non-negative, element-aligned strides (copy if needed)."""
    cupy = _cupy()
    isz = x.dtype.itemsize
    if any(s < 0 or s % isz for s in x.strides):
        x = cupy.ascontiguousarray(x)
    return x


def _split(x, rows_axis_is_k: bool, R: int, Kc: int, Rp: int, Kp: int, out, rows_out: int, mode: int,
           k0: int) -> None:
    """Launch the split kernel for a (B, ., .) operand into ``out`` (B, rows_out, L*Kp) int8.

    For the A side ``x`` is (B, M, K) (rows = M, ``rows_axis_is_k=False``); for the B side
    ``x`` is (B, K, N) (rows = N, the K axis comes first: ``rows_axis_is_k=True``).
    """
    isz = x.dtype.itemsize
    sb, s0, s1 = (s // isz for s in x.strides)
    if rows_axis_is_k:
        s_r, s_k = s1, s0
    else:
        s_r, s_k = s0, s1
    kc = s_k == 1
    name = f"i8l_split_{'u64' if isz == 8 else 'u32'}_{'kc' if kc else 'rc'}"
    B = x.shape[0]
    src = _addr(x) + k0 * s_k * isz
    ld = out.shape[-1]
    grid = (-(-Kp // 64), -(-Rp // 32), B)
    _kernel(name)(grid, (256,), (
        _ptr(src), np.int64(sb), np.int64(s_r), np.int64(s_k), np.int32(R), np.int32(Kc), np.int32(Rp),
        np.int32(Kp), out, np.int64(ld), np.int64(rows_out * ld), np.int32(mode)))


def _ptr(p: int):
    """A raw device address as a kernel argument (CuPy passes numpy uint64 as 8 bytes)."""
    return np.uint64(p)


def _recombine(C, ds: int, bs: int, rs: int, out, M: int, N: int, B: int, accumulate: bool, f64: bool = False,
               ndiag: int = 0, width: int = 0) -> None:
    isz = out.dtype.itemsize
    rows = B * M
    gx = min(-(-N // 256), 64)
    gy = min(rows, 65535)
    if f64:
        name = f"i8l_f64_recombine_{'u64' if isz == 8 else 'u32'}"
        args = (C, np.int64(ds), np.int64(bs), np.int64(rs), out, np.int64(M), np.int64(N), np.int64(B),
                np.int32(ndiag), np.int32(width), np.int32(int(accumulate)))
    else:
        name = f"i8l_recombine_{'u64' if isz == 8 else 'u32'}"
        args = (C, np.int64(ds), np.int64(bs), np.int64(rs), out, np.int64(M), np.int64(N), np.int64(B),
                np.int32(int(accumulate)))
    _kernel(name)((gx, gy), (256,), args)


def _check_operands(a, b, bits):
    cupy = _cupy()
    if not (isinstance(a, cupy.ndarray) and isinstance(b, cupy.ndarray)):
        raise TypeError("int8_matmul takes CuPy arrays")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("matmul operands must be at least 2-D")
    if a.dtype != b.dtype or a.dtype not in (np.uint64, np.uint32):
        raise TypeError(f"operands must both be uint64 or both uint32, got {a.dtype} and {b.dtype}")
    if bits is None:
        bits = 64 if a.dtype == np.uint64 else 32
    if bits not in (32, 64) or (bits == 64) != (a.dtype == np.uint64):
        raise TypeError(f"bits={bits!r} does not match dtype {a.dtype} (Z_2^64: uint64, Z_2^32: uint32)")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    return bits


def int8_matmul(a, b, bits: int | None = None, *, mode: str = "auto", k_chunk: int | None = None):
    """Exact ``a @ b`` over Z_2^bits on the integer tensor cores.

    ``a`` (..., M, K) and ``b`` (..., K, N): CuPy uint64 (``bits=64``) or uint32
    (``bits=32``) arrays, numpy batch broadcasting; any strides.  Returns a new C-contiguous
    CuPy array of the same dtype, exact modulo 2^bits for every K (chunked at the limits of
    :func:`int8_plan`; ``k_chunk`` forces a smaller chunk, for tests).  ``mode``: "auto"
    (roofline choice, :func:`~hecrypt.backend.int8_limbs.choose_mode`) or one of
    :data:`~hecrypt.backend.int8_limbs.MODES`.
    """
    cupy = _cupy()
    bits = _check_operands(a, b, bits)
    if mode != "auto" and mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected 'auto' or one of {', '.join(MODES)}")
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    M, K = a.shape[-2:]
    N = b.shape[-1]
    if b.ndim == 2 and a.ndim > 2 and batch:
        # fold the batch into the rows: one (B*M, K) @ (K, N) product
        c = int8_matmul(a.reshape(-1, K), b, bits, mode=mode, k_chunk=k_chunk)
        return c.reshape(batch + (M, N))
    nb = int(np.prod(batch)) if batch else 1
    out = cupy.zeros((nb, M, N), a.dtype)
    if nb == 0 or M == 0 or N == 0 or K == 0:
        return out.reshape(batch + (M, N))
    A = _strided_view(cupy.broadcast_to(a, batch + (M, K)).reshape(nb, M, K))
    B = _strided_view(cupy.broadcast_to(b, batch + (K, N)).reshape(nb, K, N))
    # grid limits of the split kernel: cut very tall operands / huge batches
    if M > _MAX_ROWS or N > _MAX_ROWS or nb > _MAX_BATCH:
        for b0 in range(0, nb, _MAX_BATCH):
            for m0 in range(0, M, _MAX_ROWS):
                for n0 in range(0, N, _MAX_ROWS):
                    out[b0:b0 + _MAX_BATCH, m0:m0 + _MAX_ROWS, n0:n0 + _MAX_ROWS] = int8_matmul(
                        A[b0:b0 + _MAX_BATCH, m0:m0 + _MAX_ROWS], B[b0:b0 + _MAX_BATCH, :, n0:n0 + _MAX_ROWS],
                        bits, mode=mode, k_chunk=k_chunk)
        return out.reshape(batch + (M, N))
    plan = int8_plan(bits)
    if k_chunk is not None:
        limit = k_chunk
    else:
        limit = plan.k_chunk(False)
        if limit is not None and K > limit:
            limit = plan.k_chunk(wrap_probe())
    chunks = chunk_bounds(K, limit, align=_KP_ALIGN)
    kmax = max(k1 - k0 for k0, k1 in chunks)
    if mode == "auto":
        mode = choose_mode(M, N, kmax, bits)
    _run_chunks(A, B, out, plan, mode, chunks, kmax)
    return out.reshape(batch + (M, N))


def _run_chunks(A, B, out, plan: Int8Plan, mode: str, chunks, kmax: int) -> None:
    cupy = _cupy()
    L = plan.nlimbs
    nb, M, _ = A.shape
    N = B.shape[2]
    Np = _round_up(N, _NP_ALIGN)
    Kp = _round_up(kmax, _KP_ALIGN)
    ld = L * Kp
    if mode == "diagonal":
        ra, rb = M, Np
        amode, bmode = 0, 1
        C = cupy.empty((L, nb, M, Np), cupy.int32)
        ds, bs, rs = nb * M * Np, M * Np, Np
    elif mode == "toeplitz_b":
        ra, rb = M, L * Np
        amode, bmode = 0, 2
        C = cupy.empty((nb, M, L * Np), cupy.int32)
        ds, bs, rs = Np, M * L * Np, L * Np
    else:  # toeplitz_a
        ra, rb = L * M, Np
        amode, bmode = 2, 0
        C = cupy.empty((nb, L * M, Np), cupy.int32)
        ds, bs, rs = M * Np, L * M * Np, Np
    Al = cupy.empty((nb, ra, ld), cupy.int8)
    Bl = cupy.empty((nb, rb, ld), cupy.int8)
    for ci, (k0, k1) in enumerate(chunks):
        kc = k1 - k0
        _split(A, False, M, kc, M, Kp, Al, ra, amode, k0)
        _split(B, True, N, kc, Np, Kp, Bl, rb, bmode, k0)
        a0, b0, c0 = _addr(Al), _addr(Bl), _addr(C)
        if mode == "diagonal":
            for d in range(L):
                # C_d^T (Np x M) = Bl[:, (L-1-d)Kp:]^T-rows @ Al[:, :(d+1)Kp]
                _gemm_tn(Np, M, (d + 1) * Kp, b0 + (L - 1 - d) * Kp, ld, a0, ld, c0 + 4 * d * ds, Np,
                         dtype="i8", batch=nb, sA=rb * ld, sB=ra * ld, sC=M * Np)
        elif mode == "toeplitz_b":
            _gemm_tn(L * Np, M, ld, b0, ld, a0, ld, c0, L * Np, dtype="i8", batch=nb, sA=rb * ld, sB=ra * ld,
                     sC=M * L * Np)
        else:
            _gemm_tn(Np, L * M, ld, b0, ld, a0, ld, c0, Np, dtype="i8", batch=nb, sA=rb * ld, sB=ra * ld,
                     sC=L * M * Np)
        _recombine(C, ds, bs, rs, out, M, N, nb, accumulate=ci > 0)


# --------------------------------------------------------------------------------------
# float64 baselines (benchmark only)
# --------------------------------------------------------------------------------------
def _f64_plan(bits: int, kind: str) -> tuple[int, int, int, int]:
    """(nlimbs, width, balanced, kmax) for the float64 baselines.

    ``blocks16``: unsigned 16-bit blocks (CrypTen): 4 blocks for Z_2^64 (10 products), 2
    for Z_2^32 (3 products); products < 2^32, exact while (d+1)*K*(2^16-1)^2 < 2^53.
    ``limb6``: signed balanced limbs, 3 x 22 bits for Z_2^64 (6 products), 2 x 16 bits for
    Z_2^32 (3 products); bounds as in the CPU backend's plain limb plan.
    """
    if kind == "blocks16":
        L, w = bits // 16, 16
        worst = L * ((1 << 16) - 1) ** 2
        return L, w, 0, (1 << 53) // worst - 1
    L, w = (3, 22) if bits == 64 else (2, 16)
    half = 1 << (w - 1)
    low = sum(half << (w * i) for i in range(L - 1))
    top = ((1 << (bits - 1)) + low) >> (w * (L - 1))
    bounds = [half] * (L - 1) + [top + 1]
    worst = max(sum(bounds[i] * bounds[d - i] for i in range(L) if 0 <= d - i < L) for d in range(L))
    return L, w, 1, (1 << 53) // worst


def _f64_matmul(a, b, bits, kind):
    cupy = _cupy()
    bits = _check_operands(a, b, bits)
    L, w, bal, kmax = _f64_plan(bits, kind)
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    M, K = a.shape[-2:]
    N = b.shape[-1]
    nb = int(np.prod(batch)) if batch else 1
    out = cupy.zeros((nb, M, N), a.dtype)
    if nb == 0 or M == 0 or N == 0 or K == 0:
        return out.reshape(batch + (M, N))
    A = _strided_view(cupy.broadcast_to(a, batch + (M, K)).reshape(nb, M, K))
    B = _strided_view(cupy.broadcast_to(b, batch + (K, N)).reshape(nb, K, N))
    chunks = chunk_bounds(K, kmax)
    Kp = max(k1 - k0 for k0, k1 in chunks)
    ld = L * Kp
    Al = cupy.empty((nb, M, ld), cupy.float64)
    Bl = cupy.empty((nb, N, ld), cupy.float64)
    C = cupy.empty((L, nb, M, N), cupy.float64)
    isz = a.dtype.itemsize
    sfx = "u64" if isz == 8 else "u32"
    for ci, (k0, k1) in enumerate(chunks):
        kc = k1 - k0
        for X, rows_k, R, dst, mode in ((A, False, M, Al, 0), (B, True, N, Bl, 1)):
            sb, s0, s1 = (s // isz for s in X.strides)
            s_r, s_k = (s1, s0) if rows_k else (s0, s1)
            name = f"i8l_f64_split_{sfx}_{'kc' if s_k == 1 else 'rc'}"
            grid = (-(-Kp // 64), -(-R // 32), nb)
            _kernel(name)(grid, (256,), (
                _ptr(_addr(X) + k0 * s_k * isz), np.int64(sb), np.int64(s_r), np.int64(s_k), np.int32(R),
                np.int32(kc), np.int32(R), np.int32(Kp), dst, np.int64(ld), np.int64(R * ld), np.int32(mode),
                np.int32(L), np.int32(w), np.int32(bal)))
        for d in range(L):
            _gemm_tn(N, M, (d + 1) * Kp, _addr(Bl) + 8 * (L - 1 - d) * Kp, ld, _addr(Al), ld,
                     _addr(C) + 8 * d * nb * M * N, N, dtype="f64", batch=nb, sA=N * ld, sB=M * ld, sC=M * N)
        _recombine(C, nb * M * N, M * N, N, out, M, N, nb, accumulate=ci > 0, f64=True, ndiag=L, width=w)
    return out.reshape(batch + (M, N))


def f64_blocks16_matmul(a, b, bits: int | None = None):
    """Baseline: CrypTen's method, unsigned 16-bit blocks on float64 GEMMs (10 products).

    Exact modulo 2^bits; K chunked at the float64 limit (about 2^19 for Z_2^64).
    """
    return _f64_matmul(a, b, bits, "blocks16")


def f64_limb6_matmul(a, b, bits: int | None = None):
    """Baseline: six products on signed balanced 22-bit limbs on float64 GEMMs.

    Exact modulo 2^bits; K chunked at 1024-ish (the float64 limit of that plan).  Kept here
    as a stand-in for the CUDA backend's own float64 limb path when that is not exposed.
    """
    return _f64_matmul(a, b, bits, "limb6")


# --------------------------------------------------------------------------------------
# self-check
# --------------------------------------------------------------------------------------
def int8_selfcheck(backend: Any = None, *, seed: int | None = None) -> bool:
    """Check the tensor-core path on small random cases; warn and return False on mismatch.

    Cases, for both rings, on fresh random operands over the whole ring: every GEMM layout
    on odd shapes with a broadcast batch, a forced K chunking, and K = 16500 with some
    worst-case rows (past the all-exact limit of Z_2^64, so that the int32 wrap-around that
    :func:`wrap_probe` verified, or the exact chunking that replaces it, is exercised).
    References: the CPU backend's exact matmul and, when ``backend`` (the CUDA backend)
    exposes ``matmul_path(..., path="simt")``, the SIMT kernel; all must agree bit for bit.
    """
    try:
        cupy = _cupy()
        from .cpu import CPUBackend

        to_np = getattr(backend, "to_numpy", None) or cupy.asnumpy
        simt = getattr(backend, "matmul_path", None)
        rng = np.random.default_rng(seed)

        def fail(what: str) -> bool:
            warnings.warn(f"int8 tensor-core matmul self-check failed ({what}); falling back to the "
                          "SIMT / float64 paths", RuntimeWarning, stacklevel=3)
            return False

        for bits, dt in ((64, np.uint64), (32, np.uint32)):
            top = (1 << bits) - 1
            a = rng.integers(0, top, (2, 1, 19, 45), dtype=dt, endpoint=True)
            b = rng.integers(0, top, (3, 45, 13), dtype=dt, endpoint=True)
            ref = CPUBackend.matmul(a, b, 0, bits)
            ga, gb = cupy.asarray(a), cupy.asarray(b)
            for mode in MODES:
                got = to_np(int8_matmul(ga, gb, bits, mode=mode))
                if got.dtype != ref.dtype or not np.array_equal(got, ref):
                    return fail(f"Z_2^{bits}, layout {mode}")
            if not np.array_equal(to_np(int8_matmul(ga, gb, bits, k_chunk=16)), ref):
                return fail(f"Z_2^{bits}, chunked K")
            if simt is not None:
                try:
                    s_out = to_np(simt(ga, gb, 0, bits, path="simt"))
                except ValueError:  # no SIMT path on this backend
                    s_out = ref
                if not np.array_equal(s_out, ref):
                    return fail(f"Z_2^{bits}: the SIMT kernel disagrees with the CPU reference")
            K = 16500
            a = rng.integers(0, top, (3, K), dtype=dt, endpoint=True)
            b = rng.integers(0, top, (K, 4), dtype=dt, endpoint=True)
            a[0] = top + 1 - int("80" * (bits // 8), 16)  # every limb -128
            b[:, 0] = a[0, 0]
            ref = CPUBackend.matmul(a, b, 0, bits)
            if not np.array_equal(to_np(int8_matmul(cupy.asarray(a), cupy.asarray(b), bits)), ref):
                return fail(f"Z_2^{bits}, K = {K}")
        return True
    except Exception as exc:  # cuBLAS refusal, compile error, ...
        warnings.warn(f"int8 tensor-core matmul unavailable ({type(exc).__name__}: {exc}); falling back",
                      RuntimeWarning, stacklevel=2)
        return False
