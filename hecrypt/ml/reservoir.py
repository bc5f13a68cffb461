"""Encrypted reservoir training: a linear readout of a random ReLU reservoir, learned on shares.

The method (the tutorial's "encrypted reservoir", see ``docs/reservoir.md``):

1. **Data owner, in plaintext.**  The owner maps its inputs through a fixed random projection
   and a ReLU, ``F = relu(x @ P + b)`` (:class:`Reservoir`; ``P`` and ``b`` are *public*
   randomness drawn from a numpy ``Generator``), optionally standardises the features with
   its own training statistics (``standardize=True``: centred, unit variance, then scaled by
   ``1/sqrt(units)``) and appends a constant bias column.  Nothing of this is shared.
2. **Sharing.**  The owner secret-shares the features ``X`` and targets ``Y`` (fixed point,
   ``frac_bits`` fractional bits in ``ring``) among the computing parties; the model ``W``
   starts as shares of zero.  ``X``'s Beaver mask is opened once and reused by every product
   (``X.reuse_mask()``, explicit and tracked by the SMPC layer).
3. **Training on shares.**  Each step computes ``pred = X @ W``, ``grad = pred - Y`` and
   ``W -= lr * (X^T @ grad)``, each product truncated back to ``frac_bits`` (the public
   ``lr`` is encoded at its own precision by the SMPC layer, so ``1e-3`` does not round).
4. **What is revealed.**  Nothing, unless asked: ``reveal_loss=True`` opens the residual
   ``pred - Y`` to the data owner at every step (as the tutorial's ``grad.get()`` does) and
   reports ``sum |residual|``; :meth:`ReservoirTrainer.predict` opens prediction scores to the
   data owner.  :class:`TrainResult` lists what was revealed and to whom.

A plaintext twin (:meth:`ReservoirTrainer.fit_plaintext`) runs the same training in float64
with the same reservoir and preprocessing, so an encrypted run can be checked against it.

Numeric contract (``f = frac_bits``, ring ``Z_2^64``; details in ``docs/reservoir.md``):

* every product adds a rounding error of at most one unit ``2^-f`` per element (probabilistic
  truncation is unbiased); the model ``W`` moves by ``lr * X^T grad`` per step, so steps whose
  updates are far below ``2^-f`` are lost in rounding noise;
* encoded values must satisfy ``|v| < 2^(63-f)``; a product's pre-truncation magnitude
  ``|v| 2^(2f)`` sets the probability of a local-truncation failure, about
  ``|v| 2^(2f) / 2^63`` per element and product (2 parties, ``truncation="auto"``).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import EncodingError

__all__ = [
    "Reservoir",
    "ReservoirTrainer",
    "TrainResult",
    "TrainingSession",
    "relative_loss_error",
    "DEFAULT_PARTY_NAMES",
    "default_party_names",
]

DEFAULT_PARTY_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def default_party_names(n: int) -> tuple[str, ...]:
    """``alice``, ``bob``, ``carol`` ... for ``n`` parties (``party0`` ... beyond eight)."""
    return DEFAULT_PARTY_NAMES[:n] if n <= len(DEFAULT_PARTY_NAMES) else tuple(f"party{i}" for i in range(n))


def _check_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if int(v) < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def _check_float(name: str, v: Any, *, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or (positive and v <= 0) or (not positive and v < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {v}")
    return v


def _as_2d_float(name: str, a: Any) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _public_seed(seed: Any, label: bytes) -> Any:
    """A numpy seed for *public* randomness derived from a test seed (None stays None)."""
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        data = int(seed).to_bytes(32, "little", signed=True)
    elif isinstance(seed, (bytes, str)):
        data = seed.encode() if isinstance(seed, str) else bytes(seed)
    else:
        raise TypeError(f"seed must be an int, str or bytes, got {type(seed).__name__}")
    digest = hashlib.sha256(b"hecrypt/ml/" + label + b"/" + data).digest()
    return int.from_bytes(digest[:16], "little")


def _rng(seed: Any) -> np.random.Generator:
    """Public randomness only (the reservoir): a numpy Generator, fresh entropy when ``seed`` is None."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# -----------------------------------------------------------------------------------------
# the reservoir (public random feature map)
# -----------------------------------------------------------------------------------------
class Reservoir:
    """A fixed random ReLU feature map ``relu(x @ weights + offsets)``.

    ``weights`` has shape ``(in_features, units)`` with entries ``scale * N(0, 1)``;
    ``offsets`` (shape ``(units,)``) are ``offset_scale * N(0, 1)`` (zero by default, as in the
    tutorial's ``np.random.randn(2, 256)`` reservoir).  The map is *public*: it is drawn from a
    statistical numpy ``Generator`` (``seed`` makes it reproducible), never used for secrets.
    """

    __slots__ = ("weights", "offsets")

    def __init__(self, in_features: int, units: int = 256, *, scale: float = 1.0,
                 offset_scale: float = 0.0, seed: Any = None):
        in_features = _check_int("in_features", in_features, 1)
        units = _check_int("units", units, 1)
        scale = _check_float("scale", scale)
        offset_scale = _check_float("offset_scale", offset_scale, positive=False)
        g = _rng(seed)
        self.weights = g.standard_normal((in_features, units)) * scale
        self.offsets = (g.standard_normal(units) * offset_scale if offset_scale > 0
                        else np.zeros(units))

    @classmethod
    def from_weights(cls, weights: Any, offsets: Any = None) -> "Reservoir":
        """A reservoir with the given projection (e.g. the tutorial's ``np.random.randn(2, 256)``)."""
        w = _as_2d_float("weights", weights)
        res = cls.__new__(cls)
        res.weights = w
        if offsets is None:
            res.offsets = np.zeros(w.shape[1])
        else:
            off = np.asarray(offsets, dtype=np.float64).reshape(-1)
            if off.shape != (w.shape[1],) or not np.all(np.isfinite(off)):
                raise ValueError(f"offsets must be {w.shape[1]} finite values, got shape {off.shape}")
            res.offsets = off
        return res

    @property
    def in_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def units(self) -> int:
        return int(self.weights.shape[1])

    def transform(self, x: Any) -> np.ndarray:
        """``relu(x @ weights + offsets)`` in float64, shape ``(n, units)``."""
        x = _as_2d_float("x", x)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x has {x.shape[1]} features, the reservoir expects {self.in_features}")
        out = x @ self.weights
        out += self.offsets
        np.maximum(out, 0.0, out=out)
        return out

    def __repr__(self) -> str:
        return f"Reservoir(in_features={self.in_features}, units={self.units})"


# -----------------------------------------------------------------------------------------
# results
# -----------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """Outcome of one training run (encrypted or plaintext twin).

    ``loss`` holds ``[step, value]`` pairs at the logged steps (every ``log_every`` steps),
    ``loss_history`` every step's value; for an encrypted run both are empty unless
    ``reveal_loss`` was on, and then ``loss_revealed`` is True and ``revealed`` says what was
    opened to whom.  The loss at step ``i`` is ``sum |X W_i - Y|`` over all samples and
    outputs, with ``W_i`` the model *before* the step's update (``W_0 = 0``, so the loss at
    step 0 is ``sum |Y|``).

    ``seconds`` is the wall time of the steps, ``setup_seconds`` that of preprocessing and
    sharing; ``online_seconds``/``offline_seconds`` split the SMPC protocols' time over the
    whole run (sharing included; offline = the dealer's material); ``bytes_sent``,
    ``rounds`` and ``messages`` count the whole run's traffic, ``online_bytes`` and
    ``offline_bytes`` split the bytes by phase (the dealer's deliveries are offline).
    """

    encrypted: bool
    steps: int
    lr: float
    step_scale: float
    units: int
    n_samples: int
    n_outputs: int
    loss: list[list[float]] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)
    loss_revealed: bool = False
    revealed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    setup_seconds: float = 0.0
    online_seconds: float | None = None
    offline_seconds: float | None = None
    bytes_sent: int = 0
    online_bytes: int | None = None
    offline_bytes: int | None = None
    rounds: int = 0
    messages: int = 0
    device: str = "cpu"
    parties: tuple[str, ...] = ()
    frac_bits: int | None = None
    ring: str | None = None
    weights: np.ndarray | None = None

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (weights left out)."""
        return {
            "encrypted": self.encrypted,
            "steps": self.steps,
            "lr": self.lr,
            "step_scale": self.step_scale,
            "units": self.units,
            "n_samples": self.n_samples,
            "n_outputs": self.n_outputs,
            "loss": [[int(s), float(v)] for s, v in self.loss],
            "loss_revealed": self.loss_revealed,
            "revealed": list(self.revealed),
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "online_seconds": self.online_seconds,
            "offline_seconds": self.offline_seconds,
            "bytes_sent": int(self.bytes_sent),
            "online_bytes": self.online_bytes,
            "offline_bytes": self.offline_bytes,
            "rounds": int(self.rounds),
            "messages": int(self.messages),
            "device": self.device,
            "parties": list(self.parties),
            "frac_bits": self.frac_bits,
            "ring": self.ring,
        }


def relative_loss_error(encrypted: TrainResult, plaintext: TrainResult) -> float:
    """Largest ``|enc - plain| / |plain|`` over the steps both runs logged.

    Raises ``ValueError`` when the encrypted run revealed no loss.
    """
    if not encrypted.loss:
        raise ValueError("the encrypted run revealed no loss (train with reveal_loss=True)")
    plain = {int(s): v for s, v in plaintext.loss}
    errs = [abs(v - plain[int(s)]) / abs(plain[int(s)]) for s, v in encrypted.loss
            if int(s) in plain and plain[int(s)] != 0]
    if not errs:
        raise ValueError("the two runs logged no common step")
    return float(max(errs))


# -----------------------------------------------------------------------------------------
# the trainer
# -----------------------------------------------------------------------------------------
class ReservoirTrainer:
    """Train a linear readout of a random ReLU reservoir on secret shares.

    Parameters (all keyword-only except ``units``):

    units
        Reservoir size (the tutorial uses 256).  Ignored when ``reservoir`` is given.
    lr
        Learning rate (public).  The update is ``W -= s * X^T (X W - Y)`` with
        ``s = lr`` or, with ``mean_gradient=True``, ``s = lr / n_samples``.
    steps
        Number of full-batch gradient steps.
    parties
        Number of computing parties (named ``alice``, ``bob``, ``carol`` ...) or their names.
    device
        ``"cpu"``, ``"cuda"``, ``"auto"`` or None (``$HECRYPT_DEVICE``), as everywhere.
    seed
        **For tests only**: makes the reservoir, the shares and the dealer reproducible
        (a seeded run's secrets are predictable).  None draws fresh randomness.
    frac_bits, ring, truncation
        Fixed-point precision and ring of the SMPC context (see ``docs/smpc.md``).
    reveal_loss
        Off by default.  When on, the residual ``X W - Y`` is opened to the data owner at
        every step and the loss ``sum |residual|`` is reported (marked as revealed).
    reuse_mask
        Open ``X``'s Beaver mask once and reuse it for every product (``X.reuse_mask()``),
        which halves the online traffic of a step.  On by default; the reuse is explicit.
    log_every
        Steps between logged loss values (the tutorial prints every 50).
    input_scale, offset_scale
        Scale of the reservoir's projection and random offsets (:class:`Reservoir`).
    standardize
        The owner centres each reservoir feature and scales it to unit variance with its own
        training statistics, then multiplies by ``1/sqrt(units)``; the feature covariance then
        has trace 1, so every ``lr < 2`` (with ``mean_gradient``) is a stable step.
    bias
        None/False for no bias; a number appends a constant column of that value.
    mean_gradient
        Divide the step by the number of samples (see ``lr``).
    data_owner
        Name of the party that owns the data (default: the first computing party); a name that
        is not a computing party is added as an input-only party.
    reservoir
        A ready :class:`Reservoir` (e.g. the tutorial's fixed projection).
    context
        An existing ``SMPCContext`` to train in (``parties``/``ring``/``frac_bits``/``device``
        are then taken from it).
    """

    def __init__(self, units: int = 256, *, lr: float = 1e-3, steps: int = 250,
                 parties: int | Sequence[str] = 2, device: str | None = None, seed: Any = None,
                 frac_bits: int = 16, ring: Any = "Z2_64", truncation: str = "auto",
                 reveal_loss: bool = False, reuse_mask: bool = True, log_every: int = 50,
                 input_scale: float = 1.0, offset_scale: float = 0.0, standardize: bool = False,
                 bias: float | None = None, mean_gradient: bool = False, data_owner: str | None = None,
                 reservoir: Reservoir | None = None, context: Any = None):
        self.units = _check_int("units", units, 1) if reservoir is None else reservoir.units
        self.lr = _check_float("lr", lr)
        self.steps = _check_int("steps", steps, 0)
        if isinstance(parties, numbers.Integral) and not isinstance(parties, bool):
            names = default_party_names(_check_int("parties", parties, 2))
        elif isinstance(parties, (list, tuple)) and all(isinstance(p, str) for p in parties):
            names = tuple(parties)
            if len(names) < 2 or len(set(names)) != len(names):
                raise ValueError(f"parties must be at least 2 distinct names, got {names!r}")
        else:
            raise TypeError("parties must be an integer >= 2 or a sequence of party names")
        self.parties = names
        self.device = device
        self.seed = seed
        self.frac_bits = _check_int("frac_bits", frac_bits, 0)
        self.ring = ring
        self.truncation = truncation
        self.reveal_loss = bool(reveal_loss)
        self.reuse_mask = bool(reuse_mask)
        self.log_every = _check_int("log_every", log_every, 1)
        self.input_scale = _check_float("input_scale", input_scale)
        self.offset_scale = _check_float("offset_scale", offset_scale, positive=False)
        self.standardize = bool(standardize)
        if bias is None or bias is False:
            self.bias = None
        else:
            self.bias = _check_float("bias", bias)
        self.mean_gradient = bool(mean_gradient)
        if data_owner is not None and not isinstance(data_owner, str):
            raise TypeError("data_owner must be a party name")
        self.data_owner = data_owner
        if reservoir is not None and not isinstance(reservoir, Reservoir):
            raise TypeError("reservoir must be a hecrypt.ml.Reservoir")
        self.reservoir = reservoir
        self._context = context
        self._mu: np.ndarray | None = None
        self._sd: np.ndarray | None = None
        self.model = None                     # SharedTensor (d, k) after fit()
        self.plaintext_weights: np.ndarray | None = None  # float64 (d, k) after fit_plaintext()
        self.last_result: TrainResult | None = None

    # -- owner-side preprocessing (plaintext, never shared) ------------------------------
    def _reservoir_for(self, in_features: int) -> Reservoir:
        if self.reservoir is None:
            self.reservoir = Reservoir(in_features, self.units, scale=self.input_scale,
                                       offset_scale=self.offset_scale,
                                       seed=_public_seed(self.seed, b"reservoir"))
        elif self.reservoir.in_features != in_features:
            raise ValueError(f"x has {in_features} features, the reservoir expects "
                             f"{self.reservoir.in_features}")
        return self.reservoir

    def features(self, x: Any, *, fit: bool = False) -> np.ndarray:
        """The data owner's plaintext preprocessing: reservoir, standardisation, bias column.

        ``fit=True`` (used by :meth:`fit`) computes the standardisation statistics from ``x``;
        afterwards the same statistics are applied to new data.  Returns float64 ``(n, d)``.
        """
        x = _as_2d_float("x", x)
        f = self._reservoir_for(x.shape[1]).transform(x)
        if self.standardize:
            if fit or self._mu is None:
                self._mu = f.mean(axis=0)
                sd = f.std(axis=0)
                sd[sd < 1e-12] = 1.0          # a dead unit stays 0 after centring
                self._sd = sd
            f -= self._mu
            f /= self._sd * math.sqrt(f.shape[1])
        if self.bias is not None:
            f = np.hstack([f, np.full((f.shape[0], 1), self.bias)])
        return f

    def _targets(self, y: Any, n: int) -> np.ndarray:
        yt = _as_2d_float("y", y)
        if yt.shape[0] != n:
            raise ValueError(f"x has {n} samples but y has {yt.shape[0]}")
        return yt

    def _step_scale(self, n: int) -> float:
        return self.lr / n if self.mean_gradient else self.lr

    # -- the SMPC context ------------------------------------------------------------------
    @property
    def context(self) -> Any:
        """The SMPC context (created on first use)."""
        if self._context is None:
            from ..smpc import SMPCContext

            self._context = SMPCContext(parties=self.parties, ring=self.ring, frac_bits=self.frac_bits,
                                        device=self.device, seed=self.seed, truncation=self.truncation)
        return self._context

    def _owner(self) -> str:
        ctx = self.context
        names = tuple(ctx.party_names)
        if self.data_owner is None:
            return names[0]
        if self.data_owner not in names:
            known = getattr(ctx, "input_parties", ())
            if self.data_owner not in tuple(known):
                ctx.add_input_party(self.data_owner)
        return self.data_owner

    def _share(self, a: np.ndarray, owner: str) -> Any:
        try:
            return self.context.share(a, owner=owner)
        except EncodingError as exc:
            raise EncodingError(f"{exc} (rescale the data, or use fewer frac_bits)") from exc

    # -- encrypted training -----------------------------------------------------------------
    def session(self, x: Any, y: Any) -> "TrainingSession":
        """Share ``x``'s features and ``y`` and return a session whose :meth:`~TrainingSession.step`
        runs one encrypted step (used by :meth:`fit` and the benchmarks)."""
        feats = self.features(x, fit=True)
        targets = self._targets(y, feats.shape[0])
        return TrainingSession(self, feats, targets)

    def fit(self, x: Any, y: Any, *, callback: Callable[[int, dict], Any] | None = None,
            progress: bool | None = None) -> TrainResult:
        """Train on shares; the model stays shared in :attr:`model`.

        ``callback(step, info)`` is called after every step with ``info`` holding
        ``"seconds"`` and, when ``reveal_loss`` is on, the revealed ``"loss"``.  ``progress``:
        None shows a tqdm bar only on a terminal (it is removed when done), True/False force it.
        """
        ctx = self.context
        t0 = time.perf_counter()
        s0 = ctx.stats.snapshot()
        tm0 = _timing(ctx)
        sess = self.session(x, y)
        t_setup = time.perf_counter() - t0
        bar = _progress_bar(self.steps, progress, "encrypted training")
        try:
            for i in range(self.steps):
                loss = sess.step()
                if bar is not None:
                    if loss is not None:
                        bar.set_postfix_str(f"loss {loss:.3e} (revealed)", refresh=False)
                    bar.update(1)
                if callback is not None:
                    info = {"seconds": time.perf_counter() - t0}
                    if loss is not None:
                        info["loss"] = loss
                        info["loss_revealed"] = True
                    callback(i, info)
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t0
        s1 = ctx.stats.snapshot()
        tm1 = _timing(ctx)
        res = sess.result(seconds=seconds - t_setup, setup_seconds=t_setup,
                          stats=_stats_delta(s0, s1))
        if tm0 is not None and tm1 is not None:
            res.online_seconds = tm1[0] - tm0[0]
            res.offline_seconds = tm1[1] - tm0[1]
        self.model = sess.model
        self.last_result = res
        return res

    def fit_plaintext(self, x: Any, y: Any, *, callback: Callable[[int, dict], Any] | None = None
                      ) -> TrainResult:
        """The plaintext twin: the same training in float64, same reservoir and preprocessing.

        The weights are kept in :attr:`plaintext_weights` (and in the result's ``weights``).
        """
        t0 = time.perf_counter()
        feats = self.features(x, fit=True)
        y = self._targets(y, feats.shape[0])
        n, d = feats.shape
        k = y.shape[1]
        scale = self._step_scale(n)
        w = np.zeros((d, k))
        hist: list[float] = []
        logged: list[list[float]] = []
        t1 = time.perf_counter()
        for i in range(self.steps):
            grad = feats @ w - y
            loss = float(np.abs(grad).sum())
            hist.append(loss)
            if i % self.log_every == 0:
                logged.append([i, loss])
            w -= scale * (feats.T @ grad)
            if callback is not None:
                callback(i, {"seconds": time.perf_counter() - t0, "loss": loss, "loss_revealed": False})
        seconds = time.perf_counter() - t1
        self.plaintext_weights = w
        return TrainResult(encrypted=False, steps=self.steps, lr=self.lr, step_scale=scale,
                           units=self.reservoir.units, n_samples=n, n_outputs=k, loss=logged,
                           loss_history=hist, seconds=seconds, setup_seconds=t1 - t0,
                           device="cpu", weights=w)

    # -- inference ---------------------------------------------------------------------------
    def _require_model(self) -> Any:
        if self.model is None:
            raise RuntimeError("the model is not trained yet: call fit() first")
        return self.model

    def predict_shared(self, x: Any) -> Any:
        """Scores ``features(x) @ W`` as a SharedTensor ``(n, k)`` (nothing revealed)."""
        w = self._require_model()
        feats = self.features(x)
        xs = self._share(feats, self._owner())
        return xs @ w

    def predict(self, x: Any) -> np.ndarray:
        """Scores ``features(x) @ W`` (float64 ``(n, k)``), **opened to the data owner only**."""
        return np.asarray(self.predict_shared(x).reveal(to=self._owner()), dtype=np.float64)

    def predict_plaintext(self, x: Any) -> np.ndarray:
        """Scores of the plaintext twin (after :meth:`fit_plaintext`)."""
        if self.plaintext_weights is None:
            raise RuntimeError("the plaintext twin is not trained yet: call fit_plaintext() first")
        return self.features(x) @ self.plaintext_weights

    def __repr__(self) -> str:
        return (f"ReservoirTrainer(units={self.units}, lr={self.lr:g}, steps={self.steps}, "
                f"parties={self.parties!r}, frac_bits={self.frac_bits}, reveal_loss={self.reveal_loss})")


class TrainingSession:
    """One encrypted training run in progress: shared features, targets and model.

    Created by :meth:`ReservoirTrainer.session`; :meth:`step` runs one gradient step on shares
    and returns the revealed loss (or None when ``reveal_loss`` is off).
    """

    def __init__(self, trainer: ReservoirTrainer, feats: np.ndarray, targets: np.ndarray):
        self.trainer = trainer
        ctx = trainer.context
        self.owner = trainer._owner()
        self.n, self.d = feats.shape
        self.k = targets.shape[1]
        self.step_scale = trainer._step_scale(self.n)
        x = trainer._share(feats, self.owner)
        self.x = x.reuse_mask() if trainer.reuse_mask else x
        self.y = trainer._share(targets, self.owner)
        self.model = ctx.zeros((self.d, self.k))
        self.pred = None
        self.i = 0
        self.history: list[float] = []
        self.logged: list[list[float]] = []

    def step(self) -> float | None:
        """``pred = X W; grad = pred - Y; W -= s X^T grad`` on shares; returns the revealed loss."""
        x = self.x
        pred = x @ self.model
        grad = pred - self.y
        loss = None
        if self.trainer.reveal_loss:
            resid = np.asarray(grad.reveal(to=self.owner), dtype=np.float64)
            loss = float(np.abs(resid).sum())
            self.history.append(loss)
            if self.i % self.trainer.log_every == 0:
                self.logged.append([self.i, loss])
        self.model = self.model - (x.T @ grad) * self.step_scale
        self.pred = pred
        self.i += 1
        return loss

    def result(self, *, seconds: float, setup_seconds: float, stats: dict) -> TrainResult:
        t = self.trainer
        ctx = t.context
        revealed = []
        if t.reveal_loss:
            revealed.append(f"residual X@W - Y (so the loss sum|residual|) opened to {self.owner} "
                            f"at each of {self.i} steps")
        ring = getattr(ctx, "ring", None)
        return TrainResult(
            encrypted=True, steps=self.i, lr=t.lr, step_scale=self.step_scale, units=t.reservoir.units,
            n_samples=self.n, n_outputs=self.k, loss=list(self.logged), loss_history=list(self.history),
            loss_revealed=t.reveal_loss, revealed=revealed, seconds=seconds, setup_seconds=setup_seconds,
            bytes_sent=int(stats.get("bytes_sent", 0)), online_bytes=stats.get("online_bytes"),
            offline_bytes=stats.get("offline_bytes"), rounds=int(stats.get("rounds", 0)),
            messages=int(stats.get("messages", 0)), device=str(getattr(ctx, "device", t.device)),
            parties=tuple(ctx.party_names), frac_bits=getattr(ctx, "frac_bits", t.frac_bits),
            ring=getattr(ring, "name", str(ring)) if ring is not None else str(t.ring))


def _timing(ctx: Any) -> tuple[float, float] | None:
    """``(online_s, offline_s)`` of the SMPC context's protocol timers, if it keeps them."""
    tm = getattr(ctx, "timing", None)
    if tm is None or not hasattr(tm, "online_s"):
        return None
    return float(tm.online_s), float(tm.offline_s)


def _stats_delta(s0: dict, s1: dict) -> dict:
    """Traffic between two ``ctx.stats.snapshot()`` dicts (totals, and online/offline bytes)."""
    out = {}
    for key in ("bytes_sent", "rounds", "messages"):
        a, b = s0.get(key), s1.get(key)
        if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
            out[key] = b - a
    p0, p1 = s0.get("by_phase") or {}, s1.get("by_phase") or {}
    for phase in ("online", "offline"):
        a = (p0.get(phase) or {}).get("bytes_sent", 0)
        b = (p1.get(phase) or {}).get("bytes_sent")
        if isinstance(b, numbers.Number):
            out[f"{phase}_bytes"] = b - a
    return out


def _progress_bar(total: int, progress: bool | None, desc: str) -> Any:
    """A tqdm bar that is shown on a terminal only (``progress=None``) and removed when closed."""
    if progress is False or total <= 0:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, leave=False, disable=None if progress is None else False,
                unit="step", dynamic_ncols=True)
