"""CKKS evaluation on raw RNS arrays: encryption, arithmetic, key switching, rescale, rotation.

A ciphertext at level ``l`` is a uint64 array ``(..., 2, l+1, N)`` in NTT form modulo the
data primes ``q_0 .. q_l`` (leading axes: a batch), with a scale ``Delta``: it decrypts to
``round(Delta * m) + e`` where ``m`` is the encoded message polynomial.

Scale rules (``q_l`` is the prime a rescale removes).  Every level has a canonical scale
(:meth:`Evaluator.level_scale`): ``Delta_L = 2^scale_bits`` and ``Delta_(l-1) = Delta_l^2 / q_l``,
the scale of a product of two level-``l`` ciphertexts after its rescale (as in OpenFHE's
FLEXIBLEAUTO); it stays within a fraction of a bit of ``2^scale_bits`` for primes near it.

* fresh encryptions at level ``l`` use ``Delta_l`` unless a scale is given;
* plaintext vectors added or subtracted are encoded at the ciphertext's own scale;
* products with plaintext vectors or non-integer scalars encode the plaintext at
  ``t = Delta_(l-1) * q_l / scale`` and rescale, so the result has the canonical scale of the
  next level (``t ~ Delta`` for a canonical input);
* integer scalars multiply exactly with no rescale (no level used);
* ciphertext x ciphertext: scale ``s_1 * s_2 / q_l`` after the rescale (canonical for canonical
  inputs); two ciphertexts added are first brought to the lower level (dropping primes is
  exact and keeps the scale), and their scales must agree to a relative ``2^-30`` (see
  :mod:`hecrypt.he.ciphertext` for the automatic scale adjustment across levels).

Key switching (relinearization, rotations): per-limb digits with the special prime ``P``
(SEAL's hybrid scheme): inverse NTT of the input, exact lift of each digit ``[d]_{q_j}`` to
every prime of ``q_0..q_l, P`` (ModUp), NTT, inner product with the key, then ``round(./P)``
(ModDown).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np

from ..backend import get_backend
from ..ring import StreamFactory
from . import sampling
from ._poly import PolyRing
from .encoder import CKKSEncoder
from .keys import KeySwitchKey, PublicKeys, conjugation_element, galois_element
from .params import CKKSParameters

__all__ = ["Evaluator", "SCALE_RTOL"]

SCALE_RTOL = 2.0 ** -30


class Evaluator:
    """Public-key operations of one context (no secret key).  Shared by ciphertexts."""

    def __init__(self, params: CKKSParameters, device: str, keys: PublicKeys, streams: StreamFactory,
                 keygen_hook: Callable[[int], KeySwitchKey] | None = None):
        self.params = params
        self.device = device
        self.backend = get_backend(device)
        self.xp = self.backend.xp
        self.keys = keys
        self.streams = streams
        self.ring = PolyRing(params.primes, params.poly_degree, self.xp)
        self.encoder = CKKSEncoder(params.poly_degree, self.xp)
        self.N = params.poly_degree
        self.L = params.max_level
        self.K = len(params.primes) - 1  # index of P
        self._keygen_hook = keygen_hook
        self._pk_cache: dict = {}
        #: ModUp strategy: all digits in one pass (GPU: few launches) or digit by digit
        #: skipping each digit's own prime (CPU: fewer NTTs); results are bit-identical
        self.batched_modup = device != "cpu"
        self._level_scales: list[float] | None = None

    # -- bases -------------------------------------------------------------------------
    def basis(self, level: int) -> tuple[int, ...]:
        return tuple(range(level + 1))

    def key_basis(self, level: int) -> tuple[int, ...]:
        return tuple(range(level + 1)) + (self.K,)

    def check_level(self, level: int | None) -> int:
        if level is None:
            return self.L
        if isinstance(level, bool) or not isinstance(level, numbers.Integral):
            raise TypeError(f"level must be an int, got {type(level).__name__}")
        level = int(level)
        if not 0 <= level <= self.L:
            raise ValueError(f"level must be in [0, {self.L}], got {level}")
        return level

    def level_scale(self, level: int) -> float:
        """Canonical scale of level ``l``: ``Delta_L = 2^scale_bits``,
        ``Delta_(l-1) = Delta_l^2 / q_l`` (what a product of two level-``l`` ciphertexts has
        after its rescale; plaintext and scalar products are encoded to land there too)."""
        if self._level_scales is None:
            sc = [0.0] * (self.L + 1)
            sc[self.L] = self.params.scale
            for lv in range(self.L, 0, -1):
                sc[lv - 1] = sc[lv] * sc[lv] / self.params.primes[lv]
            self._level_scales = sc
        return self._level_scales[level]

    def plain_scale(self, ct_scale: float, level: int) -> float:
        """Scale to encode a plaintext multiplied into a level-``l`` ciphertext of scale
        ``ct_scale`` so that after the rescale the product has the canonical scale of level
        ``l-1`` (``ct_scale * t / q_l == level_scale(l-1)``); ``t ~ Delta`` for canonical inputs."""
        return self.level_scale(level - 1) * self.params.primes[level] / ct_scale

    def check_scale(self, scale: float | None, level: int | None = None) -> float:
        if scale is None:
            return self.params.scale if level is None else self.level_scale(level)
        scale = float(scale)
        if not (scale >= 1.0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a finite number >= 1, got {scale}")
        if level is not None:
            self.check_scale_fits(scale, level)
        return scale

    def level_bits(self, level: int) -> float:
        """``log2`` of the level-``l`` ciphertext modulus ``q_0 ... q_l``."""
        return sum(math.log2(q) for q in self.params.primes[: level + 1])

    def check_scale_fits(self, scale: float, level: int) -> None:
        """``ValueError`` unless ``log2(scale) < log2(q_0 ... q_l)`` (SEAL's bound): a larger
        scale leaves no room for the message, which would wrap modulo ``Q`` and decrypt to
        garbage without any error."""
        if math.log2(scale) >= self.level_bits(level):
            raise ValueError(
                f"scale 2^{math.log2(scale):.2f} is out of bounds at level {level} (ciphertext modulus "
                f"2^{self.level_bits(level):.2f}): rescale first, multiply at a higher level, or use a "
                f"smaller scale")

    # -- encoding ----------------------------------------------------------------------
    def encode(self, values: Any, level: int, scale: float) -> Any:
        """NTT-form plaintext ``(..., l+1, N)`` of slot values at ``scale``."""
        B = self.basis(level)
        coeffs = self.encoder.encode(values, scale)
        return self.ring.ntt(self.ring.int_to_rns(coeffs, B), B)

    def scalar_residues(self, value: int, level: int) -> Any:
        """Residues of the integer ``value`` modulo ``q_0..q_l`` as an ``(l+1, 1)`` column."""
        qs = self.ring.moduli(self.basis(level))
        return self.xp.asarray(np.array([value % q for q in qs], dtype=np.uint64).reshape(-1, 1))

    # -- encryption --------------------------------------------------------------------
    def public_key_at(self, level: int) -> Any:
        """The public key restricted to primes ``q_0..q_level, P``: ``(2, l+2, N)`` (cached)."""
        pk = self.keys.pk
        if level == self.L:
            return pk
        k = self._pk_cache.get(level)
        if k is None:
            idx = self.xp.asarray(np.array(self.key_basis(level)))
            k = self.xp.ascontiguousarray(pk[:, idx])
            self._pk_cache[level] = k
        return k

    def encrypt_pk(self, values: Any, level: int, scale: float) -> Any:
        """Public-key encryption -> ``(..., 2, l+1, N)`` (SEAL's method).

        ``(u*b + e0, u*a + e1)`` is formed modulo ``q_0..q_l * P`` and divided by ``P``
        (rounded), which shrinks the encryption noise ``u*e + e0 + e1*s`` to the rounding
        noise (``~ sqrt(N/18)`` per coefficient); then the encoded message is added.
        """
        r, xp = self.ring, self.xp
        B = self.basis(level)
        KB = self.key_basis(level)
        m = self.encoder.encode(values, scale)  # int64 (..., N)
        lead = m.shape[:-1]
        stream = self.streams.new_stream(self.device)
        u = sampling.ternary(stream, lead + (1, self.N))
        e = sampling.gaussian(stream, lead + (2, self.N))
        x = r.ntt(r.small_to_rns(xp.concatenate([u, e], axis=-2), KB), KB)  # u, e0, e1
        pk = self.public_key_at(level)
        c = r.fma(x[..., 1:, :, :], pk, x[..., 0:1, :, :], KB)  # (..., 2, l+2, N)
        c = r.divide_round_last(c, KB)
        c0 = r.add(c[..., 0, :, :], r.ntt(r.int_to_rns(m, B), B), B)
        return xp.stack([c0, c[..., 1, :, :]], axis=-3)

    # -- arithmetic --------------------------------------------------------------------
    def add(self, a: Any, b: Any, level: int) -> Any:
        return self.ring.add(a, b, self.basis(level))

    def sub(self, a: Any, b: Any, level: int) -> Any:
        return self.ring.sub(a, b, self.basis(level))

    def neg(self, a: Any, level: int) -> Any:
        return self.ring.neg(a, self.basis(level))

    def add_to_c0(self, data: Any, pt: Any, level: int, subtract: bool = False) -> Any:
        """``(c0 +/- pt, c1)``; ``pt`` broadcasts against ``c0`` (``(..., l+1, N)``)."""
        xp = self.xp
        B = self.basis(level)
        c0 = data[..., 0, :, :]
        c0 = self.ring.sub(c0, pt, B) if subtract else self.ring.add(c0, pt, B)
        c1 = xp.broadcast_to(data[..., 1, :, :], c0.shape)
        return xp.stack([c0, c1], axis=-3)

    def add_const(self, data: Any, value: int, level: int, subtract: bool = False) -> Any:
        """Add the integer constant polynomial ``value`` (NTT of a constant is that constant)."""
        xp = self.xp
        q = self.ring.qs_col(self.basis(level))
        s = self.scalar_residues(-value if subtract else value, level)
        out = data.copy()
        t = out[..., 0, :, :] + s
        out[..., 0, :, :] = xp.where(t >= q, t - q, t)
        return out

    def mul_int(self, data: Any, value: int, level: int) -> Any:
        return self.ring.mul_int(data, int(value), self.basis(level))

    def mul_plain(self, data: Any, pt: Any, level: int) -> Any:
        """Both polynomials times the NTT-form plaintext ``pt`` (``(..., l+1, N)``)."""
        return self.ring.mul(data, pt[..., None, :, :], self.basis(level))

    def _tensor(self, a: Any, b: Any | None, level: int):
        """``(d0, d1)`` stacked ``(..., 2, l+1, N)`` and ``d2`` of the product (``b=None``: square)."""
        r, xp = self.ring, self.xp
        B = self.basis(level)
        a0, a1 = a[..., 0, :, :], a[..., 1, :, :]
        if b is None:
            d0 = r.mul(a0, a0, B)
            d1 = r.mul_scalar(r.mul(a0, a1, B), [2] * len(B), B)
            d2 = r.mul(a1, a1, B)
        else:
            b0, b1 = b[..., 0, :, :], b[..., 1, :, :]
            d0 = r.mul(a0, b0, B)
            d1 = r.fma(r.mul(a0, b1, B), a1, b0, B)
            d2 = r.mul(a1, b1, B)
        if self.keys.relin is None:
            raise ValueError("this context has no relinearization key")
        return xp.stack([d0, d1], axis=-3), d2

    def mul_ct(self, a: Any, b: Any | None, level: int, rescale: bool = True) -> Any:
        """Tensor product and relinearization, then (by default) rescale.

        ``b=None`` squares ``a``.  Returns ``(..., 2, l, N)`` rescaled (``(..., 2, l+1, N)``
        with ``rescale=False``).  The rescale is fused with the key switch's ModDown:
        ``round(round((acc + P*d) / P) / q_l)`` is computed with one inverse NTT of the limbs
        ``P`` and ``q_l`` and one forward NTT of ``l`` limbs, bit-identical to a ModDown, an
        addition and a separate rescale (which would take ``2l + 1`` forward NTTs).
        """
        r = self.ring
        d01, d2 = self._tensor(a, b, level)
        acc = self.key_switch_acc(d2, self.keys.relin, level)
        if not rescale:
            return r.add(d01, r.divide_round_last(acc, self.key_basis(level)), self.basis(level))
        if level == 0:
            raise ValueError("cannot rescale a level-0 ciphertext: no prime left to divide by")
        return self.mod_down_rescale(acc, d01, level)

    def mod_down_rescale(self, acc: Any, d: Any, level: int) -> Any:
        """``round(round((acc + P*d) / P) / q_l)`` over ``q_0..q_(l-1)``, NTT form.

        ``acc``: ``(..., l+2, N)`` over ``q_0..q_l, P``; ``d``: ``(..., l+1, N)`` over
        ``q_0..q_l``.  With ``X = acc + P*d``, ``r_P`` the centred ``X mod P``,
        ``Z_l = (X_l - r_P) / P`` and ``r_l`` the centred ``Z_l mod q_l``, the result is
        ``(X_i - r_P - P*r_l) / (P*q_l)`` for every ``i < l`` (exact divisions).
        """
        r, xp = self.ring, self.xp
        B = self.basis(level)
        Bl = B[:-1]
        KB = self.key_basis(level)
        P = self.params.special_prime
        ql = self.params.primes[level]
        qB = r.moduli(B)
        X = r.add(acc[..., : level + 1, :], r.mul_scalar(d, [P % q for q in qB], B), B)
        rP = r.intt(xp.ascontiguousarray(acc[..., level + 1:, :]), (self.K,))          # (..., 1, N) coeff
        Xl = r.intt(xp.ascontiguousarray(X[..., level:, :]), (level,))                    # (..., 1, N) coeff
        liftP = r.lift_centered(rP, self.K, B)                                             # (..., l+1, N)
        Zl = r.mul_scalar(r.sub(Xl, xp.ascontiguousarray(liftP[..., level:, :]), (level,)), [pow(P, -1, ql)],
                          (level,))
        liftl = r.lift_centered(Zl, level, Bl)                                             # (..., l, N)
        T = r.add(liftP[..., :level, :], r.mul_scalar(liftl, [P % q for q in qB[:-1]], Bl), Bl)
        T = r.ntt(T, Bl)
        inv = [pow(P * ql, -1, q) for q in qB[:-1]]
        return r.mul_scalar(r.sub(X[..., :level, :], T, Bl), inv, Bl)

    def rescale(self, data: Any, level: int) -> Any:
        """Divide by ``q_level`` (rounded) and drop it: ``(..., 2, l, N)``."""
        if level == 0:
            raise ValueError("cannot rescale a level-0 ciphertext: no prime left to divide by "
                             "(use a longer coeff_mod_bits chain)")
        return self.ring.divide_round_last(data, self.basis(level))

    def mod_switch(self, data: Any, level: int, to_level: int) -> Any:
        """Drop primes ``q_(to_level+1) .. q_level`` (exact; the scale is unchanged)."""
        if to_level > level:
            raise ValueError(f"cannot switch a level-{level} ciphertext up to level {to_level}")
        if to_level == level:
            return data
        return self.xp.ascontiguousarray(data[..., : to_level + 1, :])

    # -- key switching -----------------------------------------------------------------
    def key_switch(self, d: Any, key: KeySwitchKey, level: int) -> Any:
        """``(k0, k1)`` with ``k0 + k1*s ~ d*s'`` for NTT-form ``d`` (``(..., l+1, N)``)."""
        acc = self.key_switch_acc(d, key, level)
        return self.ring.divide_round_last(acc, self.key_basis(level))  # ModDown: (..., 2, l+1, N)

    def key_switch_acc(self, d: Any, key: KeySwitchKey, level: int) -> Any:
        """ModUp and inner product with the key, before ModDown: ``(..., 2, l+2, N)`` over
        ``q_0..q_l, P`` (NTT form), ``~ P * d * s'`` when decrypted."""
        r, xp = self.ring, self.xp
        B = self.basis(level)
        KB = self.key_basis(level)
        c = r.intt(d, B)
        y = r.centre_shift(c, B)
        kl = key.for_level(level, self.L, xp)  # (l+1, 2, l+2, N)
        D = level + 1
        if self.batched_modup:
            # every digit at once: a few large kernel calls (what a GPU wants), at the price of
            # also transforming each digit modulo its own prime
            T = r.ntt(r.mod_up_shifted(y, B, KB), KB)  # (..., D, l+2, N)
            T = xp.moveaxis(T, -3, 0)[..., None, :, :]  # (D, ..., 1, l+2, N)
            return r.dot(T, kl, KB)
        T = xp.empty((D,) + d.shape[:-2] + (1, D + 1, self.N), xp.uint64)
        for j in range(D):
            # ModUp of digit j: centred [d]_{q_j} modulo the other primes of q_0..q_l, P, NTT;
            # modulo q_j itself it is d_j, already in NTT form
            others = KB[:j] + KB[j + 1:]
            t = r.lift_shifted(xp.ascontiguousarray(y[..., j:j + 1, :]), j, B, others)
            t = r.ntt(t, others)
            T[j, ..., 0, :j, :] = t[..., :j, :]
            T[j, ..., 0, j, :] = d[..., j, :]
            T[j, ..., 0, j + 1:, :] = t[..., j:, :]
        return r.dot(T, kl, KB)  # sum_j digit_j * key_j: (..., 2, l+2, N)

    # -- Galois ------------------------------------------------------------------------
    def galois_key(self, elt: int) -> KeySwitchKey | None:
        key = self.keys.galois.get(elt)
        if key is None and self._keygen_hook is not None:
            key = self._keygen_hook(elt)
        return key

    def apply_galois(self, data: Any, level: int, elt: int, key: KeySwitchKey) -> Any:
        r, xp = self.ring, self.xp
        B = self.basis(level)
        rot = r.automorphism(data, elt, True, B)
        ks = self.key_switch(xp.ascontiguousarray(rot[..., 1, :, :]), key, level)
        c0 = r.add(rot[..., 0, :, :], ks[..., 0, :, :], B)
        return xp.stack([c0, ks[..., 1, :, :]], axis=-3)

    def rotate(self, data: Any, level: int, step: int) -> Any:
        """Rotate the slots left by ``step`` (right for negative ``step``)."""
        slots = self.N // 2
        k = int(step) % slots
        if k == 0:
            return data.copy()
        elt = galois_element(k, self.N)
        key = self.galois_key(elt)
        if key is not None:
            return self.apply_galois(data, level, elt, key)
        # compose from power-of-two rotations
        steps = [1 << i for i in range(k.bit_length()) if k >> i & 1]
        keys = [(galois_element(s, self.N), self.galois_key(galois_element(s, self.N))) for s in steps]
        missing = [s for s, (_, kk) in zip(steps, keys) if kk is None]
        if missing:
            raise ValueError(
                f"no Galois key for a rotation by {k} (nor for the power-of-two steps {missing} it decomposes "
                f"into); generate them with ctx.generate_galois_keys() on the secret-key context "
                f"before creating the public context")
        for e, kk in keys:
            data = self.apply_galois(data, level, e, kk)
        return data

    def conjugate(self, data: Any, level: int) -> Any:
        elt = conjugation_element(self.N)
        key = self.galois_key(elt)
        if key is None:
            raise ValueError("no Galois key for conjugation; call ctx.generate_galois_keys(conjugate=True) "
                             "on the secret-key context")
        return self.apply_galois(data, level, elt, key)

    def sum_slots(self, data: Any, level: int) -> Any:
        """Every slot set to the sum of all slots (``log2(N/2)`` rotations and additions)."""
        B = self.basis(level)
        step = 1
        while step < self.N // 2:
            data = self.ring.add(data, self.rotate(data, level, step), B)
            step *= 2
        return data
