"""FedBuff (Nguyen et al. 2022): buffered asynchronous aggregation."""

from __future__ import annotations

from collections.abc import Sequence

from learning.aggregation import StalenessRule, staleness_factor
from learning.federated import MIX_FLOPS_PER_ELEMENT
from simnet.strategies.base import State, Strategy, Update


class FedBuff(Strategy):
    """The cloud buffers ``buffer`` = K updates, then applies their staleness-weighted
    mean change:

        w ← w + (η / K) · Σ_i s(τ_i) · (w_i − w)

    η the server learning rate (``workload.cloud.alpha``), s the staleness rule of
    FedAsync (``polynomial`` (τ + 1)^(−a) by default, FLSim's 1/(1 + τ)^a). Clients send
    models, not deltas, so each change is taken against the current model. Non-float
    tensors are taken from the newest update.
    """

    def __init__(
        self, buffer: int = 3, alpha: float = 1.0, staleness: StalenessRule = "polynomial",
        a: float = 0.5, b: int = 4,
    ) -> None:  # fmt: skip
        self.buffer, self.alpha, self.staleness, self.a, self.b = buffer, alpha, staleness, a, b

    def aggregate(self, current: State, updates: Sequence[Update]) -> State:
        scale = [
            self.alpha * staleness_factor(u.staleness, self.staleness, self.a, self.b)
            / len(updates)
            for u in updates
        ]  # fmt: skip
        out = {}
        for key, value in current.items():
            if not value.is_floating_point():
                out[key] = updates[-1].state[key].clone()
                continue
            acc = value.clone()
            for update, c in zip(updates, scale, strict=True):
                acc.add_(update.state[key] - value, alpha=c)
            out[key] = acc
        return out

    def flops(self, parameters: int, updates: int) -> int:
        """A subtraction and a multiply-add per element and update: 3·P·n."""
        return MIX_FLOPS_PER_ELEMENT * parameters * updates
