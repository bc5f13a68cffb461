"""Rings of share arrays: Z_2^64 (default), Z_2^32 and Z_q for an odd q < 2^62.

A :class:`Ring` is a small immutable description; its methods operate on plain numpy or
CuPy arrays and dispatch to the backend that owns the arrays (numpy -> CPU kernels, CuPy
-> CUDA kernels).  Elements of Z_2^64 and Z_q are ``uint64`` arrays, elements of Z_2^32
``uint32`` arrays, always reduced (in ``[0, modulus)``).

Example::

    >>> import numpy as np
    >>> from hecrypt.ring import Z2_64, Zq
    >>> r = Zq(501337)
    >>> a = r.from_int([2, 500000]); b = r.from_int([5, 2000])
    >>> r.add(a, b).tolist()
    [7, 663]
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence

import numpy as np

from ..backend import backend_of, get_backend, is_device_array
from ..backend.modarith import check_modulus
from ..errors import MissingShareError, RingMismatchError

__all__ = ["Ring", "Z2_64", "Z2_32", "Zq", "ring_from_name"]


class Ring:
    """An integer ring whose elements are stored in unsigned numpy/CuPy arrays.

    Use the module constants :data:`Z2_64`, :data:`Z2_32` or :func:`Zq`.
    """

    __slots__ = ("_modulus", "_q", "_bits", "_dtype", "_name")

    def __init__(self, modulus: int):
        if isinstance(modulus, bool) or not isinstance(modulus, numbers.Integral):
            raise TypeError(f"ring modulus must be an integer, got {type(modulus).__name__}")
        modulus = int(modulus)
        if modulus in (1 << 64, 1 << 32):
            self._q = 0
            self._bits = modulus.bit_length() - 1
            self._dtype = np.dtype(np.uint64 if self._bits == 64 else np.uint32)
            self._name = f"Z_2^{self._bits}"
        else:
            self._q = check_modulus(modulus)
            self._bits = modulus.bit_length()
            self._dtype = np.dtype(np.uint64)
            self._name = f"Z_{modulus}"
        self._modulus = modulus

    # -- description ---------------------------------------------------------------------
    @property
    def modulus(self) -> int:
        """The ring size M (2**64, 2**32 or q)."""
        return self._modulus

    @property
    def q(self) -> int:
        """Kernel parameter: 0 for Z_2^k (wrapping arithmetic), else the odd modulus."""
        return self._q

    @property
    def is_pow2(self) -> bool:
        return self._q == 0

    @property
    def bits(self) -> int:
        """Storage bits for Z_2^k, ``q.bit_length()`` for Z_q."""
        return self._bits

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def name(self) -> str:
        return self._name

    @property
    def log2_modulus(self) -> float:
        import math

        return math.log2(self._modulus)

    @property
    def element_bytes(self) -> int:
        return self._dtype.itemsize

    def __repr__(self) -> str:
        return f"Ring({self._name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ring) and other._modulus == self._modulus

    def __hash__(self) -> int:
        return hash(("hecrypt.Ring", self._modulus))

    def __reduce__(self):
        return (Ring, (self._modulus,))

    # -- checks --------------------------------------------------------------------------
    def check(self, a: Any, what: str = "operand") -> Any:
        """Raise unless ``a`` is an array of this ring's dtype (numpy or CuPy)."""
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"{what} must be a numpy or CuPy array of {self._dtype}, got {type(a).__name__}")
        if a.dtype != self._dtype:
            raise RingMismatchError(f"{what} has dtype {a.dtype}, but {self._name} elements are {self._dtype}")
        return a

    def _pair(self, a: Any, b: Any) -> Any:
        self.check(a, "left operand")
        self.check(b, "right operand")
        if is_device_array(a) != is_device_array(b):
            raise ValueError("operands live on different devices (one numpy, one CuPy); move one first")
        return backend_of(a)

    # -- construction --------------------------------------------------------------------
    def from_int(self, x: Any, device: str | None = "cpu") -> Any:
        """Map integers (Python ints, numpy/CuPy integer arrays, negatives too) into the ring.

        Arbitrary-size Python integers are reduced exactly; floats are refused.
        """
        be = get_backend(device) if device is not None else get_backend("cpu")
        if is_device_array(x):
            be = backend_of(x)
            x = be.to_numpy(x)
        arr = np.asarray(x)
        if arr.dtype.kind == "O" or (arr.dtype.kind in "iu" and arr.dtype.itemsize > 8):
            flat = [int(v) % self._modulus for v in arr.reshape(-1)]
            out = np.array(flat, dtype=self._dtype).reshape(arr.shape)
        elif arr.dtype.kind == "b":
            out = arr.astype(self._dtype)
        elif arr.dtype.kind in "iu":
            if self._q == 0:
                out = arr.astype(np.int64 if arr.dtype.kind == "i" else np.uint64).astype(self._dtype)
            elif arr.dtype.kind == "u":
                out = (arr.astype(np.uint64) % np.uint64(self._q)).astype(np.uint64)
            else:
                out = np.mod(arr.astype(np.int64), np.int64(self._q)).astype(np.uint64)
        else:
            raise TypeError(
                f"from_int takes integers, got dtype {arr.dtype}; encode reals with hecrypt.ring.FixedPoint"
            )
        return be.asarray(out)

    def zeros(self, shape: Sequence[int] | int, device: str | None = "cpu") -> Any:
        be = get_backend(device)
        return be.xp.zeros(shape, dtype=self._dtype)

    def to_signed(self, a: Any) -> Any:
        """Signed representatives (int64; for Z_q in ``[-(q-1)/2, (q-1)/2]``)."""
        self.check(a)
        xp = backend_of(a).xp
        if self._q == 0:
            return a.view(xp.int64 if self._bits == 64 else xp.int32).astype(xp.int64)
        s = a.astype(xp.int64)
        return xp.where(a > xp.uint64((self._q - 1) // 2), s - xp.int64(self._q), s)

    # -- arithmetic ----------------------------------------------------------------------
    def add(self, a: Any, b: Any) -> Any:
        return self._pair(a, b).add(a, b, self._q)

    def sub(self, a: Any, b: Any) -> Any:
        return self._pair(a, b).sub(a, b, self._q)

    def neg(self, a: Any) -> Any:
        self.check(a)
        return backend_of(a).neg(a, self._q)

    def mul(self, a: Any, b: Any) -> Any:
        """Elementwise product (broadcasting)."""
        return self._pair(a, b).mul(a, b, self._q)

    def mul_public(self, a: Any, c: Any) -> Any:
        """Multiply ring elements by a public integer (or integer array), negatives allowed."""
        self.check(a)
        be = backend_of(a)
        if isinstance(c, numbers.Integral) and not isinstance(c, bool):
            cr = be.asarray(np.array(int(c) % self._modulus, dtype=self._dtype))
        else:
            cr = self.from_int(c, device=be.name)
        return be.mul(a, cr, self._q)

    def sum(self, a: Any, axis: int | None = None) -> Any:
        self.check(a)
        return backend_of(a).sum(a, axis, self._q)

    def sum_shares(self, shares: Iterable[Any]) -> Any:
        """n-way sum of same-shape share arrays (reconstruction)."""
        shares = list(shares)
        if not shares:
            raise MissingShareError("no shares to sum")
        for i, s in enumerate(shares):
            self.check(s, f"share {i}")
            if s.shape != shares[0].shape:
                raise ValueError(f"share {i} has shape {s.shape}, expected {shares[0].shape}")
        dev = {is_device_array(s) for s in shares}
        if len(dev) > 1:
            raise ValueError("shares live on different devices")
        return backend_of(shares[0]).nsum(shares, self._q)

    def matmul(self, a: Any, b: Any) -> Any:
        """Exact ring matmul with numpy's rules for 2-D and batched operands."""
        be = self._pair(a, b)
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs operands of at least 2 dimensions, got {a.ndim}-D and {b.ndim}-D")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul shape mismatch: {tuple(a.shape)} @ {tuple(b.shape)}")
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul batch shapes do not broadcast: {tuple(a.shape)} @ {tuple(b.shape)}") from None
        return be.matmul(a, b, self._q, 64 if self._q else self._bits)

    def truncate(self, a: Any, f: int) -> Any:
        """``floor(signed(a) / 2^f)`` mapped back into the ring (arithmetic shift)."""
        self.check(a)
        if not isinstance(f, numbers.Integral) or f < 0 or f >= self._bits:
            raise ValueError(f"truncation shift must be an integer in [0, {self._bits}), got {f!r}")
        if f == 0:
            return a.copy()
        return backend_of(a).truncate(a, int(f), self._q)


Z2_64 = Ring(1 << 64)
Z2_32 = Ring(1 << 32)


def Zq(q: int) -> Ring:
    """The ring of integers modulo an odd ``q`` with ``3 <= q < 2**62``."""
    return Ring(q)


def ring_from_name(name: str | int | Ring) -> Ring:
    """``"Z2_64"``, ``"Z_2^64"``, ``"Z2_32"``, ``"Z_2^32"``, ``"Z_501337"`` or an int modulus."""
    if isinstance(name, Ring):
        return name
    if isinstance(name, numbers.Integral):
        return Ring(int(name))
    if not isinstance(name, str):
        raise TypeError(f"ring must be a Ring, a modulus or a name, got {type(name).__name__}")
    n = name.replace(" ", "").replace("_", "").replace("^", "").upper()
    if n in ("Z264", "2^64", "264"):
        return Z2_64
    if n in ("Z232", "232"):
        return Z2_32
    if n.startswith("Z") and n[1:].isdigit():
        return Ring(int(n[1:]))
    raise ValueError(f"unknown ring {name!r}: use 'Z2_64', 'Z2_32' or 'Z_<odd q>'")
