"""The active flows of the network model as aligned numpy arrays, kept up to date as flows
start and end, so that a re-solve touches no Python object per flow and only the hops
some active flow crosses."""

from __future__ import annotations

import numpy as np

from simnet.sharing import CROSSTRAFFIC_WEIGHT


class FlowTable:
    """Per flow (in activation order): bytes ``remaining``, ``floor`` (its size, at least
    1 B), sharing ``penalty`` and ``bound``; per entry (a flow on a hop): ``entry_flow``,
    ``entry_slot`` and ``entry_weight`` (1 on its route, 0.05 on its reverse route).

    Hops are numbered by *slot*: a hop crossed by some active flow holds a slot, whose
    capacity (bytes/s) is ``capacity[slot]``; a slot no flow uses any more is reused.
    """

    def __init__(self, capacity: np.ndarray) -> None:
        self._hop_capacity = capacity
        self.capacity = np.zeros(0)
        self._slot_of: dict[int, int] = {}
        self._hop_of: list[int] = []
        self._free: list[int] = []
        self._users = np.zeros(0, dtype=np.intp)
        self.remaining = np.zeros(0)
        self.floor = np.zeros(0)
        self.penalty = np.zeros(0)
        self.bound = np.zeros(0)
        self.entry_flow = np.zeros(0, dtype=np.intp)
        self.entry_slot = np.zeros(0, dtype=np.intp)
        self.entry_weight = np.zeros(0)

    def __len__(self) -> int:
        return self.remaining.size

    def _slot(self, hop: int) -> int:
        slot = self._slot_of.get(hop)
        if slot is None:
            if self._free:
                slot = self._free.pop()
                self._hop_of[slot] = hop
            else:
                slot = len(self._hop_of)
                self._hop_of.append(hop)
                self.capacity = np.append(self.capacity, 0.0)
                self._users = np.append(self._users, 0)
            self.capacity[slot] = self._hop_capacity[hop]
            self._slot_of[hop] = slot
        self._users[slot] += 1
        return slot

    def add(
        self, size: int, hops: np.ndarray, back: np.ndarray, penalty: float, bound: float
    ) -> None:
        """Append a flow of ``size`` bytes over ``hops`` (and ``back``, its ACKs' hops)."""
        index = len(self)
        self.remaining = np.append(self.remaining, float(size))
        self.floor = np.append(self.floor, max(1.0, size))
        self.penalty = np.append(self.penalty, penalty)
        self.bound = np.append(self.bound, bound)
        slots = [self._slot(int(h)) for h in (*hops, *back)]
        self.entry_flow = np.append(self.entry_flow, np.full(len(slots), index, dtype=np.intp))
        self.entry_slot = np.append(self.entry_slot, np.array(slots, dtype=np.intp))
        weights = np.r_[np.ones(hops.size), np.full(back.size, CROSSTRAFFIC_WEIGHT)]
        self.entry_weight = np.concatenate([self.entry_weight, weights])

    def keep(self, kept: np.ndarray) -> None:
        """Keep only the flows where ``kept`` (a boolean mask) is true, in order."""
        for name in ("remaining", "floor", "penalty", "bound"):
            setattr(self, name, getattr(self, name)[kept])
        entries = kept[self.entry_flow]
        gone = self.entry_slot[~entries]
        self._users -= np.bincount(gone, minlength=self._users.size)
        for slot in np.unique(gone[self._users[gone] == 0]).tolist():
            del self._slot_of[self._hop_of[slot]]
            self._free.append(slot)
        renumber = np.cumsum(kept) - 1
        self.entry_flow = renumber[self.entry_flow[entries]]
        self.entry_slot = self.entry_slot[entries]
        self.entry_weight = self.entry_weight[entries]

    def route_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(entry_flow, entry_slot)`` of the routes only (no reverse-route entries)."""
        own = self.entry_weight == 1.0
        return self.entry_flow[own], self.entry_slot[own]
