"""Compact, versioned serialization of CKKS ciphertexts and public contexts (no pickle).

Ciphertext / batch blob (little-endian)::

    offset size  field
    0      4     magic b"HECT"
    4      2     format version (1)
    6      1     kind: 0 = Ciphertext, 1 = CiphertextBatch
    7      1     flags: bit 0 = seeded (second polynomial expanded from the seed)
    8      1     level l
    9      1     log2 N
    10     2     reserved (0)
    12     4     count (rows; 1 for a Ciphertext)
    16     8     scale (float64)
    24     16    parameter fingerprint (CKKSParameters.fingerprint)
    40     16    key fingerprint (CKKSContext.key_fingerprint)
    56     32    seed (only if seeded)
    ...          residues, bit-packed: for each prime q_i (i = 0..l), every residue of that limb
                 (rows x polynomials x N, row-major) in q_i.bit_length() bits, LSB first

A fresh symmetric-key ciphertext (``ctx.encrypt(..., symmetric=True)``) stores only its first
polynomial plus the 32-byte seed of the second, about half the size.  Residues are NTT-form
values in ``[0, q_i)``; N=8192 at level 2 ([60, 40, 40]) takes 2 x 8192 x 140 bits = 287 KB
(143 KB seeded).

Loading checks everything and raises :class:`~hecrypt.errors.SerializationError` with a
message naming the problem: wrong magic/version/kind, truncated or trailing data, other
parameters, other key, level or scale out of range, residues ``>= q``.

Public-context blob: magic ``b"HECK"``, version, the parameter blob, the key fingerprint,
then the public key, the relinearization key and each Galois key (element + key), all
bit-packed the same way, and a SHA-256 checksum of everything before it (corruption, not
authentication); the fingerprint is recomputed from the public key on load.
"""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np

from ..errors import SerializationError

__all__ = ["pack_residues", "unpack_residues", "dump_ciphertext", "dump_batch", "load_ciphertext",
           "dump_public_context", "load_public_context", "VERSION"]

VERSION = 1
_CT_MAGIC = b"HECT"
_CTX_MAGIC = b"HECK"
_CT_HEAD = struct.Struct("<4sHBBBBHId16s16s")
_SEEDED = 1


# --------------------------------------------------------------------------------------
# bit packing
# --------------------------------------------------------------------------------------
def _group(bits: int) -> tuple[int, int, int]:
    g = 8 // math.gcd(bits, 8)  # values per group: g*bits is a whole number of bytes
    nbytes = g * bits // 8
    words = -(-g * bits // 64)
    return g, nbytes, words


def pack_residues(values: np.ndarray, bits: int) -> bytes:
    """Pack uint64 ``values`` (each ``< 2^bits``, ``1 <= bits <= 64``) into ``ceil(n*bits/8)`` bytes."""
    v = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    n = v.size
    if bits % 8 == 0:
        return v.view(np.uint8).reshape(n, 8)[:, : bits // 8].tobytes()
    g, nbytes, nwords = _group(bits)
    pad = (-n) % g
    if pad:
        v = np.concatenate([v, np.zeros(pad, np.uint64)])
    grp = v.reshape(-1, g)
    words = np.zeros((grp.shape[0], nwords + 1), np.uint64)
    for k in range(g):
        off = k * bits
        w, s = divmod(off, 64)
        words[:, w] |= grp[:, k] << np.uint64(s)
        if s + bits > 64:
            words[:, w + 1] |= grp[:, k] >> np.uint64(64 - s)
    out = words.view(np.uint8).reshape(grp.shape[0], -1)[:, :nbytes].reshape(-1)
    total = -(-n * bits // 8)
    return out[:total].tobytes()


def unpack_residues(data: bytes | memoryview, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_residues`: ``n`` values of ``bits`` bits (uint64)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits % 8 == 0:
        b = bits // 8
        buf = np.zeros((n, 8), np.uint8)
        buf[:, :b] = raw.reshape(n, b)
        return buf.view(np.uint64).reshape(n)
    g, nbytes, nwords = _group(bits)
    ngroups = -(-n // g)
    full = np.zeros(ngroups * nbytes, np.uint8)
    full[: raw.size] = raw
    words = np.zeros((ngroups, (nwords + 1) * 8), np.uint8)
    words[:, :nbytes] = full.reshape(ngroups, nbytes)
    words = words.view(np.uint64)
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((ngroups, g), np.uint64)
    for k in range(g):
        w, s = divmod(k * bits, 64)
        x = words[:, w] >> np.uint64(s)
        if s + bits > 64:
            x = x | (words[:, w + 1] << np.uint64(64 - s))
        out[:, k] = x & mask
    return out.reshape(-1)[:n]


def _packed_size(n: int, bits: int) -> int:
    return -(-n * bits // 8)


def _pack_limbs(arr: np.ndarray, moduli) -> bytes:
    """``arr`` ``(..., L, N)`` -> limb-major packed bytes."""
    parts = []
    for i, q in enumerate(moduli):
        parts.append(pack_residues(arr[..., i, :], int(q).bit_length()))
    return b"".join(parts)


def _unpack_limbs(view: memoryview, pos: int, lead: tuple, moduli, N: int, what: str) -> tuple[np.ndarray, int]:
    L = len(moduli)
    count = int(np.prod([int(x) for x in lead], dtype=object)) * N
    need = sum(_packed_size(count, int(q).bit_length()) for q in moduli)
    if pos + need > len(view):  # checked before allocating: a forged count cannot exhaust memory
        raise SerializationError(f"truncated {what}: {need} bytes of residues expected, "
                                 f"{max(len(view) - pos, 0)} present")
    out = np.empty(lead + (L, N), np.uint64)
    for i, q in enumerate(moduli):
        b = int(q).bit_length()
        size = _packed_size(count, b)
        if pos + size > len(view):
            raise SerializationError(f"truncated {what}: residue data ends early")
        vals = unpack_residues(view[pos:pos + size], count, b)
        if vals.size and int(vals.max()) >= q:
            raise SerializationError(f"corrupted {what}: a residue is >= its modulus q_{i}")
        out[..., i, :] = vals.reshape(lead + (N,))
        pos += size
    return out, pos


# --------------------------------------------------------------------------------------
# ciphertexts
# --------------------------------------------------------------------------------------
def _dump(ct, kind: int) -> bytes:
    ev = ct._ev
    data = ev.backend.to_numpy(ct.data)
    count = data.shape[0] if kind == 1 else 1
    seeded = ct._seed is not None
    head = _CT_HEAD.pack(_CT_MAGIC, VERSION, kind, _SEEDED if seeded else 0, ct.level,
                         ev.N.bit_length() - 1, 0, count, ct.scale, bytes.fromhex(ev.params.fingerprint),
                         ev.keys.fingerprint)
    moduli = ev.ring.moduli(ev.basis(ct.level))
    if seeded:
        return head + ct._seed + _pack_limbs(data[..., 0:1, :, :], moduli)
    return head + _pack_limbs(data, moduli)


def dump_ciphertext(ct) -> bytes:
    return _dump(ct, 0)


def dump_batch(batch) -> bytes:
    return _dump(batch, 1)


def load_ciphertext(ctx, blob: bytes, batch: bool):
    """Parse a ciphertext blob for ``ctx`` (see the module docstring for the checks)."""
    from .ciphertext import Ciphertext, CiphertextBatch
    from .context import seeded_uniform

    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(blob).__name__}")
    view = memoryview(blob).cast("B")
    if len(view) < _CT_HEAD.size:
        raise SerializationError(f"not a hecrypt ciphertext: {len(view)} bytes is shorter than the header")
    magic, ver, kind, flags, level, logn, _res, count, scale, pfp, kfp = _CT_HEAD.unpack_from(view, 0)
    if magic != _CT_MAGIC:
        raise SerializationError("not a hecrypt CKKS ciphertext (bad magic)")
    if ver != VERSION:
        raise SerializationError(f"unsupported ciphertext format version {ver} (this hecrypt reads {VERSION})")
    want = 1 if batch else 0
    if kind != want:
        names = {0: "Ciphertext", 1: "CiphertextBatch"}
        raise SerializationError(f"blob holds a {names.get(kind, f'kind {kind}')}, expected a {names[want]} "
                                 f"(use {'batch_from_bytes' if kind == 1 else 'ciphertext_from_bytes'})")
    ev = ctx._ev
    params = ev.params
    if pfp != bytes.fromhex(params.fingerprint):
        raise SerializationError(f"ciphertext was made with other CKKS parameters (fingerprint {pfp.hex()[:8]}, "
                                 f"this context {params.fingerprint[:8]})")
    if kfp != ev.keys.fingerprint:
        raise SerializationError(f"ciphertext is under another key (key fingerprint {kfp.hex()[:8]}, this context "
                                 f"{ev.keys.fingerprint_hex[:8]})")
    if (1 << logn) != ev.N:
        raise SerializationError("ring degree in the header does not match the parameters")
    if level > ev.L:
        raise SerializationError(f"level {level} exceeds the parameters' maximum {ev.L}")
    if flags & ~_SEEDED:
        raise SerializationError(f"unknown flags {flags:#x}")
    if not (math.isfinite(scale) and scale >= 1.0) or math.log2(scale) >= ev.level_bits(level):
        raise SerializationError(f"invalid scale {scale} for a level-{level} ciphertext")
    if count < 1 or (not batch and count != 1):
        raise SerializationError(f"invalid ciphertext count {count}")
    pos = _CT_HEAD.size
    seeded = bool(flags & _SEEDED)
    seed = None
    if seeded:
        if len(view) < pos + 32:
            raise SerializationError("truncated ciphertext: seed missing")
        seed = bytes(view[pos:pos + 32])
        pos += 32
    lead = (count,) if batch else ()
    moduli = ev.ring.moduli(ev.basis(level))
    npoly = 1 if seeded else 2
    arr, pos = _unpack_limbs(view, pos, lead + (npoly,), moduli, ev.N, "ciphertext")
    if pos != len(view):
        raise SerializationError(f"{len(view) - pos} unexpected trailing bytes after the ciphertext")
    xp = ev.xp
    arr = xp.asarray(arr)
    if seeded:
        a = seeded_uniform(seed, ev.ring, ev.basis(level), lead + (ev.N,), ev.device)
        arr = xp.concatenate([arr, a[..., None, :, :]], axis=-3)
    cls = CiphertextBatch if batch else Ciphertext
    return cls(ev, xp.ascontiguousarray(arr), level, scale, seed=seed)


# --------------------------------------------------------------------------------------
# public contexts
# --------------------------------------------------------------------------------------
_CTX_HEAD = struct.Struct("<4sHHI")


def dump_public_context(ctx, galois: bool = True) -> bytes:
    ev = ctx._ev
    keys = ev.keys
    to_np = ev.backend.to_numpy
    pblob = ev.params.to_bytes()
    key_mod = ev.ring.moduli(ev.key_basis(ev.L))
    gal = sorted(keys.galois.items()) if galois else []
    flags = 1 if keys.relin is not None else 0
    parts = [_CTX_HEAD.pack(_CTX_MAGIC, VERSION, flags, len(pblob)), pblob, keys.fingerprint,
             _pack_limbs(to_np(keys.pk), key_mod)]
    if keys.relin is not None:
        parts.append(_pack_limbs(to_np(keys.relin.data), key_mod))
    parts.append(struct.pack("<I", len(gal)))
    for elt, k in gal:
        parts.append(struct.pack("<I", elt))
        parts.append(_pack_limbs(to_np(k.data), key_mod))
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def load_public_context(cls, blob: bytes, device: str | None):
    from ..ring import StreamFactory
    from .keys import KeySwitchKey, PublicKeys, key_fingerprint
    from .params import CKKSParameters

    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(blob).__name__}")
    view = memoryview(blob).cast("B")
    if len(view) < _CTX_HEAD.size + 32:
        raise SerializationError("not a hecrypt CKKS context: too short")
    magic, ver, flags, plen = _CTX_HEAD.unpack_from(view, 0)
    if magic != _CTX_MAGIC:
        raise SerializationError("not a hecrypt CKKS public context (bad magic)")
    if ver != VERSION:
        raise SerializationError(f"unsupported context format version {ver}")
    if flags & ~1:
        raise SerializationError(f"unknown CKKS context flags {flags:#x}")
    if hashlib.sha256(view[:-32]).digest() != bytes(view[-32:]):
        raise SerializationError("CKKS context checksum mismatch (truncated or corrupted)")
    view = view[:-32]
    pos = _CTX_HEAD.size
    if len(view) < pos + plen + 16:
        raise SerializationError("truncated CKKS context")
    params = CKKSParameters.from_bytes(bytes(view[pos:pos + plen]))
    pos += plen
    fp = bytes(view[pos:pos + 16])
    pos += 16
    N = params.poly_degree
    L = params.max_level
    key_mod = params.primes
    pk, pos = _unpack_limbs(view, pos, (2,), key_mod, N, "public key")
    if key_fingerprint(params, pk) != fp:
        raise SerializationError("public key does not match its fingerprint (corrupted context)")
    relin = None
    if flags & 1:
        r, pos = _unpack_limbs(view, pos, (L + 1, 2), key_mod, N, "relinearization key")
        relin = r
    if len(view) < pos + 4:
        raise SerializationError("truncated CKKS context (Galois key count)")
    (ng,) = struct.unpack_from("<I", view, pos)
    pos += 4
    gal = {}
    for _ in range(ng):
        if len(view) < pos + 4:
            raise SerializationError("truncated CKKS context (Galois element)")
        (elt,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if elt % 2 == 0 or not 0 < elt < 2 * N:
            raise SerializationError(f"invalid Galois element {elt}")
        k, pos = _unpack_limbs(view, pos, (L + 1, 2), key_mod, N, "Galois key")
        gal[elt] = k
    if pos != len(view):
        raise SerializationError(f"{len(view) - pos} unexpected trailing bytes after the context")
    ctx = cls.__new__(cls)
    from ..backend import get_backend, resolve_device

    dev = resolve_device(device)
    xp = get_backend(dev).xp
    keys = PublicKeys(params, xp.asarray(pk), KeySwitchKey(xp.asarray(relin)) if relin is not None else None,
                      {e: KeySwitchKey(xp.asarray(k)) for e, k in gal.items()}, fp)
    cls.__init__(ctx, params, dev, _public=(keys, StreamFactory(device=dev)))
    return ctx
