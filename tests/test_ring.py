"""Ring arithmetic on the CPU backend against Python-int references (bit for bit)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hecrypt.errors import MissingShareError, RingMismatchError
from hecrypt.ring import Z2_32, Z2_64, Ring, Zq, ring_from_name

from _ringutil import as_int, rand

Q_TUTORIAL = 501337
Q_BIG = (1 << 61) - 1  # Mersenne prime, just under the 2^62 limit
Q_MAX = (1 << 62) - 57  # largest odd modulus class we accept (prime)
RINGS = [Z2_64, Z2_32, Zq(Q_TUTORIAL), Zq(Q_BIG), Zq(Q_MAX), Zq(3)]


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_elementwise_ops_match_python_ints(ring, rng):
    M = ring.modulus
    shape = (7, 13)
    a, b = rand(ring, rng, shape), rand(ring, rng, shape)
    assert a.any() and b.any()
    A, B = as_int(a), as_int(b)
    np.testing.assert_array_equal(as_int(ring.add(a, b)), (A + B) % M)
    np.testing.assert_array_equal(as_int(ring.sub(a, b)), (A - B) % M)
    np.testing.assert_array_equal(as_int(ring.neg(a)), (-A) % M)
    np.testing.assert_array_equal(as_int(ring.mul(a, b)), (A * B) % M)
    for c in (3, -5, M - 1, 2**70 + 11):
        np.testing.assert_array_equal(as_int(ring.mul_public(a, c)), (A * c) % M)
    carr = rng.integers(-1000, 1000, size=shape)
    np.testing.assert_array_equal(as_int(ring.mul_public(a, carr)), (A * carr.astype(object)) % M)
    for axis in (None, 0, 1):
        got = as_int(ring.sum(a, axis=axis))
        want = (A.sum(axis=axis)) % M
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_outputs_are_reduced_and_typed(ring, rng):
    a, b = rand(ring, rng, 64), rand(ring, rng, 64)
    for out in (ring.add(a, b), ring.sub(a, b), ring.mul(a, b), ring.neg(a)):
        assert out.dtype == ring.dtype
        if not ring.is_pow2:
            assert int(out.max()) < ring.q


@pytest.mark.parametrize("ring", RINGS, ids=str)
@pytest.mark.parametrize("n", [2, 3, 5])
def test_sum_shares_reconstructs(ring, n, rng):
    shares = [rand(ring, rng, (4, 9)) for _ in range(n)]
    want = sum(as_int(s) for s in shares) % ring.modulus
    np.testing.assert_array_equal(as_int(ring.sum_shares(shares)), want)


def test_sum_shares_rejects_bad_input(rng):
    with pytest.raises(MissingShareError):
        Z2_64.sum_shares([])
    with pytest.raises(ValueError, match="shape"):
        Z2_64.sum_shares([rand(Z2_64, rng, 3), rand(Z2_64, rng, 4)])
    with pytest.raises(RingMismatchError):
        Z2_64.sum_shares([rand(Z2_64, rng, 3), rand(Z2_32, rng, 3)])


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_truncate_is_floor_of_signed_representative(ring, rng):
    a = rand(ring, rng, 200)
    M = ring.modulus
    for f in (1, 7, 16):
        if f >= ring.bits:
            continue
        got = as_int(ring.truncate(a, f))
        s = [int(x) - M if int(x) > (M - 1) // 2 else int(x) for x in a]
        want = np.array([(v >> f) % M for v in s], dtype=object)
        np.testing.assert_array_equal(got, want)


def test_truncate_rejects_bad_shift(rng):
    a = rand(Z2_64, rng, 3)
    for f in (-1, 64, 1.5):
        with pytest.raises(ValueError):
            Z2_64.truncate(a, f)


def test_type_and_ring_errors(rng):
    a64 = rand(Z2_64, rng, 5)
    a32 = rand(Z2_32, rng, 5)
    with pytest.raises(RingMismatchError):
        Z2_64.add(a64, a32)
    with pytest.raises(TypeError):
        Z2_64.add(a64, [1, 2, 3, 4, 5])
    with pytest.raises(ValueError):
        Z2_64.add(a64, rand(Z2_64, rng, 4))
    with pytest.raises(TypeError):
        Z2_64.from_int([1.5, 2.0])


@pytest.mark.parametrize("bad", [0, 1, 2, 4, 1 << 62, (1 << 62) + 1, -7])
def test_zq_modulus_validation(bad):
    with pytest.raises(ValueError):
        Zq(bad)


def test_zq_modulus_types():
    with pytest.raises(TypeError):
        Zq(501337.0)
    with pytest.raises(TypeError):
        Zq("501337")


def test_ring_identity_and_names():
    assert Zq(Q_TUTORIAL) == Ring(Q_TUTORIAL) and hash(Zq(Q_TUTORIAL)) == hash(Ring(Q_TUTORIAL))
    assert Z2_64 != Z2_32
    assert ring_from_name("Z2_64") is Z2_64 and ring_from_name("Z_2^32") is Z2_32
    assert ring_from_name("Z_501337") == Zq(Q_TUTORIAL) and ring_from_name(501337) == Zq(Q_TUTORIAL)
    with pytest.raises(ValueError):
        ring_from_name("Z_banana")
    assert pickle.loads(pickle.dumps(Z2_64)) == Z2_64  # a ring is public metadata


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_from_int_and_to_signed_round_trip(ring, rng):
    half = min(ring.modulus // 2, 2**62)
    x = rng.integers(-half, half, size=50, dtype=np.int64, endpoint=True)
    r = ring.from_int(x)
    assert r.dtype == ring.dtype
    np.testing.assert_array_equal(ring.to_signed(r), x if ring.bits > 32 or not ring.is_pow2
                                  else x.astype(np.int32).astype(np.int64))
    big = [2**100 + 3, -(2**90) - 1]
    np.testing.assert_array_equal(as_int(ring.from_int(np.array(big, dtype=object))),
                                  np.array([v % ring.modulus for v in big], dtype=object))


# -- hypothesis: ring laws --------------------------------------------------------------------
_ring_st = st.sampled_from(RINGS)


@st.composite
def _elems(draw):
    ring = draw(_ring_st)
    n = draw(st.integers(1, 8))
    vals = st.integers(0, ring.modulus - 1)
    a = np.array(draw(st.lists(vals, min_size=n, max_size=n)), dtype=object)
    b = np.array(draw(st.lists(vals, min_size=n, max_size=n)), dtype=object)
    c = np.array(draw(st.lists(vals, min_size=n, max_size=n)), dtype=object)
    return ring, ring.from_int(a), ring.from_int(b), ring.from_int(c)


@settings(max_examples=60, deadline=None)
@given(_elems())
def test_ring_laws(args):
    ring, a, b, c = args
    eq = np.testing.assert_array_equal
    eq(ring.add(a, b), ring.add(b, a))
    eq(ring.mul(a, b), ring.mul(b, a))
    eq(ring.add(ring.add(a, b), c), ring.add(a, ring.add(b, c)))
    eq(ring.mul(ring.mul(a, b), c), ring.mul(a, ring.mul(b, c)))
    eq(ring.mul(a, ring.add(b, c)), ring.add(ring.mul(a, b), ring.mul(a, c)))
    eq(ring.add(a, ring.neg(a)), ring.zeros(a.shape))
    eq(ring.sub(a, b), ring.add(a, ring.neg(b)))


@pytest.mark.parametrize("ring", RINGS, ids=str)
def test_zero_dimensional_operands_keep_their_shape(ring):
    M = ring.modulus
    c = 5 % M
    a = np.array(M - 1, dtype=ring.dtype)
    b = np.array(c, dtype=ring.dtype)
    for got, want in ((ring.add(a, b), (M - 1 + c) % M), (ring.sub(b, a), (c - (M - 1)) % M),
                      (ring.mul(a, b), ((M - 1) * c) % M), (ring.neg(b), (-c) % M),
                      (ring.mul_public(a, -3), ((M - 1) * -3) % M), (ring.sum_shares([a, b, b]), (M - 1 + 2 * c) % M)):
        assert np.shape(got) == () and int(got) == want
