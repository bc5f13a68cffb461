"""hecrypt.smpc protocols: Beaver identity, triple single use, truncation accuracy and failure
bounds, privacy of n-1 shares, mask reuse, communication accounting, CPU/GPU parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hecrypt.backend import cuda_status
from hecrypt.errors import ConsumedError
from hecrypt.smpc import SMPCContext, TrustedDealer
from hecrypt.smpc import protocols as proto
from hecrypt.smpc.provider import beaver_weights

Q61 = (1 << 61) - 1


def _ctx(ring="Z2_64", f=16, parties=("alice", "bob"), **kw):
    return SMPCContext(parties=parties, ring=ring, frac_bits=f, device="cpu", **kw)


def _wrap64(a):
    return np.asarray(a, dtype=np.uint64)


# ------------------------------------------------------------------------------------------
# Beaver products are exact ring identities
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("parties", [("a", "b"), ("a", "b", "c"), ("a", "b", "c", "d")])
@pytest.mark.parametrize("compress", [True, False])
def test_beaver_identity_exact_in_z2_64(parties, compress, rng):
    ctx = _ctx(parties=parties, dealer=TrustedDealer(compress=compress))
    m, k, n = (int(v) for v in rng.integers(1, 7, size=3))
    X = rng.integers(0, 2**64, size=(m, k), dtype=np.uint64)
    Y = rng.integers(0, 2**64, size=(k, n), dtype=np.uint64)
    Y2 = rng.integers(0, 2**64, size=(m, k), dtype=np.uint64)
    x, y, y2 = ctx.share_int(X), ctx.share_int(Y, owner=parties[1]), ctx.share_int(Y2, owner=parties[-1])
    # reference: exact products mod 2^64 (numpy's uint64 arithmetic wraps)
    with np.errstate(over="ignore"):
        mm = np.zeros((m, n), np.uint64)
        for j in range(k):
            mm += X[:, j:j + 1] * Y[j:j + 1, :]
        assert np.array_equal(_wrap64((x @ y).reveal().view(np.uint64)), mm)
        assert np.array_equal((x * y2).reveal().view(np.uint64), X * Y2)
        assert np.array_equal(x.square().reveal().view(np.uint64), X * X)


@pytest.mark.parametrize("q", [Q61, 1000003])
def test_beaver_identity_exact_in_zq(q, rng):
    ctx = _ctx(q, 0, ("a", "b", "c"))
    X = rng.integers(0, q, size=(3, 4))
    Y = rng.integers(0, q, size=(4, 2))
    x, y = ctx.share_int(X), ctx.share_int(Y, owner="c")
    ref = [[sum(int(X[i, t]) * int(Y[t, j]) for t in range(4)) % q for j in range(2)] for i in range(3)]
    got = (x @ y).reveal() % q
    assert got.tolist() == ref
    ref2 = [[int(a) * int(a) % q for a in row] for row in X]
    assert (x.square().reveal() % q).tolist() == ref2


def test_dealer_material_satisfies_the_triple_relation(rng):
    ctx = _ctx(parties=("a", "b", "c"))
    R = ctx.ring
    sa, sb = (3, 4), (4, 5)
    mid = ctx.dealer.acquire(("matmul", sa, sb, None, None, 1))
    mats = [p.take_material(mid, "matmul") for p in ctx.compute_parties]
    weights = beaver_weights(R, 3)  # three parties in Z_2^64: (1, 1, -1), left mask weighted
    assert weights == (1, 1, (1 << 64) - 1)
    A = R.sum_shares([R.mul_public(m["a"], int(w)) for m, w in zip(mats, weights)])
    B = R.sum_shares([m["b"] for m in mats])
    W = R.sum_shares([m["w"] for m in mats])
    own = R.sum_shares([R.matmul(m["a"], m["b"]) for m in mats])
    assert np.array_equal(R.add(W, own), R.matmul(A, B))      # C = W + sum A_i B_i = A B
    # uniform-looking masks: not all equal, full 64-bit range in use
    assert A.max() > 2**62 and len(np.unique(A)) == A.size


@pytest.mark.parametrize("ring", ["Z2_64", "Z2_32"])
@pytest.mark.parametrize("masks", [(False, False), (True, False), (False, True), (True, True)])
def test_doubled_two_party_product_is_exactly_2xy(ring, masks, rng):
    """Two parties in Z_2^k: Z_i = (E + 2A_i)(F + 2B_i) + W_i sums to 2XY exactly (mod 2^k),
    for elementwise and matrix products, with fresh or reused masks."""
    ctx = _ctx(ring, 8)
    R = ctx.ring
    top = 1 << R.bits
    m, k, n = (int(v) for v in rng.integers(1, 9, size=3))
    X = rng.integers(0, top, size=(m, k), dtype=np.uint64).astype(R.dtype)
    Y = rng.integers(0, top, size=(k, n), dtype=np.uint64).astype(R.dtype)
    Y2 = rng.integers(0, top, size=(m, k), dtype=np.uint64).astype(R.dtype)
    x, y, y2 = ctx.share_int(X), ctx.share_int(Y, owner="bob"), ctx.share_int(Y2, owner="bob")
    if masks[0]:
        x = x.reuse_mask()
    if masks[1]:
        y, y2 = y.reuse_mask(), y2.reuse_mask()
    two = R.from_int(2)
    for _ in range(2):  # the second time reused masks come from the cache
        z = proto.beaver_matmul(ctx, x._shares(), y._shares(), x._mask, y._mask, doubled=True)
        assert np.array_equal(R.sum_shares(z), R.mul(two, R.matmul(X, Y)))
        z = proto.beaver_mul(ctx, x._shares(), y2._shares(), x._mask, y2._mask, doubled=True)
        assert np.array_equal(R.sum_shares(z), R.mul(two, R.mul(X, Y2)))
    assert x.mask_uses == (4 if masks[0] else 0)
    with pytest.raises(ValueError, match="two compute parties"):
        c3 = _ctx(parties=("a", "b", "c"))
        proto.beaver_mul(c3, [X] * 3, [Y2] * 3, doubled=True)
    with pytest.raises(ValueError):
        ctx.dealer.precompute_mul((3,), scale=3)


def test_doubled_material_relation(rng):
    ctx = _ctx()
    R = ctx.ring
    assert ctx.dealer.default_scale == 2 and proto.doubled_products(ctx)
    assert not proto.doubled_products(_ctx(truncation="dealer"))
    plain = _ctx(beaver="ordinary")
    assert not proto.doubled_products(plain) and plain.dealer.default_scale == 1
    A, B = rng.uniform(-1, 1, size=(3, 4)), rng.uniform(-1, 1, size=(4, 2))
    assert np.max(np.abs((plain.share(A) @ plain.share(B)).reveal() - A @ B)) <= _matmul_bound(A, B, 16)
    with pytest.raises(ValueError):
        _ctx(beaver="fast")
    assert _ctx(parties=("a", "b", "c")).dealer.default_scale == 1
    sa, sb = (3, 4), (4, 5)
    mid = ctx.dealer.acquire(("matmul", sa, sb, None, None, 2))
    a0, a1 = (p.take_material(mid, "matmul") for p in ctx.compute_parties)
    W = R.add(a0["w"], a1["w"])
    assert np.array_equal(W, R.mul_public(R.matmul(R.sub(a0["a"], a1["a"]), R.sub(a0["b"], a1["b"])), -2))
    assert a0["a"].max() > 2**62 and len(np.unique(a0["w"])) == a0["w"].size  # uniform-looking
    with pytest.raises(ValueError, match="key"):
        ctx.dealer.acquire(("matmul", sa, sb, None, None))


@pytest.mark.parametrize("ring,n,online", [("Z2_64", 2, 2), ("Z2_64", 3, 3), ("Z2_64", 4, 4),
                                           (Q61, 2, 2), (Q61, 3, 3), (1000003, 4, 4)])
def test_online_ring_matmuls_per_product(ring, n, online, rng, monkeypatch):
    """Two parties in Z_2^64: party 0's two products run as one ring matmul (inner dimension
    2K) and party 1 runs one: 2 calls, 3 products' worth.  Where units b_i with sum 1 exist
    (odd n in Z_2^k, Z_q) every party runs exactly one product; otherwise party 0 runs two."""
    from hecrypt.ring import Ring

    small = ring == 1000003
    ctx = _ctx(ring, 4 if small else 8, tuple(f"p{i}" for i in range(n)), truncation="dealer")
    R = ctx.ring
    w = beaver_weights(R, n)
    assert (w is None) == (R.is_pow2 and n % 2 == 0)
    if w is not None:
        assert sum(w) % R.modulus == 1 and all(math.gcd(v, R.modulus if R.q else 2) == 1 for v in w)
    A, B = rng.uniform(-1, 1, size=(4, 6)), rng.uniform(-1, 1, size=(6, 3))  # |A @ B| <= 6 fits Z_1000003
    a, b = ctx.share(A), ctx.share(B)
    ctx.dealer.precompute_matmul((4, 6), (6, 3))
    calls = []
    orig = Ring.matmul
    monkeypatch.setattr(Ring, "matmul", lambda self, x, y: calls.append(x.shape[-1]) or orig(self, x, y))
    c = a @ b
    monkeypatch.setattr(Ring, "matmul", orig)
    assert len(calls) == online
    assert sum(calls) == 6 * (n + (w is None))  # inner dimensions: n products, +1 without weights
    assert np.allclose(c.reveal(), A @ B, atol=0.3 if small else 0.05)


def test_two_party_local_products_run_one_ring_matmul_per_party(rng, monkeypatch):
    """The default two-party context (Z_2^64, local truncation) uses the doubled form: two
    ring matmuls of inner dimension K online, one at the dealer."""
    from hecrypt.ring import Ring

    ctx = _ctx()
    A, B = rng.uniform(-1, 1, size=(4, 6)), rng.uniform(-1, 1, size=(6, 3))
    a, b = ctx.share(A), ctx.share(B, owner="bob")
    calls = []
    orig = Ring.matmul
    monkeypatch.setattr(Ring, "matmul", lambda self, x, y: calls.append(x.shape[-1]) or orig(self, x, y))
    ctx.dealer.precompute_matmul((4, 6), (6, 3))
    assert calls == [6]
    c = a @ b
    assert calls == [6, 6, 6]
    monkeypatch.setattr(Ring, "matmul", orig)
    assert np.max(np.abs(c.reveal() - A @ B)) <= _matmul_bound(A, B, 16)
    # integer products need XY itself (all 64 bits): the ordinary form
    i, j = rng.integers(-9, 9, size=(4, 6)), rng.integers(-9, 9, size=(6, 3))
    assert np.array_equal((ctx.share_int(i) @ ctx.share_int(j)).reveal(), i @ j)


def test_triples_are_single_use(rng):
    ctx = _ctx()
    key = ("mul", (4,), None, None, 2)
    mid = ctx.dealer.acquire(key)
    alice = ctx.parties["alice"]
    alice.take_material(mid, "mul")
    with pytest.raises(ConsumedError):
        alice.take_material(mid, "mul")
    # re-delivering a used id is refused too
    ctx.dealer.precompute_mul((4,), count=2)
    assert ctx.dealer.pending() == 2
    x = ctx.share(rng.normal(size=4))
    y = ctx.share(rng.normal(size=4))
    for _ in range(3):
        x * y
    assert ctx.dealer.pending() == 0
    assert ctx.dealer.issued == 1 + 2 + 1


def test_precomputed_offline_phase_makes_online_free_of_dealer_traffic(rng):
    ctx = _ctx()
    A, B = rng.normal(size=(8, 6)), rng.normal(size=(6, 3))
    a, b = ctx.share(A), ctx.share(B)
    ctx.dealer.precompute_matmul((8, 6), (6, 3), count=1)
    ctx.reset_stats()
    c = a @ b
    st = ctx.stats.snapshot()
    assert st["by_phase"]["offline"]["bytes_sent"] == 0
    assert st["rounds"] == 1  # one opening of E and F; local truncation adds none
    assert np.allclose(c.reveal(), A @ B, atol=1e-3)
    assert ctx.timing.offline_s == 0 and ctx.timing.online_s > 0


# ------------------------------------------------------------------------------------------
# accuracy against float64
# ------------------------------------------------------------------------------------------
def _matmul_bound(A, B, f):
    """|decoded - exact| for a fixed-point matmul with one truncation: encoding errors of both
    operands (2^-(f+1) each) times the other's magnitude, summed over K, plus one unit of the
    truncation and the output's rounding."""
    k = A.shape[-1]
    e = 2.0 ** -(f + 1)
    return k * (np.abs(A).max() * e + np.abs(B).max() * e + e * e) + 2.0 ** -f + 2.0 ** -(f + 1)


def _mul_bound(A, B, f):
    e = 2.0 ** -(f + 1)
    return np.abs(A).max() * e + np.abs(B).max() * e + e * e + 2.0 ** -f + 2.0 ** -(f + 1)


@pytest.mark.parametrize("ring,f,parties,trunc", [
    ("Z2_64", 16, ("a", "b"), "local"),
    ("Z2_64", 16, ("a", "b"), "dealer"),
    ("Z2_64", 20, ("a", "b", "c"), "dealer"),
    ("Z2_32", 8, ("a", "b"), "auto"),
    (Q61, 16, ("a", "b"), "auto"),
    (Q61, 12, ("a", "b", "c"), "dealer"),
])
def test_mul_matmul_accuracy_random_shapes(ring, f, parties, trunc, rng):
    ctx = _ctx(ring, f, parties, truncation=trunc)
    if trunc == "auto":
        assert ctx.truncation == "dealer"  # local truncation is only chosen for 2 parties in Z_2^64
    lim = 4.0 if ctx.ring.bits > 40 else 1.0
    for _ in range(3):
        m, k, n = (int(v) for v in rng.integers(1, 12, size=3))
        if ctx.ring.bits <= 32:
            k = min(k, 4)
        A, B = rng.uniform(-lim, lim, (m, k)), rng.uniform(-lim, lim, (k, n))
        a, b = ctx.share(A), ctx.share(B, owner=parties[-1])
        assert np.max(np.abs((a @ b).reveal() - A @ B)) <= _matmul_bound(A, B, f)
        C = rng.uniform(-lim, lim, (m, k))
        c = ctx.share(C)
        assert np.max(np.abs((a * c).reveal() - A * C)) <= _mul_bound(A, C, f)
        assert np.max(np.abs((a @ B).reveal() - A @ B)) <= _matmul_bound(A, B, f)


@pytest.mark.parametrize("ring,f,parties", [("Z2_64", 16, ("a", "b")), ("Z2_64", 16, ("a", "b", "c")),
                                            ("Z2_32", 10, ("a", "b")), (Q61, 16, ("a", "b", "c")),
                                            (1000003, 4, ("a", "b"))])
def test_dealer_truncation_is_within_one_unit_over_the_whole_range(ring, f, parties, rng):
    """Dealer truncation must be right for every z with |z| < M/4, including values near the
    edges where the masked opening wraps."""
    ctx = _ctx(ring, f, parties, truncation="dealer")
    R = ctx.ring
    bias = proto.dealer_trunc_bias(R, f)
    lo, hi = -bias, (R.modulus + 1) // 2 - bias
    z = np.concatenate([rng.integers(lo, hi, size=3000, dtype=np.int64),
                        np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi - 2], dtype=np.int64)])
    zs = ctx.share_int(z)
    out = proto.truncate_dealer(ctx, zs._shares(), f)
    got = R.to_signed(R.sum_shares(out))
    exact = z >> f  # floor division by 2^f
    # floor or floor + 1 (a stochastic rounding), never anything else
    assert set(np.unique(got - exact).tolist()) <= {0, 1}


@pytest.mark.parametrize("ring,f,parties", [("Z2_64", 16, ("a", "b")), ("Z2_64", 12, ("a", "b", "c")),
                                            (Q61, 16, ("a", "b", "c"))])
def test_dealer_truncation_is_unbiased(ring, f, parties, rng):
    """E[result] = z / 2^f: the rounding up happens with probability (z mod 2^f) / 2^f, whether
    or not the masked opening wrapped (a wrong wrap correction shows as a bias of ~ -1/4)."""
    ctx = _ctx(ring, f, parties, truncation="dealer")
    R = ctx.ring
    bias = proto.dealer_trunc_bias(R, f)
    n = 40000
    z = rng.integers(-bias, (R.modulus + 1) // 2 - bias, size=n, dtype=np.int64)
    got = R.to_signed(R.sum_shares(proto.truncate_dealer(ctx, ctx.share_int(z)._shares(), f)))
    err = got - z / 2.0 ** f
    assert abs(err.mean()) < 0.02  # sd of the mean ~ 0.29 / sqrt(n) = 0.0015
    frac = (z % (1 << f)) / 2.0 ** f
    up = (got - (z >> f)) == 1
    assert abs(up.mean() - frac.mean()) < 0.02


def test_local_truncation_stays_within_its_failure_bound(rng):
    """SecureML truncation fails with probability |z| / 2^64 per element in Z_2^64.  With
    |z| < 2^34 that is < 2^-30, so 20 000 elements fail with probability < 2e-5."""
    ctx = _ctx()
    f = 16
    z = rng.integers(-2**34, 2**34, size=20000, dtype=np.int64)
    zs = ctx.share_int(z)
    got = ctx.ring.to_signed(ctx.ring.sum_shares(proto.truncate_local(ctx, zs._shares(), f)))
    err = got - (z >> f)
    assert np.all((err == 0) | (err == 1))


def test_local_truncation_failure_rate_matches_the_formula(rng):
    """Near the ring's limit the failure is observable and its rate is |z| / 2^k."""
    ctx = _ctx()
    n = 20000
    z = np.full(n, 2**60, dtype=np.int64) * rng.choice([-1, 1], size=n)  # p = 2^60 / 2^64
    zs = ctx.share_int(z)
    got = ctx.ring.to_signed(ctx.ring.sum_shares(proto.truncate_local(ctx, zs._shares(), 16)))
    fails = np.mean(np.abs(got - (z >> 16)) > 1)
    assert abs(fails - 1 / 16) < 0.015
    with pytest.raises(ValueError):
        proto.truncate_local(_ctx(parties=("a", "b", "c")), [zs.share_of("alice")] * 3, 16)


def test_local_truncation_after_a_doubled_product_fails_at_the_documented_rate(rng):
    """Fixed-point products of two parties hold 2xy at 2f + 1 fractional bits, so the local
    truncation fails with probability |2 x y 2^(2f)| / 2^64 per element (docs/smpc.md).  With
    |xy| = 2^26 and f = 16 that is 2^59 / 2^64 = 1/32 (the ordinary form would give 1/64);
    every other element is within the accuracy bound."""
    ctx = _ctx()
    n = 20000
    X = np.full(n, 2.0 ** 13) * rng.choice([-1, 1], size=n)
    Y = np.full(n, 2.0 ** 13) * rng.choice([-1, 1], size=n)
    got = (ctx.share(X) * ctx.share(Y, owner="bob")).reveal()
    bad = np.abs(got - X * Y) > _mul_bound(X, Y, 16)
    assert abs(bad.mean() - 1 / 32) < 0.006  # sd of the rate 0.0012
    assert np.all(np.abs(got[bad] - X[bad] * Y[bad]) > 2.0 ** 30)  # off by ~ 2^(64 - 17 - 16) = 2^31


# ------------------------------------------------------------------------------------------
# privacy
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_parties", [2, 3])
def test_any_n_minus_1_shares_are_uniform(n_parties, rng):
    from scipy.stats import chisquare

    q = 7
    names = tuple(f"p{i}" for i in range(n_parties))
    ctx = _ctx(q, 0, names)
    secret = int(rng.integers(0, q))
    t = ctx.share_int(np.full(4000, secret))
    for drop in range(n_parties):  # every subset of n-1 parties
        seen = [t.share_of(p).astype(np.int64) for i, p in enumerate(names) if i != drop]
        cell = np.zeros_like(seen[0])
        for s in seen:
            cell = cell * q + s
        counts = np.bincount(cell, minlength=q ** len(seen))
        assert chisquare(counts).pvalue > 1e-7, (drop, counts)
    # and the distribution does not depend on the secret: shares of another secret look the same
    other = ctx.share_int(np.full(4000, (secret + 3) % q))
    c1 = np.bincount(t.share_of("p0").astype(np.int64), minlength=q)
    c2 = np.bincount(other.share_of("p0").astype(np.int64), minlength=q)
    from scipy.stats import chi2_contingency

    assert chi2_contingency(np.stack([c1, c2])).pvalue > 1e-7


def test_openings_look_uniform(rng):
    """The opened Beaver differences E = X - A are uniform in the ring whatever X is."""
    from scipy.stats import chisquare

    ctx = _ctx(7, 0)
    x = ctx.share_int(np.zeros(3000, dtype=np.int64))
    y = ctx.share_int(np.ones(3000, dtype=np.int64))
    seen = []
    orig = proto.exchange

    def spy(c, masked, tag="open"):
        out = orig(c, masked, tag)
        seen.append(out[0])  # everything party 0 holds after the round
        return out

    proto.exchange = spy
    try:
        (x * y).reveal()
    finally:
        proto.exchange = orig
    R = ctx.ring
    for k in ("e", "f"):
        for arr in (seen[0][1][k], R.sum_shares([d[k] for d in seen[0]])):  # received, and opened
            counts = np.bincount(arr.astype(np.int64), minlength=7)
            assert chisquare(counts).pvalue > 1e-7


# ------------------------------------------------------------------------------------------
# mask reuse
# ------------------------------------------------------------------------------------------
def test_reuse_mask_opens_once_and_is_tracked(rng):
    ctx = _ctx()
    X, W = rng.normal(size=(20, 6)), rng.normal(size=(6, 2))
    x = ctx.share(X).reuse_mask()
    assert x.reuses_mask and x.mask_uses == 0
    w = ctx.share(W)
    ctx.reset_stats()
    p1 = x @ w
    first = ctx.stats.by_phase["online"]["bytes_sent"]
    g = ctx.share(rng.normal(size=(20, 2)))
    ctx.reset_stats()
    p2 = x @ w
    second = ctx.stats.by_phase["online"]["bytes_sent"]
    assert second < first / 3  # only F = W - B travels; E = X - A is reused
    G = g.reveal()
    up = x.T @ g  # the transposed mask is reused as well
    assert x.mask_uses == 3
    assert all(p.mask(x._mask[0])["uses"] == 3 for p in ctx.compute_parties)
    for got, ref in ((p1, X @ W), (p2, X @ W), (up, X.T @ G)):
        assert np.max(np.abs(got.reveal() - ref)) < 5e-3
    plain = ctx.share(X)
    assert not plain.reuses_mask and plain.mask_uses == 0
    assert np.allclose((x * x).reveal(), X * X, atol=1e-3)


# ------------------------------------------------------------------------------------------
# communication accounting
# ------------------------------------------------------------------------------------------
def test_bytes_and_rounds_are_counted_from_messages(rng):
    ctx = _ctx(parties=("a", "b", "c"))
    x = ctx.share(rng.normal(size=(4, 4)))
    ctx.reset_stats()
    y = x * 0.5
    # a public real scalar: dealer-assisted truncation, one dealer round and one opening
    assert ctx.stats.by_phase["online"]["rounds"] == 1 and ctx.stats.by_phase["offline"]["rounds"] == 1
    assert ctx.stats.rounds == 2
    ctx.reset_stats()
    z = x * x
    st = ctx.stats.snapshot()
    # offline: one dealer round; online: Beaver opening + truncation opening (dealer, 3 parties)
    assert st["by_phase"]["online"]["rounds"] == 2 and st["by_phase"]["offline"]["rounds"] == 2
    assert st["by_phase"]["online"]["messages"] == 2 * 6
    assert sum(p["bytes_sent"] for p in st["per_party"].values()) == st["bytes_sent"]
    assert sum(p["bytes_received"] for p in st["per_party"].values()) == st["bytes_sent"]
    ctx.reset_stats()
    y.reveal(to="a")
    st = ctx.stats.snapshot()
    assert st["rounds"] == 1 and st["messages"] == 2
    assert st["per_party"]["a"]["bytes_received"] >= 2 * 16 * 8
    assert ctx.comm.pending() == 0
    del z


def test_two_party_product_is_one_round(rng):
    ctx = _ctx()
    a, b = ctx.share(rng.normal(size=(5, 5))), ctx.share(rng.normal(size=(5, 5)))
    ctx.reset_stats()
    a @ b
    assert ctx.stats.by_phase["online"]["rounds"] == 1
    assert ctx.stats.by_phase["online"]["messages"] == 2


# ------------------------------------------------------------------------------------------
# CPU / GPU parity
# ------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cpu_gpu_bit_identical(rng):
    if not cuda_status()[0]:
        pytest.skip("no CUDA GPU")
    A, B = rng.normal(size=(33, 17)), rng.normal(size=(17, 9))
    outs = {}
    for dev in ("cpu", "cuda"):
        ctx = SMPCContext(device=dev, seed=1234)
        a, b = ctx.share(A), ctx.share(B, owner="bob")
        c = (a @ b) * a[:, :9] + 0.5
        outs[dev] = ([np.asarray(ctx._be.to_numpy(c.share_of(p))) for p in ctx.party_names], c.reveal())
    for s_cpu, s_gpu in zip(outs["cpu"][0], outs["cuda"][0]):
        assert np.array_equal(s_cpu, s_gpu)
    assert np.array_equal(outs["cpu"][1], outs["cuda"][1])


# ------------------------------------------------------------------------------------------
# the benchmark's baseline ring matmul (CrypTen's 10-block float64 method) is exact
# ------------------------------------------------------------------------------------------
def test_block_matmul_10_baseline_is_exact(rng):
    from hecrypt.benchmarks.smpc import _block_ring, block_matmul_10
    from hecrypt.ring import Z2_64

    m, k, n = (int(v) for v in rng.integers(1, 40, size=3))
    a = rng.integers(0, 2**64, size=(m, k), dtype=np.uint64)
    b = rng.integers(0, 2**64, size=(k, n), dtype=np.uint64)
    assert np.array_equal(block_matmul_10(a, b), Z2_64.matmul(a, b))
    ctx = SMPCContext(ring=_block_ring(), device="cpu")
    A, B = rng.normal(size=(5, 6)), rng.normal(size=(6, 4))
    assert np.allclose((ctx.share(A) @ ctx.share(B)).reveal(), A @ B, atol=1e-3)


# ------------------------------------------------------------------------------------------
# transports: byte blobs and device-buffer frames give the same results and the same counts
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("parties", [("a", "b"), ("a", "b", "c")])
def test_frames_and_bytes_transports_agree(parties, rng):
    from hecrypt.smpc import serialize as ser

    A, B = rng.normal(size=(6, 5)), rng.normal(size=(5, 4))
    seed = int(rng.integers(1 << 30))
    out = {}
    for transport in ("bytes", "frames"):
        ctx = SMPCContext(parties=parties, device="cpu", seed=seed, transport=transport)
        assert ctx.transport == transport
        a, b = ctx.share(A), ctx.share(B, owner=parties[-1])
        c = (a @ b) * a[:, :4] - 0.25
        out[transport] = ([c.share_of(p) for p in parties], c.reveal(), ctx.stats.snapshot())
    for x, y in zip(out["bytes"][0], out["frames"][0]):
        assert np.array_equal(x, y)
    assert np.array_equal(out["bytes"][1], out["frames"][1])
    assert out["bytes"][2] == out["frames"][2]
    with pytest.raises(ValueError):
        SMPCContext(transport="pigeon")
    # a frame round-trips to the same blob, and a mismatched frame is refused
    arr = rng.integers(0, 2**63, size=(3, 2), dtype=np.uint64)
    fr = ser.pack(ser.KIND_MESSAGE, {"t": 1}, {"x": arr}, frame=True)
    assert fr.to_bytes() == ser.pack(ser.KIND_MESSAGE, {"t": 1}, {"x": arr})
    assert len(fr) == len(fr.to_bytes())
    assert np.array_equal(ser.unpack(fr)[1]["x"], arr)
    bad = ser.Frame(fr.header, (arr[:2].copy(),))
    from hecrypt.errors import SerializationError

    with pytest.raises(SerializationError):
        ser.unpack(bad)
    with pytest.raises(SerializationError):
        ser.unpack(ser.Frame(fr.header, ()))


def test_local_truncation_is_unbiased(rng):
    """SecureML's floor(z_0 / 2^f) + ceil(z_1 / 2^f) is floor(z / 2^f) + 1 with probability
    (z mod 2^f) / 2^f for uniform shares: no drift in long training runs."""
    ctx = _ctx()
    f = 16
    z = rng.integers(-2**32, 2**32, size=40000, dtype=np.int64)  # 40 000 |z| / 2^64 < 1e-5: no wrap
    got = ctx.ring.to_signed(ctx.ring.sum_shares(proto.truncate_local(ctx, ctx.share_int(z)._shares(), f)))
    assert set(np.unique(got - (z >> f)).tolist()) <= {0, 1}
    assert abs((got - z / 2.0 ** f).mean()) < 0.02


def test_redelivered_material_and_masks_are_refused(rng):
    """A party refuses a material id it has already received (a re-sent mask would reset its
    opening and its use count)."""
    from hecrypt.smpc import serialize as ser

    ctx = _ctx()
    x = ctx.share(rng.normal(size=(3, 2))).reuse_mask()
    x @ ctx.share(rng.normal(size=(2, 2)))
    alice = ctx.parties["alice"]
    mid = x._mask[0]
    blob = ser.pack(ser.KIND_MATERIAL, {"mid": mid, "kind": "mask", "seed": None, "expand": []},
                    {"a": np.zeros((3, 2), np.uint64)})
    with pytest.raises(ConsumedError):
        alice.receive_material(blob, ctx.ring, "cpu")
    assert x.mask_uses == 1 and alice.mask(mid)["open"] is not None
    fresh = ser.pack(ser.KIND_MATERIAL, {"mid": 10 ** 6, "kind": "mask", "seed": None, "expand": []}, {})
    with pytest.raises(ser.SerializationError):
        alice.receive_material(fresh, ctx.ring, "cpu")


@pytest.mark.parametrize("ring", ["Z2_64", "Z2_32"])
def test_inplace_local_truncation_matches_ring_truncate(ring, rng):
    ctx = _ctx(ring, 8)
    R = ctx.ring
    top = 1 << R.bits
    zs = [rng.integers(0, top, size=(5, 7), dtype=np.uint64).astype(R.dtype) for _ in range(2)]
    ref = proto.truncate_local(ctx, zs, 11)
    keep = [z.copy() for z in zs]
    got = proto.truncate_local(ctx, zs, 11, inplace=True)
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    assert got[0] is zs[0] and got[1] is zs[1]
    assert not np.array_equal(keep[0], zs[0])  # overwritten, as asked
    assert np.array_equal(ref[0], R.truncate(keep[0], 11))
    assert np.array_equal(ref[1], R.neg(R.truncate(R.neg(keep[1]), 11)))


@pytest.mark.parametrize("f,parties,ring,want", [
    (16, ("a", "b"), "Z2_64", "local"),
    (17, ("a", "b"), "Z2_64", "dealer"),
    (20, ("a", "b"), "Z2_64", "dealer"),
    (12, ("a", "b", "c"), "Z2_64", "dealer"),
    (8, ("a", "b"), "Z2_32", "dealer"),
])
def test_auto_truncation_rule(f, parties, ring, want):
    from hecrypt.smpc.context import LOCAL_TRUNCATION_MAX_FRAC_BITS

    assert LOCAL_TRUNCATION_MAX_FRAC_BITS == 16
    assert SMPCContext(parties=parties, ring=ring, frac_bits=f).truncation == want
    if want == "dealer" and len(parties) == 2 and ring == "Z2_64":
        assert SMPCContext(parties=parties, ring=ring, frac_bits=f, truncation="local").truncation == "local"
