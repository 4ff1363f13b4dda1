"""Flow-level network model (SimGrid CM02 style) on a SimPy clock.

A message of ``S`` bytes sent at ``t_send`` over the static route ``r`` (directed hops)

1. waits the route latency ``L = λ · Σ_{h∈r} latency_h`` (latency phase), then
2. becomes a flow that transmits at rate ``x_f(t)`` bytes/s, where the rates of all active
   flows are the max-min fair allocation (progressive filling) under the capacities
   ``C_h = β · bandwidth_mbps_h · 10⁶ / 8`` bytes/s of every directed hop ``h``, recomputed
   whenever a flow starts, ends or is dropped (once for flows starting at one instant);
   ``network.model`` ``cm02``/``lv08`` weight the sharing (:mod:`simnet.engine.sharing`);
3. is received at ``t_recv``, the instant its last byte is transmitted:
   ``∫_{t_send+L}^{t_recv} x_f(t) dt = S``.

Rates are constant between events, so the next completion is ``now + min_f R_f / x_f``
(``R_f`` the bytes left); the flows attaining that minimum (to ``REL_TOL``) are received at
that wake-up whatever float rounding left of their bytes, so the clock always advances.

``λ`` and ``β`` are ``network.latency_factor`` and ``network.bandwidth_factor``. A flow whose
route uses a link that is down when it is sent, or that goes down before it is received,
is dropped. docs/network-model.md states the same rules with worked examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from simnet.actor import DELIVERED, DROPPED, IN_FLIGHT
from simnet.engine.bottleneck import SharedBottleneck
from simnet.engine.flows import FlowTable
from simnet.engine.maxmin import REL_TOL, max_min_rates, weighted_max_min
from simnet.engine.sharing import CROSSTRAFFIC_WEIGHT, Sharing
from simnet.engine.traffic_counts import TrafficCounts, count_traffic
from simnet.topology.graph import Hop, Topology, mbps_to_bytes_per_s

GROUP_MIN = 32
"""Active flows from which a set sharing one bottleneck is kept in virtual time
(:class:`~simnet.engine.bottleneck.SharedBottleneck`) instead of re-solved on every change."""


@dataclass(slots=True)
class Transfer:
    """One message crossing the network: the row it leaves in ``messages.csv``.

    ``size`` in bytes, times in virtual seconds; ``t_recv`` is ``None`` unless delivered and
    ``t_drop`` is ``None`` unless dropped; ``remaining`` is the bytes not yet transmitted
    when it was dropped; ``carried`` the bytes it put on each link of its route (``size``
    once delivered, what it had transmitted when dropped or when the run stopped);
    ``phase`` what the workload says it belongs to (``training``, ``inference``, …).
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
    phase: str = "training"
    carried: int = 0
    t_recv: float | None = None
    t_drop: float | None = None
    hops: tuple[Hop, ...] = ()
    classes: tuple[str, ...] = ()
    """The link classes (``end-edge``, …) its route crosses, each once, in route order."""
    remaining: float = 0.0
    active: bool = False
    done: simpy.Event | None = field(default=None, repr=False)
    route: Route | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Route:
    """What the network needs of a static route, worked out once per (src, dst): its
    ``path`` and ``hops``, their ids, the hops of the reverse route its ACKs load
    (cross-traffic; else none), the ``entry_weight`` of each (1, then 0.05), the ``links``
    whose failure drops a flow on it, the link ``classes`` it crosses, its latency phase
    (seconds) and the flow's sharing ``penalty`` and ``bound`` (bytes/s). Hops are
    numbered by the network (``entry_hops``: the route's, then the reverse route's)."""

    path: tuple[str, ...]
    hops: tuple[Hop, ...]
    entry_hops: tuple[int, ...]
    entry_weight: tuple[float, ...]
    links: frozenset
    classes: tuple[str, ...]
    latency: float
    penalty: float
    bound: float
    solo_rate: float
    """Its rate (bytes/s) when it is the only active flow of the network: the solver's
    one-flow answer, worked out once."""


class Network:
    """Moves byte counts between the nodes of a :class:`Topology` in virtual time.

    :meth:`send` returns a SimPy event that succeeds with the :class:`Transfer` once it is
    delivered or dropped (look at ``transfer.status``); ``transfers`` lists them all, in
    the order sent. :meth:`counts` adds them up (message and link bytes per phase, kind,
    link class and hop). ``listeners`` are called with every transfer as it is delivered
    or dropped.
    """

    def __init__(
        self,
        env: simpy.Environment,
        topology: Topology,
        bandwidth_factor: float = 1.0,
        latency_factor: float = 1.0,
        sharing: Sharing | None = None,
    ) -> None:
        self.env = env
        self.topology = topology
        self.bandwidth_factor = bandwidth_factor
        self.latency_factor = latency_factor
        self.sharing = sharing or Sharing()
        self.transfers: list[Transfer] = []
        self.down: set[frozenset[str]] = set()
        self.down_nodes: set[str] = set()
        self.default_phase = "training"
        self.phases: dict[str, str] = {}
        """Phase of each message kind that is not in ``default_phase`` (set by workloads)."""
        self.listeners: list[Callable[[Transfer], None]] = []
        hops = [h for link in topology.links.values() for h in ((link.a, link.b), (link.b, link.a))]
        self._hop_id = {hop: i for i, hop in enumerate(hops)}
        self._hop_class = {hop: topology.link_class(*hop) for hop in hops}
        self._class_of = [self._hop_class[hop] for hop in hops]  # by hop id
        self._link_of = [topology.link(*hop).key for hop in hops]  # by hop id
        self._hop_raw = [mbps_to_bytes_per_s(topology.link(*h).mbps(h[0])) for h in hops]
        self._hop_latency = [topology.link(*h).latency_s for h in hops]
        self._capacity = np.array([raw * bandwidth_factor for raw in self._hop_raw])
        self._capacity_of = self._capacity.tolist()  # the same, as Python floats
        self._pending: dict[int, Transfer] = {}  # in the latency phase
        self._active: list[Transfer] = []  # in the bandwidth phase, in activation order
        self._solo: Transfer | None = None  # the network's one flow, kept out of _flows
        self._solo_rate = 0.0
        self._solo_start = 0.0  # when its bandwidth phase starts (or started)
        self._flows = FlowTable(self._capacity)  # aligned with _active
        self._group: SharedBottleneck | None = None  # holds every active flow when set
        self._group_check = 0  # solves until the next look for a shared bottleneck
        self._routes: dict[tuple[str, str], Route] = {}
        self._last_advance = 0.0
        self._solve_pending = False
        self._wakeup_generation = 0
        self._due: list[int] = []  # indices of the flows the wake-up is for

    # ------------------------------------------------------------------ public API
    def capacity(self, hop: Hop) -> float:
        """Capacity of a directed hop in bytes/s, bandwidth factor applied."""
        return float(self._capacity[self._hop_id[hop]])

    def phase(self, kind: str) -> str:
        """The phase messages of ``kind`` belong to."""
        return self.phases.get(kind, self.default_phase)

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
        route = self._routes.get((src, dst)) or self._route(src, dst)
        now = self.env.now
        transfer = Transfer(
            id=len(self.transfers),
            src=src,
            dst=dst,
            kind=kind,
            size=int(size),
            t_send=now,
            path=route.path,
            data=data,
            hops=route.hops,
            remaining=float(size),
            done=self.env.event(),
            route=route,
            phase=self.phase(kind),
            classes=route.classes,
        )
        self.transfers.append(transfer)
        if (self.down and route.links & self.down) or (
            self.down_nodes and self.down_nodes.intersection(route.path)
        ):
            self._finish(transfer, DROPPED)
            return transfer.done
        if self._solo is not None:
            self._materialize()
        if self._idle() and route.solo_rate > 0 and transfer.size:
            self._start_solo(transfer, now + route.latency, now)
            return transfer.done
        self._pending[transfer.id] = transfer
        self.env.timeout(route.latency).callbacks.append(
            lambda _: self._start_bandwidth_phase(transfer)
        )
        return transfer.done

    def _route(self, src: str, dst: str) -> Route:
        """Work out (and keep) the :class:`Route` from ``src`` to ``dst``."""
        path = self.topology.path(src, dst)
        hops = tuple(zip(path[:-1], path[1:], strict=True))
        back: tuple[Hop, ...] = ()
        if self.sharing.weighted and self.sharing.crosstraffic and hops:
            back_path = self.topology.path(dst, src)
            back = tuple(zip(back_path[:-1], back_path[1:], strict=True))
        hop_id = self._hop_id
        entry_hops = tuple([hop_id[h] for h in hops] + [hop_id[h] for h in back])
        ids = entry_hops[: len(hops)]
        latency = sum([self._hop_latency[i] for i in ids])
        entry_weight = (1.0,) * len(hops) + (CROSSTRAFFIC_WEIGHT,) * len(back)
        bound = self.sharing.bound(latency, self.bandwidth_factor)
        capacity = self._capacity_of
        solo_rate = 0.0
        if entry_hops:  # as max_min_rates / weighted_max_min answer for one flow
            if self.sharing.weighted:
                weighted = (capacity[i] / w for i, w in zip(entry_hops, entry_weight, strict=True))
                solo_rate = min(min(weighted), bound)
            else:
                solo_rate = min(capacity[i] for i in entry_hops)
        route = Route(
            path=path,
            hops=hops,
            entry_hops=entry_hops,
            entry_weight=entry_weight,
            links=frozenset([self._link_of[i] for i in entry_hops]),
            classes=tuple(dict.fromkeys([self._class_of[i] for i in ids])),
            latency=self.latency_factor * latency,
            penalty=self.sharing.penalty(
                latency, [self._hop_raw[i] for i in ids], self.latency_factor
            ),
            bound=bound,
            solo_rate=solo_rate,
        )
        self._routes[src, dst] = route
        return route

    def set_link(self, a: str, b: str, up: bool) -> None:
        """Bring the link between ``a`` and ``b`` up or down now.

        Taking a link down drops every transfer whose route uses it, in either phase.
        """
        key = self.topology.link(a, b).key
        if up:
            self.down.discard(key)
            return
        self.down.add(key)
        self._drop_where(lambda t: key in t.route.links)

    def set_node(self, node: str, up: bool) -> None:
        """Bring ``node`` up or down now. A down node sends, receives and forwards nothing:
        every transfer whose route starts, ends or passes there is dropped, in either phase.
        """
        if up:
            self.down_nodes.discard(node)
            return
        self.down_nodes.add(node)
        self._drop_where(lambda t: node in t.path)

    def _drop_where(self, hit: Callable[[Transfer], bool]) -> None:
        """Drop every transfer in flight for which ``hit`` is true."""
        self._materialize()
        self._leave_group()
        for transfer in [t for t in self._pending.values() if hit(t)]:
            del self._pending[transfer.id]
            self._finish(transfer, DROPPED)
        self._unsolo()
        self._advance()
        self._remove([i for i, t in enumerate(self._active) if hit(t)], DROPPED)
        self._reallocate()

    def counts(self) -> TrafficCounts:
        """Message and link byte counts of every transfer so far (worked out on each call;
        link bytes include what transfers in flight carried once :meth:`settle` ran)."""
        return count_traffic(self.transfers, self._hop_class)

    @property
    def bytes_sent(self) -> int:
        """Message bytes sent so far (:meth:`counts` has the rest)."""
        return self.counts().bytes_sent

    @property
    def bytes_delivered(self) -> int:
        """Message bytes delivered so far."""
        return self.counts().bytes_delivered

    @property
    def bytes_dropped(self) -> int:
        """Message bytes dropped so far."""
        return self.counts().bytes_dropped

    @property
    def in_flight(self) -> int:
        """Number of transfers not yet delivered or dropped."""
        group = len(self._group) if self._group is not None else 0
        return len(self._pending) + len(self._active) + (self._solo is not None) + group

    # ------------------------------------------------------------------ internals
    def _start_bandwidth_phase(self, transfer: Transfer) -> None:
        if self._pending.pop(transfer.id, None) is None:
            return  # dropped during its latency phase
        if not transfer.hops or transfer.size == 0:
            self._finish(transfer, DELIVERED)
            return
        transfer.active = True
        route = transfer.route
        if (
            not self._active and self._solo is None and not self._solve_pending
            and self._group is None and route.solo_rate > 0 and self.env.peek() > self.env.now
        ):  # fmt: skip
            self._start_solo(transfer, self.env.now, self.env.now)
            return
        if self._group is not None:
            self._group.advance(self.env.now)
            if self._group.add(transfer, float(transfer.size)):
                self._group.settle_level()
                self._group_wakeup()
                return
            self._leave_group()
        self._unsolo()
        self._advance()
        self._active.append(transfer)
        self._flows.add(transfer.size, route)
        if self._solve_pending:
            return
        if self.env.peek() > self.env.now:  # nothing else happens at this instant
            self._reallocate()
        else:  # one re-solve for every flow starting at this instant, after the last
            self._solve_pending = True
            self.env.timeout(0).callbacks.append(self._solve_now)

    def _idle(self) -> bool:
        """Whether no flow is in either phase (nor a re-solve due)."""
        return not (
            self._pending or self._active or self._solo or self._solve_pending or self._group
        )

    def _start_solo(self, transfer: Transfer, start: float, now: float) -> None:
        """Let ``transfer`` be the network's only flow, its bandwidth phase starting at
        ``start`` (``now``, or the end of its latency phase when it is sent into an idle
        network): it runs at its route's one-flow rate with no solver, delivered by one
        wake-up at the instant :meth:`_reallocate` would give. Anything else the network
        does first makes it an ordinary flow again (:meth:`_materialize`)."""
        self._solo, self._solo_rate, self._solo_start = transfer, transfer.route.solo_rate, start
        transfer.active = start <= now
        self._last_advance = start
        self._wakeup_generation += 1
        self._due = [0]
        generation = self._wakeup_generation
        end = start + transfer.remaining / self._solo_rate
        self._timeout_at(end, now).callbacks.append(lambda _: self._on_wakeup(generation))

    def _timeout_at(self, when: float, now: float) -> simpy.Timeout:
        """A timeout that fires at ``when`` (virtual seconds, ≥ ``now``, the clock's time)
        exactly: the delay is nudged by float steps until ``now + delay == when`` (a few
        tries at most)."""
        delay = when - now
        if now + delay != when:
            for _ in range(4):
                delay = math.nextafter(delay, math.inf if now + delay < when else -math.inf)
                if now + delay == when:
                    break
        return self.env.timeout(max(delay, 0.0))

    def _materialize(self) -> None:
        """Make a solo flow sent into an idle network an ordinary one before anything else
        happens: still in its latency phase, it waits for its bandwidth phase as any sent
        flow does (its wake-up cancelled); past it, it is the active solo flow."""
        transfer = self._solo
        if transfer is None or transfer.active:
            return
        if self.env.now >= self._solo_start:
            transfer.active = True
            return
        self._solo = None
        self._wakeup_generation += 1
        self._pending[transfer.id] = transfer
        self._timeout_at(self._solo_start, self.env.now).callbacks.append(
            lambda _: self._start_bandwidth_phase(transfer)
        )

    def _unsolo(self) -> None:
        """Move the solo flow (if any) into the arrays, as if it had been there all along
        (its wake-up stays scheduled until the next re-solve); a solo flow sent into an
        idle network is materialized by then (:meth:`_materialize`)."""
        transfer = self._solo
        if transfer is None:
            return
        self._solo = None
        flows = self._flows
        flows.add(transfer.size, transfer.route)
        flows.take_touched()  # solved already, as the solver leaves a lone flow
        flows.rates[0] = self._solo_rate
        self._active.append(transfer)

    def _solve_now(self, _: simpy.Event) -> None:
        self._solve_pending = False
        self._reallocate()

    def _advance(self) -> None:
        """Move every active flow forward to now at its current rate."""
        now = self.env.now
        if now > self._last_advance and self._active:
            self._flows.remaining -= self._flows.rates * (now - self._last_advance)
        self._last_advance = now

    def _remove(self, indices: list[int], status: str) -> None:
        """Take the active flows at ``indices`` (ascending) out and finish them with
        ``status``."""
        if not indices:
            return
        leaving = [self._active[i] for i in indices]
        for i, transfer in zip(indices, leaving, strict=True):
            transfer.remaining = max(0.0, float(self._flows.remaining[i]))
        if len(indices) == 1:
            del self._active[indices[0]]
        else:
            gone = set(indices)
            self._active = [t for i, t in enumerate(self._active) if i not in gone]
        self._flows.remove(indices)
        for transfer in leaving:
            self._finish(transfer, status)

    def _reallocate(self) -> None:
        """Max-min fair rates for the active flows, then the next completion wake-up."""
        self._wakeup_generation += 1
        flows = self._flows
        if not flows.n:
            return
        if flows.n >= GROUP_MIN and self._enter_group():
            return
        self._solve()
        if flows.n == 1:
            delay = float(flows.remaining[0] / flows.rates[0])
            self._due = [0]
        else:
            delays = flows.remaining / flows.rates
            delay = float(delays.min())
            self._due = np.flatnonzero(delays <= delay * (1 + REL_TOL)).tolist()
        self._wake_in(delay)

    def _wake_in(self, delay: float) -> None:
        """Schedule the wake-up of the current generation ``delay`` seconds from now."""
        generation = self._wakeup_generation
        self.env.timeout(max(delay, 0.0)).callbacks.append(lambda _: self._on_wakeup(generation))

    def _enter_group(self) -> bool:
        """Move the active flows into a :class:`SharedBottleneck` if they all cross one hop
        and fit it (looked for once every ``n`` solves at most); say whether they did."""
        self._group_check -= 1
        if self._group_check > 0:
            return False
        flows = self._flows
        self._group_check = flows.n
        hop = flows.common_hop()
        if hop is None:
            return False
        group = SharedBottleneck(hop, self._capacity_of, self.sharing.weighted)
        group.advance(self.env.now)
        for i, transfer in enumerate(self._active):
            if not group.add(transfer, float(flows.remaining[i])):
                return False
        group.settle_level()
        self._group, self._active = group, []
        flows.remove(list(range(flows.n)))
        self._group_wakeup()
        return True

    def _leave_group(self) -> None:
        """Put the flows of the shared-bottleneck group (if any) back in the arrays, with
        the bytes they have left, to be re-solved."""
        group = self._group
        if group is None:
            return
        self._group = None
        self._group_check = len(group)
        group.advance(self.env.now)
        self._last_advance = self.env.now
        flows = self._flows
        for transfer, left in group.flows():
            flows.add(transfer.size, transfer.route)
            flows.remaining[flows.n - 1] = left
            self._active.append(transfer)

    def _group_wakeup(self) -> None:
        """Schedule the next completion of the shared-bottleneck group."""
        self._wakeup_generation += 1
        self._wake_in(self._group.next_delay())

    def _solve(self) -> None:
        """Set the rates (bytes/s) of the active flows under the network's sharing rule.

        Only the flows a change since the last solve can reach
        (:meth:`FlowTable.touched_component`) are re-solved, the others keeping their
        rates: on a hop with spare capacity that others cross too, the reached flows get
        what the others leave. That is the allocation of the whole network unless the new
        rates saturate such a hop; then every flow connected to the reached ones through
        any hop is re-solved.
        """
        flows = self._flows
        reach = flows.touched_component()
        if not reach.any():  # flows left hops with spare capacity only
            return
        if reach.all():
            flows.rates = self._rates(
                flows.entry_flow, flows.entry_slot, flows.entry_weight, flows.capacity,
                flows.penalty, flows.bound,
            )  # fmt: skip
            flows.solved(flows.loads())
        elif not self._solve_part(reach, check=True):
            self._solve_part(flows.component(reach), check=False)

    def _solve_part(self, reach: np.ndarray, check: bool) -> bool:
        """Re-solve the flows of ``reach`` (a boolean mask), the others' rates fixed, and
        note the hops saturated. With ``check``, say whether no hop that other flows cross
        went from spare capacity to saturated (if one did, nothing is changed)."""
        flows = self._flows
        entries = reach[flows.entry_flow]
        renumber = np.empty(reach.size, dtype=np.intp)
        renumber[reach] = np.arange(np.count_nonzero(reach))
        flow = renumber[flows.entry_flow[entries]]
        slot, weight = flows.entry_slot[entries], flows.entry_weight[entries]
        near = np.bincount(slot, minlength=flows.capacity.size)
        slots = np.flatnonzero(near > 0)  # the slots the reached flows cross
        mixed = near[slots] < flows.users[slots]  # ... and others too
        spare, outside = flows.capacity, 0.0
        if mixed.any():
            crossed = np.zeros(near.size, dtype=bool)
            crossed[slots[mixed]] = True
            outside = flows.loads(crossed[flows.entry_slot] & ~entries)[slots]
            spare = flows.capacity.copy()
            spare[slots] = np.maximum(spare[slots] - outside, 0.0)
        rates = self._rates(flow, slot, weight, spare, flows.penalty[reach], flows.bound[reach])
        load = np.bincount(slot, weights=weight * rates[flow], minlength=near.size)[slots]
        load += outside
        if check and mixed.any():
            saturated = load >= flows.capacity[slots] * (1 - REL_TOL)
            if (saturated & ~flows.saturated[slots] & mixed).any():
                return False
        flows.rates[reach] = rates
        flows.solved(load, slots)
        return True

    def _rates(
        self, entry_flow: np.ndarray, entry_slot: np.ndarray, entry_weight: np.ndarray,
        capacity: np.ndarray, penalty: np.ndarray, bound: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """The solver's rates for the flows of these entries (flows numbered from 0) under
        the slot ``capacity`` (bytes/s)."""
        if self.sharing.weighted:
            return weighted_max_min(entry_flow, entry_slot, entry_weight, capacity, penalty, bound)
        return max_min_rates(entry_flow, entry_slot, capacity, penalty.size)

    def _on_wakeup(self, generation: int) -> None:
        """Deliver the flows this wake-up was scheduled for, whatever rounding left of them.

        Also any flow within ``REL_TOL`` of its size. The elapsed ``now - last`` differs from
        the planned delay by rounding; a residue kept here could need a delay below half a
        float step of ``now`` and wake up at the same instant forever.
        """
        if generation != self._wakeup_generation:
            return  # superseded by a later reallocation
        if self._group is not None:
            self._group.advance(self.env.now)
            delivered = self._group.due()
            if self._group:
                self._group.settle_level()
                self._group_wakeup()
            else:
                self._group = None
                self._wakeup_generation += 1
            for transfer in delivered:
                self._finish(transfer, DELIVERED)
            return
        if self._solo is not None:  # delivered, and nothing is left to share
            transfer, self._solo = self._solo, None
            self._last_advance = self.env.now
            self._wakeup_generation += 1
            self._finish(transfer, DELIVERED)
            return
        self._advance()
        if self._flows.n == 1:
            self._remove([0], DELIVERED)
        else:
            finished = self._flows.remaining <= REL_TOL * self._flows.floor
            finished[self._due] = True
            self._remove(np.flatnonzero(finished).tolist(), DELIVERED)
        self._reallocate()

    def _finish(self, transfer: Transfer, status: str) -> None:
        """Deliver or drop ``transfer`` now: note the time and the whole bytes it carried on
        each hop (all of it when delivered), tell the listeners, fire its event."""
        if status == DELIVERED:
            transfer.t_recv = self.env.now
            transfer.remaining = 0.0
            transfer.carried = transfer.size
        else:
            transfer.t_drop = self.env.now
            if transfer.active:
                transfer.carried = _whole(transfer.size, transfer.size - transfer.remaining)
        transfer.status = status
        transfer.active = False
        for listener in self.listeners:
            listener(transfer)
        transfer.done.succeed(transfer)

    def settle(self) -> None:
        """Count what the transfers still in flight have carried so far; call once, when
        the clock has stopped (link counters then include in-flight bytes)."""
        self._materialize()
        self._leave_group()
        self._unsolo()
        self._advance()
        for i, transfer in enumerate(self._active):
            transfer.remaining = max(0.0, float(self._flows.remaining[i]))
            transfer.carried = _whole(transfer.size, transfer.size - transfer.remaining)


def _whole(size: int, sent: float) -> int:
    """``sent`` bytes of a ``size``-byte message, rounded to whole bytes within 0..size."""
    return min(size, max(0, round(sent)))
