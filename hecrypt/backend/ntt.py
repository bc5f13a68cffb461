"""NTT tables and NTT-friendly primes for RNS polynomial arithmetic (pure Python + numpy).

Polynomials live in ``R_q = Z_q[x]/(x^N + 1)`` in RNS form: a uint64 array shaped
``(..., L, N)`` holds ``L`` residue polynomials (limb ``i`` modulo ``q_i``) on axis -2, with
every value fully reduced into ``[0, q_i)``.  This module only *precomputes*; the kernels are
in :mod:`hecrypt.backend.he_cpu` (Numba) and :mod:`hecrypt.backend.he_cuda` (CUDA C), both
picked by :func:`he_ops` from the array type.

Conventions (shared by the CPU and GPU kernels, which are bit-identical):

* Every prime is ``q = 1 (mod 2N)`` with ``q < 2**61`` (:data:`MAX_PRIME_BITS`).  The forward
  NTT keeps values lazily in ``[0, 4q)``, the inverse in ``[0, 2q)`` (Harvey butterflies), so
  ``4q < 2**63`` leaves a spare bit; base conversion sums up to 63 products ``< 2**122`` in
  128 bits.
* ``psi`` is the *smallest* primitive 2N-th root of unity mod ``q`` (canonical, like SEAL), so
  tables and known-answer vectors do not depend on a search order.
* The forward NTT (Cooley-Tukey, natural order in) writes slot ``i`` = ``a(psi^(2*brv(i)+1))``
  where ``brv`` reverses ``log2 N`` bits (SEAL's bit-reversed order).  The inverse NTT
  (Gentleman-Sande) takes that order back to natural coefficient order and includes ``N^-1``.
* Tables hold *bit-reversed powers*: ``psi_rev[l, k] = psi_l^brv(k)`` and
  ``ipsi_rev[l, k] = psi_l^-brv(k)``, each with its Shoup companion
  ``w' = floor(w * 2**64 / q)``; Shoup's product ``w*y - mulhi(w', y)*q`` is in ``[0, 2q)``
  for every ``y < 2**64``.
* ``barrett_hi/lo`` hold ``floor(2**128 / q)``: the 128-bit Barrett reduction used by the
  pointwise product reduces any 128-bit value with one conditional subtraction.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any, Iterable, Sequence

import numpy as np

MAX_PRIME_BITS = 61
MIN_LOG_N = 1
MAX_LOG_N = 17

__all__ = [
    "MAX_PRIME_BITS",
    "NTTTables",
    "make_ntt_tables",
    "ntt_primes",
    "is_prime",
    "shoup",
    "bit_reverse_indices",
    "galois_permutation",
    "base_convert_constants",
    "he_ops",
]

_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin, exact for every ``n < 3.3 * 10**24`` (covers all uint64)."""
    n = int(n)
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _check_n(N: Any) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"ring degree N must be an int, got {type(N).__name__}")
    N = int(N)
    if N < (1 << MIN_LOG_N) or N > (1 << MAX_LOG_N) or N & (N - 1):
        raise ValueError(f"ring degree N must be a power of two in [2, 2**{MAX_LOG_N}], got {N}")
    return N


def ntt_primes(bits_list: Sequence[int], N: int, exclude: Iterable[int] = ()) -> list[int]:
    """Distinct primes ``q = 1 (mod 2N)`` with ``q.bit_length() == bits`` for each entry.

    For every bit size the largest unused prime below ``2**bits`` is taken (so the result is
    deterministic), skipping ``exclude`` and primes already returned.  ``bits`` must be in
    ``[log2(2N) + 1, 61]``.  Raises ``ValueError`` when a size has no prime left.
    """
    N = _check_n(N)
    two_n = 2 * N
    used = {int(e) for e in exclude}
    out: list[int] = []
    for bits in bits_list:
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
            raise TypeError(f"prime bit sizes must be ints, got {type(bits).__name__}")
        bits = int(bits)
        if bits > MAX_PRIME_BITS or (1 << (bits - 1)) < two_n:
            raise ValueError(
                f"prime size {bits} bits is out of range for N={N}: need "
                f"{two_n.bit_length()} <= bits <= {MAX_PRIME_BITS}"
            )
        lo = 1 << (bits - 1)
        # largest q = k*2N + 1 < 2**bits
        q = ((1 << bits) - 2) // two_n * two_n + 1
        while q > lo:
            if q not in used and is_prime(q):
                break
            q -= two_n
        else:
            raise ValueError(f"no unused {bits}-bit prime = 1 mod {two_n} is left")
        used.add(q)
        out.append(q)
    return out


def shoup(w: int, q: int) -> int:
    """Shoup constant ``floor(w * 2**64 / q)`` for ``0 <= w < q``."""
    return (int(w) << 64) // int(q)


@functools.lru_cache(maxsize=32)
def bit_reverse_indices(N: int) -> np.ndarray:
    """``brv[i]``: ``i`` with its ``log2 N`` bits reversed (int64, read-only)."""
    N = _check_n(N)
    logn = N.bit_length() - 1
    idx = np.arange(N, dtype=np.int64)
    rev = np.zeros(N, dtype=np.int64)
    for b in range(logn):
        rev |= ((idx >> b) & 1) << (logn - 1 - b)
    rev.setflags(write=False)
    return rev


def _powers(x: int, n: int, q: int) -> np.ndarray:
    """``[x^0, ..., x^(n-1)] mod q`` as an object array of Python ints (block doubling)."""
    p = np.empty(n, dtype=object)
    p[0] = 1
    m = 1
    step = x % q
    while m < n:
        k = min(m, n - m)
        p[m : m + k] = (p[:k] * step) % q
        step = step * step % q
        m += k
    return p


def _check_prime_for(q: Any, N: int) -> int:
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)):
        raise TypeError(f"RNS moduli must be ints, got {type(q).__name__}")
    q = int(q)
    if q < 3 or q.bit_length() > MAX_PRIME_BITS:
        raise ValueError(f"modulus {q} is out of range: need 3 <= q < 2**{MAX_PRIME_BITS}")
    if (q - 1) % (2 * N):
        raise ValueError(f"modulus {q} is not 1 mod 2N = {2 * N}: no negacyclic NTT of size {N}")
    if not is_prime(q):
        raise ValueError(f"modulus {q} is not prime")
    return q


def _min_primitive_root(q: int, N: int) -> int:
    """Smallest primitive 2N-th root of unity mod prime q (q = 1 mod 2N)."""
    two_n = 2 * N
    e = (q - 1) // two_n
    g = None
    for x in range(2, 1 << 20):
        c = pow(x, e, q)
        if pow(c, N, q) == q - 1:  # order exactly 2N (2N is a power of two)
            g = c
            break
    if g is None:  # pragma: no cover - impossible for a prime q = 1 mod 2N
        raise ValueError(f"no primitive {two_n}-th root of unity mod {q}")
    # every primitive root is g^k for odd k; g^(k+N) = -g^k
    odd = _powers(g, N, q)[1::2].astype(np.uint64)
    qq = np.uint64(q)
    return int(min(odd.min(), (qq - odd).min()))


@functools.lru_cache(maxsize=256)
def _prime_tables(q: int, N: int) -> dict[str, Any]:
    q = _check_prime_for(q, N)
    psi = _min_primitive_root(q, N)
    ipsi = pow(psi, -1, q)
    brv = bit_reverse_indices(N)
    pw = _powers(psi, N, q)[brv]
    ipw = _powers(ipsi, N, q)[brv]
    n_inv = pow(N, -1, q)
    sh = lambda arr: np.array([(int(w) << 64) // q for w in arr], dtype=np.uint64)  # noqa: E731
    bar = (1 << 128) // q
    # the last inverse stage multiplies by N^-1 too: its twiddle is ipsi_rev[1] * N^-1
    last = int(ipw[1]) * n_inv % q if N > 1 else n_inv
    return {
        "psi": psi,
        "psi_rev": pw.astype(np.uint64),
        "psi_rev_shoup": sh(pw),
        "ipsi_rev": ipw.astype(np.uint64),
        "ipsi_rev_shoup": sh(ipw),
        "n_inv": n_inv,
        "n_inv_shoup": shoup(n_inv, q),
        "last": last,
        "last_shoup": shoup(last, q),
        "barrett": bar,
    }


class NTTTables:
    """Precomputed negacyclic NTT data for primes ``qs`` and degree ``N`` (read-only arrays).

    Attributes (``L = len(qs)``):

    * ``qs``: uint64 ``(L,)``; ``qs_int``: the same as Python ints; ``N``, ``log_n``.
    * ``psi``: tuple of the primitive 2N-th roots (smallest one per prime).
    * ``psi_rev``, ``psi_rev_shoup``: uint64 ``(L, N)``, ``psi^brv(k)`` and Shoup constants.
    * ``ipsi_rev``, ``ipsi_rev_shoup``: uint64 ``(L, N)``, ``psi^-brv(k)`` and Shoup constants.
    * ``n_inv``, ``n_inv_shoup``: uint64 ``(L,)``, ``N^-1 mod q`` (the inverse NTT applies it).
    * ``last``, ``last_shoup``: uint64 ``(L,)``, ``psi^-brv(1) * N^-1`` for the fused last
      inverse stage.
    * ``barrett_hi``, ``barrett_lo``: uint64 ``(L,)``, the two words of ``floor(2**128/q)``.

    Device copies made by the CUDA kernels are cached on the object (``_device``).
    """

    __slots__ = (
        "qs", "qs_int", "N", "log_n", "psi", "psi_rev", "psi_rev_shoup", "ipsi_rev",
        "ipsi_rev_shoup", "n_inv", "n_inv_shoup", "last", "last_shoup", "barrett_hi",
        "barrett_lo", "_device",
    )  # fmt: skip

    def __init__(self, qs: tuple[int, ...], N: int):
        per = [_prime_tables(q, N) for q in qs]

        def stack(key: str) -> np.ndarray:
            arr = np.ascontiguousarray(np.stack([p[key] for p in per]))
            arr.setflags(write=False)
            return arr

        def vec(key: str) -> np.ndarray:
            arr = np.array([p[key] for p in per], dtype=np.uint64)
            arr.setflags(write=False)
            return arr

        self.qs_int = tuple(qs)
        self.qs = np.array(qs, dtype=np.uint64)
        self.qs.setflags(write=False)
        self.N = N
        self.log_n = N.bit_length() - 1
        self.psi = tuple(p["psi"] for p in per)
        self.psi_rev = stack("psi_rev")
        self.psi_rev_shoup = stack("psi_rev_shoup")
        self.ipsi_rev = stack("ipsi_rev")
        self.ipsi_rev_shoup = stack("ipsi_rev_shoup")
        self.n_inv = vec("n_inv")
        self.n_inv_shoup = vec("n_inv_shoup")
        self.last = vec("last")
        self.last_shoup = vec("last_shoup")
        bar = [p["barrett"] for p in per]
        self.barrett_hi = np.array([b >> 64 for b in bar], dtype=np.uint64)
        self.barrett_lo = np.array([b & ((1 << 64) - 1) for b in bar], dtype=np.uint64)
        self.barrett_hi.setflags(write=False)
        self.barrett_lo.setflags(write=False)
        self._device: dict[Any, Any] = {}

    @property
    def L(self) -> int:
        return len(self.qs_int)

    def __repr__(self) -> str:
        bits = [q.bit_length() for q in self.qs_int]
        return f"NTTTables(N={self.N}, L={self.L}, bits={bits})"


@functools.lru_cache(maxsize=64)
def _make_tables(qs: tuple[int, ...], N: int) -> NTTTables:
    return NTTTables(qs, N)


def make_ntt_tables(qs: Sequence[int], N: int) -> NTTTables:
    """Tables for the negacyclic NTT of size ``N`` modulo each prime in ``qs`` (cached).

    Each ``q`` must be a prime ``= 1 (mod 2N)`` below ``2**61`` (``ValueError`` otherwise);
    ``N`` a power of two in ``[2, 2**17]``.  Per-prime tables are cached separately, so the
    tables of a prefix or a reordering of a chain are cheap to build.
    """
    N = _check_n(N)
    if isinstance(qs, np.ndarray):
        qs = [int(q) for q in qs.ravel()]
    qs_t = tuple(_check_prime_for(q, N) for q in qs)
    if not qs_t:
        raise ValueError("qs must name at least one prime")
    if len(set(qs_t)) != len(qs_t):
        raise ValueError(f"RNS moduli must be distinct, got {list(qs_t)}")
    return _make_tables(qs_t, N)


def galois_permutation(galois_elt: int, N: int, ntt_form: bool) -> np.ndarray:
    """Gather table for the automorphism ``x -> x^g`` (uint32 ``(N,)``, read-only).

    ``out[..., i] = +/- in[..., perm[i] & 0x7fffffff]``, negated (mod q) when bit 31 is set.
    Coefficient form: ``x^j -> x^(g j mod 2N)`` with ``x^N = -1``.  NTT form (bit-reversed
    slots, slot ``i`` = ``a(psi^(2 brv(i)+1))``): a pure permutation, slot ``i`` takes the
    slot whose exponent is ``(2 brv(i)+1) * g mod 2N``; no sign bits.
    """
    N = _check_n(N)
    if isinstance(galois_elt, bool) or not isinstance(galois_elt, (int, np.integer)):
        raise TypeError(f"galois_elt must be an int, got {type(galois_elt).__name__}")
    g = int(galois_elt)
    if g % 2 == 0 or not 0 < g < 2 * N:
        raise ValueError(f"galois_elt must be odd in [1, 2N) = [1, {2 * N}), got {g}")
    return _galois_permutation(g, N, bool(ntt_form))


@functools.lru_cache(maxsize=512)
def _galois_permutation(g: int, N: int, ntt_form: bool) -> np.ndarray:
    two_n = 2 * N
    j = np.arange(N, dtype=np.int64)
    if ntt_form:
        brv = bit_reverse_indices(N)
        e = (2 * brv[j] + 1) * g % two_n
        src = brv[(e - 1) // 2]
        perm = src.astype(np.uint32)
    else:
        e = j * g % two_n
        dst = e % N
        neg = (e >= N).astype(np.uint32)
        perm = np.empty(N, dtype=np.uint32)
        perm[dst] = j.astype(np.uint32) | (neg << np.uint32(31))
    perm.setflags(write=False)
    return perm


class BaseConvConstants:
    """Constants of the fast basis conversion from ``from_qs`` (Q) to ``to_qs`` (P).

    ``qhat_inv[i] = (Q/q_i)^-1 mod q_i`` (+ Shoup), ``qhat_mod_p[j, i] = (Q/q_i) mod p_j``,
    ``barrett_hi/lo[j]`` = words of ``floor(2**128 / p_j)``.
    """

    __slots__ = ("from_qs", "to_qs", "qhat_inv", "qhat_inv_shoup", "qhat_mod_p",
                 "barrett_hi", "barrett_lo", "_device")  # fmt: skip

    def __init__(self, from_qs: tuple[int, ...], to_qs: tuple[int, ...]):
        Q = math.prod(from_qs)
        self.from_qs = np.array(from_qs, dtype=np.uint64)
        self.to_qs = np.array(to_qs, dtype=np.uint64)
        qh = [Q // q for q in from_qs]
        inv = [pow(h % q, -1, q) for h, q in zip(qh, from_qs)]
        self.qhat_inv = np.array(inv, dtype=np.uint64)
        self.qhat_inv_shoup = np.array([shoup(w, q) for w, q in zip(inv, from_qs)], dtype=np.uint64)
        self.qhat_mod_p = np.array([[h % p for h in qh] for p in to_qs], dtype=np.uint64).reshape(
            len(to_qs), len(from_qs)
        )
        bar = [(1 << 128) // p for p in to_qs]
        self.barrett_hi = np.array([b >> 64 for b in bar], dtype=np.uint64)
        self.barrett_lo = np.array([b & ((1 << 64) - 1) for b in bar], dtype=np.uint64)
        for a in (self.from_qs, self.to_qs, self.qhat_inv, self.qhat_inv_shoup, self.qhat_mod_p,
                  self.barrett_hi, self.barrett_lo):  # fmt: skip
            a.setflags(write=False)
        self._device: dict[Any, Any] = {}


MAX_BASECONV_LIMBS = 63


def _moduli_tuple(qs: Any, what: str) -> tuple[int, ...]:
    if type(qs).__module__.split(".")[0] == "cupy":
        qs = qs.get()
    if isinstance(qs, np.ndarray):
        if qs.ndim != 1:
            raise ValueError(f"{what} must be one-dimensional, got shape {qs.shape}")
        return tuple(int(q) for q in qs)
    return tuple(int(q) for q in qs)


@functools.lru_cache(maxsize=128)
def _base_convert_constants(from_qs: tuple[int, ...], to_qs: tuple[int, ...]) -> BaseConvConstants:
    for q in from_qs + to_qs:
        if q < 3 or q.bit_length() > MAX_PRIME_BITS or q % 2 == 0:
            raise ValueError(f"modulus {q} is out of range: need odd 3 <= q < 2**{MAX_PRIME_BITS}")
    if not from_qs or not to_qs:
        raise ValueError("base conversion needs at least one source and one target modulus")
    if len(from_qs) > MAX_BASECONV_LIMBS:
        raise ValueError(f"base conversion supports at most {MAX_BASECONV_LIMBS} source limbs")
    if len(set(from_qs)) != len(from_qs):
        raise ValueError("source moduli must be distinct")
    for i, a in enumerate(from_qs):
        for b in from_qs[i + 1 :]:
            if math.gcd(a, b) != 1:
                raise ValueError(f"source moduli {a} and {b} are not coprime")
    return BaseConvConstants(from_qs, to_qs)


def base_convert_constants(from_qs: Any, to_qs: Any) -> BaseConvConstants:
    """Cached :class:`BaseConvConstants` for moduli given as sequences or uint64 arrays."""
    return _base_convert_constants(_moduli_tuple(from_qs, "from_qs"), _moduli_tuple(to_qs, "to_qs"))


def he_ops(array: Any) -> ModuleType:
    """The HE kernel module for ``array``: :mod:`.he_cuda` for CuPy arrays, else :mod:`.he_cpu`.

    Both modules expose the same functions (``ntt``, ``intt``, ``rns_add``, ``rns_sub``,
    ``rns_neg``, ``rns_mul``, ``rns_mul_scalar``, ``rns_fma``, ``rns_dot``, ``base_convert``,
    ``automorphism``) with the same numeric contracts and bit-identical results.
    """
    if type(array).__module__.split(".")[0] == "cupy":
        from . import he_cuda

        return he_cuda
    from . import he_cpu

    return he_cpu
