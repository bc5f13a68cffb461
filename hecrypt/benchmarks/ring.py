"""Suite ``ring``: the ring kernels against what a user would otherwise write.

Cases (hecrypt vs baseline, same run, same device):

* elementwise add and 3-way share sum at 2^24 elements, Z_2^64 and Z_q
  (baseline: numpy / CuPy ``a + b`` and ``(a + b) % q``); rows carry ``gbps`` (bytes moved
  per second: inputs read + output written);
* truncation by 16 fractional bits at 2^24 elements (baseline: the arithmetic shift of the
  signed view in numpy / CuPy, and ``where``-based signed shift for Z_q);
* ring matmul Z_2^64 at n = 256, 512, 1024 (and 4096 on a GPU): baseline numpy's ``uint64``
  matmul on the CPU (CuPy's on the GPU), checked equal to hecrypt's result; in the same run
  PyTorch's ``int64`` matmul (in the peers venv, where it exists; the kernel CrypTen relies
  on) and one float64 GEMM of the same size, each as its own row (``ratio`` keys:
  ``torch_over_hecrypt``, ``hecrypt_over_float64``); ``gmacs`` = ring multiply-adds per second / 1e9;
* without ``--quick`` also Z_2^32 and Z_q (q = 501337, the tutorial's modulus) at n = 512;
* CSPRNG throughput: ChaCha20 ``Stream.uniform`` for Z_2^64 and Z_q against numpy's PCG64
  (``random_raw``, the non-cryptographic floor) on the CPU, CuPy's generator on the GPU
  (rows carry ``gbps`` of output).

Inputs are public benchmark data from numpy's generator (never secrets).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..backend import get_backend
from ..ring import Z2_32, Z2_64, Stream, Zq
from ._harness import Bench
from .peers import run_peer

SUITE = "ring"
DESCRIPTION = ("ring kernels: elementwise add / n-way sum, truncation, Z_2^64 matmul (vs numpy/CuPy "
               "uint64, torch int64, float64 GEMM), ChaCha20 CSPRNG throughput")

Q_TUTORIAL = 501337
Q_BIG = (1 << 61) - 1  # a 61-bit prime

_TORCH_SNIPPET = """
import torch
torch.set_num_threads(ARGS["threads"])
g = torch.Generator().manual_seed(ARGS["seed"])
res = {}
for n in ARGS["sizes"]:
    a = torch.randint(-2**63, 2**63 - 1, (n, n), dtype=torch.int64, generator=g)
    b = torch.randint(-2**63, 2**63 - 1, (n, n), dtype=torch.int64, generator=g)
    res[str(n)] = median_time(lambda: torch.matmul(a, b), repeat=ARGS["repeat"], warmup=1)
emit({"torch": torch.__version__, "threads": torch.get_num_threads(), "s": res})
"""


def _time_adaptive(bench: Bench, fn, *, slow: float = 1.0) -> float:
    """Median time of ``fn``; calls slower than ``slow`` seconds are repeated less
    (1 run in quick mode, 3 otherwise, the first run counting as a sample)."""
    bench.sync()
    t0 = time.perf_counter()
    fn()
    bench.sync()
    first = time.perf_counter() - t0
    if first < slow:
        return bench.time(fn)
    if bench.quick:
        return first
    return float(np.median([first] + [bench.time(fn, repeat=1, warmup=0) for _ in range(2)]))


def _u64(rng: np.random.Generator, shape: Any, q: int = 0) -> np.ndarray:
    if q:
        return rng.integers(0, q, size=shape, dtype=np.uint64)
    return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64, endpoint=False)


def _gbps(nbytes: int, s: float | None) -> float | None:
    return (nbytes / s / 1e9) if s else None


# --------------------------------------------------------------------------------------
def bench_elementwise(bench: Bench, rng: np.random.Generator, n: int) -> None:
    be = get_backend(bench.device)
    xp = be.xp
    for ring, label in ((Z2_64, "Z2_64"), (Zq(Q_BIG), "Zq(2^61-1)")):
        q = ring.q
        shares = [be.asarray(_u64(rng, n, q)) for _ in range(3)]
        a, b = shares[0], shares[1]
        qq = xp.uint64(q) if q else None
        t_h = bench.time(lambda: ring.add(a, b))
        t_b = bench.time((lambda: a + b) if not q else (lambda: (a + b) % qq))
        base = "numpy a+b" if not q else "numpy (a+b)%q"
        base = base.replace("numpy", "cupy") if bench.device == "cuda" else base
        bench.record(f"add {label} n=2^{n.bit_length() - 1}", t_h, base, t_b,
                     elements=n, gbps=_gbps(3 * 8 * n, t_h), baseline_gbps=_gbps(3 * 8 * n, t_b))
        t_h = bench.time(lambda: ring.sum_shares(shares))
        if q:
            t_b = bench.time(lambda: (shares[0] + shares[1] + shares[2]) % qq)
            base = "numpy (a+b+c)%q"
        else:
            t_b = bench.time(lambda: shares[0] + shares[1] + shares[2])
            base = "numpy a+b+c"
        base = base.replace("numpy", "cupy") if bench.device == "cuda" else base
        bench.record(f"sum 3 shares {label} n=2^{n.bit_length() - 1}", t_h, base, t_b,
                     elements=n, parties=3, gbps=_gbps(4 * 8 * n, t_h), baseline_gbps=_gbps(4 * 8 * n, t_b))
        del shares, a, b


def bench_truncate(bench: Bench, rng: np.random.Generator, n: int, f: int = 16) -> None:
    be = get_backend(bench.device)
    xp = be.xp
    a = be.asarray(_u64(rng, n))
    t_h = bench.time(lambda: Z2_64.truncate(a, f))
    t_b = bench.time(lambda: (a.view(xp.int64) >> xp.int64(f)).view(xp.uint64))
    lib = "cupy" if bench.device == "cuda" else "numpy"
    bench.record(f"truncate Z2_64 f={f} n=2^{n.bit_length() - 1}", t_h, f"{lib} int64 >> f", t_b,
                 elements=n, gbps=_gbps(2 * 8 * n, t_h))
    ring = Zq(Q_BIG)
    a = be.asarray(_u64(rng, n, Q_BIG))
    half, qs = xp.uint64((Q_BIG - 1) // 2), xp.int64(Q_BIG)

    def base_q():
        s = a.astype(xp.int64)
        s = xp.where(a > half, s - qs, s) >> xp.int64(f)
        return xp.where(s < 0, s + qs, s).astype(xp.uint64)

    t_h = bench.time(lambda: ring.truncate(a, f))
    t_b = bench.time(base_q)
    bench.record(f"truncate Zq(2^61-1) f={f} n=2^{n.bit_length() - 1}", t_h, f"{lib} where/shift", t_b,
                 elements=n, gbps=_gbps(2 * 8 * n, t_h))


def _torch_times(bench: Bench, sizes: list[int]) -> dict[int, float]:
    if bench.device != "cpu":
        return {}
    # as many threads as hecrypt's BLAS/Numba get: $OMP_NUM_THREADS when set, else every core
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    res = run_peer(_TORCH_SNIPPET, {"sizes": sizes, "threads": threads, "seed": 1,
                                    "repeat": 3 if bench.quick else 5},
                   timeout=600, log=bench.log)
    if res is None:
        return {}
    bench.log(f"  (torch {res.get('torch')} int64 matmul in the peers venv, {res.get('threads')} threads, "
              f"n={','.join(map(str, sizes))})")
    return {int(k): float(v) for k, v in res["s"].items()}


def bench_matmul(bench: Bench, rng: np.random.Generator, sizes: list[int]) -> None:
    be = get_backend(bench.device)
    xp = be.xp
    lib = "cupy" if bench.device == "cuda" else "numpy"
    for n in sizes:
        A, B = _u64(rng, (n, n)), _u64(rng, (n, n))
        a, b = be.asarray(A), be.asarray(B)
        t_h = bench.time(lambda: Z2_64.matmul(a, b), min_time=0.5 if not bench.quick else 0.0)
        ours = Z2_64.matmul(a, b)
        ref = xp.matmul(a, b)  # wraps mod 2^64: the user's exact baseline
        exact = bool((ours == ref).all())
        t_b = _time_adaptive(bench, lambda: xp.matmul(a, b))
        del ref
        gm = n ** 3 / t_h / 1e9
        bench.record(f"matmul Z2_64 n={n}", t_h, f"{lib} uint64 matmul", t_b, n=n, gmacs=gm, exact=exact)
        af, bf = a.view(xp.int64).astype(xp.float64), b.view(xp.int64).astype(xp.float64)
        t_f = bench.time(lambda: xp.matmul(af, bf), min_time=0.3 if not bench.quick else 0.0)
        bench.record(f"matmul Z2_64 n={n} [vs one float64 GEMM]", t_h, f"{lib} float64 matmul", t_f, n=n,
                     hecrypt_over_float64=t_h / t_f)
        torch_s = _torch_times(bench, [n])  # per size, right after hecrypt's: a noisy machine drifts
        if n in torch_s:
            bench.record(f"matmul Z2_64 n={n} [vs torch int64]", t_h, "torch int64 matmul (peer)", torch_s[n],
                         n=n, torch_over_hecrypt=torch_s[n] / t_h)
        del a, b, af, bf


def bench_matmul_other_rings(bench: Bench, rng: np.random.Generator, n: int) -> None:
    be = get_backend(bench.device)
    xp = be.xp
    lib = "cupy" if bench.device == "cuda" else "numpy"
    A = rng.integers(0, 1 << 32, size=(n, n), dtype=np.uint64).astype(np.uint32)
    B = rng.integers(0, 1 << 32, size=(n, n), dtype=np.uint64).astype(np.uint32)
    a, b = be.asarray(A), be.asarray(B)
    t_h = bench.time(lambda: Z2_32.matmul(a, b))
    exact = bool((Z2_32.matmul(a, b) == xp.matmul(a, b)).all())
    t_b = _time_adaptive(bench, lambda: xp.matmul(a, b))
    bench.record(f"matmul Z2_32 n={n}", t_h, f"{lib} uint32 matmul", t_b, n=n, gmacs=n ** 3 / t_h / 1e9,
                 exact=exact)
    ring = Zq(Q_TUTORIAL)
    a, b = be.asarray(_u64(rng, (n, n), Q_TUTORIAL)), be.asarray(_u64(rng, (n, n), Q_TUTORIAL))
    qq = xp.uint64(Q_TUTORIAL)  # q^2 * n < 2^64 here, so the plain product is exact before % q
    t_h = bench.time(lambda: ring.matmul(a, b))
    exact = bool((ring.matmul(a, b) == xp.matmul(a, b) % qq).all())
    t_b = _time_adaptive(bench, lambda: xp.matmul(a, b) % qq)
    bench.record(f"matmul Zq({Q_TUTORIAL}) n={n}", t_h, f"{lib} uint64 matmul % q", t_b, n=n,
                 gmacs=n ** 3 / t_h / 1e9, exact=exact)


def bench_csprng(bench: Bench, n: int) -> None:
    be = get_backend(bench.device)
    xp = be.xp
    stream = Stream(device=bench.device)  # os.urandom key, as in production
    for ring, label, nbytes in ((Z2_64, "Z2_64", 8), (Zq(Q_BIG), "Zq(2^61-1)", 8)):
        t_h = bench.time(lambda: stream.uniform(ring, n))
        if bench.device == "cuda":
            g = xp.random.default_rng(1)
            base, fn = "cupy rng (non-crypto)", (lambda: g.random(n))
        else:
            pcg = np.random.PCG64(1)
            base, fn = "numpy PCG64 (non-crypto)", (lambda: pcg.random_raw(n))
        try:
            t_b = bench.time(fn)
        except Exception as exc:  # noqa: BLE001 - the baseline is optional
            bench.log(f"  (baseline {base} failed: {exc})")
            base, t_b = None, None
        bench.record(f"csprng chacha20 uniform {label} n=2^{n.bit_length() - 1}", t_h, base, t_b,
                     elements=n, gbps=_gbps(nbytes * n, t_h), baseline_gbps=_gbps(8 * n, t_b),
                     keystream_bytes_per_element=8 if ring.is_pow2 else 16)


def run(bench: Bench) -> None:
    rng = np.random.default_rng()  # public benchmark inputs only
    gpu = bench.device == "cuda"
    n_elem = 1 << 24
    bench_elementwise(bench, rng, n_elem)
    bench_truncate(bench, rng, n_elem)
    sizes = [256, 512, 1024] + ([4096] if gpu else [])
    bench_matmul(bench, rng, sizes)
    if not bench.quick:
        bench_matmul_other_rings(bench, rng, 512)
    bench_csprng(bench, 1 << (22 if bench.quick else 24))
