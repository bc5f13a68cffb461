"""Federated training over secure aggregation (hecrypt.ml.federated), the demo and the docs example."""

from __future__ import annotations

import io
import json
import runpy
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from hecrypt.ml.aggregation import AggregationError, SecureAggregator
from hecrypt.ml.federated import (
    LogisticModel,
    federated_standardize,
    load_breast_cancer_data,
    split_sites,
    train_centralized,
    train_federated,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cancer():
    pytest.importorskip("sklearn")
    return load_breast_cancer_data(0)


def _has_ckks() -> bool:
    try:
        from hecrypt.he import CKKSContext  # noqa: F401
        from hecrypt.he import serialize  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------
# data splits and the model
# --------------------------------------------------------------------------------------
def test_iid_split_partitions(rng):
    y = rng.integers(0, 3, size=int(rng.integers(50, 300)))
    n = int(rng.integers(2, 8))
    parts = split_sites(y, n, mode="iid", seed=int(rng.integers(1 << 30)))
    allidx = np.concatenate(parts)
    assert len(parts) == n and np.array_equal(np.sort(allidx), np.arange(len(y)))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_label_skewed_split_is_skewed(rng):
    y = rng.integers(0, 2, size=600)
    seed = int(rng.integers(1 << 30))
    skew = split_sites(y, 5, mode="label_skew", alpha=0.2, seed=seed)
    iid = split_sites(y, 5, mode="iid", seed=seed)
    assert np.array_equal(np.sort(np.concatenate(skew)), np.arange(len(y)))
    assert min(len(p) for p in skew) >= 2

    def spread(parts):
        return np.std([y[p].mean() for p in parts])

    assert spread(skew) > 2 * spread(iid)


def test_split_errors():
    y = np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="unknown split"):
        split_sites(y, 2, mode="dirichlet")
    with pytest.raises(ValueError, match="samples"):
        split_sites(y, 6, min_per_site=2)
    with pytest.raises(ValueError):
        split_sites(y, 0)


def test_logistic_gradient_matches_finite_differences(rng):
    d, k, n = 4, 3, 20
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, size=n)
    model = LogisticModel(d, k)
    params = [rng.normal(size=(d, k)), rng.normal(size=k)]
    g = model.gradient(params, X, y)
    eps = 1e-6
    for pi in range(2):
        flat = params[pi].reshape(-1)
        for j in rng.choice(flat.size, size=3, replace=False):
            old = flat[j]
            flat[j] = old + eps
            lp = model.loss(params, X, y)
            flat[j] = old - eps
            lm = model.loss(params, X, y)
            flat[j] = old
            assert g[pi].reshape(-1)[j] == pytest.approx((lp - lm) / (2 * eps), rel=1e-4, abs=1e-7)


def test_federated_standardize_matches_numpy(rng):
    Xs = {f"s{i}": rng.normal(loc=rng.uniform(-50, 50, size=6), scale=rng.uniform(0.5, 20, size=6),
                              size=(int(rng.integers(10, 60)), 6)) for i in range(4)}
    mu, sd, results = federated_standardize(Xs, SecureAggregator("smpc"))
    allX = np.concatenate(list(Xs.values()))
    assert np.allclose(mu, allX.mean(axis=0), rtol=0, atol=1e-6)
    assert np.allclose(sd, allX.std(axis=0), rtol=1e-4)
    assert all(r.method == "smpc" for r in results)


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["iid", "label_skew"])
def test_smpc_fedavg_matches_plaintext_fedavg(cancer, split):
    Xtr, ytr, Xte, yte = cancer
    common = dict(rounds=15, n_sites=5, split=split, seed=3, progress=False)
    plain = train_federated(Xtr, ytr, Xte, yte, method="plaintext", **common)
    sec = train_federated(Xtr, ytr, Xte, yte, method="smpc", **common)
    central, _ = train_centralized(Xtr, ytr, Xte, yte, epochs=15, seed=3)
    assert abs(sec.accuracy - plain.accuracy) <= 0.01
    assert sec.accuracy > 0.9 and central > 0.9
    for a, b in zip(sec.params, plain.params):
        assert np.abs(a - b).max() < 1e-4
    assert len(sec.records) == 15 and not sec.failed_rounds
    # 62 parameters x 8 bytes + one 32-byte seed per site and round
    assert sec.bytes_per_site == 62 * 8 + 32
    d = sec.to_dict()
    assert d["method"] == "smpc" and d["rounds"] == 15 and len(d["records"]) == 15


@pytest.mark.skipif(not _has_ckks(), reason="hecrypt.he CKKS serialization not available")
def test_ckks_fedavg_matches_plaintext_fedavg(cancer):
    from hecrypt.he import CKKSContext, CKKSParameters

    Xtr, ytr, Xte, yte = cancer
    ctx = CKKSContext(CKKSParameters(poly_degree=4096, coeff_mod_bits=[60, 40], scale_bits=40))
    common = dict(rounds=8, n_sites=5, seed=1, progress=False)
    plain = train_federated(Xtr, ytr, Xte, yte, method="plaintext", **common)
    sec = train_federated(Xtr, ytr, Xte, yte, method="ckks", he_context=ctx, **common)
    assert abs(sec.accuracy - plain.accuracy) <= 0.01
    for a, b in zip(sec.params, plain.params):
        assert np.abs(a - b).max() < 1e-3


def test_dropouts_and_failed_rounds_leave_the_model_unchanged(cancer):
    Xtr, ytr, Xte, yte = cancer
    # on_dropout='fail': every round with a dropout fails and must not move the model
    hist = train_federated(Xtr, ytr, Xte, yte, method="smpc", rounds=12, dropout_rate=0.25, seed=5,
                           progress=False, aggregator_options={"on_dropout": "fail"})
    failed = hist.failed_rounds
    assert failed and len(failed) < 12
    prev_loss = None
    for r in hist.records:
        if r.failed:
            assert "unchanged" in r.failed
            if prev_loss is not None:
                assert r.loss == prev_loss
        prev_loss = r.loss
    # default: dropped sites are excluded and listed; the round completes
    hist = train_federated(Xtr, ytr, Xte, yte, method="smpc", rounds=12, dropout_rate=0.25, seed=5,
                           progress=False)
    assert any(r.dropped for r in hist.records)
    for r in hist.records:
        if not r.failed:
            assert set(r.sites).isdisjoint(r.dropped) and len(r.sites) + len(r.dropped) == 5


class _FailingRounds(SecureAggregator):
    """Standardisation (3 secure means) works, then every training round fails."""

    def aggregate(self, updates, **kw):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls > 3:
            raise AggregationError("simulated network failure", None, list(updates))
        return super().aggregate(updates, **kw)


def test_every_round_failing_keeps_the_initial_model(cancer):
    Xtr, ytr, Xte, yte = cancer
    hist = train_federated(Xtr, ytr, Xte, yte, aggregator=_FailingRounds("smpc"), rounds=3, progress=False)
    assert hist.failed_rounds == [1, 2, 3]
    assert all(np.all(p == 0) for p in hist.params)
    assert len({r.loss for r in hist.records}) == 1
    assert hist.bytes_per_site == 0.0


def test_plot_writes_png(cancer, tmp_path):
    pytest.importorskip("matplotlib")
    Xtr, ytr, Xte, yte = cancer
    hist = train_federated(Xtr, ytr, Xte, yte, method="smpc", rounds=3, progress=False)
    out = tmp_path / "acc.png"
    fig = hist.plot(str(out), centralized=0.97)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_training_argument_errors(cancer):
    Xtr, ytr, Xte, yte = cancer
    with pytest.raises(ValueError, match="rounds"):
        train_federated(Xtr, ytr, Xte, yte, rounds=0, progress=False)
    with pytest.raises(ValueError, match="dropout_rate"):
        train_federated(Xtr, ytr, Xte, yte, dropout_rate=1.0, progress=False)
    with pytest.raises(ValueError, match="expected X"):
        train_federated(Xtr[:, :3], ytr[:5], Xte, yte, progress=False)


# --------------------------------------------------------------------------------------
# demo and docs example
# --------------------------------------------------------------------------------------
def test_demo_json(cancer, tmp_path):
    from hecrypt.cli import main

    buf = io.StringIO()
    png = tmp_path / "demo.png"
    with redirect_stdout(buf):
        rc = main(["demo", "federated", "--method", "smpc", "--rounds", "4", "--sites", "4", "--json",
                   "--plot", str(png), "--seed", "2"])
    assert rc == 0
    res = json.loads(buf.getvalue())
    for key in ("method", "accuracy", "plaintext_accuracy", "rounds", "bytes_per_site"):
        assert key in res
    assert res["method"] == "smpc" and res["rounds"] == 4 and res["sites"] == 4
    assert abs(res["accuracy"] - res["plaintext_accuracy"]) <= 0.01
    assert res["bytes_per_site"] == 62 * 8 + 32
    assert png.exists()


def test_docs_example_runs(cancer, monkeypatch):
    methods = "smpc,ckks" if _has_ckks() else "smpc"
    monkeypatch.setattr(sys, "argv", ["federated.py", "--rounds", "3", "--methods", methods])
    buf = io.StringIO()
    with redirect_stdout(buf):
        ns = runpy.run_path(str(ROOT / "docs" / "examples" / "federated.py"), run_name="__main__")
    out = buf.getvalue()
    assert "smpc weighted mean" in out and "secure FedAvg" in out
    res = ns["main"](["--rounds", "3", "--methods", "smpc"])
    assert abs(res["smpc"] - res["plaintext"]) <= 0.01


def test_progress_bar_only_on_a_terminal(cancer, capsys):
    """Default progress=None: no bar when stderr is not a terminal; progress=True forces one."""
    Xtr, ytr, Xte, yte = cancer
    train_federated(Xtr, ytr, Xte, yte, method="smpc", rounds=2)
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    train_federated(Xtr, ytr, Xte, yte, method="smpc", rounds=2, progress=True)
    assert "federated smpc" in capsys.readouterr().err
