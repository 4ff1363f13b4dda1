"""The active flows of the network model as aligned numpy arrays, kept up to date as flows
start and end, so that a re-solve touches no Python object per flow and only the hops
some active flow crosses. Arrays grow by doubling: adding a flow writes into spare room."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simnet.engine.maxmin import REL_TOL

if TYPE_CHECKING:
    from simnet.engine.network import Route

FLOW_FIELDS = ("_remaining", "_rates", "_floor", "_penalty", "_bound", "_fresh")
ENTRY_FIELDS = ("_entry_flow", "_entry_slot", "_entry_weight")


def _grown(array: np.ndarray, need: int) -> np.ndarray:
    """``array`` with room for at least ``need`` items (doubling)."""
    if need <= array.size:
        return array
    bigger = np.zeros(max(need, 2 * array.size, 8), dtype=array.dtype)
    bigger[: array.size] = array
    return bigger


class _Used:
    """The used part ``_NAME[:count]`` of a growable array ``_NAME`` (assignable)."""

    def __init__(self, count: str) -> None:
        self.count = count

    def __set_name__(self, owner: type, name: str) -> None:
        self.array = f"_{name}"

    def __get__(self, table: FlowTable, owner: type | None = None) -> np.ndarray:
        return getattr(table, self.array)[: getattr(table, self.count)]

    def __set__(self, table: FlowTable, value: np.ndarray) -> None:
        getattr(table, self.array)[: getattr(table, self.count)] = value


class FlowTable:
    """Per flow (in activation order): bytes ``remaining``, current ``rates`` (bytes/s),
    ``floor`` (its size, at least 1 B), sharing ``penalty`` and ``bound``, ``fresh``
    (added since the last :meth:`solved`); per entry (a flow on a hop): ``entry_flow``,
    ``entry_slot`` and ``entry_weight`` (1 on its route, 0.05 on its reverse route).

    Hops are numbered by *slot*: a hop crossed by some active flow holds a slot, whose
    capacity (bytes/s) is ``capacity[slot]``; a slot no flow uses any more is reused.
    ``saturated[slot]`` says whether the hop had no spare capacity at the last solve (a
    hop that joined since counts as saturated).
    """

    def __init__(self, capacity: np.ndarray) -> None:
        self._hop_capacity = capacity
        self.capacity = np.zeros(0)
        self._slot_of: dict[int, int] = {}
        self._hop_of: list[int] = []
        self._free: list[int] = []
        self._users = np.zeros(0, dtype=np.intp)
        self.saturated = np.zeros(0, dtype=bool)
        self.n = self.entries = 0
        self._remaining, self._rates, self._floor = np.zeros(0), np.zeros(0), np.zeros(0)
        self._penalty, self._bound = np.zeros(0), np.zeros(0)
        self._fresh = np.zeros(0, dtype=bool)
        self._entry_flow = np.zeros(0, dtype=np.intp)
        self._entry_slot = np.zeros(0, dtype=np.intp)
        self._entry_weight = np.zeros(0)
        self._touched: list[np.ndarray] = []

    def __len__(self) -> int:
        return self.n

    remaining = _Used("n")
    rates = _Used("n")
    floor = _Used("n")
    penalty = _Used("n")
    bound = _Used("n")
    fresh = _Used("n")
    entry_flow = _Used("entries")
    entry_slot = _Used("entries")
    entry_weight = _Used("entries")

    @property
    def users(self) -> np.ndarray:
        """Active flows crossing each slot (aligned with ``capacity``)."""
        return self._users

    def _slot(self, hop: int) -> int:
        slot = self._slot_of.get(hop)
        if slot is None:
            if self._free:
                slot = self._free.pop()
                self._hop_of[slot] = hop
            else:
                slot = len(self._hop_of)
                self._hop_of.append(hop)
                self.capacity = _grown(self.capacity, slot + 1)
                self._users = _grown(self._users, slot + 1)
                self.saturated = _grown(self.saturated, slot + 1)
            self.capacity[slot] = self._hop_capacity[hop]
            self.saturated[slot] = True
            self._slot_of[hop] = slot
        self._users[slot] += 1
        return slot

    def add(self, size: int, route: Route) -> None:
        """Append a flow of ``size`` bytes on ``route`` (its hops, then its ACKs' hops),
        at rate 0 until the next re-solve."""
        i, e = self.n, self.entries
        hops = route.entry_hops
        if i == self._remaining.size:
            for name in FLOW_FIELDS:
                setattr(self, name, _grown(getattr(self, name), i + 1))
        if e + len(hops) > self._entry_flow.size:
            for name in ENTRY_FIELDS:
                setattr(self, name, _grown(getattr(self, name), e + len(hops)))
        self._remaining[i], self._rates[i], self._floor[i] = float(size), 0.0, max(1.0, size)
        self._penalty[i], self._bound[i], self._fresh[i] = route.penalty, route.bound, True
        end = e + len(hops)
        self._entry_flow[e:end] = i
        self._entry_slot[e:end] = [self._slot(h) for h in hops]
        self._touched.append(self._entry_slot[e:end].copy())
        self._entry_weight[e:end] = route.entry_weight
        self.n, self.entries = i + 1, end

    def _release(self, slots: np.ndarray) -> None:
        """Free the slots of ``slots`` (one entry each, leaving) that no flow uses any more."""
        self._touched.append(slots)
        for slot in set(slots[self._users[slots] == 0].tolist()):
            del self._slot_of[self._hop_of[slot]]
            self._free.append(slot)

    def remove(self, indices: list[int]) -> None:
        """Take out the flows at ``indices`` (ascending), keeping the others in order."""
        if len(indices) == self.n:
            self._clear()
        elif len(indices) == 1:
            self._remove_one(indices[0])
        else:
            kept = np.ones(self.n, dtype=bool)
            kept[indices] = False
            self._keep(kept)

    def _clear(self) -> None:
        """Take out every flow: every slot is free again."""
        self._slot_of.clear()
        self._hop_of.clear()
        self._free.clear()
        self._users[:] = 0
        self.n = self.entries = 0
        self._touched.clear()

    def _remove_one(self, i: int) -> None:
        """Take out flow ``i``: its entries are contiguous, since entries stay in flow order."""
        n, total = self.n, self.entries
        first = int(np.searchsorted(self.entry_flow, i))
        last = int(np.searchsorted(self.entry_flow, i, side="right"))
        gone = self._entry_slot[first:last].copy()
        self._users[gone] -= 1  # a route crosses each directed hop once
        for name in FLOW_FIELDS:
            array = getattr(self, name)
            array[i : n - 1] = array[i + 1 : n]
        width = last - first
        for name in ENTRY_FIELDS:
            array = getattr(self, name)
            array[first : total - width] = array[last:total]
        self.n, self.entries = n - 1, total - width
        self._entry_flow[first : self.entries] -= 1
        self._release(gone)

    def _keep(self, kept: np.ndarray) -> None:
        """Keep only the flows where ``kept`` (a boolean mask, not all false) is true."""
        entries = kept[self.entry_flow]
        gone = self.entry_slot[~entries]
        self._users -= np.bincount(gone, minlength=self._users.size)
        self._release(gone)
        n = int(kept.sum())
        for name in FLOW_FIELDS:
            array = getattr(self, name)
            array[:n] = array[: self.n][kept]
        renumber = np.cumsum(kept) - 1
        flows = renumber[self.entry_flow[entries]]
        slots, weights = self.entry_slot[entries], self.entry_weight[entries]
        self.n, self.entries = n, flows.size
        self._entry_flow[: self.entries] = flows
        self._entry_slot[: self.entries] = slots
        self._entry_weight[: self.entries] = weights

    def common_hop(self) -> int | None:
        """The hop (id) every active flow crosses on its route (weight 1), the one of least
        capacity if several (lowest id on ties); ``None`` if there is none."""
        slots = np.flatnonzero(self._users == self.n)
        if not self.n or not slots.size:
            return None
        route = self.entry_slot[self.entry_weight == 1.0]
        forward = np.bincount(route, minlength=self._users.size)[slots]
        hops = [self._hop_of[s] for s in slots[forward == self.n].tolist()]
        return min(hops, key=lambda h: (self._hop_capacity[h], h)) if hops else None

    def take_touched(self) -> None:
        """Forget the hops and flows noted since the last :meth:`touched_component`: they
        are solved already."""
        self._touched.clear()
        self.fresh = False

    def touched_component(self) -> np.ndarray:
        """The flows whose rates a change since the last call can reach (a boolean mask):
        the flows added since, and those connected to them or to a hop a flow joined or
        left through hops that were saturated at the last solve. A hop with spare capacity
        passes no change on unless the new rates saturate it, which the caller checks
        (:meth:`simnet.engine.network.Network._solve`)."""
        if self.n == 1:  # the one flow is what changed
            self._touched.clear()
            return np.ones(1, dtype=bool)
        hop = np.zeros(self.capacity.size, dtype=bool)
        for slots in self._touched:
            hop[slots] = True
        self._touched.clear()
        # a fresh flow's hops are among the touched ones
        return self._spread(self.fresh.copy(), hop & self.saturated, self.saturated)

    def component(self, flow: np.ndarray) -> np.ndarray:
        """The flows connected to those of ``flow`` (a boolean mask) through any hops."""
        hop = np.zeros(self.capacity.size, dtype=bool)
        hop[self.entry_slot[flow[self.entry_flow]]] = True
        return self._spread(flow.copy(), hop)

    def _spread(
        self, flow: np.ndarray, hop: np.ndarray, through: np.ndarray | None = None
    ) -> np.ndarray:
        """``flow`` (a boolean mask, grown in place) with every flow that crosses a hop of
        ``hop``, which grows with their hops (those of ``through`` only, if given)."""
        entry_flow, entry_slot = self.entry_flow, self.entry_slot
        while (reach := hop[entry_slot] & ~flow[entry_flow]).any():
            flow[entry_flow[reach]] = True
            hop[entry_slot[flow[entry_flow]]] = True
            if through is not None:
                hop &= through
        return flow

    def solved(self, load: np.ndarray, slots: np.ndarray | None = None) -> None:
        """Note, after a solve, which hops the rates saturate: ``load`` (bytes/s) within
        ``REL_TOL`` of the capacity, on the slots numbered ``slots`` (default every slot).
        No flow is fresh any more."""
        capacity = self.capacity if slots is None else self.capacity[slots]
        saturated = load >= capacity * (1 - REL_TOL)
        if slots is None:
            self.saturated = saturated
        else:
            self.saturated[slots] = saturated
        self.fresh = False

    def loads(self, entries: np.ndarray | None = None) -> np.ndarray:
        """Bytes/s the flows of the ``entries`` (a boolean mask; default all) put on each
        slot at their current rates (``Σ a_fh · x_f``)."""
        flow, slot, weight = self.entry_flow, self.entry_slot, self.entry_weight
        if entries is not None:
            flow, slot, weight = flow[entries], slot[entries], weight[entries]
        return np.bincount(slot, weights=weight * self.rates[flow], minlength=self.capacity.size)
