"""CKKS ciphertexts: :class:`Ciphertext` (one) and :class:`CiphertextBatch` (many, one array).

Both hold a uint64 array in NTT form (``(2, l+1, N)`` for one ciphertext, ``(B, 2, l+1, N)``
for a batch) on the context's device, its level ``l`` and its scale, and support the same
operations:

* ``a + b``, ``a - b``, ``-a`` with ciphertexts, numpy vectors (encoded at the ciphertext's
  scale) and real scalars;
* ``a * b`` with ciphertexts (relinearized and rescaled), vectors and non-integer scalars
  (rescaled to the next level's canonical scale), integer scalars (exact, no level used);
* :meth:`rotate`, :meth:`conjugate`, :meth:`sum_slots`, :meth:`dot`, :meth:`rescale`,
  :meth:`mod_switch_to`, :meth:`square`;
* :meth:`to_bytes` (see :mod:`hecrypt.he.serialize`).

Operands must come from the same keys (same context, its public copy, or a context
deserialized from it): otherwise :class:`~hecrypt.errors.ContextMismatchError`.  Levels are
aligned down automatically (dropping primes: exact).  Scales of added ciphertexts must agree
to a relative ``2^-30``.  Results of the library's operations carry the canonical scale of
their level (see :mod:`hecrypt.he.evaluator`), so ``x*y + 0.5*x`` just works; when scales
differ and the levels differ (``x*y + z`` with ``z`` fresh at the top level), the
higher-level operand is multiplied by ``round(target * q / scale)`` and rescaled instead of
having its prime dropped, which matches the scales to ``~2^-40``; at equal levels a mismatch
(a user-chosen scale) is a ``ValueError`` that says how to fix it.  A result whose scale
reaches the level's modulus (``log2(scale) >= log2(q_0 ... q_l)``) is refused with a
``ValueError`` instead of wrapping silently.  Nothing decrypts implicitly: ``np.asarray(ct)``, ``bool(ct)`` and pickling
raise ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import ContextMismatchError
from .evaluator import SCALE_RTOL, Evaluator

__all__ = ["Ciphertext", "CiphertextBatch"]


def _is_int_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


class _CipherBase:
    """Shared implementation; ``_data`` is ``(*batch, 2, l+1, N)``."""

    __slots__ = ("_ev", "_data", "_level", "_scale", "_seed")
    _batch_ndim = 0
    __array_ufunc__ = None  # numpy defers to our reflected operators

    def __init__(self, ev: Evaluator, data: Any, level: int, scale: float, seed: bytes | None = None):
        self._ev = ev
        self._data = data
        self._level = int(level)
        self._scale = float(scale)
        self._seed = seed

    # -- description -------------------------------------------------------------------
    @property
    def level(self) -> int:
        """Number of rescales still possible (the ciphertext modulus is ``q_0 ... q_level``)."""
        return self._level

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def params(self):
        return self._ev.params

    @property
    def slots(self) -> int:
        return self._ev.N // 2

    @property
    def device(self) -> str:
        return self._ev.device

    @property
    def key_fingerprint(self) -> str:
        return self._ev.keys.fingerprint_hex

    @property
    def data(self) -> Any:
        """The raw NTT-form RNS array (read it, do not modify it)."""
        return self._data

    @property
    def nbytes(self) -> int:
        """In-memory size of the residues (``to_bytes`` is smaller: bit-packed)."""
        return int(self._data.nbytes)

    def __repr__(self) -> str:
        shape = f"count={self._data.shape[0]}, " if self._batch_ndim else ""
        return (f"{type(self).__name__}({shape}level={self._level}, scale=2^{math.log2(self._scale):.2f}, "
                f"N={self._ev.N}, device={self.device}, key={self.key_fingerprint[:8]})")

    def __bool__(self):
        raise TypeError("a ciphertext has no truth value (decrypt it with the secret-key context)")

    def __array__(self, *args, **kwargs):
        raise TypeError("a ciphertext cannot be converted to an array; decrypt it with ctx.decrypt(...)")

    def __reduce__(self):
        raise TypeError("ciphertexts are not picklable: use ct.to_bytes() and ctx.ciphertext_from_bytes()")

    def __len__(self):
        raise TypeError(f"{type(self).__name__} has no len(); use .slots")

    # -- plumbing ----------------------------------------------------------------------
    def _new(self, data: Any, level: int, scale: float):
        self._ev.check_scale_fits(scale, level)  # results never silently wrap modulo Q
        return type(self)(self._ev, data, level, scale)

    def copy(self):
        return type(self)(self._ev, self._data.copy(), self._level, self._scale, self._seed)

    def _check_peer(self, other: "_CipherBase") -> None:
        a, b = self._ev, other._ev
        if a is b or a.keys is b.keys:
            return
        if a.keys.fingerprint != b.keys.fingerprint:
            raise ContextMismatchError(
                f"ciphertexts under different keys (key {a.keys.fingerprint_hex[:8]} vs "
                f"{b.keys.fingerprint_hex[:8]}) cannot be combined")
        if a.device != b.device:
            raise ContextMismatchError(f"ciphertexts on different devices ({a.device} vs {b.device})")

    def _aligned(self, other: "_CipherBase", check_scale: bool = True):
        self._check_peer(other)
        if isinstance(other, CiphertextBatch) and not isinstance(self, CiphertextBatch):
            raise TypeError("combine a CiphertextBatch with a Ciphertext as batch OP ciphertext")
        lvl = min(self._level, other._level)
        if check_scale and not math.isclose(self._scale, other._scale, rel_tol=SCALE_RTOL):
            if self._level == other._level:
                raise ValueError(
                    f"scale mismatch at the same level: 2^{math.log2(self._scale):.6f} vs "
                    f"2^{math.log2(other._scale):.6f}; encrypt or encode the other operand with "
                    f"scale=<this>.scale, or bring them to different levels first")
            hi, lo = (self, other) if self._level > other._level else (other, self)
            adjusted = hi._adjust_scale(lo._scale, lo._level)
            a, b = (adjusted, other._data) if hi is self else (self._data, adjusted)
            scale = lo._scale
        else:
            a = self._ev.mod_switch(self._data, self._level, lvl)
            b = self._ev.mod_switch(other._data, other._level, lvl)
            scale = self._scale
        if isinstance(other, Ciphertext) and isinstance(self, CiphertextBatch):
            b = b[None]
        return a, b, lvl, scale

    def _adjust_scale(self, scale: float, level: int) -> Any:
        """Data of this ciphertext at the lower ``level`` with (almost exactly) ``scale``.

        Drops primes down to ``level + 1``, multiplies by the integer
        ``c = round(scale * q_(level+1) / self.scale)`` and rescales: the new scale
        ``self.scale * c / q_(level+1)`` is within a relative ``2^-(log2 c + 1)`` of ``scale``
        (``~2^-40`` for 40-bit primes).  Used to add ciphertexts whose scales drifted apart
        through rescaling (e.g. ``x*y + z``); costs one rescale of this operand.
        """
        ev = self._ev
        top = level + 1
        data = ev.mod_switch(self._data, self._level, top)
        q = ev.params.primes[top]
        c = int(round(scale * q / self._scale))
        if c < 1:
            raise ValueError(f"cannot adjust scale 2^{math.log2(self._scale):.2f} down to "
                             f"2^{math.log2(scale):.2f}")
        return ev.rescale(ev.mul_int(data, c, top), top)

    def _plain(self, values: Any, level: int, scale: float):
        ev = self._ev
        v = ev.xp.asarray(values) if not isinstance(values, np.ndarray) else values
        if v.ndim > 1 + self._batch_ndim:
            raise ValueError(f"plaintext operand has too many dimensions: shape {v.shape}")
        if self._batch_ndim and v.ndim == 2 and v.shape[0] != self._data.shape[0]:
            raise ValueError(f"plaintext rows ({v.shape[0]}) do not match the batch ({self._data.shape[0]})")
        return ev.encode(v, level, scale)

    # -- operators ---------------------------------------------------------------------
    def _addsub(self, other: Any, subtract: bool, reflected: bool = False):
        ev = self._ev
        if isinstance(other, _CipherBase):
            a, b, lvl, scale = self._aligned(other)
            return self._new(ev.sub(a, b, lvl) if subtract else ev.add(a, b, lvl), lvl, scale)
        if _is_real_scalar(other):
            v = float(other) * self._scale
            if not math.isfinite(v):
                raise ValueError("scalar is not finite")
            data = self._data
            if reflected and subtract:  # c - ct
                data = ev.neg(data, self._level)
                subtract = False
            out = ev.add_const(data, int(round(v)), self._level, subtract=subtract)
            return self._new(out, self._level, self._scale)
        if isinstance(other, (np.ndarray, list, tuple)) or hasattr(other, "__array_interface__") \
                or type(other).__module__.split(".")[0] == "cupy":
            pt = self._plain(other, self._level, self._scale)
            data = self._data
            if reflected and subtract:
                data = ev.neg(data, self._level)
                subtract = False
            return self._new(ev.add_to_c0(data, pt, self._level, subtract), self._level, self._scale)
        return NotImplemented

    def __add__(self, other):
        return self._addsub(other, False)

    def __radd__(self, other):
        return self._addsub(other, False, reflected=True)

    def __sub__(self, other):
        return self._addsub(other, True)

    def __rsub__(self, other):
        return self._addsub(other, True, reflected=True)

    def __neg__(self):
        return self._new(self._ev.neg(self._data, self._level), self._level, self._scale)

    def __mul__(self, other):
        ev = self._ev
        if isinstance(other, _CipherBase):
            a, b, lvl, _ = self._aligned(other, check_scale=False)
            if lvl == 0:
                raise ValueError("cannot multiply level-0 ciphertexts: no prime left to rescale")
            scale = self._scale * other._scale
            return self._new(ev.mul_ct(a, b, lvl), lvl - 1, scale / ev.params.primes[lvl])
        if _is_int_scalar(other):
            return self._new(ev.mul_int(self._data, int(other), self._level), self._level, self._scale)
        if _is_real_scalar(other):
            if not math.isfinite(float(other)):
                raise ValueError("scalar is not finite")
            lvl = self._level
            if lvl == 0:
                raise ValueError("cannot multiply a level-0 ciphertext by a non-integer: no prime left to rescale")
            t = ev.plain_scale(self._scale, lvl)
            c = int(round(float(other) * t))
            return self._new(ev.rescale(ev.mul_int(self._data, c, lvl), lvl), lvl - 1, ev.level_scale(lvl - 1))
        if isinstance(other, (np.ndarray, list, tuple)) or type(other).__module__.split(".")[0] == "cupy":
            lvl = self._level
            if lvl == 0:
                raise ValueError("cannot multiply a level-0 ciphertext by a vector: no prime left to rescale")
            pt = self._plain(other, lvl, ev.plain_scale(self._scale, lvl))
            return self._new(ev.rescale(ev.mul_plain(self._data, pt, lvl), lvl), lvl - 1, ev.level_scale(lvl - 1))
        return NotImplemented

    def __rmul__(self, other):
        return self.__mul__(other)

    def square(self):
        """``self * self`` (relinearized and rescaled), one tensor product cheaper."""
        ev = self._ev
        if self._level == 0:
            raise ValueError("cannot square a level-0 ciphertext: no prime left to rescale")
        return self._new(ev.mul_ct(self._data, None, self._level), self._level - 1,
                         self._scale * self._scale / ev.params.primes[self._level])

    def multiply(self, other: "_CipherBase", *, rescale: bool = True):
        """Relinearized product; with ``rescale=False`` keeps the level and scale ``s1*s2``."""
        if rescale:
            return self * other
        a, b, lvl, _ = self._aligned(other, check_scale=False)
        return self._new(self._ev.mul_ct(a, b, lvl, rescale=False), lvl, self._scale * other._scale)

    def rescale(self):
        """Divide by the last prime ``q_l`` (rounded): level ``l-1``, scale ``scale / q_l``."""
        ev = self._ev
        return self._new(ev.rescale(self._data, self._level), self._level - 1,
                         self._scale / ev.params.primes[self._level])

    def mod_switch_to(self, level: int):
        """The same ciphertext at a lower ``level`` (primes dropped; exact; scale unchanged)."""
        level = self._ev.check_level(level)
        return self._new(self._ev.mod_switch(self._data, self._level, level), level, self._scale)

    def rotate(self, step: int):
        """Slots rotated left by ``step`` (right if negative), with this context's Galois keys."""
        if not _is_int_scalar(step):
            raise TypeError(f"rotation step must be an int, got {type(step).__name__}")
        return self._new(self._ev.rotate(self._data, self._level, int(step)), self._level, self._scale)

    def conjugate(self):
        """Complex conjugate of every slot (needs the conjugation Galois key)."""
        return self._new(self._ev.conjugate(self._data, self._level), self._level, self._scale)

    def sum_slots(self):
        """Every slot holds the sum of all slots (``log2(N/2)`` rotations; needs power-of-two keys)."""
        return self._new(self._ev.sum_slots(self._data, self._level), self._level, self._scale)

    def dot(self, other: Any):
        """Inner product with a ciphertext or vector, in every slot (one level used)."""
        return (self * other).sum_slots()

    def to_bytes(self) -> bytes:
        from .serialize import dump_ciphertext

        return dump_ciphertext(self)


class Ciphertext(_CipherBase):
    """One CKKS ciphertext: ``N/2`` encrypted slots."""

    __slots__ = ()
    _batch_ndim = 0


class CiphertextBatch(_CipherBase):
    """``B`` ciphertexts stored as one ``(B, 2, l+1, N)`` array (rows = ciphertexts).

    Binary operations work row-wise with another batch of the same length, or broadcast a
    single :class:`Ciphertext`, a 1-D vector (every row) or a 2-D ``(B, m)`` array (row ``i``
    with row ``i``).  :meth:`sum` adds the rows into one :class:`Ciphertext`.
    """

    __slots__ = ()
    _batch_ndim = 1

    def __len__(self) -> int:
        return int(self._data.shape[0])

    @property
    def count(self) -> int:
        return int(self._data.shape[0])

    def __getitem__(self, i):
        if _is_int_scalar(i):
            n = len(self)
            i = int(i)
            if not -n <= i < n:
                raise IndexError(f"batch index {i} out of range for {n} ciphertexts")
            return Ciphertext(self._ev, self._ev.xp.ascontiguousarray(self._data[i]), self._level, self._scale)
        if isinstance(i, slice):
            return CiphertextBatch(self._ev, self._ev.xp.ascontiguousarray(self._data[i]), self._level, self._scale)
        raise TypeError("batch indices must be integers or slices")

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _aligned(self, other, check_scale: bool = True):
        if isinstance(other, CiphertextBatch) and len(other) != len(self):
            raise ValueError(f"batch lengths differ: {len(self)} vs {len(other)}")
        return super()._aligned(other, check_scale)

    def sum(self) -> Ciphertext:
        """Sum of all rows (a tree of modular additions), as one :class:`Ciphertext`."""
        ev = self._ev
        if len(self) == 0:
            raise ValueError("cannot sum an empty batch")
        x = self._data
        B = ev.basis(self._level)
        while x.shape[0] > 1:
            h = x.shape[0] // 2
            s = ev.ring.add(x[:h], x[h:2 * h], B)
            x = s if x.shape[0] % 2 == 0 else ev.xp.concatenate([s, x[2 * h:]], axis=0)
        return Ciphertext(ev, ev.xp.ascontiguousarray(x[0]), self._level, self._scale)

    @classmethod
    def stack(cls, cts) -> "CiphertextBatch":
        """A batch from ciphertexts of one context, level and scale."""
        cts = list(cts)
        if not cts:
            raise ValueError("need at least one ciphertext")
        first = cts[0]
        for c in cts[1:]:
            if not isinstance(c, Ciphertext):
                raise TypeError("stack takes Ciphertext objects")
            first._check_peer(c)
            if c.level != first.level or not math.isclose(c.scale, first.scale, rel_tol=SCALE_RTOL):
                raise ValueError("all ciphertexts must share level and scale (use mod_switch_to first)")
        xp = first._ev.xp
        return cls(first._ev, xp.stack([c._data for c in cts]), first.level, first.scale)

    def to_bytes(self) -> bytes:
        from .serialize import dump_batch

        return dump_batch(self)
