"""Max-min fair rates by progressive filling, vectorised with numpy.

All unfrozen flows grow at the same rate until a hop saturates; the flows crossing a
saturated hop freeze at its fair share ``spare_h / n_h``; repeat on what is left.
The result is the unique max-min fair allocation: every flow crosses at least one
saturated hop on which no other flow gets a higher rate.
"""

from __future__ import annotations

import numpy as np

REL_TOL = 1e-9
"""Shares within this relative distance of the minimum saturate together (float rounding)."""


def max_min_rates(
    entry_flow: np.ndarray, entry_hop: np.ndarray, capacity: np.ndarray
) -> np.ndarray:
    """Rates (bytes/s) of flows ``0..F-1``.

    ``entry_flow[i]`` and ``entry_hop[i]`` say that flow ``entry_flow[i]`` crosses hop
    ``entry_hop[i]``; ``capacity[h]`` is hop ``h``'s capacity in bytes/s. Every flow must
    cross at least one hop.
    """
    n_flows = int(entry_flow.max()) + 1 if entry_flow.size else 0
    if n_flows == 1:  # alone: the slowest hop of its route
        return np.array([capacity[entry_hop].min()])
    n_hops = capacity.size
    rates = np.zeros(n_flows)
    frozen = np.zeros(n_flows, dtype=bool)
    spare = capacity.astype(float)
    users = np.bincount(entry_hop, minlength=n_hops).astype(float)
    left = n_flows
    while left:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(users > 0, spare / users, np.inf)
        fair = share.min()
        saturated = share <= fair * (1 + REL_TOL)
        newly = np.zeros(n_flows, dtype=bool)
        newly[entry_flow[saturated[entry_hop]]] = True
        newly &= ~frozen
        rates[newly] = fair
        frozen |= newly
        left -= int(newly.sum())
        taken = np.bincount(entry_hop[newly[entry_flow]], minlength=n_hops)
        spare = np.maximum(spare - taken * fair, 0.0)
        users -= taken
    return rates
