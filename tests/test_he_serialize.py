"""CKKS serialization: bit packing, ciphertexts, batches, seeded ciphertexts, public contexts."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from hecrypt.errors import DecryptionError, SerializationError
from hecrypt.he import CKKSContext, CKKSParameters
from hecrypt.he.serialize import pack_residues, unpack_residues


@pytest.fixture(scope="module")
def ctx():
    return CKKSContext(CKKSParameters(1024, [50, 30, 30, 50], 30, security=None))


@pytest.mark.parametrize("nbits", [1, 7, 17, 30, 31, 39, 40, 48, 50, 59, 60, 61, 64])
@pytest.mark.parametrize("n", [1, 3, 8, 1000])
def test_pack_roundtrip(rng, nbits, n):
    v = rng.integers(0, 2 ** nbits, n, dtype=np.uint64, endpoint=False) if nbits < 64 else \
        rng.integers(0, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    blob = pack_residues(v, nbits)
    assert len(blob) == -(-n * nbits // 8)
    assert np.array_equal(unpack_residues(blob, n, nbits), v)


def test_ciphertext_roundtrip_and_size(ctx, rng):
    pub = ctx.public_context()
    x = rng.uniform(-1, 1, ctx.slots)
    ct = pub.encrypt(x)
    blob = ct.to_bytes()
    n_res_bits = 2 * 1024 * (50 + 30 + 30)
    assert len(blob) == 56 + n_res_bits // 8
    back = ctx.ciphertext_from_bytes(blob)
    assert np.array_equal(back.data, ct.data) and back.level == ct.level and back.scale == ct.scale
    # a lower level is smaller, and the public context can load it too
    low = (ct * 0.5).to_bytes()
    assert len(low) < len(blob)
    assert np.abs(ctx.decrypt(pub.ciphertext_from_bytes(low)) - x * 0.5).max() < 1e-4


def test_seeded_symmetric_ciphertexts_are_half_size(ctx, rng):
    x = rng.uniform(-1, 1, ctx.slots)
    ct = ctx.encrypt(x, symmetric=True)
    full = ctx.encrypt(x).to_bytes()
    blob = ct.to_bytes()
    assert len(blob) == 56 + 32 + (len(full) - 56) // 2
    back = ctx.ciphertext_from_bytes(blob)
    assert np.array_equal(back.data, ct.data)
    # once modified it is no longer seeded
    assert len((ct + 1.0).to_bytes()) == len(full)
    X = rng.uniform(-1, 1, (3, 20))
    b = ctx.encrypt_batch(X, symmetric=True)
    bb = ctx.batch_from_bytes(b.to_bytes())
    assert np.array_equal(bb.data, b.data)
    assert np.abs(ctx.decrypt_batch(bb)[:, :20] - X).max() < 1e-6


def test_batch_roundtrip(ctx, rng):
    X = rng.uniform(-1, 1, (4, ctx.slots))
    b = ctx.public_context().encrypt_batch(X)
    back = ctx.batch_from_bytes(b.to_bytes())
    assert len(back) == 4 and np.array_equal(back.data, b.data)
    with pytest.raises(SerializationError, match="CiphertextBatch"):
        ctx.ciphertext_from_bytes(b.to_bytes())
    with pytest.raises(SerializationError, match="Ciphertext"):
        ctx.batch_from_bytes(b[0].to_bytes())


def test_other_key_or_params_are_refused(ctx, rng):
    x = rng.uniform(-1, 1, 10)
    blob = ctx.encrypt(x).to_bytes()
    other_key = CKKSContext(ctx.params)
    with pytest.raises(SerializationError, match="another key"):
        other_key.ciphertext_from_bytes(blob)
    other_params = CKKSContext(CKKSParameters(1024, [50, 30, 30, 50], 29, security=None))
    with pytest.raises(SerializationError, match="other CKKS parameters"):
        other_params.ciphertext_from_bytes(blob)


def test_malformed_input(ctx, rng):
    blob = ctx.encrypt(rng.uniform(-1, 1, 10)).to_bytes()
    bad = {
        "short": blob[:20],
        "truncated": blob[:-1],
        "trailing": blob + b"\0",
        "magic": b"XXXX" + blob[4:],
        "version": blob[:4] + struct.pack("<H", 9) + blob[6:],
        "level": blob[:8] + bytes([7]) + blob[9:],
        "flags": blob[:7] + bytes([0x80]) + blob[8:],
        "scale": blob[:16] + struct.pack("<d", float("nan")) + blob[24:],
        "scale<1": blob[:16] + struct.pack("<d", 0.5) + blob[24:],
        "scale>Q": blob[:16] + struct.pack("<d", 2.0 ** 200) + blob[24:],
        "lower level": blob[:8] + bytes([blob[8] - 1]) + blob[9:],
        "log2 N": blob[:9] + bytes([blob[9] + 1]) + blob[10:],
        "kind": blob[:6] + bytes([5]) + blob[7:],
        "count": blob[:12] + struct.pack("<I", 2) + blob[16:],
        "seeded flag": blob[:7] + bytes([1]) + blob[8:],
        "empty": b"",
    }
    for name, b in bad.items():
        with pytest.raises(SerializationError):
            ctx.ciphertext_from_bytes(b)
    # a residue >= q (all bits set in the first limb's first value)
    corrupt = bytearray(blob)
    corrupt[56:64] = b"\xff" * 8
    with pytest.raises(SerializationError, match="modulus"):
        ctx.ciphertext_from_bytes(bytes(corrupt))
    with pytest.raises(TypeError):
        ctx.ciphertext_from_bytes("not bytes")


def test_forged_batch_count_is_refused_before_allocating(ctx, rng):
    """A header claiming 2^32-1 rows must give a SerializationError, not a huge allocation."""
    blob = ctx.encrypt_batch(rng.uniform(-1, 1, (2, 8))).to_bytes()
    for count in (0, 3, 0xFFFFFFFF):
        with pytest.raises(SerializationError):
            ctx.batch_from_bytes(blob[:12] + struct.pack("<I", count) + blob[16:])
    sblob = ctx.encrypt_batch(rng.uniform(-1, 1, (2, 8)), symmetric=True).to_bytes()
    with pytest.raises(SerializationError, match="truncated"):
        ctx.batch_from_bytes(sblob[:12] + struct.pack("<I", 0xFFFFFFFF) + sblob[16:])


def test_public_context_roundtrip(ctx, rng):
    ctx.generate_galois_keys([1, 2])
    blob = ctx.public_context().to_bytes()
    pub = CKKSContext.from_bytes(blob)
    assert pub.is_public and pub.key_fingerprint == ctx.key_fingerprint and pub.params == ctx.params
    x = rng.uniform(-1, 1, ctx.slots)
    a = pub.encrypt(x)
    got = ctx.decrypt(ctx.ciphertext_from_bytes(pub.rotate(a * a, 3).to_bytes()))
    assert np.abs(got - np.roll(x * x, -3)).max() < 1e-4
    with pytest.raises(DecryptionError):
        pub.decrypt(a)
    head = 12 + len(ctx.params.to_bytes()) + 16
    for pos in (30, head + 5, len(blob) - 100):  # a prime; a public-key residue; a Galois key
        b = bytearray(blob)
        b[pos] ^= 1
        with pytest.raises(SerializationError):
            CKKSContext.from_bytes(bytes(b))
    with pytest.raises(SerializationError):
        CKKSContext.from_bytes(blob[:-5])
    with pytest.raises(SerializationError):
        CKKSContext.from_bytes(b"HECT" + blob[4:])
    # well-formed checksum over a bad field: unknown flags, a truncated key
    body = blob[:-32]
    for forged in (body[:6] + struct.pack("<H", 0x8001) + body[8:], body[:-8]):
        with pytest.raises(SerializationError):
            CKKSContext.from_bytes(forged + hashlib.sha256(forged).digest())
