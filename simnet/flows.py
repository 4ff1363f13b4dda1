"""The active flows of the network model as aligned numpy arrays, kept up to date as flows
start and end, so that a re-solve touches no Python object per flow."""

from __future__ import annotations

import numpy as np

from simnet.sharing import CROSSTRAFFIC_WEIGHT


class FlowTable:
    """Per flow (in activation order): bytes ``remaining``, ``floor`` (its size, at least
    1 B), sharing ``penalty`` and ``bound``; per entry (a flow on a hop): ``entry_flow``,
    ``entry_hop`` and ``entry_weight`` (1 on its route, 0.05 on its reverse route)."""

    def __init__(self) -> None:
        self.remaining = np.zeros(0)
        self.floor = np.zeros(0)
        self.penalty = np.zeros(0)
        self.bound = np.zeros(0)
        self.entry_flow = np.zeros(0, dtype=np.intp)
        self.entry_hop = np.zeros(0, dtype=np.intp)
        self.entry_weight = np.zeros(0)

    def __len__(self) -> int:
        return self.remaining.size

    def add(
        self, size: int, hops: np.ndarray, back: np.ndarray, penalty: float, bound: float
    ) -> None:
        """Append a flow of ``size`` bytes over ``hops`` (and ``back``, its ACKs' hops)."""
        index = len(self)
        self.remaining = np.append(self.remaining, float(size))
        self.floor = np.append(self.floor, max(1.0, size))
        self.penalty = np.append(self.penalty, penalty)
        self.bound = np.append(self.bound, bound)
        n = hops.size + back.size
        self.entry_flow = np.append(self.entry_flow, np.full(n, index, dtype=np.intp))
        self.entry_hop = np.concatenate([self.entry_hop, hops, back])
        weights = np.r_[np.ones(hops.size), np.full(back.size, CROSSTRAFFIC_WEIGHT)]
        self.entry_weight = np.concatenate([self.entry_weight, weights])

    def keep(self, kept: np.ndarray) -> None:
        """Keep only the flows where ``kept`` (a boolean mask) is true, in order."""
        for name in ("remaining", "floor", "penalty", "bound"):
            setattr(self, name, getattr(self, name)[kept])
        entries = kept[self.entry_flow]
        renumber = np.cumsum(kept) - 1
        self.entry_flow = renumber[self.entry_flow[entries]]
        self.entry_hop = self.entry_hop[entries]
        self.entry_weight = self.entry_weight[entries]

    def route_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(entry_flow, entry_hop)`` of the routes only (no reverse-route entries)."""
        own = self.entry_weight == 1.0
        return self.entry_flow[own], self.entry_hop[own]
