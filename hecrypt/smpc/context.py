"""The SMPC context: parties, ring, fixed-point precision, device, dealer and communicator."""

from __future__ import annotations

import contextlib
import numbers
import os
import time
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..backend import get_backend, is_device_array, resolve_device
from ..errors import ContextMismatchError, MissingShareError, RingMismatchError
from ..ring import DEFAULT_FRAC_BITS, FixedPoint, Ring, ring_from_name
from . import serialize as ser
from .communicator import Communicator, InProcessCommunicator
from .party import Party
from .provider import CryptoProvider, Timing, TrustedDealer

__all__ = ["SMPCContext", "TRUNCATIONS", "LOCAL_TRUNCATION_MAX_FRAC_BITS"]

TRUNCATIONS = ("auto", "local", "dealer")

#: ``truncation="auto"`` picks local (SecureML) truncation only up to this precision.  Its
#: failure chance per element is about |z| 2^(2f+1) / 2^64 for a product z (doubled form):
#: 2^-30 |z| at f = 16, but 2^-22 |z| at f = 20, where a 250-step XOR training run (about
#: 65,000 truncations) fails about once in 70 runs.  Above it, dealer truncation (one more
#: round, never fails) is used.
LOCAL_TRUNCATION_MAX_FRAC_BITS = 16


class SMPCContext:
    """A set of parties computing on additively secret-shared tensors.

    Parameters
    ----------
    parties:
        names of the compute parties (2 or more, distinct).
    ring:
        ``Ring`` instance, ``"Z2_64"`` (default), ``"Z2_32"``, or an odd modulus ``q``.
    frac_bits:
        fixed-point fractional bits ``f`` (default 16).  Refused with
        :class:`~hecrypt.errors.PrecisionError` unless ``2f + 2 <= log2 M``.
    device:
        ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None`` (``$HECRYPT_DEVICE``).
    dealer:
        a :class:`~hecrypt.smpc.provider.CryptoProvider` (default: a new
        :class:`~hecrypt.smpc.provider.TrustedDealer`).
    seed:
        makes every party's and the dealer's randomness reproducible. **Tests only.**
    truncation:
        ``"local"`` (two-party SecureML, Z_2^k), ``"dealer"`` (any parties/ring, one extra
        round) or ``"auto"``: local for two parties in Z_2^64 with ``frac_bits <= 16``, dealer
        otherwise (with more fractional bits, or in smaller Z_2^k rings, local truncation fails
        too often, see ``LOCAL_TRUNCATION_MAX_FRAC_BITS`` and ``docs/smpc.md``).
    communicator:
        a :class:`~hecrypt.smpc.communicator.Communicator` (default in-process).
    transport:
        how messages are serialized: ``"bytes"`` (one byte blob, arrays copied to the host)
        or ``"frames"`` (the same header, arrays left in device memory as private copies, as a
        NCCL transport moves them); ``"auto"``: frames on CUDA, bytes on the CPU.  Both are
        counted at the same size.
    beaver:
        ``"auto"``: fixed-point products of two parties with local truncation use the doubled
        form (one ring product per party; the local truncation's failure probability doubles,
        see ``docs/smpc.md``); ``"ordinary"``: always the ordinary form.
    """

    def __init__(self, parties: Sequence[str] = ("alice", "bob"), ring: Any = "Z2_64",
                 frac_bits: int = DEFAULT_FRAC_BITS, device: str | None = None,
                 dealer: CryptoProvider | None = None, seed: Any = None, truncation: str = "auto",
                 communicator: Communicator | None = None, transport: str = "auto", beaver: str = "auto"):
        if isinstance(parties, str) or not isinstance(parties, Sequence):
            raise TypeError("parties must be a sequence of names, e.g. ('alice', 'bob')")
        names = tuple(parties)
        if len(names) < 2:
            raise ValueError(f"SMPC needs at least 2 compute parties, got {len(names)}")
        for p in names:
            if not isinstance(p, str) or not p:
                raise TypeError(f"party names must be non-empty strings, got {p!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"party names must be distinct: {names}")
        self.ring: Ring = ring_from_name(ring)
        self.encoding = FixedPoint(self.ring, frac_bits)  # raises PrecisionError when it does not fit
        self.frac_bits = self.encoding.frac_bits
        self.device = resolve_device(device)
        self._be = get_backend(self.device)
        self.xp = self._be.xp
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        if truncation == "auto":
            truncation = "local" if (len(names) == 2 and self.ring.is_pow2 and self.ring.bits == 64
                                     and self.frac_bits <= LOCAL_TRUNCATION_MAX_FRAC_BITS) else "dealer"
        if truncation == "local" and (len(names) != 2 or not self.ring.is_pow2):
            raise ValueError("local truncation needs exactly 2 compute parties and a Z_2^k ring; "
                             "use truncation='dealer'")
        self.truncation = truncation
        if beaver not in ("auto", "ordinary"):
            raise ValueError(f"beaver must be 'auto' or 'ordinary', got {beaver!r}")
        self.beaver = beaver
        if transport not in ("auto", "bytes", "frames"):
            raise ValueError(f"transport must be 'auto', 'bytes' or 'frames', got {transport!r}")
        self.transport = ("frames" if self.device == "cuda" else "bytes") if transport == "auto" else transport
        self.id = os.urandom(8).hex()
        self._seed = seed
        self.timing = Timing()
        self._timing_depth = 0
        self._next_tid = 0
        self.dealer = dealer if dealer is not None else TrustedDealer(
            seed=None if seed is None else (repr(seed) + "/dealer"))
        if not isinstance(self.dealer, CryptoProvider):
            raise TypeError("dealer must be a hecrypt.smpc CryptoProvider (e.g. TrustedDealer())")
        if self.dealer.name in names:
            raise ValueError(f"the dealer's name {self.dealer.name!r} clashes with a party name")
        self.comm = communicator if communicator is not None else InProcessCommunicator()
        self.compute_parties = [self._make_party(n, "compute", i) for i, n in enumerate(names)]
        self.party_names = names
        self.comm.add_party(self.dealer.name)
        self._parties: dict[str, Party] = {p.name: p for p in self.compute_parties}
        if hasattr(self.dealer, "default_shift"):
            self.dealer.default_shift = self.frac_bits
        if hasattr(self.dealer, "default_scale"):
            from .protocols import doubled_products

            self.dealer.default_scale = 2 if doubled_products(self) else 1
        self.dealer.bind(self.ring, self.device, names, self._deliver_material, self.timing)

    def _make_party(self, name: str, role: str, index: int) -> Party:
        seed = None if self._seed is None else f"{self._seed!r}/{name}"
        p = Party(name, role, index, seed=seed, device=self.device)
        self.comm.add_party(name)
        return p

    def _pack(self, kind: int, meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> Any:
        """Serialize for the communicator: bytes, or a Frame of device buffers (``transport``)."""
        return ser.pack(kind, meta, arrays, frame=self.transport == "frames")

    def _deliver_material(self, items: Mapping[str, tuple]) -> None:
        """Dealer -> parties, one offline round; each party stores (and expands) its material."""
        comm = self.comm
        dealer = self.dealer.name
        blobs = {name: self._pack(ser.KIND_MATERIAL, meta, arrays) for name, (meta, arrays) in items.items()}
        with comm.phase_as("offline"), comm.round():
            for name, blob in blobs.items():
                comm.send(dealer, name, blob, "material")
        for name in blobs:
            self._parties[name].receive_material(comm.recv(name, dealer, "material"), self.ring, self.device)

    # -- description ----------------------------------------------------------------------
    def __repr__(self) -> str:
        inputs = [p.name for p in self._parties.values() if p.role == "input"]
        extra = f", input_parties={tuple(inputs)}" if inputs else ""
        return (f"SMPCContext(parties={self.party_names}, ring={self.ring.name}, frac_bits={self.frac_bits}, "
                f"device={self.device}, truncation={self.truncation}{extra})")

    def __reduce__(self):
        raise TypeError("an SMPC context holds parties' secrets and cannot be pickled")

    @property
    def n_parties(self) -> int:
        return len(self.party_names)

    @property
    def parties(self) -> dict[str, Party]:
        """All parties (compute and input) by name."""
        return dict(self._parties)

    @property
    def input_parties(self) -> tuple[str, ...]:
        """Names of the input-only parties (own data, hold no shares)."""
        return tuple(p.name for p in self._parties.values() if p.role == "input")

    def party(self, name: str) -> Party:
        try:
            return self._parties[name]
        except KeyError:
            raise ValueError(f"unknown party {name!r}; known: {', '.join(self._parties)}") from None

    def add_input_party(self, name: str) -> str:
        """Register an input-only party (owns data, holds no shares); returns its name."""
        if not isinstance(name, str) or not name:
            raise TypeError("party names must be non-empty strings")
        if name in self._parties or name == self.dealer.name:
            raise ValueError(f"party {name!r} already exists")
        self._parties[name] = self._make_party(name, "input", -1)
        return name

    # -- accounting ----------------------------------------------------------------------------
    @property
    def stats(self):
        """Communication so far (:class:`~hecrypt.smpc.communicator.CommStats`)."""
        return self.comm.stats

    def reset_stats(self) -> None:
        """Zero the communication counters and the online/offline timers."""
        self.comm.reset_stats()
        self.timing.reset()

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        if self._timing_depth:
            yield
            return
        self._timing_depth = 1
        off0 = self.timing.offline_s
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._be.synchronize()
            dt = time.perf_counter() - t0
            self.timing.online_s += max(0.0, dt - (self.timing.offline_s - off0))
            self._timing_depth = 0

    # -- tensors -------------------------------------------------------------------------------
    def _new_tid(self) -> int:
        self._next_tid += 1
        return self._next_tid

    def _wrap(self, shares: Sequence[Any], frac: int, mask: Any = None):
        from .tensor import SharedTensor

        return SharedTensor._from_shares(self, list(shares), frac, mask)

    def check_tensor(self, t: Any) -> None:
        from .tensor import SharedTensor

        if not isinstance(t, SharedTensor):
            raise TypeError(f"expected a SharedTensor, got {type(t).__name__}")
        if t._ctx is not self:
            raise ContextMismatchError("tensor belongs to another SMPC context; tensors of different "
                                       "contexts never mix")

    def _to_host_array(self, x: Any) -> np.ndarray:
        if is_device_array(x):
            from ..backend import backend_of

            return backend_of(x).to_numpy(x)
        return np.asarray(x)

    def share(self, x: Any, owner: str | None = None):
        """Fixed-point encode ``x`` (real numbers) on ``owner``'s side and share it.

        Raises :class:`~hecrypt.errors.EncodingError` for NaN/Inf or ``|x| >= max_abs``
        (``2^(log2 M - 1 - f)``: 2^47 for Z_2^64 with f = 16).  Values meant to be multiplied
        should stay far smaller (see ``docs/smpc.md``)."""
        owner_p = self._owner(owner)
        arr = self._to_host_array(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot share values of dtype {arr.dtype}")
        with self._timed():
            enc = self.encoding.encode(arr, device=self.device)
            return self._wrap(self._distribute(owner_p, enc), self.frac_bits)

    def share_int(self, x: Any, owner: str | None = None):
        """Share integers as ring elements (no encoding; negatives map to ``M - |x|``)."""
        owner_p = self._owner(owner)
        arr = self._to_host_array(x)
        if arr.dtype.kind not in "biuO":
            raise TypeError(f"share_int takes integers, got dtype {arr.dtype}; use share() for reals")
        with self._timed():
            enc = self.ring.from_int(arr, device=self.device)
            return self._wrap(self._distribute(owner_p, enc), 0)

    def _owner(self, owner: str | None) -> Party:
        if owner is None:
            return self.compute_parties[0]
        if not isinstance(owner, str):
            raise TypeError("owner must be a party name")
        return self.party(owner)

    def _distribute(self, owner: Party, enc: Any) -> list[Any]:
        """Owner splits ``enc`` into n uniform-looking shares and sends each party its own."""
        R = self.ring
        n = self.n_parties
        shares = [owner.stream.uniform(R, enc.shape) for _ in range(n - 1)]
        acc = shares[0]
        for s in shares[1:]:
            acc = R.add(acc, s)
        shares.append(R.sub(enc, acc))
        out: list[Any] = [None] * n
        with self.comm.round():
            for i, p in enumerate(self.compute_parties):
                if p is owner:
                    out[i] = shares[i]
                else:
                    self.comm.send(owner.name, p.name, self._pack(ser.KIND_MESSAGE, {"tag": "share"},
                                                                  {"s": shares[i]}), "share")
        for i, p in enumerate(self.compute_parties):
            if out[i] is None:
                _, arrs = ser.unpack(self.comm.recv(p.name, owner.name, "share"), ser.KIND_MESSAGE,
                                     device=self.device)
                out[i] = arrs["s"]
        return out

    def zeros(self, shape: Any):
        """Shares of zero (fixed point) of ``shape``: every party holds zeros, no messages."""
        if isinstance(shape, numbers.Integral):
            shape = (int(shape),)
        return self._wrap([self.ring.zeros(tuple(shape), device=self.device) for _ in self.party_names],
                          self.frac_bits)

    def from_shares(self, shares: Mapping[str, Any] | Sequence[Any], frac_bits: int | None = None):
        """Build a tensor from raw per-party shares (``{party: array}``, or a list in party order).

        Raises :class:`~hecrypt.errors.MissingShareError` when a party's share is missing or
        given twice, ``RingMismatchError`` for arrays not in this ring, ``ValueError`` for
        differing shapes.  ``frac_bits`` defaults to the context's (0 for integers)."""
        if isinstance(shares, Mapping):
            missing = [p for p in self.party_names if p not in shares]
            extra = [p for p in shares if p not in self.party_names]
            if missing:
                raise MissingShareError(f"missing share(s) of party {', '.join(map(repr, missing))}")
            if extra:
                raise MissingShareError(f"share(s) from unknown party {', '.join(map(repr, extra))}")
            arrs = [shares[p] for p in self.party_names]
        else:
            arrs = list(shares)
            if len(arrs) != self.n_parties:
                raise MissingShareError(f"need exactly {self.n_parties} shares (one per party), got {len(arrs)}")
        # different parties' shares never share memory: the same array (or views of one array)
        # given twice is a duplicated share, whether in a list or under two party names
        for i in range(len(arrs)):
            for j in range(i):
                a, b = arrs[i], arrs[j]
                if a is b or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                              and a.size and np.may_share_memory(a, b)):
                    raise MissingShareError("the same share array was given twice")
        out = []
        for p, a in zip(self.party_names, arrs):
            if not hasattr(a, "dtype"):
                a = np.asarray(a)
            self.ring.check(a, f"share of {p!r}")
            a = self._be.asarray(a) if (is_device_array(a) != (self.device == "cuda")) else a
            out.append(a)
        if len({tuple(a.shape) for a in out}) != 1:
            raise ValueError(f"shares have different shapes: {[tuple(a.shape) for a in out]}")
        return self._wrap(out, self.frac_bits if frac_bits is None else int(frac_bits))

    def reconstruct(self, shares: Mapping[str, Any] | Sequence[Any], frac_bits: int | None = None) -> np.ndarray:
        """Sum raw shares (all parties', each exactly once) and decode; see :meth:`from_shares`."""
        R = self.ring
        t = self.from_shares(shares, frac_bits)
        total = R.sum_shares(t._shares())
        return self._decode(total, t._frac)

    def _decode(self, a: Any, frac: int) -> np.ndarray:
        if frac == 0:
            s = self.ring.to_signed(a)
            return self._be.to_numpy(s) if self.device != "cpu" else s
        return self.encoding.decode(a, frac_bits=frac)

    # -- serialization ---------------------------------------------------------------------------
    def load_share(self, blob: bytes) -> tuple[str, Any, int]:
        """Parse one party's serialized share (``SharedTensor.share_bytes``): returns
        ``(party, array, frac_bits)``.  Raises SerializationError / RingMismatchError."""
        meta, arrs = ser.unpack(blob, ser.KIND_SHARE, device=self.device)
        try:
            party, modulus, frac = str(meta["party"]), int(meta["ring"]), int(meta["frac_bits"])
            a = arrs["share"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ser.SerializationError(f"malformed share blob: missing or bad field {exc}") from None
        if modulus != self.ring.modulus:
            raise RingMismatchError(f"share is in Z_{modulus}, this context computes in {self.ring.name}")
        if party not in self.party_names:
            raise ser.SerializationError(f"share of unknown party {party!r}")
        if a.dtype != self.ring.dtype:
            raise ser.SerializationError(f"share dtype {a.dtype} does not match {self.ring.name}")
        if self.ring.q:
            bad = a >= self.ring.dtype.type(self.ring.q)
            if bool(bad.any()):
                raise ser.SerializationError("share holds values outside [0, q)")
        return party, a, frac

    def tensor_from_bytes(self, blobs: Sequence[bytes]):
        """Rebuild a tensor from every party's ``share_bytes`` blob (any order)."""
        got: dict[str, Any] = {}
        fracs = set()
        for b in blobs:
            party, a, frac = self.load_share(b)
            if party in got:
                raise MissingShareError(f"two shares of party {party!r}")
            got[party] = a
            fracs.add(frac)
        if len(fracs) > 1:
            raise ser.SerializationError("shares disagree on frac_bits")
        return self.from_shares(got, fracs.pop() if fracs else None)
