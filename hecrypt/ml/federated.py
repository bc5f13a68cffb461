"""Federated training with secure aggregation (FedAvg over :class:`SecureAggregator`).

Each round the model owner sends the global model to the sites; every site runs
``local_epochs`` of mini-batch SGD on its own data and returns its model delta; the deltas
are combined by secure aggregation into their mean weighted by the sites' sample counts;
the owner adds it to the global model and measures test accuracy.  No site's delta is
ever seen in the clear by anyone but that site (``method="smpc"`` or ``"ckks"``);
``method="plaintext"`` is ordinary federated averaging, the baseline.

The model is multinomial logistic regression (softmax; two classes for a binary task) in
numpy.  Feature standardisation statistics are themselves computed by secure aggregation
(:func:`federated_standardize`: secure means of x, |x - mu| and (x - mu)^2),
so no site reveals its feature statistics either.

A failed round (a dropout that cannot be excluded, too few sites) leaves the global model
unchanged and is recorded in the history with its reason.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .aggregation import AggregationError, DroppingFeed, SecureAggregator

__all__ = [
    "LogisticModel",
    "split_sites",
    "federated_standardize",
    "train_federated",
    "train_centralized",
    "FederatedHistory",
    "RoundRecord",
    "plot_accuracy",
    "load_breast_cancer_data",
]

SPLITS = ("iid", "label_skew")


# ----------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------
class LogisticModel:
    """Softmax regression: ``p(y | x) = softmax(x W + b)``; parameters ``[W (d, k), b (k,)]``."""

    def __init__(self, n_features: int, n_classes: int, l2: float = 0.0):
        if n_features < 1 or n_classes < 2:
            raise ValueError(f"need n_features >= 1 and n_classes >= 2, got {n_features}, {n_classes}")
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.l2 = float(l2)

    def init_params(self) -> list[np.ndarray]:
        return [np.zeros((self.n_features, self.n_classes)), np.zeros(self.n_classes)]

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, params: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
        W, b = params
        return self._softmax(X @ W + b)

    def predict(self, params: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
        W, b = params
        return np.argmax(X @ W + b, axis=1)

    def accuracy(self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(params, X) == y)) if len(y) else float("nan")

    def loss(self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
        p = self.predict_proba(params, X)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    def gradient(self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        W, b = params
        p = self.predict_proba(params, X)
        p[np.arange(len(y)), y] -= 1.0
        p /= max(len(y), 1)
        return [X.T @ p + self.l2 * W, p.sum(axis=0)]

    def sgd(self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray, *, epochs: int, lr: float,
            batch_size: int | None, rng: np.random.Generator) -> list[np.ndarray]:
        """``epochs`` passes of mini-batch SGD (full batch if ``batch_size`` is None)."""
        params = [p.copy() for p in params]
        n = len(y)
        bs = n if not batch_size else min(int(batch_size), n)
        for _ in range(epochs):
            order = rng.permutation(n)
            for a in range(0, n, bs):
                idx = order[a:a + bs]
                g = self.gradient(params, X[idx], y[idx])
                for p, gi in zip(params, g):
                    p -= lr * gi
        return params


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
def split_sites(y: np.ndarray, n_sites: int, *, mode: str = "iid", alpha: float = 0.5, seed: int = 0,
                min_per_site: int = 2) -> list[np.ndarray]:
    """Partition sample indices among ``n_sites`` sites.

    ``"iid"``: a random permutation cut into near-equal parts.  ``"label_skew"``: for each
    class, its samples are divided among the sites in proportions drawn from
    Dirichlet(``alpha``) (smaller ``alpha`` -> more skew); redrawn until every site has at
    least ``min_per_site`` samples.  Public data layout, so numpy's generator is used.
    """
    y = np.asarray(y)
    if isinstance(n_sites, bool) or not isinstance(n_sites, (int, np.integer)) or n_sites < 1:
        raise ValueError(f"n_sites must be a positive integer, got {n_sites!r}")
    if n_sites * min_per_site > len(y):
        raise ValueError(f"{len(y)} samples cannot give {n_sites} sites {min_per_site} samples each")
    if mode not in SPLITS:
        raise ValueError(f"unknown split {mode!r}: expected one of {', '.join(SPLITS)}")
    rng = np.random.default_rng(seed)
    if mode == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(len(y)), n_sites)]
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_sites)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet([alpha] * n_sites)
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for s, chunk in enumerate(np.split(idx, cuts)):
                parts[s].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_per_site:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"could not draw a label-skewed split with >= {min_per_site} samples per site; raise alpha")


def load_breast_cancer_data(seed: int = 0, test_size: float = 0.25) -> tuple[np.ndarray, ...]:
    """Wisconsin breast cancer (scikit-learn), stratified train/test split, *unscaled* features.

    Returns ``X_train, y_train, X_test, y_test`` (569 samples, 30 features, 2 classes).
    Needs scikit-learn (``pip install 'hecrypt[datasets]'``).
    """
    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("the breast cancer example needs scikit-learn: pip install 'hecrypt[datasets]'") from None
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    return Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64)


def federated_standardize(site_X: Mapping[str, np.ndarray], aggregator: SecureAggregator
                          ) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Global feature mean and standard deviation by three secure means (weights: sample counts).

    Only global statistics are revealed (to the model owner), never a site's:

    1. ``mu = E[x]``;
    2. ``mad = E[|x - mu|]`` (sent as ``|x - mu| / (|mu| + 1)``, a public per-feature
       rescaling), which sets the scale of round 3;
    3. ``var = E[(x - mu)^2]`` (sent as ``(x - mu)^2 / mad^2``, values of order 1).

    The rescalings keep every value small (inside the CKKS range) and give the variance a
    relative precision of about ``2^-frac_bits`` whatever the feature's units.  Returns
    ``(mean, std, [result1, result2, result3])``; zero-variance features get ``std = 1``.
    Raw feature means must fit the method's range (``|mean| < 2^18`` for CKKS at scale
    2^40 with a 60-bit first prime).
    """
    counts = {s: float(len(X)) for s, X in site_X.items()}
    r1 = aggregator.mean({s: X.mean(axis=0) for s, X in site_X.items()}, weights=counts)
    mu = np.asarray(r1.value, dtype=np.float64)
    live = {s: site_X[s] for s in r1.sites}
    c = {s: counts[s] for s in live}
    d2 = np.abs(mu) + 1.0
    r2 = aggregator.mean({s: (np.abs(X - mu).mean(axis=0) / d2) for s, X in live.items()}, weights=c)
    mad = np.asarray(r2.value) * d2
    d3 = np.where(mad > 1e-150, mad * mad, 1.0)
    r3 = aggregator.mean({s: (((X - mu) ** 2).mean(axis=0) / d3) for s, X in live.items() if s in r2.sites},
                         weights={s: c[s] for s in r2.sites})
    var = np.maximum(np.asarray(r3.value) * d3, 0.0)
    std = np.sqrt(var)
    std[std < 1e-12] = 1.0
    return mu, std, [r1, r2, r3]


# ----------------------------------------------------------------------------------------
# history
# ----------------------------------------------------------------------------------------
@dataclass
class RoundRecord:
    """One round: test accuracy after it, sites counted/dropped, mean bytes a counted site sent."""

    round: int
    accuracy: float
    loss: float
    sites: tuple[str, ...]
    dropped: tuple[str, ...]
    bytes_per_site: float
    seconds: float
    failed: str | None = None


@dataclass
class FederatedHistory:
    """Per-round records and the final global model of :func:`train_federated`."""

    method: str
    records: list[RoundRecord] = field(default_factory=list)
    params: list[np.ndarray] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    setup_bytes_per_site: float = 0.0

    @property
    def accuracy(self) -> float:
        """Test accuracy of the final global model."""
        return self.records[-1].accuracy if self.records else float("nan")

    @property
    def accuracies(self) -> list[float]:
        return [r.accuracy for r in self.records]

    @property
    def bytes_per_site(self) -> float:
        """Mean bytes a site sent per completed round (secure aggregation payloads)."""
        ok = [r.bytes_per_site for r in self.records if r.failed is None]
        return float(np.mean(ok)) if ok else 0.0

    @property
    def failed_rounds(self) -> list[int]:
        return [r.round for r in self.records if r.failed is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "accuracy": self.accuracy,
            "rounds": len(self.records),
            "bytes_per_site": self.bytes_per_site,
            "setup_bytes_per_site": self.setup_bytes_per_site,
            "failed_rounds": self.failed_rounds,
            "records": [asdict(r) for r in self.records],
            "config": dict(self.config),
        }

    def plot(self, path: str | None = None, *, centralized: float | None = None, ax: Any = None) -> Any:
        """Accuracy per round (see :func:`plot_accuracy`)."""
        return plot_accuracy([self], path, centralized=centralized, ax=ax)


def plot_accuracy(histories: Sequence[FederatedHistory], path: str | None = None, *,
                  centralized: float | None = None, ax: Any = None) -> Any:
    """Plot test accuracy per round of one or more histories; save to ``path`` if given.

    Needs matplotlib (``pip install 'hecrypt[plot]'``); uses the Agg backend when saving.
    Returns the matplotlib figure.
    """
    try:
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("plotting needs matplotlib: pip install 'hecrypt[plot]'") from None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    # the plaintext baseline is drawn first, wide and grey, so a secure run that matches it
    # stays visible on top of it
    for h in sorted(histories, key=lambda h: h.method != "plaintext"):
        xs = [r.round for r in h.records]
        style = dict(color="0.6", lw=4, zorder=1) if h.method == "plaintext" else dict(lw=1.5, zorder=2)
        ax.plot(xs, [100 * r.accuracy for r in h.records], marker="o", ms=3, label=f"federated ({h.method})",
                **style)
        bad = [r for r in h.records if r.failed]
        if bad:
            ax.scatter([r.round for r in bad], [100 * r.accuracy for r in bad], marker="x", color="red",
                       zorder=3, label="failed round (model unchanged)")
    if centralized is not None:
        ax.axhline(100 * centralized, ls="--", color="gray", label="centralised (plaintext)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return fig


# ----------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------
def _as_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"expected X of shape (n, d) and y of shape (n,), got {X.shape} and {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers 0..k-1, got dtype {y.dtype}")
    return X, y.astype(np.int64)


def train_centralized(X_train: Any, y_train: Any, X_test: Any, y_test: Any, *, epochs: int = 20, lr: float = 0.1,
                      batch_size: int | None = 16, l2: float = 0.0, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """Plaintext training on all the data (the reference): returns ``(test accuracy, params)``.

    Standardises with the training set's statistics.
    """
    X, y = _as_xy(X_train, y_train)
    Xt, yt = _as_xy(X_test, y_test)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd < 1e-12] = 1.0
    X, Xt = (X - mu) / sd, (Xt - mu) / sd
    k = int(max(y.max(), yt.max())) + 1
    model = LogisticModel(X.shape[1], max(k, 2), l2)
    params = model.sgd(model.init_params(), X, y, epochs=epochs, lr=lr, batch_size=batch_size,
                       rng=np.random.default_rng(seed))
    return model.accuracy(params, Xt, yt), params


def train_federated(X_train: Any, y_train: Any, X_test: Any, y_test: Any, *, method: str = "smpc",
                    rounds: int = 20, local_epochs: int = 1, lr: float = 0.1, n_sites: int = 5,
                    split: str = "iid", alpha: float = 0.5, batch_size: int | None = 16, l2: float = 0.0,
                    seed: int = 0, aggregator: SecureAggregator | None = None, weighted: bool = True,
                    dropout_rate: float = 0.0, progress: bool | None = None, he_context: Any = None,
                    device: str | None = None, site_indices: Sequence[np.ndarray] | None = None,
                    aggregator_options: Mapping[str, Any] | None = None) -> FederatedHistory:
    """Federated averaging of a logistic regression with secure aggregation.

    Parameters
    ----------
    method : ``"smpc"``, ``"ckks"`` or ``"plaintext"`` (ignored if ``aggregator`` is given).
    rounds, local_epochs, lr, batch_size, l2 : the FedAvg schedule (SGD on each site).
    n_sites, split, alpha : how the training data is divided (:func:`split_sites`), unless
        ``site_indices`` gives the partition.
    weighted : weight each site's delta by its sample count (FedAvg) or equally.
    dropout_rate : probability that a site drops out mid-round (simulated with
        :class:`DroppingFeed` at a random point of its update).
    he_context : the owner's CKKS context for ``method="ckks"`` (created if None).
    seed : the split, the local shuffles and the dropout simulation (public choices; secret
        randomness always comes from the CSPRNG with fresh keys).
    progress : a tqdm bar over the rounds; None (default) shows it only when stderr is a
        terminal (it is removed when done), True/False force it on/off.

    Given the same ``seed``, the split and local SGD are identical for every method, so the
    methods differ only by the aggregation error (fixed-point rounding for smpc, CKKS noise).
    """
    X, y = _as_xy(X_train, y_train)
    Xt, yt = _as_xy(X_test, y_test)
    for name, v in (("rounds", rounds), ("local_epochs", local_epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not (0.0 <= dropout_rate < 1.0):
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    if aggregator is None:
        opts = dict(aggregator_options or {})
        if method == "ckks":
            if he_context is None:
                he_context = _default_ckks_context(device)
            opts["he_context"] = he_context
        # Site randomness comes from os.urandom: the secret-sharing result does not depend
        # on it (masks cancel exactly), so runs stay reproducible without seeding secrets.
        aggregator = SecureAggregator(method, device=device, **opts)
    parts = list(site_indices) if site_indices is not None else split_sites(y, n_sites, mode=split, alpha=alpha,
                                                                            seed=seed)
    names = [f"site{i}" for i in range(len(parts))]
    site_data = {s: (X[idx], y[idx]) for s, idx in zip(names, parts)}
    counts = {s: float(len(idx)) for s, idx in zip(names, parts)}

    # 0. secure standardisation statistics
    mu, sd, res0 = federated_standardize({s: d[0] for s, d in site_data.items()}, aggregator)
    setup_bytes = sum(r.mean_bytes_per_site for r in res0)
    site_data = {s: ((Xs - mu) / sd, ys) for s, (Xs, ys) in site_data.items()}
    Xt = (Xt - mu) / sd

    k = int(max(y.max(), yt.max())) + 1
    model = LogisticModel(X.shape[1], max(k, 2), l2)
    params = model.init_params()
    hist = FederatedHistory(method=aggregator.method, config=dict(
        rounds=rounds, local_epochs=local_epochs, lr=lr, n_sites=len(parts), split=split, alpha=alpha,
        batch_size=batch_size, weighted=weighted, dropout_rate=dropout_rate, seed=seed,
        site_sizes={s: int(c) for s, c in counts.items()}))
    hist.setup_bytes_per_site = setup_bytes
    site_rng = {s: np.random.default_rng([seed, i]) for i, s in enumerate(names)}
    drop_rng = np.random.default_rng([seed, 7919])

    from tqdm.auto import tqdm

    bar = tqdm(range(1, rounds + 1), desc=f"federated {aggregator.method}", disable=None if progress is None else not progress, leave=False)
    for r in bar:
        t0 = time.perf_counter()
        deltas: dict[str, Any] = {}
        for s in names:
            Xs, ys = site_data[s]
            new = model.sgd(params, Xs, ys, epochs=local_epochs, lr=lr, batch_size=batch_size, rng=site_rng[s])
            d = [a - b for a, b in zip(new, params)]
            if dropout_rate and drop_rng.random() < dropout_rate:
                total = sum(a.size for a in d)
                deltas[s] = DroppingFeed(d, int(drop_rng.integers(0, total)), site=s)
            else:
                deltas[s] = d
        try:
            res = aggregator.aggregate(deltas, weights=counts if weighted else None, mean=True)
        except AggregationError as exc:
            acc = model.accuracy(params, Xt, yt)
            hist.records.append(RoundRecord(r, acc, model.loss(params, Xt, yt), (), tuple(names), 0.0,
                                            time.perf_counter() - t0, failed=str(exc)))
            bar.set_postfix(acc=f"{acc:.3f}", failed=True)
            continue
        params = [p + d for p, d in zip(params, res.value)]
        acc = model.accuracy(params, Xt, yt)
        hist.records.append(RoundRecord(r, acc, model.loss(params, Xt, yt), res.sites, res.dropped,
                                        res.mean_bytes_per_site, time.perf_counter() - t0))
        bar.set_postfix(acc=f"{acc:.3f}", kB=f"{res.mean_bytes_per_site / 1e3:.1f}")
    bar.close()
    hist.params = params
    return hist


def _default_ckks_context(device: str | None = None) -> Any:
    """The model owner's CKKS context for federated runs: the ``n8192`` preset
    (N = 8192, ``[60, 40, 40, 60]``, scale 2^40: range ``|total| < 2^18``, error ~1e-7)."""
    from ..he import CKKSContext, CKKSParameters

    return CKKSContext(CKKSParameters.preset("n8192"), device=device)
