"""Cryptographically secure randomness for shares, masks, triples and HE noise.

The generator is ChaCha20 (RFC 8439) used as a keyed stream:

* a 256-bit **key** (from ``os.urandom`` unless an explicit test seed is given),
* a 96-bit **stream id** (the RFC's nonce), so independent streams share one key,
* a 32-bit block **counter** (64-byte blocks), advanced by every draw.

``Stream(key, stream_id).uniform(ring, shape)`` consumes ``ceil(n * s / 64)`` blocks, where
``s`` is 8 bytes per element for Z_2^64, 4 for Z_2^32 and 16 for Z_q (a little-endian
128-bit sample reduced mod q: bias below ``q / 2^128 < 2^-66``, no rejection loop), and
every draw starts on a block boundary.  The CPU keystream comes from the ``cryptography``
package (OpenSSL); the GPU kernel ``kernels/chacha20.cu`` computes the same blocks, so the
same key, stream and counter give the same ring elements on both devices.

Seeded streams (``Stream.from_seed(...)``) derive the key with SHA-256 from the seed: they
are reproducible and **for tests only**; never use a seed for production secrets.  numpy's
and cuRAND's statistical generators are never used for secret material.
"""

from __future__ import annotations

import hashlib
import numbers
import os
from typing import Any, Sequence

import numpy as np

from ..backend import get_backend
from .rings import Ring

__all__ = ["Stream", "StreamFactory", "MAX_BLOCKS", "element_bytes"]

MAX_BLOCKS = 1 << 32  # RFC 8439's 32-bit block counter: 256 GiB per (key, stream id)
_KEY_BYTES = 32


def element_bytes(ring: Ring) -> int:
    """Keystream bytes consumed per element of ``ring``."""
    if ring.is_pow2:
        return ring.bits // 8
    return 16


def _shape(shape: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return shape


def _seed_key(seed: Any, label: bytes) -> bytes:
    if isinstance(seed, bytes):
        data = seed
    elif isinstance(seed, str):
        data = seed.encode()
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        data = int(seed).to_bytes(32, "little", signed=True)
    else:
        raise TypeError(f"seed must be bytes, str or int, got {type(seed).__name__}")
    return hashlib.sha256(b"hecrypt/seed/v1/" + label + b"/" + data).digest()


class Stream:
    """A ChaCha20 keystream ``(key, stream_id)`` with a block counter that only moves forward.

    The key is never printed.  ``device`` picks where samples are produced and returned.
    """

    __slots__ = ("_key", "_stream_id", "_counter", "_device", "seeded")

    def __init__(self, key: bytes | None = None, stream_id: int = 0, *, counter: int = 0,
                 device: str | None = "cpu", seeded: bool = False):
        if key is None:
            key = os.urandom(_KEY_BYTES)
        if not isinstance(key, (bytes, bytearray)) or len(key) != _KEY_BYTES:
            raise ValueError("ChaCha20 key must be 32 bytes")
        if not isinstance(stream_id, numbers.Integral) or not 0 <= int(stream_id) < 1 << 96:
            raise ValueError("stream id must be an integer in [0, 2^96)")
        if not isinstance(counter, numbers.Integral) or not 0 <= int(counter) <= MAX_BLOCKS:
            raise ValueError("counter must be an integer in [0, 2^32]")
        self._key = bytes(key)
        self._stream_id = int(stream_id)
        self._counter = int(counter)
        self._device = get_backend(device).name
        self.seeded = seeded

    @classmethod
    def from_seed(cls, seed: Any, stream_id: int = 0, *, label: str = "", device: str | None = "cpu") -> "Stream":
        """A reproducible stream derived from ``seed``. **For tests only, not for production.**"""
        return cls(_seed_key(seed, label.encode()), stream_id, device=device, seeded=True)

    # -- state -------------------------------------------------------------------------
    @property
    def stream_id(self) -> int:
        return self._stream_id

    @property
    def counter(self) -> int:
        """Index of the next unused 64-byte block."""
        return self._counter

    @property
    def device(self) -> str:
        return self._device

    @property
    def nonce(self) -> bytes:
        return self._stream_id.to_bytes(12, "little")

    def fork(self, stream_id: int) -> "Stream":
        """Another stream under the same key (independent output), on the same device."""
        return Stream(self._key, stream_id, device=self._device, seeded=self.seeded)

    def __repr__(self) -> str:
        kind = "seeded (tests only)" if self.seeded else "os.urandom key"
        return f"Stream(ChaCha20, {kind}, stream_id={self._stream_id}, counter={self._counter}, device={self._device})"

    def __reduce__(self):
        raise TypeError("hecrypt random streams hold secret keys and cannot be pickled")

    def _take(self, nbytes: int) -> tuple[int, int]:
        nblocks = -(-nbytes // 64)
        start = self._counter
        if start + nblocks > MAX_BLOCKS:
            raise OverflowError("ChaCha20 stream exhausted (2^32 blocks); fork a new stream id")
        self._counter = start + nblocks
        return start, nblocks

    # -- draws -------------------------------------------------------------------------
    def words(self, nwords: int) -> Any:
        """``nwords`` uniform uint32 words (on the stream's device)."""
        start, nblocks = self._take(4 * nwords)
        be = get_backend(self._device)
        w = be.chacha20_keystream(self._key, self.nonce, start, nblocks)
        return w[:nwords]

    def random_bytes(self, n: int) -> bytes:
        """``n`` uniform bytes (always on the host)."""
        start, nblocks = self._take(n)
        w = get_backend("cpu").chacha20_keystream(self._key, self.nonce, start, nblocks)
        return w.tobytes()[:n]

    def uniform(self, ring: Ring, shape: Sequence[int] | int) -> Any:
        """Uniform elements of ``ring`` with ``shape`` (on the stream's device)."""
        if not isinstance(ring, Ring):
            raise TypeError(f"ring must be a hecrypt Ring, got {type(ring).__name__}")
        shape = _shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        be = get_backend(self._device)
        if ring.is_pow2 and ring.bits == 32:
            return self.words(n).reshape(shape)
        if ring.is_pow2:
            w = self.words(2 * n)
            return w.view(be.xp.uint64).reshape(shape) if n else be.xp.zeros(shape, be.xp.uint64)
        w = self.words(4 * n)
        if n == 0:
            return be.xp.zeros(shape, be.xp.uint64)
        w64 = w.view(be.xp.uint64).reshape(n, 2)
        return be.reduce_u128(w64[:, 0], w64[:, 1], ring.q).reshape(shape)

    def integers(self, bound: int, shape: Sequence[int] | int) -> Any:
        """Integers uniform in ``[0, bound)`` for ``1 <= bound < 2^62`` (128-bit reduction)."""
        if not isinstance(bound, numbers.Integral) or not 1 <= int(bound) < 1 << 62:
            raise ValueError("bound must be an integer in [1, 2^62)")
        bound = int(bound)
        shape = _shape(shape)
        if bound == 1:
            return get_backend(self._device).xp.zeros(shape, np.uint64)
        if bound % 2 == 0:
            # power-of-two part by masking, odd part by reduction: still bias < 2^-64
            n = int(np.prod(shape, dtype=np.int64))
            be = get_backend(self._device)
            w = self.words(4 * n).view(be.xp.uint64).reshape(n, 2) if n else be.xp.zeros((0, 2), be.xp.uint64)
            lo, hi = w[:, 0], w[:, 1]
            tz = (bound & -bound).bit_length() - 1
            odd = bound >> tz
            low_bits = lo & be.xp.uint64((1 << tz) - 1)
            if odd == 1:
                return low_bits.reshape(shape)
            r = be.reduce_u128(lo >> be.xp.uint64(tz), hi, odd) if odd >= 3 else be.xp.zeros_like(lo)
            return ((r << be.xp.uint64(tz)) | low_bits).reshape(shape)
        if bound < 3:  # pragma: no cover - bound == 1 handled above
            raise ValueError("bound must be >= 1")
        return self.uniform(Ring(bound), shape)


class StreamFactory:
    """Hands out independent streams (distinct stream ids) under one key.

    Used by parties and the dealer: each draws from its own stream ids, so no two draws
    ever reuse keystream.  With ``seed`` the key is derived from the seed (tests only).
    """

    __slots__ = ("_key", "_next", "_device", "seeded")

    def __init__(self, seed: Any = None, *, label: str = "", device: str | None = "cpu"):
        self._key = _seed_key(seed, label.encode()) if seed is not None else os.urandom(_KEY_BYTES)
        self.seeded = seed is not None
        self._next = 0
        self._device = device

    def new_stream(self, device: str | None = None) -> Stream:
        sid = self._next
        self._next += 1
        return Stream(self._key, sid, device=device or self._device, seeded=self.seeded)

    def __repr__(self) -> str:
        return f"StreamFactory({'seeded, tests only' if self.seeded else 'os.urandom key'}, next={self._next})"

    def __reduce__(self):
        raise TypeError("hecrypt stream factories hold secret keys and cannot be pickled")
