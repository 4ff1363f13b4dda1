"""FedAvg (McMahan et al.): the sample-weighted mean of the round's updates."""

from __future__ import annotations

from collections.abc import Sequence

from learning.aggregation import weighted_average
from simnet.strategies.base import State, Strategy, Update


class FedAvg(Strategy):
    """w = Σ_i (n_i / Σ_j n_j)·w_i over the updates (``current`` unused); HierFAVG's cloud
    round and ML-ECS's MMA (weights = modality counts, eq. 13) are the same rule."""

    def aggregate(self, current: State, updates: Sequence[Update]) -> State:
        return weighted_average([u.state for u in updates], [u.weight for u in updates])


class MMA(FedAvg):
    """ML-ECS's modality-aware aggregation: w_j = |M_j| / Σ_i |M_i| (eq. 13), the
    updates' weights being their modality counts."""
