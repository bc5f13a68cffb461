"""The tutorial's numpy secret-sharing demo, with its exact semantics, on hecrypt's ring layer.

The tutorial splits an integer into three additive shares modulo ``Q = 501337``::

    encrypt(x)      -> (a, b, (x - a - b) % Q)    with a, b uniform in [0, Q)
    decrypt(*s)     -> sum(s) % Q
    add(x, y)       -> [(x_i + y_i) % Q]
    product(x, w)   -> [(x_i * w) % Q]             (w a plaintext integer)

Here the uniform shares come from the ChaCha20 CSPRNG (:class:`hecrypt.ring.Stream`) instead
of ``np.random.randint`` and the arithmetic from :class:`hecrypt.ring.Ring` (``Z_Q``).  The
semantics are the tutorial's: ``decrypt(*add(encrypt(2), encrypt(5))) == 7``, the three sum
shares look random, and the sum of only two of them is uniformly distributed on ``[0, Q)``
(it equals 7 with probability ``1/Q``).

:func:`run` does the whole demo and returns the values (used by ``hecrypt demo``);
:func:`run_with_context` does the same through :class:`~hecrypt.smpc.SMPCContext` with three
real parties, so the shares travel through the communicator.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import MissingShareError
from ..ring import Stream, Zq

__all__ = ["Q", "RING", "encrypt", "decrypt", "add", "product", "run", "run_with_context"]

Q = 501337
RING = Zq(Q)
N_SHARES = 3


def _stream(seed: Any, label: str) -> Stream:
    if seed is None:
        return Stream()
    return Stream.from_seed(seed, label=f"hecrypt.smpc.tutorial/{label}")


def encrypt(x: int, seed: Any = None, n_shares: int = N_SHARES) -> tuple[int, ...]:
    """Split the integer ``x`` into ``n_shares`` additive shares modulo ``Q`` (3 by default).

    The first ``n_shares - 1`` shares are uniform on ``[0, Q)`` (CSPRNG; ``seed`` makes them
    reproducible, for tests only), the last one is ``(x - sum(others)) % Q``."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"the tutorial shares integers, got {type(x).__name__}")
    if not isinstance(n_shares, int) or n_shares < 2:
        raise ValueError("need at least 2 shares")
    r = _stream(seed, f"encrypt/{int(x)}").uniform(RING, n_shares - 1)
    last = RING.sub(RING.from_int([int(x)]), RING.sum(r).reshape(1))
    return tuple(int(v) for v in r) + (int(last[0]),)


def decrypt(*shares: int) -> int:
    """``sum(shares) % Q`` (any number of shares: with fewer than all, a uniform value)."""
    if not shares:
        raise MissingShareError("decrypt needs at least one share")
    a = RING.from_int([int(s) for s in shares])
    return int(RING.sum(a))


def _check_pair(x: Sequence[int], y: Sequence[int]) -> None:
    if len(x) != len(y):
        raise ValueError("each variable must consist of the same number of shares")


def add(x: Sequence[int], y: Sequence[int]) -> list[int]:
    """Share-wise sum modulo ``Q``: shares of ``decrypt(x) + decrypt(y)``."""
    _check_pair(x, y)
    s = RING.add(RING.from_int([int(v) for v in x]), RING.from_int([int(v) for v in y]))
    return [int(v) for v in s]


def product(x: Sequence[int], w: int) -> list[int]:
    """Share-wise product with a plaintext integer ``w`` modulo ``Q``: shares of ``w * decrypt(x)``."""
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)):
        raise TypeError("the plaintext factor must be an integer")
    p = RING.mul_public(RING.from_int([int(v) for v in x]), int(w))
    return [int(v) for v in p]


def run(seed: Any = None, a: int = 2, b: int = 5, w: int = 3) -> dict[str, Any]:
    """The tutorial's run: encrypt ``a`` and ``b``, add, decrypt all and two shares, product by ``w``.

    Returns ``{"var1", "var2", "sum_shares", "sum", "partial", "product_shares", "product"}``
    (``sum == (a + b) % Q``; ``partial`` is the sum of the first two shares, uniform)."""
    var1 = encrypt(a, seed=None if seed is None else f"{seed!r}/var1")
    var2 = encrypt(b, seed=None if seed is None else f"{seed!r}/var2")
    s = add(var1, var2)
    p = product(s, w)
    return {"var1": list(var1), "var2": list(var2), "sum_shares": s, "sum": decrypt(*s),
            "partial": decrypt(*s[0:2]), "product_shares": p, "product": decrypt(*p), "Q": Q}


def run_with_context(seed: Any = None, a: int = 2, b: int = 5, w: int = 3,
                     parties: Sequence[str] = ("alice", "bob", "carol")) -> dict[str, Any]:
    """The same demo with three real parties over ``Z_Q`` (shares sent through the communicator)."""
    from .context import SMPCContext

    ctx = SMPCContext(parties=tuple(parties), ring=Q, frac_bits=0,
                      seed=None if seed is None else repr(seed))
    x = ctx.share_int(np.array([a]), owner=parties[0])
    y = ctx.share_int(np.array([b]), owner=parties[1])
    s = x + y
    shares = [int(s.share_of(p)[0]) for p in parties]
    p = s * int(w)
    return {"sum_shares": shares, "sum": int(s.reveal()[0]) % Q,
            "partial": decrypt(*shares[0:2]), "product": int(p.reveal()[0]) % Q,
            "stats": ctx.stats.snapshot()}
