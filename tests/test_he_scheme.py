"""CKKS scheme: accuracy, operations, batches, public contexts, errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from hecrypt.errors import ContextMismatchError, DecryptionError
from hecrypt.he import CKKSContext, CKKSParameters, Ciphertext, CiphertextBatch


def bits(err: float) -> float:
    return -math.log2(err) if err > 0 else 99.0


@pytest.fixture(scope="module")
def ctx8k():
    """The issue's reference parameters: N=8192, [60, 40, 40, 60], scale 2^40."""
    return CKKSContext(CKKSParameters(8192, [60, 40, 40, 60], 40))


@pytest.fixture(scope="module")
def small():
    """Small ring (no security) with 3 levels, for operations that need many keys."""
    return CKKSContext(CKKSParameters(256, [50, 30, 30, 30, 50], 30, security=None))


# -- accuracy (issue 5: >= 20 bits at N=8192, [60,40,40,60], 2^40) ----------------------------
def test_fresh_encryption_precision(ctx8k, rng):
    pub = ctx8k.public_context()
    x = rng.uniform(-1, 1, ctx8k.slots)
    ct = pub.encrypt(x)
    assert isinstance(ct, Ciphertext) and ct.level == 2 and ct.scale == 2.0 ** 40
    got = ctx8k.decrypt(ct)
    assert got.dtype == np.float64 and got.shape == (4096,)
    assert bits(np.abs(got - x).max()) >= 20


def test_multiply_relinearize_rescale_precision(ctx8k, rng):
    pub = ctx8k.public_context()
    x, y = rng.uniform(-1, 1, (2, ctx8k.slots))
    p = pub.encrypt(x) * pub.encrypt(y)
    assert p.level == 1 and abs(math.log2(p.scale) - 40) < 1e-4
    assert bits(np.abs(ctx8k.decrypt(p) - x * y).max()) >= 20
    # second multiplication (down to level 0) still decrypts
    p2 = p * p
    assert p2.level == 0
    assert bits(np.abs(ctx8k.decrypt(p2) - (x * y) ** 2).max()) >= 18


def test_symmetric_encryption(ctx8k, rng):
    x = rng.uniform(-1, 1, 100)
    ct = ctx8k.encrypt(x, symmetric=True)
    assert bits(np.abs(ctx8k.decrypt(ct)[:100] - x).max()) >= 25
    with pytest.raises(DecryptionError):
        ctx8k.public_context().encrypt(x, symmetric=True)


# -- operations -------------------------------------------------------------------------------
def test_add_sub_neg_plain_and_scalar(small, rng):
    ctx = small
    x, y = rng.uniform(-1, 1, (2, ctx.slots))
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    c = float(rng.uniform(-2, 2))
    cases = {
        "a+b": (a + b, x + y), "a-b": (a - b, x - y), "-a": (-a, -x),
        "a+y": (a + y, x + y), "y+a": (y + a, x + y), "a-y": (a - y, x - y), "y-a": (y - a, y - x),
        "a+c": (a + c, x + c), "c-a": (c - a, c - x), "a-c": (a - c, x - c),
        "a*3": (a * 3, 3 * x), "-2*a": (-2 * a, -2 * x),
    }
    for name, (ct, want) in cases.items():
        assert ct.level == a.level, name
        assert np.abs(ctx.decrypt(ct) - want).max() < 1e-4, name


def test_products_land_on_the_canonical_scale(small, rng):
    ctx = small
    x, y = rng.uniform(-1, 1, (2, ctx.slots))
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    ev = a._ev
    assert a.scale == ev.level_scale(3) == 2.0 ** 30
    s2 = ev.level_scale(2)
    assert s2 == 2.0 ** 60 / ctx.params.primes[3] and abs(math.log2(s2) - 30) < 1e-3
    c = float(rng.uniform(-2, 2))
    for ct, want in ((a * y, x * y), (y * a, x * y), (a * c, x * c), (c * a, x * c), (a * b, x * y)):
        assert ct.level == a.level - 1 and ct.scale == s2
        assert np.abs(ctx.decrypt(ct) - want).max() < 1e-4
    # ... so products of every kind add up, and fresh encryptions at that level match too
    s = a * b + a * c + b * y + ctx.encrypt(y, level=2)
    assert np.abs(ctx.decrypt(s) - (x * y + x * c + y * y + y)).max() < 1e-4
    # a non-canonical input scale still lands on the canonical scale after a product
    odd = ctx.encrypt(x, scale=2.0 ** 25)
    assert (odd * 0.5).scale == s2 and np.abs(ctx.decrypt(odd * 0.5) - 0.5 * x).max() < 1e-3


def test_ciphertext_products_and_levels(small, rng):
    ctx = small
    x, y, z = rng.uniform(-1, 1, (3, ctx.slots))
    a, b, c = ctx.encrypt(x), ctx.encrypt(y), ctx.encrypt(z)
    ab = a * b
    assert ab.level == 2
    # level alignment: (level 2) * (level 3) -> c is switched down automatically
    abc = ab * c
    assert abc.level == 1
    assert np.abs(ctx.decrypt(abc) - x * y * z).max() < 1e-3
    assert np.abs(ctx.decrypt(a.square()) - x * x).max() < 1e-4
    m = a.multiply(b, rescale=False)
    assert m.level == a.level and m.scale == a.scale * b.scale
    r = m.rescale()
    assert np.abs(ctx.decrypt(r) - x * y).max() < 1e-4
    low = a.mod_switch_to(0)
    assert low.level == 0 and np.abs(ctx.decrypt(low) - x).max() < 1e-4
    with pytest.raises(ValueError, match="level-0"):
        low * low
    with pytest.raises(ValueError, match="level-0"):
        low * 0.5


def test_scale_adjustment_and_mismatch(small, rng):
    x, y = rng.uniform(-1, 1, (2, small.slots))
    a = small.encrypt(x)
    ab = a * a
    assert ab.scale != a.scale  # Delta^2 / q_l drifted from Delta
    for s in (ab + a, a + ab, ab - a, a - ab):  # a is adjusted (multiply + rescale), not just cut
        assert s.level == ab.level and math.isclose(s.scale, ab.scale, rel_tol=2 ** -30)
    assert np.abs(small.decrypt(ab + a) - (x * x + x)).max() < 1e-4
    assert np.abs(small.decrypt(a - ab) - (x - x * x)).max() < 1e-4
    same_level = small.encrypt(y, level=ab.level, scale=2.0 ** 30)  # not the level's scale
    with pytest.raises(ValueError, match="scale mismatch"):
        ab + same_level
    fixed = ab + small.encrypt(y, scale=ab.scale, level=ab.level)
    assert np.abs(small.decrypt(fixed) - (x * x + y)).max() < 1e-4


def test_scale_out_of_bounds_is_refused(small, rng):
    """A scale at or above the level's modulus would wrap the message: clear ValueError."""
    x = rng.uniform(-1, 1, small.slots)
    q0_bits = math.log2(small.params.primes[0])  # 50 bits
    low = small.encrypt(x, level=0)
    with pytest.raises(ValueError, match="out of bounds"):
        low.multiply(low, rescale=False)  # scale 2^60 > q0
    with pytest.raises(ValueError, match="out of bounds"):
        small.encrypt(x, level=0, scale=2.0 ** math.ceil(q0_bits))
    m = small.encrypt(x).multiply(small.encrypt(x), rescale=False)  # 2^60 at level 3: fine
    with pytest.raises(ValueError, match="out of bounds"):
        m.mod_switch_to(0)
    ok = small.encrypt(x, level=0, scale=2.0 ** (math.floor(q0_bits) - 2))
    assert np.abs(small.decrypt(ok) - x).max() < 1e-6


def test_rotation_conjugation_sum_dot(small, rng):
    ctx = small
    x = rng.uniform(-1, 1, ctx.slots)
    y = rng.uniform(-1, 1, ctx.slots)
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    for k in (1, 5, -3, ctx.slots - 1):
        assert np.abs(ctx.decrypt(ctx.rotate(a, k)) - np.roll(x, -k)).max() < 1e-4, k
    zc = x + 1j * y
    cz = ctx.encrypt(zc)
    got = ctx.decrypt(ctx.conjugate(cz), complex=True)
    assert np.abs(got - np.conj(zc)).max() < 1e-4
    ctx.generate_galois_keys()
    assert np.abs(ctx.decrypt(a.sum_slots()) - x.sum()).max() < 1e-3
    assert np.abs(ctx.decrypt(ctx.dot(a, b)) - x @ y).max() < 1e-3
    assert np.abs(ctx.decrypt(a.dot(y)) - x @ y).max() < 1e-3


def test_public_context_rotates_with_power_of_two_keys(rng):
    ctx = CKKSContext(CKKSParameters(128, [40, 30, 40], 30, security=None))
    ctx.generate_galois_keys()  # powers of two only
    pub = ctx.public_context()
    x = rng.uniform(-1, 1, ctx.slots)
    a = pub.encrypt(x)
    r = pub.rotate(a, 13)  # 13 = 8 + 4 + 1, composed
    assert np.abs(ctx.decrypt(r) - np.roll(x, -13)).max() < 1e-4
    with pytest.raises(ValueError, match="Galois key"):
        pub.conjugate(a)


def test_public_context_cannot_decrypt(ctx8k, rng):
    pub = ctx8k.public_context()
    assert pub.is_public and not ctx8k.is_public
    assert pub.key_fingerprint == ctx8k.key_fingerprint
    ct = pub.encrypt(rng.uniform(-1, 1, 10))
    with pytest.raises(DecryptionError, match="public-only"):
        pub.decrypt(ct)
    with pytest.raises(DecryptionError):
        pub.generate_galois_keys([1])


def test_other_keys_are_refused(small, rng):
    other = CKKSContext(small.params)
    x = rng.uniform(-1, 1, 8)
    a, b = small.encrypt(x), other.encrypt(x)
    assert small.key_fingerprint != other.key_fingerprint
    with pytest.raises(ContextMismatchError):
        a + b
    with pytest.raises(ContextMismatchError):
        a * b
    with pytest.raises(ContextMismatchError):
        small.decrypt(b)


def test_input_checks(small):
    with pytest.raises(ValueError, match="slots"):
        small.encrypt(np.ones(small.slots + 1))
    with pytest.raises(ValueError):
        small.encrypt(np.ones((2, 3)))
    with pytest.raises(ValueError):
        small.encrypt(np.ones(3), level=99)
    with pytest.raises(TypeError):
        small.decrypt(np.ones(3))
    ct = small.encrypt(np.ones(3))
    with pytest.raises(TypeError):
        bool(ct)
    with pytest.raises(TypeError):
        np.asarray(ct)
    with pytest.raises(TypeError):
        pickle.dumps(ct)
    with pytest.raises(TypeError):
        pickle.dumps(small)
    with pytest.raises(TypeError):
        ct.rotate(1.5)
    assert "level=3" in repr(ct) and "SecretKey" not in repr(small)


# -- batches ----------------------------------------------------------------------------------
def test_batch_operations(small, rng):
    ctx = small
    pub = ctx.public_context()
    X = rng.uniform(-1, 1, (5, ctx.slots))
    Y = rng.uniform(-1, 1, (5, ctx.slots))
    v = rng.uniform(-1, 1, ctx.slots)
    bx, by = pub.encrypt_batch(X), pub.encrypt_batch(Y)
    assert isinstance(bx, CiphertextBatch) and len(bx) == 5
    tol = 1e-4
    assert np.abs(ctx.decrypt_batch(bx) - X).max() < tol
    assert np.abs(ctx.decrypt_batch(bx + by) - (X + Y)).max() < tol
    assert np.abs(ctx.decrypt_batch(bx - by) - (X - Y)).max() < tol
    assert np.abs(ctx.decrypt_batch(bx * by) - X * Y).max() < tol
    assert np.abs(ctx.decrypt_batch(bx * v) - X * v).max() < tol
    assert np.abs(ctx.decrypt_batch(bx * Y) - X * Y).max() < tol
    assert np.abs(ctx.decrypt_batch(bx + v) - (X + v)).max() < tol
    assert np.abs(ctx.decrypt_batch(bx * 0.5) - X * 0.5).max() < tol
    cv = pub.encrypt(v)
    assert np.abs(ctx.decrypt_batch(bx * cv) - X * v).max() < tol
    assert np.abs(ctx.decrypt_batch(bx + cv) - (X + v)).max() < tol
    assert np.abs(ctx.decrypt_batch(ctx.rotate(bx, 2)) - np.roll(X, -2, axis=1)).max() < tol
    assert np.abs(ctx.decrypt(bx.sum()) - X.sum(axis=0)).max() < tol
    assert np.abs(ctx.decrypt(bx[3]) - X[3]).max() < tol
    st = CiphertextBatch.stack([bx[i] for i in range(5)])
    assert np.abs(ctx.decrypt_batch(st) - X).max() < tol
    with pytest.raises(ValueError, match="batch lengths"):
        bx + by[1:]
    with pytest.raises(TypeError):
        ctx.decrypt(bx)


def test_batch_rotations_sums_dots_and_alignment(small, rng):
    """The batch type supports conjugate, sum_slots, dot, square, rescale, mod_switch and the
    same level/scale alignment rules as a single ciphertext."""
    ctx = small
    ctx.generate_galois_keys(conjugate=True)
    pub = ctx.public_context()
    X, Y = rng.uniform(-1, 1, (2, 3, ctx.slots))
    v = rng.uniform(-1, 1, ctx.slots)
    bx, by = pub.encrypt_batch(X), pub.encrypt_batch(Y)
    bz = pub.encrypt_batch(X + 1j * Y)
    assert np.abs(ctx.decrypt_batch(pub.conjugate(bz), complex=True) - (X - 1j * Y)).max() < 1e-4
    assert np.abs(ctx.decrypt_batch(bx.sum_slots()) - X.sum(axis=1)[:, None]).max() < 1e-3
    assert np.abs(ctx.decrypt_batch(bx.dot(by)) - (X * Y).sum(axis=1)[:, None]).max() < 1e-3
    assert np.abs(ctx.decrypt_batch(pub.dot(bx, v)) - (X @ v)[:, None]).max() < 1e-3
    assert np.abs(ctx.decrypt_batch(bx.square()) - X * X).max() < 1e-4
    m = bx.multiply(by, rescale=False)
    assert m.level == bx.level and np.abs(ctx.decrypt_batch(m.rescale()) - X * Y).max() < 1e-4
    low = bx.mod_switch_to(0)
    assert low.level == 0 and np.abs(ctx.decrypt_batch(low) - X).max() < 1e-4
    p = bx * by
    s = p + bx  # scale adjusted across levels, as for a Ciphertext
    assert s.level == p.level and np.abs(ctx.decrypt_batch(s) - (X * Y + X)).max() < 1e-4
    with pytest.raises(ValueError, match="scale mismatch"):
        p + pub.encrypt_batch(X, level=p.level, scale=2.0 ** 30)
    with pytest.raises(ValueError, match="level-0"):
        low * low
    with pytest.raises(ValueError, match="rows"):
        bx * rng.uniform(-1, 1, (2, ctx.slots))
    with pytest.raises(TypeError):
        ctx.encrypt(X[0]) + bx  # Ciphertext OP batch: write batch OP ciphertext


def test_batch_matches_single_ciphertexts(small, rng):
    """A batch row and a Ciphertext encrypting the same vector decrypt alike."""
    X = rng.uniform(-1, 1, (3, 50))
    b = small.encrypt_batch(X) * 0.25
    for i in range(3):
        c = small.encrypt(X[i]) * 0.25
        assert np.abs(small.decrypt(c)[:50] - small.decrypt_batch(b)[i, :50]).max() < 1e-5


# -- noise flooding ---------------------------------------------------------------------------
def test_noise_flooding_adds_the_stated_noise(ctx8k, rng):
    x = rng.uniform(-1, 1, ctx8k.slots)
    ct = ctx8k.encrypt(x)
    plain = ctx8k.decrypt(ct) - x
    flooded = ctx8k.decrypt(ct, flood_bits=20) - x
    # coefficient noise 2^20 -> slot noise std ~ 2^20 * sqrt(N/2) / 2^40 (real part)
    expect = 2.0 ** 20 * math.sqrt(8192 / 2) / 2.0 ** 40
    assert 0.8 * expect < flooded.std() < 1.2 * expect
    assert plain.std() < expect / 10
    a, b = ctx8k.decrypt(ct, flood_bits=20), ctx8k.decrypt(ct, flood_bits=20)
    assert not np.array_equal(a, b)  # fresh noise every time
    with pytest.raises(ValueError):
        ctx8k.decrypt(ct, flood_bits=99)
    assert 3 < ctx8k.noise_bits(ct, x) < 12  # fresh public-key encryption: ~6.5 bits
    with pytest.raises(TypeError):
        ctx8k.noise_bits(ctx8k.encrypt_batch(x[None]), x)
    with pytest.raises(DecryptionError):
        ctx8k.public_context().noise_bits(ct, x)


def test_seeded_contexts_are_reproducible(rng):
    p = CKKSParameters(64, [40, 30, 40], 30, security=None)
    a, b = CKKSContext(p, seed=11), CKKSContext(p, seed=11)
    assert a.key_fingerprint == b.key_fingerprint
    assert CKKSContext(p, seed=12).key_fingerprint != a.key_fingerprint
    assert CKKSContext(p).key_fingerprint != CKKSContext(p).key_fingerprint


def test_large_batches_are_encrypted_in_chunks(rng):
    from hecrypt.he import context as context_mod

    ctx = CKKSContext(CKKSParameters(64, [40, 30, 40], 30, security=None))
    X = rng.uniform(-1, 1, (context_mod._ENC_CHUNK * 2 + 3, 5))
    b = ctx.encrypt_batch(X)
    assert len(b) == X.shape[0]
    assert np.abs(ctx.decrypt_batch(b)[:, :5] - X).max() < 1e-4


def test_fused_moddown_rescale_is_bit_identical(small, rng):
    """mul_ct's fused ModDown+rescale equals relinearize, add, then rescale, exactly."""
    ev = small._ev
    x, y = rng.uniform(-1, 1, (2, small.slots))
    a, b = small.encrypt(x), small.encrypt(y)
    for lvl in range(ev.L, 0, -1):
        A, B = ev.mod_switch(a.data, ev.L, lvl), ev.mod_switch(b.data, ev.L, lvl)
        for other in (B, None):
            fused = ev.mul_ct(A, other, lvl)
            separate = ev.rescale(ev.mul_ct(A, other, lvl, rescale=False), lvl)
            assert np.array_equal(fused, separate)


def test_key_switch_without_backend_dot_is_identical(small, rng, monkeypatch):
    """The rns_fma fallback of PolyRing.dot gives the same key switch as the backend's rns_dot."""
    ring = small._ev.ring
    a = small.encrypt(rng.uniform(-1, 1, small.slots))
    ref = small.rotate(a, 1).data

    class NoDot:
        def __init__(self, ops):
            self._ops = ops

        def __getattr__(self, name):
            if name == "rns_dot":
                raise AttributeError(name)
            return getattr(self._ops, name)

    monkeypatch.setattr(ring, "_ops", NoDot(ring._ops))
    assert np.array_equal(small.rotate(a, 1).data, ref)


def test_edge_cases(small, rng):
    x = rng.uniform(-1, 1, small.slots)
    z = x + 1j * rng.uniform(-1, 1, small.slots)
    a = small.encrypt(x)
    assert np.array_equal(small.rotate(a, 0).data, a.data)
    assert np.array_equal(small.rotate(a, small.slots).data, a.data)
    got = small.decrypt(small.encrypt(z), complex=True)
    assert got.dtype == np.complex128 and np.abs(got - z).max() < 1e-6
    with pytest.raises(ValueError):
        a.mod_switch_to(a.level + 1)
    with pytest.raises(ValueError):
        a.mod_switch_to(-1)
    with pytest.raises(TypeError):
        a * (1 + 2j)
    with pytest.raises(ValueError, match="finite"):
        a * float("inf")
    assert np.abs(small.decrypt(a * 0.0)).max() < 1e-6
    assert np.abs(small.decrypt(a * -1) + x).max() < 1e-5
    ctx = CKKSContext("n4096")  # preset by name
    assert ctx.params == CKKSParameters.preset("n4096") and ctx.slots == 2048


def test_batched_modup_is_bit_identical(small, rng):
    """The GPU-style ModUp (all digits in one pass) equals the CPU digit-by-digit ModUp."""
    ev = small._ev
    X = rng.uniform(-1, 1, (3, small.slots))
    a, b = small.encrypt(X[0]), small.encrypt_batch(X)
    outs = {}
    for mode in (False, True):
        ev.batched_modup = mode
        try:
            outs[mode] = (small.rotate(a, 3).data, (a * a).data, small.rotate(b, 1).data, (b * a).data)
        finally:
            ev.batched_modup = False
    for x, y in zip(outs[False], outs[True]):
        assert np.array_equal(x, y)
