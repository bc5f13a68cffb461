"""Ring kernels: hecrypt and the baseline a user would otherwise write, same sizes.

Ids: ``test_matmul[Z2_64-n1024]`` (hecrypt), ``test_matmul_baseline[uint64-n1024]``
(numpy/CuPy integer matmul), ``test_gemm_float64[n1024]`` (one float64 GEMM: the floor of
the limb method), ``test_add[Zq61-n2^24]`` and so on.
"""

from __future__ import annotations

import numpy as np
import pytest

from hecrypt import Stream, Z2_32, Z2_64, Zq

RINGS = {"Z2_64": Z2_64, "Z2_32": Z2_32, "Zq61": Zq((1 << 61) - 1), "Zq501337": Zq(501337)}
ELEMENTS = {"n2^20": 1 << 20, "n2^24": 1 << 24}


def _sample(rng, ring, shape):
    if ring.is_pow2:
        return rng.integers(0, 1 << ring.bits, size=shape, dtype=np.uint64).astype(ring.dtype)
    return rng.integers(0, ring.q, size=shape, dtype=np.uint64)


def _sizes(device):
    return [256, 512, 1024] + ([4096] if device == "cuda" else [])


@pytest.mark.parametrize("n", ELEMENTS.values(), ids=ELEMENTS.keys())
@pytest.mark.parametrize("ring", ["Z2_64", "Zq61"])
def test_add(run, backend, rng, ring, n):
    r = RINGS[ring]
    a, b = backend.asarray(_sample(rng, r, n)), backend.asarray(_sample(rng, r, n))
    run(lambda: r.add(a, b), elements=n, bytes_moved=24 * n)


@pytest.mark.parametrize("parties", [2, 3, 5], ids=lambda p: f"parties{p}")
@pytest.mark.parametrize("ring", ["Z2_64", "Zq61"])
def test_sum_shares(run, backend, rng, ring, parties):
    r, n = RINGS[ring], 1 << 24
    shares = [backend.asarray(_sample(rng, r, n)) for _ in range(parties)]
    run(lambda: r.sum_shares(shares), elements=n, parties=parties)


@pytest.mark.parametrize("ring", ["Z2_64", "Zq61"])
def test_truncate(run, backend, rng, ring):
    r, n = RINGS[ring], 1 << 24
    a = backend.asarray(_sample(rng, r, n))
    run(lambda: r.truncate(a, 16), elements=n, frac_bits=16)


@pytest.mark.parametrize("n", [256, 512, 1024, 4096], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("ring", ["Z2_64", "Z2_32", "Zq61", "Zq501337"])
def test_matmul(run, backend, device, rng, ring, n):
    if n not in _sizes(device):
        pytest.skip(f"n={n} only on a GPU")
    r = RINGS[ring]
    a, b = backend.asarray(_sample(rng, r, (n, n))), backend.asarray(_sample(rng, r, (n, n)))
    run(lambda: r.matmul(a, b), rounds=3 if n >= 1024 else None, n=n, macs=n ** 3)


@pytest.mark.parametrize("n", [256, 512, 1024, 4096], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", ["uint64", "uint32"])
def test_matmul_baseline(run, backend, device, rng, dtype, n):
    """numpy's (CPU) or CuPy's (GPU) integer matmul: wraps, so it is the exact baseline."""
    if n not in _sizes(device):
        pytest.skip(f"n={n} only on a GPU")
    a = backend.asarray(rng.integers(0, 1 << 63, size=(n, n), dtype=np.uint64).astype(dtype))
    b = backend.asarray(rng.integers(0, 1 << 63, size=(n, n), dtype=np.uint64).astype(dtype))
    run(lambda: backend.xp.matmul(a, b), rounds=1 if (n >= 1024 and device == "cpu") else 3, n=n, macs=n ** 3)


@pytest.mark.parametrize("n", [256, 512, 1024, 4096], ids=lambda n: f"n{n}")
def test_gemm_float64(run, backend, device, rng, n):
    if n not in _sizes(device):
        pytest.skip(f"n={n} only on a GPU")
    a, b = backend.asarray(rng.standard_normal((n, n))), backend.asarray(rng.standard_normal((n, n)))
    run(lambda: backend.xp.matmul(a, b), n=n, flops=2 * n ** 3)


@pytest.mark.parametrize("ring", ["Z2_64", "Z2_32", "Zq61"])
def test_csprng_uniform(run, device, ring):
    r, n = RINGS[ring], 1 << 22
    stream = Stream(device=device)
    run(lambda: stream.uniform(r, n), elements=n)


def test_csprng_floor_numpy_pcg64(benchmark):
    """numpy PCG64, the non-cryptographic floor for Z_2^64 words (CPU)."""
    g = np.random.PCG64()
    benchmark(lambda: g.random_raw(1 << 22))
