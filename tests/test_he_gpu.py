"""CKKS on the GPU: the same seed gives bit-identical keys and ciphertexts on CPU and GPU.

Every integer step (ChaCha20 samples, NTT, RNS arithmetic, key switching, rescale) is
bit-identical across devices, so seeded contexts must agree exactly; only the floating-point
encoder FFT may differ, within its error bound (decrypted values are compared with a
tolerance).  Skipped without a CUDA GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from hecrypt.he import CKKSContext, CKKSParameters

pytestmark = pytest.mark.gpu


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


@pytest.mark.parametrize("n,bits", [(4096, [39, 31, 39]), (8192, [60, 40, 40, 60])])
def test_gpu_matches_cpu(rng, n, bits):
    p = CKKSParameters(n, bits, bits[1])
    cpu = CKKSContext(p, device="cpu", seed=77)
    gpu = CKKSContext(p, device="cuda", seed=77)
    assert cpu.key_fingerprint == gpu.key_fingerprint
    x, y = rng.uniform(-1, 1, (2, cpu.slots))
    ac, bc = cpu.encrypt(x), cpu.encrypt(y)
    ag, bg = gpu.encrypt(x), gpu.encrypt(y)
    # the second polynomial does not depend on the message: integer-only, so bit-identical
    assert np.array_equal(_host(ag.data[1]), ac.data[1])
    assert np.array_equal(_host(gpu.rotate(ag, 5).data[1]), cpu.rotate(ac, 5).data[1])
    # the encoder FFT may round differently in the last place; compare after the integer steps
    ops = {
        "add": (lambda a, b, c: a + b),
        "mul": (lambda a, b, c: a * b),
        "rotate": (lambda a, b, c: c.rotate(a, 3)),
        "scalar": (lambda a, b, c: a * 0.25),
    }
    for name, f in ops.items():
        rc, rg = f(ac, bc, cpu), f(ag, bg, gpu)
        assert rc.level == rg.level and rc.scale == rg.scale, name
        diff = np.abs(cpu.decrypt(rc) - gpu.decrypt(rg)).max()
        assert diff < 1e-6, name
    # ciphertext from the GPU decrypts on the CPU context and vice versa (same keys)
    blob = (ag * bg).to_bytes()
    assert np.abs(cpu.decrypt(cpu.ciphertext_from_bytes(blob)) - x * y).max() < 1e-5


def test_gpu_seeded_symmetric_encryption_is_identical(rng):
    p = CKKSParameters(4096, [39, 31, 39], 31)
    cpu = CKKSContext(p, device="cpu", seed=5)
    gpu = CKKSContext(p, device="cuda", seed=5)
    x = rng.uniform(-1, 1, 100)
    c, g = cpu.encrypt(x, symmetric=True), gpu.encrypt(x, symmetric=True)
    # same seeds -> same uniform half, bit for bit
    assert np.array_equal(_host(c.data[1]), _host(g.data[1]))
    assert c.to_bytes()[:56] == g.to_bytes()[:56]


def test_gpu_batch_sum(rng):
    ctx = CKKSContext(CKKSParameters(8192, [60, 40, 40, 60], 40), device="cuda")
    X = rng.uniform(-1, 1, (16, ctx.slots))
    b = ctx.public_context().encrypt_batch(X)
    assert np.abs(ctx.decrypt(b.sum()) - X.sum(axis=0)).max() < 1e-5
    assert np.abs(ctx.decrypt_batch(b * b) - X * X).max() < 1e-5
