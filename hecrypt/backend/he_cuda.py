"""CUDA kernels for RNS polynomials (``kernels/ntt.cu``), same API and results as :mod:`.he_cpu`.

Arrays are CuPy uint64 arrays shaped ``(..., L, N)`` (limb axis -2, values in ``[0, q_i)``).
Every function launches kernels that cover every limb and batch entry at once and returns a
new C-contiguous CuPy array (or writes ``out=``).  Results are bit-identical with the CPU
kernels: both return the unique residue in ``[0, q)`` (see the numeric contract at the top of
``kernels/ntt.cu`` and in :mod:`hecrypt.backend.ntt`).

Moduli (``qs``) and scalars are host values (sequences, numpy arrays or :class:`NTTTables`);
their device copies and every derived constant are cached per device, so passing host
``qs`` costs no transfer after the first call.  A CuPy ``qs`` array is accepted too but is
copied to the host (one synchronisation).

Kernels are loaded lazily through :mod:`hecrypt.backend.kernels` (prebuilt fatbin, else
NVRTC); nothing is compiled or allocated at import.

NTT launch plan (:func:`ntt_launches`): at most two launches per transform, each reading and
writing the data once with every butterfly stage in shared memory (16 KiB per block): the
stages with span ``<= C/2`` on contiguous chunks of ``C = min(N, 2048)`` coefficients, and,
for ``N > C``, the ``log2(N/C)`` wider stages on tiles of strided coefficients (forward:
wide stages first; inverse: last).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

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
    "ntt_launches",
    "KERNEL_NAMES",
    "MODULE",
    "compile_nvrtc",
]

MODULE = "ntt"
KERNEL_NAMES = (
    "hk_ntt_fwd_outer",
    "hk_ntt_fwd_smem",
    "hk_ntt_inv_smem",
    "hk_ntt_inv_outer",
    "hk_rns_add",
    "hk_rns_sub",
    "hk_rns_neg",
    "hk_rns_mul",
    "hk_rns_fma",
    "hk_rns_dot",
    "hk_rns_mul_scalar",
    "hk_base_convert",
    "hk_gather",
)
SMEM_LOG_C = 11  # shared-memory chunk: 2048 coefficients (16 KiB)
SMEM_THREADS = 512  # threads per shared-memory block (2 butterflies each per stage at C = 2048)
THREADS = 256  # threads per block for global-memory / elementwise kernels
MAX_BLOCKS = 1 << 20  # grid-stride loops cover anything larger

_lock = threading.Lock()


def _cupy():
    import cupy

    return cupy


def _fn(name: str) -> Any:
    from . import kernels

    return kernels.get_function(MODULE, name)


def _grid(n: int, threads: int = THREADS) -> int:
    return max(1, min((n + threads - 1) // threads, MAX_BLOCKS))


def _dev_id() -> int:
    return _cupy().cuda.Device().id


# --------------------------------------------------------------------------------------
# launch plan (pure Python: also replayed by the host emulation test of ntt.cu)
# --------------------------------------------------------------------------------------
def ntt_launches(log_n: int, rows: int, inverse: bool) -> list[tuple[str, int, int, int, int]]:
    """Kernel launches of one (inverse) NTT over ``rows`` rows of ``2**log_n`` coefficients.

    Returns ``[(kernel, grid, block, shared_bytes, log_c), ...]`` in launch order: one launch
    for ``N <= 2048``, two otherwise (forward: outer then smem; inverse: smem then outer).
    Every launch has ``rows * N / C`` blocks of ``min(512, C/2)`` threads and ``C * 8``
    bytes of shared memory, ``C = min(N, 2048)``.
    """
    if not 1 <= log_n <= 2 * SMEM_LOG_C:
        raise ValueError(f"the CUDA NTT supports 2 <= N <= 2**{2 * SMEM_LOG_C}, got N = 2**{log_n}")
    log_c = min(log_n, SMEM_LOG_C)
    C = 1 << log_c
    threads = max(1, min(SMEM_THREADS, C // 2))
    blocks = rows << (log_n - log_c)
    smem = ("hk_ntt_inv_smem" if inverse else "hk_ntt_fwd_smem", blocks, threads, C * 8, log_c)
    if log_n == log_c:
        return [smem]
    outer = ("hk_ntt_inv_outer" if inverse else "hk_ntt_fwd_outer", blocks, threads, C * 8, log_c)
    return [smem, outer] if inverse else [outer, smem]


# --------------------------------------------------------------------------------------
# device constants (cached per device)
# --------------------------------------------------------------------------------------
def _uploaded(host: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``host``'s array attributes ``names`` on the current device, uploaded once per device
    and cached in ``host._device`` (thread-safe)."""
    key = _dev_id()
    d = host._device.get(key)
    if d is None:
        cp = _cupy()
        with _lock:
            d = host._device.get(key)
            if d is None:
                d = host._device[key] = {k: cp.asarray(getattr(host, k)) for k in names}
    return d


def _tables_dev(t: NTTTables) -> dict[str, Any]:
    return _uploaded(t, ("qs", "psi_rev", "psi_rev_shoup", "ipsi_rev", "ipsi_rev_shoup",
                         "n_inv", "n_inv_shoup", "last", "last_shoup"))


@functools.lru_cache(maxsize=256)
def _qs_dev(dev: int, qs_t: tuple[int, ...]) -> tuple[Any, Any, Any]:
    cp = _cupy()
    for q in qs_t:
        if q < 3 or q % 2 == 0 or q.bit_length() > MAX_PRIME_BITS:
            raise ValueError(f"modulus {q} is out of range: need odd 3 <= q < 2**{MAX_PRIME_BITS}")
    bar = [(1 << 128) // q for q in qs_t]
    return (
        cp.asarray(np.array(qs_t, dtype=np.uint64)),
        cp.asarray(np.array([b >> 64 for b in bar], dtype=np.uint64)),
        cp.asarray(np.array([b & ((1 << 64) - 1) for b in bar], dtype=np.uint64)),
    )


def _moduli(qs: Any, L: int) -> tuple[tuple[int, ...], Any, Any, Any]:
    if isinstance(qs, NTTTables):
        qs = qs.qs_int
    elif type(qs).__module__.split(".")[0] == "cupy":
        qs = qs.get()
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
    return (qs_t, *_qs_dev(_dev_id(), qs_t))


@functools.lru_cache(maxsize=1024)
def _scalar_dev(dev: int, s_t: tuple[int, ...], qs_t: tuple[int, ...]) -> tuple[Any, Any]:
    cp = _cupy()
    s = [v % q for v, q in zip(s_t, qs_t)]
    return (
        cp.asarray(np.array(s, dtype=np.uint64)),
        cp.asarray(np.array([shoup(v, q) for v, q in zip(s, qs_t)], dtype=np.uint64)),
    )


@functools.lru_cache(maxsize=512)
def _perm_dev(dev: int, g: int, N: int, ntt_form: bool) -> Any:
    return _cupy().asarray(galois_permutation(g, N, ntt_form))


def _bconv_dev(c: Any) -> dict[str, Any]:
    return _uploaded(c, ("from_qs", "to_qs", "qhat_inv", "qhat_inv_shoup", "qhat_mod_p", "barrett_hi", "barrett_lo"))


# --------------------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------------------
def _is_cupy(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


def _check_poly(a: Any, name: str = "a") -> Any:
    if not _is_cupy(a):
        raise TypeError(f"{name} must be a CuPy uint64 array (numpy arrays go to he_cpu), got {type(a).__name__}")
    if a.dtype != np.uint64:
        raise TypeError(f"{name} must have dtype uint64, got {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{name} must be shaped (..., L, N), got shape {a.shape}")
    n = a.shape[-1]
    if n < 2 or n & (n - 1):
        raise ValueError(f"{name}: the degree N = {n} must be a power of two >= 2")
    return a


def _out(shape: tuple[int, ...], out: Any) -> Any:
    cp = _cupy()
    if out is None:
        return cp.empty(shape, dtype=cp.uint64)
    _check_poly(out, "out")
    if tuple(out.shape) != tuple(shape) or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous with shape {tuple(shape)}, got {out.shape}")
    return out


def _broadcast(*arrays: Any) -> tuple[tuple[int, ...], list[tuple[Any, int]]]:
    """Common shape and, per operand, (contiguous array, batch-of-one flag)."""
    cp = _cupy()
    ln = arrays[0].shape[-2:]
    for x in arrays[1:]:
        if x.shape[-2:] != ln:
            raise ValueError(f"limb/degree shapes differ: {arrays[0].shape} vs {x.shape}")
    try:
        shape = tuple(np.broadcast_shapes(*(tuple(x.shape) for x in arrays)))
    except ValueError:
        raise ValueError(f"shapes {[x.shape for x in arrays]} do not broadcast") from None
    res = []
    for x in arrays:
        if tuple(x.shape) == shape:
            res.append((cp.ascontiguousarray(x), 0))
        elif int(np.prod(x.shape[:-2], dtype=np.int64)) == 1:
            res.append((cp.ascontiguousarray(x), 1))
        else:
            res.append((cp.ascontiguousarray(cp.broadcast_to(x, shape)), 0))
    return shape, res


def _check_tables(a: Any, tables: NTTTables) -> None:
    if not isinstance(tables, NTTTables):
        raise TypeError(f"tables must come from make_ntt_tables, got {type(tables).__name__}")
    if a.shape[-1] != tables.N or a.shape[-2] != tables.L:
        raise ValueError(
            f"array shape {a.shape} does not match the tables (L={tables.L}, N={tables.N}): "
            f"expected (..., {tables.L}, {tables.N})"
        )


def _i32(x: int) -> np.int32:
    return np.int32(x)


def _i64(x: int) -> np.int64:
    return np.int64(x)


# --------------------------------------------------------------------------------------
# public API (see he_cpu for the numeric contracts; results are identical)
# --------------------------------------------------------------------------------------
def ntt(a: Any, tables: NTTTables, *, out: Any = None) -> Any:
    """Forward negacyclic NTT of every limb (natural order in ``[0, q)`` -> bit-reversed
    evaluations in ``[0, q)``); ``out`` may be ``a`` (in place)."""
    _check_poly(a)
    _check_tables(a, tables)
    res = _out(a.shape, out)
    if res is not a:
        res[...] = a
    d = _tables_dev(tables)
    rows = res.size >> tables.log_n
    for name, grid, block, smem, last in ntt_launches(tables.log_n, rows, False):
        _fn(name)(
            (grid,), (block,),
            (res, d["psi_rev"], d["psi_rev_shoup"], d["qs"], _i32(tables.L), _i32(tables.log_n),
             _i64(rows), _i32(last)),
            shared_mem=smem,
        )  # fmt: skip
    return res


def intt(a: Any, tables: NTTTables, *, out: Any = None) -> Any:
    """Inverse NTT (bit-reversed evaluations -> natural-order coefficients, ``N^-1``
    included), values in ``[0, q)``; ``out`` may be ``a`` (in place)."""
    _check_poly(a)
    _check_tables(a, tables)
    res = _out(a.shape, out)
    if res is not a:
        res[...] = a
    d = _tables_dev(tables)
    rows = res.size >> tables.log_n
    for name, grid, block, smem, last in ntt_launches(tables.log_n, rows, True):
        _fn(name)(
            (grid,), (block,),
            (res, d["ipsi_rev"], d["ipsi_rev_shoup"], d["qs"], d["n_inv"], d["n_inv_shoup"],
             d["last"], d["last_shoup"], _i32(tables.L), _i32(tables.log_n), _i64(rows),
             _i32(last)),
            shared_mem=smem,
        )  # fmt: skip
    return res


def _log_n(shape: tuple[int, ...]) -> int:
    return int(shape[-1]).bit_length() - 1


def _binary(kernel: str, a: Any, b: Any, qs: Any, out: Any, barrett: bool) -> Any:
    _check_poly(a), _check_poly(b, "b")
    shape, ((x, xb), (y, yb)) = _broadcast(a, b)
    L = shape[-2]
    _, q, rhi, rlo = _moduli(qs, L)
    res = _out(shape, out)
    n = res.size
    consts = (q, rhi, rlo) if barrett else (q,)
    _fn(kernel)(
        (_grid(n),), (THREADS,),
        (x, y, res, *consts, _i32(L), _i32(_log_n(shape)), _i64(n), _i32(xb), _i32(yb)),
    )  # fmt: skip
    return res


def rns_add(a: Any, b: Any, qs: Any, *, out: Any = None) -> Any:
    """``(a + b) mod q_l`` per limb; batch axes broadcast."""
    return _binary("hk_rns_add", a, b, qs, out, False)


def rns_sub(a: Any, b: Any, qs: Any, *, out: Any = None) -> Any:
    """``(a - b) mod q_l`` per limb; batch axes broadcast."""
    return _binary("hk_rns_sub", a, b, qs, out, False)


def rns_mul(a: Any, b: Any, qs: Any, *, out: Any = None) -> Any:
    """Exact ``a * b mod q_l`` (128-bit product, 128-bit Barrett); batch axes broadcast."""
    return _binary("hk_rns_mul", a, b, qs, out, True)


def rns_neg(a: Any, qs: Any, *, out: Any = None) -> Any:
    """``-a mod q_l`` per limb (0 stays 0)."""
    _check_poly(a)
    _, q, _, _ = _moduli(qs, a.shape[-2])
    x = _cupy().ascontiguousarray(a)
    res = _out(a.shape, out)
    n = res.size
    _fn("hk_rns_neg")((_grid(n),), (THREADS,), (x, res, q, _i32(a.shape[-2]), _i32(_log_n(a.shape)), _i64(n)))
    return res


def rns_fma(acc: Any, a: Any, b: Any, qs: Any, *, out: Any = None) -> Any:
    """Exact ``(acc + a * b) mod q_l``; batch axes broadcast; ``out`` may be ``acc``."""
    _check_poly(acc, "acc"), _check_poly(a), _check_poly(b, "b")
    shape, ((c, cb), (x, xb), (y, yb)) = _broadcast(acc, a, b)
    L = shape[-2]
    _, q, rhi, rlo = _moduli(qs, L)
    res = _out(shape, out)
    n = res.size
    _fn("hk_rns_fma")(
        (_grid(n),), (THREADS,),
        (c, x, y, res, q, rhi, rlo, _i32(L), _i32(_log_n(shape)), _i64(n), _i32(cb), _i32(xb), _i32(yb)),
    )  # fmt: skip
    return res


@functools.lru_cache(maxsize=256)
def _batch_maps_dev(dev: int, sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[tuple[int, ...], Any, Any]:
    from .he_cpu import _batch_maps

    shape, ia, ib = _batch_maps(sa, sb)
    cp = _cupy()
    return shape, cp.asarray(ia), cp.asarray(ib)


def rns_dot(a: Any, b: Any, qs: Any, *, out: Any = None) -> Any:
    """Exact ``sum_k a[k] * b[k] mod q_l`` over the leading axis; ``a`` ``(K, *batch_a, L, N)``,
    ``b`` ``(K, *batch_b, L, N)``, batch shapes broadcast (see :func:`he_cpu.rns_dot`)."""
    _check_poly(a), _check_poly(b, "b")
    if a.ndim < 3 or b.ndim < 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"rns_dot needs (K, ..., L, N) operands with the same K, got {a.shape} and {b.shape}")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"limb/degree shapes differ: {a.shape} vs {b.shape}")
    L, N = a.shape[-2:]
    K = a.shape[0]
    batch, ia, ib = _batch_maps_dev(_dev_id(), tuple(a.shape[1:-2]), tuple(b.shape[1:-2]))
    _, q, rhi, rlo = _moduli(qs, L)
    cp = _cupy()
    x = cp.ascontiguousarray(a)
    y = cp.ascontiguousarray(b)
    res = _out(batch + (L, N), out)
    if cp.shares_memory(res, a) or cp.shares_memory(res, b):
        raise ValueError("rns_dot: out must not overlap the inputs")
    n = res.size
    _fn("hk_rns_dot")(
        (_grid(n),), (THREADS,),
        (x, y, res, ia, ib, q, rhi, rlo, _i32(L), _i32(_log_n(a.shape)), _i32(K),
         _i64(x.size // K), _i64(y.size // K), _i64(n)),
    )  # fmt: skip
    return res


def rns_mul_scalar(a: Any, s: Any, qs: Any, *, out: Any = None) -> Any:
    """``a * s_l mod q_l``, one host scalar per limb (any size, reduced mod ``q_l``); Shoup."""
    _check_poly(a)
    qs_t, q, _, _ = _moduli(qs, a.shape[-2])
    if type(s).__module__.split(".")[0] == "cupy":
        s = s.get()
    s_t = tuple(int(v) for v in np.asarray(s, dtype=object).ravel())
    if len(s_t) != len(qs_t):
        raise ValueError(f"s must hold one scalar per limb ({len(qs_t)}), got {len(s_t)}")
    sv, sp = _scalar_dev(_dev_id(), s_t, qs_t)
    x = _cupy().ascontiguousarray(a)
    res = _out(a.shape, out)
    n = res.size
    _fn("hk_rns_mul_scalar")(
        (_grid(n),), (THREADS,), (x, res, q, sv, sp, _i32(a.shape[-2]), _i32(_log_n(a.shape)), _i64(n))
    )
    return res


def base_convert(a: Any, from_qs: Any, to_qs: Any) -> Any:
    """Fast basis conversion (FastBConv), coefficient form: residues of ``x + u*Q`` modulo
    each target modulus, ``0 <= u <= Lf - 1`` (see :func:`hecrypt.backend.he_cpu.base_convert`)."""
    _check_poly(a)
    c = base_convert_constants(from_qs, to_qs)
    Lf, Lt = c.from_qs.shape[0], c.to_qs.shape[0]
    if a.shape[-2] != Lf:
        raise ValueError(f"a has {a.shape[-2]} limbs but from_qs has {Lf} moduli")
    cp = _cupy()
    d = _bconv_dev(c)
    x = cp.ascontiguousarray(a)
    res = cp.empty(a.shape[:-2] + (Lt, a.shape[-1]), dtype=cp.uint64)
    n = x.size // Lf
    _fn("hk_base_convert")(
        (_grid(n),), (THREADS,),
        (x, res, d["from_qs"], d["qhat_inv"], d["qhat_inv_shoup"], d["qhat_mod_p"], d["to_qs"],
         d["barrett_hi"], d["barrett_lo"], _i32(Lf), _i32(Lt), _i32(_log_n(a.shape)), _i64(n)),
    )  # fmt: skip
    return res


def automorphism(a: Any, galois_elt: int, N: int, ntt_form: bool, qs: Any = None, *, out: Any = None) -> Any:
    """Apply ``x -> x^g`` to every limb (coefficient form needs ``qs``; NTT form is a slot
    permutation); see :func:`hecrypt.backend.he_cpu.automorphism`."""
    _check_poly(a)
    if a.shape[-1] != N:
        raise ValueError(f"a has degree {a.shape[-1]} but N={N}")
    perm_h = galois_permutation(galois_elt, N, bool(ntt_form))  # validates g
    L = a.shape[-2]
    if ntt_form and qs is None:
        q = _qs_dev(_dev_id(), (3,) * L)[0]  # never read: NTT-form tables carry no sign bits
    else:
        if qs is None:
            raise ValueError("automorphism in coefficient form needs qs (negation mod q_l)")
        q = _moduli(qs, L)[1]
    del perm_h
    perm = _perm_dev(_dev_id(), int(galois_elt), int(N), bool(ntt_form))
    res = _out(a.shape, out)
    if res is a or _cupy().shares_memory(res, a):
        raise ValueError("automorphism cannot work in place: out must not overlap a")
    x = _cupy().ascontiguousarray(a)
    n = res.size
    _fn("hk_gather")((_grid(n),), (THREADS,), (x, res, perm, q, _i32(L), _i32(_log_n(a.shape)), _i64(n)))
    return res


def compile_nvrtc(arch: str = "sm_90") -> bytes:
    """Compile ``kernels/ntt.cu`` with NVRTC (no GPU needed): cubin bytes for ``sm_XX``, PTX
    for ``compute_XX``.  Raises :class:`~hecrypt.errors.KernelError` with the log on failure."""
    from . import kernels

    return kernels.nvrtc_compile(MODULE, arch)
