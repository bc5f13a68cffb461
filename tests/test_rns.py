"""RNS pointwise arithmetic and fast basis conversion against Python integers (+ GPU parity)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hecrypt.backend import cuda_status
from hecrypt.backend import he_cpu as H
from hecrypt.backend.ntt import ntt_primes


def rand_poly(rng, qs, N, batch=()):
    return np.stack([rng.integers(0, q, batch + (N,), dtype=np.uint64) for q in qs], axis=-2)


def per_limb(f, qs, *arrays):
    """Apply f(x, y, ..., q) limb by limb on Python ints; result uint64."""
    shape = np.broadcast_shapes(*(x.shape for x in arrays))
    out = np.empty(shape, dtype=object)
    xs = [np.broadcast_to(x, shape).astype(object) for x in arrays]
    for l, q in enumerate(qs):
        out[..., l, :] = f(*[x[..., l, :] for x in xs], q)
    return out.astype(np.uint64)


# largest primes allowed, a 60/40-bit chain, and small odd non-prime moduli (rns ops only
# need odd moduli below 2**61)
MODULI = {
    "61bit": ntt_primes([61, 61, 61], 64),
    "chain": ntt_primes([60, 40, 40, 60], 64),
    "odd": [3, 2**61 - 3, 1000001],
}


@pytest.fixture(params=sorted(MODULI))
def qs(request):
    return MODULI[request.param]


def test_add_sub_neg(rng, qs):
    N = 128
    qa = np.array(qs, dtype=np.uint64)
    a, b = rand_poly(rng, qs, N, (3,)), rand_poly(rng, qs, N, (3,))
    np.testing.assert_array_equal(H.rns_add(a, b, qa), per_limb(lambda x, y, q: (x + y) % q, qs, a, b))
    np.testing.assert_array_equal(H.rns_sub(a, b, qa), per_limb(lambda x, y, q: (x - y) % q, qs, a, b))
    np.testing.assert_array_equal(H.rns_neg(a, qa), per_limb(lambda x, q: (-x) % q, qs, a))
    z = np.zeros_like(a)
    np.testing.assert_array_equal(H.rns_neg(z, qs), z)  # -0 = 0, not q


def test_mul_fma_scalar(rng, qs):
    N = 96
    qa = np.array(qs, dtype=np.uint64)
    a, b, c = (rand_poly(rng, qs, N, (2,)) for _ in range(3))
    np.testing.assert_array_equal(H.rns_mul(a, b, qa), per_limb(lambda x, y, q: x * y % q, qs, a, b))
    np.testing.assert_array_equal(
        H.rns_fma(c, a, b, qa), per_limb(lambda z, x, y, q: (z + x * y) % q, qs, c, a, b)
    )
    s = [int(v) for v in rng.integers(0, 2**63, len(qs), dtype=np.uint64)]
    got = H.rns_mul_scalar(a, s, qa)
    for l, q in enumerate(qs):
        assert (got[:, l].astype(object) == a[:, l].astype(object) * s[l] % q).all()
    # extremes: q-1 times q-1 plus q-1
    m = np.stack([np.full(N, q - 1, dtype=np.uint64) for q in qs])
    np.testing.assert_array_equal(H.rns_fma(m, m, m, qa), per_limb(lambda z, x, y, q: (z + x * y) % q, qs, m, m, m))


def test_broadcast_batch(rng):
    qs = MODULI["chain"]
    N = 64
    a = rand_poly(rng, qs, N, (2, 3))
    p = rand_poly(rng, qs, N)  # plaintext without batch axes
    ref = per_limb(lambda x, y, q: x * y % q, qs, a, p)
    np.testing.assert_array_equal(H.rns_mul(a, p, qs), ref)
    np.testing.assert_array_equal(H.rns_mul(p, a, qs), ref)
    mid = rand_poly(rng, qs, N, (1, 3))  # general batch broadcast
    np.testing.assert_array_equal(H.rns_add(a, mid, qs), per_limb(lambda x, y, q: (x + y) % q, qs, a, mid))
    acc = a.copy()
    assert H.rns_fma(acc, a, p, qs, out=acc) is acc
    np.testing.assert_array_equal(acc, per_limb(lambda z, x, y, q: (z + x * y) % q, qs, a, a, p))


def test_rns_errors(rng):
    qs = MODULI["chain"]
    a = rand_poly(rng, qs, 32)
    with pytest.raises(ValueError):
        H.rns_add(a, a, qs[:3])
    with pytest.raises(ValueError):
        H.rns_add(a, a[:, :16], qs)
    with pytest.raises(ValueError):
        H.rns_mul(a, a, [q + 1 for q in qs])  # even moduli
    with pytest.raises(ValueError):
        H.rns_mul(a, a, [(1 << 62) + 1] * 4)
    with pytest.raises(TypeError):
        H.rns_add(a, a.astype(np.int64), qs)
    with pytest.raises(ValueError):
        H.rns_mul_scalar(a, [1, 2], qs)
    with pytest.raises(ValueError):
        H.rns_add(rand_poly(rng, qs, 32, (2,)), rand_poly(rng, qs, 32, (3,)), qs)


@pytest.mark.parametrize("K", [1, 7, 63, 64, 130])
def test_rns_dot(rng, K):
    """sum_k a[k] * b[k] with broadcast batches; K > 63 exercises the intermediate reduction."""
    qs = MODULI["61bit"]
    N = 16
    a = rand_poly(rng, qs, N, (K, 3, 1))
    b = rand_poly(rng, qs, N, (K, 2))
    got = H.rns_dot(a, b, qs)
    assert got.shape == (3, 2, len(qs), N)
    A = np.broadcast_to(a, (K, 3, 2, len(qs), N)).astype(object)
    B = np.broadcast_to(b[:, None], (K, 3, 2, len(qs), N)).astype(object)
    ref = np.empty(got.shape, dtype=object)
    for l, q in enumerate(qs):
        ref[..., l, :] = (A[..., l, :] * B[..., l, :]).sum(axis=0) % q
    np.testing.assert_array_equal(got, ref.astype(np.uint64))
    # all q-1: the largest lazy sums
    m = np.stack([np.full((K, N), q - 1, dtype=np.uint64) for q in qs], axis=-2)
    np.testing.assert_array_equal(
        H.rns_dot(m, m, qs), np.stack([np.full(N, K * (q - 1) ** 2 % q, dtype=np.uint64) for q in qs])
    )


def test_rns_dot_matches_fma_chain(rng):
    qs = MODULI["chain"]
    N = 64
    a = rand_poly(rng, qs, N, (5, 2))
    b = rand_poly(rng, qs, N, (5,))
    acc = H.rns_mul(a[0], b[0], qs)
    for k in range(1, 5):
        acc = H.rns_fma(acc, a[k], b[k], qs)
    np.testing.assert_array_equal(H.rns_dot(a, b[:, None], qs), acc)


def test_rns_dot_errors(rng):
    qs = MODULI["chain"]
    a = rand_poly(rng, qs, 16, (3,))
    with pytest.raises(ValueError):
        H.rns_dot(a, a[:2], qs)
    with pytest.raises(ValueError):
        H.rns_dot(a[0], a[0], qs)
    with pytest.raises(ValueError):
        H.rns_dot(rand_poly(rng, qs, 16, (3, 2)), rand_poly(rng, qs, 16, (3, 3)), qs)
    out = np.empty((len(qs), 16), dtype=np.uint64)
    assert H.rns_dot(a, a, qs, out=out) is out


# ---------------------------------------------------------------------------------------
# fast basis conversion
# ---------------------------------------------------------------------------------------
def check_base_convert(a, y, from_qs, to_qs):
    """Every coefficient: y = x + u Q (mod p_j) for one u in [0, Lf - 1], same u for all j."""
    Q = math.prod(from_qs)
    hats = [(Q // q) * pow(Q // q, -1, q) for q in from_qs]
    a2 = a.reshape(-1, len(from_qs), a.shape[-1])
    y2 = y.reshape(-1, len(to_qs), y.shape[-1])
    seen = set()
    for b in range(a2.shape[0]):
        for n in range(a2.shape[-1]):
            x = sum(int(a2[b, i, n]) * h for i, h in enumerate(hats)) % Q
            us = [
                u for u in range(len(from_qs))
                if all(int(y2[b, j, n]) == (x + u * Q) % p for j, p in enumerate(to_qs))
            ]  # fmt: skip
            assert len(us) == 1, (b, n, us)
            seen.add(us[0])
    return seen


@pytest.mark.parametrize("lf,lt", [(1, 2), (3, 1), (4, 2), (9, 3)])
def test_base_convert_error_bound(rng, lf, lt):
    N = 64
    from_qs = ntt_primes([60] * lf, N)
    to_qs = ntt_primes([61] * lt, N, exclude=from_qs)
    a = rand_poly(rng, from_qs, N, (2,))
    y = H.base_convert(a, from_qs, to_qs)
    assert y.shape == (2, lt, N)
    seen = check_base_convert(a, y, from_qs, to_qs)
    if lf == 1:
        assert seen == {0}  # a single limb converts exactly
    # the sum of the digits exceeds Q for uniform inputs, so u > 0 does occur
    if lf >= 3:
        assert max(seen) >= 1


def test_base_convert_small_values_exact(rng):
    """Values much smaller than Q: the result is x itself unless the digits' sum wraps."""
    N = 32
    from_qs = ntt_primes([40, 40, 40], N)
    to_qs = ntt_primes([50, 50], N)
    x = [int(v) for v in rng.integers(0, 2**60, N, dtype=np.uint64)]
    a = np.array([[v % q for v in x] for q in from_qs], dtype=np.uint64)
    y = H.base_convert(a, np.array(from_qs, dtype=np.uint64), to_qs)
    check_base_convert(a, y, from_qs, to_qs)


def test_base_convert_errors(rng):
    qs = ntt_primes([40, 40], 32)
    a = rand_poly(rng, qs, 32)
    with pytest.raises(ValueError):
        H.base_convert(a, qs[:1], [97])
    with pytest.raises(ValueError):
        H.base_convert(a, [qs[0], qs[0]], [97])
    with pytest.raises(ValueError):
        H.base_convert(a, qs, [])
    with pytest.raises(ValueError):
        H.base_convert(a, qs, [1 << 62])


# ---------------------------------------------------------------------------------------
# GPU parity
# ---------------------------------------------------------------------------------------
@pytest.fixture
def cp():
    ok, why = cuda_status()
    if not ok:
        pytest.skip(why)
    import cupy

    return cupy


@pytest.mark.gpu
def test_gpu_rns_parity(rng, cp):
    from hecrypt.backend import he_cuda

    N = 4096
    qs = ntt_primes([60, 40, 40, 60, 61], N)
    qa = np.array(qs, dtype=np.uint64)
    a, b, c = (rand_poly(rng, qs, N, (2,)) for _ in range(3))
    p = rand_poly(rng, qs, N)
    ga, gb, gc, gp = (cp.asarray(x) for x in (a, b, c, p))
    g = cp.asnumpy
    np.testing.assert_array_equal(g(he_cuda.rns_add(ga, gb, qa)), H.rns_add(a, b, qa))
    np.testing.assert_array_equal(g(he_cuda.rns_sub(ga, gb, qa)), H.rns_sub(a, b, qa))
    np.testing.assert_array_equal(g(he_cuda.rns_neg(ga, qa)), H.rns_neg(a, qa))
    np.testing.assert_array_equal(g(he_cuda.rns_mul(ga, gb, qa)), H.rns_mul(a, b, qa))
    np.testing.assert_array_equal(g(he_cuda.rns_mul(ga, gp, qa)), H.rns_mul(a, p, qa))
    np.testing.assert_array_equal(g(he_cuda.rns_fma(gc, ga, gb, qa)), H.rns_fma(c, a, b, qa))
    s = [int(v) for v in rng.integers(0, 2**63, len(qs), dtype=np.uint64)]
    np.testing.assert_array_equal(g(he_cuda.rns_mul_scalar(ga, s, qa)), H.rns_mul_scalar(a, s, qa))
    k = rand_poly(rng, qs, N, (70, 2))
    d = rand_poly(rng, qs, N, (70, 3, 1))
    np.testing.assert_array_equal(g(he_cuda.rns_dot(cp.asarray(d), cp.asarray(k), qa)), H.rns_dot(d, k, qa))


@pytest.mark.gpu
@pytest.mark.parametrize("lf,lt", [(1, 2), (4, 2), (9, 3)])
def test_gpu_base_convert_parity(rng, cp, lf, lt):
    from hecrypt.backend import he_cuda

    N = 8192
    from_qs = ntt_primes([60] * lf, N)
    to_qs = ntt_primes([61] * lt, N, exclude=from_qs)
    a = rand_poly(rng, from_qs, N, (2,))
    got = he_cuda.base_convert(cp.asarray(a), from_qs, to_qs)
    np.testing.assert_array_equal(cp.asnumpy(got), H.base_convert(a, from_qs, to_qs))
