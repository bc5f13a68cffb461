"""Exact ring matmul (CPU float64-limb method) against Python-int references."""

from __future__ import annotations

import numpy as np
import pytest

from hecrypt.backend.cpu import KARATSUBA64_KMAX, limb_plan
from hecrypt.ring import Z2_32, Z2_64, Zq

from _ringutil import as_int, rand

RINGS = [Z2_64, Z2_32, Zq(501337), Zq((1 << 61) - 1), Zq((1 << 62) - 57)]


def ref_matmul(a, b, M):
    return np.matmul(as_int(a), as_int(b)) % M


def test_limb_plan_exactness_limits():
    assert KARATSUBA64_KMAX == 1024  # the CPU Z_2^64 path (Karatsuba on 22/20/22-bit limbs)
    # worst per-index terms of that path: |a0 b2 + a2 b0| <= 2^43 and |(a0+a1)(b0+b1)| <= (2^21+2^19)^2
    assert max(2**43, (2**21 + 2**19) ** 2) * KARATSUBA64_KMAX <= 2**53 < 2**43 * (KARATSUBA64_KMAX + 1)
    p64 = limb_plan(64)
    assert (p64.nlimbs, p64.width, p64.kmax) == (3, 22, 1024)
    assert p64.gemm_equivalents == 6
    p32 = limb_plan(32)
    assert p32.gemm_equivalents == 3 and p32.kmax >= 1 << 21
    pq = limb_plan(64, (1 << 62) - 57)
    assert pq.ndiag == 5 and pq.kmax >= 1024
    # the bound the plan relies on: worst diagonal * kmax stays below 2^53
    for p in (p64, p32, pq):
        worst = max(sum(p.bounds[i] * p.bounds[d - i] for i in range(p.nlimbs) if 0 <= d - i < p.nlimbs)
                    for d in range(p.ndiag))
        assert worst * p.kmax <= 2**53 < worst * (p.kmax + 1)


@pytest.mark.parametrize("ring", RINGS, ids=str)
@pytest.mark.parametrize("mkn", [(1, 1, 1), (3, 5, 4), (17, 33, 9), (5, 1024, 3), (4, 1025, 5), (2, 4097, 3)],
                         ids=lambda t: "x".join(map(str, t)))
def test_matmul_bit_exact(ring, mkn, rng):
    m, k, n = mkn
    a, b = rand(ring, rng, (m, k)), rand(ring, rng, (k, n))
    np.testing.assert_array_equal(as_int(ring.matmul(a, b)), ref_matmul(a, b, ring.modulus))


def test_matmul_extreme_values_at_limit():
    """Operands at the ring's extremes (largest-magnitude limbs) with K exactly at and past the limit."""
    # 2^63 + 2^21 makes both a0 and a2 -2^21 (the worst D2 term); others stress a1 and carries
    extremes = [2**63, 2**63 - 1, 2**64 - 1, 2**63 + 2**21, 2**63 + 2**21 + (2**19 << 22),
                2**62 + 2**41 + 2**20, (2**21 - 1) | (2**19 << 22), 2**63 - 2**21]
    for k in (1024, 1025):
        for fa in extremes:
            a = np.full((1, k), fa, dtype=np.uint64)
            b = np.array([extremes], dtype=np.uint64).repeat(k, axis=0)
            np.testing.assert_array_equal(as_int(Z2_64.matmul(a, b)), ref_matmul(a, b, 1 << 64))
    q = (1 << 62) - 57
    for k in (1024, 1025):
        a = np.full((2, k), (q - 1) // 2, dtype=np.uint64)
        b = np.full((k, 2), (q + 1) // 2, dtype=np.uint64)
        np.testing.assert_array_equal(as_int(Zq(q).matmul(a, b)), ref_matmul(a, b, q))


@pytest.mark.parametrize("ring", [Z2_64, Z2_32, Zq(501337)], ids=str)
def test_batched_matmul_broadcasts_like_numpy(ring, rng):
    a = rand(ring, rng, (2, 3, 4, 5))
    b = rand(ring, rng, (3, 5, 6))
    got = ring.matmul(a, b)
    assert got.shape == (2, 3, 4, 6) and got.dtype == ring.dtype
    np.testing.assert_array_equal(as_int(got), ref_matmul(a, b, ring.modulus))


def test_matmul_shape_errors(rng):
    a = rand(Z2_64, rng, (3, 4))
    with pytest.raises(ValueError, match="mismatch"):
        Z2_64.matmul(a, rand(Z2_64, rng, (5, 2)))
    with pytest.raises(ValueError, match="2 dimensions"):
        Z2_64.matmul(a, rand(Z2_64, rng, 4))
    with pytest.raises(ValueError, match="broadcast"):
        Z2_64.matmul(rand(Z2_64, rng, (2, 3, 4)), rand(Z2_64, rng, (3, 4, 2)))


@pytest.mark.parametrize("q", [501337, (1 << 40) + 15, (1 << 61) - 1], ids=str)
def test_zq_matmul_at_and_past_its_plan_limit(q, rng):
    plan = limb_plan(64, q)
    ring = Zq(q)
    for k in (plan.kmax, plan.kmax + 1):
        a = rand(ring, rng, (1, k))
        b = rand(ring, rng, (k, 2))
        a[0, : k // 2] = (q - 1) // 2  # largest-magnitude signed representatives
        b[: k // 2, 0] = (q + 1) // 2
        np.testing.assert_array_equal(as_int(ring.matmul(a, b)), ref_matmul(a, b, q))


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_matmul_empty_dimensions(ring):
    z = ring.matmul(np.zeros((3, 0), ring.dtype), np.zeros((0, 2), ring.dtype))
    assert z.shape == (3, 2) and z.dtype == ring.dtype and not z.any()
    assert ring.matmul(np.zeros((0, 3, 4), ring.dtype), np.zeros((4, 2), ring.dtype)).shape == (0, 3, 2)


def test_matmul_from_several_threads_is_exact(rng):
    """The CPU path keeps per-thread scratch buffers: concurrent products must not mix."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [(rand(Z2_64, rng, (40, 70 + i)), rand(Z2_64, rng, (70 + i, 30))) for i in range(6)]
    with ThreadPoolExecutor(3) as ex:
        got = list(ex.map(lambda ab: Z2_64.matmul(*ab), cases * 3))
    for (a, b), g in zip(cases * 3, got):
        np.testing.assert_array_equal(as_int(g), ref_matmul(a, b, 1 << 64))


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_serial_and_parallel_kernel_builds_agree(ring, rng, monkeypatch):
    """Every CPU kernel has a serial and a prange build (picked by size): same bits."""
    from hecrypt.backend._numba import DualKernel

    a, b = rand(ring, rng, (33, 70)), rand(ring, rng, (70, 20))
    out = {}
    for mode in ("serial", "parallel"):
        monkeypatch.setattr(DualKernel, "force", mode)
        out[mode] = (ring.matmul(a, b), ring.mul(a, a), ring.sum(a, axis=1))
    for s, p in zip(out["serial"], out["parallel"]):
        np.testing.assert_array_equal(s, p)
    np.testing.assert_array_equal(as_int(out["parallel"][0]), ref_matmul(a, b, ring.modulus))
