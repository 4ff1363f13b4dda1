"""What a network's messages add up to, counted from its transfers when asked: nothing is
counted while messages move, which keeps a delivery cheap (see
:meth:`simnet.engine.network.Network.counts`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simnet.actor import DELIVERED, DROPPED
from simnet.topology.graph import Hop

if TYPE_CHECKING:
    from simnet.engine.network import Transfer


def _by_status() -> dict[str, int]:
    return {"sent": 0, DELIVERED: 0, DROPPED: 0}


@dataclass(frozen=True)
class TrafficCounts:
    """Message bytes: ``bytes_sent``, ``bytes_delivered``, ``bytes_dropped``,
    ``phase_bytes`` (per phase), ``kind_bytes`` (per kind and status: ``sent``,
    delivered, dropped), ``class_messages`` (per link class and status, a message counting
    once in every class its route crosses). Link bytes (what each message carried on each
    hop of its route): ``link_bytes`` (per directed hop) and ``phase_class_bytes`` (per
    phase and link class). Missing keys read as 0."""

    bytes_sent: int
    bytes_delivered: int
    bytes_dropped: int
    phase_bytes: dict[str, int]
    kind_bytes: dict[str, dict[str, int]]
    class_messages: dict[str, dict[str, int]]
    link_bytes: dict[Hop, int]
    phase_class_bytes: dict[str, dict[str, int]]

    @property
    def class_bytes(self) -> dict[str, int]:
        """Link bytes per link class, all phases together."""
        out: dict[str, int] = defaultdict(int)
        for by_class in self.phase_class_bytes.values():
            for name, carried in by_class.items():
                out[name] += carried
        return dict(out)


def count_traffic(transfers: Iterable[Transfer], hop_class: dict[Hop, str]) -> TrafficCounts:
    """The counts of ``transfers`` (``hop_class``: each directed hop's link class)."""
    sent = delivered = dropped = 0
    phase_bytes: dict[str, int] = defaultdict(int)
    kind_bytes: dict[str, dict[str, int]] = defaultdict(_by_status)
    class_messages: dict[str, dict[str, int]] = defaultdict(_by_status)
    link_bytes: dict[Hop, int] = defaultdict(int)
    phase_class_bytes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for t in transfers:
        size, status = t.size, t.status
        sent += size
        phase_bytes[t.phase] += size
        by_kind = kind_bytes[t.kind]
        by_kind["sent"] += size
        finished = status in (DELIVERED, DROPPED)
        if finished:
            by_kind[status] += size
            if status == DELIVERED:
                delivered += size
            else:
                dropped += size
        for name in t.classes:
            by_class = class_messages[name]
            by_class["sent"] += size
            if finished:
                by_class[status] += size
        if t.carried:
            carried_by_class = phase_class_bytes[t.phase]
            for hop in t.hops:
                link_bytes[hop] += t.carried
                carried_by_class[hop_class[hop]] += t.carried
    return TrafficCounts(
        sent, delivered, dropped, phase_bytes, kind_bytes, class_messages, link_bytes,
        phase_class_bytes,
    )  # fmt: skip
