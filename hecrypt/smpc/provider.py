"""Where correlated randomness comes from: the :class:`CryptoProvider` interface and the
:class:`TrustedDealer` (the tutorial's "crypto provider").

The dealer draws everything from the ChaCha20 CSPRNG (:class:`hecrypt.ring.Stream`) and
hands each compute party its material as a serialized message through the communicator
(booked to the ``offline`` phase).  Material is single-use: each item has an id, and a
party refuses to use an id twice (:class:`~hecrypt.errors.ConsumedError`).

Kinds of material (``n`` compute parties, ``i`` a party, sums in the ring):

``mul`` / ``matmul`` (Beaver triples)
    uniform ``A_i``, ``B_i`` and ``W_i`` with ``sum W_i = A*B - sum_i A_i*B_i`` (``@`` for
    matmul), i.e. the cross terms ``sum_{i != j} A_i B_j``; the dealer computes it as
    ``sum_i A_i (B - B_i)`` (one ring matmul of inner dimension ``n K``).  Where
    :func:`beaver_weights` exist (odd ``n`` in Z_2^k, Z_q) and no operand reuses a mask,
    the left mask is ``A = sum b_i A_i`` and ``W = sum_i A_i (b_i B - B_i)``.  With ``C_i = W_i + A_i B_i`` this is an
    ordinary Beaver triple ``(A, B, C = AB)``; keeping ``A_i B_i`` out of the material lets
    the online phase fold it into one product per party (see :mod:`.protocols`).
    Scale 2 (the last element of the key; two parties in Z_2^k, fixed-point products with
    local truncation): ``W = -2 (A_0 - A_1)(B_0 - B_1)``, one ring product at the dealer, so
    that ``sum_i (E + 2 A_i)(F + 2 B_i) + W_i = 2XY``.
``square``
    ``A_i`` and ``W_i`` with ``sum W_i = A^2 - sum A_i^2``.
``trunc`` (shift ``g``)
    shares of a uniform ``r``, of ``r_hi = floor(r / 2^g)`` and of
    ``t = [r >= h] * (ceil((M - r) / 2^g) + r_hi)`` with ``h = ceil(M / 2)``.
``mask``
    shares of a uniform ``A`` that stays fixed (``SharedTensor.reuse_mask``): later triples
    reference it instead of drawing a fresh ``A``.

With ``compress=True`` (default) the uniform arrays are not sent: each party receives a
fresh 32-byte ChaCha20 key and expands them itself (the dealer expands the same key);
only the correlated arrays of the last party (``W``, ``r_hi``, ``t``) travel as data.

The offline phase can run ahead: ``precompute_mul``, ``precompute_matmul``,
``precompute_square`` and ``precompute_trunc`` produce material for a known workload, and
the online protocols take it from the queue; anything not precomputed is produced on
demand (still booked to the offline phase and to ``ctx.timing.offline_s``).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any, Callable, Sequence

from ..ring import Ring, Stream, StreamFactory

__all__ = ["Timing", "CryptoProvider", "TrustedDealer", "MaterialKey", "beaver_weights"]

MaterialKey = tuple


class Timing:
    """Seconds spent by the protocols: ``offline_s`` (dealer material, on demand or precomputed)
    and ``online_s`` (everything else the protocols do: local arithmetic, openings)."""

    __slots__ = ("online_s", "offline_s")

    def __init__(self) -> None:
        self.online_s = 0.0
        self.offline_s = 0.0

    @property
    def total_s(self) -> float:
        return self.online_s + self.offline_s

    def snapshot(self) -> dict[str, float]:
        return {"online_s": self.online_s, "offline_s": self.offline_s, "total_s": self.total_s}

    def reset(self) -> None:
        self.online_s = 0.0
        self.offline_s = 0.0

    def __repr__(self) -> str:
        return f"Timing(online_s={self.online_s:.6f}, offline_s={self.offline_s:.6f})"


def beaver_weights(ring: Ring, n: int) -> tuple[int, ...] | None:
    """Integer weights ``b_i`` (invertible in the ring, ``sum b_i = 1``) that let ``n`` parties
    form a Beaver product with one product each (see :mod:`.protocols`), or None.

    The left mask is ``A = sum b_i A_i``; each ``b_i`` must be a unit so that ``b_i A_i`` is
    uniform.  In Z_2^k units are odd, and a sum of ``n`` odd numbers is 1 only for odd ``n``:
    ``(1, ..., 1, 2 - n)``.  In Z_q (odd q): ``(2, 1, ..., 1, -(n - 1))`` when ``n - 1`` is a
    unit mod q.  Two parties in Z_2^k have no such weights (None)."""
    import math

    M = ring.modulus
    if ring.is_pow2:
        if n % 2 == 0:
            return None
        b = [1] * (n - 1) + [2 - n]
    else:
        if math.gcd(n - 1, ring.q) != 1:
            return None
        b = [2] + [1] * (n - 2) + [-(n - 1)]
    if sum(b) % M != 1 % M:  # pragma: no cover - by construction
        return None
    return tuple(v % M for v in b)


def _shape(s: Any) -> tuple[int, ...]:
    if isinstance(s, int):
        return (s,)
    return tuple(int(v) for v in s)


class CryptoProvider:
    """Interface of a source of correlated randomness.

    A provider is bound to one context (:meth:`bind`): ``deliver({party: (meta, arrays)})``
    serializes each party's material and sends it through the communicator (one offline
    round).  It then answers :meth:`acquire`
    (material for one operation, returns its id after it has been delivered to every
    compute party) and :meth:`new_mask` (a reusable mask).  Swapping the provider changes
    the offline phase and nothing else.
    """

    name = "dealer"

    def bind(self, ring: Ring, device: str, parties: Sequence[str],
             deliver: Callable[[dict[str, tuple[dict, dict]]], None], timing: Timing) -> None:  # pragma: no cover
        raise NotImplementedError

    def acquire(self, key: MaterialKey) -> int:  # pragma: no cover
        raise NotImplementedError

    def new_mask(self, shape: Sequence[int]) -> int:  # pragma: no cover
        raise NotImplementedError


class TrustedDealer(CryptoProvider):
    """A trusted third party that draws triples, truncation pairs and masks from the CSPRNG.

    ``seed`` makes the dealer reproducible (tests only).  ``compress`` sends seeds instead of
    uniform arrays (see the module docstring).
    """

    def __init__(self, name: str = "dealer", *, seed: Any = None, compress: bool = True):
        if not isinstance(name, str) or not name:
            raise TypeError("the dealer's name must be a non-empty string")
        self.name = name
        self.compress = bool(compress)
        self._seed = seed
        self._bound = False
        self._queues: dict[MaterialKey, deque] = defaultdict(deque)
        self._next_id = 1
        self._masks: dict[int, list[Any]] = {}
        self.issued = 0

    def __repr__(self) -> str:
        return f"TrustedDealer({self.name!r}, compress={self.compress}, precomputed={self.pending()})"

    def __reduce__(self):
        raise TypeError("the dealer holds secret keys and cannot be pickled")

    # -- binding ---------------------------------------------------------------------------
    def bind(self, ring: Ring, device: str, parties: Sequence[str],
             deliver: Callable[[dict[str, tuple[dict, dict]]], None], timing: Timing) -> None:
        if self._bound:
            raise ValueError("this dealer already serves a context; create one dealer per context")
        self.ring = ring
        self.device = device
        self.parties = tuple(parties)
        self._deliver = deliver
        self.timing = timing
        self._stream = StreamFactory(self._seed, label=f"hecrypt.smpc/dealer/{self.name}",
                                     device="cpu").new_stream()
        self._bound = True

    # -- public offline phase ----------------------------------------------------------------
    def pending(self, key: MaterialKey | None = None) -> int:
        """Precomputed items waiting (for ``key``, or in total)."""
        if key is not None:
            return len(self._queues.get(key, ()))
        return sum(len(q) for q in self._queues.values())

    def precompute(self, key: MaterialKey, count: int = 1) -> None:
        """Produce and deliver ``count`` items of material for ``key`` ahead of time."""
        if not isinstance(count, int) or count < 0:
            raise ValueError("count must be a non-negative integer")
        for _ in range(count):
            self._queues[key].append(self._generate(key))

    def precompute_mul(self, shape: Sequence[int], count: int = 1, scale: int | None = None) -> None:
        """Triples for ``count`` elementwise products of ``shape`` (fresh masks both sides).

        ``scale`` (1 or 2) defaults to what the context's fixed-point products use
        (``default_scale``: 2 for the doubled two-party form, see :mod:`.protocols`); products of
        integer tensors (``share_int``) always use scale 1."""
        self.precompute(("mul", _shape(shape), None, None, self._scale(scale)), count)

    def precompute_square(self, shape: Sequence[int], count: int = 1) -> None:
        self.precompute(("square", _shape(shape), None), count)

    def precompute_matmul(self, shape_a: Sequence[int], shape_b: Sequence[int], count: int = 1,
                          scale: int | None = None) -> None:
        """Triples for ``count`` shared products ``(shape_a) @ (shape_b)`` (2-D or batched);
        ``scale`` as in :meth:`precompute_mul`."""
        self.precompute(("matmul", _shape(shape_a), _shape(shape_b), None, None, self._scale(scale)), count)

    def precompute_trunc(self, shape: Sequence[int], count: int = 1, shift: int | None = None) -> None:
        """Dealer-assisted truncation pairs (only used when the context truncates with the dealer).

        ``shift`` defaults to the context's ``frac_bits`` (set by the context on binding)."""
        g = self.default_shift if shift is None else int(shift)
        self.precompute(("trunc", _shape(shape), g), count)

    default_shift = 16
    #: product scale of the context's fixed-point Beaver products (set by the context on binding)
    default_scale = 1

    def _scale(self, scale: int | None) -> int:
        s = self.default_scale if scale is None else scale
        if s not in (1, 2):
            raise ValueError(f"scale must be 1 or 2, got {scale!r}")
        return int(s)

    # -- online requests ------------------------------------------------------------------------
    def acquire(self, key: MaterialKey) -> int:
        q = self._queues.get(key)
        if q:
            return q.popleft()
        return self._generate(key)

    def new_mask(self, shape: Sequence[int]) -> int:
        return self._generate(("mask", _shape(shape)))

    # -- generation -------------------------------------------------------------------------
    def _mask_shares(self, ref: Any) -> list[Any]:
        mid, transposed = ref
        shares = self._masks[mid]
        if transposed:
            return [s.swapaxes(-1, -2) for s in shares]
        return shares

    def _generate(self, key: MaterialKey) -> int:
        t0 = time.perf_counter()
        if not self._bound:
            raise RuntimeError("the dealer is not bound to a context")
        R = self.ring
        n = len(self.parties)
        mid = self._next_id
        self._next_id += 1
        kb = self._stream.random_bytes(32 * n)
        keys = [kb[32 * i:32 * i + 32] for i in range(n)]
        streams = [Stream(k, 0, device=self.device) for k in keys]
        expand: list[list] = [[] for _ in range(n)]
        explicit: list[dict[str, Any]] = [{} for _ in range(n)]
        last = n - 1

        def uniform(i: int, name: str, shape: tuple) -> Any:
            a = streams[i].uniform(R, shape)
            if self.compress:
                expand[i].append([name, list(shape)])
            else:
                explicit[i][name] = a
            return a

        def correlated(name: str, shape: tuple, total: Any) -> None:
            acc = None
            for i in range(n - 1):
                s = uniform(i, name, shape)
                acc = s if acc is None else R.add(acc, s)
            explicit[last][name] = total if acc is None else R.sub(total, acc)

        kind = key[0]
        mask_meta = None
        if kind in ("mul", "matmul"):
            if len(key) != (5 if kind == "mul" else 6):
                raise ValueError(f"a {kind} key is ({kind!r}, {'shape' if kind == 'mul' else 'shape_a, shape_b'}, "
                                 f"amask, bmask, scale), got {key!r}")
            if kind == "mul":
                sa = sb = key[1]
                amask, bmask, scale = key[2], key[3], key[4]
            else:
                sa, sb = key[1], key[2]
                amask, bmask, scale = key[3], key[4], key[5]
            if scale not in (1, 2) or (scale == 2 and (n != 2 or not R.is_pow2)):
                raise ValueError(f"bad Beaver scale {scale!r} for {n} parties in {R.name}")
            A = self._mask_shares(amask) if amask is not None else [uniform(i, "a", sa) for i in range(n)]
            B = self._mask_shares(bmask) if bmask is not None else [uniform(i, "b", sb) for i in range(n)]
            weights = beaver_weights(R, n) if (amask is None and bmask is None and scale == 1) else None
            if scale == 2:
                # doubled form: W = -2 (A_0 - A_1)(B_0 - B_1), one ring product
                rest = None
            elif weights is not None:
                # weighted left mask A = sum b_i A_i: W = sum_i A_i (b_i B - B_i)
                Bsum = R.sum_shares(B)
                rest = [R.sub(Bsum if w == 1 else R.mul_public(Bsum, int(w)), B[i]) for i, w in enumerate(weights)]
            elif n == 2:
                rest = [B[1], B[0]]
            else:
                Bsum = R.sum_shares(B)
                rest = [R.sub(Bsum, B[i]) for i in range(n)]  # B - B_i
            if rest is None:
                dA, dB = R.sub(A[0], A[1]), R.sub(B[0], B[1])
                cross = R.mul_public(R.matmul(dA, dB) if kind == "matmul" else R.mul(dA, dB), -2)
            elif kind == "matmul":
                # sum_i A_i (B - B_i) as one ring matmul with inner dimension n K
                xp = _xp(B[0])
                cross = R.matmul(xp.concatenate(A, axis=-1), xp.concatenate(rest, axis=-2))
            else:
                cross = None
                for i in range(n):
                    term = R.mul(A[i], rest[i])
                    cross = term if cross is None else R.add(cross, term)
            correlated("w", tuple(cross.shape), cross)
            mask_meta = [amask and list(amask), bmask and list(bmask)]
        elif kind == "square":
            shape, amask = key[1], key[2]
            A = self._mask_shares(amask) if amask is not None else [uniform(i, "a", shape) for i in range(n)]
            Asum = R.sum_shares(A)
            cross = R.mul(Asum, Asum)
            for i in range(n):
                cross = R.sub(cross, R.mul(A[i], A[i]))
            correlated("w", tuple(shape), cross)
            mask_meta = [amask and list(amask), None]
        elif kind == "trunc":
            shape, g = key[1], int(key[2])
            rs = [uniform(i, "r", shape) for i in range(n)]
            r = R.sum_shares(rs)
            xp = _xp(r)
            dt = R.dtype.type
            gg = dt(g)
            rhi = r >> gg
            h = (R.modulus + 1) // 2
            # s = M - r: two's complement wrap for Z_2^k, q - r for Z_q (only used where r >= h)
            s = (xp.zeros_like(r) - r) if R.is_pow2 else (dt(R.q) - r)
            s_ceil = (s >> gg) + ((s & dt((1 << g) - 1)) != 0).astype(R.dtype)  # ceil(s / 2^g)
            t = xp.where(r >= dt(h), s_ceil + rhi, dt(0)).astype(R.dtype)
            correlated("rhi", tuple(shape), rhi.astype(R.dtype))
            correlated("t", tuple(shape), t)
        elif kind == "mask":
            shape = key[1]
            self._masks[mid] = [uniform(i, "a", shape) for i in range(n)]
        else:
            raise ValueError(f"unknown material kind {kind!r}")

        blobs = {}
        for i, name in enumerate(self.parties):
            meta = {"mid": mid, "kind": kind, "seed": keys[i].hex() if expand[i] else None,
                    "expand": expand[i], "mask": mask_meta}
            blobs[name] = (meta, explicit[i])
        self._deliver(blobs)
        self.issued += 1
        self.timing.offline_s += time.perf_counter() - t0
        return mid


def _xp(a: Any) -> Any:
    from ..backend import backend_of

    return backend_of(a).xp
