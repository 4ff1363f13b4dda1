"""Energy of the nodes of a finished world: power × time in each state (docs/energy.md).

For node n with draws ``busy_w``, ``tx_w``, ``rx_w``, ``idle_w`` (W) over the run
[0, T] (s):

* compute_j = busy_w · Σ_jobs (end − start), the compute model's busy seconds (a node
  with several slots counts each busy slot);
* tx_j = tx_w · |∪ bandwidth phases of the transfers n sends|;
* rx_j = rx_w · |∪ bandwidth phases of the transfers n receives|;
* idle_j = idle_w · (T − |∪ of all of n's job and transfer intervals|).

A transfer's bandwidth phase is [t_send + L, t_end] (L its route's latency phase, t_end
its delivery or drop, or T for one still in flight); a transfer dropped in its latency
phase has none. Every interval is clipped to [0, T].
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from simnet.engine.network import DELIVERED, DROPPED
from simnet.engine.world import World
from simnet.topology.graph import Power

Interval = tuple[float, float]
"""(start, end) in virtual seconds."""


class Occupancy:
    """t ↦ ∫₀ᵗ f(τ) dτ in seconds for ``f(τ)`` the number of ``intervals`` covering τ
    (``union=False``), or 1 where any does and 0 elsewhere (``union=True``)."""

    def __init__(self, intervals: Iterable[Interval], union: bool) -> None:
        changes: dict[float, int] = {}
        for start, end in intervals:
            if end > start:
                changes[start] = changes.get(start, 0) + 1
                changes[end] = changes.get(end, 0) - 1
        self.times = sorted(changes)
        self.area: list[float] = []
        self.level: list[int] = []
        area, level, previous = 0.0, 0, 0.0
        for t in self.times:
            area += (min(level, 1) if union else level) * (t - previous)
            level += changes[t]
            self.area.append(area)
            self.level.append(min(level, 1) if union else level)
            previous = t

    def until(self, t: float) -> float:
        """∫₀ᵗ f in seconds."""
        k = bisect_right(self.times, t) - 1
        if k < 0:
            return 0.0
        return self.area[k] + self.level[k] * (t - self.times[k])


@dataclass(frozen=True)
class NodeEnergy:
    """Joules a node drew over [0, t] in each state."""

    compute_j: float = 0.0
    tx_j: float = 0.0
    rx_j: float = 0.0
    idle_j: float = 0.0

    @property
    def total_j(self) -> float:
        return self.compute_j + self.tx_j + self.rx_j + self.idle_j

    def to_dict(self) -> dict[str, float]:
        return {
            "compute_j": self.compute_j,
            "tx_j": self.tx_j,
            "rx_j": self.rx_j,
            "idle_j": self.idle_j,
            "total_j": self.total_j,
        }


class EnergyMeter:
    """The occupancies of the nodes of ``world`` that draw power, over [0, ``t_end``]
    (call after ``Network.settle``), and the energy they give at any t ≤ ``t_end``."""

    def __init__(self, world: World, t_end: float) -> None:
        self.world = world
        self.t_end = t_end
        self.powered = [n for n, m in world.nodes.items() if m.spec.power != Power()]
        """The nodes that draw power in some state, in topology order."""
        sends: dict[str, list[Interval]] = {n: [] for n in self.powered}
        receives: dict[str, list[Interval]] = {n: [] for n in self.powered}
        for transfer in world.network.transfers if self.powered else ():
            if len(transfer.path) < 2 or (transfer.src not in sends and transfer.dst not in sends):
                continue
            end = {DELIVERED: transfer.t_recv, DROPPED: transfer.t_drop}.get(transfer.status)
            end = t_end if end is None else min(end, t_end)
            phase = (transfer.t_send + transfer.route.latency, end)  # type: ignore[union-attr]
            sends.get(transfer.src, []).append(phase)
            receives.get(transfer.dst, []).append(phase)
        self._busy: dict[str, Occupancy] = {}
        self._tx: dict[str, Occupancy] = {}
        self._rx: dict[str, Occupancy] = {}
        self._active: dict[str, Occupancy] = {}
        for node_id in self.powered:
            jobs = [(s, min(e, t_end)) for s, e in world.nodes[node_id].busy]
            self._busy[node_id] = Occupancy(jobs, union=False)
            self._tx[node_id] = Occupancy(sends[node_id], union=True)
            self._rx[node_id] = Occupancy(receives[node_id], union=True)
            everything = [*jobs, *sends[node_id], *receives[node_id]]
            self._active[node_id] = Occupancy(everything, union=True)

    def node(self, node_id: str, t: float | None = None) -> NodeEnergy:
        """What ``node_id`` drew over [0, t] (default: the whole run)."""
        if node_id not in self._busy:
            return NodeEnergy()
        t = self.t_end if t is None else t
        power = self.world.nodes[node_id].spec.power
        return NodeEnergy(
            compute_j=power.busy_w * self._busy[node_id].until(t),
            tx_j=power.tx_w * self._tx[node_id].until(t),
            rx_j=power.rx_w * self._rx[node_id].until(t),
            idle_j=power.idle_w * (t - self._active[node_id].until(t)),
        )

    def by_tier(self, t: float | None = None) -> dict[str, float]:
        """Joules drawn over [0, t] by the nodes of each tier (every tier present),
        summed in node order."""
        out = {m.tier: 0.0 for m in self.world.nodes.values()}
        for node_id in self.powered:
            tier = self.world.nodes[node_id].tier
            out[tier] += self.node(node_id, t).total_j
        return out
