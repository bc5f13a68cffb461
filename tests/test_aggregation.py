"""Secure aggregation (hecrypt.ml.aggregation): sums/means, streaming windows, dropouts,
bad input naming the site, and what the aggregators see."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from hecrypt.errors import EncodingError
from hecrypt.ml.aggregation import (
    AggregationError,
    DroppingFeed,
    SecureAggregator,
    SiteFeed,
    UpdateError,
    UpdateSpec,
)
from hecrypt.ring import FixedPoint, Z2_64

F = 24  # default fractional bits


def _updates(rng, n_sites, shapes=((7, 3), (5,)), scale=1.0):
    return {f"site{i}": [rng.normal(scale=scale, size=s) for s in shapes] for i in range(n_sites)}


def _tol(n_sites, frac_bits=F):
    # encoding rounding: <= 2^-(f+1) per site, plus float64 slack
    return n_sites * 2.0 ** -(frac_bits + 1) + 1e-12


# --------------------------------------------------------------------------------------
# correctness
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_agg,compress", [(2, True), (2, False), (3, True), (3, False)])
def test_smpc_sum_matches_plaintext(rng, n_agg, compress):
    n = int(rng.integers(3, 8))
    ups = _updates(rng, n, scale=float(rng.uniform(0.1, 100)))
    agg = SecureAggregator("smpc", aggregators=n_agg, compress_shares=compress, chunk_size=int(rng.integers(5, 40)))
    res = agg.sum(ups)
    for k in range(2):
        exact = sum(u[k] for u in ups.values())
        assert res.value[k].shape == exact.shape and res.value[k].dtype == np.float64
        assert np.abs(res.value[k] - exact).max() <= _tol(n)
    assert res.sites == tuple(ups) and res.dropped == ()
    assert not res.mean and res.total_weight == n


def test_smpc_sum_is_exact_in_the_ring(rng):
    """The reconstructed ring total equals the sum of the encoded contributions bit for bit."""
    n = 4
    ups = {f"s{i}": rng.normal(size=257) for i in range(n)}
    agg = SecureAggregator("smpc", chunk_size=64)
    res = agg.sum(ups)
    fp = FixedPoint(Z2_64, F)
    enc_total = Z2_64.sum_shares([fp.encode(u) for u in ups.values()])
    assert np.array_equal(fp.encode(res.value), enc_total)


def test_fixed_point_encoding_is_rint_bit_for_bit(rng):
    """The CPU fast path (round by adding 1.5 * 2^52) equals rint(x * mult) as int64, ties and
    magnitudes around its 2^51 switch-over included; out-of-range values name the site."""
    from hecrypt.ml.aggregation import _encode_fixed

    for mag in (1e-6, 1.0, 2.0**30, 2.0**50.5, 2.0**51, 2.0**52, 2.0**60):
        x = rng.normal(size=3001) * mag
        x[:50] = np.round(x[:50]) + 0.5                       # exact ties (round half to even)
        x[50:100] = -np.abs(np.round(x[50:100])) - 0.5
        x[100], x[101] = 2.0**51 - 0.5, -(2.0**51) + 0.5
        for mult in (1.0, 0.75, 3.0):
            v = x * mult
            if np.abs(np.rint(v)).max() >= 2.0**62:
                continue
            got = _encode_fixed(np, x, Z2_64, mult, 2.0**62, "s", 1.0)
            assert got.dtype == np.uint64
            np.testing.assert_array_equal(got, np.rint(v).astype(np.int64).view(np.uint64))
    with pytest.raises(UpdateError, match="'s7'"):
        _encode_fixed(np, np.array([1.0, -3.0]), Z2_64, 1.0, 2.5, "s7", 1.0)
    # rint(2.4) = 2 < 2.5 fits (the check is on rounded values)
    assert _encode_fixed(np, np.array([2.4, -2.4]), Z2_64, 1.0, 2.5, "s7", 1.0).view(np.int64).tolist() == [2, -2]


def test_weighted_mean(rng):
    n = 5
    ups = _updates(rng, n)
    w = {s: float(rng.integers(1, 500)) for s in ups}
    for method in ("smpc", "plaintext"):
        res = SecureAggregator(method).mean(ups, weights=w)
        W = sum(w.values())
        for k in range(2):
            exact = sum(w[s] * u[k] for s, u in ups.items()) / W
            assert np.abs(res.value[k] - exact).max() <= _tol(n) + 1e-12
        assert res.mean and res.total_weight == pytest.approx(W)


def test_single_array_keeps_its_shape(rng):
    ups = {f"s{i}": rng.normal(size=(4, 6, 2)) for i in range(3)}
    res = SecureAggregator("smpc").sum(ups)
    assert isinstance(res.value, np.ndarray) and res.value.shape == (4, 6, 2)
    assert np.abs(res.value - sum(ups.values())).max() <= _tol(3)


def test_integer_updates_and_template(rng):
    ups = {f"s{i}": rng.integers(-1000, 1000, size=50) for i in range(3)}
    res = SecureAggregator("smpc").sum(ups, template=UpdateSpec.of(ups["s0"]))
    assert np.array_equal(res.value, sum(ups.values()).astype(np.float64))


def test_streaming_windows_bound_what_aggregators_hold(rng):
    n, P = 3, 20_000
    ups = {f"s{i}": rng.normal(size=P) for i in range(n)}
    # 2 aggregators x 8 bytes x params held <= budget  ->  at most 2000 params per window
    agg = SecureAggregator("smpc", chunk_size=500, memory_budget=2 * 8 * 2000)
    res = agg.sum(ups)
    assert res.info["windows"] == P // 2000
    assert res.info["max_params_held"] <= 2000
    assert np.abs(res.value - sum(ups.values())).max() <= _tol(n)


class _LazyFeed(SiteFeed):
    """A site's update produced chunk by chunk (never materialised): x_i = sin(i * a) * b."""

    def __init__(self, n, a, b):
        self.spec = UpdateSpec(((n,),), np.dtype(np.float64), False)
        self.a, self.b = a, b

    def read(self, start, stop):
        return np.sin(np.arange(start, stop, dtype=np.float64) * self.a) * self.b


def test_ten_million_parameters_in_bounded_memory(rng):
    """10^7 parameters: peak memory is the result vector plus the window budget, not sites x model."""
    P = 10**7
    a = rng.uniform(0.1, 1.0, size=2)
    feeds = {"s0": _LazyFeed(P, a[0], 1.0), "s1": _LazyFeed(P, a[1], -2.0)}
    budget = 8 << 20
    agg = SecureAggregator("smpc", chunk_size=1 << 18, memory_budget=budget)
    tracemalloc.start()
    try:
        res = agg.sum(feeds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out_bytes = 8 * P
    assert peak < out_bytes + budget + (24 << 20), f"peak {peak / 2**20:.1f} MiB"
    idx = rng.integers(0, P, size=1000)
    exact = np.sin(idx * a[0]) - 2.0 * np.sin(idx * a[1])
    assert np.abs(res.value[idx] - exact).max() <= _tol(2)
    assert res.info["windows"] > 1


# --------------------------------------------------------------------------------------
# what the aggregators and the owner see
# --------------------------------------------------------------------------------------
def _looks_uniform(u64: np.ndarray) -> bool:
    """Fixed-point encodings of moderate values have their top 16 bits all 0 or all 1;
    uniform shares almost never do (probability 2^-15 per element).  The threshold (5% of
    a chunk of >= 200 elements, i.e. >= 10 such elements) fails a uniform share with
    probability < 1e-20; an encoding has nearly all of its elements there."""
    top = (u64 >> np.uint64(48)).astype(np.int64)
    frac_small = np.mean((top == 0) | (top == 0xFFFF))
    return bool(frac_small < 0.05)


@pytest.mark.parametrize("n_agg,compress", [(2, True), (3, False)])
def test_aggregator_view_holds_only_shares(rng, n_agg, compress):
    n = 4
    ups = {f"site{i}": rng.normal(scale=10, size=600) for i in range(n)}
    agg = SecureAggregator("smpc", aggregators=n_agg, compress_shares=compress, chunk_size=200, record_view=True)
    res = agg.sum(ups)
    fp = FixedPoint(Z2_64, F)
    encoded = {s: fp.encode(u) for s, u in ups.items()}
    view = agg.view
    assert set(view.receivers()) == set(agg.aggregator_names) | {"owner"}
    for name in agg.aggregator_names:
        msgs = view.received(name)
        assert msgs, f"{name} received nothing"
        assert view.kinds(name) <= {"share", "share_seed"}
        for m in msgs:
            assert m.payload is not None
            if m.kind == "share_seed":
                assert isinstance(m.payload, bytes) and len(m.payload) == 32 == m.nbytes
                continue
            share = m.payload
            assert share.dtype == np.uint64 and share.nbytes == m.nbytes
            assert _looks_uniform(share)
            a = m.chunk * 200
            assert not np.any(share == encoded[m.sender][a:a + share.size])
            # decoding a share as fixed point gives garbage, nowhere near the update
            dec = fp.decode(share)
            assert np.median(np.abs(dec)) > 1e6
    # seeds differ between sites
    seeds = [m.payload for m in view.messages if m.kind == "share_seed"]
    assert len(set(seeds)) == len(seeds)
    # the owner receives only partial sums, each uniform-looking; only their sum is the total
    owner = view.received("owner")
    assert {m.kind for m in owner} == {"partial_sum"}
    assert all(_looks_uniform(m.payload) for m in owner)
    assert np.abs(res.value - sum(ups.values())).max() <= _tol(n)
    # bytes: one ring element per parameter per receiving aggregator (+ 32-byte seeds)
    per = 8 * 600 * (1 if compress else n_agg) + (32 * (n_agg - 1) if compress else 0)
    assert all(b == per for b in res.bytes_per_site.values())


def test_plaintext_view_is_plaintext(rng):
    """The baseline really does show the aggregator every update (so the test above can fail)."""
    ups = {f"s{i}": rng.normal(size=30) for i in range(3)}
    agg = SecureAggregator("plaintext", record_view=True)
    agg.sum(ups)
    got = {m.sender: m.payload for m in agg.view.received("aggregator")}
    assert all(np.array_equal(got[s], ups[s]) for s in ups)


def test_fresh_masks_every_round(rng):
    ups = {f"s{i}": rng.normal(size=100) for i in range(3)}
    agg = SecureAggregator("smpc", compress_shares=False, record_view=True)
    agg.sum(ups)
    agg.sum(ups)
    by_round = {}
    for m in agg.view.messages:
        if m.kind == "share" and m.sender == "s0":
            by_round.setdefault(m.round, []).append(m.payload)
    r1, r2 = by_round[1], by_round[2]
    assert all(not np.array_equal(a, b) for a in r1 for b in r2)


# --------------------------------------------------------------------------------------
# dropouts
# --------------------------------------------------------------------------------------
def test_dropout_before_and_during_round_is_excluded(rng):
    n, P = 6, 1000
    ups = {f"site{i}": rng.normal(size=P) for i in range(n)}
    w = {s: float(rng.integers(1, 100)) for s in ups}
    feeds = dict(ups)
    feeds["site1"] = None                                            # never answered
    feeds["site4"] = DroppingFeed(ups["site4"], after=int(rng.integers(1, P)), site="site4")  # mid-round
    agg = SecureAggregator("smpc", chunk_size=100)
    res = agg.mean(feeds, weights=w)
    counted = [s for s in ups if s not in ("site1", "site4")]
    assert res.sites == tuple(counted)
    assert set(res.dropped) == {"site1", "site4"}
    exact = sum(w[s] * ups[s] for s in counted) / sum(w[s] for s in counted)
    assert np.abs(res.value - exact).max() <= _tol(n) * 10
    assert res.total_weight == pytest.approx(sum(w[s] for s in counted))
    assert res.bytes_per_site["site1"] == 0


def test_dropout_after_a_reveal_fails_the_round(rng):
    P = 1000
    ups = {f"s{i}": rng.normal(size=P) for i in range(4)}
    ups["s2"] = DroppingFeed(ups["s2"], after=700, site="s2")
    agg = SecureAggregator("smpc", chunk_size=100, memory_budget=2 * 8 * 300)  # windows of 300 params
    with pytest.raises(AggregationError, match="s2") as ei:
        agg.sum(ups)
    assert ei.value.site == "s2"
    assert "unchanged" in str(ei.value)


def test_on_dropout_fail_and_min_sites(rng):
    ups = {f"s{i}": rng.normal(size=50) for i in range(3)}
    feeds = dict(ups, s1=DroppingFeed(ups["s1"], after=10, site="s1"))
    with pytest.raises(AggregationError, match="on_dropout='fail'"):
        SecureAggregator("smpc", on_dropout="fail", chunk_size=20).sum(feeds)
    feeds = dict(ups, s0=None, s1=None)
    with pytest.raises(AggregationError, match="min_sites=2"):
        SecureAggregator("smpc").sum(feeds)
    res = SecureAggregator("smpc", min_sites=1).sum(feeds)
    assert res.sites == ("s2",)


# --------------------------------------------------------------------------------------
# bad input names the site
# --------------------------------------------------------------------------------------
def test_mismatched_shape_dtype_and_structure_name_the_site(rng):
    ups = _updates(rng, 3)
    bad = dict(ups, site2=[ups["site2"][0][:, :2], ups["site2"][1]])
    with pytest.raises(UpdateError, match="site2.*shape") as ei:
        SecureAggregator("smpc").sum(bad)
    assert ei.value.site == "site2"
    bad = dict(ups, site1=[a.astype(np.float32) for a in ups["site1"]])
    with pytest.raises(UpdateError, match="site1.*dtype"):
        SecureAggregator("smpc").sum(bad)
    bad = dict(ups, site1=ups["site1"][0])
    with pytest.raises(UpdateError, match="site1.*single array"):
        SecureAggregator("smpc").sum(bad)
    bad = dict(ups, site0=[ups["site0"][0]])
    with pytest.raises(UpdateError, match="site0.*1 arrays, expected 2"):
        SecureAggregator("smpc").sum(bad, template=ups["site1"])
    bad = dict(ups, site0=[a.astype(np.complex128) for a in ups["site0"]])
    with pytest.raises(UpdateError, match="site0.*complex"):
        SecureAggregator("smpc").sum(bad)


@pytest.mark.parametrize("method", ["smpc", "plaintext"])
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_inf_name_the_site(rng, method, bad_value):
    ups = {f"s{i}": rng.normal(size=40) for i in range(3)}
    ups["s1"][int(rng.integers(0, 40))] = bad_value
    with pytest.raises(UpdateError, match="s1.*NaN or Inf") as ei:
        SecureAggregator(method).sum(ups)
    assert ei.value.site == "s1"


class _NoPrecheckFeed(SiteFeed):
    def __init__(self, x):
        self.spec = UpdateSpec.of(x)
        self.x = x

    def read(self, a, b):
        return self.x[a:b]


def test_nan_found_while_streaming_names_the_site(rng):
    x = rng.normal(size=500)
    x[450] = np.nan
    ups = {"a": rng.normal(size=500), "b": _NoPrecheckFeed(x)}
    with pytest.raises(UpdateError, match="'b'.*NaN"):
        SecureAggregator("smpc", chunk_size=100).sum(ups)


def test_out_of_range_names_the_site(rng):
    ups = {f"s{i}": rng.normal(size=20) for i in range(4)}
    agg = SecureAggregator("smpc")
    limit = agg.fixed.max_abs / 4
    ups["s3"][5] = 1.5 * limit
    with pytest.raises(UpdateError, match="s3.*does not fit"):
        agg.sum(ups)
    assert issubclass(UpdateError, ValueError) and not issubclass(UpdateError, EncodingError)


def test_argument_errors(rng):
    ups = {"a": np.ones(3), "b": np.ones(3)}
    with pytest.raises(ValueError, match="unknown aggregation method"):
        SecureAggregator("paillier")
    with pytest.raises(ValueError, match="2 or 3"):
        SecureAggregator("smpc", aggregators=4)
    with pytest.raises(ValueError, match="he_context"):
        SecureAggregator("ckks")
    with pytest.raises(ValueError, match="on_dropout"):
        SecureAggregator("smpc", on_dropout="ignore")
    agg = SecureAggregator("smpc")
    with pytest.raises(ValueError, match="no weight given for site 'b'"):
        agg.mean(ups, weights={"a": 1.0})
    with pytest.raises(ValueError, match="positive"):
        agg.mean(ups, weights={"a": 1.0, "b": -2.0})
    with pytest.raises(ValueError, match="unknown sites"):
        agg.mean(ups, weights={"a": 1.0, "b": 1.0, "c": 1.0})
    with pytest.raises(TypeError):
        agg.sum([np.ones(3)])
    with pytest.raises(TypeError):
        pickle.dumps(agg)
    with pytest.raises(ValueError):
        DroppingFeed(np.ones(3), after=-1)


# --------------------------------------------------------------------------------------
# CKKS (needs hecrypt.he)
# --------------------------------------------------------------------------------------
def _ckks():
    he = pytest.importorskip("hecrypt.he")
    if not hasattr(he, "CKKSContext"):
        pytest.skip("hecrypt.he.CKKSContext not available yet")
    return he


@pytest.fixture(scope="module")
def ckks_ctx():
    he = _ckks()
    params = he.CKKSParameters(poly_degree=4096, coeff_mod_bits=[60, 40], scale_bits=40)
    return he.CKKSContext(params)


@pytest.fixture(scope="module")
def other_ckks_ctx():
    he = _ckks()
    params = he.CKKSParameters(poly_degree=4096, coeff_mod_bits=[60, 40], scale_bits=40)
    return he.CKKSContext(params)


CKKS_TOL = 1e-5  # scale 2^40: fresh-encryption noise / scale (~1e-7), times a few sites


def test_ckks_sum_and_weighted_mean(rng, ckks_ctx):
    n = 4
    slots = ckks_ctx.slots
    ups = {f"s{i}": [rng.normal(size=(slots + 37,)), rng.normal(size=(3, 5))] for i in range(n)}
    agg = SecureAggregator("ckks", he_context=ckks_ctx, chunk_size=slots)
    res = agg.sum(ups)
    for k in range(2):
        assert np.abs(res.value[k] - sum(u[k] for u in ups.values())).max() < CKKS_TOL
    w = {s: float(rng.integers(1, 50)) for s in ups}
    res = agg.mean(ups, weights=w)
    for k in range(2):
        exact = sum(w[s] * u[k] for s, u in ups.items()) / sum(w.values())
        assert np.abs(res.value[k] - exact).max() < CKKS_TOL
    # ciphertexts: rows = ceil(params / slots); a site sends ciphertexts only
    assert res.info["chunks"] == -(-(slots + 37 + 15) // slots)


def test_ckks_view_holds_only_ciphertexts_and_no_secret_key(rng, ckks_ctx):
    from hecrypt.errors import DecryptionError

    ups = {f"s{i}": rng.normal(size=300) for i in range(3)}
    agg = SecureAggregator("ckks", he_context=ckks_ctx, record_view=True)
    agg.sum(ups)
    msgs = agg.view.received("aggregator")
    assert {m.kind for m in msgs} == {"ciphertext"}
    pub = ckks_ctx.public_context()
    for m in msgs:
        assert isinstance(m.payload, bytes) and len(m.payload) == m.nbytes
        # the update's float64 bytes are not in the message
        assert ups[m.sender][:4].tobytes() not in m.payload
        batch = pub.batch_from_bytes(m.payload)
        with pytest.raises(DecryptionError):
            pub.decrypt_batch(batch)
    assert {m.kind for m in agg.view.received("owner")} == {"encrypted_sum"}


def test_ckks_other_key_names_the_site(rng, ckks_ctx, other_ckks_ctx):
    ups = {f"s{i}": rng.normal(size=100) for i in range(3)}
    agg = SecureAggregator("ckks", he_context=ckks_ctx)
    bad = agg.client("s1", public_context=other_ckks_ctx.public_context())
    with pytest.raises(UpdateError, match="s1") as ei:
        agg.sum(ups, clients={"s1": bad})
    assert ei.value.site == "s1"


def test_ckks_other_parameters_or_damaged_ciphertext_name_the_site(rng, ckks_ctx):
    he = _ckks()
    ups = {f"s{i}": rng.normal(size=100) for i in range(3)}
    agg = SecureAggregator("ckks", he_context=ckks_ctx)
    other = he.CKKSContext(he.CKKSParameters(poly_degree=4096, coeff_mod_bits=[60, 40], scale_bits=30))
    with pytest.raises(UpdateError, match="'s2'") as ei:
        agg.sum(ups, clients={"s2": agg.client("s2", public_context=other.public_context())})
    assert ei.value.site == "s2"

    good = agg.client("s0")

    class Damaged:                      # flips one byte of every ciphertext it sends
        def __getattr__(self, name):
            return getattr(good, name)

        def protect(self, chunk, x):
            (recv, kind, blob, n), = good.protect(chunk, x)
            # a checked header field: magic, version, kind, flags, log N, or a fingerprint
            i = int(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 9, *range(24, 56)]))
            return [(recv, kind, blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:], n)]

    damaged = Damaged()
    with pytest.raises(UpdateError, match="'s0'") as ei:
        agg.sum(ups, clients={"s0": damaged})
    assert ei.value.site == "s0"


def test_ckks_dropout_and_bad_values(rng, ckks_ctx):
    slots = ckks_ctx.slots
    ups = {f"s{i}": rng.normal(size=2 * slots) for i in range(4)}
    feeds = dict(ups, s2=DroppingFeed(ups["s2"], after=slots + 1, site="s2"))
    res = SecureAggregator("ckks", he_context=ckks_ctx, chunk_size=slots).sum(feeds)
    assert res.sites == ("s0", "s1", "s3") and res.dropped == ("s2",)
    assert np.abs(res.value - (ups["s0"] + ups["s1"] + ups["s3"])).max() < CKKS_TOL
    ups["s3"][7] = np.nan
    with pytest.raises(UpdateError, match="s3.*NaN"):
        SecureAggregator("ckks", he_context=ckks_ctx).sum(ups)


# --------------------------------------------------------------------------------------
# benchmark suite and GPU
# --------------------------------------------------------------------------------------
def test_agg_bench_suite_rows(monkeypatch, tmp_path):
    from hecrypt.benchmarks import Bench
    from hecrypt.benchmarks import agg as suite

    monkeypatch.setattr(suite, "QUICK_PARAMS", 4096)
    monkeypatch.setenv("PEERS_DIR", str(tmp_path / "no-peers"))  # no TenSEAL: its row has no baseline
    bench = Bench(device="cpu", quick=True, suite=suite.SUITE)
    suite.run(bench)
    cases = [r["case"] for r in bench.rows]
    assert any("plaintext sum" in c for c in cases) and any("smpc" in c for c in cases)
    for r in bench.rows:
        assert r["params"] == 4096 and r["sites"] == suite.N_SITES and r["bytes_per_site"] > 0
        if r["method"] == "smpc":
            assert r["max_abs_error"] < 1e-6 and r["baseline_s"] > 0
        if r["method"] == "ckks":
            assert r["baseline_s"] is None and r["max_abs_error"] < 1e-4


@pytest.mark.gpu
def test_smpc_on_gpu_matches_cpu(rng):
    from hecrypt.backend import get_backend

    cp = get_backend("cuda").xp
    ups = {f"s{i}": rng.normal(size=50_000) for i in range(4)}
    dev = {s: cp.asarray(u) for s, u in ups.items()}
    res = SecureAggregator("smpc", device="cuda", record_view=True).mean(dev)
    assert np.abs(res.value - sum(ups.values()) / 4).max() <= _tol(4)
    agg = SecureAggregator("smpc", device="cuda", record_view=True, compress_shares=False)
    agg.sum(dev)
    shares = [m.payload for m in agg.view.received("aggregator0") if m.kind == "share"]
    assert shares and all(_looks_uniform(s) for s in shares)


def test_ckks_noise_flooding_costs_precision_only(rng, ckks_ctx):
    ups = {f"s{i}": rng.normal(size=200) for i in range(3)}
    exact = sum(ups.values())
    plain = SecureAggregator("ckks", he_context=ckks_ctx).sum(ups)
    flooded = SecureAggregator("ckks", he_context=ckks_ctx, ckks_flood_bits=20).sum(ups)
    e0 = np.abs(plain.value - exact).max()
    e1 = np.abs(flooded.value - exact).max()
    assert e0 < CKKS_TOL and 10 * e0 < e1 < 1e-2
