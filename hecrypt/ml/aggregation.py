"""Secure aggregation of model updates for federated learning.

Each site holds one update (a flat array, any-shaped array or a list of arrays, e.g. a
model's weights or a weight delta).  :class:`SecureAggregator` returns their **sum** or
**weighted mean** while no party other than the site itself ever sees an individual
update in the clear:

``"smpc"`` (additive secret sharing, 2 or 3 non-colluding aggregators)
    Each site encodes its (weighted) update in fixed point, splits it into one additive
    share per aggregator and sends each aggregator its share.  Shares for all but one
    aggregator are *seed-compressed* by default: the site sends a 32-byte ChaCha20 key
    and the aggregator expands it, so a site sends about one ring element per parameter
    in total.  Every aggregator sums what it received; the model owner adds the
    aggregators' partial sums, which reconstructs only the total.
``"ckks"`` (homomorphic encryption, one aggregator holding no secret key)
    Each site encrypts its (weighted) update under the model owner's public key
    (``he_context.public_context()``), packed into as many ciphertexts as the update needs
    (``slots`` values each).  The aggregator adds ciphertexts; only the model owner, who
    holds the secret key, decrypts, and only the total.
``"plaintext"``
    Plain federated averaging through the same code path (the baseline; the aggregator
    sees every update).

Updates are streamed in chunks (``chunk_size`` parameters per message) and the
aggregators hold partial sums for at most ``memory_budget`` bytes of parameters at a time
(a *window*), so models of 10^7 parameters aggregate within bounded memory.

Numeric contract
    * Weighting happens on each site: for a sum, site i protects ``w_i * u_i``; for a mean,
      ``(w_i / W) * u_i`` where ``W`` is the total weight of the sites that announced an
      update.  The owner rescales the revealed total by ``W / W_counted``, which is exact
      whichever sites are counted.
    * Range: site i may use a share ``b_i`` of the method's range ``max_abs`` with
      ``sum b_i = max_abs`` (``b_i = max_abs * w_i / W`` for a mean, ``max_abs / n`` for a
      sum) and must satisfy ``|contribution| < b_i``; otherwise :class:`UpdateError` names
      the site.  So the total can never wrap around the ring or overflow CKKS decoding.
    * ``smpc``: contributions are encoded as ``rint(x * 2^frac_bits)`` in the ring (Z_2^64,
      ``frac_bits=24`` by default: ``max_abs = 2^39``).  Sums of ring elements are exact,
      so the only error is the encoding rounding: at most ``2^-(frac_bits+1)`` per site
      (3e-8) before the mean's rescaling.
    * ``ckks``: ``max_abs = 2^(bits(q_0) - scale_bits - 2)`` (2^18 for ``[60, 40, 40, 60]``
      at scale 2^40) and the approximate-arithmetic error of CKKS (fresh-encryption noise
      divided by the scale: measured below 1e-6 for 10 sites x 10^6 values at N = 8192,
      scale 2^40).
    * The result is ``float64``; with ``mean=True`` the sum is divided by the total weight
      of the sites actually counted.

Faults
    * A site whose update is ``None``, or whose feed raises :class:`SiteDropout`, has
      dropped out.  With ``on_dropout="exclude"`` (default) the round continues without it
      as long as nothing has been revealed yet: partial sums that already include some of
      its chunks are discarded and the remaining sites re-send those chunks (fresh
      messages, counted in the bytes).  Once a window's total has been revealed a dropout
      can no longer be excluded without revealing the dropped site's partial update (two
      totals that differ by one site), so the round fails with :class:`AggregationError`
      instead.  ``on_dropout="fail"`` fails the round on any dropout.  A failed round
      raises and returns nothing, so the caller's global model is unchanged.
    * Fewer than ``min_sites`` remaining sites (default 2: the "sum" of one site is its
      update) fails the round.
    * A mismatched shape or dtype, NaN/Inf, an out-of-range value, or a ciphertext under
      another key or other parameters raises :class:`UpdateError` naming the site (shapes,
      dtypes and, for in-memory updates, NaN/Inf are checked before anything is sent).

Every message an aggregator (and the model owner) receives is recorded in
:attr:`SecureAggregator.view` (metadata always; payloads when ``record_view=True``), so
tests can check that it holds shares or ciphertexts only.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..backend import backend_of, get_backend, is_device_array, resolve_device
from ..errors import HecryptError, SerializationError
from ..ring import Ring, Stream, StreamFactory, ring_from_name

__all__ = [
    "SecureAggregator",
    "AggregationResult",
    "AggregatorView",
    "Message",
    "UpdateSpec",
    "SiteFeed",
    "ArrayFeed",
    "DroppingFeed",
    "SiteDropout",
    "UpdateError",
    "AggregationError",
    "METHODS",
]

METHODS = ("smpc", "ckks", "plaintext")
SEED_BYTES = 32
_DEFAULT_CHUNK = {"smpc": 1 << 16, "plaintext": 1 << 16}  # 512 KiB arrays: passes stay in L2
_DEFAULT_GPU_CHUNK = 1 << 22
_DEFAULT_CKKS_ROWS = 64  # ciphertexts per message: the HE kernels amortise their per-call cost
_OWNER = "owner"


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------
class SiteDropout(HecryptError, RuntimeError):
    """A site stopped responding during a round (raised by its :class:`SiteFeed`)."""

    def __init__(self, site: str | None = None, message: str | None = None):
        self.site = site
        super().__init__(message or f"site {site!r} dropped out")


class UpdateError(HecryptError, ValueError):
    """A site's update is unusable (shape, dtype, NaN/Inf, range, wrong key); ``.site`` names it."""

    def __init__(self, site: str, message: str):
        self.site = site
        super().__init__(f"site {site!r}: {message}")


class AggregationError(HecryptError, RuntimeError):
    """A round could not finish; nothing was returned, so the global model is unchanged.

    ``.site`` names the site that caused it (or ``None``), ``.remaining`` the sites still
    in the round when it failed.
    """

    def __init__(self, message: str, site: str | None = None, remaining: Sequence[str] = ()):
        self.site = site
        self.remaining = tuple(remaining)
        super().__init__(message + " (round aborted; no result was returned, so the global model is unchanged)")


# ----------------------------------------------------------------------------------------
# update structure
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateSpec:
    """Public metadata of an update: the shapes of its arrays and their dtype.

    ``is_list`` tells whether the update is a list of arrays (else a single array).
    A site announces its spec before sending anything; mismatches fail early.
    """

    shapes: tuple[tuple[int, ...], ...]
    dtype: np.dtype
    is_list: bool

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)

    @property
    def size(self) -> int:
        return int(sum(self.sizes))

    @classmethod
    def of(cls, update: Any, site: str = "?") -> "UpdateSpec":
        if isinstance(update, (list, tuple)):
            arrays = list(update)
            is_list = True
            if not arrays:
                raise UpdateError(site, "update is an empty list")
        else:
            arrays = [update]
            is_list = False
        shapes, dtypes = [], set()
        for i, a in enumerate(arrays):
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                try:
                    a = np.asarray(a)
                except Exception:  # pragma: no cover - exotic objects
                    raise UpdateError(site, f"array {i} of the update is a {type(a).__name__}, not an array") from None
            dt = np.dtype(a.dtype)
            if dt.kind not in "fiu":
                raise UpdateError(site, f"array {i} of the update has dtype {dt}; expected real numbers "
                                        f"(float or integer)")
            shapes.append(tuple(int(s) for s in a.shape))
            dtypes.add(dt)
        if len(dtypes) > 1:
            raise UpdateError(site, f"update mixes dtypes {sorted(str(d) for d in dtypes)}")
        return cls(tuple(shapes), dtypes.pop(), is_list)

    def check_matches(self, other: "UpdateSpec", site: str) -> None:
        """Raise :class:`UpdateError` naming ``site`` unless ``other`` (the site's) equals this spec."""
        if other.is_list != self.is_list:
            raise UpdateError(site, "sent a " + ("list of arrays" if other.is_list else "single array")
                              + " but the round expects a " + ("list of arrays" if self.is_list else "single array"))
        if len(other.shapes) != len(self.shapes):
            raise UpdateError(site, f"sent {len(other.shapes)} arrays, expected {len(self.shapes)}")
        for i, (a, b) in enumerate(zip(other.shapes, self.shapes)):
            if a != b:
                what = f"array {i} has" if self.is_list else "update has"
                raise UpdateError(site, f"{what} shape {a}, expected {b}")
        if other.dtype != self.dtype:
            raise UpdateError(site, f"update has dtype {other.dtype}, expected {self.dtype}")

    def unflatten(self, flat: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Split a flat float64 vector back into this structure (float64 arrays)."""
        out, off = [], 0
        for shp, n in zip(self.shapes, self.sizes):
            out.append(flat[off:off + n].reshape(shp))
            off += n
        return out if self.is_list else out[0]


def _flatten(update: Any) -> Any:
    """One flat array of the update's values; CuPy arrays stay on their device."""
    arrays = list(update) if isinstance(update, (list, tuple)) else [update]
    on_device = any(is_device_array(a) for a in arrays)
    xp = backend_of(next(a for a in arrays if is_device_array(a))).xp if on_device else np
    parts = [xp.asarray(a).reshape(-1) for a in arrays]
    return parts[0] if len(parts) == 1 else xp.concatenate(parts)


# ----------------------------------------------------------------------------------------
# site feeds: how the aggregator reads a site's update chunk by chunk
# ----------------------------------------------------------------------------------------
class SiteFeed:
    """A site's update, read chunk by chunk.  Subclass to stream from disk or a device.

    ``spec`` is the public metadata announced before the round; ``read(start, stop)``
    returns the flattened update's elements ``[start, stop)`` as a 1-D array and may raise
    :class:`SiteDropout` when the site stops responding.
    """

    spec: UpdateSpec

    def read(self, start: int, stop: int) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def check_finite(self) -> int | None:
        """Index of the first NaN/Inf if the site can check it up front, else ``None``."""
        return None


class ArrayFeed(SiteFeed):
    """A site update held in memory (array or list of arrays)."""

    def __init__(self, update: Any, site: str = "?"):
        self.spec = UpdateSpec.of(update, site)
        self._flat = _flatten(update)
        self._xp = backend_of(self._flat).xp

    def read(self, start: int, stop: int) -> Any:
        return self._flat[start:stop]

    def check_finite(self) -> int | None:
        xp = self._xp
        if self._flat.dtype.kind != "f" or math.isfinite(float(xp.sum(self._flat, dtype=xp.float64))):
            return None  # a finite sum has no NaN/Inf terms (one pass, no temporary)
        bad = ~xp.isfinite(self._flat)
        return int(xp.argmax(bad)) if bool(bad.any()) else None


class DroppingFeed(ArrayFeed):
    """Simulates a site that stops responding once ``after`` parameters have been sent.

    ``after=0`` drops before the first chunk.  Each read of the failing range raises
    :class:`SiteDropout` (the site stays gone for the rest of the round).
    """

    def __init__(self, update: Any, after: int, site: str = "?"):
        super().__init__(update, site)
        if isinstance(after, bool) or not isinstance(after, numbers.Integral) or after < 0:
            raise ValueError(f"after must be a non-negative integer, got {after!r}")
        self.after = int(after)
        self.site = site

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop > self.after:
            raise SiteDropout(self.site, f"site {self.site!r} stopped responding after {self.after} parameters")
        return super().read(start, stop)


# ----------------------------------------------------------------------------------------
# what the aggregators see
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One message received by an aggregator or the model owner.

    ``kind``: ``"share"`` (a ring array), ``"share_seed"`` (a 32-byte ChaCha20 key that
    expands to a share), ``"ciphertext"`` (serialized CKKS ciphertexts), ``"partial_sum"``
    (an aggregator's sum of shares, sent to the owner), ``"encrypted_sum"`` (the
    aggregated ciphertexts, sent to the owner) or ``"plaintext"`` (``method="plaintext"``).
    ``payload`` is a copy of what was received (``None`` unless ``record_view=True``).
    """

    round: int
    sender: str
    receiver: str
    chunk: int
    kind: str
    nbytes: int
    payload: Any = None


class AggregatorView:
    """Everything each aggregator and the model owner received, message by message."""

    def __init__(self, record_payloads: bool = False):
        self.record_payloads = bool(record_payloads)
        self._messages: list[Message] = []

    def _add(self, msg: Message) -> None:
        self._messages.append(msg)

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(self._messages)

    def received(self, receiver: str) -> list[Message]:
        """Messages received by ``receiver`` (an aggregator name or ``"owner"``)."""
        return [m for m in self._messages if m.receiver == receiver]

    def receivers(self) -> list[str]:
        return sorted({m.receiver for m in self._messages})

    def kinds(self, receiver: str | None = None) -> set[str]:
        return {m.kind for m in self._messages if receiver is None or m.receiver == receiver}

    def bytes_received(self, receiver: str) -> int:
        return sum(m.nbytes for m in self._messages if m.receiver == receiver)

    def clear(self) -> None:
        self._messages.clear()

    def __len__(self) -> int:
        return len(self._messages)

    def __repr__(self) -> str:
        return f"AggregatorView({len(self._messages)} messages, receivers={self.receivers()})"


# ----------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------
@dataclass
class AggregationResult:
    """The outcome of one round.

    ``value``: the sum (or weighted mean) in the sites' structure, float64.
    ``sites``: the sites counted (the value covers exactly these); ``dropped``: those not
    counted.  ``total_weight``: the sum of the counted sites' weights (the divisor of a
    mean).  ``bytes_per_site``: payload bytes each site sent this round (re-sends after a
    dropout included); ``bytes_to_owner``: bytes the aggregators sent to the owner.
    """

    value: Any
    sites: tuple[str, ...]
    dropped: tuple[str, ...]
    method: str
    mean: bool
    total_weight: float
    weights: dict[str, float]
    bytes_per_site: dict[str, int]
    bytes_to_owner: int
    n_params: int
    seconds: float
    resent_chunks: int = 0
    round: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_bytes_per_site(self) -> float:
        vals = [self.bytes_per_site[s] for s in self.sites]
        return float(sum(vals) / len(vals)) if vals else 0.0

    def flat(self) -> np.ndarray:
        v = self.value
        if isinstance(v, list):
            return np.concatenate([a.reshape(-1) for a in v]) if v else np.zeros(0)
        return np.asarray(v).reshape(-1)


# ----------------------------------------------------------------------------------------
# protocols: a site-side client and aggregator-side nodes per method
# ----------------------------------------------------------------------------------------
class _Client:
    """Site side: turns a chunk of the (weighted) update into messages for the aggregators."""

    def __init__(self, agg: "SecureAggregator", site: str):
        self.agg = agg
        self.site = site
        self.bound = float("inf")  # this site's share of the method's range, set per round
        self.factor = 1.0  # this site's weight factor, set per round

    def start_round(self, round_no: int) -> list[tuple[str, str, Any, int]]:
        return []

    def protect(self, chunk: int, x: Any) -> list[tuple[str, str, Any, int]]:  # pragma: no cover
        raise NotImplementedError


class _Node:
    """Aggregator side: accumulates what it received for the current window."""

    def __init__(self, agg: "SecureAggregator", name: str):
        self.agg = agg
        self.name = name
        self.acc: dict[int, Any] = {}

    def reset(self) -> None:
        self.acc = {}

    def begin_round(self) -> None:
        self.reset()


_MAGIC = 1.5 * 2.0**52  # float64 in [2^52, 2^53): ulp 1, so adding it rounds to an integer
_MAGIC_BITS = int(np.array(_MAGIC).view(np.int64))
_MAGIC_LIMIT = 2.0**51  # |v| below this: v + _MAGIC stays in [2^52, 2^53)


def _encode_fixed(xp: Any, x: Any, ring: Ring, mult: float, bound: float, site: str, scale: float) -> Any:
    """``rint(x * mult)`` as ring elements (``mult`` = weight x ``2^frac_bits``: weighting and
    encoding in one pass); NaN/Inf or ``|rint(x * mult)| >= bound`` -> UpdateError.

    Uses max/min rather than a separate isfinite pass: NaN propagates through max/min, and
    ``rint`` is monotonic, so ``rint(max)`` is the largest rounded value.  On the CPU, for
    ``Z_2^64`` and ``|x * mult| < 2^51``, the rounding and the float -> int64 conversion are
    done by adding ``1.5 * 2^52`` (the sum's ulp is 1, so IEEE round-half-even gives exactly
    ``rint``) and subtracting that constant's bit pattern from the sum's bits: bit-identical
    to ``rint(v).astype(int64)``, without numpy's scalar float -> int64 conversion.
    """
    v = xp.multiply(x, mult, dtype=xp.float64)
    big = True
    if v.size:
        hi = float(v.max())
        lo = float(v.min())
        if not (math.isfinite(hi) and math.isfinite(lo)):
            raise UpdateError(site, "update contains NaN or Inf")
        hi_r, lo_r = float(np.rint(hi)), float(np.rint(lo))
        if max(hi_r, -lo_r) >= bound:
            raise UpdateError(site, f"update value of magnitude {max(hi_r, -lo_r) / scale:.6g} (after weighting) "
                                    f"does not fit: each site's values must satisfy |w*x| < "
                                    f"{bound / scale:.6g} so the sum of all sites cannot wrap around the ring")
        big = max(hi, -lo) >= _MAGIC_LIMIT
    if xp is np and ring.is_pow2 and ring.bits == 64 and not big:
        v += _MAGIC
        iv = v.view(np.int64)
        iv -= _MAGIC_BITS
        return iv.view(ring.dtype)
    xp.rint(v, out=v)
    if ring.is_pow2:
        sdt = xp.int64 if ring.bits == 64 else xp.int32
        return v.astype(sdt).view(ring.dtype)
    return xp.mod(v.astype(xp.int64), xp.int64(ring.q)).astype(xp.uint64)


class _SMPCClient(_Client):
    def __init__(self, agg: "SecureAggregator", site: str, index: int):
        super().__init__(agg, site)
        self.index = index
        self._streams = agg._site_stream_factory(site)

    def start_round(self, round_no: int):
        a = self.agg
        n = len(a.aggregator_names)
        # The aggregator receiving the full (masked) share rotates with the site index.
        self.full = (self.index + round_no) % n
        self.seeds: dict[int, bytes] = {}
        self.masks: dict[int, Stream] = {}
        msgs = []
        src = self._streams.new_stream()
        for j in range(n):
            if j == self.full:
                continue
            if a.compress_shares:
                key = src.random_bytes(SEED_BYTES)
                self.seeds[j] = key
                msgs.append((a.aggregator_names[j], "share_seed", key, SEED_BYTES))
            else:
                self.masks[j] = self._streams.new_stream(device=a.device)
        return msgs

    def protect(self, chunk: int, x: Any):
        a = self.agg
        xp = a._be.xp
        enc = _encode_fixed(xp, x, a.ring, a._scale * self.factor, self.bound * a._scale, self.site, a._scale)
        msgs = []
        masked = enc  # a fresh array owned by this call: updated in place for Z_2^k
        for j in range(len(a.aggregator_names)):
            if j == self.full:
                continue
            if a.compress_shares:
                r = Stream(self.seeds[j], chunk, device=a.device).uniform(a.ring, enc.size)
            else:
                r = self.masks[j].uniform(a.ring, enc.size)
                msgs.append((a.aggregator_names[j], "share", r, int(r.nbytes)))
            if a.ring.is_pow2:
                xp.subtract(masked, r, out=masked)  # wrapping uint arithmetic = Z_2^k subtraction
            else:
                masked = a.ring.sub(masked, r)
        msgs.append((a.aggregator_names[self.full], "share", masked, int(masked.nbytes)))
        return msgs


class _SMPCNode(_Node):
    def begin_round(self) -> None:
        super().begin_round()
        self.seeds: dict[str, bytes] = {}

    def receive(self, site: str, chunk: int, kind: str, payload: Any, n: int) -> None:
        ring = self.agg.ring
        if kind == "share_seed":
            self.seeds[site] = payload
            return
        if kind == "seeded_chunk":  # expand the site's seed for this chunk
            share = Stream(self.seeds[site], chunk, device=self.agg.device).uniform(ring, n)
        else:
            share = payload
        prev = self.acc.get(chunk)
        if prev is None:
            # a delivered message belongs to its receiver (clients send fresh arrays); keystream
            # views are read-only and get copied
            self.acc[chunk] = share if getattr(share.flags, "writeable", True) else share.copy()
        elif ring.is_pow2:
            self.agg._be.xp.add(prev, share, out=prev)  # wrapping uint add = Z_2^k addition
        else:
            self.acc[chunk] = ring.add(prev, share)

    def partial_sum(self, chunk: int, n: int) -> Any:
        got = self.acc.get(chunk)
        return got if got is not None else self.agg.ring.zeros(n, device=self.agg.device)


class _PlainClient(_Client):
    def protect(self, chunk: int, x: Any):
        a = self.agg
        xp = a._be.xp
        v = xp.asarray(x, dtype=xp.float64)
        if v.size and not bool(xp.isfinite(v).all()):
            raise UpdateError(self.site, "update contains NaN or Inf")
        return [(a.aggregator_names[0], "plaintext", v, int(v.nbytes))]


class _PlainNode(_Node):
    def receive(self, site: str, chunk: int, kind: str, payload: Any, n: int) -> None:
        prev = self.acc.get(chunk)
        self.acc[chunk] = payload.copy() if prev is None else prev + payload  # payload may be the site's data


class _CKKSClient(_Client):
    def __init__(self, agg: "SecureAggregator", site: str, public_context: Any):
        super().__init__(agg, site)
        self.pub = public_context
        self.slots = int(public_context.slots)

    def protect(self, chunk: int, x: Any):
        a = self.agg
        # stay on the array's device (the HE context moves host data itself)
        xp = backend_of(x).xp if is_device_array(x) else np
        v = xp.asarray(x, dtype=xp.float64)
        if v.size:
            hi, lo = float(v.max()), float(v.min())
            if not (math.isfinite(hi) and math.isfinite(lo)):
                raise UpdateError(self.site, "update contains NaN or Inf")
            if max(hi, -lo) >= self.bound:
                raise UpdateError(self.site, f"update value of magnitude {max(hi, -lo):.6g} (after weighting) "
                                             f"exceeds this site's CKKS range {self.bound:.6g} (the parameters "
                                             f"allow |total| < {a._ckks_max_abs:.6g}; use a larger first prime or "
                                             f"a smaller scale_bits, or rescale the update)")
        rows = -(-v.size // self.slots)
        mat = xp.zeros((rows, self.slots), xp.float64)
        mat.reshape(-1)[:v.size] = v
        batch = self.pub.encrypt_batch(mat, level=a.ckks_level)
        blob = batch.to_bytes()
        return [(a.aggregator_names[0], "ciphertext", blob, len(blob))]


class _CKKSNode(_Node):
    def __init__(self, agg: "SecureAggregator", name: str, public_context: Any):
        super().__init__(agg, name)
        self.pub = public_context

    def receive(self, site: str, chunk: int, kind: str, payload: Any, n: int) -> None:
        try:
            batch = _batch_from_bytes(self.pub, payload)
        except SerializationError as exc:
            raise UpdateError(site, f"ciphertext rejected by the aggregator: {exc}") from None
        prev = self.acc.get(chunk)
        self.acc[chunk] = batch if prev is None else prev + batch


def _batch_from_bytes(ctx: Any, blob: bytes) -> Any:
    fn = getattr(ctx, "batch_from_bytes", None)
    if fn is None:  # pragma: no cover - depends on the HE layer's public context
        raise TypeError("the CKKS context cannot deserialize ciphertext batches (no batch_from_bytes)")
    return fn(blob)


# ----------------------------------------------------------------------------------------
# the aggregator
# ----------------------------------------------------------------------------------------
class SecureAggregator:
    """Sum or weighted mean of per-site updates without revealing any single update.

    Parameters
    ----------
    method : ``"smpc"`` | ``"ckks"`` | ``"plaintext"``
    aggregators : number of non-colluding aggregators for ``smpc`` (2 or 3).
    ring, frac_bits : fixed-point encoding for ``smpc`` (default Z_2^64, 24 fractional
        bits: resolution 6e-8, per-site range ``|w x| < 2^39 / n_sites``).
    compress_shares : ``smpc`` only; send seeds instead of uniform shares to all but one
        aggregator (halves a site's traffic with 2 aggregators).
    he_context : ``ckks`` only; the model owner's :class:`hecrypt.he.CKKSContext` (with
        secret key).  Sites and the aggregator only ever get ``he_context.public_context()``.
    chunk_size : parameters per message (default 2^16 for smpc on the CPU, 2^22 on a GPU,
        64 ciphertexts for ckks).
    memory_budget : bytes of partial sums the aggregators hold before a window is revealed
        (default 1 GiB).  Dropouts can be excluded only before the first reveal, so a round
        whose partial sums fit in the budget tolerates dropouts at any point.
    on_dropout : ``"exclude"`` (default) or ``"fail"``.
    min_sites : fewest sites a round may count (default 2).
    device : where shares are generated and summed (``"cpu"``, ``"cuda"``, ``"auto"``, None).
    seed : reproducible site randomness, **for tests only**.
    record_view : keep a copy of every received payload in :attr:`view`.
    ckks_level : level at which sites encrypt (default 0, the lowest: aggregation needs no
        multiplicative depth, and a level-0 ciphertext has one RNS limb, the smallest on
        the wire); ``None`` encrypts at the top level as TenSEAL/NVFlare do.
    ckks_max_abs : override the CKKS range ``2^(bits(q_0) - scale_bits - 2)``.
    ckks_flood_bits : the owner adds Gaussian noise of this many bits when decrypting the
        total (noise flooding against IND-CPA-D attacks when totals are published to
        parties who made ciphertexts; see docs/he.md); costs precision
        (``~2^flood_bits * sqrt(N) / 2^scale_bits``).
    """

    def __init__(self, method: str = "smpc", *, aggregators: int = 2, ring: Any = "Z2_64", frac_bits: int = 24,
                 compress_shares: bool = True, he_context: Any = None, chunk_size: int | None = None,
                 memory_budget: int = 1 << 30, on_dropout: str = "exclude", min_sites: int = 2,
                 device: str | None = None, seed: Any = None, record_view: bool = False,
                 ckks_level: int | None = 0, ckks_max_abs: float | None = None,
                 ckks_flood_bits: float | None = None):
        if not isinstance(method, str) or method.lower() not in METHODS:
            raise ValueError(f"unknown aggregation method {method!r}: expected one of {', '.join(METHODS)}")
        self.method = method.lower()
        if on_dropout not in ("exclude", "fail"):
            raise ValueError(f"on_dropout must be 'exclude' or 'fail', got {on_dropout!r}")
        self.on_dropout = on_dropout
        if isinstance(min_sites, bool) or not isinstance(min_sites, numbers.Integral) or min_sites < 1:
            raise ValueError(f"min_sites must be a positive integer, got {min_sites!r}")
        self.min_sites = int(min_sites)
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, numbers.Integral) or memory_budget <= 0:
            raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
        self.memory_budget = int(memory_budget)
        self.device = resolve_device(device)
        self._be = get_backend(self.device)
        self.view = AggregatorView(record_view)
        self._seed = seed
        self._round = 0
        self.compress_shares = bool(compress_shares)

        if self.method == "smpc":
            if isinstance(aggregators, bool) or aggregators not in (2, 3):
                raise ValueError(f"smpc aggregation uses 2 or 3 non-colluding aggregators, got {aggregators!r}")
            self.aggregator_names = tuple(f"aggregator{i}" for i in range(int(aggregators)))
            from ..ring import FixedPoint

            self.ring = ring_from_name(ring)
            self.fixed = FixedPoint(self.ring, frac_bits)
            self._scale = float(self.fixed.scale)
            self._bytes_per_param_held = len(self.aggregator_names) * self.ring.element_bytes
        else:
            if self.method == "plaintext":
                self.aggregator_names = ("aggregator",)
                self._bytes_per_param_held = 8
            self.ring = None
            self.fixed = None
        if self.method == "ckks":
            if he_context is None:
                raise ValueError("method='ckks' needs he_context: the model owner's hecrypt.he.CKKSContext")
            self.aggregator_names = ("aggregator",)
            self._owner_ctx = he_context
            self._public = he_context.public_context()
            self.slots = int(self._public.slots)
            self._ckks_max_abs = float(ckks_max_abs) if ckks_max_abs is not None else _ckks_default_max_abs(he_context)
            if ckks_level is not None and (isinstance(ckks_level, bool) or not isinstance(ckks_level, numbers.Integral)
                                           or ckks_level < 0):
                raise ValueError(f"ckks_level must be a non-negative integer or None (top level), got {ckks_level!r}")
            self.ckks_level = None if ckks_level is None else int(ckks_level)
            self.ckks_flood_bits = ckks_flood_bits
            self._ct_bytes_per_row: int | None = None
            self._bytes_per_param_held = 0  # measured from the first batch
        elif he_context is not None:
            raise ValueError(f"he_context is only used by method='ckks', not {self.method!r}")

        if chunk_size is None:
            if self.method == "ckks":
                chunk_size = _DEFAULT_CKKS_ROWS * self.slots
            elif self.device == "cuda":
                chunk_size = _DEFAULT_GPU_CHUNK  # few, large kernel launches
            else:
                chunk_size = _DEFAULT_CHUNK[self.method]
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if self.method == "ckks":
            chunk_size = -(-int(chunk_size) // self.slots) * self.slots  # whole ciphertexts
        self.chunk_size = int(chunk_size)

    # -- description ---------------------------------------------------------------------
    def __repr__(self) -> str:
        extra = ""
        if self.method == "smpc":
            extra = f", aggregators={len(self.aggregator_names)}, {self.fixed!r}"
        elif self.method == "ckks":
            extra = f", slots={self.slots}"
        return f"SecureAggregator({self.method!r}{extra}, device={self.device!r})"

    def __reduce__(self):
        raise TypeError("a SecureAggregator holds keys and site randomness and cannot be pickled")

    def _site_stream_factory(self, site: str) -> StreamFactory:
        if self._seed is None:
            return StreamFactory(device=self.device)
        return StreamFactory(self._seed, label=f"hecrypt/agg/site/{site}/{self._round}", device=self.device)

    # -- clients -------------------------------------------------------------------------
    def client(self, site: str, *, public_context: Any = None, index: int = 0) -> _Client:
        """The site-side protocol object for ``site``.

        For ``ckks`` a site normally encrypts under the owner's public context; passing
        another ``public_context`` simulates a misconfigured site (its ciphertexts are
        rejected by the aggregator with an error naming the site).
        """
        if self.method == "smpc":
            return _SMPCClient(self, site, index)
        if self.method == "plaintext":
            return _PlainClient(self, site)
        return _CKKSClient(self, site, public_context if public_context is not None else self._public)

    def _nodes(self) -> list[_Node]:
        if self.method == "smpc":
            return [_SMPCNode(self, n) for n in self.aggregator_names]
        if self.method == "plaintext":
            return [_PlainNode(self, n) for n in self.aggregator_names]
        return [_CKKSNode(self, self.aggregator_names[0], self._public)]

    # -- the round -----------------------------------------------------------------------
    def sum(self, updates: Mapping[str, Any], **kw: Any) -> AggregationResult:
        """``aggregate(updates, mean=False, ...)``."""
        return self.aggregate(updates, mean=False, **kw)

    def mean(self, updates: Mapping[str, Any], weights: Mapping[str, float] | None = None,
             **kw: Any) -> AggregationResult:
        """``aggregate(updates, weights=weights, mean=True, ...)``."""
        return self.aggregate(updates, weights=weights, mean=True, **kw)

    def aggregate(self, updates: Mapping[str, Any], *, weights: Mapping[str, float] | None = None,
                  mean: bool = False, clients: Mapping[str, _Client] | None = None,
                  template: Any = None) -> AggregationResult:
        """Run one aggregation round.

        ``updates`` maps site name -> update (array, list of arrays, a :class:`SiteFeed`,
        or ``None`` for a site that did not respond).  ``weights`` (site -> positive
        weight, e.g. sample counts) multiply each update on its site before it is
        protected; ``mean=True`` divides the total by the counted sites' total weight.
        ``template`` (an update or :class:`UpdateSpec`) fixes the expected shapes/dtype;
        by default the first responding site's announced spec is used.

        Returns an :class:`AggregationResult`; raises :class:`UpdateError` or
        :class:`AggregationError` (nothing returned: the caller's model is unchanged).
        """
        t0 = time.perf_counter()
        if not isinstance(updates, Mapping) or not updates:
            raise TypeError("updates must be a non-empty mapping of site name -> update")
        sites = [str(s) for s in updates]
        if len(set(sites)) != len(sites):
            raise ValueError("site names must be distinct")
        w = self._weights(sites, weights)
        self._round += 1
        rnd = self._round

        # 1. announce: every responding site publishes its spec (public metadata).
        feeds: dict[str, SiteFeed] = {}
        dropped: list[str] = []
        for s, u in updates.items():
            s = str(s)
            if u is None:
                dropped.append(s)
                continue
            if isinstance(u, SiteFeed):
                feeds[s] = u
            else:
                feeds[s] = ArrayFeed(u, s)
        if template is not None:
            spec = template if isinstance(template, UpdateSpec) else UpdateSpec.of(template, "template")
        elif feeds:
            spec = next(iter(feeds.values())).spec
        else:
            spec = None
        for s, f in feeds.items():
            spec.check_matches(f.spec, s)
            bad = f.check_finite()
            if bad is not None:
                raise UpdateError(s, f"update contains NaN or Inf (first at flat index {bad})")
        active = [s for s in sites if s in feeds]
        self._check_enough(active, dropped, None)
        P = spec.size

        # Weighting done on each site before protection.  For a mean, site i multiplies by
        # w_i / W (W: total weight of the sites that announced), so contributions are at
        # most |u_i|; the owner multiplies the revealed total by W / W_counted, which is
        # exact whichever sites drop out.  Range: site i may use a share b_i of the
        # method's range with sum(b_i) = max_abs (b_i = max_abs * w_i / W for a mean,
        # max_abs / n for a sum), so the total can never wrap or overflow.
        w_announced = float(sum(w[s] for s in active))
        factor = {s: (w[s] / w_announced if mean else w[s]) for s in active}
        max_abs = self._max_abs()
        budget = {s: (max_abs * w[s] / w_announced if mean else max_abs / len(active)) for s in active}

        # 2. clients (site side) and nodes (aggregator side)
        index = {s: i for i, s in enumerate(sites)}
        cl: dict[str, _Client] = {}
        for s in active:
            c = clients.get(s) if clients else None
            cl[s] = c if c is not None else self.client(s, index=index[s])
            cl[s].bound = budget[s]
            cl[s].factor = factor[s]
        nodes = self._nodes()
        sent = {s: 0 for s in sites}
        clock: dict[str, float] = {}  # seconds each party spent computing (sites, aggregators, owner)
        for node in nodes:
            node.begin_round()
        for s in active:
            self._deliver(rnd, s, -1, cl[s].start_round(rnd), nodes, sent, clock=clock)

        # 3. stream windows of chunks
        chunks = [(a, min(a + self.chunk_size, P)) for a in range(0, P, self.chunk_size)]
        out = np.empty(P, np.float64)
        revealed = False
        resent = 0
        to_owner = 0
        ci = 0
        sent_chunks: set[int] = set()
        windows = 0
        max_held = 0
        while ci < len(chunks):
            win = self._window(chunks, ci)
            for node in nodes:
                node.reset()
            try:
                for c in range(ci, ci + win):
                    a, b = chunks[c]
                    if c in sent_chunks:
                        resent += 1
                    sent_chunks.add(c)
                    for s in list(active):
                        try:
                            x = feeds[s].read(a, b)
                        except SiteDropout as exc:
                            raise _Dropped(s, c) from exc
                        t = time.perf_counter()
                        x = self._weighted(x, 1.0 if self.method == "smpc" else factor[s])
                        msgs = cl[s].protect(c, x)
                        clock[s] = clock.get(s, 0.0) + time.perf_counter() - t
                        self._deliver(rnd, s, c, msgs, nodes, sent, n=b - a, clock=clock)
            except _Dropped as d:
                s = d.site
                if self.on_dropout == "fail":
                    raise AggregationError(f"site {s!r} dropped out at chunk {d.chunk} and on_dropout='fail'",
                                           s, [x for x in active if x != s]) from d.__cause__
                if revealed:
                    raise AggregationError(
                        f"site {s!r} dropped out at chunk {d.chunk}, after part of the total had been revealed; "
                        f"excluding it now would reveal its partial update (raise memory_budget so a round's "
                        f"partial sums fit in one window, which lets any dropout be excluded)",
                        s, [x for x in active if x != s]) from d.__cause__
                active.remove(s)
                dropped.append(s)
                self._check_enough(active, dropped, s)
                continue  # restart this window without the dropped site
            t = time.perf_counter()
            held = chunks[ci + win - 1][1] - chunks[ci][0]
            max_held = max(max_held, held)
            windows += 1
            tw = self._reveal(rnd, nodes, ci, chunks[ci:ci + win], out)
            clock[_OWNER] = clock.get(_OWNER, 0.0) + time.perf_counter() - t
            to_owner += tw
            revealed = True
            ci += win

        # 4. normalise over the sites actually counted
        total_w = float(sum(w[s] for s in active))
        if mean and total_w != w_announced:
            out *= w_announced / total_w
        value = spec.unflatten(out)
        return AggregationResult(
            value=value, sites=tuple(active), dropped=tuple(dropped), method=self.method, mean=bool(mean),
            total_weight=total_w, weights={s: w[s] for s in active}, bytes_per_site=sent,
            bytes_to_owner=to_owner, n_params=P, seconds=time.perf_counter() - t0, resent_chunks=resent,
            round=rnd, info={"chunks": len(chunks), "chunk_size": self.chunk_size,
                             "aggregators": list(self.aggregator_names), "device": self.device,
                             "party_seconds": clock, "windows": windows,
                             "max_params_held": max_held,
                             "critical_path_seconds": _critical_path(clock, sites, self.aggregator_names)},
        )

    # -- helpers -------------------------------------------------------------------------
    def _weights(self, sites: list[str], weights: Mapping[str, float] | None) -> dict[str, float]:
        if weights is None:
            return {s: 1.0 for s in sites}
        if not isinstance(weights, Mapping):
            raise TypeError("weights must be a mapping of site name -> positive weight")
        out = {}
        for s in sites:
            if s not in weights:
                raise ValueError(f"no weight given for site {s!r}")
            v = weights[s]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"weight of site {s!r} must be a positive finite number, got {v!r}")
            out[s] = float(v)
        extra = set(map(str, weights)) - set(sites)
        if extra:
            raise ValueError(f"weights given for unknown sites {sorted(extra)}")
        return out

    def _check_enough(self, active: list[str], dropped: list[str], site: str | None) -> None:
        if len(active) < self.min_sites:
            raise AggregationError(
                f"only {len(active)} site(s) left ({', '.join(active) or 'none'}; dropped: "
                f"{', '.join(dropped) or 'none'}), fewer than min_sites={self.min_sites}", site, active)

    def _max_abs(self) -> float:
        """Largest |total| the method represents (fixed-point range, CKKS decoding range)."""
        if self.method == "smpc":
            return float(self.fixed.max_abs)
        if self.method == "ckks":
            return self._ckks_max_abs
        return float("inf")

    def _weighted(self, x: Any, w: float) -> Any:
        xp = self._be.xp
        if self.method != "ckks":
            x = self._be.asarray(x)
        if w == 1.0:
            return x
        return x * w if self.method == "ckks" else xp.multiply(x, w, dtype=xp.float64)

    def _window(self, chunks: list[tuple[int, int]], ci: int) -> int:
        """How many chunks from ``ci`` fit in the memory budget (at least one)."""
        per = self._bytes_per_param_held
        if per <= 0:  # ckks before the first batch size is known: estimate from the params
            per = self._ckks_bytes_per_param()
        n = 0
        held = 0
        for a, b in chunks[ci:]:
            held += (b - a) * per
            if n and held > self.memory_budget:
                break
            n += 1
        return n

    def _ckks_bytes_per_param(self) -> float:
        if self._ct_bytes_per_row is None:
            probe = self._public.encrypt_batch(np.zeros((1, self.slots)), level=self.ckks_level)
            self._ct_bytes_per_row = len(probe.to_bytes())
        return self._ct_bytes_per_row / self.slots

    def _deliver(self, rnd: int, site: str, chunk: int, msgs: Iterable[tuple[str, str, Any, int]],
                 nodes: list[_Node], sent: dict[str, int], n: int = 0, clock: dict[str, float] | None = None
                 ) -> None:
        by_name = {nd.name: nd for nd in nodes}
        rec = self.view.record_payloads
        for receiver, kind, payload, nbytes in msgs:
            sent[site] += nbytes
            keep = None
            if rec:
                keep = bytes(payload) if isinstance(payload, (bytes, bytearray)) else self._be.to_numpy(payload).copy()
            self.view._add(Message(rnd, site, receiver, chunk, kind, nbytes, keep))
            t = time.perf_counter()
            by_name[receiver].receive(site, chunk, kind, payload, n)
            if clock is not None:
                clock[receiver] = clock.get(receiver, 0.0) + time.perf_counter() - t
        if self.method == "smpc" and self.compress_shares and chunk >= 0:
            # aggregators holding this site's seed expand it for this chunk (no message sent)
            for nd in nodes:
                if site in nd.seeds:
                    t = time.perf_counter()
                    nd.receive(site, chunk, "seeded_chunk", None, n)
                    if clock is not None:
                        clock[nd.name] = clock.get(nd.name, 0.0) + time.perf_counter() - t

    def _reveal(self, rnd: int, nodes: list[_Node], first: int, chunks: list[tuple[int, int]],
                out: np.ndarray) -> int:
        """Aggregators send their window sums to the owner, who recovers the totals."""
        rec = self.view.record_payloads
        nbytes = 0
        for k, (a, b) in enumerate(chunks):
            c = first + k
            if self.method == "smpc":
                parts = []
                for nd in nodes:
                    p = nd.partial_sum(c, b - a)
                    nbytes += int(p.nbytes)
                    self.view._add(Message(rnd, nd.name, _OWNER, c, "partial_sum", int(p.nbytes),
                                           self._be.to_numpy(p).copy() if rec else None))
                    parts.append(p)
                out[a:b] = self._reconstruct(parts)
            elif self.method == "plaintext":
                t = nodes[0].acc[c]
                nbytes += int(t.nbytes)
                self.view._add(Message(rnd, nodes[0].name, _OWNER, c, "plaintext", int(t.nbytes),
                                       self._be.to_numpy(t).copy() if rec else None))
                out[a:b] = self._be.to_numpy(t)
            else:
                blob = nodes[0].acc[c].to_bytes()
                nbytes += len(blob)
                self.view._add(Message(rnd, nodes[0].name, _OWNER, c, "encrypted_sum", len(blob),
                                       blob if rec else None))
                if self._ct_bytes_per_row is None:
                    rows = -(-(b - a) // self.slots)
                    self._ct_bytes_per_row = len(blob) // max(rows, 1)
                    self._bytes_per_param_held = self._ct_bytes_per_row / self.slots
                dec = self._owner_decrypt(blob)
                out[a:b] = np.asarray(dec, dtype=np.float64).reshape(-1)[: b - a]
        for nd in nodes:
            nd.reset()
        return nbytes

    def _reconstruct(self, parts: list[Any]) -> np.ndarray:
        """Owner: add the aggregators' partial sums and decode the total (float64, host)."""
        ring = self.ring
        if not (ring.is_pow2 and ring.bits == 64) or self.device != "cpu":
            return self.fixed.decode(ring.sum_shares(parts))
        # the partial sums belong to the owner once received (the nodes reset after a reveal;
        # recorded views hold copies), so the first one is summed into in place
        total = parts[0] if parts[0].flags.writeable else parts[0].copy()
        for p in parts[1:]:
            np.add(total, p, out=total)  # wrapping uint64 add = Z_2^64 addition
        return total.view(np.int64) * (1.0 / self.fixed.scale)  # signed representative / 2^f

    def _owner_decrypt(self, blob: bytes) -> np.ndarray:
        ctx = self._owner_ctx
        batch = _batch_from_bytes(ctx, blob)
        if self.ckks_flood_bits is None:
            return np.real(ctx.decrypt_batch(batch))
        return np.real(ctx.decrypt_batch(batch, flood_bits=self.ckks_flood_bits))


def _critical_path(clock: dict[str, float], sites: Sequence[str], aggs: Sequence[str]) -> float:
    """Seconds of a deployment where sites and aggregators compute in parallel (no network):
    the slowest site + the slowest aggregator + the owner."""
    return (max((clock.get(s, 0.0) for s in sites), default=0.0) + max((clock.get(a, 0.0) for a in aggs), default=0.0)
            + clock.get(_OWNER, 0.0))


class _Dropped(Exception):
    def __init__(self, site: str, chunk: int):
        self.site = site
        self.chunk = chunk
        super().__init__(site)


def _ckks_default_max_abs(ctx: Any) -> float:
    """Conservative bound on |total| for CKKS: ``2^(bits(q_0) - scale_bits - 2)``.

    The result must decode at level 0 (modulus q_0), which holds values with
    ``|x| * 2^scale_bits < q_0 / 2``; one more bit is kept for the noise.
    """
    params = getattr(ctx, "params", None)
    try:
        bits = list(params.coeff_mod_bits)
        scale_bits = int(params.scale_bits)
    except Exception:  # pragma: no cover - depends on the HE layer
        return float(2 ** 10)
    return float(2.0 ** max(0, bits[0] - scale_bits - 2))
