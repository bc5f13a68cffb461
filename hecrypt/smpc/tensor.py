"""SharedTensor: an additively secret-shared array, with the operators users expect.

A tensor only *names* its shares: each compute party keeps its own share array in its own
store (:class:`~hecrypt.smpc.party.Party`).  Fixed-point tensors (``share``) carry
``frac_bits = f``; integer tensors (``share_int``) carry 0 and compute exactly.

Ranges the operations assume (secret values cannot be checked without revealing them;
everything public is checked): encoded magnitudes ``|x| 2^f`` below ``M/2``; a product of
two fixed-point values below ``2^(log2 M - 2 - 2f)`` in magnitude (``2^30`` for Z_2^64,
f = 16) so the ``2f``-scaled product fits the truncation's range (``M/4``).  With local
truncation (two parties, whose fixed-point products hold ``2xy`` at ``2f + 1`` fractional
bits, see :func:`~hecrypt.smpc.protocols.doubled_products`) a product of magnitude ``v`` is
wrong with probability ``2 v 2^(2f) / 2^k`` per element (see ``docs/smpc.md``).
"""

from __future__ import annotations

import math
import numbers
import weakref
from typing import Any, Sequence

import numpy as np

from ..backend import is_device_array
from ..errors import ContextMismatchError, RingMismatchError
from . import protocols
from . import serialize as ser

__all__ = ["SharedTensor", "concatenate", "stack"]


class RingContextMismatchError(RingMismatchError, ContextMismatchError):
    """Operands from different contexts whose rings differ too (catchable as either error)."""


def _drop(parties: list, tid: int) -> None:
    for p in parties:
        p._store.pop(tid, None)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, numbers.Number) or (isinstance(v, np.ndarray) and v.ndim == 0) or \
        (isinstance(v, np.generic))


class SharedTensor:
    """An additively secret-shared tensor (see the module docstring).

    Never reveals by accident: ``np.asarray(x)``, ``bool(x)``, ``float(x)`` and pickling
    raise ``TypeError``; ``repr`` shows shape, ring and parties only.
    """

    __slots__ = ("_ctx", "_tid", "_shape", "_frac", "_mask", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators
    __array_priority__ = 1000

    def __init__(self, *args: Any, **kwargs: Any):
        raise TypeError("create shared tensors with ctx.share(...), ctx.share_int(...) or ctx.zeros(...)")

    @classmethod
    def _from_shares(cls, ctx: Any, shares: list, frac: int, mask: Any = None) -> "SharedTensor":
        t = object.__new__(cls)
        t._ctx = ctx
        tid = ctx._new_tid()
        t._tid = tid
        t._shape = tuple(shares[0].shape)
        t._frac = frac
        t._mask = mask
        parties = ctx.compute_parties
        for p, s in zip(parties, shares):
            p._store[tid] = s
        weakref.finalize(t, _drop, parties, tid)
        return t

    def _shares(self) -> list:
        tid = self._tid
        return [p._store[tid] for p in self._ctx.compute_parties]

    def _new(self, shares: list, frac: int | None = None, mask: Any = None) -> "SharedTensor":
        return SharedTensor._from_shares(self._ctx, shares, self._frac if frac is None else frac, mask)

    # -- description ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def ring(self):
        return self._ctx.ring

    @property
    def dtype(self):
        """dtype of the share arrays (ring elements)."""
        return self._ctx.ring.dtype

    @property
    def device(self) -> str:
        return self._ctx.device

    @property
    def context(self):
        return self._ctx

    @property
    def frac_bits(self) -> int:
        """Fractional bits of the encoding (0 for integer tensors)."""
        return self._frac

    @property
    def is_fixed_point(self) -> bool:
        return self._frac > 0

    @property
    def reuses_mask(self) -> bool:
        return self._mask is not None

    @property
    def mask_uses(self) -> int:
        """How many products have used this tensor's reusable mask (0 if it has none)."""
        if self._mask is None:
            return 0
        return self._ctx.compute_parties[0].mask(self._mask[0])["uses"]

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d shared tensor")
        return self._shape[0]

    def __repr__(self) -> str:
        kind = f"frac_bits={self._frac}" if self._frac else "integer"
        m = ", reused mask" if self._mask is not None else ""
        return (f"SharedTensor(shape={self._shape}, ring={self._ctx.ring.name}, {kind}, "
                f"parties={self._ctx.party_names}, device={self._ctx.device}{m})")

    __str__ = __repr__

    # -- nothing reveals by accident ------------------------------------------------------------
    def __array__(self, *args: Any, **kwargs: Any):
        raise TypeError("a SharedTensor cannot be converted to an array; call .reveal() (all parties "
                        "agree to open it)")

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a SharedTensor is secret; reveal it first")

    def __float__(self) -> float:
        raise TypeError("a SharedTensor cannot be converted to float; call .reveal()")

    def __int__(self) -> int:
        raise TypeError("a SharedTensor cannot be converted to int; call .reveal()")

    def __index__(self) -> int:
        raise TypeError("a SharedTensor cannot be used as an index")

    def __reduce_ex__(self, protocol: Any):
        raise TypeError("SharedTensor cannot be pickled (it would gather every party's share); "
                        "serialize one party's share with share_bytes(party)")

    def __copy__(self):
        return self._new(self._shares(), mask=self._mask)

    def __deepcopy__(self, memo: Any):
        return self._new([s.copy() for s in self._shares()], mask=None)

    # -- per-party access ---------------------------------------------------------------------------
    def share_of(self, party: str) -> Any:
        """The raw share array (ring dtype, numpy or CuPy) held by compute party ``party``."""
        p = self._ctx.party(party)
        if p.role != "compute":
            raise ValueError(f"{party!r} is an input party and holds no shares")
        return p.get(self._tid)

    def share_bytes(self, party: str) -> bytes:
        """``party``'s share in the versioned binary format (see :mod:`.serialize`)."""
        a = self.share_of(party)
        meta = {"party": party, "ring": str(self._ctx.ring.modulus), "frac_bits": self._frac,
                "context": self._ctx.id}
        return ser.pack(ser.KIND_SHARE, meta, {"share": a})

    def reveal(self, to: str | None = None) -> np.ndarray:
        """Open the tensor: every compute party sends its share to the receiver(s) (one round).

        ``to=None``: all compute parties learn the value; ``to="alice"``: only that party
        (compute or input party).  Returns float64 for fixed point, int64 signed
        representatives for integer tensors (numpy, on the host)."""
        ctx = self._ctx
        comm = ctx.comm
        R = ctx.ring
        shares = self._shares()
        names = ctx.party_names
        receivers = list(names) if to is None else [ctx.party(to).name]
        with ctx._timed():
            with comm.round():
                for src, s in zip(names, shares):
                    blob = None
                    for dst in receivers:
                        if dst != src:
                            blob = blob or ctx._pack(ser.KIND_MESSAGE, {"tag": "reveal"}, {"s": s})
                            comm.send(src, dst, blob, "reveal")
            result = None
            for dst in receivers:
                parts = []
                for src, s in zip(names, shares):
                    if src == dst:
                        parts.append(s)
                    else:
                        _, arrs = ser.unpack(comm.recv(dst, src, "reveal"), ser.KIND_MESSAGE, device=ctx.device)
                        parts.append(arrs["s"])
                total = R.sum_shares(parts)
                if result is None:
                    result = ctx._decode(total, self._frac)
        return result

    get_plain_text = reveal

    # -- helpers ----------------------------------------------------------------------------------
    def _check_other(self, other: "SharedTensor") -> None:
        if other._ctx is not self._ctx:
            if other._ctx.ring != self._ctx.ring:
                raise RingContextMismatchError(
                    f"operands live in different rings ({self._ctx.ring.name} and {other._ctx.ring.name}) "
                    "and different SMPC contexts; tensors of different contexts never mix")
            raise ContextMismatchError("operands belong to different SMPC contexts; tensors of different "
                                       "contexts never mix")

    def _scaled(self, frac: int) -> list:
        """Shares rescaled (exactly) to ``frac >= self._frac`` fractional bits."""
        if frac == self._frac:
            return self._shares()
        R = self._ctx.ring
        k = 1 << (frac - self._frac)
        return [R.mul_public(s, k) for s in self._shares()]

    def _public(self, v: Any, frac: int) -> Any:
        """Encode a public operand at ``frac`` fractional bits (exact ring ints for frac 0)."""
        ctx = self._ctx
        if isinstance(v, SharedTensor):
            raise TypeError("internal: expected a public operand")
        if is_device_array(v):
            v = ctx._to_host_array(v)
        arr = np.asarray(v)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"unsupported public operand of type {type(v).__name__} (dtype {arr.dtype})")
        if frac == 0:
            if arr.dtype.kind == "f":
                raise TypeError("internal: float operand for an integer encoding")
            return ctx.ring.from_int(arr, device=ctx.device)
        if frac == ctx.frac_bits:
            return ctx.encoding.encode(arr, device=ctx.device)
        raise ValueError(f"internal: cannot encode at {frac} fractional bits")  # pragma: no cover

    def _shape_of_broadcast(self, other_shape: Sequence[int], op: str) -> tuple:
        try:
            return tuple(np.broadcast_shapes(self._shape, tuple(other_shape)))
        except ValueError:
            raise ValueError(f"shape mismatch for {op}: {self._shape} and {tuple(other_shape)}") from None

    # -- addition -------------------------------------------------------------------------------------
    def _add(self, other: Any, sign: int) -> "SharedTensor":
        ctx = self._ctx
        R = ctx.ring
        with ctx._timed():
            if isinstance(other, SharedTensor):
                self._check_other(other)
                self._shape_of_broadcast(other._shape, "+/-")
                f = max(self._frac, other._frac)
                xs, ys = self._scaled(f), other._scaled(f)
                op = R.add if sign > 0 else R.sub
                return self._new([op(x, y) for x, y in zip(xs, ys)], f)
            arr = other if _is_scalar(other) else np.asarray(other) if not is_device_array(other) else other
            shape = () if _is_scalar(other) else tuple(arr.shape)
            self._shape_of_broadcast(shape, "+/-")
            kind = np.asarray(other).dtype.kind if not is_device_array(other) else other.dtype.kind
            f = self._frac if (self._frac or kind in "biu") else ctx.frac_bits
            xs = self._scaled(f)
            p = self._public(other, f)
            if sign < 0:
                p = R.neg(p)
            out = [R.add(xs[0], p)] + [x if x.shape == tuple(np.broadcast_shapes(x.shape, p.shape))
                                       else ctx.xp.ascontiguousarray(ctx.xp.broadcast_to(
                                           x, np.broadcast_shapes(x.shape, p.shape))) for x in xs[1:]]
            return self._new(out, f)

    def __add__(self, other: Any) -> "SharedTensor":
        return self._add(other, +1)

    def __radd__(self, other: Any) -> "SharedTensor":
        return self._add(other, +1)

    def __sub__(self, other: Any) -> "SharedTensor":
        return self._add(other, -1)

    def __rsub__(self, other: Any) -> "SharedTensor":
        return (-self)._add(other, +1)

    def __neg__(self) -> "SharedTensor":
        R = self._ctx.ring
        return self._new([R.neg(s) for s in self._shares()])

    def __pos__(self) -> "SharedTensor":
        return self

    # -- multiplication -------------------------------------------------------------------------------
    def _rescale(self, shares: list, frac: int) -> "SharedTensor":
        """Bring shares with ``frac`` fractional bits to the context precision (or keep ints)."""
        ctx = self._ctx
        f = ctx.frac_bits
        if frac > f:  # every caller passes fresh product arrays: truncate them in place
            shares = protocols.truncate(ctx, shares, frac - f, inplace=True)
            frac = f
        return self._new(shares, frac)

    def _doubled(self, other: "SharedTensor") -> bool:
        """Use the doubled two-party Beaver form (shares of ``2xy``, one ring product per party)
        for this product: only where the product is truncated locally afterwards."""
        ctx = self._ctx
        return self._frac + other._frac > ctx.frac_bits and protocols.doubled_products(ctx)

    def _mul_scalar(self, c: Any) -> "SharedTensor":
        ctx = self._ctx
        R = ctx.ring
        if isinstance(c, np.ndarray):
            c = c.item()
        if isinstance(c, (bool, np.bool_)):
            c = int(c)
        if isinstance(c, numbers.Integral):
            return self._new([R.mul_public(s, int(c)) for s in self._shares()])
        c = float(c)
        if not math.isfinite(c):
            from ..errors import EncodingError

            raise EncodingError("cannot multiply by NaN or Inf")
        if c == int(c) and abs(c) < 2 ** 53:
            return self._new([R.mul_public(s, int(c)) for s in self._shares()])
        f = ctx.frac_bits
        g = public_scalar_bits(c, ctx)
        ci = int(round(math.ldexp(c, g)))
        if ci == 0:
            return self._new([R.zeros(self._shape, device=ctx.device) for _ in ctx.party_names],
                             max(self._frac, f))
        shares = [R.mul_public(s, ci) for s in self._shares()]
        frac = self._frac + g
        if frac < f:
            shares = [R.mul_public(s, 1 << (f - frac)) for s in shares]
            frac = f
        return self._rescale(shares, frac)

    def __mul__(self, other: Any) -> "SharedTensor":
        ctx = self._ctx
        R = ctx.ring
        if self.ndim == 0 and (other.ndim == 0 if isinstance(other, SharedTensor) else np.ndim(other) == 0):
            # 0-d operands go through 1-element arrays (some kernels return 1-D for 0-d input)
            o = other.reshape(1) if isinstance(other, SharedTensor) and other is not self else other
            return ((self.reshape(1) * (self.reshape(1) if other is self else o))).reshape(())
        with ctx._timed():
            if isinstance(other, SharedTensor):
                self._check_other(other)
                shape = self._shape_of_broadcast(other._shape, "*")
                if other is self or (other._tid == self._tid):
                    z = protocols.beaver_square(ctx, self._shares(), self._mask)
                else:
                    xs, ys = self._shares(), other._shares()
                    am, bm = self._mask, other._mask
                    if tuple(self._shape) != shape:
                        xs = [ctx.xp.ascontiguousarray(ctx.xp.broadcast_to(x, shape)) for x in xs]
                        am = None
                    if tuple(other._shape) != shape:
                        ys = [ctx.xp.ascontiguousarray(ctx.xp.broadcast_to(y, shape)) for y in ys]
                        bm = None
                    if self._doubled(other):  # shares of 2xy: one more fractional bit
                        return self._rescale(protocols.beaver_mul(ctx, xs, ys, am, bm, doubled=True),
                                             self._frac + other._frac + 1)
                    z = protocols.beaver_mul(ctx, xs, ys, am, bm)
                return self._rescale(z, self._frac + other._frac)
            if _is_scalar(other):
                return self._mul_scalar(other)
            arr = ctx._to_host_array(other)
            self._shape_of_broadcast(arr.shape, "*")
            if arr.dtype.kind in "biu":
                p = R.from_int(arr, device=ctx.device)
                return self._new([R.mul(s, p) for s in self._shares()])
            if arr.dtype.kind != "f":
                raise TypeError(f"cannot multiply a SharedTensor by {type(other).__name__}")
            p = ctx.encoding.encode(arr, device=ctx.device)
            return self._rescale([R.mul(s, p) for s in self._shares()], self._frac + ctx.frac_bits)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> "SharedTensor":
        if isinstance(other, SharedTensor):
            raise TypeError("division by a secret-shared value is not supported")
        if _is_scalar(other):
            c = float(np.asarray(other))
            if c == 0:
                raise ZeroDivisionError("division of a SharedTensor by zero")
            return self * (1.0 / c)
        arr = np.asarray(other, dtype=np.float64)
        if np.any(arr == 0):
            raise ZeroDivisionError("division of a SharedTensor by zero")
        return self * (1.0 / arr)

    def square(self) -> "SharedTensor":
        """``x * x`` with a single opening."""
        return self * self

    # -- matrix products -------------------------------------------------------------------------------
    def __matmul__(self, other: Any) -> "SharedTensor":
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> "SharedTensor":
        return _matmul(other, self)

    def dot(self, other: Any) -> "SharedTensor":
        """``numpy.dot`` semantics for 1-D and 2-D operands (matmul)."""
        return _matmul(self, other)

    # -- reductions -----------------------------------------------------------------------------------
    def sum(self, axis: int | tuple | None = None, keepdims: bool = False) -> "SharedTensor":
        R = self._ctx.ring
        with self._ctx._timed():
            if axis is None or isinstance(axis, tuple):
                out = self._shares()
                axes = range(self.ndim) if axis is None else sorted((a % self.ndim for a in axis), reverse=True)
                if axis is None:
                    out = [R.sum(s.reshape(-1), 0) for s in out]
                    if keepdims:
                        out = [s.reshape((1,) * self.ndim) for s in out]
                else:
                    for a in axes:
                        out = [R.sum(s, a) for s in out]
                        if keepdims:
                            out = [self._ctx.xp.expand_dims(s, a) for s in out]
                return self._new(out)
            if not isinstance(axis, numbers.Integral) or not -self.ndim <= axis < self.ndim:
                raise ValueError(f"axis {axis!r} out of range for a {self.ndim}-D tensor")
            out = [R.sum(s, int(axis)) for s in self._shares()]
            if keepdims:
                out = [self._ctx.xp.expand_dims(s, int(axis)) for s in out]
            return self._new(out)

    def mean(self, axis: int | tuple | None = None, keepdims: bool = False) -> "SharedTensor":
        """Sum times the public ``1/count`` (encoded at its own precision)."""
        s = self.sum(axis, keepdims)
        count = self.size // max(1, s.size) if s.size else 1
        if self._frac == 0:
            s = s * 1.0  # integers become fixed point
        return s * (1.0 / count)

    # -- shape ----------------------------------------------------------------------------------------
    @property
    def T(self) -> "SharedTensor":
        mask = None
        if self._mask is not None and self.ndim == 2:
            mask = (self._mask[0], not self._mask[1])
        return self._new([s.T for s in self._shares()], mask=mask)

    def transpose(self, *axes: Any) -> "SharedTensor":
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        if not axes:
            return self.T
        axes = tuple(axes)
        if self.ndim == 2 and tuple(a % 2 for a in axes) == (1, 0):
            return self.T
        return self._new([s.transpose(axes) for s in self._shares()])

    def reshape(self, *shape: Any) -> "SharedTensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out = [s.reshape(shape) for s in self._shares()]
        except ValueError as exc:
            raise ValueError(f"cannot reshape {self._shape} to {shape}: {exc}") from None
        return self._new(out)

    def flatten(self) -> "SharedTensor":
        return self.reshape(-1)

    def __getitem__(self, idx: Any) -> "SharedTensor":
        if isinstance(idx, SharedTensor) or (isinstance(idx, tuple) and any(isinstance(i, SharedTensor) for i in idx)):
            raise TypeError("indexing with a secret-shared index is not supported")
        return self._new([s[idx] for s in self._shares()])

    def copy(self) -> "SharedTensor":
        return self._new([s.copy() for s in self._shares()])

    # -- masks ------------------------------------------------------------------------------------------
    def reuse_mask(self) -> "SharedTensor":
        """A tensor with the same shares whose Beaver mask (and its opening ``X - A``) is drawn
        once and reused by every product that takes it (or its ``.T``) as an operand.

        Sanctioned for operands that never change (a training set multiplied every step):
        reusing the mask reveals nothing beyond the first opening because ``X - A`` is the same
        value each time.  Tracked: :attr:`mask_uses` counts the products that used it."""
        ctx = self._ctx
        if self.ndim == 0:
            raise ValueError("reuse_mask needs a tensor with at least one dimension")
        with ctx._timed():
            mid = ctx.dealer.new_mask(self._shape)
        return self._new(self._shares(), mask=(mid, False))


def public_scalar_bits(c: float, ctx: Any) -> int:
    """Fractional bits ``g`` used to encode a public real scalar ``c``: ``c 2^g`` has about
    ``f + 1`` significant bits (``g = f - floor(log2 |c|)``, at least 0), capped at
    ``floor(log2 M) - 2 - f`` so the product and its truncation fit the ring."""
    f = ctx.frac_bits
    e = math.frexp(abs(c))[1] - 1  # |c| in [2^e, 2^(e+1))
    cap = int(math.floor(ctx.ring.log2_modulus)) - 2 - f
    return max(0, min(f - e, cap))


def _matmul(a: Any, b: Any) -> SharedTensor:
    ctx = a._ctx if isinstance(a, SharedTensor) else b._ctx
    R = ctx.ring
    with ctx._timed():
        if isinstance(a, SharedTensor) and isinstance(b, SharedTensor):
            a._check_other(b)
        sa = a.shape if isinstance(a, SharedTensor) else np.shape(a)
        sb = b.shape if isinstance(b, SharedTensor) else np.shape(b)
        if len(sa) == 0 or len(sb) == 0:
            raise ValueError("matmul operands must have at least one dimension (use * for scalars)")
        squeeze = []
        if len(sa) == 1:
            a = a.reshape(1, sa[0]) if isinstance(a, SharedTensor) else np.reshape(a, (1, sa[0]))
            squeeze.append(-2)
        if len(sb) == 1:
            b = b.reshape(sb[0], 1) if isinstance(b, SharedTensor) else np.reshape(b, (sb[0], 1))
            squeeze.append(-1)
        sa2 = a.shape if isinstance(a, SharedTensor) else np.shape(a)
        sb2 = b.shape if isinstance(b, SharedTensor) else np.shape(b)
        if sa2[-1] != sb2[-2]:
            raise ValueError(f"matmul shape mismatch: {tuple(sa)} @ {tuple(sb)}")
        try:
            np.broadcast_shapes(tuple(sa2[:-2]), tuple(sb2[:-2]))
        except ValueError:
            raise ValueError(f"matmul batch shapes do not broadcast: {tuple(sa)} @ {tuple(sb)}") from None
        if isinstance(a, SharedTensor) and isinstance(b, SharedTensor):
            dbl = a._doubled(b)  # shares of 2 a @ b: one more fractional bit
            z = protocols.beaver_matmul(ctx, a._shares(), b._shares(), a._mask, b._mask, doubled=dbl)
            out = a._rescale(z, a._frac + b._frac + int(dbl))
        else:
            t, pub, left = (a, b, True) if isinstance(a, SharedTensor) else (b, a, False)
            arr = ctx._to_host_array(pub)
            if arr.dtype.kind in "biu":
                p, pf = R.from_int(arr, device=ctx.device), 0
            elif arr.dtype.kind == "f":
                p, pf = ctx.encoding.encode(arr, device=ctx.device), ctx.frac_bits
            else:
                raise TypeError(f"cannot multiply a SharedTensor by {type(pub).__name__}")
            z = [R.matmul(s, p) if left else R.matmul(p, s) for s in t._shares()]
            out = t._rescale(z, t._frac + pf)
        if squeeze:
            new_shape = tuple(out.shape[:-2]) + tuple(
                d for k, d in zip((-2, -1), out.shape[-2:]) if k not in squeeze)
            out = out.reshape(new_shape)
        return out


def _collect(tensors: Sequence[SharedTensor], what: str) -> tuple[Any, int, list]:
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{what} needs at least one tensor")
    for t in tensors:
        if not isinstance(t, SharedTensor):
            raise TypeError(f"{what} takes SharedTensors, got {type(t).__name__}")
    ctx = tensors[0]._ctx
    for t in tensors[1:]:
        tensors[0]._check_other(t)
    f = max(t._frac for t in tensors)
    per = [t._scaled(f) for t in tensors]
    return ctx, f, per


def concatenate(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Concatenate shared tensors of one context along ``axis`` (local, no messages)."""
    ctx, f, per = _collect(tensors, "concatenate")
    xp = ctx.xp
    try:
        out = [xp.concatenate([p[i] for p in per], axis=axis) for i in range(ctx.n_parties)]
    except ValueError as exc:
        raise ValueError(f"concatenate: {exc}") from None
    return ctx._wrap(out, f)


def stack(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Stack shared tensors of one context along a new ``axis`` (local, no messages)."""
    ctx, f, per = _collect(tensors, "stack")
    xp = ctx.xp
    try:
        out = [xp.stack([p[i] for p in per], axis=axis) for i in range(ctx.n_parties)]
    except ValueError as exc:
        raise ValueError(f"stack: {exc}") from None
    return ctx._wrap(out, f)
