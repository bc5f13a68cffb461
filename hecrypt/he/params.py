"""Checked CKKS parameters: ring degree, RNS prime chain, scale, security level.

User literals (``poly_degree``, ``coeff_mod_bits``, ``scale_bits``) become a
:class:`CKKSParameters` object once; everything downstream accepts only that object.

Conventions (as in Microsoft SEAL):

* ``coeff_mod_bits = [b_0, b_1, ..., b_L, b_P]`` lists bit sizes of NTT-friendly primes
  ``q = 1 (mod 2N)``.  The **last** entry is the special prime ``P`` used only for key
  switching; the others are the data primes ``q_0 .. q_L``.  A fresh ciphertext lives at
  level ``L`` (modulus ``Q = q_0 ... q_L``); each rescale divides by the last remaining data
  prime and drops one level; level 0 (modulus ``q_0``) can still be decrypted.
* ``q_0`` should exceed the scale by the number of integer bits the results need
  (``[60, 40, 40, 60]`` with scale ``2^40`` leaves 20 bits: ``|x| < 2^19``).
* Each prime is the largest ``b``-bit prime ``= 1 (mod 2N)`` not used earlier in the chain
  (primes of equal size are therefore distinct and as close to ``2^b`` as possible, which
  keeps the scale after a rescale within ``~2^-20`` of ``2^b``).  Sizes are 17..60 bits
  (the NTT kernels need ``q < 2^61``).

Security: with ``security=128`` (default) the total ``log2(QP)`` (the sum of the bit sizes,
an upper bound on the true value) must not exceed the HomomorphicEncryption.org standard's
128-bit table for uniform ternary secrets and error sigma 3.2 (:data:`HE_STANDARD_128`).
``security=None`` disables the check (tests, experiments); nothing else changes.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import struct
from dataclasses import dataclass, field
from typing import Sequence

from ..backend.ntt import is_prime, ntt_primes
from ..errors import SecurityError

__all__ = [
    "CKKSParameters",
    "HE_STANDARD_128",
    "PRESETS",
    "MIN_PRIME_BITS",
    "MAX_PRIME_BITS",
    "ntt_prime_chain",
    "is_prime",
]

#: max log2(QP) for 128-bit classical security, uniform ternary secret, sigma 3.2
#: (HomomorphicEncryption.org Security Standard v1.1, Table 1 "ternary", N = 1024..32768;
#: the N = 65536 entry, which the standard does not list, is OpenFHE's extension of the
#: same table, ``HEStd_ternary`` / ``HEStd_128_classic``).
HE_STANDARD_128 = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
    65536: 1747,
}

MIN_PRIME_BITS = 17
MAX_PRIME_BITS = 60
MIN_DEGREE, MAX_DEGREE = 8, 1 << 17

#: name -> (poly_degree, coeff_mod_bits, scale_bits); all within the 128-bit table.
PRESETS: dict[str, tuple[int, tuple[int, ...], int]] = {
    # 1 multiplicative level; q0 = 39 bits leaves 8 integer bits at scale 2^31
    "n4096": (4096, (39, 31, 39), 31),
    # the common TenSEAL/SEAL choice: 2 levels, scale 2^40, 20 integer bits (200 bits)
    "n8192": (8192, (60, 40, 40, 60), 40),
    # 7 levels at scale 2^40 (400 bits)
    "n16384": (16384, (60,) + (40,) * 7 + (60,), 40),
    # 18 levels at scale 2^40 (840 bits)
    "n32768": (32768, (60,) + (40,) * 18 + (60,), 40),
}

def ntt_prime_chain(bits: Sequence[int], poly_degree: int) -> tuple[int, ...]:
    """Distinct primes ``q_i = 1 (mod 2N)`` with ``q_i.bit_length() == bits[i]``.

    For each requested size the largest unused prime below ``2^b`` is taken, in the order
    given (:func:`hecrypt.backend.ntt.ntt_primes`).  Raises ``ValueError`` if a size has too
    few such primes or is out of the kernels' range.
    """
    return tuple(ntt_primes(list(bits), poly_degree))


def _as_int(x, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {type(x).__name__}")
    return int(x)


@dataclass(frozen=True)
class CKKSParameters:
    """Checked CKKS parameters (immutable, hashable).

    Parameters
    ----------
    poly_degree:
        Ring degree ``N`` (a power of two, 1024..65536 under the 128-bit check; down to 8
        with ``security=None``).  A ciphertext holds ``N/2`` complex slots.
    coeff_mod_bits:
        Bit sizes of the prime chain, data primes first, the special prime ``P`` last
        (at least two entries, each 17..60 bits).
    scale_bits:
        ``log2`` of the default encoding scale.  Must be smaller than the first prime's
        size (otherwise level-0 results overflow).  Default: size of the second prime
        (the one a rescale divides by first).
    security:
        ``128`` (checked against :data:`HE_STANDARD_128`) or ``None`` to opt out
        explicitly; raises :class:`~hecrypt.errors.SecurityError` beyond the table.
    """

    poly_degree: int
    coeff_mod_bits: tuple[int, ...]
    scale_bits: int | None = None
    security: int | None = 128
    primes: tuple[int, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        n = _as_int(self.poly_degree, "poly_degree")
        if n < MIN_DEGREE or n > MAX_DEGREE or n & (n - 1):
            raise ValueError(f"poly_degree must be a power of two in [{MIN_DEGREE}, {MAX_DEGREE}], got {n}")
        if isinstance(self.coeff_mod_bits, (str, bytes)) or not isinstance(self.coeff_mod_bits, Sequence):
            raise TypeError("coeff_mod_bits must be a sequence of integers, e.g. [60, 40, 40, 60]")
        bits = tuple(_as_int(b, "coeff_mod_bits entry") for b in self.coeff_mod_bits)
        if len(bits) < 2:
            raise ValueError("coeff_mod_bits needs at least two primes: data prime(s) then the special prime")
        for b in bits:
            if not MIN_PRIME_BITS <= b <= MAX_PRIME_BITS:
                raise ValueError(f"prime sizes must be {MIN_PRIME_BITS}..{MAX_PRIME_BITS} bits, got {b}")
            if (1 << b) <= 4 * n:
                raise ValueError(f"a {b}-bit prime is too small for poly_degree={n} (needs q = 1 mod {2 * n})")
        scale = bits[1] if (self.scale_bits is None and len(bits) > 2) else self.scale_bits
        if scale is None:
            scale = bits[0] - 20
        scale = _as_int(scale, "scale_bits")
        if not 1 <= scale < bits[0]:
            raise ValueError(f"scale_bits must be in [1, {bits[0]}) (below the first prime's {bits[0]} bits, "
                             f"which holds the final result), got {scale}")
        sec = self.security
        if sec is not None:
            sec = _as_int(sec, "security")
            if sec != 128:
                raise ValueError("security must be 128 (HE Standard table) or None (explicit opt-out)")
            limit = HE_STANDARD_128.get(n)
            if limit is None:
                raise SecurityError(f"poly_degree={n} is outside the HE Standard 128-bit table "
                                    f"({min(HE_STANDARD_128)}..{max(HE_STANDARD_128)}); pass security=None to opt out")
            if sum(bits) > limit:
                raise SecurityError(
                    f"log2(QP) = {sum(bits)} bits exceeds the 128-bit limit {limit} for poly_degree={n} "
                    f"(HE Standard, ternary secret); use a larger poly_degree, fewer/smaller primes, "
                    f"or pass security=None to opt out explicitly")
        if self.primes:
            primes = tuple(_as_int(p, "prime") for p in self.primes)
            if len(primes) != len(bits):
                raise ValueError("primes and coeff_mod_bits differ in length")
            for p, b in zip(primes, bits):
                if p.bit_length() != b or p % (2 * n) != 1 or not is_prime(p):
                    raise ValueError(f"{p} is not a {b}-bit prime = 1 mod {2 * n}")
            if len(set(primes)) != len(primes):
                raise ValueError("primes must be distinct")
        else:
            primes = ntt_prime_chain(bits, n)
        object.__setattr__(self, "poly_degree", n)
        object.__setattr__(self, "coeff_mod_bits", bits)
        object.__setattr__(self, "scale_bits", scale)
        object.__setattr__(self, "security", sec)
        object.__setattr__(self, "primes", primes)

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "CKKSParameters":
        """One of :data:`PRESETS` (``n4096``, ``n8192``, ``n16384``, ``n32768``)."""
        try:
            n, bits, scale = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
        return cls(n, bits, scale)

    # -- derived -----------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.poly_degree // 2

    @property
    def data_primes(self) -> tuple[int, ...]:
        """``q_0 .. q_L`` (ciphertext modulus at the top level)."""
        return self.primes[:-1]

    @property
    def special_prime(self) -> int:
        """``P``, the key-switching prime."""
        return self.primes[-1]

    @property
    def max_level(self) -> int:
        """Level of a fresh ciphertext (number of rescales available)."""
        return len(self.primes) - 2

    @property
    def scale(self) -> float:
        return float(2.0 ** self.scale_bits)

    @property
    def log2_qp(self) -> float:
        """Exact ``log2`` of the product of all primes (including ``P``)."""
        return sum(math.log2(p) for p in self.primes)

    def level_primes(self, level: int) -> tuple[int, ...]:
        """Data primes of a ciphertext at ``level`` (``q_0 .. q_level``)."""
        if not 0 <= level <= self.max_level:
            raise ValueError(f"level must be in [0, {self.max_level}], got {level}")
        return self.primes[:level + 1]

    def to_bytes(self) -> bytes:
        """Canonical encoding (degree, primes, scale, security) used for the fingerprint."""
        head = struct.pack("<4sHIHH", b"HEPA", 1, self.poly_degree, self.scale_bits, self.security or 0)
        return head + struct.pack(f"<H{len(self.primes)}Q", len(self.primes), *self.primes)

    @classmethod
    def from_bytes(cls, data: bytes) -> "CKKSParameters":
        from ..errors import SerializationError

        try:
            magic, ver, n, scale, sec = struct.unpack_from("<4sHIHH", data, 0)
            (cnt,) = struct.unpack_from("<H", data, 14)
            primes = struct.unpack_from(f"<{cnt}Q", data, 16)
        except struct.error as exc:
            raise SerializationError(f"truncated CKKS parameters: {exc}") from None
        if magic != b"HEPA" or ver != 1 or len(data) != 16 + 8 * cnt:
            raise SerializationError("not a version-1 hecrypt CKKS parameter blob")
        try:
            return cls(n, tuple(p.bit_length() for p in primes), scale, sec or None, primes=tuple(primes))
        except (ValueError, TypeError) as exc:
            raise SerializationError(f"invalid CKKS parameters in blob: {exc}") from None

    @property
    def fingerprint(self) -> str:
        """32 hex digits (SHA-256 of :meth:`to_bytes`, truncated): identifies the parameters."""
        return hashlib.sha256(b"hecrypt/ckks/params/v1/" + self.to_bytes()).hexdigest()[:32]

    def __repr__(self) -> str:
        return (f"CKKSParameters(poly_degree={self.poly_degree}, coeff_mod_bits={list(self.coeff_mod_bits)}, "
                f"scale_bits={self.scale_bits}, security={self.security})")
