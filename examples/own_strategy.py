"""Write your own aggregation strategy and compare it with FedAvg on Mega-CE²'s world.

Run from the repository root: ``python examples/own_strategy.py`` (about a minute on
2 cores). The edges aggregate their end devices' updates by the coordinate-wise median
instead of the sample-weighted mean; the script prints the cloud model's final scores.
"""

from __future__ import annotations

import torch

import simnet
from simnet.strategies import Strategy


class Median(Strategy):
    """Coordinate-wise median of the round's updates (robust to a few outliers)."""

    def aggregate(self, current, updates):
        out = {}
        for key, value in current.items():
            stacked = torch.stack([u.state[key] for u in updates])
            out[key] = stacked.median(dim=0).values if value.is_floating_point() else value
        return out


if __name__ == "__main__":
    base = {"workload.cloud.updates": 6, "workload.inference": None}
    for name, strategy in (("fedavg", "fedavg"), ("median", "__main__:Median")):
        result = simnet.run(
            "scenarios/mosei_async.yaml", {**base, "workload.edge.strategy": strategy},
            out=f"runs/example-{name}", progress=False, force=True, figures=False,
        )  # fmt: skip
        cloud = result.summary["cloud"]
        sent = result.messages["bytes"].sum()
        print(f"{name:7s} acc2 {cloud['acc2_non0']:.3f}  mae {cloud['mae']:.3f}  {sent:,} bytes")
