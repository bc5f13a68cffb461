"""Reservoir trainer: plaintext twin, encrypted training against it, what is revealed, errors."""

from __future__ import annotations

import numpy as np
import pytest

from hecrypt.backend import cuda_status
from hecrypt.errors import EncodingError, PrecisionError
from hecrypt.ml import Reservoir, ReservoirTrainer, TrainResult, relative_loss_error

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def _seed(rng: np.random.Generator) -> int:
    """A fresh test seed each run (reproducible through HECRYPT_TEST_SEED)."""
    return int(rng.integers(0, 2**31))


# -- the reservoir --------------------------------------------------------------------------
def test_reservoir_is_relu_of_projection(rng):
    res = Reservoir(3, 17, scale=0.7, offset_scale=0.3, seed=_seed(rng))
    x = rng.standard_normal((5, 3))
    f = res.transform(x)
    assert f.shape == (5, 17)
    np.testing.assert_array_equal(f, np.maximum(x @ res.weights + res.offsets, 0.0))
    assert (f >= 0).all() and (f > 0).any()
    assert res.weights.std() == pytest.approx(0.7, rel=0.5)


def test_reservoir_seed_reproducible_and_fresh_without_seed(rng):
    s = _seed(rng)
    np.testing.assert_array_equal(Reservoir(2, 8, seed=s).weights, Reservoir(2, 8, seed=s).weights)
    assert not np.array_equal(Reservoir(2, 8).weights, Reservoir(2, 8).weights)


def test_reservoir_from_weights_and_errors(rng):
    w = rng.standard_normal((2, 6))
    res = Reservoir.from_weights(w)
    np.testing.assert_array_equal(res.transform(XOR_X), np.maximum(XOR_X @ w, 0))
    with pytest.raises(ValueError, match="features"):
        res.transform(rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        res.transform(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError):
        Reservoir.from_weights(w, offsets=np.zeros(5))
    with pytest.raises(TypeError):
        Reservoir(2.5, 4)
    with pytest.raises(ValueError):
        Reservoir(2, 0)


# -- the plaintext twin ----------------------------------------------------------------------
def test_plaintext_twin_is_the_tutorial_loop(rng):
    seed = _seed(rng)
    t = ReservoirTrainer(64, lr=1e-3, steps=30, seed=seed, log_every=10)
    res = t.fit_plaintext(XOR_X, XOR_Y)
    # the tutorial's loop, written out independently
    feats = np.maximum(XOR_X @ t.reservoir.weights, 0)
    w = np.zeros((64, 1))
    losses = []
    for _ in range(30):
        g = feats @ w - XOR_Y
        losses.append(np.abs(g).sum())
        w = w - 1e-3 * (feats.T @ g)
    np.testing.assert_allclose(res.loss_history, losses, rtol=1e-12)
    np.testing.assert_allclose(res.weights, w, rtol=1e-12, atol=1e-15)
    assert res.loss == [[0, 2.0], [10, losses[10]], [20, losses[20]]]
    assert not res.encrypted and not res.loss_revealed


def test_standardize_bias_and_mean_gradient(rng):
    x = rng.random((40, 5))
    y = rng.random((40, 3))
    t = ReservoirTrainer(32, lr=0.5, steps=5, seed=_seed(rng), standardize=True, bias=0.25,
                         mean_gradient=True, offset_scale=0.5)
    f = t.features(x, fit=True)
    assert f.shape == (40, 33)
    np.testing.assert_allclose(f[:, -1], 0.25)
    np.testing.assert_allclose(f[:, :-1].mean(axis=0), 0, atol=1e-12)
    live = f[:, :-1].std(axis=0) > 0
    np.testing.assert_allclose(f[:, :-1].std(axis=0)[live], 1 / np.sqrt(32), rtol=1e-9)
    # trace of the feature covariance is at most 1 (+ bias^2): lr < 2 is a stable step
    assert np.trace(f[:, :-1].T @ f[:, :-1] / 40) <= 1 + 1e-9
    res = t.fit_plaintext(x, y)
    assert res.step_scale == pytest.approx(0.5 / 40)
    # statistics are reused for new data (no refit)
    f2 = t.features(x[:7])
    np.testing.assert_allclose(f2, f[:7])


def test_parameter_errors():
    with pytest.raises(ValueError):
        ReservoirTrainer(16, lr=0.0)
    with pytest.raises(ValueError):
        ReservoirTrainer(16, lr=float("nan"))
    with pytest.raises(TypeError):
        ReservoirTrainer(16, lr="fast")
    with pytest.raises(ValueError):
        ReservoirTrainer(16, parties=1)
    with pytest.raises(ValueError):
        ReservoirTrainer(16, parties=("alice", "alice"))
    with pytest.raises(TypeError):
        ReservoirTrainer(16, parties=2.0)
    with pytest.raises(ValueError):
        ReservoirTrainer(16, steps=-1)
    with pytest.raises(TypeError):
        ReservoirTrainer(16.5)
    t = ReservoirTrainer(16, steps=1)
    with pytest.raises(ValueError, match="samples"):
        t.fit_plaintext(XOR_X, XOR_Y[:3])
    with pytest.raises(RuntimeError, match="fit"):
        t.predict(XOR_X)
    with pytest.raises(RuntimeError, match="fit_plaintext"):
        t.predict_plaintext(XOR_X)


# -- encrypted training ---------------------------------------------------------------------
@pytest.mark.parametrize("frac_bits, tol", [(16, 2e-2), (20, 1e-3)])
def test_tutorial_settings_match_plaintext(rng, frac_bits, tol):
    """256 units, lr 1e-3, 250 steps, 2 parties: XOR learned, loss within tol of the twin."""
    t = ReservoirTrainer(256, lr=1e-3, steps=250, parties=2, seed=_seed(rng), frac_bits=frac_bits,
                         reveal_loss=True)
    enc = t.fit(XOR_X, XOR_Y)
    plain = t.fit_plaintext(XOR_X, XOR_Y)
    assert [s for s, _ in enc.loss] == [0, 50, 100, 150, 200]
    assert enc.loss[0][1] == pytest.approx(2.0, abs=1e-4)
    err = relative_loss_error(enc, plain)
    if err > tol:
        # The difference is the random walk of the unbiased truncation's rounding in W (1 unit
        # of 2^-f per element and step; the fixed-point floor, reproduced by a float simulation
        # of stochastic rounding).  Over 13000 simulated reservoirs and share draws the largest
        # relative difference exceeded 1e-3 at f = 20 in 2 (1.5e-4) and 2e-2 at f = 16 in none
        # (largest 1.5e-2).  So one retry with fresh shares on the same reservoir keeps this
        # test's false-failure rate near 1e-5; a second miss is a real regression.
        t = ReservoirTrainer(lr=1e-3, steps=250, parties=2, seed=_seed(rng), frac_bits=frac_bits,
                             reveal_loss=True, reservoir=t.reservoir)
        enc = t.fit(XOR_X, XOR_Y)
        err2 = relative_loss_error(enc, t.fit_plaintext(XOR_X, XOR_Y))
        assert err2 <= tol, (err, err2, enc.loss, plain.loss)
    assert enc.loss[-1][1] < 0.5 * enc.loss[1][1]                 # it learns
    scores = t.predict(XOR_X)
    assert ((scores[:, 0] > 0.5).astype(int) == XOR_Y[:, 0]).all(), scores
    # the model on shares follows the float64 twin
    w = t.model.reveal()
    np.testing.assert_allclose(w, plain.weights, atol=2.0 ** -frac_bits * 400)
    assert enc.loss_revealed and enc.revealed and "alice" in enc.revealed[0]
    assert enc.encrypted and enc.bytes_sent > 0 and enc.rounds > 0
    assert enc.parties == ("alice", "bob") and enc.frac_bits == frac_bits


def test_nothing_revealed_by_default(rng, monkeypatch):
    from hecrypt.smpc import SharedTensor

    def refuse(self, *a, **k):
        raise AssertionError("training revealed a value")

    t = ReservoirTrainer(32, lr=1e-3, steps=5, seed=_seed(rng))
    monkeypatch.setattr(SharedTensor, "reveal", refuse)
    res = t.fit(XOR_X, XOR_Y)
    monkeypatch.undo()
    assert res.loss == [] and res.loss_history == [] and not res.loss_revealed and res.revealed == []
    assert res.as_dict()["loss_revealed"] is False


def test_mask_reuse_is_explicit_and_saves_traffic(rng):
    seed = _seed(rng)
    sent = {}
    for reuse in (True, False):
        t = ReservoirTrainer(64, lr=1e-3, steps=6, seed=seed, reuse_mask=reuse)
        sent[reuse] = t.fit(XOR_X, XOR_Y).bytes_sent
    assert sent[True] < sent[False], sent


def test_callback_progress_and_session(rng, capsys):
    calls = []
    t = ReservoirTrainer(16, lr=1e-3, steps=7, seed=_seed(rng), reveal_loss=True, log_every=3)
    res = t.fit(XOR_X, XOR_Y, callback=lambda i, info: calls.append((i, info)))
    assert [i for i, _ in calls] == list(range(7))
    assert all(info["loss_revealed"] and info["loss"] >= 0 for _, info in calls)
    assert [s for s, _ in res.loss] == [0, 3, 6]
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""       # no tqdm output when not a terminal
    sess = t.session(XOR_X, XOR_Y)
    assert sess.step() == pytest.approx(2.0, abs=1e-3)
    assert isinstance(res, TrainResult) and res.seconds_per_step > 0


def test_three_parties_and_input_party(rng):
    # 150 steps: the plaintext twin itself misses XOR for ~1.5% of reservoirs after only 60
    t = ReservoirTrainer(64, lr=4e-3, steps=150, parties=3, seed=_seed(rng), reveal_loss=True,
                         data_owner="hospital", log_every=10)
    enc = t.fit(XOR_X, XOR_Y)
    plain = t.fit_plaintext(XOR_X, XOR_Y)
    assert enc.parties == ("alice", "bob", "carol")
    assert "hospital" in enc.revealed[0]
    assert relative_loss_error(enc, plain) < 5e-2
    assert ((t.predict(XOR_X)[:, 0] > 0.5).astype(int) == XOR_Y[:, 0]).all()


def test_dealer_truncation_matches_plaintext(rng):
    """The dealer-assisted truncation (any number of parties) must round without bias too: a
    bias of a fraction of 2^-f per step accumulates in W over the tutorial's 250 steps."""
    t = ReservoirTrainer(256, lr=1e-3, steps=250, parties=2, truncation="dealer", seed=_seed(rng),
                         reveal_loss=True)
    enc = t.fit(XOR_X, XOR_Y)
    plain = t.fit_plaintext(XOR_X, XOR_Y)
    assert relative_loss_error(enc, plain) <= 2e-2, (enc.loss, plain.loss)


def test_other_rings(rng):
    with pytest.raises(PrecisionError):
        ReservoirTrainer(16, ring="Z2_32", frac_bits=16).context
    t = ReservoirTrainer(64, lr=1e-3, steps=20, seed=_seed(rng), ring=(1 << 61) - 1, frac_bits=16,
                         reveal_loss=True, log_every=5)
    enc = t.fit(XOR_X, XOR_Y)
    plain = t.fit_plaintext(XOR_X, XOR_Y)
    assert relative_loss_error(enc, plain) < 2e-2


def test_out_of_range_data_is_refused(rng):
    t = ReservoirTrainer(8, steps=1, seed=_seed(rng), input_scale=1.0)
    with pytest.raises(EncodingError):
        t.fit(np.full((2, 2), 1e16), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="NaN"):
        t.fit(np.array([[np.inf, 0.0]]), np.zeros((1, 1)))


def test_chunked_inner_dimension(rng):
    """1025 features (> 1024, the exact-limb chunk): products stay exact, training follows the twin."""
    x = rng.random((30, 6))
    y = (x[:, :1] > 0.5).astype(float)
    t = ReservoirTrainer(1024, lr=0.5, steps=4, seed=_seed(rng), standardize=True, bias=0.25,
                         mean_gradient=True, reveal_loss=True, log_every=1, offset_scale=0.5)
    enc = t.fit(x, y)
    plain = t.fit_plaintext(x, y)
    assert relative_loss_error(enc, plain) < 1e-2
    np.testing.assert_allclose(t.model.reveal(), plain.weights, atol=1e-3)


@pytest.mark.gpu
def test_cpu_and_gpu_give_the_same_run(rng):
    if not cuda_status()[0]:
        pytest.skip("no CUDA GPU")
    seed = _seed(rng)
    out = {}
    for dev in ("cpu", "cuda"):
        t = ReservoirTrainer(256, lr=1e-3, steps=50, seed=seed, device=dev, reveal_loss=True)
        r = t.fit(XOR_X, XOR_Y)
        out[dev] = (r.loss_history, t.model.reveal())
    assert out["cpu"][0] == out["cuda"][0]
    np.testing.assert_array_equal(out["cpu"][1], out["cuda"][1])


def test_docs_example_runs(capsys):
    """The first python block of docs/reservoir.md runs as written."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "reservoir.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    ns: dict = {}
    exec(compile(block, "docs/reservoir.md", "exec"), ns)
    assert (ns["trainer"].predict(ns["x"])[:, 0] > 0.5).tolist() == [False, True, True, False]
    assert ns["enc"].loss_revealed and relative_loss_error(ns["enc"], ns["plain"]) <= 2e-2


def test_twenty_bits_uses_failure_free_truncation():
    """At 20 fractional bits local truncation would fail in about 1 run in 40-70 (seed 1016
    blew up with it); `auto` then picks dealer truncation, which never fails."""
    t = ReservoirTrainer(256, lr=1e-3, steps=250, seed=1016, reveal_loss=True, frac_bits=20)
    assert t.context.truncation == "dealer"
    enc = t.fit(XOR_X, XOR_Y)
    plain = t.fit_plaintext(XOR_X, XOR_Y)
    assert relative_loss_error(enc, plain) <= 1e-3, (enc.loss, plain.loss)
