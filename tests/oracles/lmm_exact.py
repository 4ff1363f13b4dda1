"""SimGrid's LMM allocation in exact rational arithmetic, one level at a time: the plain
definition that :func:`simnet.engine.maxmin.weighted_max_min` shortens (test oracle)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def exact_weighted_max_min(
    entry_flow: np.ndarray,
    entry_hop: np.ndarray,
    entry_weight: np.ndarray,
    capacity: np.ndarray,
    penalty: np.ndarray,
    bound: np.ndarray,
) -> list[Fraction]:
    """Rates (bytes/s, exact): raise a level ``t``, every unfixed flow at ``t / p_f``; fix
    the flows of the first hop to saturate at ``t / p_f``, or the first bounded flow at its
    bound ``b_f`` (the earlier event first); repeat. ``inf`` bounds are none."""
    entries = [
        (int(f), int(h), Fraction(float(w)))
        for f, h, w in zip(entry_flow, entry_hop, entry_weight, strict=True)
    ]
    p = [Fraction(float(x)) for x in penalty]
    b = [None if np.isinf(x) else Fraction(float(x)) for x in bound]
    left = {h: Fraction(float(c)) for h, c in enumerate(capacity)}
    rates: list[Fraction | None] = [None] * len(p)
    while any(r is None for r in rates):
        usage: dict[int, Fraction] = {}
        for f, h, w in entries:
            if rates[f] is None:
                usage[h] = usage.get(h, Fraction(0)) + w / p[f]
        hop_levels = {h: left[h] / u for h, u in usage.items()}
        bound_levels = {f: b[f] * p[f] for f in range(len(p)) if rates[f] is None and b[f]}
        t_hop = min(hop_levels.values(), default=None)
        t_bound = min(bound_levels.values(), default=None)
        if t_bound is not None and (t_hop is None or t_bound < t_hop):
            fixed = {f: b[f] for f, level in bound_levels.items() if level == t_bound}
        else:
            full = {h for h, level in hop_levels.items() if level == t_hop}
            fixed = {f: t_hop / p[f] for f, h, _ in entries if h in full and rates[f] is None}
        for f, rate in fixed.items():
            rates[f] = rate
        for f, h, w in entries:
            if f in fixed:
                left[h] -= w * fixed[f]
    return rates  # type: ignore[return-value]
