"""Versioned binary format for shares, dealer material and communicator messages (no pickle).

Layout of every blob (all integers little-endian)::

    magic     4 bytes  b"HCSM"
    version   1 byte   FORMAT_VERSION (1)
    kind      1 byte   KIND_MESSAGE | KIND_SHARE | KIND_MATERIAL
    hlen      4 bytes  length of the header in bytes (<= MAX_HEADER)
    header    hlen     UTF-8 JSON object: {"meta": {...}, "arrays": [{"name", "dtype", "shape"}, ...]}
    payload   the arrays' raw little-endian bytes, back to back, in header order

A :class:`Frame` carries the same header with the arrays left in (GPU) memory, for
transports that move device buffers; its length is that of the equivalent blob.

Only plain JSON values appear in ``meta`` and only the dtypes in :data:`DTYPES` are accepted.
:func:`unpack` checks everything it reads (magic, version, kind, header size and syntax,
dtype names, shapes, that the payload has exactly the announced size) and raises
:class:`~hecrypt.errors.SerializationError` with a clear message otherwise; it never
evaluates code.  Arrays decoded on the CPU are zero-copy, read-only views of the blob.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Mapping

import numpy as np

from ..backend import backend_of, get_backend, is_device_array
from ..errors import SerializationError

__all__ = ["FORMAT_VERSION", "KIND_MESSAGE", "KIND_SHARE", "KIND_MATERIAL", "DTYPES", "Frame", "pack", "unpack"]

MAGIC = b"HCSM"
FORMAT_VERSION = 1
KIND_MESSAGE = 1
KIND_SHARE = 2
KIND_MATERIAL = 3
_KINDS = {KIND_MESSAGE: "message", KIND_SHARE: "share", KIND_MATERIAL: "dealer material"}
DTYPES = {"uint64": np.dtype("<u8"), "uint32": np.dtype("<u4"), "int64": np.dtype("<i8"),
          "float64": np.dtype("<f8"), "uint8": np.dtype("u1")}
MAX_HEADER = 1 << 20
MAX_NDIM = 32
_PRE = struct.Struct("<4sBBI")


def _host(a: Any) -> np.ndarray:
    if is_device_array(a):
        a = backend_of(a).to_numpy(a)
    a = np.asarray(a)
    if a.dtype.name not in DTYPES:
        raise TypeError(f"cannot serialize arrays of dtype {a.dtype}; allowed: {', '.join(DTYPES)}")
    return a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray makes 0-d arrays 1-d)


class Frame:
    """A message whose arrays stay in (device) memory: the blob's header bytes plus the raw
    array buffers, as a GPU transport (NCCL, CUDA IPC) sends them.

    ``len(frame)`` is the size of the equivalent byte blob, so accounting is identical;
    :meth:`to_bytes` gives that blob.  The buffers are private copies made by :func:`pack`.
    """

    __slots__ = ("header", "buffers")

    def __init__(self, header: bytes, buffers: tuple):
        self.header = header
        self.buffers = buffers

    def __len__(self) -> int:
        return len(self.header) + sum(int(b.nbytes) for b in self.buffers)

    def to_bytes(self) -> bytes:
        return b"".join([self.header] + [memoryview(_host(b)).cast("B") for b in self.buffers])

    def __repr__(self) -> str:
        return f"Frame({len(self)} bytes, {len(self.buffers)} buffers)"

    def __reduce__(self):
        raise TypeError("frames are not pickled; use to_bytes()")


def _header(kind: int, meta: Mapping[str, Any], specs: list) -> bytes:
    if kind not in _KINDS:
        raise ValueError(f"unknown blob kind {kind}")
    header = {"meta": dict(meta), "arrays": specs}
    hb = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if len(hb) > MAX_HEADER:
        raise ValueError("serialized header too large")
    return _PRE.pack(MAGIC, FORMAT_VERSION, kind, len(hb)) + hb


def pack(kind: int, meta: Mapping[str, Any], arrays: Mapping[str, Any] | None = None, *,
         frame: bool = False) -> Any:
    """Serialize ``meta`` (JSON values) and named arrays (numpy/CuPy) into one blob (bytes).

    With ``frame=True`` the arrays are not copied to the host: a :class:`Frame` holding the
    header and private copies of the (device) buffers is returned instead."""
    if frame:
        bufs = []
        specs = []
        for k, v in (arrays or {}).items():
            if getattr(v, "dtype", None) is None or v.dtype.name not in DTYPES:
                raise TypeError(f"cannot serialize {type(v).__name__} of dtype {getattr(v, 'dtype', None)}")
            bufs.append(v.copy())  # contiguous private copy (device-to-device on a GPU)
            specs.append({"name": str(k), "dtype": v.dtype.name, "shape": list(v.shape)})
        return Frame(_header(kind, meta, specs), tuple(bufs))
    hosts = [(str(k), _host(v)) for k, v in (arrays or {}).items()]
    hb = _header(kind, meta, [{"name": k, "dtype": a.dtype.name, "shape": list(a.shape)} for k, a in hosts])
    parts = [hb]
    parts.extend(memoryview(a.astype(a.dtype.newbyteorder("<"), copy=False)).cast("B") for _, a in hosts)
    return b"".join(parts)


def unpack(data: Any, kind: int | None = None, device: str | None = None) -> tuple[dict, dict[str, Any]]:
    """Parse a blob from :func:`pack`: returns ``(meta, arrays)``.

    ``kind`` (if given) must match the blob's kind.  ``device`` (``None``: CPU) selects where
    the arrays are returned.  Raises :class:`SerializationError` for anything malformed.
    """
    frame = None
    if isinstance(data, Frame):
        frame, data = data, data.header
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"serialized data must be bytes, got {type(data).__name__}")
    mv = memoryview(data).cast("B")
    if len(mv) < _PRE.size:
        raise SerializationError(f"truncated blob: {len(mv)} bytes is shorter than the {_PRE.size}-byte preamble")
    magic, version, k, hlen = _PRE.unpack_from(mv, 0)
    if magic != MAGIC:
        raise SerializationError("not a hecrypt SMPC blob (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise SerializationError(f"unsupported format version {version} (this hecrypt reads version {FORMAT_VERSION})")
    if k not in _KINDS:
        raise SerializationError(f"unknown blob kind {k}")
    if kind is not None and k != kind:
        raise SerializationError(f"expected a {_KINDS[kind]} blob, got a {_KINDS[k]} blob")
    if hlen > MAX_HEADER or _PRE.size + hlen > len(mv):
        raise SerializationError("truncated or oversized header")
    try:
        header = json.loads(bytes(mv[_PRE.size:_PRE.size + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SerializationError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict) \
            or not isinstance(header.get("arrays"), list):
        raise SerializationError("header must be an object with 'meta' and 'arrays'")
    pos = _PRE.size + hlen
    be = get_backend(device) if device is not None else None
    arrays: dict[str, Any] = {}
    if frame is not None and (pos != len(mv) or len(frame.buffers) != len(header["arrays"])):
        raise SerializationError("frame header and buffers disagree")
    for idx, spec in enumerate(header["arrays"]):
        if not isinstance(spec, dict) or set(spec) != {"name", "dtype", "shape"}:
            raise SerializationError("malformed array descriptor")
        name, dt, shape = spec["name"], spec["dtype"], spec["shape"]
        if not isinstance(name, str) or name in arrays:
            raise SerializationError(f"bad or duplicated array name {name!r}")
        if dt not in DTYPES:
            raise SerializationError(f"array {name!r} has unsupported dtype {dt!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise SerializationError(f"array {name!r} has a bad shape {shape!r}")
        dtype = DTYPES[dt]
        if frame is not None:
            buf = frame.buffers[idx]
            if buf.dtype.name != dt or list(buf.shape) != shape:
                raise SerializationError(f"frame buffer {name!r} does not match its header")
            if be is not None and (is_device_array(buf) != (be.name != "cpu")):
                buf = be.asarray(buf)
            arrays[name] = buf
            continue
        count = 1
        for s in shape:
            count *= s
        nbytes = count * dtype.itemsize
        if pos + nbytes > len(mv):
            raise SerializationError(f"truncated payload: array {name!r} needs {nbytes} bytes, "
                                     f"{len(mv) - pos} left")
        a = np.frombuffer(mv, dtype=dtype, count=count, offset=pos).reshape(shape)
        if dtype.byteorder == "<" and not np.little_endian:  # pragma: no cover - big-endian hosts
            a = a.astype(dtype.newbyteorder("="))
        pos += nbytes
        arrays[name] = be.asarray(a) if be is not None and be.name != "cpu" else a
    if pos != len(mv):
        raise SerializationError(f"{len(mv) - pos} unexpected trailing bytes after the payload")
    return header["meta"], arrays
