"""FedAsync (Xie et al.) as Mega-CE²'s cloud composes it with the data-size weight."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from learning.aggregation import StalenessRule, mix, staleness_factor
from learning.federated import MIX_FLOPS_PER_ELEMENT
from simnet.strategies.base import State, Strategy, Update


class FedAsync(Strategy):
    """Each update mixed in on arrival:

        α_t = min(1, α · s(τ) · n_e / n̄),   w ← (1 − α_t)·w + α_t·w_e

    τ the update's staleness, s the staleness rule (``constant`` 1, ``polynomial``
    (τ + 1)^(−a), ``hinge`` 1 if τ ≤ b else 1 / (a(τ − b) + 1)), n_e its weight and n̄ the
    mean weight of the clients heard from (:meth:`on_client`). Several updates are mixed
    one after the other.
    """

    def __init__(
        self, alpha: float = 0.6, staleness: StalenessRule = "polynomial", a: float = 0.5,
        b: int = 4,
    ) -> None:  # fmt: skip
        self.alpha, self.staleness, self.a, self.b = alpha, staleness, a, b
        self.weights: dict[str, float] = {}
        self.last_alpha: float | None = None

    def on_client(self, node: str, weight: float) -> None:
        self.weights[node] = weight

    def mixing(self, update: Update) -> float:
        """α_t of ``update``."""
        self.weights.setdefault(update.node, update.weight)
        mean = sum(self.weights.values()) / len(self.weights)
        factor = staleness_factor(update.staleness, self.staleness, self.a, self.b)
        return min(1.0, self.alpha * factor * update.weight / mean)

    def aggregate(self, current: State, updates: Sequence[Update]) -> State:
        state = current
        for update in updates:
            self.last_alpha = self.mixing(update)
            state = mix(state, update.state, self.last_alpha)
        return state

    def flops(self, parameters: int, updates: int) -> int:
        return MIX_FLOPS_PER_ELEMENT * parameters * updates

    def metrics(self) -> dict[str, Any]:
        return {} if self.last_alpha is None else {"alpha": self.last_alpha}
