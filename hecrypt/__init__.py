"""hecrypt: GPU-accelerated cryptographic kernels for privacy-preserving machine learning.

The public API is curated here; layers (imports flow one way):
``backend`` <- ``ring`` <- ``smpc`` / ``he`` <- ``ml`` <- ``cli``.
Importing hecrypt compiles nothing and touches no GPU; the ``smpc``, ``he`` and ``ml``
subpackages (and the names they export below) are imported on first use.

Example::

    >>> import numpy as np, hecrypt
    >>> ctx = hecrypt.SMPCContext(parties=("alice", "bob"))
    >>> x = ctx.share(np.array([1.5, -2.0]), owner="alice")
    >>> np.round((x * 2.0).reveal(), 3).tolist()
    [3.0, -4.0]
"""

from __future__ import annotations

import importlib
from typing import Any

from . import errors
from ._version import __version__
from .backend import get_backend, resolve_device
from .ring import DEFAULT_FRAC_BITS, FixedPoint, Ring, Stream, Z2_32, Z2_64, Zq

_LAZY = {
    "smpc": ("hecrypt.smpc", None),
    "he": ("hecrypt.he", None),
    "ml": ("hecrypt.ml", None),
    "SMPCContext": ("hecrypt.smpc", "SMPCContext"),
    "SharedTensor": ("hecrypt.smpc", "SharedTensor"),
    "CKKSParameters": ("hecrypt.he", "CKKSParameters"),
    "CKKSContext": ("hecrypt.he", "CKKSContext"),
    "Ciphertext": ("hecrypt.he", "Ciphertext"),
    "CiphertextBatch": ("hecrypt.he", "CiphertextBatch"),
    "ReservoirTrainer": ("hecrypt.ml", "ReservoirTrainer"),
    "SecureAggregator": ("hecrypt.ml", "SecureAggregator"),
}

__all__ = [
    "__version__",
    "errors",
    "get_backend",
    "resolve_device",
    "Ring",
    "Z2_64",
    "Z2_32",
    "Zq",
    "FixedPoint",
    "DEFAULT_FRAC_BITS",
    "Stream",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hecrypt' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
