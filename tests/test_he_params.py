"""CKKS parameters, prime chains, encoder and samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hecrypt.errors import EncodingError, SecurityError, SerializationError
from hecrypt.he import HE_STANDARD_128, PRESETS, CKKSParameters
from hecrypt.he.encoder import CKKSEncoder
from hecrypt.he.params import is_prime, ntt_prime_chain
from hecrypt.he.sampling import CDT_BOUND, cdt_table, gaussian, ternary, uniform_rns
from hecrypt.ring import Stream


# -- parameters -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_within_the_standard(name):
    p = CKKSParameters.preset(name)
    assert sum(p.coeff_mod_bits) <= HE_STANDARD_128[p.poly_degree]
    assert p.log2_qp <= sum(p.coeff_mod_bits)
    assert len(set(p.primes)) == len(p.primes)
    for q, b in zip(p.primes, p.coeff_mod_bits):
        assert q.bit_length() == b and q % (2 * p.poly_degree) == 1 and is_prime(q)
    assert p.scale_bits < p.coeff_mod_bits[0]
    assert p.slots == p.poly_degree // 2
    assert p.special_prime == p.primes[-1] and p.data_primes == p.primes[:-1]
    assert p.max_level == len(p.primes) - 2


def test_standard_table_values():
    assert HE_STANDARD_128 == {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881, 65536: 1747}


@pytest.mark.parametrize("n,bits", [(8192, [60, 40, 40, 40, 40]), (4096, [40, 40, 30]), (16384, [60] * 7 + [60]),
                                    (1024, [30, 30])])
def test_beyond_the_table_is_refused(n, bits):
    with pytest.raises(SecurityError, match="security=None"):
        CKKSParameters(n, bits, 20)
    p = CKKSParameters(n, bits, 20, security=None)  # explicit opt-out
    assert p.security is None


def test_boundary_is_accepted():
    CKKSParameters(8192, [60, 40, 40, 38, 40], 40)  # exactly 218 bits


_AT_LIMIT = {2048: [27, 27], 4096: [39, 31, 39], 8192: [60, 40, 40, 38, 40], 16384: [60] * 6 + [40, 38],
             32768: [60] * 14 + [41], 65536: [60] * 28 + [40, 27]}


@pytest.mark.parametrize("n", sorted(HE_STANDARD_128))
def test_every_table_boundary(n):
    """log2(QP) == limit is accepted and limit + 1 refused (the opt-out lifts it), for every N."""
    limit = HE_STANDARD_128[n]
    if n not in _AT_LIMIT:  # N = 1024: two primes of >= 17 bits already exceed 27 bits
        with pytest.raises(SecurityError):
            CKKSParameters(n, [17, 17], 16)
        return
    bits = _AT_LIMIT[n]
    over = bits[:-1] + [bits[-1] + 1]
    assert sum(bits) == limit and sum(over) == limit + 1
    assert CKKSParameters(n, bits, 16).security == 128
    with pytest.raises(SecurityError, match="security=None"):
        CKKSParameters(n, over, 16)
    assert CKKSParameters(n, over, 16, security=None).security is None


@pytest.mark.parametrize("kwargs,exc", [
    (dict(poly_degree=3000, coeff_mod_bits=[40, 40]), ValueError),
    (dict(poly_degree=8192, coeff_mod_bits=[60]), ValueError),
    (dict(poly_degree=8192, coeff_mod_bits=[61, 40, 60]), ValueError),
    (dict(poly_degree=8192, coeff_mod_bits=[60, 40, 16]), ValueError),
    (dict(poly_degree=8192, coeff_mod_bits="60,40"), TypeError),
    (dict(poly_degree=8192.0, coeff_mod_bits=[60, 40]), TypeError),
    (dict(poly_degree=8192, coeff_mod_bits=[40, 40, 60], scale_bits=40), ValueError),
    (dict(poly_degree=8192, coeff_mod_bits=[60, 40, 60], security=80), ValueError),
    (dict(poly_degree=1 << 17, coeff_mod_bits=[60, 60]), SecurityError),
])
def test_bad_parameters(kwargs, exc):
    with pytest.raises(exc):
        CKKSParameters(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="n8192"):
        CKKSParameters.preset("n9999")


def test_prime_chain_is_largest_first_and_distinct():
    qs = ntt_prime_chain([40, 40, 40], 4096)
    assert qs[0] > qs[1] > qs[2]
    m = 8192
    # nothing between qs[0] and 2^40 is a prime = 1 mod 2N
    c = qs[0] + m
    while c < 1 << 40:
        assert not is_prime(c)
        c += m


def test_is_prime_matches_trial_division(rng):
    for n in rng.integers(2, 10 ** 6, 300):
        n = int(n)
        assert is_prime(n) == all(n % d for d in range(2, int(math.isqrt(n)) + 1))


def test_fingerprint_and_bytes_roundtrip():
    a = CKKSParameters.preset("n8192")
    b = CKKSParameters(8192, (60, 40, 40, 60), 40)
    c = CKKSParameters(8192, (60, 40, 40, 60), 39)
    assert a == b and a.fingerprint == b.fingerprint and len(a.fingerprint) == 32
    assert c.fingerprint != a.fingerprint
    assert CKKSParameters.from_bytes(a.to_bytes()) == a
    with pytest.raises(SerializationError):
        CKKSParameters.from_bytes(a.to_bytes()[:-3])
    with pytest.raises(SerializationError):
        CKKSParameters.from_bytes(b"XXXX" + a.to_bytes()[4:])


def test_explicit_primes_are_checked():
    p = CKKSParameters.preset("n8192")
    CKKSParameters(8192, p.coeff_mod_bits, 40, primes=p.primes)
    with pytest.raises(ValueError):
        CKKSParameters(8192, p.coeff_mod_bits, 40, primes=(p.primes[0] + 2,) + p.primes[1:])


# -- encoder --------------------------------------------------------------------------------
def _negacyclic(a, b):
    n = len(a)
    out = [0] * n
    for i in range(n):
        for j in range(n):
            k = i + j
            if k < n:
                out[k] += int(a[i]) * int(b[j])
            else:
                out[k - n] -= int(a[i]) * int(b[j])
    return np.array([float(v) for v in out])


def test_encoder_roundtrip_and_error_bound(rng):
    enc = CKKSEncoder(8192)
    z = rng.uniform(-1, 1, 4096) + 1j * rng.uniform(-1, 1, 4096)
    c = enc.encode(z, 2.0 ** 40)
    assert c.dtype == np.int64 and c.shape == (8192,)
    err = np.abs(enc.decode(c, 2.0 ** 40) - z).max()
    assert err < 8 * math.sqrt(8192) / 2 ** 40  # rounding only


def test_encoder_is_a_ring_homomorphism(rng):
    n = 32
    enc = CKKSEncoder(n)
    z1 = rng.normal(size=n // 2) + 1j * rng.normal(size=n // 2)
    z2 = rng.normal(size=n // 2)
    c1, c2 = enc.encode(z1, 2.0 ** 30), enc.encode(z2, 2.0 ** 20)
    prod = _negacyclic(c1, c2)
    assert np.abs(enc.decode(prod, 2.0 ** 50) - z1 * z2).max() < 1e-4


@pytest.mark.parametrize("g,expect", [(5, lambda z: np.roll(z, -1)), (25, lambda z: np.roll(z, -2)),
                                      (63, np.conj)])
def test_encoder_slot_order_matches_galois_elements(rng, g, expect):
    n = 32
    enc = CKKSEncoder(n)
    z = rng.normal(size=n // 2) + 1j * rng.normal(size=n // 2)
    c = enc.encode(z, 2.0 ** 30)
    out = np.zeros(n)
    for j in range(n):  # x^j -> x^(g j) mod x^N + 1
        k = j * g % (2 * n)
        if k < n:
            out[k] += c[j]
        else:
            out[k - n] -= c[j]
    assert np.abs(enc.decode(out, 2.0 ** 30) - expect(z)).max() < 1e-6


def test_encoder_input_checks():
    enc = CKKSEncoder(64)
    with pytest.raises(ValueError, match="slots"):
        enc.encode(np.ones(33), 2.0 ** 20)
    with pytest.raises(EncodingError):
        enc.encode([1.0, np.nan], 2.0 ** 20)
    with pytest.raises(EncodingError):
        enc.encode([np.inf], 2.0 ** 20)
    with pytest.raises(EncodingError, match="too large"):
        enc.encode([2.0 ** 30], 2.0 ** 40)
    with pytest.raises(TypeError):
        enc.encode(np.array(["a"]), 2.0 ** 20)


# -- sampling -------------------------------------------------------------------------------
def test_cdt_table():
    t = cdt_table()
    assert t.shape == (2 * CDT_BOUND + 1,) and int(t[-1]) == 1 << 63
    assert np.all(np.diff(t.astype(object)) >= 0)
    # symmetric: P(X <= -k-1) == 1 - P(X <= k)
    for k in range(5):
        assert abs(int(t[CDT_BOUND - k - 1]) - ((1 << 63) - int(t[CDT_BOUND + k]))) <= 1


def test_gaussian_statistics():
    s = Stream(stream_id=7)  # os.urandom key
    g = gaussian(s, (200_000,))
    assert g.dtype == np.int64
    assert abs(g.mean()) < 0.05
    assert 3.15 < g.std() < 3.25
    assert np.abs(g).max() <= CDT_BOUND
    # P(X = 0) for a discrete Gaussian with sigma 3.2 is ~0.1247
    assert abs((g == 0).mean() - 0.1247) < 0.005


def test_ternary_and_uniform():
    s = Stream()
    t = ternary(s, (90_000,))
    counts = np.bincount(t + 1, minlength=3)
    assert counts.sum() == 90_000 and np.all(np.abs(counts - 30_000) < 900)
    qs = (97, 12289, (1 << 40) - 87)
    u = uniform_rns(s, qs, (4, 1000))
    assert u.shape == (4, 3, 1000)
    for i, q in enumerate(qs):
        assert int(u[:, i].max()) < q
    assert abs(u[:, 1].mean() / 12288 - 0.5) < 0.03


def test_seeded_streams_are_reproducible():
    a = gaussian(Stream.from_seed(5), (100,))
    b = gaussian(Stream.from_seed(5), (100,))
    c = gaussian(Stream.from_seed(6), (100,))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
