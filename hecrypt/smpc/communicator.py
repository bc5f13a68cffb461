"""How parties talk: the :class:`Communicator` interface and the in-process implementation.

Protocol code only ever calls :meth:`Communicator.send`, :meth:`Communicator.recv` and
:meth:`Communicator.round`; payloads are ``bytes`` produced by :mod:`hecrypt.smpc.serialize`
or, for device-resident arrays, a :class:`~hecrypt.smpc.serialize.Frame` (the same header
with the raw buffers left on the GPU, as NCCL would move them; counted at the same size).
A multi-process (sockets, MPI) or multi-GPU (NCCL) communicator implements the same three
methods; nothing in the protocols changes.

Accounting is done from the messages actually sent: every :meth:`send` adds the payload's
length to the sender's ``bytes_sent`` and the receiver's ``bytes_received``.  A *round* is
one :meth:`round` block in which at least one message was sent (messages of one block are
independent of each other and can travel in parallel); a message sent outside any block
is a round of its own.  Every message is also booked to the current *phase*
(``"online"`` or ``"offline"``: dealer material).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict, deque
from typing import Any, Iterable, Iterator

from .serialize import Frame

__all__ = ["CommStats", "Communicator", "InProcessCommunicator"]

PHASES = ("online", "offline")


class CommStats:
    """Bytes, messages and rounds of the messages sent so far.

    ``bytes_sent``, ``messages`` and ``rounds`` count everything; ``by_phase`` splits them
    into ``online`` and ``offline`` (dealer material); ``per_party`` maps each party name to
    ``{"bytes_sent", "bytes_received", "messages_sent", "messages_received"}``.
    """

    __slots__ = ("bytes_sent", "messages", "rounds", "per_party", "by_phase")

    def __init__(self, parties: Iterable[str] = ()):
        self.bytes_sent = 0
        self.messages = 0
        self.rounds = 0
        self.per_party: dict[str, dict[str, int]] = {}
        self.by_phase = {p: {"bytes_sent": 0, "messages": 0, "rounds": 0} for p in PHASES}
        for p in parties:
            self.add_party(p)

    def add_party(self, name: str) -> None:
        self.per_party.setdefault(name, {"bytes_sent": 0, "bytes_received": 0,
                                         "messages_sent": 0, "messages_received": 0})

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy (JSON-able)."""
        return {"bytes_sent": self.bytes_sent, "messages": self.messages, "rounds": self.rounds,
                "per_party": {k: dict(v) for k, v in self.per_party.items()},
                "by_phase": {k: dict(v) for k, v in self.by_phase.items()}}

    def __sub__(self, other: "CommStats") -> dict[str, Any]:
        a, b = self.snapshot(), other.snapshot() if isinstance(other, CommStats) else other
        return _diff(a, b)

    def __repr__(self) -> str:
        return (f"CommStats(bytes_sent={self.bytes_sent}, messages={self.messages}, rounds={self.rounds}, "
                f"online={self.by_phase['online']}, offline={self.by_phase['offline']})")


def _diff(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {k: _diff(v, b.get(k, 0 if not isinstance(v, dict) else {})) for k, v in a.items()}
    return a - b


class Communicator:
    """Interface: point-to-point byte messages between named parties, plus round accounting.

    Implementations provide :meth:`_deliver` and :meth:`_take`; accounting, rounds and phases
    are handled here so every implementation counts the same way.
    """

    def __init__(self, parties: Iterable[str] = ()):
        self._parties: list[str] = []
        self.stats = CommStats()
        self._phase = "online"
        self._round_depth = 0
        self._round_sent = False
        for p in parties:
            self.add_party(p)

    # -- membership -------------------------------------------------------------------
    @property
    def parties(self) -> tuple[str, ...]:
        return tuple(self._parties)

    def add_party(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("party names must be non-empty strings")
        if name in self._parties:
            raise ValueError(f"party {name!r} is already registered")
        self._parties.append(name)
        self.stats.add_party(name)

    def _check(self, name: str) -> None:
        if name not in self.stats.per_party:
            raise ValueError(f"unknown party {name!r}; known: {', '.join(self._parties)}")

    # -- phases and rounds ------------------------------------------------------------
    @property
    def phase(self) -> str:
        return self._phase

    @contextlib.contextmanager
    def phase_as(self, phase: str) -> Iterator[None]:
        """Book the messages sent inside the block to ``phase`` (``online``/``offline``)."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}")
        old, self._phase = self._phase, phase
        try:
            yield
        finally:
            self._phase = old

    @contextlib.contextmanager
    def round(self) -> Iterator[None]:
        """Messages sent inside the (outermost) block form one communication round."""
        self._round_depth += 1
        if self._round_depth == 1:
            self._round_sent = False
            phase = self._phase
        try:
            yield
        finally:
            self._round_depth -= 1
            if self._round_depth == 0 and self._round_sent:
                self.stats.rounds += 1
                self.stats.by_phase[phase]["rounds"] += 1

    def reset_stats(self) -> None:
        self.stats = CommStats(self._parties)

    # -- messages ---------------------------------------------------------------------
    def send(self, src: str, dst: str, payload: Any, tag: str = "") -> None:
        """Send ``payload`` (bytes, or a :class:`~hecrypt.smpc.serialize.Frame` of device
        buffers) from ``src`` to ``dst`` under ``tag``; its length is what is counted."""
        if not isinstance(payload, (bytes, bytearray, Frame)):
            raise TypeError(f"payload must be bytes or a serialize.Frame (serialize it first), "
                            f"got {type(payload).__name__}")
        self._check(src)
        self._check(dst)
        if src == dst:
            raise ValueError("a party does not send messages to itself")
        n = len(payload)
        st = self.stats
        st.bytes_sent += n
        st.messages += 1
        ps, pd = st.per_party[src], st.per_party[dst]
        ps["bytes_sent"] += n
        ps["messages_sent"] += 1
        pd["bytes_received"] += n
        pd["messages_received"] += 1
        ph = st.by_phase[self._phase]
        ph["bytes_sent"] += n
        ph["messages"] += 1
        if self._round_depth:
            self._round_sent = True
        else:
            st.rounds += 1
            ph["rounds"] += 1
        self._deliver(src, dst, tag, bytes(payload) if isinstance(payload, bytearray) else payload)

    def recv(self, dst: str, src: str, tag: str = "") -> bytes:
        """The oldest message from ``src`` to ``dst`` with ``tag``."""
        self._check(src)
        self._check(dst)
        return self._take(src, dst, tag)

    def _deliver(self, src: str, dst: str, tag: str, payload: bytes) -> None:  # pragma: no cover
        raise NotImplementedError

    def _take(self, src: str, dst: str, tag: str) -> bytes:  # pragma: no cover
        raise NotImplementedError


class InProcessCommunicator(Communicator):
    """All parties in one process: per-(sender, receiver, tag) FIFO mailboxes of bytes."""

    def __init__(self, parties: Iterable[str] = ()):
        super().__init__(parties)
        self._boxes: dict[tuple[str, str, str], deque] = defaultdict(deque)

    def _deliver(self, src: str, dst: str, tag: str, payload: bytes) -> None:
        self._boxes[(src, dst, tag)].append(payload)

    def _take(self, src: str, dst: str, tag: str) -> bytes:
        box = self._boxes.get((src, dst, tag))
        if not box:
            raise RuntimeError(f"no message from {src!r} to {dst!r} with tag {tag!r} (protocol out of step)")
        return box.popleft()

    def pending(self) -> int:
        """Messages sent but not yet received (0 between protocol steps)."""
        return sum(len(b) for b in self._boxes.values())
