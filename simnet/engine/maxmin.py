"""Max-min fair rates by progressive filling, vectorised with numpy.

:func:`max_min_rates` (model ``maxmin``): all unfrozen flows grow at the same rate until
a hop saturates; the flows crossing a saturated hop freeze at its fair share
``spare_h / n_h``; repeat on what is left. The result is the unique max-min fair
allocation: every flow crosses at least one saturated hop on which no other flow gets a
higher rate.

:func:`weighted_max_min` (models ``cm02``, ``lv08``): the same with a sharing penalty
``p_f`` per flow (rates on a saturated hop ∝ 1 / p_f), a bound ``b_f`` per flow and a
weight ``a_fh`` per flow and hop — SimGrid's LMM system.
"""

from __future__ import annotations

import numpy as np

REL_TOL = 1e-9
"""Shares within this relative distance of the minimum saturate together (float rounding)."""


def max_min_rates(
    entry_flow: np.ndarray, entry_hop: np.ndarray, capacity: np.ndarray, n_flows: int = -1
) -> np.ndarray:
    """Rates (bytes/s) of flows ``0..F-1`` (``n_flows`` = F, else worked out).

    ``entry_flow[i]`` and ``entry_hop[i]`` say that flow ``entry_flow[i]`` crosses hop
    ``entry_hop[i]``; ``capacity[h]`` is hop ``h``'s capacity in bytes/s. Every flow must
    cross at least one hop.
    """
    if n_flows < 0:
        n_flows = int(entry_flow.max()) + 1 if entry_flow.size else 0
    if n_flows == 1:  # alone: the slowest hop of its route
        return np.array([capacity[entry_hop].min()])
    n_hops = capacity.size
    rates = np.zeros(n_flows)
    spare = capacity.astype(float)
    users = np.bincount(entry_hop, minlength=n_hops).astype(float)
    flow, hop = entry_flow, entry_hop  # the entries of the flows not frozen yet
    share = np.empty(n_hops)
    while flow.size:
        share.fill(np.inf)
        np.divide(spare, users, out=share, where=users > 0)
        fair = share.min()
        saturated = share <= fair * (1 + REL_TOL)
        newly = np.zeros(n_flows, dtype=bool)
        newly[flow[saturated[hop]]] = True
        rates[newly] = fair
        leaving = newly[flow]
        taken = np.bincount(hop[leaving], minlength=n_hops)
        spare = np.maximum(spare - taken * fair, 0.0)
        users -= taken
        flow, hop = flow[~leaving], hop[~leaving]
    return rates


def weighted_max_min(
    entry_flow: np.ndarray,
    entry_hop: np.ndarray,
    entry_weight: np.ndarray,
    capacity: np.ndarray,
    penalty: np.ndarray,
    bound: np.ndarray,
) -> np.ndarray:
    """Weighted max-min rates (bytes/s) with bounds, as SimGrid's LMM solver computes them.

    Flow ``f`` loads hop ``h`` with ``a_fh · x_f`` (``entry_weight``: 1 on its route, 0.05
    on its reverse route with cross-traffic); ``Σ_f a_fh · x_f ≤ C_h``. A level ``t`` rises;
    every flow not yet fixed has ``x_f = t / p_f``. The lowest of a hop's saturation level
    ``(C_h − fixed load) / Σ_{f unfixed} a_fh / p_f`` and a flow's bound level ``b_f · p_f``
    fixes: the flows of the saturated hops at ``t / p_f``, or the bounded flow at ``b_f``;
    repeat on what is left. On a saturated hop, rates are inversely proportional to the
    penalties.

    Two shortcuts give the same rates with far fewer rounds (to float rounding):

    * a hop that one flow alone crosses is a bound of that flow, ``x_f ≤ C_h / a_fh``
      (its saturation level is that bound's level);
    * every flow whose bound level lies below the lowest saturation level is fixed at its
      bound in one round: fixing a flow below a hop's level only raises that level, so
      the level-by-level order would fix each of them before any hop saturates.
    """
    n_flows = penalty.size
    if n_flows == 1:  # alone: its tightest hop (ACK load included) or its bound
        return np.array([min((capacity[entry_hop] / entry_weight).min(), bound[0])])
    users = np.bincount(entry_hop, minlength=capacity.size)
    limit = bound.astype(float)  # bytes/s: the bound and every hop no other flow crosses
    private = users[entry_hop] == 1
    flow, hop, weight = entry_flow, entry_hop, entry_weight
    if private.any():
        np.minimum.at(limit, flow[private], capacity[hop[private]] / weight[private])
        shared = ~private
        flow, hop, weight = flow[shared], hop[shared], weight[shared]  # shared hops only
    kept = users > 1  # the shared hops, renumbered 0..n_hops-1
    hop = (np.cumsum(kept) - 1)[hop]
    remaining, users = capacity[kept].astype(float), users[kept]
    n_hops = remaining.size
    inverse = 1.0 / penalty
    load = weight * inverse[flow]  # Σ a_fh / p_f per hop is the usage
    usage = np.bincount(hop, weights=load, minlength=n_hops)
    level_limit = limit * penalty
    rates = np.zeros(n_flows)
    unfixed = np.ones(n_flows, dtype=bool)
    left = n_flows
    level = np.empty(n_hops)
    while left:
        level.fill(np.inf)
        np.divide(remaining, usage, out=level, where=usage > 0)
        t = level.min(initial=np.inf)
        newly = unfixed & (level_limit < t)
        if newly.any():
            rates[newly] = limit[newly]
        elif not np.isfinite(t):
            raise ValueError("a flow crosses no hop and has no bound")
        else:
            newly = np.zeros(n_flows, dtype=bool)
            newly[flow[level[hop] <= t * (1 + REL_TOL)]] = True
            newly &= unfixed
            rates[newly] = t * inverse[newly]
        unfixed &= ~newly
        left -= int(np.count_nonzero(newly))
        taken = np.flatnonzero(newly[flow])  # entries of fixed flows stay, inert
        if not taken.size:
            continue
        hops = hop[taken]
        remaining -= np.bincount(hops, weights=weight[taken] * rates[flow[taken]], minlength=n_hops)
        usage -= np.bincount(hops, weights=load[taken], minlength=n_hops)
        users -= np.bincount(hops, minlength=n_hops)
        np.maximum(remaining, 0.0, out=remaining)
        usage[users == 0] = 0.0
    return rates
