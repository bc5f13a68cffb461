"""CKKS keys: secret, public, relinearization and Galois (rotation) keys; key fingerprint.

All key material is stored in NTT form (bit-reversed evaluations, see
:mod:`hecrypt.backend.ntt`) on the context's device.  With data primes ``q_0 .. q_L`` and
special prime ``P`` (``K = L + 1`` is its index):

* secret key ``s``: uniform ternary, kept modulo every prime of ``Q*P`` (``(L+2, N)``);
* public key ``(b, a) = (-a*s + e, a)`` modulo ``Q*P`` (``(2, L+2, N)``), ``a`` uniform,
  ``e`` discrete Gaussian (sigma 3.2); encryption works modulo ``Q*P`` and divides by ``P``;
* key-switching key from ``s'`` to ``s`` (relinearization: ``s' = s^2``; Galois element ``g``:
  ``s' = s(x^g)``): one pair per data prime ("per-limb digits", SEAL's layout),
  ``ksk[j] = (-a_j*s + e_j + P*s'*[i == j], a_j)`` modulo each prime ``i`` of ``Q*P``
  (shape ``(L+1, 2, L+2, N)``).  Since ``P * s' * (Q/q_j) * [(Q/q_j)^-1]_{q_j}`` is ``P*s'``
  modulo ``q_j`` and 0 modulo every other prime, ``sum_j [d]_{q_j} * ksk[j]`` decrypts to
  ``P * d * s'`` plus ``sum_j [d]_{q_j} e_j``; dividing by ``P`` (ModDown) leaves a noise of
  about ``sqrt(L+1) * max(q_j) / P * sigma * N`` in each coefficient, small when
  ``P >= max q_j`` (the special prime is at least as large as every data prime).

The key fingerprint is a SHA-256 over the parameter fingerprint and the public key (16 bytes,
hex): ciphertexts carry it, so data under another key is refused on deserialization.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ring import Stream
from . import sampling
from ._poly import PolyRing
from .params import CKKSParameters

__all__ = ["SecretKey", "KeySwitchKey", "PublicKeys", "galois_element", "conjugation_element"]


def galois_element(step: int, poly_degree: int) -> int:
    """Galois element ``5^step mod 2N`` rotating the slots left by ``step`` (negative: right)."""
    slots = poly_degree // 2
    k = int(step) % slots
    return pow(5, k, 2 * poly_degree)


def conjugation_element(poly_degree: int) -> int:
    """Galois element ``2N - 1`` (complex conjugation of every slot)."""
    return 2 * poly_degree - 1


class SecretKey:
    """The ternary secret ``s`` in NTT form modulo every prime of ``Q*P``.  Never serialised
    implicitly, never printed, not picklable."""

    __slots__ = ("_ntt",)

    def __init__(self, s_ntt: Any):
        self._ntt = s_ntt

    @property
    def ntt(self) -> Any:
        return self._ntt

    def __repr__(self) -> str:
        return "SecretKey(<hidden>)"

    def __reduce__(self):
        raise TypeError("CKKS secret keys cannot be pickled")


@dataclass
class KeySwitchKey:
    """Per-limb-digit key-switching key ``(L+1, 2, L+2, N)`` in NTT form (see module doc)."""

    data: Any
    _per_level: dict = field(default_factory=dict, repr=False)

    def for_level(self, level: int, max_level: int, xp: Any) -> Any:
        """Digits ``0..level`` restricted to primes ``q_0..q_level, P``: ``(l+1, 2, l+2, N)``."""
        if level == max_level:
            return self.data
        k = self._per_level.get(level)
        if k is None:
            idx = xp.asarray(np.array(list(range(level + 1)) + [max_level + 1]))
            k = xp.ascontiguousarray(self.data[: level + 1][:, :, idx])
            self._per_level[level] = k
        return k


@dataclass
class PublicKeys:
    """Public material shared by a context and its public-only copies."""

    params: CKKSParameters
    pk: Any  # (2, L+2, N): (b, a) modulo Q*P
    relin: KeySwitchKey | None
    galois: dict[int, KeySwitchKey]
    fingerprint: bytes

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def key_fingerprint(params: CKKSParameters, pk_host: np.ndarray) -> bytes:
    """16-byte SHA-256 fingerprint of the parameters and the public key (host array)."""
    h = hashlib.sha256(b"hecrypt/ckks/key/v1/")
    h.update(bytes.fromhex(params.fingerprint))
    h.update(np.ascontiguousarray(pk_host, dtype="<u8").tobytes())
    return h.digest()[:16]


class KeyGenerator:
    """Generates all keys of one secret; every sample is drawn from ``stream`` (ChaCha20)."""

    def __init__(self, params: CKKSParameters, ring: PolyRing, stream: Stream):
        self.params = params
        self.ring = ring
        self.stream = stream
        L = params.max_level
        self.data_basis = tuple(range(L + 1))
        self.key_basis = tuple(range(L + 2))

    def secret_key(self) -> SecretKey:
        N = self.params.poly_degree
        s = sampling.ternary(self.stream, (N,))
        s_rns = self.ring.small_to_rns(s, self.key_basis)
        return SecretKey(self.ring.ntt(s_rns, self.key_basis))

    def public_key(self, sk: SecretKey) -> Any:
        r, N, B = self.ring, self.params.poly_degree, self.key_basis
        a = sampling.uniform_rns(self.stream, r.moduli(B), (N,))  # uniform: same in NTT form
        e = r.ntt(r.small_to_rns(sampling.gaussian(self.stream, (N,)), B), B)
        b = r.sub(e, r.mul(a, sk.ntt, B), B)
        return r.xp.stack([b, a])

    def switch_key(self, sk: SecretKey, s_new_ntt: Any) -> KeySwitchKey:
        """Key switching from ``s_new`` (NTT form mod Q*P) to ``sk``."""
        r, N = self.ring, self.params.poly_degree
        Kb = self.key_basis
        D = len(self.data_basis)
        P = self.params.special_prime
        xp = r.xp
        a = sampling.uniform_rns(self.stream, r.moduli(Kb), (D, N))  # (D, L+2, N)
        e = r.ntt(r.small_to_rns(sampling.gaussian(self.stream, (D, N)), Kb), Kb)
        b = r.sub(e, r.mul(a, sk.ntt, Kb), Kb)
        for j in range(D):
            qj = self.params.primes[j]
            term = r.mul_scalar(s_new_ntt[j:j + 1][None], [P % qj], (j,))[0, 0]
            row = b[j, j]
            t = row + term
            b[j, j] = xp.where(t >= xp.uint64(qj), t - xp.uint64(qj), t)
        return KeySwitchKey(xp.ascontiguousarray(xp.stack([b, a], axis=1)))

    def relin_key(self, sk: SecretKey) -> KeySwitchKey:
        s2 = self.ring.mul(sk.ntt, sk.ntt, self.key_basis)
        return self.switch_key(sk, s2)

    def galois_key(self, sk: SecretKey, galois_elt: int) -> KeySwitchKey:
        sg = self.ring.automorphism(sk.ntt, galois_elt, True, self.key_basis)
        return self.switch_key(sk, sg)
