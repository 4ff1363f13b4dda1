"""What every aggregation strategy is: :class:`Update` in, a new model state out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Update:
    """One client's contribution to an aggregation.

    ``state``: its model state; ``weight``: its samples (ML-ECS: its modality count);
    ``node``: the sender's id; ``staleness``: versions (rounds) it is behind the
    aggregation (0 in a synchronous round, except a late update used in the next);
    ``round``: the number of the round, or of the version, this aggregation makes.
    """

    state: State
    weight: float
    node: str
    staleness: int = 0
    round: int = 0


class Strategy:
    """How a node merges updates and picks the clients of a round.

    Subclasses implement :meth:`aggregate`; the hooks have defaults. ``clients_per_round``
    or ``fraction`` (set from ``workload.edge``) make :meth:`select` sample;
    ``buffer`` is how many updates an asynchronous cloud collects before it calls
    :meth:`aggregate` (1: every update on arrival).
    """

    clients_per_round: int | None = None
    fraction: float | None = None
    buffer: int = 1

    def aggregate(self, current: State, updates: Sequence[Update]) -> State:
        """The new state from the current one and ``updates`` (at least one)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement aggregate")

    def select(self, round: int, clients: list[str], rng: np.random.Generator) -> list[str]:  # noqa: A002
        """The clients of synchronous round ``round``: all of them, or — with
        ``clients_per_round`` k or ``fraction`` f — k = ⌈f·n⌉ drawn uniformly without
        replacement from ``rng`` (seeded per node and round), in ``clients`` order."""
        k = self.sample_size(len(clients))
        if k >= len(clients):
            return list(clients)
        chosen = rng.choice(len(clients), size=k, replace=False)
        return [clients[i] for i in sorted(chosen.tolist())]

    def sample_size(self, n: int) -> int:
        """How many of ``n`` clients a round takes (at least 1)."""
        if self.clients_per_round is not None:
            return max(1, min(n, self.clients_per_round))
        if self.fraction is not None:
            return max(1, min(n, math.ceil(self.fraction * n)))
        return n

    def on_round_end(self, round: int, state: State) -> None:  # noqa: A002
        """Called with the state a round (a version) produced."""

    def on_client(self, node: str, weight: float) -> None:
        """Called whenever a client declares its weight to an asynchronous cloud (its
        pulls and its pushes), before any aggregation that follows."""

    def flops(self, parameters: int, updates: int) -> int:
        """FLOPs charged for one :meth:`aggregate` of ``updates`` states of ``parameters``
        elements: one multiply-add per element and update, 2·P·n."""
        return 2 * parameters * updates

    def metrics(self) -> dict[str, Any]:
        """Figures of the latest :meth:`aggregate`, written to ``metrics.csv`` at the
        aggregating node (none by default)."""
        return {}
