"""CKKS contexts: key generation, encryption, decryption, public-only copies.

``CKKSContext(params)`` generates a secret key, the public key and the relinearization key
(Galois keys are made on demand, or up front with :meth:`CKKSContext.generate_galois_keys`).
:meth:`CKKSContext.public_context` returns a context holding only public material: it can
encrypt and evaluate (add, multiply, rotate with the Galois keys that exist) but
:meth:`decrypt` raises :class:`~hecrypt.errors.DecryptionError`.

All randomness (secret key, errors, encryption masks, uniform key parts) comes from ChaCha20
streams (:class:`hecrypt.ring.StreamFactory`) keyed from ``os.urandom``; ``seed=`` derives the
key from a seed instead (reproducible, **tests only**).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import resolve_device
from ..errors import ContextMismatchError, DecryptionError
from ..ring import Stream, StreamFactory
from . import sampling
from .ciphertext import Ciphertext, CiphertextBatch, _CipherBase
from .evaluator import Evaluator
from .keys import (KeyGenerator, KeySwitchKey, PublicKeys, SecretKey, conjugation_element, galois_element,
                   key_fingerprint)
from .params import CKKSParameters

__all__ = ["CKKSContext"]

_ENC_CHUNK = 64  # rows per public-key encryption pass in encrypt_batch


class CKKSContext:
    """Keys and operations for one CKKS key pair.

    Parameters
    ----------
    params:
        :class:`CKKSParameters` or a preset name (``"n8192"`` ...).
    device:
        ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None`` (``$HECRYPT_DEVICE``, default auto).
    seed:
        Derive all randomness from this seed (reproducible; tests only, never production).
    """

    def __init__(self, params: CKKSParameters | str, device: str | None = None, seed: Any = None,
                 *, _public: tuple | None = None):
        if isinstance(params, str):
            params = CKKSParameters.preset(params)
        if not isinstance(params, CKKSParameters):
            raise TypeError(f"params must be CKKSParameters or a preset name, got {type(params).__name__}")
        self._params = params
        self._device = resolve_device(device)
        self._sk: SecretKey | None = None
        if _public is not None:  # public-only copy or deserialized public context
            keys, streams = _public
            self._keys = keys
            self._streams = streams
            self._ev = Evaluator(params, self._device, keys, streams)
            return
        self._streams = StreamFactory(seed, label="hecrypt/ckks/context", device=self._device)
        self._seed = seed
        self._n_public = 0
        self._keys = PublicKeys(params, None, None, {}, b"")
        self._ev = Evaluator(params, self._device, self._keys, self._streams, keygen_hook=self._make_galois_key)
        kg = KeyGenerator(params, self._ev.ring, self._streams.new_stream(self._device))
        self._kg = kg
        sk = kg.secret_key()
        self._keys.pk = kg.public_key(sk)
        self._keys.fingerprint = key_fingerprint(params, self._ev.backend.to_numpy(self._keys.pk))
        self._keys.relin = kg.relin_key(sk)
        self._sk = sk

    # -- description -------------------------------------------------------------------
    @property
    def params(self) -> CKKSParameters:
        return self._params

    @property
    def device(self) -> str:
        return self._device

    @property
    def slots(self) -> int:
        return self._params.slots

    @property
    def max_level(self) -> int:
        return self._params.max_level

    @property
    def scale(self) -> float:
        return self._params.scale

    @property
    def key_fingerprint(self) -> str:
        """32 hex digits identifying the public key (and the parameters)."""
        return self._keys.fingerprint_hex

    @property
    def is_public(self) -> bool:
        """True if this context holds no secret key (cannot decrypt)."""
        return self._sk is None

    @property
    def galois_steps(self) -> list[int]:
        """Rotation steps (left) for which a Galois key exists (conjugation not listed)."""
        inv = {galois_element(k, self._params.poly_degree): k for k in range(1, self.slots)}
        return sorted(inv[g] for g in self._keys.galois if g in inv)

    def __repr__(self) -> str:
        kind = "public-only" if self.is_public else "secret"
        return (f"CKKSContext({kind}, N={self._params.poly_degree}, bits={list(self._params.coeff_mod_bits)}, "
                f"scale=2^{self._params.scale_bits}, device={self._device}, key={self.key_fingerprint[:8]})")

    def __reduce__(self):
        raise TypeError("CKKS contexts are not picklable; send pub.to_bytes() for the public material")

    # -- keys --------------------------------------------------------------------------
    def _require_secret(self, what: str) -> SecretKey:
        if self._sk is None:
            raise DecryptionError(f"this is a public-only context (no secret key): it cannot {what}")
        return self._sk

    def _make_galois_key(self, elt: int) -> KeySwitchKey:
        sk = self._require_secret("generate Galois keys")
        key = self._kg.galois_key(sk, elt)
        self._keys.galois[elt] = key
        return key

    def generate_galois_keys(self, steps=None, *, conjugate: bool = False) -> None:
        """Make Galois keys for the rotation ``steps`` (default: every power of two below
        ``N/2``, enough for any rotation and for :meth:`sum_slots`) and optionally conjugation.

        Each key is ``(L+1) * 2 * (L+2) * N`` words (1.5 MiB for ``n8192``)."""
        self._require_secret("generate Galois keys")
        if steps is None:
            steps = [1 << i for i in range(int(math.log2(self.slots)))]
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
                raise TypeError(f"rotation steps must be ints, got {type(s).__name__}")
            if int(s) % self.slots == 0:
                continue
            elt = galois_element(int(s), self._params.poly_degree)
            if elt not in self._keys.galois:
                self._make_galois_key(elt)
        if conjugate:
            elt = conjugation_element(self._params.poly_degree)
            if elt not in self._keys.galois:
                self._make_galois_key(elt)

    def public_context(self) -> "CKKSContext":
        """A context with the same public key, relinearization and Galois keys and no secret key.

        It shares the key store with this context in-process (Galois keys generated here later
        become usable there); its encryption randomness is an independent stream.
        """
        if self._sk is None:
            return self
        if self._seed is not None:
            self._n_public += 1
            streams = StreamFactory(self._seed, label=f"hecrypt/ckks/public/{self._n_public}", device=self._device)
        else:
            streams = StreamFactory(device=self._device)
        return CKKSContext(self._params, self._device, _public=(self._keys, streams))

    # -- encryption --------------------------------------------------------------------
    def _check_values(self, values: Any, ndim: int) -> Any:
        xp = self._ev.xp
        v = values if isinstance(values, np.ndarray) else (values if type(values).__module__.startswith("cupy")
                                                           else np.asarray(values))
        if v.ndim != ndim:
            what = "a 1-D vector" if ndim == 1 else "a 2-D array (one row per ciphertext)"
            raise ValueError(f"expected {what}, got shape {v.shape}")
        return xp.asarray(v)

    def encrypt(self, values: Any, *, level: int | None = None, scale: float | None = None,
                symmetric: bool = False) -> Ciphertext:
        """Encrypt up to ``slots`` real (or complex) values.

        The scale defaults to the level's canonical scale (``2^scale_bits`` at the top level).
        Public-key encryption by default (any context).  ``symmetric=True`` uses the secret key
        (secret-key context only): the ciphertext's second half is expanded from a 32-byte
        seed, so until it is modified ``to_bytes()`` is about half the size.
        """
        ev = self._ev
        level = ev.check_level(level)
        scale = ev.check_scale(scale, level)
        v = self._check_values(values, 1)
        if symmetric:
            data, seed = self._encrypt_sk(v, level, scale)
            return Ciphertext(ev, data, level, scale, seed=seed)
        return Ciphertext(ev, ev.encrypt_pk(v, level, scale), level, scale)

    def encrypt_batch(self, matrix: Any, *, level: int | None = None, scale: float | None = None,
                      symmetric: bool = False) -> CiphertextBatch:
        """Encrypt each row of a 2-D array (``(B, <= slots)``) into one :class:`CiphertextBatch`."""
        ev = self._ev
        level = ev.check_level(level)
        scale = ev.check_scale(scale, level)
        v = self._check_values(matrix, 2)
        if symmetric:
            data, seed = self._encrypt_sk(v, level, scale)
            return CiphertextBatch(ev, data, level, scale, seed=seed)
        if v.shape[0] <= _ENC_CHUNK:
            return CiphertextBatch(ev, ev.encrypt_pk(v, level, scale), level, scale)
        # bounded temporaries: ~3*(l+2)*N words per row while a chunk is encrypted
        out = ev.xp.empty((v.shape[0], 2, level + 1, ev.N), ev.xp.uint64)
        for i in range(0, v.shape[0], _ENC_CHUNK):
            out[i:i + _ENC_CHUNK] = ev.encrypt_pk(v[i:i + _ENC_CHUNK], level, scale)
        return CiphertextBatch(ev, out, level, scale)

    def _encrypt_sk(self, values: Any, level: int, scale: float):
        sk = self._require_secret("encrypt with the secret key (use public-key encryption)")
        ev = self._ev
        r, xp = ev.ring, ev.xp
        B = ev.basis(level)
        m = ev.encoder.encode(values, scale)
        lead = m.shape[:-1]
        stream = self._streams.new_stream(self._device)
        e = sampling.gaussian(stream, lead + (ev.N,))
        seed = stream.random_bytes(32)
        a = seeded_uniform(seed, r, B, lead + (ev.N,), self._device)
        x = r.ntt(r.int_to_rns(m + e, B), B)
        c0 = r.sub(x, r.mul(a, xp.ascontiguousarray(sk.ntt[: level + 1]), B), B)
        return xp.stack([c0, a], axis=-3), seed

    # -- decryption --------------------------------------------------------------------
    def decrypt(self, ct: Ciphertext, *, complex: bool = False, flood_bits: float | None = None) -> np.ndarray:
        """Decrypt to a numpy array of ``slots`` values (float64, or complex128 if asked).

        ``flood_bits`` (in ``[0, 60]``): add fresh noise to every coefficient before decoding,
        a Gaussian of standard deviation ``2^flood_bits`` rounded to integers (Box-Muller on
        53-bit uniforms from the CSPRNG; tails cut at about 8.5 sigma; for ``flood_bits``
        above ~45 the lowest bits of each sample are zero) -- noise flooding, against the
        IND-CPA-D key-recovery attack of Li and Micciancio when the result is given to
        others; see docs/he.md.  The real slot error grows to
        ``~2^flood_bits * sqrt(N/2) / scale``.
        """
        if not isinstance(ct, Ciphertext):
            raise TypeError(f"decrypt takes a Ciphertext (use decrypt_batch for batches), got {type(ct).__name__}")
        return self._decrypt(ct, complex, flood_bits)

    def decrypt_batch(self, batch: CiphertextBatch, *, complex: bool = False,
                      flood_bits: float | None = None) -> np.ndarray:
        """Decrypt every row: ``(B, slots)`` numpy array."""
        if not isinstance(batch, CiphertextBatch):
            raise TypeError(f"decrypt_batch takes a CiphertextBatch, got {type(batch).__name__}")
        return self._decrypt(batch, complex, flood_bits)

    def _own(self, ct: _CipherBase) -> None:
        if ct._ev.keys is not self._keys and ct._ev.keys.fingerprint != self._keys.fingerprint:
            raise ContextMismatchError(
                f"ciphertext under key {ct.key_fingerprint[:8]} cannot be decrypted with key {self.key_fingerprint[:8]}")
        if ct._ev.device != self._device:
            raise ContextMismatchError(f"ciphertext on {ct._ev.device}, context on {self._device}")

    def _decrypt(self, ct: _CipherBase, want_complex: bool, flood_bits: float | None) -> np.ndarray:
        sk = self._require_secret("decrypt")
        self._own(ct)
        ev = self._ev
        r, xp = ev.ring, ev.xp
        lvl = ct.level
        B = ev.basis(lvl)
        d = ct.data
        m = r.fma(d[..., 0, :, :], d[..., 1, :, :], xp.ascontiguousarray(sk.ntt[: lvl + 1]), B)
        coeffs = r.to_float(r.intt(m, B), B)
        if flood_bits is not None:
            coeffs = coeffs + self._flood(coeffs.shape, float(flood_bits))
        vals = ev.encoder.decode(coeffs, ct.scale)
        out = vals if want_complex else vals.real
        return ev.backend.to_numpy(out)

    def noise_bits(self, ct: Ciphertext, expected: Any) -> float:
        """``log2`` of the largest coefficient error of ``ct`` against the slot values it should
        hold (``expected``, encoded at ``ct``'s scale): the quantity noise flooding must hide.

        Run a computation on test inputs whose result you know to choose ``flood_bits``
        (docs/he.md); secret-key contexts only.
        """
        sk = self._require_secret("measure noise")
        if not isinstance(ct, Ciphertext):
            raise TypeError(f"noise_bits takes a Ciphertext (index a batch first), got {type(ct).__name__}")
        self._own(ct)
        ev = self._ev
        r, xp = ev.ring, ev.xp
        B = ev.basis(ct.level)
        m = r.fma(ct.data[0], ct.data[1], xp.ascontiguousarray(sk.ntt[: ct.level + 1]), B)
        coeffs = r.to_float(r.intt(m, B), B)
        want = ev.encoder.encode(self._check_values(expected, 1), ct.scale)
        err = float(xp.abs(coeffs - want.astype(xp.float64)).max())
        return math.log2(err) if err > 0 else 0.0

    def _flood(self, shape, bits: float) -> Any:
        """Rounded (continuous) Gaussian of standard deviation ``2^bits`` from the CSPRNG
        (Box-Muller on 53-bit uniforms): float64 integers, ``|z| <= sqrt(106 ln 2) * 2^bits``."""
        if not 0 <= bits <= 60:
            raise ValueError("flood_bits must be in [0, 60]")
        xp = self._ev.xp
        n = int(np.prod(shape))
        stream = self._streams.new_stream(self._device)
        w = stream.words(4 * n).view(xp.uint64).reshape(2, n) >> xp.uint64(11)
        u1 = (w[0].astype(xp.float64) + 1.0) * 2.0 ** -53  # (0, 1]
        u2 = w[1].astype(xp.float64) * 2.0 ** -53
        z = xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2 * math.pi * u2)
        return xp.rint(z * 2.0 ** bits).reshape(shape)

    # -- ops as context methods (the API shape of TenSEAL/SEAL evaluators) ---------------
    def _mine(self, ct: _CipherBase) -> _CipherBase:
        """Rebind ``ct`` to this context's evaluator (same keys), for key generation on demand."""
        if not isinstance(ct, _CipherBase):
            raise TypeError(f"expected a ciphertext, got {type(ct).__name__}")
        self._own(ct)
        if ct._ev is self._ev:
            return ct
        return type(ct)(self._ev, ct.data, ct.level, ct.scale)

    def rotate(self, ct: Any, step: int):
        """Slots rotated left by ``step`` (right if negative); a secret-key context makes the
        Galois key on first use, a public one needs it to exist."""
        return self._mine(ct).rotate(step)

    def conjugate(self, ct: Any):
        return self._mine(ct).conjugate()

    def sum_slots(self, ct: Any):
        return self._mine(ct).sum_slots()

    def dot(self, a: Any, b: Any):
        return self._mine(a).dot(b)

    def multiply(self, a: Any, b: Any, *, rescale: bool = True):
        return self._mine(a).multiply(b, rescale=rescale)

    def rescale(self, ct: Any):
        return self._mine(ct).rescale()

    def mod_switch_to(self, ct: Any, level: int):
        return self._mine(ct).mod_switch_to(level)

    # -- serialization -----------------------------------------------------------------
    def ciphertext_from_bytes(self, blob: bytes) -> Ciphertext:
        """Load a ciphertext made by :meth:`Ciphertext.to_bytes` under this context's keys;
        anything else raises :class:`~hecrypt.errors.SerializationError`."""
        from .serialize import load_ciphertext

        return load_ciphertext(self, blob, batch=False)

    def batch_from_bytes(self, blob: bytes) -> CiphertextBatch:
        from .serialize import load_ciphertext

        return load_ciphertext(self, blob, batch=True)

    def to_bytes(self, *, galois: bool = True) -> bytes:
        """Public material (parameters, public, relinearization and Galois keys), never the
        secret key: load it with :meth:`CKKSContext.from_bytes` to get a public-only context."""
        from .serialize import dump_public_context

        return dump_public_context(self, galois=galois)

    @classmethod
    def from_bytes(cls, blob: bytes, device: str | None = None) -> "CKKSContext":
        """A public-only context from :meth:`to_bytes` output."""
        from .serialize import load_public_context

        return load_public_context(cls, blob, device)


def seeded_uniform(seed: bytes, ring, basis, shape, device: str) -> Any:
    """Uniform residues ``(*shape[:-1], len(basis), N)`` expanded from a public 32-byte seed
    (the ``a`` half of a seeded symmetric ciphertext; identical on CPU and GPU)."""
    stream = Stream(bytes(seed), 0, device=device)
    return sampling.uniform_rns(stream, ring.moduli(basis), shape)
