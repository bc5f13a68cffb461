"""Suite ``train``: time per encrypted training step of the reservoir trainer.

Cases (2 parties, Z_2^64, 16 fractional bits, the data mask reused):

* ``train/xor units=256 n=4``: the tutorial's XOR step;
* ``train/digits units=1024 n=1347 k=10``: scikit-learn's digits (skipped without scikit-learn).

Each row times one full step on shares (``pred = X W``, ``grad = pred - Y``,
``W -= s X^T grad``: two Beaver matmuls with their truncations, the dealer's triples
included, no loss revealed) against the plaintext twin's float64 step on the same data in the
same run (``baseline``).  Extra keys: ``overhead`` (encrypted / plaintext time),
``online_s``/``offline_s`` (mean per step from the SMPC timers; offline = the dealer),
``bytes_per_step`` (dealer traffic included), ``online_bytes_per_step``,
``rounds_per_step`` (online openings and offline dealer deliveries), ``setup_s`` (sharing
the data and the first step, which opens the reused mask).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._harness import Bench

SUITE = "train"
DESCRIPTION = "encrypted reservoir training: time per step (XOR, digits) vs the plaintext twin"


def _case(bench: Bench, name: str, trainer: Any, x: np.ndarray, y: np.ndarray, repeat: int) -> None:
    t0 = time.perf_counter()
    sess = trainer.session(x, y)
    sess.step()                       # the first step opens the reused mask of X
    bench.sync()
    setup_s = time.perf_counter() - t0
    ctx = trainer.context
    stats, timing = ctx.stats, getattr(ctx, "timing", None)
    b0, r0 = stats.bytes_sent, stats.rounds
    snap0 = stats.snapshot()
    on0, off0 = (timing.online_s, timing.offline_s) if timing is not None else (0.0, 0.0)
    enc_s = bench.time(sess.step, repeat=repeat, warmup=0)
    nsteps = sess.i - 1
    bytes_per_step = (stats.bytes_sent - b0) / nsteps if nsteps else None
    phase = _phase_bytes(snap0, stats.snapshot())
    online_bytes = phase["online"] / nsteps if (nsteps and phase["online"] is not None) else None
    rounds_per_step = (stats.rounds - r0) / nsteps if nsteps else None
    online_s = (timing.online_s - on0) / nsteps if (timing is not None and nsteps) else None
    offline_s = (timing.offline_s - off0) / nsteps if (timing is not None and nsteps) else None

    feats = trainer.features(x, fit=True)
    targets = np.asarray(y, dtype=np.float64).reshape(len(feats), -1)
    w = np.zeros((feats.shape[1], targets.shape[1]))
    s = sess.step_scale

    def plain_step() -> None:
        nonlocal w
        w -= s * (feats.T @ (feats @ w - targets))

    plain_s = bench.time(plain_step, repeat=max(repeat, 5), sync=False)
    bench.record(name, enc_s, "plaintext twin (numpy float64)", plain_s,
                 device=str(trainer.context.device), overhead=(enc_s / plain_s) if plain_s else None,
                 online_s=online_s, offline_s=offline_s, setup_s=setup_s, bytes_per_step=bytes_per_step,
                 online_bytes_per_step=online_bytes, rounds_per_step=rounds_per_step,
                 parties=len(trainer.parties), units=trainer.reservoir.units,
                 n=int(feats.shape[0]), features=int(feats.shape[1]), outputs=int(targets.shape[1]))


def _phase_bytes(s0: dict, s1: dict) -> dict:
    out = {}
    for ph in ("online", "offline"):
        b = ((s1.get("by_phase") or {}).get(ph) or {}).get("bytes_sent")
        a = ((s0.get("by_phase") or {}).get(ph) or {}).get("bytes_sent", 0)
        out[ph] = (b - a) if b is not None else None
    return out


def run(bench: Bench) -> None:
    from ..ml import ReservoirTrainer

    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    trainer = ReservoirTrainer(256, lr=1e-3, parties=2, device=bench.device)
    _case(bench, "train/xor units=256 n=4", trainer, x, y, repeat=20 if bench.quick else 100)

    try:
        from ..demos.digits import load_digits_split, make_trainer, one_hot

        x_tr, y_tr, _, _ = load_digits_split()
    except ImportError as exc:
        bench.log(f"train/digits skipped: {exc}")
        return
    trainer = make_trainer(units=1024, parties=2, device=bench.device)
    _case(bench, f"train/digits units=1024 n={len(y_tr)} k=10", trainer, x_tr, one_hot(y_tr),
          repeat=3 if bench.quick else 7)
