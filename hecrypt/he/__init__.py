"""CKKS homomorphic encryption (RNS variant) on the CPU (Numba) or a CUDA GPU.

Layer: imports :mod:`hecrypt.ring` (CSPRNG) and :mod:`hecrypt.backend` (NTT/RNS kernels via
``hecrypt.backend.ntt.he_ops``); never CuPy or Numba directly.  See docs/he.md.

Example::

    from hecrypt.he import CKKSParameters, CKKSContext
    ctx = CKKSContext(CKKSParameters.preset("n8192"))
    pub = ctx.public_context()
    ct = pub.encrypt([0.5, -0.25]) + pub.encrypt([0.25, 0.25])
    ctx.decrypt(ct)[:2]        # ~ [0.75, 0.0]
"""

from .ciphertext import Ciphertext, CiphertextBatch
from .context import CKKSContext
from .params import HE_STANDARD_128, PRESETS, CKKSParameters

__all__ = ["CKKSParameters", "CKKSContext", "Ciphertext", "CiphertextBatch", "PRESETS", "HE_STANDARD_128"]
