"""``hecrypt demo federated``: five hospitals train a breast-cancer classifier together.

The Wisconsin breast cancer data (scikit-learn) is split among ``--sites`` sites; each
round every site trains a logistic regression locally and the sites' model deltas are
combined by secure aggregation (``--method smpc``: secret shares to two non-colluding
aggregators; ``--method ckks``: encrypted under the model owner's public key).  The same
run is repeated with plaintext federated averaging (same split, seed and schedule) and
with centralised plaintext training, and the three accuracies are printed side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._common import emit_json

NAME = "federated"
HELP = "federated logistic regression on breast cancer data with secure aggregation (smpc or ckks)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=("smpc", "ckks", "plaintext"), default="smpc",
                   help="secure aggregation method (default smpc)")
    p.add_argument("--rounds", type=int, default=20, help="federated rounds (default 20)")
    p.add_argument("--sites", type=int, default=5, help="number of sites (default 5)")
    p.add_argument("--local-epochs", type=int, default=1, help="local epochs per round (default 1)")
    p.add_argument("--lr", type=float, default=0.1, help="local SGD learning rate (default 0.1)")
    p.add_argument("--split", choices=("iid", "label_skew"), default="iid", help="data split (default iid)")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet alpha of the label-skewed split")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="probability that a site drops out mid-round (default 0)")
    p.add_argument("--seed", type=int, default=0, help="split/shuffle seed (default 0)")
    p.add_argument("--device", default=None, help="auto|cpu|cuda (default: $HECRYPT_DEVICE, else auto)")
    p.add_argument("--plot", metavar="PNG", help="save the accuracy-per-round plot to PNG")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the result as a JSON object to FILE ('-' or no value: stdout)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar even when stderr is not a terminal (default: on a terminal only)")


def run_demo(method: str = "smpc", *, rounds: int = 20, sites: int = 5, local_epochs: int = 1, lr: float = 0.1,
             split: str = "iid", alpha: float = 0.5, dropout: float = 0.0, seed: int = 0,
             device: str | None = None, progress: bool | None = None, plot: str | None = None) -> dict[str, Any]:
    """Run the demo and return the JSON-able result (see the module docstring)."""
    from ..backend import resolve_device
    from ..ml.federated import load_breast_cancer_data, plot_accuracy, train_centralized, train_federated

    dev = resolve_device(device)
    Xtr, ytr, Xte, yte = load_breast_cancer_data(seed)
    common = dict(rounds=rounds, local_epochs=local_epochs, lr=lr, n_sites=sites, split=split, alpha=alpha,
                  seed=seed, progress=progress, dropout_rate=dropout)
    t0 = time.perf_counter()
    hist = train_federated(Xtr, ytr, Xte, yte, method=method, device=dev, **common)
    secs = time.perf_counter() - t0
    base = hist if method == "plaintext" else train_federated(Xtr, ytr, Xte, yte, method="plaintext", **common)
    central, _ = train_centralized(Xtr, ytr, Xte, yte, epochs=rounds * local_epochs, lr=lr, seed=seed)
    if plot:
        fig = plot_accuracy([hist] if base is hist else [hist, base], plot, centralized=central)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return {
        "method": method,
        "accuracy": hist.accuracy,
        "plaintext_accuracy": base.accuracy,
        "centralized_accuracy": central,
        "rounds": rounds,
        "bytes_per_site": hist.bytes_per_site,
        "setup_bytes_per_site": hist.setup_bytes_per_site,
        "sites": sites,
        "split": split,
        "seed": seed,
        "device": dev,
        "dropout": dropout,
        "failed_rounds": hist.failed_rounds,
        "accuracy_per_round": hist.accuracies,
        "plaintext_accuracy_per_round": base.accuracies,
        "sites_counted_per_round": [len(r.sites) for r in hist.records],
        "seconds": secs,
        "plot": plot,
    }


def run(args: argparse.Namespace) -> int:
    for name in ("rounds", "sites", "local_epochs"):
        if getattr(args, name) < 1:
            print(f"hecrypt demo federated: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        res = run_demo(args.method, rounds=args.rounds, sites=args.sites, local_epochs=args.local_epochs,
                       lr=args.lr, split=args.split, alpha=args.alpha, dropout=args.dropout, seed=args.seed,
                       device=args.device, progress=args.progress, plot=args.plot)
    except ImportError as exc:
        print(f"hecrypt demo federated: {exc}", file=sys.stderr)
        return 2
    if args.json:
        emit_json(res, args.json)
        if args.json == "-":
            return 0
    print(f"federated logistic regression, breast cancer, {res['sites']} sites ({res['split']}), "
          f"{res['rounds']} rounds, seed {res['seed']}, device {res['device']}")
    print(f"  {res['method']:<11} secure aggregation : {100 * res['accuracy']:6.2f} % test accuracy, "
          f"{res['bytes_per_site'] / 1e3:.1f} kB sent per site per round, {res['seconds']:.2f} s")
    print(f"  plaintext FedAvg (same split)  : {100 * res['plaintext_accuracy']:6.2f} %")
    print(f"  centralised plaintext          : {100 * res['centralized_accuracy']:6.2f} %")
    if res["failed_rounds"]:
        print(f"  failed rounds (model unchanged): {res['failed_rounds']}")
    if res["plot"]:
        print(f"  plot: {res['plot']}")
    return 0
