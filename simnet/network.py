"""Flow-level network model (SimGrid CM02 style) on a SimPy clock.

A message of ``S`` bytes sent at ``t_send`` over the static route ``r`` (directed hops)

1. waits the route latency ``L = λ · Σ_{h∈r} latency_h`` (latency phase), then
2. becomes a flow that transmits at rate ``x_f(t)`` bytes/s, where the rates of all active
   flows are the max-min fair allocation (progressive filling) under the capacities
   ``C_h = β · bandwidth_mbps_h · 10⁶ / 8`` bytes/s of every directed hop ``h``, recomputed
   whenever a flow starts, ends or is dropped;
3. is received at ``t_recv``, the instant its last byte is transmitted:
   ``∫_{t_send+L}^{t_recv} x_f(t) dt = S``.

``λ`` and ``β`` are ``network.latency_factor`` and ``network.bandwidth_factor``. A flow whose
route uses a link that is down when it is sent, or that goes down before it is received,
is dropped. docs/network-model.md states the same rules with worked examples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from simnet.topology.graph import Hop, Topology, mbps_to_bytes_per_s

DELIVERED = "delivered"
DROPPED = "dropped"
IN_FLIGHT = "in_flight"

_REL_TOL = 1e-9
"""Relative tolerance on remaining bytes and on equal shares (float rounding only)."""


@dataclass
class Transfer:
    """One message crossing the network: the row it leaves in ``messages.csv``.

    ``size`` in bytes, times in virtual seconds; ``t_recv`` is ``None`` unless delivered and
    ``t_drop`` is ``None`` unless dropped.
    """

    id: int
    src: str
    dst: str
    kind: str
    size: int
    t_send: float
    path: tuple[str, ...]
    data: Any = None
    status: str = IN_FLIGHT
    t_recv: float | None = None
    t_drop: float | None = None
    hops: tuple[Hop, ...] = ()
    remaining: float = 0.0
    rate: float = 0.0
    active: bool = False
    done: simpy.Event | None = field(default=None, repr=False)


class Network:
    """Moves byte counts between the nodes of a :class:`Topology` in virtual time.

    :meth:`send` returns a SimPy event that succeeds with the :class:`Transfer` once it is
    delivered or dropped (look at ``transfer.status``). Counters: ``link_bytes`` (bytes
    transmitted per directed hop), ``class_bytes`` (per link class such as ``end-edge``),
    ``kind_bytes`` (message bytes per kind and status), and the totals ``bytes_sent``,
    ``bytes_delivered``, ``bytes_dropped``.
    """

    def __init__(
        self,
        env: simpy.Environment,
        topology: Topology,
        bandwidth_factor: float = 1.0,
        latency_factor: float = 1.0,
    ) -> None:
        self.env = env
        self.topology = topology
        self.bandwidth_factor = bandwidth_factor
        self.latency_factor = latency_factor
        self.transfers: list[Transfer] = []
        self.down: set[frozenset[str]] = set()
        self.link_bytes: dict[Hop, float] = defaultdict(float)
        self.class_bytes: dict[str, float] = defaultdict(float)
        self.kind_bytes: dict[str, dict[str, int]] = defaultdict(
            lambda: {"sent": 0, DELIVERED: 0, DROPPED: 0}
        )
        self.bytes_sent = 0
        self.bytes_delivered = 0
        self.bytes_dropped = 0
        self._pending: dict[int, Transfer] = {}  # in the latency phase
        self._active: dict[int, Transfer] = {}  # in the bandwidth phase
        self._last_advance = 0.0
        self._wakeup_generation = 0
        self._capacity: dict[Hop, float] = {}
        self.listeners: list[Callable[[Transfer], None]] = []

    # ------------------------------------------------------------------ public API
    def capacity(self, hop: Hop) -> float:
        """Capacity of a directed hop in bytes/s, bandwidth factor applied."""
        if hop not in self._capacity:
            link = self.topology.link(*hop)
            self._capacity[hop] = mbps_to_bytes_per_s(link.mbps(hop[0])) * self.bandwidth_factor
        return self._capacity[hop]

    def route_latency(self, hops: tuple[Hop, ...]) -> float:
        """Latency phase of a route in seconds: ``λ · Σ latency_h``."""
        return self.latency_factor * sum(self.topology.link(*h).latency_s for h in hops)

    def send(
        self, src: str, dst: str, size: int, kind: str = "data", data: Any = None
    ) -> simpy.Event:
        """Start sending ``size`` bytes from ``src`` to ``dst`` now.

        Returns an event that succeeds with the :class:`Transfer` when it is delivered or
        dropped. ``data`` travels with the transfer untouched (e.g. the encoded message).
        Raises ``KeyError`` for an unknown node and ``NoRouteError`` if no path exists.
        """
        path = self.topology.path(src, dst)
        now = self.env.now
        transfer = Transfer(
            id=len(self.transfers),
            src=src,
            dst=dst,
            kind=kind,
            size=int(size),
            t_send=now,
            path=path,
            data=data,
            hops=tuple(zip(path[:-1], path[1:], strict=True)),
            remaining=float(size),
            done=self.env.event(),
        )
        self.transfers.append(transfer)
        self.bytes_sent += transfer.size
        self.kind_bytes[kind]["sent"] += transfer.size
        if any(frozenset(h) in self.down for h in transfer.hops):
            self._finish(transfer, DROPPED)
            return transfer.done
        self._pending[transfer.id] = transfer
        latency = self.route_latency(transfer.hops)
        self.env.timeout(latency).callbacks.append(lambda _: self._start_bandwidth_phase(transfer))
        return transfer.done

    def set_link(self, a: str, b: str, up: bool) -> None:
        """Bring the link between ``a`` and ``b`` up or down now.

        Taking a link down drops every transfer whose route uses it, in either phase.
        """
        key = self.topology.link(a, b).key
        if up:
            self.down.discard(key)
            return
        self.down.add(key)
        self._advance()
        for table in (self._pending, self._active):
            for transfer in list(table.values()):
                if any(frozenset(h) == key for h in transfer.hops):
                    del table[transfer.id]
                    self._finish(transfer, DROPPED)
        self._reallocate()

    @property
    def in_flight(self) -> int:
        """Number of transfers not yet delivered or dropped."""
        return len(self._pending) + len(self._active)

    # ------------------------------------------------------------------ internals
    def _start_bandwidth_phase(self, transfer: Transfer) -> None:
        if self._pending.pop(transfer.id, None) is None:
            return  # dropped during its latency phase
        if not transfer.hops or transfer.size == 0:
            self._finish(transfer, DELIVERED)
            return
        self._advance()
        transfer.active = True
        self._active[transfer.id] = transfer
        self._reallocate()

    def _advance(self) -> None:
        """Move every active flow forward to now at its current rate."""
        now = self.env.now
        dt = now - self._last_advance
        if dt > 0:
            for transfer in self._active.values():
                transfer.remaining -= transfer.rate * dt
        self._last_advance = now

    def _reallocate(self) -> None:
        """Max-min fair rates by progressive filling, then schedule the next completion."""
        users: dict[Hop, list[Transfer]] = defaultdict(list)
        for transfer in self._active.values():
            transfer.rate = 0.0
            for hop in transfer.hops:
                users[hop].append(transfer)
        spare = {hop: self.capacity(hop) for hop in users}
        count = {hop: len(flows) for hop, flows in users.items()}
        frozen: set[int] = set()
        while count:
            share = min(spare[h] / n for h, n in count.items())
            limit = share * (1 + _REL_TOL)
            bottlenecks = [h for h, n in count.items() if spare[h] / n <= limit]
            for hop in bottlenecks:
                for transfer in users[hop]:
                    if transfer.id in frozen:
                        continue
                    frozen.add(transfer.id)
                    transfer.rate = share
                    for h in transfer.hops:
                        spare[h] -= share
                        count[h] -= 1
                        if count[h] == 0:
                            del count[h]
        self._schedule_next_completion()

    def _schedule_next_completion(self) -> None:
        self._wakeup_generation += 1
        if not self._active:
            return
        delay = min(t.remaining / t.rate for t in self._active.values())
        generation = self._wakeup_generation
        self.env.timeout(max(delay, 0.0)).callbacks.append(lambda _: self._on_wakeup(generation))

    def _on_wakeup(self, generation: int) -> None:
        if generation != self._wakeup_generation:
            return  # superseded by a later reallocation
        self._advance()
        finished = [t for t in self._active.values() if t.remaining <= _REL_TOL * max(1.0, t.size)]
        for transfer in finished:
            del self._active[transfer.id]
            self._finish(transfer, DELIVERED)
        self._reallocate()

    def _finish(self, transfer: Transfer, status: str) -> None:
        now = self.env.now
        if status == DELIVERED:
            transfer.t_recv = now
            transmitted = float(transfer.size)
            transfer.remaining = 0.0
            self.bytes_delivered += transfer.size
        else:
            transfer.t_drop = now
            transmitted = transfer.size - transfer.remaining if transfer.active else 0.0
            self.bytes_dropped += transfer.size
        transfer.status = status
        transfer.active = False
        transfer.rate = 0.0
        self.kind_bytes[transfer.kind][status] += transfer.size
        for hop in transfer.hops:
            self.link_bytes[hop] += transmitted
            self.class_bytes[self.topology.link_class(*hop)] += transmitted
        for listener in self.listeners:
            listener(transfer)
        transfer.done.succeed(transfer)
