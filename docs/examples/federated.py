"""Federated learning with secure aggregation: five hospitals, one breast-cancer classifier.

Run ``python docs/examples/federated.py`` (``--rounds``, ``--methods smpc,ckks``, ``--plot``).
Needs scikit-learn for the data set (``pip install 'hecrypt[datasets]'``) and matplotlib
for ``--plot``.  The test suite runs this file on a small configuration.
"""

from __future__ import annotations

import argparse

import numpy as np

from hecrypt.ml.aggregation import SecureAggregator
from hecrypt.ml.federated import load_breast_cancer_data, plot_accuracy, train_centralized, train_federated


def aggregation_basics() -> None:
    """The building block: three hospitals' model updates, summed without revealing any."""
    rng = np.random.default_rng(0)  # public example data
    updates = {f"hospital{i}": [rng.normal(size=(30, 2)), rng.normal(size=2)] for i in range(3)}
    weights = {"hospital0": 120.0, "hospital1": 80.0, "hospital2": 200.0}  # sample counts

    agg = SecureAggregator("smpc", aggregators=2, record_view=True)
    res = agg.mean(updates, weights=weights)
    exact = sum(weights[s] * u[0] for s, u in updates.items()) / sum(weights.values())
    print(f"smpc weighted mean: max error {np.abs(res.value[0] - exact).max():.1e}, "
          f"{res.mean_bytes_per_site:.0f} bytes sent per site, sites counted {res.sites}")
    print(f"aggregator0 received message kinds: {sorted(agg.view.kinds('aggregator0'))}")

    # a hospital that drops out mid-round is excluded; the mean is over the others
    updates["hospital1"] = None
    res = agg.mean(updates, weights=weights)
    print(f"with hospital1 offline: counted {res.sites}, dropped {res.dropped}")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--sites", type=int, default=5)
    p.add_argument("--methods", default="smpc,ckks", help="comma-separated: smpc, ckks")
    p.add_argument("--split", default="iid", choices=("iid", "label_skew"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="PNG", default=None)
    args = p.parse_args(argv)

    aggregation_basics()

    Xtr, ytr, Xte, yte = load_breast_cancer_data(args.seed)
    common = dict(rounds=args.rounds, n_sites=args.sites, split=args.split, seed=args.seed, progress=False)
    plain = train_federated(Xtr, ytr, Xte, yte, method="plaintext", **common)
    central, _ = train_centralized(Xtr, ytr, Xte, yte, epochs=args.rounds, seed=args.seed)
    results = {"plaintext": plain.accuracy, "centralized": central}
    histories = [plain]
    print(f"\n{args.sites} sites ({args.split}), {args.rounds} rounds of FedAvg, logistic regression")
    print(f"  centralised plaintext : {100 * central:6.2f} %")
    print(f"  plaintext FedAvg      : {100 * plain.accuracy:6.2f} %")
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        hist = train_federated(Xtr, ytr, Xte, yte, method=method, **common)
        histories.append(hist)
        results[method] = hist.accuracy
        print(f"  {method:<5} secure FedAvg  : {100 * hist.accuracy:6.2f} %  "
              f"({hist.bytes_per_site / 1e3:.1f} kB per site per round)")
    if args.plot:
        plot_accuracy(histories, args.plot, centralized=central)
        print(f"plot written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
