"""CUDA backend: CuPy arrays and hecrypt's CUDA C kernels (``kernels/*.cu``).

:class:`CUDABackend` has exactly the methods of :class:`~hecrypt.backend.cpu.CPUBackend` and
returns bit-identical results (same numeric contract: ``q == 0`` is Z_2^k of the dtype, else
an odd ``q < 2**62`` with inputs and outputs in ``[0, q)``).  CuPy is imported in the
constructor, never at module import; kernels are loaded lazily per device (prebuilt fatbin
first, NVRTC otherwise, see :mod:`hecrypt.backend.kernels`).

Ring matmul has several exact implementations ("paths"), tried in order by
:attr:`CUDABackend._matmul_paths`; the first whose ``accepts(q, bits, M, N, K, batch)`` is
true runs:

* ``int8-tc`` (registered first for ``q == 0`` when :mod:`hecrypt.backend.cuda_int8` imports
  and its ``int8_selfcheck`` passes): int8 limbs on tensor cores;
* ``limb-f64``: signed balanced limbs in float64 on cuBLAS (``cupy.matmul``) between fused split
  and recombine kernels (``kernels/limb_matmul.cu``), the same layouts and K chunking as
  CPUBackend.matmul: Karatsuba on 22/20/22-bit limbs for Z_2^64 (4 GEMM calls worth 5 GEMMs,
  K <= 1024 per chunk), schoolbook diagonals of ``limb_plan`` for Z_2^32 and Z_q;
* ``simt``: the tiled shared-memory kernel (``kernels/ring_matmul.cu``), exact for any K; the
  reference and the choice for small products (fewer launches).

:func:`matmul_path_report` says which path each ring takes (``hecrypt info``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import DeviceUnavailableError, KernelError
from . import kernels as _kern
from .cpu import KARATSUBA64_KMAX, limb_plan
from .modarith import barrett, two64_mod

__all__ = ["CUDABackend", "MatmulPath", "KERNELS", "LIMB_MIN_WORK", "matmul_path_report"]

_RING_SFX = ("u64", "u32", "zq")
_EW_OPS = ("ew_add", "ew_sub", "ew_mul", "ew_adds", "ew_subs", "ew_rsubs", "ew_muls", "ew_neg", "ew_nsum",
           "ax_sum_strided", "ax_sum_rows")

#: Every extern "C" entry point this module launches, by kernel module (checked by the tests).
KERNELS: dict[str, tuple[str, ...]] = {
    "ring_elementwise": tuple(f"{op}_{s}" for op in _EW_OPS for s in _RING_SFX) + ("reduce_u128_zq",),
    "truncate": ("truncate_u64", "truncate_u32", "truncate_zq"),
    "ring_matmul": ("matmul_u64", "matmul_u32", "matmul_zq"),
    "limb_matmul": ("split_rows_u64", "split_rows_u32", "split_rows_zq1", "split_rows_zq2", "split_rows_zq3",
                    "split_cols_u64", "split_cols_u32", "split_cols_zq1", "split_cols_zq2", "split_cols_zq3",
                    "recombine_pow2_u64", "recombine_pow2_u32", "recombine_zq",
                    "split64k_rows", "split64k_cols", "recombine64k"),
    "chacha20": ("chacha20_blocks",),
}

#: Products with fewer multiply-adds (batch*M*N*K) than this use the SIMT kernel (one launch)
#: instead of the limb / tensor-core paths (several launches and GEMMs).  Not yet tuned on a GPU.
LIMB_MIN_WORK = 1 << 21

_THREADS = 256
_SIMT_TILE = 64  # ring_matmul.cu: 64 x 64 outputs per 256-thread block
_ROW_CHUNK = 1 << 14  # elements per block in the first pass of long row sums
_I64 = np.int64
_U64 = np.uint64


@dataclass(frozen=True)
class MatmulPath:
    """One exact ring-matmul implementation in the dispatch list.

    ``accepts(q, bits, M, N, K, batch) -> bool``; ``run(a, b, q, bits) -> array`` takes the
    operands exactly as ``CUDABackend.matmul`` does (numpy batch broadcasting).
    """

    name: str
    accepts: Callable[[int, int, int, int, int, int], bool]
    run: Callable[[Any, Any, int, int], Any]
    description: str = ""


def _device_pointer(x) -> int:
    """Device address of a CuPy array's first element."""
    return int(x.data.ptr)


def _big(q: int, bits: int, M: int, N: int, K: int, batch: int) -> bool:
    return batch * M * N * K >= LIMB_MIN_WORK


class CUDABackend:
    """Ring kernels on CuPy arrays (one instance per process, see ``get_backend("cuda")``)."""

    name = "cuda"

    def __init__(self) -> None:
        try:
            import cupy
        except Exception as exc:
            raise DeviceUnavailableError(f"the CUDA backend needs CuPy: {exc}") from exc
        self.xp = cupy
        self._cp = cupy
        self._sm_count: dict[int, int] = {}
        self._int8_state: str | None = None  # None: not tried yet; else a status line
        self._limb_verified: dict[tuple[int, int], bool] = {}
        self._matmul_paths: list[MatmulPath] = [
            MatmulPath("limb-f64", self._limb_accepts, self._matmul_limb,
                       "float64 balanced limbs on cuBLAS with fused split/recombine kernels"),
            MatmulPath("simt", lambda *args: True, self._matmul_simt,
                       "tiled shared-memory SIMT kernel, exact 128-bit products for Z_q"),
        ]

    # -- arrays ------------------------------------------------------------------------
    def asarray(self, x, dtype=None):
        return self._cp.asarray(x, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        if type(a).__module__.split(".")[0] == "cupy":
            return self._cp.asnumpy(a)
        return np.asarray(a)

    def synchronize(self) -> None:
        self._cp.cuda.get_current_stream().synchronize()

    # -- launch helpers ----------------------------------------------------------------
    def _fn(self, module: str, name: str):
        if name not in KERNELS.get(module, ()):
            raise KernelError(f"kernel {name} is not registered for {module}.cu in hecrypt.backend.cuda.KERNELS")
        return _kern.get_function(module, name)

    def _grid(self, n: int) -> int:
        dev = self._cp.cuda.Device().id
        sms = self._sm_count.get(dev)
        if sms is None:
            sms = int(self._cp.cuda.Device(dev).attributes["MultiProcessorCount"])
            self._sm_count[dev] = sms
        return max(1, min((n + _THREADS - 1) // _THREADS, sms * 16))

    def _launch(self, module: str, name: str, n: int, args: tuple) -> None:
        if n <= 0:
            return
        self._fn(module, name)((self._grid(n),), (_THREADS,), args)

    @staticmethod
    def _check_dtype(a, q: int) -> str:
        dt = np.dtype(a.dtype)
        if q != 0:
            if dt != np.uint64:
                raise TypeError(f"Z_q elements must be uint64 arrays, got {dt}")
            return "zq"
        if dt == np.uint64:
            return "u64"
        if dt == np.uint32:
            return "u32"
        raise TypeError(f"ring arrays must be uint64 (Z_2^64, Z_q) or uint32 (Z_2^32), got {dt}")

    @staticmethod
    def _qargs(q: int) -> tuple:
        if q == 0:
            return ()
        qq, mu, k = barrett(q)
        return (_U64(qq), _U64(mu), _U64(k))

    def _dev(self, a):
        cp = self._cp
        if isinstance(a, cp.ndarray):
            return a
        return cp.asarray(a)

    # -- elementwise -------------------------------------------------------------------
    def _binary(self, op: str, a, b, q: int):
        cp = self._cp
        a, b = self._dev(a), self._dev(b)
        if a.dtype != b.dtype:
            raise TypeError(f"operands have different dtypes ({a.dtype}, {b.dtype})")
        sfx = self._check_dtype(a, q)
        qa = self._qargs(q)
        shape = np.broadcast_shapes(a.shape, b.shape)
        if a.shape == b.shape:
            a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
            out = cp.empty(shape, a.dtype)
            self._launch("ring_elementwise", f"ew_{op}_{sfx}", out.size, (a, b, out, _I64(out.size)) + qa)
            return out
        if b.size == 1 and a.shape == shape:
            arr, s, sop = a, b, f"{op}s"
        elif a.size == 1 and b.shape == shape:
            arr, s, sop = b, a, {"add": "adds", "mul": "muls", "sub": "rsubs"}[op]
        else:
            a, b = (cp.ascontiguousarray(x) for x in cp.broadcast_arrays(a, b))
            out = cp.empty(shape, a.dtype)
            self._launch("ring_elementwise", f"ew_{op}_{sfx}", out.size, (a, b, out, _I64(out.size)) + qa)
            return out
        arr = cp.ascontiguousarray(arr)
        s = cp.ascontiguousarray(s.reshape(1))
        out = cp.empty(shape, arr.dtype)
        self._launch("ring_elementwise", f"ew_{sop}_{sfx}", out.size, (arr, s, out, _I64(out.size)) + qa)
        return out

    def add(self, a, b, q: int = 0):
        """``a + b`` in the ring (numpy broadcasting)."""
        return self._binary("add", a, b, q)

    def sub(self, a, b, q: int = 0):
        """``a - b`` in the ring (numpy broadcasting)."""
        return self._binary("sub", a, b, q)

    def mul(self, a, b, q: int = 0):
        """Elementwise product (numpy broadcasting); a size-1 operand is a public scalar."""
        return self._binary("mul", a, b, q)

    def neg(self, a, q: int = 0):
        cp = self._cp
        a = cp.ascontiguousarray(self._dev(a))
        sfx = self._check_dtype(a, q)
        out = cp.empty(a.shape, a.dtype)
        self._launch("ring_elementwise", f"ew_neg_{sfx}", out.size, (a, out, _I64(out.size)) + self._qargs(q))
        return out

    def nsum(self, arrays, q: int = 0):
        """n-way sum of share arrays in one pass (one kernel reading all n inputs)."""
        cp = self._cp
        arrays = [self._dev(x) for x in arrays]
        if not arrays:
            raise ValueError("nsum needs at least one array")
        dt = arrays[0].dtype
        if any(x.dtype != dt for x in arrays):
            raise TypeError("nsum operands have different dtypes")
        sfx = self._check_dtype(arrays[0], q)
        shape = np.broadcast_shapes(*(x.shape for x in arrays))
        if any(x.shape != shape for x in arrays):
            arrays = list(cp.broadcast_arrays(*arrays))
        arrays = [cp.ascontiguousarray(x) for x in arrays]
        if len(arrays) == 1:
            return arrays[0].copy()
        out = cp.empty(shape, dt)
        ptrs = cp.asarray(np.array([_device_pointer(x) for x in arrays], np.uint64))
        self._launch("ring_elementwise", f"ew_nsum_{sfx}", out.size,
                     (ptrs, np.int32(len(arrays)), out, _I64(out.size)) + self._qargs(q))
        return out

    def _row_sums(self, a2, sfx: str, qa: tuple):
        """Sums of the rows of a contiguous 2-D array (rows, C), C >= 1."""
        cp = self._cp
        rows, C = a2.shape
        fn = self._fn("ring_elementwise", f"ax_sum_rows_{sfx}")
        chunk = C
        if rows < 4 * self._grid(1 << 30) and C > 2 * _ROW_CHUNK:
            chunk = _ROW_CHUNK  # long rows: two passes so that many blocks share a row
        nchunks = -(-C // chunk)
        out = cp.empty((rows * nchunks,), a2.dtype)
        grid = max(1, min(rows * nchunks, 1 << 20))
        fn((grid,), (_THREADS,), (a2, out, _I64(rows), _I64(C), _I64(chunk)) + qa)
        if nchunks == 1:
            return out
        return self._row_sums(out.reshape(rows, nchunks), sfx, qa)

    def sum(self, a, axis=None, q: int = 0):
        """Sum over ``axis`` (None: all elements, returns a 0-d array) in the ring."""
        cp = self._cp
        a = self._dev(a)
        sfx = self._check_dtype(a, q)
        qa = self._qargs(q)
        if isinstance(axis, tuple):
            out = a
            for ax in sorted((int(x) % a.ndim for x in axis), reverse=True):
                out = self.sum(out, ax, q)
            return out
        if axis is None:
            flat = cp.ascontiguousarray(a).reshape(1, -1)
            if flat.size == 0:
                return cp.zeros((), a.dtype)
            return self._row_sums(flat, sfx, qa).reshape(())
        if not -a.ndim <= int(axis) < a.ndim:
            raise ValueError(f"axis {axis} is out of bounds for an array of dimension {a.ndim}")
        axis = int(axis) % a.ndim
        C = a.shape[axis]
        pre = math.prod(a.shape[:axis])
        post = math.prod(a.shape[axis + 1:])
        oshape = a.shape[:axis] + a.shape[axis + 1:]
        if C == 0 or pre * post == 0:
            return cp.zeros(oshape, a.dtype)
        if post == 1 or (pre * post < 4096 and C > 4096):
            moved = cp.ascontiguousarray(cp.moveaxis(a, axis, -1)).reshape(pre * post, C)
            return self._row_sums(moved, sfx, qa).reshape(oshape)
        a = cp.ascontiguousarray(a)
        out = cp.empty(oshape, a.dtype)
        self._launch("ring_elementwise", f"ax_sum_strided_{sfx}", out.size,
                     (a, out, _I64(pre), _I64(C), _I64(post)) + qa)
        return out

    def truncate(self, a, f: int, q: int = 0):
        """Floor of the signed representative divided by 2^f, back in the ring (0 <= f < bits)."""
        cp = self._cp
        a = cp.ascontiguousarray(self._dev(a))
        sfx = self._check_dtype(a, q)
        bits = q.bit_length() if q else 8 * a.dtype.itemsize
        if not 0 <= int(f) < bits:
            raise ValueError(f"truncation shift must be in [0, {bits}), got {f}")
        out = cp.empty(a.shape, a.dtype)
        args = (a, out, _I64(out.size), np.uint32(f)) + ((_U64(q),) if q else ())
        self._launch("truncate", f"truncate_{sfx}", out.size, args)
        return out

    def reduce_u128(self, lo, hi, q: int):
        """(lo + hi * 2^64) mod q elementwise; bias of a uniform 128-bit input < q/2^128."""
        cp = self._cp
        lo, hi = self._dev(lo), self._dev(hi)
        if lo.dtype != np.uint64 or hi.dtype != np.uint64:
            raise TypeError("reduce_u128 takes uint64 arrays")
        if lo.shape != hi.shape:
            lo, hi = cp.broadcast_arrays(lo, hi)
        lo, hi = cp.ascontiguousarray(lo), cp.ascontiguousarray(hi)
        out = cp.empty(lo.shape, np.uint64)
        self._launch("ring_elementwise", "reduce_u128_zq", out.size,
                     (lo, hi, out, _I64(out.size)) + self._qargs(q) + (_U64(two64_mod(q)),))
        return out

    # -- matmul ------------------------------------------------------------------------
    @staticmethod
    def _shapes(a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("matmul operands must be at least 2-D")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul shape mismatch: {tuple(a.shape)} @ {tuple(b.shape)}")
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        M, K = a.shape[-2:]
        N = b.shape[-1]
        return batch, int(M), int(N), int(K)

    def _operand3(self, x, batch):
        """x as a contiguous 3-D array and its batch stride (0 when its batch is broadcast)."""
        cp = self._cp
        if math.prod(x.shape[:-2]) == 1:
            x3 = cp.ascontiguousarray(x.reshape((1,) + x.shape[-2:]))
            return x3, 0
        if x.shape[:-2] != batch:
            x = cp.broadcast_to(x, batch + x.shape[-2:])
        x3 = cp.ascontiguousarray(x).reshape((-1,) + x.shape[-2:])
        return x3, x3.shape[1] * x3.shape[2]

    def _prepare(self, a, b, q: int, bits: int):
        a, b = self._dev(a), self._dev(b)
        if a.dtype != b.dtype:
            raise TypeError(f"matmul operands have different dtypes ({a.dtype}, {b.dtype})")
        sfx = self._check_dtype(a, q)
        if q == 0 and bits != 8 * a.dtype.itemsize:
            raise ValueError(f"bits={bits} does not match dtype {a.dtype}")
        batch, M, N, K = self._shapes(a, b)
        return a, b, sfx, batch, M, N, K

    def matmul(self, a, b, q: int = 0, bits: int = 64):
        """Exact ring matmul ``a @ b`` with numpy batch broadcasting (first accepting path)."""
        a, b, sfx, batch, M, N, K = self._prepare(a, b, q, bits)
        if q == 0 and self._int8_state is None:
            self._register_int8()
        nb = math.prod(batch)
        for p in self._matmul_paths:
            if p.accepts(q, bits, M, N, K, nb):
                return p.run(a, b, q, bits)
        raise KernelError("no matmul path accepted the operands")  # pragma: no cover - simt accepts all

    def matmul_path(self, a, b, q: int = 0, bits: int = 64, path: str = "simt"):
        """Run one named matmul path (``"simt"``, ``"limb-f64"``, ``"int8-tc"``), for tests/benchmarks."""
        if q == 0 and self._int8_state is None:
            self._register_int8()
        for p in self._matmul_paths:
            if p.name == path:
                return p.run(a, b, q, bits)
        raise ValueError(f"unknown matmul path {path!r}; have {[p.name for p in self._matmul_paths]}")

    def select_matmul_path(self, q: int, bits: int, M: int, N: int, K: int, batch: int = 1) -> str:
        """Name of the path :meth:`matmul` would take for these parameters."""
        if q == 0 and self._int8_state is None:
            self._register_int8()
        for p in self._matmul_paths:
            if p.accepts(q, bits, M, N, K, batch):
                return p.name
        return "none"  # pragma: no cover

    def register_matmul_path(self, path: MatmulPath, first: bool = True) -> None:
        """Add an exact matmul path to the dispatch list (first by default); replaces a same-named one."""
        self._matmul_paths = [p for p in self._matmul_paths if p.name != path.name]
        if first:
            self._matmul_paths.insert(0, path)
        else:
            self._matmul_paths.insert(len(self._matmul_paths) - 1, path)

    def _register_int8(self) -> None:
        """Register the tensor-core int8 path for q == 0 if hecrypt.backend.cuda_int8 works here."""
        self._int8_state = "checking"
        try:
            from . import cuda_int8  # noqa: PLC0415 - optional module, lazily imported
        except Exception as exc:
            self._int8_state = f"unavailable (hecrypt.backend.cuda_int8 did not import: {exc})"
            return
        fn = getattr(cuda_int8, "int8_matmul", None)
        check = getattr(cuda_int8, "int8_selfcheck", None)
        if fn is None or check is None:
            self._int8_state = "unavailable (cuda_int8 lacks int8_matmul / int8_selfcheck)"
            return
        try:
            ok = bool(check(self))
        except Exception as exc:
            self._int8_state = f"disabled (int8_selfcheck raised {type(exc).__name__}: {exc})"
            return
        if not ok:
            self._int8_state = "disabled (int8_selfcheck found a mismatch)"
            return

        def accepts(q, bits, M, N, K, batch):
            return q == 0 and bits in (32, 64) and _big(q, bits, M, N, K, batch)

        self.register_matmul_path(
            MatmulPath("int8-tc", accepts, lambda a, b, q, bits: fn(a, b, bits),
                       "int8 balanced limbs on tensor cores (hecrypt.backend.cuda_int8)"),
            first=True,
        )
        self._int8_state = "enabled (int8_selfcheck passed)"

    def matmul_path_report(self) -> dict[str, Any]:
        """Which path each ring's matmul takes, small and large, plus the int8 path's status."""
        if self._int8_state is None:
            self._register_int8()
        rings = {"Z_2^64": (0, 64), "Z_2^32": (0, 32), "Z_q (q < 2^62)": ((1 << 61) + 1, 64)}
        out: dict[str, Any] = {}
        for name, (q, bits) in rings.items():
            out[name] = {
                "small (batch*M*N*K < 2^21)": self.select_matmul_path(q, bits, 16, 16, 16),
                "large": self.select_matmul_path(q, bits, 1024, 1024, 1024),
            }
        out["paths"] = [p.name for p in self._matmul_paths]
        out["limb-f64 self-check"] = {f"bits={b}, limbs={l}": ok for (b, l), ok in sorted(self._limb_verified.items())}
        out["int8-tc"] = self._int8_state
        return out

    def _limb_accepts(self, q: int, bits: int, M: int, N: int, K: int, batch: int) -> bool:
        return _big(q, bits, M, N, K, batch) and self._limb_ok(q, bits)

    def _limb_ok(self, q: int, bits: int) -> bool:
        """Once per ring kind: the limb path agrees with the SIMT kernel on a small hard case.

        Guards the float64 exactness assumption against cuBLAS configurations that do not
        compute float64 GEMMs exactly on integers below 2^53 (e.g. reduced-precision or
        emulated FP64 modes); on a mismatch the path is disabled for that ring with a warning.
        """
        key = (bits, limb_plan(bits, q).nlimbs if q else 0)
        ok = self._limb_verified.get(key)
        if ok is None:
            ok = self._limb_selfcheck(q, bits)
            self._limb_verified[key] = ok
        return ok

    def _limb_selfcheck(self, q: int, bits: int) -> bool:
        rng = np.random.default_rng()  # public test operands, not secrets
        dt = np.uint32 if (q == 0 and bits == 32) else np.uint64
        shape_a, shape_b = (2, 17, 1100), (1100, 19)  # K past the Z_2^64 chunk limit, broadcast batch
        if q:
            a = rng.integers(0, q, size=shape_a, dtype=np.uint64)
            b = rng.integers(0, q, size=shape_b, dtype=np.uint64)
            extreme = (q + 1) // 2  # most negative signed representative
        else:
            a = rng.integers(0, 1 << bits, size=shape_a, dtype=np.uint64).astype(dt)
            b = rng.integers(0, 1 << bits, size=shape_b, dtype=np.uint64).astype(dt)
            extreme = 1 << (bits - 1)
        a[0, :3] = extreme
        b[:, :3] = extreme
        ga, gb = self._cp.asarray(a), self._cp.asarray(b)
        try:
            ok = bool((self._matmul_limb(ga, gb, q, bits) == self._matmul_simt(ga, gb, q, bits)).all())
        except Exception as exc:  # pragma: no cover - depends on the machine
            warnings.warn(f"float64 limb matmul failed its self-check ({exc}); using the SIMT kernel",
                          RuntimeWarning, stacklevel=3)
            return False
        if not ok:
            warnings.warn(f"float64 limb matmul disagrees with the SIMT kernel for q={q}, bits={bits} "
                          "(cuBLAS float64 not exact here?); using the SIMT kernel for this ring",
                          RuntimeWarning, stacklevel=3)
        return ok

    def _matmul_simt(self, a, b, q: int, bits: int):
        cp = self._cp
        a, b, sfx, batch, M, N, K = self._prepare(a, b, q, bits)
        nb = math.prod(batch)
        out = cp.empty((nb, M, N), a.dtype)
        if out.size == 0:
            return out.reshape(batch + (M, N))
        if K == 0:
            out.fill(0)
            return out.reshape(batch + (M, N))
        A3, sa = self._operand3(a, batch)
        B3, sb = self._operand3(b, batch)
        grid = (min(-(-N // _SIMT_TILE), 1 << 30), min(-(-M // _SIMT_TILE), 65535), min(nb, 65535))
        args = (A3, B3, out, _I64(M), _I64(N), _I64(K), _I64(nb), _I64(sa), _I64(sb), _I64(M * N))
        if q:
            args += self._qargs(q) + (_U64(two64_mod(q)), _U64((1 << 128) % q))
        self._fn("ring_matmul", f"matmul_{sfx}")(grid, (_THREADS,), args)
        return out.reshape(batch + (M, N))

    @staticmethod
    def _gemm(cp, lhs, rhs, out, nba, nbb):
        """out = lhs @ rhs in float64 on cuBLAS (2-D when neither operand is batched)."""
        if nba == 1 and nbb == 1:
            cp.matmul(lhs[0], rhs[0], out=out[0])
        else:
            cp.matmul(lhs, rhs, out=out)

    def _matmul_limb(self, a, b, q: int, bits: int):
        cp = self._cp
        a, b, sfx, batch, M, N, K = self._prepare(a, b, q, bits)
        nb = math.prod(batch)
        acc = cp.zeros((nb, M, N), a.dtype)
        if acc.size == 0 or K == 0:
            return acc.reshape(batch + (M, N))
        if q == 0 and bits == 64:
            return self._matmul_karatsuba64(a, b, batch, M, N, K, acc)
        plan = limb_plan(bits, q)
        L, w, D = plan.nlimbs, plan.width, plan.ndiag
        if q == 0:
            expect = {64: (3, 22, 3), 32: (2, 16, 2)}[bits]
            ksfx = sfx
        else:
            expect = (L, 22, 2 * L - 1) if L in (1, 2, 3) else (None, None, None)
            ksfx = f"zq{L}"
        if (L, w, D) != expect:
            raise KernelError(f"limb plan {plan} has no compiled split/recombine kernels")
        A3, sa = self._operand3(a, batch)
        B3, sb = self._operand3(b, batch)
        nba, nbb = A3.shape[0], B3.shape[0]
        qx = (_U64(q),) if q else ()
        nchunks = -(-K // plan.kmax)
        kc0 = -(-K // nchunks)
        diags = cp.empty((D, nb, M, N), np.float64)
        flat = diags.reshape(D, -1)
        n = nb * M * N
        if q:
            qq, mu, kb = barrett(q)
            pows = [pow(2, w * d, q) for d in range(D)] + [0] * (5 - D)
            rq = (np.int32(D), _U64(qq), _U64(mu), _U64(kb)) + tuple(_U64(p) for p in pows)
        for c0 in range(0, K, kc0):
            kc = min(kc0, K - c0)
            Af = cp.empty((nba, M, L * kc), np.float64)
            Bf = cp.empty((nbb, L * kc, N), np.float64)
            self._launch("limb_matmul", f"split_rows_{ksfx}", nba * M * kc,
                         (A3, Af, _I64(nba), _I64(M), _I64(K), _I64(M * K), _I64(c0), _I64(kc)) + qx)
            self._launch("limb_matmul", f"split_cols_{ksfx}", nbb * kc * N,
                         (B3, Bf, _I64(nbb), _I64(N), _I64(K * N), _I64(c0), _I64(kc)) + qx)
            for d in range(D):
                i0, i1 = max(0, d - L + 1), min(d, L - 1)
                j0 = L - 1 - d + i0
                lhs = Af[:, :, i0 * kc:(i1 + 1) * kc]
                rhs = Bf[:, j0 * kc:(j0 + i1 - i0 + 1) * kc, :]
                self._gemm(cp, lhs, rhs, diags[d], nba, nbb)
            if q == 0:
                self._launch("limb_matmul", f"recombine_pow2_{sfx}", n, (flat, acc, _I64(n)))
            else:
                self._launch("limb_matmul", "recombine_zq", n, (flat, acc, _I64(n)) + rq)
        return acc.reshape(batch + (M, N))

    def _matmul_karatsuba64(self, a, b, batch, M, N, K, acc):
        """Z_2^64: a = a0 + a1 2^22 + a2 2^42 (balanced), mod 2^64 only
        a0 b0 + (a0 b1 + a1 b0) 2^22 + (a0 b2 + a2 b0) 2^42 + a1 b1 2^44 matters and the middle
        term is (a0 + a1)(b0 + b1) - a0 b0 - a1 b1: GEMMs [a0 a2]@[b2; b0], a0@b0, a1@b1,
        (a0+a1)@(b0+b1), each sum an exact float64 integer for K <= KARATSUBA64_KMAX per chunk."""
        cp = self._cp
        A3, _ = self._operand3(a, batch)
        B3, _ = self._operand3(b, batch)
        nba, nbb = A3.shape[0], B3.shape[0]
        nb = acc.shape[0]
        nchunks = -(-K // KARATSUBA64_KMAX)
        kc0 = -(-K // nchunks)
        p = cp.empty((4, nb, M, N), np.float64)
        n = nb * M * N
        for c0 in range(0, K, kc0):
            k = min(kc0, K - c0)
            Af = cp.empty((nba, M, 4 * k), np.float64)
            Bf = cp.empty((nbb, 4 * k, N), np.float64)
            self._launch("limb_matmul", "split64k_rows", nba * M * k,
                         (A3, Af, _I64(nba), _I64(M), _I64(K), _I64(M * K), _I64(c0), _I64(k)))
            self._launch("limb_matmul", "split64k_cols", nbb * k * N,
                         (B3, Bf, _I64(nbb), _I64(N), _I64(K * N), _I64(c0), _I64(k)))
            self._gemm(cp, Af[:, :, 0:2 * k], Bf[:, 0:2 * k, :], p[0], nba, nbb)          # a0 b2 + a2 b0
            self._gemm(cp, Af[:, :, 0:k], Bf[:, k:2 * k, :], p[1], nba, nbb)              # a0 b0
            self._gemm(cp, Af[:, :, 2 * k:3 * k], Bf[:, 2 * k:3 * k, :], p[2], nba, nbb)  # a1 b1
            self._gemm(cp, Af[:, :, 3 * k:], Bf[:, 3 * k:, :], p[3], nba, nbb)            # (a0+a1)(b0+b1)
            self._launch("limb_matmul", "recombine64k", n, (p.reshape(4, -1), acc, _I64(n)))
        return acc.reshape(batch + (M, N))

    # -- randomness --------------------------------------------------------------------
    def chacha20_keystream(self, key: bytes, nonce: bytes, counter: int, nblocks: int):
        """RFC 8439 ChaCha20 keystream blocks ``counter .. counter+nblocks-1`` as uint32 words
        (``0 <= counter`` and ``counter + nblocks <= 2^32``, else ValueError).

        Bit-identical to CPUBackend.chacha20_keystream (``cryptography``/OpenSSL), computed on
        the GPU, one thread per 64-byte block (``kernels/chacha20.cu``); key and nonce are
        passed as kernel arguments, nothing is uploaded.
        """
        key, nonce = bytes(key), bytes(nonce)
        if len(key) != 32:
            raise ValueError(f"ChaCha20 key must be 32 bytes, got {len(key)}")
        if len(nonce) != 12:
            raise ValueError(f"ChaCha20 nonce must be 12 bytes, got {len(nonce)}")
        counter, nblocks = int(counter), int(nblocks)
        if counter < 0 or nblocks < 0 or counter + nblocks > 1 << 32:
            # RFC 8439's block counter is 32 bits (the kernel itself would carry into the first
            # nonce word, as OpenSSL once did; the CPU backend refuses, so this one does too)
            raise ValueError("ChaCha20 block counter would pass 2^32 (RFC 8439's 32-bit counter): "
                             f"counter={counter}, nblocks={nblocks}")
        out = self._cp.empty(16 * nblocks, np.uint32)
        kw = [np.uint32(x) for x in np.frombuffer(key, "<u4")]
        nw = [np.uint32(x) for x in np.frombuffer(nonce, "<u4")]
        self._launch("chacha20", "chacha20_blocks", nblocks, (out, _U64(counter), _I64(nblocks), *kw, *nw))
        return out


def matmul_path_report() -> dict[str, Any]:
    """:meth:`CUDABackend.matmul_path_report` of the shared CUDA backend, or why there is none."""
    from . import cuda_status, get_backend

    ok, why = cuda_status()
    if not ok:
        return {"available": False, "reason": why}
    rep = get_backend("cuda").matmul_path_report()
    rep["available"] = True
    return rep
