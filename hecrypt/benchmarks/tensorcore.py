"""Suite ``ring-tc``: ring matmul on the integer tensor cores (GPU only).

``hecrypt bench ring`` runs this suite too when the device is a GPU (the CLI lists it as a
companion of ``ring``); ``hecrypt bench ring-tc`` runs it alone.  On the CPU it records
nothing and says why.

Cases, each ring (Z_2^64, Z_2^32) and shape (n x n x n for n = 1024, 4096, 8192, and the
training shape 65536 x 1024 x 10), all in the same run on the same card:

* hecrypt's tensor-core path (:func:`hecrypt.backend.cuda_int8.int8_matmul`: int8 limbs,
  cuBLAS int8 GEMMs, fused split/recombine) against
* the SIMT kernel (the CUDA backend's ``simt`` path, the exact reference),
* the CUDA backend's float64 limb path (``limb-f64``: Karatsuba on 22/20/22-bit limbs, 5
  GEMM-equivalents, for Z_2^64; 3 products for Z_2^32) and, for Z_2^64, the schoolbook
  six-product float64 limb method (:func:`~hecrypt.backend.cuda_int8.f64_limb6_matmul`),
* CrypTen's 16-bit-block method on float64 GEMMs, 10 products
  (:func:`~hecrypt.backend.cuda_int8.f64_blocks16_matmul`);

one row per baseline (``speedup = baseline_s / hecrypt_s``); ``exact`` says whether that
baseline's result equals the tensor-core result bit for bit.  Rows carry ``ring_tmacs`` (ring multiply-adds per
second / 1e12), ``mode`` (the int8 GEMM layout chosen) and, once the card's plain int8 GEMM
rate has been measured (first row: an 8192^3 cuBLAS int8 GEMM), ``ideal_tmacs`` (that rate
divided by the 36 / 10 int8 products per ring multiply-add) and ``frac_of_ideal``.
Inputs are public benchmark data from numpy's generator (never secrets).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..backend import get_backend
from ._harness import Bench

SUITE = "ring-tc"
DESCRIPTION = ("tensor-core ring matmul (int8 limbs) vs SIMT, six-product float64 limbs, CrypTen's "
               "10-product float64 blocks, and the card's int8 GEMM rate (GPU only; part of `ring` on a GPU)")

SHAPES = [(1024, 1024, 1024), (4096, 4096, 4096), (8192, 8192, 8192), (65536, 1024, 10)]
GEMM_N = 8192


def _rand(rng: np.random.Generator, bits: int, shape) -> np.ndarray:
    dt = np.uint64 if bits == 64 else np.uint32
    return rng.integers(0, (1 << bits) - 1, size=shape, dtype=dt, endpoint=True)


def _time(bench: Bench, fn: Callable[[], Any], slow: float = 2.0) -> float:
    """Median seconds; a call slower than ``slow`` s is timed once (quick) or 3 times."""
    bench.sync()
    t0 = time.perf_counter()
    fn()
    bench.sync()
    first = time.perf_counter() - t0
    if first < slow:
        return bench.time(fn, warmup=0, min_time=0.25)
    if bench.quick:
        return first
    return float(np.median([first] + [bench.time(fn, repeat=1, warmup=0) for _ in range(2)]))


def _free(backend) -> None:
    pool = getattr(getattr(backend, "xp", None), "get_default_memory_pool", None)
    if pool is not None:
        pool().free_all_blocks()


def _device_name(backend) -> str:
    try:
        xp = backend.xp
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # pragma: no cover - depends on the machine
        return "unknown GPU"


def bench_int8_gemm(bench: Bench, backend, ci8, rng: np.random.Generator, n: int = GEMM_N) -> float | None:
    """The card's plain int8 GEMM rate (multiply-adds per second), cuBLAS int8 -> int32."""
    xp = backend.xp
    a8 = backend.asarray(rng.integers(-128, 127, size=(n, n), dtype=np.int8, endpoint=True))
    b8 = backend.asarray(rng.integers(-128, 127, size=(n, n), dtype=np.int8, endpoint=True))
    try:
        t = _time(bench, lambda: ci8.int8_gemm(a8, b8))
    except Exception as exc:  # pragma: no cover - needs a GPU
        bench.log(f"  int8 GEMM failed: {type(exc).__name__}: {exc}")
        return None
    rate = n ** 3 / t
    bench.record(f"int8 GEMM {n}^3 (cuBLAS, int32 acc)", t, None, None, n=n, int8_tmacs=rate / 1e12,
                 int8_tops=2 * rate / 1e12)
    del a8, b8, xp
    _free(backend)
    return rate


def _baselines(backend, ci8, bits: int) -> list[tuple[str, Callable]]:
    out: list[tuple[str, Callable]] = []
    mp = getattr(backend, "matmul_path", None)
    paths = [p.name for p in getattr(backend, "_matmul_paths", [])]
    if mp is not None and "simt" in paths:
        out.append(("SIMT kernel", lambda a, b: mp(a, b, 0, bits, path="simt")))
    has_limb = mp is not None and "limb-f64" in paths
    if has_limb:
        # the backend's own float64 fast path: Karatsuba on 22/20/22-bit limbs (5 GEMM-equivalents)
        # for Z_2^64, two 16-bit limbs (3 products) for Z_2^32
        label = "f64 limbs, Karatsuba 5 GEMMs (limb-f64)" if bits == 64 else "f64 limbs, 3 products (limb-f64)"
        out.append((label, lambda a, b: mp(a, b, 0, bits, path="limb-f64")))
    if bits == 64 or not has_limb:
        # the schoolbook six-product method on 22-bit limbs that issue 7 compares against
        label = "f64 6-product limbs" if bits == 64 else "f64 limbs, 3 products (ref impl)"
        out.append((label, lambda a, b: ci8.f64_limb6_matmul(a, b, bits)))
    out.append(("f64 16-bit blocks, 10 products (CrypTen)", lambda a, b: ci8.f64_blocks16_matmul(a, b, bits)))
    return out


def bench_ring_matmul(bench: Bench, backend, ci8, rng: np.random.Generator, bits: int, shape,
                      int8_rate: float | None) -> None:
    from ..backend.int8_limbs import choose_mode, int8_plan

    M, K, N = shape
    xp = backend.xp
    a = backend.asarray(_rand(rng, bits, (M, K)))
    b = backend.asarray(_rand(rng, bits, (K, N)))
    plan = int8_plan(bits)
    label = f"matmul Z_2^{bits} {M}x{K}x{N}"
    try:
        ref_tc = ci8.int8_matmul(a, b, bits)
        t_tc = _time(bench, lambda: ci8.int8_matmul(a, b, bits))
    except Exception as exc:  # pragma: no cover - needs a GPU
        bench.log(f"  {label}: int8 tensor-core path failed: {type(exc).__name__}: {exc}")
        return
    macs = M * K * N
    extra: dict[str, Any] = {"bits": bits, "M": M, "K": K, "N": N, "mode": choose_mode(M, N, K, bits),
                             "ring_tmacs": macs / t_tc / 1e12, "int8_products": plan.products}
    if int8_rate:
        ideal = int8_rate / plan.products
        extra.update(ideal_tmacs=ideal / 1e12, frac_of_ideal=(macs / t_tc) / ideal)
    sel = getattr(backend, "select_matmul_path", None)
    if sel is not None:
        try:
            extra["dispatch"] = sel(0, bits, M, N, K, 1)
        except Exception:  # pragma: no cover
            pass
    simt_out = None
    for name, fn in _baselines(backend, ci8, bits):
        try:
            out = fn(a, b)
            t_b = _time(bench, lambda: fn(a, b))
        except Exception as exc:  # pragma: no cover - needs a GPU
            bench.log(f"  {label}: baseline {name} failed: {type(exc).__name__}: {exc}")
            continue
        if name == "SIMT kernel":
            simt_out = out
        exact = bool(xp.array_equal(out, ref_tc))
        bench.record(f"{label} int8-tc vs {name.split(' (')[0]}", t_tc, name, t_b, exact=exact,
                     baseline_tmacs=macs / t_b / 1e12, **extra)
        del out
        _free(backend)
    if simt_out is None:
        bench.log(f"  {label}: no SIMT reference on this backend; exactness checked against the baselines only")
    del a, b, ref_tc
    _free(backend)


def run(bench: Bench) -> None:
    if bench.device != "cuda":
        bench.log("ring-tc: GPU-only suite (tensor-core int8 matmul); skipped on the CPU")
        return
    from ..backend import cuda_int8 as ci8

    backend = get_backend("cuda")
    bench.log(f"  device: {_device_name(backend)}; int8 wrap probe: "
              f"{'wraps' if ci8.wrap_probe() else 'does NOT wrap (exact chunks)'}")
    rng = np.random.default_rng()
    rate = bench_int8_gemm(bench, backend, ci8, rng)
    for bits in (64, 32):
        for shape in SHAPES:
            bench_ring_matmul(bench, backend, ci8, rng, bits, shape, rate)
