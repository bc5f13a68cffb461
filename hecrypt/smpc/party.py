"""Parties: each holds only its own shares, randomness and dealer material.

A :class:`Party` is a real object even when all parties live in one process: the share
arrays of a tensor are stored in the stores of the parties that hold them, the SharedTensor
object only names them.  Everything a party learns from another party arrives through the
communicator as bytes (see :mod:`hecrypt.smpc.protocols`).

Roles: ``"compute"`` parties hold shares and run the protocols; ``"input"`` parties own data
(they encode and share it, and may receive revealed results) but hold no shares.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConsumedError, MissingShareError
from ..ring import Ring, Stream, StreamFactory
from . import serialize as ser

__all__ = ["Party"]


class Party:
    """One participant: its name, role, CSPRNG stream, share store and dealer material."""

    __slots__ = ("name", "role", "index", "_factory", "stream", "_store", "_material", "_consumed",
                 "_masks", "__weakref__")

    def __init__(self, name: str, role: str = "compute", index: int = -1, *, seed: Any = None,
                 device: str = "cpu"):
        if role not in ("compute", "input"):
            raise ValueError(f"party role must be 'compute' or 'input', got {role!r}")
        self.name = name
        self.role = role
        self.index = index
        self._factory = StreamFactory(seed, label=f"hecrypt.smpc/party/{name}", device=device)
        self.stream: Stream = self._factory.new_stream()
        self._store: dict[int, Any] = {}
        self._material: dict[int, tuple[str, dict[str, Any]]] = {}
        self._consumed: set[int] = set()
        self._masks: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Party({self.name!r}, role={self.role}, holds {len(self._store)} shares)"

    def __reduce__(self):
        raise TypeError("parties hold secret shares and keys and cannot be pickled")

    # -- shares --------------------------------------------------------------------------
    def put(self, tid: int, share: Any) -> None:
        self._store[tid] = share

    def get(self, tid: int) -> Any:
        try:
            return self._store[tid]
        except KeyError:
            raise MissingShareError(f"party {self.name!r} holds no share of tensor #{tid}") from None

    def drop(self, tid: int) -> None:
        self._store.pop(tid, None)

    # -- dealer material -----------------------------------------------------------------
    def receive_material(self, blob: bytes, ring: Ring, device: str) -> int:
        """Store the material in ``blob`` (expanding seeds); returns its id."""
        meta, arrays = ser.unpack(blob, ser.KIND_MATERIAL, device=device)
        try:
            mid = int(meta["mid"])
            kind = str(meta["kind"])
            seed = meta.get("seed")
            expand = [(str(name), tuple(int(d) for d in shape)) for name, shape in (meta.get("expand") or [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ser.SerializationError(f"malformed dealer material: {exc}") from None
        if seed is not None:
            try:
                key = bytes.fromhex(seed)
            except (TypeError, ValueError):
                raise ser.SerializationError("malformed dealer material: bad seed") from None
            st = Stream(key, 0, device=device)
            for name, shape in expand:
                arrays[name] = st.uniform(ring, shape)
        if mid in self._consumed or mid in self._material or mid in self._masks:
            raise ConsumedError(f"dealer material #{mid} was already received by {self.name!r}")
        if kind == "mask":
            if "a" not in arrays:
                raise ser.SerializationError("malformed dealer material: a mask without its array")
            # a re-delivered mask id is refused too: it would reset the opening and use count
            self._masks[mid] = {"a": arrays["a"], "open": None, "uses": 0}
        else:
            self._material[mid] = (kind, arrays)
        return mid

    def take_material(self, mid: int, kind: str) -> dict[str, Any]:
        """Remove and return material ``mid`` (single use: a second take raises ConsumedError)."""
        if mid in self._consumed:
            raise ConsumedError(f"{kind} material #{mid} was already used by {self.name!r}; "
                                "triples and truncation pairs are single-use")
        try:
            k, arrays = self._material.pop(mid)
        except KeyError:
            raise MissingShareError(f"party {self.name!r} holds no dealer material #{mid}") from None
        if k != kind:
            raise ValueError(f"material #{mid} is a {k!r}, not a {kind!r}")
        self._consumed.add(mid)
        return arrays

    def mask(self, mask_id: int) -> dict[str, Any]:
        try:
            return self._masks[mask_id]
        except KeyError:
            raise MissingShareError(f"party {self.name!r} holds no mask #{mask_id}") from None

    def material_count(self) -> int:
        return len(self._material)
