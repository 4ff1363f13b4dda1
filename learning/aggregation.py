"""Aggregation rules on model states (``state_dict``-like mappings of tensors).

* :func:`weighted_average` — FedAvg / HierFAVG: w = Σ_i p_i w_i with p_i = n_i / Σ_j n_j.
* :func:`mix` — FedAsync: w ← (1 − α)·w + α·w_new.
* :func:`staleness_factor` — FedAsync's s(τ): ``constant`` 1; ``polynomial`` (τ + 1)^(−a);
  ``hinge`` 1 if τ ≤ b else 1 / (a·(τ − b) + 1).

Floating tensors are combined; any other tensor (integer buffers such as counters) is
taken from the first state (``weighted_average``) or the newest one (``mix``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch

State = Mapping[str, torch.Tensor]
StalenessRule = Literal["constant", "polynomial", "hinge"]


def weighted_average(states: Sequence[State], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Σ_i p_i·states[i] key by key, with p_i = weights[i] / Σ weights (weights ≥ 0)."""
    if not states or len(states) != len(weights):
        raise ValueError(f"need as many weights as states (got {len(states)}, {len(weights)})")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            acc = torch.zeros_like(first)
            for state, w in zip(states, weights, strict=True):
                acc.add_(state[key], alpha=float(w) / total)
            out[key] = acc
        else:
            out[key] = first.clone()
    return out


def mix(state: State, new: State, alpha: float) -> dict[str, torch.Tensor]:
    """(1 − α)·state + α·new key by key, α in [0, 1]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return {
        k: torch.lerp(v, new[k], alpha) if v.is_floating_point() else new[k].clone()
        for k, v in state.items()
    }


def staleness_factor(tau: int, rule: StalenessRule, a: float = 0.5, b: int = 4) -> float:
    """FedAsync's s(τ) for staleness ``tau`` ≥ 0 (versions the update is behind)."""
    if tau < 0:
        raise ValueError(f"staleness must be >= 0, got {tau}")
    if rule == "constant":
        return 1.0
    if rule == "polynomial":
        return float((tau + 1) ** (-a))
    if rule == "hinge":
        return 1.0 if tau <= b else 1.0 / (a * (tau - b) + 1.0)
    raise ValueError(f"unknown staleness rule {rule!r}")
