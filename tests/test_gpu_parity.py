"""Every CUDABackend op against CPUBackend, bit for bit, on fresh random inputs (GPU only).

Skipped cleanly when ``hecrypt.backend.cuda_status()`` says no GPU is usable.  Covers each
ring (Z_2^64, Z_2^32, Z_q with moduli needing 1, 2 and 3 limbs), odd shapes that are not
multiples of any tile, broadcasting, K at and past the exactness limits of the limb paths
(1024, 1025, 4097), batched and broadcast-batched matmul on every registered matmul path, and
the ChaCha20 keystream.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hecrypt.backend import cuda_status, get_backend
from hecrypt.backend.cpu import CPUBackend, limb_plan

_OK, _WHY = cuda_status()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _OK, reason=f"no usable GPU: {_WHY}")]

CPU = CPUBackend()

# (id, q, dtype, bits): q moduli needing 1, 2 and 3 limbs of 22 bits
RINGS = [
    ("Z2_64", 0, np.uint64, 64),
    ("Z2_32", 0, np.uint32, 32),
    ("Zq_501337", 501337, np.uint64, 64),
    ("Zq_41bit", (1 << 40) + 15, np.uint64, 64),
    ("Zq_62bit", (1 << 62) - 57, np.uint64, 64),
]
RING_IDS = [r[0] for r in RINGS]


@pytest.fixture(scope="module")
def gpu():
    return get_backend("cuda")


@pytest.fixture
def rng():
    return np.random.default_rng(int.from_bytes(os.urandom(8), "little"))


def _rand(rng, shape, q, dtype):
    if q:
        return rng.integers(0, q, size=shape, dtype=np.uint64)
    if dtype == np.uint32:
        return rng.integers(0, 1 << 32, size=shape, dtype=np.uint64).astype(np.uint32)
    return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64)


def _same(gpu, got, want):
    got = gpu.to_numpy(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------
# elementwise
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
@pytest.mark.parametrize("shapes", [((1000003,), (1000003,)), ((37, 129), (37, 129)), ((37, 129), ()),
                                    ((), (5, 7)), ((37, 1), (1, 129)), ((3, 1, 5), (4, 5))])
def test_binary_ops(gpu, rng, ring, shapes):
    _, q, dt, _ = ring
    a, b = _rand(rng, shapes[0], q, dt), _rand(rng, shapes[1], q, dt)
    ga, gb = gpu.asarray(a), gpu.asarray(b)
    for op in ("add", "sub", "mul"):
        _same(gpu, getattr(gpu, op)(ga, gb, q), getattr(CPU, op)(a, b, q))


@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
def test_neg_and_noncontiguous(gpu, rng, ring):
    _, q, dt, _ = ring
    a = _rand(rng, (129, 67), q, dt)
    b = _rand(rng, (67, 129), q, dt)
    ga, gb = gpu.asarray(a), gpu.asarray(b)
    _same(gpu, gpu.neg(ga, q), CPU.neg(a, q))
    _same(gpu, gpu.add(ga, gb.T, q), CPU.add(a, b.T, q))
    _same(gpu, gpu.mul(ga[::2], gb.T[::2], q), CPU.mul(a[::2], b.T[::2], q))
    z = a.copy()
    z[::3] = 0  # neg of zero stays zero in Z_q
    _same(gpu, gpu.neg(gpu.asarray(z), q), CPU.neg(z, q))


@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
@pytest.mark.parametrize("n", [2, 3, 7])
def test_nsum(gpu, rng, ring, n):
    _, q, dt, _ = ring
    xs = [_rand(rng, (1001, 33), q, dt) for _ in range(n)]
    _same(gpu, gpu.nsum([gpu.asarray(x) for x in xs], q), CPU.nsum(xs, q))


@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
@pytest.mark.parametrize("shape,axis", [((70001,), None), ((5, 1001), None), ((5, 1001), 0), ((5, 1001), 1),
                                        ((5, 1001), -1), ((3, 4, 5), 1), ((100001, 3), 0), ((3, 70001), 1),
                                        ((1, 1), 0), ((2, 3, 4), (0, 2))])
def test_sum(gpu, rng, ring, shape, axis):
    _, q, dt, _ = ring
    a = _rand(rng, shape, q, dt)
    got = gpu.sum(gpu.asarray(a), axis, q)
    if isinstance(axis, tuple):
        want = a
        for ax in sorted(axis, reverse=True):
            want = CPU.sum(want, ax, q)
    else:
        want = CPU.sum(a, axis, q)
    want = np.asarray(want, dtype=dt)
    _same(gpu, got, want)


@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
def test_truncate(gpu, rng, ring):
    _, q, dt, bits = ring
    a = _rand(rng, (1000, 17), q, dt)
    nbits = q.bit_length() if q else bits
    for f in sorted({1, 16, nbits - 1, int(rng.integers(1, nbits))}):
        _same(gpu, gpu.truncate(gpu.asarray(a), f, q), CPU.truncate(a, f, q))


@pytest.mark.parametrize("q", [3, 501337, (1 << 40) + 15, (1 << 62) - 57])
def test_reduce_u128(gpu, rng, q):
    lo = rng.integers(0, 1 << 64, size=100003, dtype=np.uint64)
    hi = rng.integers(0, 1 << 64, size=100003, dtype=np.uint64)
    _same(gpu, gpu.reduce_u128(gpu.asarray(lo), gpu.asarray(hi), q), CPU.reduce_u128(lo, hi, q))


# --------------------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((1, 1), (1, 1)),
    ((33, 65), (65, 17)),
    ((64, 64), (64, 64)),
    ((19, 1024), (1024, 23)),
    ((19, 1025), (1025, 23)),
    ((7, 4097), (4097, 5)),
    ((3, 17, 1025), (3, 1025, 9)),
    ((17, 33), (4, 33, 5)),
    ((2, 1, 13, 70), (3, 70, 11)),
    ((129, 130), (130, 131)),
]
MATMUL_IDS = ["x".join(map(str, a)) + "@" + "x".join(map(str, b)) for a, b in MATMUL_SHAPES]


@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=MATMUL_IDS)
def test_matmul_every_path(gpu, rng, ring, shapes):
    _, q, dt, bits = ring
    a, b = _rand(rng, shapes[0], q, dt), _rand(rng, shapes[1], q, dt)
    want = CPU.matmul(a, b, q, bits)
    ga, gb = gpu.asarray(a), gpu.asarray(b)
    _same(gpu, gpu.matmul(ga, gb, q, bits), want)
    for path in [p.name for p in gpu._matmul_paths]:
        if path == "int8-tc" and q:
            continue
        _same(gpu, gpu.matmul_path(ga, gb, q, bits, path=path), want)


@pytest.mark.parametrize("ring", RINGS, ids=RING_IDS)
def test_matmul_extreme_values(gpu, ring):
    """All operands at the signed extremes (largest limb sums) with K past the chunk limit."""
    _, q, dt, bits = ring
    K = limb_plan(bits, q).kmax + 3
    top = (q - 1) // 2 + 1 if q else 1 << (bits - 1)  # most negative signed representative
    a = np.full((9, K), top, dtype=dt)
    b = np.full((K, 7), top, dtype=dt)
    want = CPU.matmul(a, b, q, bits)
    for path in [p.name for p in gpu._matmul_paths]:
        if path == "int8-tc" and q:
            continue
        _same(gpu, gpu.matmul_path(gpu.asarray(a), gpu.asarray(b), q, bits, path=path), want)


def test_matmul_large_default_dispatch(gpu, rng):
    a = _rand(rng, (300, 1500), 0, np.uint64)
    b = _rand(rng, (1500, 257), 0, np.uint64)
    _same(gpu, gpu.matmul(gpu.asarray(a), gpu.asarray(b), 0, 64), CPU.matmul(a, b, 0, 64))


def test_matmul_path_report(gpu):
    rep = gpu.matmul_path_report()
    assert rep["Z_2^64"]["small (batch*M*N*K < 2^21)"] == "simt"
    assert rep["Z_2^64"]["large"] in ("int8-tc", "limb-f64")
    assert "simt" in rep["paths"]
    assert rep["limb-f64 self-check"] and all(rep["limb-f64 self-check"].values())


# --------------------------------------------------------------------------------------
# ChaCha20 and ring-level integration
# --------------------------------------------------------------------------------------
def _chacha20_numpy(key: bytes, nonce: bytes, counter: int, nblocks: int) -> np.ndarray:
    """RFC 8439 ChaCha20 blocks in plain numpy (uint32 words, counter < 2^32 - nblocks): the
    reference where the ``cryptography`` package (the CPU backend's keystream) is missing,
    e.g. on a GPU machine that cannot install it."""
    def rotl(x, n):
        return (x << np.uint32(n)) | (x >> np.uint32(32 - n))

    def qr(s, a, b, c, d):
        s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16)  # noqa: E702
        s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12)  # noqa: E702
        s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8)  # noqa: E702
        s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7)  # noqa: E702

    init = np.empty((16, nblocks), np.uint32)
    init[:4] = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], np.uint32)[:, None]
    init[4:12] = np.frombuffer(key, "<u4")[:, None]
    init[12] = (counter + np.arange(nblocks, dtype=np.uint64)).astype(np.uint32)
    init[13:16] = np.frombuffer(nonce, "<u4")[:, None]
    s = init.copy()
    for _ in range(10):
        qr(s, 0, 4, 8, 12); qr(s, 1, 5, 9, 13); qr(s, 2, 6, 10, 14); qr(s, 3, 7, 11, 15)  # noqa: E702
        qr(s, 0, 5, 10, 15); qr(s, 1, 6, 11, 12); qr(s, 2, 7, 8, 13); qr(s, 3, 4, 9, 14)  # noqa: E702
    return (s + init).T.reshape(-1)


def _cpu_keystream(key, nonce, counter, nblocks):
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _chacha20_numpy(key, nonce, counter, nblocks)
    return CPU.chacha20_keystream(key, nonce, counter, nblocks)


def test_chacha20_numpy_reference_is_rfc8439():
    """The fallback reference itself: RFC 8439 section 2.3.2 block (key 00..1f, counter 1)."""
    w = _chacha20_numpy(bytes(range(32)), bytes.fromhex("000000090000004a00000000"), 1, 2)
    assert w[0] == 0xE4E7F110 and w[15] == 0x4E3C50A2


@pytest.mark.parametrize("nblocks", [1, 1000, 4099])
def test_chacha20_keystream(gpu, rng, nblocks):
    key, nonce = os.urandom(32), os.urandom(12)
    counter = int(rng.integers(0, 1 << 31))
    _same(gpu, gpu.chacha20_keystream(key, nonce, counter, nblocks), _cpu_keystream(key, nonce, counter, nblocks))


def test_chacha20_rfc8439_vector(gpu):
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    w = gpu.to_numpy(gpu.chacha20_keystream(key, nonce, 1, 1))
    assert w[0] == 0xE4E7F110 and w[15] == 0x4E3C50A2


def test_ring_api_on_gpu_matches_cpu(gpu, rng):
    from hecrypt.ring import Z2_64, Zq

    for ring in (Z2_64, Zq(501337)):
        a = ring.from_int(rng.integers(-(1 << 40), 1 << 40, size=(40, 50)))
        b = ring.from_int(rng.integers(-(1 << 40), 1 << 40, size=(50, 30)))
        ga, gb = gpu.asarray(a), gpu.asarray(b)
        _same(gpu, ring.matmul(ga, gb), ring.matmul(a, b))
        _same(gpu, ring.mul_public(ga, -3), ring.mul_public(a, -3))
        _same(gpu, ring.sum_shares([ga, ga, ga]), ring.sum_shares([a, a, a]))
