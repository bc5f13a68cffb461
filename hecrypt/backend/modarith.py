"""Constants shared by the CPU and GPU modular kernels (pure Python, no Numba/CuPy).

Z_q reduction uses Barrett's method on the exact 128-bit product.  For an odd modulus
``3 <= q < 2**62`` with ``k = q.bit_length()`` and ``mu = floor(2**(2k) / q)``, any
``x < q**2`` reduces as::

    q1 = x >> (k - 1)          # < 2**(k+1)
    q3 = (q1 * mu) >> (k + 1)  # 128-bit product, then shift
    r  = (x - q3 * q) mod 2**64  # the true value is in [0, 3q), so low 64 bits suffice
    r -= q while r >= q        # at most twice

The same constants and steps are used by ``kernels/common/modarith.cuh`` and by the Numba
CPU kernels, so both devices compute the same (unique) residue.
"""

from __future__ import annotations

import functools

MAX_Q_BITS = 62


def check_modulus(q: int) -> int:
    """Validate a Z_q modulus: an odd integer with ``3 <= q < 2**62``."""
    if isinstance(q, bool) or not isinstance(q, int):
        try:
            import numbers

            if isinstance(q, numbers.Integral):
                q = int(q)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"modulus must be an integer, got {type(q).__name__}") from None
    if q < 3 or q % 2 == 0 or q >= 1 << MAX_Q_BITS:
        raise ValueError(f"Z_q modulus must be odd with 3 <= q < 2**62, got {q}")
    return q


@functools.lru_cache(maxsize=256)
def barrett(q: int) -> tuple[int, int, int]:
    """Return ``(q, mu, k)`` Barrett constants for modulus ``q`` (see module docstring)."""
    q = check_modulus(q)
    k = q.bit_length()
    mu = (1 << (2 * k)) // q
    return q, mu, k


def two64_mod(q: int) -> int:
    """``2**64 mod q``, used to fold the high word of a 128-bit sample."""
    return (1 << 64) % q
