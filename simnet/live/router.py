"""The live wire's protocol logic, with no I/O: what to do with each frame.

A :class:`Router` serves the nodes of one process. It is told what arrives — a frame
from the network with the peer it came from (:meth:`Router.frame`), a chunk handed over
inside the process (:meth:`Router.local`), a flow a local link dropped
(:meth:`Router.link_dropped`) — and answers with actions for the host to carry out:
:class:`Deliver`, :class:`Forward` (a data chunk onto the emulated link ``at → nxt``),
:class:`Pass` (an ack or drop notice handed to ``nxt`` unpaced), :class:`Resolve` (a
local sender's message is delivered or dropped). Every check that fails is a
:class:`Reject` with a short reason, counted in :attr:`Router.rejected`; nothing a peer
sends makes it raise.

Routes. A message from ``s`` to ``d`` crosses ``path(s, d)`` (unshaped: ``s → d`` in one
hop). Its acknowledgement and the notice of a link dropping it travel the reverse route
back to ``s``. A frame arriving at node ``n`` is accepted only if ``n`` is on its route
and its ``hop`` — the node that sent it, which must also be the authenticated ``peer`` —
is the node before ``n`` on that route.

Checks, in order (the reject reason in brackets): both ends are known nodes and joined by
a route [``unknown node``, ``route``]; the frame reached a node of its route from the node
before it [``not on route``, ``hop``, ``peer``]; a data frame declares at most
``max_message_bytes`` [``too large``] and fits its message's earlier chunks
(:class:`~simnet.live.reassembly.Reassembly`: [``order``, ``chunk mismatch``, ``buffer
full``, …]); a complete message decodes [``decode``] into an envelope with the frame's
source, destination and kind [``envelope``], and was not delivered before [``duplicate``];
an ack or drop notice at the sender names a message pending from that sender to that
destination [``not pending``].
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from simnet.actor import DELIVERED, DROPPED
from simnet.live.reassembly import Reassembly
from simnet.live.wire import BadFrame, Header
from simnet.wire.message import Message

EMPTY_CRC = zlib.crc32(b"")


@dataclass(frozen=True)
class Deliver:
    """``message`` (complete, decoded) reached local node ``message.dst`` at ``t`` (s)."""

    message: Message
    t: float


@dataclass(frozen=True)
class Forward:
    """Put the data chunk on the emulated link ``at → nxt``."""

    at: str
    nxt: str
    header: Header
    data: bytes


@dataclass(frozen=True)
class Pass:
    """Hand the control frame (an ack or a drop notice) from ``at`` to ``nxt``, unpaced."""

    at: str
    nxt: str
    header: Header


@dataclass(frozen=True)
class Resolve:
    """Local message ``id`` ended: ``status`` delivered or dropped, at ``t`` (seconds)."""

    id: int
    status: str
    t: float


@dataclass(frozen=True)
class Reject:
    """A frame was dropped for ``reason``."""

    reason: str


Action = Deliver | Forward | Pass | Resolve | Reject


@dataclass(frozen=True)
class Limits:
    """Bounds on what a router holds: bytes of one message, of the partial messages
    claiming one source and of all of them; seconds a partial message may sit idle."""

    max_message_bytes: int
    per_source_bytes: int
    total_bytes: int
    idle_s: float


class Router:
    """The frame logic of one process (see the module doc).

    ``local``: the nodes it serves; ``nodes``: every node of the topology; ``path``: the
    static route between two nodes (``KeyError``/``LookupError`` if none); ``unshaped``:
    messages go straight from source to destination; ``decode``: a message's bytes →
    :class:`Message` (any exception means the bytes are bad).
    """

    def __init__(
        self,
        local: Iterable[str],
        nodes: Iterable[str],
        path: Callable[[str, str], tuple[str, ...]],
        unshaped: bool,
        limits: Limits,
        decode: Callable[[bytes], Message],
    ) -> None:
        self.served = frozenset(local)
        self.nodes = frozenset(nodes)
        self.path = path
        self.unshaped = unshaped
        self.limits = limits
        self.decode = decode
        self.reassembly = Reassembly(
            limits.max_message_bytes, limits.per_source_bytes, limits.total_bytes, limits.idle_s
        )
        self.pending: dict[int, tuple[str, str]] = {}
        """Messages sent from local nodes awaiting their ack: id → (src, dst)."""
        self.delivered: set[tuple[str, int]] = set()
        """``(src, id)`` of the messages delivered here."""
        self.rejected: Counter[str] = Counter()

    # ------------------------------------------------------------------ inputs
    def sent(self, id: int, src: str, dst: str) -> None:
        """Local node ``src`` sent message ``id`` to ``dst``: its ack is awaited."""
        self.pending[id] = (src, dst)

    def frame(self, at: str, peer: str, header: Header, data: bytes, now: float) -> list[Action]:
        """A frame from the network reached local node ``at`` from ``peer`` (the
        authenticated sender, or the claimed one without CURVE) at ``now`` (s)."""
        try:
            route = self._route(header)
            if at not in self.served or at not in route[1:]:
                raise BadFrame("not on route")
            if header.hop != route[route.index(at) - 1]:
                raise BadFrame("hop")
            if peer != header.hop:
                raise BadFrame("peer")
            return self._take(at, route, header, data, now)
        except BadFrame as exc:
            return [self._reject(exc.reason)]

    def local(self, at: str, header: Header, data: bytes, now: float) -> list[Action]:
        """A frame this process handed to its node ``at`` itself (from a local link or a
        local sender): trusted, routed the same way."""
        try:
            return self._take(at, self._route(header), header, data, now)
        except BadFrame as exc:
            return [self._reject(exc.reason)]

    def link_dropped(self, at: str, header: Header, now: float) -> list[Action]:
        """The emulated link leaving local node ``at`` dropped the message of ``header``
        at ``now``: tell its sender, along the reverse route."""
        self.reassembly.drop(header.src, header.id)
        notice = Header(
            "drop", header.src, header.dst, header.kind, header.id, 0, 0, EMPTY_CRC, now,
            None, at,
        )  # fmt: skip
        return self.local(at, notice, b"", now)

    def unreachable(self, at: str, header: Header, now: float) -> list[Action]:
        """A frame from local node ``at`` could not be handed to the next node: a data
        frame's message is dropped (its sender told); a lost control frame is only
        counted (its message stays pending until the run ends)."""
        if header.type != "data":
            return [self._reject(f"{header.type} unreachable")]
        return self.link_dropped(at, header, now)

    # ------------------------------------------------------------------ logic
    def _route(self, header: Header) -> tuple[str, ...]:
        """The nodes a frame of ``header`` crosses, in its direction of travel."""
        if header.src not in self.nodes or header.dst not in self.nodes:
            raise BadFrame("unknown node")
        if self.unshaped:
            route: tuple[str, ...] = tuple(dict.fromkeys((header.src, header.dst)))
        else:
            try:
                route = tuple(self.path(header.src, header.dst))
            except LookupError as exc:  # KeyError and NoRouteError
                raise BadFrame("route") from exc
        return route if header.type == "data" else route[::-1]

    def _take(
        self, at: str, route: tuple[str, ...], header: Header, data: bytes, now: float
    ) -> list[Action]:
        if header.type == "data":
            if header.bytes > self.limits.max_message_bytes:
                raise BadFrame("too large")
            if at != route[-1]:
                return [Forward(at, route[route.index(at) + 1], header, data)]
            return self._arrived(header, data, now)
        if at != route[-1]:
            return [Pass(at, route[route.index(at) + 1], replace(header, hop=at))]
        if self.pending.get(header.id) != (header.src, header.dst):
            raise BadFrame("not pending")
        del self.pending[header.id]
        status = DELIVERED if header.type == "ack" else DROPPED
        return [Resolve(header.id, status, header.t_send)]

    def _arrived(self, header: Header, data: bytes, now: float) -> list[Action]:
        """A data chunk at its destination: reassemble, decode, deliver and acknowledge."""
        key = (header.src, header.id)
        if key in self.delivered:
            raise BadFrame("duplicate")
        whole = self.reassembly.add(header, data, now)
        if whole is None:
            return []
        try:
            message = self.decode(whole)
        except Exception as exc:  # any codec error: the bytes are not a message
            raise BadFrame("decode") from exc
        if (message.src, message.dst, message.kind) != (header.src, header.dst, header.kind):
            raise BadFrame("envelope")
        message.id, message.reply_to, message.t_send = header.id, header.reply_to, header.t_send
        self.delivered.add(key)
        ack = Header(
            "ack", header.src, header.dst, header.kind, header.id, 0, 0, EMPTY_CRC, now, None,
            header.dst,
        )  # fmt: skip
        return [Deliver(message, now), *self.local(header.dst, ack, b"", now)]

    def _reject(self, reason: str) -> Reject:
        self.rejected[reason] += 1
        return Reject(reason)


class LogLimiter:
    """At most one log line per ``period_s`` seconds per reason."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}

    def allows(self, reason: str, now: float) -> bool:
        """Whether a line for ``reason`` may be logged at ``now`` (s); if so, it counts."""
        last = self._last.get(reason)
        if last is not None and now - last < self.period_s:
            return False
        self._last[reason] = now
        return True
