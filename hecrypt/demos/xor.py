"""``hecrypt demo`` (default): the tutorial's run, reproduced on hecrypt.

Part 1 is the tutorial's numpy secret sharing: 2 and 5 are split into three additive shares
over ``Q = 501337``, added share by share, and decrypted (7), then "decrypted" from two shares
only (a value unrelated to 7).  Part 2 trains the encrypted reservoir on XOR: a 256-unit
random ReLU reservoir, data, targets and model secret-shared between the parties, learning
rate 1e-3, 250 steps, and prints the loss every 50 steps (the loss is *revealed* to the data
owner each step, as in the tutorial) and the decrypted predictions (thresholded at 0.5).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

import numpy as np

from ._common import check_device, emit_json, speaker

NAME = "xor"
HELP = "the tutorial: 3-share addition over Q=501337, then an encrypted reservoir learns XOR"

Q = 501337
LONG_RUN_STEPS = 1000   # runs this long show a progress bar (on a terminal only)
XOR_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_TARGETS = np.array([[0.0], [1.0], [1.0], [0.0]])


# -----------------------------------------------------------------------------------------
# part 1: the tutorial's three-share addition over Z_Q
# -----------------------------------------------------------------------------------------
def tutorial_addition(seed: Any = None) -> dict[str, Any]:
    """Share 2 and 5 in three shares over ``Z_Q``, add them, decrypt all three and two shares.

    Returns ``{"var1", "var2", "sum_shares", "sum", "partial"}`` (lists of 3 ints, ints).
    Shares come from the ChaCha20 stream (``seed``: reproducible, for tests only).
    """
    try:  # the SMPC layer's implementation of the tutorial's functions
        from ..smpc import tutorial as tut
    except ImportError:  # pragma: no cover - the SMPC layer ships it
        tut = None
    if tut is not None and hasattr(tut, "run"):
        r = tut.run(seed=seed, a=2, b=5)
        return {k: r[k] for k in ("var1", "var2", "sum_shares", "sum", "partial")}
    return _with_ring(seed)


def _with_ring(seed: Any) -> dict[str, Any]:
    from ..ring import Stream, Zq

    ring = Zq(Q)
    stream = Stream.from_seed(seed, label="demo/xor/tutorial") if seed is not None else Stream()

    def encrypt(x: int) -> Any:
        ab = stream.uniform(ring, 2)
        c = ring.sub(ring.sub(ring.from_int([x]), ab[:1]), ab[1:])
        return np.concatenate([ab, c])

    var1, var2 = encrypt(2), encrypt(5)
    s = ring.add(var1, var2)
    total = ring.sum(s)
    partial = ring.sum(s[:2])
    return {"var1": [int(v) for v in var1], "var2": [int(v) for v in var2],
            "sum_shares": [int(v) for v in s], "sum": int(total), "partial": int(partial)}


# -----------------------------------------------------------------------------------------
# part 2: the encrypted reservoir on XOR
# -----------------------------------------------------------------------------------------
def train_xor(*, units: int = 256, lr: float = 1e-3, steps: int = 250, parties: int = 2,
              device: str | None = None, seed: Any = None, frac_bits: int = 16,
              reveal_loss: bool = True, log_every: int = 50, progress: bool | None = None,
              on_log: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train on shares and its plaintext twin; returns the trainer, both results, predictions."""
    from ..ml import ReservoirTrainer

    trainer = ReservoirTrainer(units, lr=lr, steps=steps, parties=parties, device=device, seed=seed,
                               frac_bits=frac_bits, reveal_loss=reveal_loss, log_every=log_every)

    def cb(step: int, info: dict) -> None:
        if on_log is not None and "loss" in info and step % log_every == 0:
            on_log(step, info["loss"])

    enc = trainer.fit(XOR_INPUTS, XOR_TARGETS, callback=cb, progress=progress)
    scores = trainer.predict(XOR_INPUTS)
    plain = trainer.fit_plaintext(XOR_INPUTS, XOR_TARGETS)
    return {"trainer": trainer, "encrypted": enc, "plaintext": plain, "scores": scores,
            "predictions": [int(v) for v in (scores[:, 0] > 0.5)],
            "targets": [int(v) for v in XOR_TARGETS[:, 0]]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or auto (default: $HECRYPT_DEVICE or auto)")
    parser.add_argument("--steps", type=int, default=250, help="training steps (default 250, as the tutorial)")
    parser.add_argument("--parties", type=int, default=2, help="computing parties (default 2: alice and bob)")
    parser.add_argument("--seed", type=int, default=None,
                        help="make the run reproducible (for testing only: seeded shares are predictable)")
    parser.add_argument("--units", type=int, default=256, help="reservoir size (default 256)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--frac-bits", type=int, default=16, help="fixed-point fractional bits (default 16)")
    parser.add_argument("--plot", metavar="FILE", default=None,
                        help="save a PNG of the loss curve, encrypted against plaintext (needs matplotlib)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON ('-' = stdout)")


def _check_plot_available() -> str | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib, which is not installed: pip install 'hecrypt[plot]'"
    return None


def save_loss_plot(path: str, enc: Any, plain: Any, *, title: str = "Learning XOR while encrypted") -> None:
    """PNG of the per-step loss: encrypted (revealed) against the plaintext twin."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(np.arange(len(plain.loss_history)), plain.loss_history, color="0.6", lw=4,
            label="plaintext twin (float64)")
    ax.plot(np.arange(len(enc.loss_history)), enc.loss_history, color="tab:green", lw=1.5,
            label=f"encrypted ({len(enc.parties)} parties, {enc.frac_bits} frac. bits; loss revealed)")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss: sum |prediction - target|")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    say = speaker(args.json)
    out = sys.stderr if args.json == "-" else sys.stdout
    status = check_device(args.device, NAME)
    if status is not None:
        return status

    if args.plot:
        err = _check_plot_available()
        if err:
            print(f"hecrypt demo xor: {err}", file=sys.stderr)
            return 2
    for name, lo in (("steps", 0), ("parties", 2), ("units", 1), ("frac_bits", 0)):
        if getattr(args, name) < lo:
            print(f"hecrypt demo xor: --{name.replace('_', '-')} must be at least {lo}", file=sys.stderr)
            return 2
    if not args.lr > 0:
        print("hecrypt demo xor: --lr must be positive", file=sys.stderr)
        return 2

    say("Encrypting variables 2 and 5 as var1 and var2")
    tut = tutorial_addition(args.seed)
    say("Performing encrypted addition...")
    say("Multiparty result from add(var1,var2):")
    say("\t\t\t\t", tut["sum_shares"])
    say("Decrypted result:")
    say("\t\t\t\t", tut["sum"])
    say("Decrypted partial result:")
    say("\t\t\t\t", tut["partial"])

    say("\nBegin training encrypted reservoir...")
    from ..ml.reservoir import default_party_names

    names = default_party_names(args.parties)
    say(f"(features, targets and model are secret-shared among {', '.join(names)}; the loss is "
        f"revealed to {names[0]} at each step, as in the tutorial)")

    def on_log(step: int, loss: float) -> None:
        from tqdm import tqdm

        tqdm.write("loss at step %i: %.3e" % (step, loss), file=out)   # keeps a progress bar intact
        out.flush()

    t0 = time.perf_counter()
    r = train_xor(units=args.units, lr=args.lr, steps=args.steps, parties=args.parties, device=args.device,
                  seed=args.seed, frac_bits=args.frac_bits, on_log=on_log,
                  progress=None if args.steps >= LONG_RUN_STEPS else False)
    enc, plain = r["encrypted"], r["plaintext"]
    say("predictions:")
    say("\t\t\t\t", r["predictions"])
    say("targets:")
    say("\t\t\t\t", r["targets"])

    from ..ml import relative_loss_error

    rel = relative_loss_error(enc, plain) if enc.loss else None
    say(f"\n({enc.units}-unit reservoir, {len(enc.parties)} parties ({', '.join(enc.parties)}), "
        f"{enc.ring} with {enc.frac_bits} fractional bits, device {enc.device}.")
    say(f" {enc.steps} steps in {enc.seconds:.2f} s ({enc.seconds_per_step * 1e3:.2f} ms/step), "
        f"{enc.bytes_sent / 1e6:.2f} MB sent"
        + (f"; largest relative difference to the plaintext twin's loss: {rel:.1e})" if rel is not None
           else ")"))

    if args.plot:
        save_loss_plot(args.plot, enc, plain)
        say(f"loss plot written to {args.plot}")

    if args.json:
        doc = {
            "demo": NAME,
            "sum_shares": tut["sum_shares"],
            "sum": tut["sum"],
            "partial": tut["partial"],
            "modulus": Q,
            "loss": [[int(s), float(v)] for s, v in enc.loss],
            "loss_revealed": enc.loss_revealed,
            "revealed": enc.revealed,
            "plaintext_loss": [[int(s), float(v)] for s, v in plain.loss],
            "max_relative_loss_error": rel,
            "predictions": r["predictions"],
            "targets": r["targets"],
            "scores": [float(v) for v in r["scores"][:, 0]],
            "device": enc.device,
            "parties": list(enc.parties),
            "ring": enc.ring,
            "frac_bits": enc.frac_bits,
            "units": enc.units,
            "lr": enc.lr,
            "steps": enc.steps,
            "seconds": enc.seconds,
            "seconds_per_step": enc.seconds_per_step,
            "plaintext_seconds_per_step": plain.seconds_per_step,
            "bytes_sent": enc.bytes_sent,
            "online_bytes": enc.online_bytes,
            "offline_bytes": enc.offline_bytes,
            "online_seconds": enc.online_seconds,
            "offline_seconds": enc.offline_seconds,
            "rounds": enc.rounds,
            "total_seconds": time.perf_counter() - t0,
            "seed": args.seed,
        }
        emit_json(doc, args.json)
    return 0
