"""Test helpers shared by the ring tests (test inputs only, never secrets)."""

import numpy as np

from hecrypt.ring import Ring


def rand(ring: Ring, rng, shape):
    """Uniform ring elements spanning the whole ring (test inputs, not secrets)."""
    if ring.is_pow2:
        return rng.integers(0, ring.modulus - 1, size=shape, dtype=ring.dtype, endpoint=True)
    return rng.integers(0, ring.modulus, size=shape, dtype=np.uint64)


def as_int(a):
    return np.asarray(a).astype(object)
