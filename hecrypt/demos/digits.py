"""``hecrypt demo digits``: the encrypted reservoir on scikit-learn's handwritten digits.

The tutorial's XOR training set is 12 bits.  This demo trains the same kind of model on a
real dataset: the 8x8 digits shipped inside scikit-learn (1797 images, nothing downloaded),
a 1024-unit random ReLU reservoir, 10 one-vs-all outputs, full-batch gradient descent on
secret shares.  The inner dimension of both products (1025 features with the bias, 1347
training images) exceeds the 1024-term exactness limit of one float64-limb matmul, so the
chunked ring matmul is used.  It reports test accuracy against the plaintext twin, training
time and the bytes the parties sent.

Preprocessing (by the data owner, in plaintext): pixels / 16, the reservoir, per-feature
standardisation with the training statistics scaled by ``1/sqrt(units)``, a bias column of
0.25; the step is ``lr / n_train`` (``mean_gradient``).  See ``docs/reservoir.md`` for why
these choices suit fixed point.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from ._common import check_device, emit_json, speaker

NAME = "digits"
HELP = "encrypted reservoir on scikit-learn's handwritten digits (10 classes, 1024 units)"

DEFAULTS = {"units": 1024, "steps": 60, "lr": 12.0, "input_scale": 0.5, "offset_scale": 0.5, "bias": 0.25}


def load_digits_split(*, test_fraction: float = 0.25, split_seed: int = 0, limit: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: pixels scaled to [0, 1], integer labels 0..9.

    The split is a public, stratified permutation (``split_seed``); ``limit`` keeps only the
    first ``limit`` images of a seeded shuffle (small configurations for tests).  Needs
    scikit-learn (``pip install 'hecrypt[datasets]'``): ImportError with that hint otherwise.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits demo needs scikit-learn: pip install 'hecrypt[datasets]'") from None
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64) / 16.0
    y = np.asarray(data.target, dtype=np.int64)
    g = np.random.default_rng(split_seed)
    if limit is not None:
        if limit < 20:
            raise ValueError("limit must be at least 20 images")
        keep = g.permutation(len(y))[:limit]
        x, y = x[keep], y[keep]
    train, test = [], []
    for c in range(10):
        idx = g.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test.extend(idx[:n_test].tolist())
        train.extend(idx[n_test:].tolist())
    train = g.permutation(np.array(train, dtype=np.int64))
    test = np.sort(np.array(test, dtype=np.int64))
    return x[train], y[train], x[test], y[test]


def one_hot(y: np.ndarray, k: int = 10) -> np.ndarray:
    return np.eye(k)[np.asarray(y, dtype=np.int64)]


def make_trainer(*, units: int = DEFAULTS["units"], steps: int = DEFAULTS["steps"], lr: float = DEFAULTS["lr"],
                 parties: int = 2, device: str | None = None, seed: Any = None, frac_bits: int = 16,
                 reveal_loss: bool = False) -> Any:
    """The digits configuration of :class:`hecrypt.ml.ReservoirTrainer`."""
    from ..ml import ReservoirTrainer

    return ReservoirTrainer(units, lr=lr, steps=steps, parties=parties, device=device, seed=seed,
                            frac_bits=frac_bits, reveal_loss=reveal_loss, log_every=10,
                            input_scale=DEFAULTS["input_scale"], offset_scale=DEFAULTS["offset_scale"],
                            standardize=True, bias=DEFAULTS["bias"], mean_gradient=True)


def train_digits(*, units: int = DEFAULTS["units"], steps: int = DEFAULTS["steps"], lr: float = DEFAULTS["lr"],
                 parties: int = 2, device: str | None = None, seed: Any = None, frac_bits: int = 16,
                 limit: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train on shares and in plaintext; test accuracy of both (predictions opened to the owner)."""
    x_tr, y_tr, x_te, y_te = load_digits_split(limit=limit)
    trainer = make_trainer(units=units, steps=steps, lr=lr, parties=parties, device=device, seed=seed,
                           frac_bits=frac_bits)
    enc = trainer.fit(x_tr, one_hot(y_tr), progress=progress)
    t0 = time.perf_counter()
    scores = trainer.predict(x_te)
    predict_s = time.perf_counter() - t0
    plain = trainer.fit_plaintext(x_tr, one_hot(y_tr))
    plain_scores = trainer.predict_plaintext(x_te)
    acc = float(np.mean(np.argmax(scores, axis=1) == y_te))
    pacc = float(np.mean(np.argmax(plain_scores, axis=1) == y_te))
    return {
        "accuracy": acc,
        "plaintext_accuracy": pacc,
        "seconds": enc.seconds + enc.setup_seconds,
        "train_seconds": enc.seconds,
        "seconds_per_step": enc.seconds_per_step,
        "plaintext_seconds_per_step": plain.seconds_per_step,
        "predict_seconds": predict_s,
        "bytes_sent": enc.bytes_sent,
        "online_bytes": enc.online_bytes,
        "offline_bytes": enc.offline_bytes,
        "online_seconds": enc.online_seconds,
        "offline_seconds": enc.offline_seconds,
        "rounds": enc.rounds,
        "device": enc.device,
        "parties": list(enc.parties),
        "ring": enc.ring,
        "frac_bits": enc.frac_bits,
        "units": enc.units,
        "features": enc.units + 1,
        "steps": enc.steps,
        "lr": lr,
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "revealed": enc.revealed + [f"test-set scores opened to {enc.parties[0]}"],
        "trainer": trainer,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or auto (default: $HECRYPT_DEVICE or auto)")
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"],
                        help=f"gradient steps (default {DEFAULTS['steps']})")
    parser.add_argument("--parties", type=int, default=2, help="computing parties (default 2)")
    parser.add_argument("--seed", type=int, default=None,
                        help="make the run reproducible (for testing only: seeded shares are predictable)")
    parser.add_argument("--units", type=int, default=DEFAULTS["units"],
                        help=f"reservoir size (default {DEFAULTS['units']})")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help=f"learning rate on the mean gradient (default {DEFAULTS['lr']})")
    parser.add_argument("--frac-bits", type=int, default=16, help="fixed-point fractional bits (default 16)")
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (quick runs)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON ('-' = stdout)")


def run(args: argparse.Namespace) -> int:
    say = speaker(args.json)
    status = check_device(args.device, NAME)
    if status is not None:
        return status

    for name, lo in (("steps", 0), ("parties", 2), ("units", 1), ("frac_bits", 0)):
        if getattr(args, name) < lo:
            print(f"hecrypt demo digits: --{name.replace('_', '-')} must be at least {lo}", file=sys.stderr)
            return 2
    try:
        load_digits_split(limit=args.limit)
    except ImportError as exc:
        print(f"hecrypt demo digits: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"hecrypt demo digits: {exc}", file=sys.stderr)
        return 2
    say(f"Training a {args.units}-unit encrypted reservoir on scikit-learn's digits "
        f"({args.parties} parties, {args.steps} steps, nothing revealed during training)...")
    r = train_digits(units=args.units, steps=args.steps, lr=args.lr, parties=args.parties, device=args.device,
                     seed=args.seed, frac_bits=args.frac_bits, limit=args.limit)
    say(f"train/test images:   {r['n_train']} / {r['n_test']}, {r['features']} features, 10 outputs")
    say(f"test accuracy:       {r['accuracy'] * 100:.2f}% encrypted, "
        f"{r['plaintext_accuracy'] * 100:.2f}% plaintext twin")
    say(f"training time:       {r['train_seconds']:.2f} s ({r['seconds_per_step'] * 1e3:.1f} ms/step; "
        f"plaintext {r['plaintext_seconds_per_step'] * 1e3:.2f} ms/step), "
        f"sharing {r['seconds'] - r['train_seconds']:.2f} s")
    split = ""
    if r["offline_bytes"] is not None:
        split = f" ({r['offline_bytes'] / 1e6:.1f} MB of it from the dealer, offline)"
    say(f"bytes sent:          {r['bytes_sent'] / 1e6:.1f} MB in {r['rounds']} rounds{split}")
    say(f"device:              {r['device']} ({', '.join(r['parties'])}; {r['ring']}, "
        f"{r['frac_bits']} fractional bits)")
    say(f"revealed:            only the test-set scores, to {r['parties'][0]} (the data owner)")
    if args.json:
        doc = {k: v for k, v in r.items() if k != "trainer"}
        doc["demo"] = NAME
        doc["seed"] = args.seed
        emit_json(doc, args.json)
    return 0
