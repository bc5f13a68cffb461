"""Secure multiparty computation on additively secret-shared tensors.

Layers inside this package (imports flow downwards only)::

    context.py     SMPCContext: parties, ring, precision, device, dealer, communicator
    tensor.py      SharedTensor and its operators; concatenate, stack
    protocols.py   openings, Beaver mul/matmul/square, local and dealer truncation
    provider.py    CryptoProvider interface, TrustedDealer (offline phase), Timing
    party.py       Party: its own shares, CSPRNG stream and dealer material
    communicator.py  Communicator interface, InProcessCommunicator, CommStats
    serialize.py   versioned binary format (no pickle)
    tutorial.py    the tutorial's three-share numpy demo over Q = 501337

Example::

    >>> import numpy as np
    >>> from hecrypt.smpc import SMPCContext
    >>> ctx = SMPCContext(parties=("alice", "bob"))
    >>> x = ctx.share(np.array([1.5, -2.0]), owner="alice")
    >>> y = ctx.share(np.array([4.0, 0.25]), owner="bob")
    >>> np.round((x * y).reveal(), 3).tolist()
    [6.0, -0.5]
"""

from .communicator import CommStats, Communicator, InProcessCommunicator
from .context import SMPCContext
from .party import Party
from .provider import CryptoProvider, Timing, TrustedDealer
from .tensor import SharedTensor, concatenate, stack

__all__ = ["SMPCContext", "SharedTensor", "concatenate", "stack", "Party", "CryptoProvider",
           "TrustedDealer", "Timing", "Communicator", "InProcessCommunicator", "CommStats"]
