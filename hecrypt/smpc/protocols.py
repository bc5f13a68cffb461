"""The protocols, written against the parties' share lists and the communicator.

Every function takes the context and per-party lists (index ``i`` = ``ctx.parties[i]``) of
share arrays, and returns per-party lists; the only values that cross between parties are
serialized messages sent through ``ctx.comm``.  All arithmetic goes through
:class:`hecrypt.ring.Ring`, which dispatches to the CPU or CUDA kernels by array type.

Beaver product (one round).  The dealer hands party ``i`` uniform ``A_i, B_i`` and ``W_i``
with ``sum W_i = AB - sum_i A_i B_i`` (see :mod:`.provider`).  The parties open
``E = X - A`` and ``F = Y - B`` and party ``i`` computes::

    Z_i = (E + A_i)(F + B_i) + W_i                       (i > 0)
    Z_0 = E (B_0 - (n - 2) F) + A_0 (F + B_0) + W_0      (= (E + A_0)(F + B_0) - (n - 1) E F + W_0)

so ``sum Z_i = EF + EB + AF + AB = XY``.  For matrices this is ``n + 1`` ring matmuls per
product online (3 for two parties) instead of the textbook ``2n`` (each party's
``E B_i + A_i F``), plus ``n`` at the dealer.  Where the ring has units ``b_i`` with
``sum b_i = 1`` (odd ``n`` in Z_2^k; any ``n`` in Z_q, see
:func:`~hecrypt.smpc.provider.beaver_weights`) and no operand reuses a mask, the left mask
is weighted, ``A = sum b_i A_i``, and every party computes just
``Z_i = (E + A_i)(b_i F + B_i) + W_i``: ``n`` products online.  (For two parties in
Z_2^k no such units exist: ``b_0 + b_1`` of two odd numbers is even.)

Doubled product (two parties in Z_2^k, fixed-point products followed by local truncation;
:func:`doubled_products`).  With ``W = -2 (A_0 - A_1)(B_0 - B_1)`` shared by the dealer,
party ``i`` computes ``Z_i = (E + 2 A_i)(F + 2 B_i) + W_i``, one product each, and
``Z_0 + Z_1 = 2EF + 2EB + 2AF + 4(A_0 B_0 + A_1 B_1) + W = 2XY``: the product carries one
more fractional bit (scale ``2^(2f+1)``) and the truncation shifts by ``f + 1``.  The
openings and the dealer material have the same form and distribution as in the ordinary
product (``E``, ``F`` uniform; ``W_0`` uniform), so nothing more is revealed; the cost is
one bit of range (``|2z| < 2^(k-1)`` instead of ``|z|``), which doubles the local
truncation's failure probability below.  Integer products and dealer truncation keep the
ordinary form (they need ``XY`` itself, resp. the full ``M/4`` range).

Truncation of a product ``z`` (scale ``2^(2f)``) by ``g`` bits:

* ``local`` (SecureML, Mohassel & Zhang 2017, two parties in Z_2^k): party 0 computes
  ``floor(z_0 / 2^g)``, party 1 ``-floor(-z_1 / 2^g)`` on signed shares.  The result is
  within one unit of ``z / 2^g`` unless the signed shares wrap, which happens with
  probability ``|z| / 2^k`` per element for uniform shares (SecureML's bound: at most
  ``2^(l+1-k)`` when ``|z| < 2^l``); a wrong result is off by about ``2^(k-g)``.  After a
  doubled product the truncated value is ``2z``: probability ``|2z| / 2^k``.
* ``dealer`` (any number of parties, any ring; one extra round): with shares of a uniform
  ``r``, ``r_hi = floor(r/2^g)`` and ``t`` (see :mod:`.provider`), the parties open
  ``c = z + B + r`` (``B`` a public bias, a multiple of ``2^g`` near ``M/4``) and set
  ``result = floor(c/2^g) - r_hi + [c < h] t - B/2^g`` with ``h = ceil(M/2)``.  The term
  ``[c < h] t`` removes the wrap of ``z + B + r`` modulo ``M`` (``w`` = the wrap bit; with
  ``s = M - r``, ``z + B = c + s`` exactly when it wrapped, and ``t - r_hi = ceil(s/2^g)``),
  so the result is ``floor(z / 2^g)`` or ``floor(z / 2^g) + 1``, the latter with probability
  ``(z mod 2^g) / 2^g``: an unbiased stochastic rounding, within one unit, always, provided
  ``-B <= z < h - B`` (``|z| < M/4``).  ``c`` is ``z + B + r`` modulo ``M`` with ``r``
  uniform: it reveals nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import serialize as ser
from .provider import beaver_weights

if TYPE_CHECKING:  # pragma: no cover
    from .context import SMPCContext

__all__ = ["exchange", "open_values", "beaver_mul", "beaver_matmul", "beaver_square", "truncate",
           "truncate_local", "truncate_dealer", "dealer_trunc_bias", "doubled_products"]


# ------------------------------------------------------------------------------------------
# openings
# ------------------------------------------------------------------------------------------
def exchange(ctx: "SMPCContext", masked: Sequence[dict[str, Any]], tag: str = "open") -> list[list[dict[str, Any]]]:
    """Every compute party sends its arrays to every other one (one round).  Returns, for each
    party ``j``, the list of all parties' dicts as ``j`` holds them (its own at index ``j``,
    the others as received and deserialized)."""
    names = ctx.party_names
    comm = ctx.comm
    n = len(names)
    with comm.round():
        for i, src in enumerate(names):
            blob = ctx._pack(ser.KIND_MESSAGE, {"tag": tag, "from": src}, masked[i])
            for j, dst in enumerate(names):
                if j != i:
                    comm.send(src, dst, blob, tag)
    out = []
    dev = ctx.device
    for j, dst in enumerate(names):
        parts: list[dict[str, Any]] = [None] * n  # type: ignore[list-item]
        parts[j] = masked[j]
        for i, src in enumerate(names):
            if i != j:
                _, arrs = ser.unpack(comm.recv(dst, src, tag), ser.KIND_MESSAGE, device=dev)
                if set(arrs) != set(masked[j]):
                    raise ser.SerializationError(f"party {src!r} sent fields {sorted(arrs)} for {tag!r}")
                parts[i] = arrs
        out.append(parts)
    return out


def _sum_others(R: Any, parts: Sequence[dict[str, Any]], j: int, k: str) -> Any:
    acc = None
    for i, d in enumerate(parts):
        if i != j:
            acc = d[k] if acc is None else R.add(acc, d[k])
    return acc


def open_values(ctx: "SMPCContext", masked: Sequence[dict[str, Any]], tag: str = "open") -> list[dict[str, Any]]:
    """Open: one :func:`exchange` round, then each party sums all parties' arrays itself.
    Returns each party's opened dict."""
    R = ctx.ring
    out = []
    for j, parts in enumerate(exchange(ctx, masked, tag)):
        out.append({k: R.add(masked[j][k], _sum_others(R, parts, j, k)) for k in masked[j]})
    return out


def _material(ctx: "SMPCContext", key: tuple, kind: str) -> list[dict[str, Any]]:
    mid = ctx.dealer.acquire(key)
    return [p.take_material(mid, kind) for p in ctx.compute_parties]


# ------------------------------------------------------------------------------------------
# Beaver products
# ------------------------------------------------------------------------------------------
def _mask_arrays(ctx: "SMPCContext", ref: Any) -> list[Any]:
    mid, transposed = ref
    out = []
    for p in ctx.compute_parties:
        a = p.mask(mid)["a"]
        out.append(a.swapaxes(-1, -2) if transposed else a)
    return out


def _mask_open(ctx: "SMPCContext", ref: Any, xs: Sequence[Any]) -> list[Any] | None:
    """Cached opening of a reusable mask (None if not opened yet)."""
    mid, transposed = ref
    outs = []
    for p in ctx.compute_parties:
        m = p.mask(mid)
        m["uses"] += 1
        e = m["open"]
        outs.append(None if e is None else (e.swapaxes(-1, -2) if transposed else e))
    if any(e is None for e in outs):
        return None
    return outs


def _store_mask_open(ctx: "SMPCContext", ref: Any, opened: Sequence[Any]) -> None:
    mid, transposed = ref
    for p, e in zip(ctx.compute_parties, opened):
        p.mask(mid)["open"] = e.swapaxes(-1, -2) if transposed else e


def _beaver_weighted(ctx: "SMPCContext", xs: Sequence[Any], ys: Sequence[Any], mats: list, kind: str,
                     weights: Sequence[int]) -> list[Any]:
    """One product per party: masks ``A = sum b_i A_i`` (``sum b_i = 1``), ``B = sum B_i``;
    party i sets ``Z_i = (E + A_i)(b_i F + B_i) + W_i``, and the sum is
    ``(sum b_i) EF + EB + AF + sum A_i B_i + W = XY``."""
    R = ctx.ring
    n = len(xs)
    A = [m["a"] for m in mats]
    B = [m["b"] for m in mats]
    bA = [A[i] if w == 1 else R.mul_public(A[i], int(w)) for i, w in enumerate(weights)]
    masked = [{"e": R.sub(xs[i], bA[i]), "f": R.sub(ys[i], B[i])} for i in range(n)]
    got = exchange(ctx, masked, tag=kind)
    op = R.matmul if kind == "matmul" else R.mul
    out = []
    for i, w in enumerate(weights):
        E = R.add(masked[i]["e"], _sum_others(R, got[i], i, "e"))
        F = R.add(masked[i]["f"], _sum_others(R, got[i], i, "f"))
        left = R.add(E, A[i])
        right = R.add(F if w == 1 else R.mul_public(F, int(w)), B[i])
        out.append(R.add(op(left, right), mats[i]["w"]))
    return out


def doubled_products(ctx: "SMPCContext") -> bool:
    """Whether fixed-point Beaver products of ``ctx`` use the doubled two-party form (shares of
    ``2XY``, one ring product per party): two compute parties, a Z_2^k ring, local truncation,
    unless the context asks for ``beaver="ordinary"``."""
    return (ctx.n_parties == 2 and ctx.ring.is_pow2 and ctx.truncation == "local"
            and getattr(ctx, "beaver", "auto") == "auto")


def _beaver_doubled(ctx: "SMPCContext", xs: Sequence[Any], ys: Sequence[Any], mats: list, kind: str,
                    amask: Any, bmask: Any) -> list[Any]:
    """Two parties in Z_2^k: ``Z_i = (E + 2 A_i)(F + 2 B_i) + W_i`` with
    ``W_0 + W_1 = -2 (A_0 - A_1)(B_0 - B_1)``, so ``Z_0 + Z_1 = 2XY`` (module docstring)."""
    R = ctx.ring
    A = _mask_arrays(ctx, amask) if amask is not None else [m["a"] for m in mats]
    B = _mask_arrays(ctx, bmask) if bmask is not None else [m["b"] for m in mats]
    Ecached = _mask_open(ctx, amask, xs) if amask is not None else None
    Fcached = _mask_open(ctx, bmask, ys) if bmask is not None else None
    masked = []
    for i in range(2):
        d = {}
        if Ecached is None:
            d["e"] = R.sub(xs[i], A[i])
        if Fcached is None:
            d["f"] = R.sub(ys[i], B[i])
        masked.append(d)
    got = exchange(ctx, masked, tag=kind) if (Ecached is None or Fcached is None) else None
    op = R.matmul if kind == "matmul" else R.mul
    xp = ctx.xp

    def iadd(a: Any, b: Any, out: Any) -> Any:
        # Z_2^k addition is the array module's wrapping unsigned addition: into ``a`` (a fresh
        # array this party owns) in place, except for 0-d results (numpy scalars)
        return xp.add(a, b, out=out) if getattr(a, "ndim", 0) else R.add(a, b)

    def into(buf: Any, a: Any, b: Any) -> Any:
        # a + b written over ``buf``: the party's own masked share, already serialized and
        # sent, so its memory is free (no fresh allocation for the operand)
        ok = (buf is not None and getattr(buf, "ndim", 0) and buf.shape == a.shape
              and getattr(buf.flags, "writeable", True))
        return xp.add(a, b, out=buf) if ok else R.add(a, b)

    out, Es, Fs = [], [], []
    for i in range(2):
        o = got[i][1 - i] if got is not None else None
        # E + 2 A_i = (X_i - A_i) + O_E + 2 A_i = X_i + A_i + O_E (O_E: the other party's share of E)
        if Ecached is not None:
            left = R.add(A[i], A[i])
            left = iadd(left, Ecached[i], out=left)
        else:
            if amask is not None:
                Es.append(R.add(masked[i]["e"], o["e"]))
            left = into(masked[i].pop("e"), xs[i], A[i])
            left = iadd(left, o["e"], out=left)
        if Fcached is not None:
            right = R.add(B[i], B[i])
            right = iadd(right, Fcached[i], out=right)
        else:
            if bmask is not None:
                Fs.append(R.add(masked[i]["f"], o["f"]))
            right = into(masked[i].pop("f"), ys[i], B[i])
            right = iadd(right, o["f"], out=right)
        z = op(left, right)
        del left, right
        out.append(iadd(z, mats[i]["w"], out=z))
    if amask is not None and Ecached is None:
        _store_mask_open(ctx, amask, Es)
    if bmask is not None and Fcached is None:
        _store_mask_open(ctx, bmask, Fs)
    return out


def _beaver(ctx: "SMPCContext", xs: Sequence[Any], ys: Sequence[Any], key: tuple, kind: str,
            amask: Any, bmask: Any) -> list[Any]:
    R = ctx.ring
    n = len(xs)
    mats = _material(ctx, key, kind)
    if key[-1] == 2:
        return _beaver_doubled(ctx, xs, ys, mats, kind, amask, bmask)
    if amask is None and bmask is None:
        weights = beaver_weights(R, n)
        if weights is not None:
            return _beaver_weighted(ctx, xs, ys, mats, kind, weights)
    A = _mask_arrays(ctx, amask) if amask is not None else [m["a"] for m in mats]
    B = _mask_arrays(ctx, bmask) if bmask is not None else [m["b"] for m in mats]
    Ecached = _mask_open(ctx, amask, xs) if amask is not None else None
    Fcached = _mask_open(ctx, bmask, ys) if bmask is not None else None
    masked = []
    for i in range(n):
        d = {}
        if Ecached is None:
            d["e"] = R.sub(xs[i], A[i])
        if Fcached is None:
            d["f"] = R.sub(ys[i], B[i])
        masked.append(d)
    got = exchange(ctx, masked, tag=kind) if (Ecached is None or Fcached is None) else None
    # Party i needs E + A_i and F + B_i; from the others' masked shares O these are
    # X_i + O_E and Y_i + O_F (E_i + A_i = X_i), one addition each.  Party 0 also needs E
    # (and F when n > 2); parties keep E / F of a reusable mask for later products.
    EA, FB, Es, Fs = [], [], [], []
    for i in range(n):
        if Ecached is not None:
            E = Ecached[i]
            EA.append(R.add(E, A[i]) if i else None)
        else:
            o = _sum_others(R, got[i], i, "e")
            EA.append(R.add(xs[i], o) if i else None)  # party 0 uses E and A_0 separately
            E = R.add(masked[i]["e"], o) if (i == 0 or amask is not None) else None
        if Fcached is not None:
            F = Fcached[i]
            FB.append(R.add(F, B[i]))
        else:
            o = _sum_others(R, got[i], i, "f")
            FB.append(R.add(ys[i], o))
            F = R.add(masked[i]["f"], o) if ((i == 0 and n > 2) or bmask is not None) else None
        Es.append(E)
        Fs.append(F)
    if amask is not None and Ecached is None:
        _store_mask_open(ctx, amask, Es)
    if bmask is not None and Fcached is None:
        _store_mask_open(ctx, bmask, Fs)
    out = []
    for i in range(n):
        W = mats[i]["w"]
        if i == 0:
            # Z_0 = E (B_0 - (n-2) F) + A_0 (F + B_0) + W_0
            B0 = B[0] if n == 2 else R.sub(B[0], R.mul_public(Fs[0], n - 2))
            if kind == "matmul":
                xp = ctx.xp  # one ring matmul with inner dimension 2K: [E | A_0] @ [B0; F + B_0]
                z = R.matmul(xp.concatenate([Es[0], A[0]], axis=-1), xp.concatenate([B0, FB[0]], axis=-2))
            else:
                z = R.add(R.mul(Es[0], B0), R.mul(A[0], FB[0]))
        else:
            # Z_i = (E + A_i)(F + B_i) + W_i
            z = (R.matmul if kind == "matmul" else R.mul)(EA[i], FB[i])
        out.append(R.add(z, W))
    return out


def _scale(ctx: "SMPCContext", doubled: bool) -> int:
    if not doubled:
        return 1
    if len(ctx.party_names) != 2 or not ctx.ring.is_pow2:
        raise ValueError("doubled Beaver products need exactly two compute parties and a Z_2^k ring")
    return 2


def beaver_mul(ctx: "SMPCContext", xs: Sequence[Any], ys: Sequence[Any], amask: Any = None,
               bmask: Any = None, doubled: bool = False) -> list[Any]:
    """Shares of ``x * y`` (same shapes; no truncation); of ``2 x y`` with ``doubled=True``
    (two parties in Z_2^k, see :func:`doubled_products`)."""
    shape = tuple(xs[0].shape)
    key = ("mul", shape, amask, bmask, _scale(ctx, doubled))
    return _beaver(ctx, xs, ys, key, "mul", amask, bmask)


def beaver_matmul(ctx: "SMPCContext", xs: Sequence[Any], ys: Sequence[Any], amask: Any = None,
                  bmask: Any = None, doubled: bool = False) -> list[Any]:
    """Shares of ``x @ y`` (2-D or batched; no truncation); of ``2 x @ y`` with ``doubled=True``."""
    key = ("matmul", tuple(xs[0].shape), tuple(ys[0].shape), amask, bmask, _scale(ctx, doubled))
    return _beaver(ctx, xs, ys, key, "matmul", amask, bmask)


def beaver_square(ctx: "SMPCContext", xs: Sequence[Any], amask: Any = None) -> list[Any]:
    """Shares of ``x * x`` with one opening."""
    R = ctx.ring
    n = len(xs)
    mats = _material(ctx, ("square", tuple(xs[0].shape), amask), "square")
    A = _mask_arrays(ctx, amask) if amask is not None else [m["a"] for m in mats]
    Es = _mask_open(ctx, amask, xs) if amask is not None else None
    if Es is None:
        opened = open_values(ctx, [{"e": R.sub(xs[i], A[i])} for i in range(n)], tag="square")
        Es = [o["e"] for o in opened]
        if amask is not None:
            _store_mask_open(ctx, amask, Es)
    out = []
    for i in range(n):
        E = Es[i]
        s = R.add(E, A[i])
        z = R.mul(s, s)
        if i == 0:
            z = R.sub(z, R.mul_public(R.mul(E, E), n - 1))
        out.append(R.add(z, mats[i]["w"]))
    return out


# ------------------------------------------------------------------------------------------
# truncation
# ------------------------------------------------------------------------------------------
def _owned(zs: Sequence[Any]) -> bool:
    return all(getattr(z, "ndim", 0) and getattr(z.flags, "writeable", True) for z in zs)


def truncate_local(ctx: "SMPCContext", zs: Sequence[Any], g: int, inplace: bool = False) -> list[Any]:
    """SecureML two-party local truncation by ``g`` bits (Z_2^k only; no communication).

    ``inplace=True`` (for fresh product arrays the caller owns) overwrites ``zs``: the same
    arithmetic shifts as :meth:`Ring.truncate`, without new arrays."""
    R = ctx.ring
    if len(zs) != 2 or not R.is_pow2:
        raise ValueError("local truncation needs exactly two compute parties and a Z_2^k ring")
    if inplace and _owned(zs):
        xp = ctx.xp
        sdt = np.dtype(R.dtype.str.replace("u", "i"))
        s0 = zs[0].view(sdt)
        xp.right_shift(s0, sdt.type(g), out=s0)                 # floor(z_0 / 2^g)
        z1 = zs[1]
        xp.negative(z1, out=z1)
        s1 = z1.view(sdt)
        xp.right_shift(s1, sdt.type(g), out=s1)
        xp.negative(z1, out=z1)                                  # -floor(-z_1 / 2^g)
        return [zs[0], z1]
    return [R.truncate(zs[0], g), R.neg(R.truncate(R.neg(zs[1]), g))]


def dealer_trunc_bias(ring: Any, g: int) -> int:
    """Public bias ``B`` of dealer truncation: a multiple of ``2^g`` close to ``M/4``."""
    h = (ring.modulus + 1) // 2
    return ((h // 2) >> g) << g


def truncate_dealer(ctx: "SMPCContext", zs: Sequence[Any], g: int) -> list[Any]:
    """Dealer-assisted truncation by ``g`` bits for any number of parties and any ring (one round).

    Assumes the secret satisfies ``-B <= z < ceil(M/2) - B`` (``B`` from :func:`dealer_trunc_bias`,
    about ``M/4``); the result is ``floor(z / 2^g)`` up to one unit."""
    R = ctx.ring
    n = len(zs)
    mats = _material(ctx, ("trunc", tuple(zs[0].shape), int(g)), "trunc")
    bias = dealer_trunc_bias(R, g)
    bias_r = R.from_int(bias, device=ctx.device)
    masked = []
    for i in range(n):
        y = R.add(zs[i], mats[i]["r"])
        if i == 0:
            y = R.add(y, bias_r)
        masked.append({"c": y})
    opened = open_values(ctx, masked, tag="trunc")
    h = (R.modulus + 1) // 2
    dt = R.dtype.type
    out = []
    for i in range(n):
        c = opened[i]["c"]
        xp = ctx.xp
        low = (c < dt(h)).astype(R.dtype)
        res = R.sub(R.mul(low, mats[i]["t"]), mats[i]["rhi"])
        if i == 0:
            chi = c >> dt(g)
            res = R.add(res, R.sub(chi, R.from_int(bias >> g, device=ctx.device)))
        out.append(res)
        del xp
    return out


def truncate(ctx: "SMPCContext", zs: Sequence[Any], g: int, inplace: bool = False) -> list[Any]:
    """Truncate shares by ``g`` bits with the context's method (``local`` or ``dealer``);
    ``inplace`` lets local truncation overwrite ``zs`` (fresh arrays the caller owns)."""
    if g == 0:
        return list(zs)
    if ctx.truncation == "local":
        return truncate_local(ctx, zs, g, inplace)
    return truncate_dealer(ctx, zs, g)
