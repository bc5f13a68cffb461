"""Exception types users catch.

``TypeError`` and ``ValueError`` are raised for wrong types and bad values, as usual in
Python; the classes here are for conditions specific to hecrypt.  Every class derives from
:class:`HecryptError`, and the ones that describe bad values also derive from
``ValueError`` so that generic handlers keep working.
"""

from __future__ import annotations


class HecryptError(Exception):
    """Base class of every hecrypt-specific exception."""


class DeviceUnavailableError(HecryptError, RuntimeError):
    """The requested device (``cuda``) cannot be used; the message names what is missing."""


class KernelError(HecryptError, RuntimeError):
    """A GPU kernel could not be found, compiled or loaded."""


class RingMismatchError(HecryptError, ValueError):
    """Operands live in different rings (or an operand is not in the expected ring)."""


class ContextMismatchError(HecryptError, ValueError):
    """Operands belong to different contexts (SMPC or HE) and must not be mixed."""


class EncodingError(HecryptError, ValueError):
    """A value cannot be encoded: out of the fixed-point range, NaN or Inf."""


class PrecisionError(HecryptError, ValueError):
    """A fixed-point precision leaves no headroom in the ring for a product."""


class SerializationError(HecryptError, ValueError):
    """Serialized data is malformed, of another version, or for other parameters/keys."""


class ConsumedError(HecryptError, RuntimeError):
    """A single-use object (Beaver triple, truncation pair, mask) was used a second time."""


class SecurityError(HecryptError, ValueError):
    """Parameters below the required security level, or an operation that would leak."""


class MissingShareError(HecryptError, ValueError):
    """Reconstruction was asked with a missing or duplicated share."""


class DecryptionError(HecryptError, RuntimeError):
    """Decryption was asked of a context that holds no secret key."""
