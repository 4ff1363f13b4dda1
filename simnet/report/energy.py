"""Energy in a run's records: ``summary.json``'s ``energy``, ``energy_by_tier`` and
``busy_s_by_node``, and the cumulative energy rows of ``metrics.csv`` (docs/energy.md)."""

from __future__ import annotations

from typing import Any

from simnet.engine.energy import EnergyMeter, NodeEnergy
from simnet.engine.world import MetricRow
from simnet.topology.graph import TIERS

SCORES = ("acc2_non0", "accuracy")
"""Headline scores of a model (Mega-CE², ML-ECS): the instants they are recorded at are
the rounds and updates energy rows are written for."""

ENERGY_METRICS = ("energy_j", *(f"energy_j.{tier}" for tier in TIERS), "round_energy_j")
"""The rows of one energy group, in order (see :func:`with_energy_rows`)."""


def energy_summary(meter: EnergyMeter) -> dict[str, Any]:
    """Joules in each state and in total of every node that draws power, the same summed
    per tier (every tier, in order; nodes in topology order), and the busy compute
    seconds of every node that computed."""
    world = meter.world
    nodes = {node_id: meter.node(node_id) for node_id in meter.powered}
    zero = NodeEnergy().to_dict()
    tiers = {t: dict(zero) for t in sorted({m.tier for m in world.nodes.values()}, key=_order)}
    for node_id, energy in nodes.items():
        tier = tiers[world.nodes[node_id].tier]
        for key, joules in energy.to_dict().items():
            tier[key] += joules
    return {
        "energy": {node_id: energy.to_dict() for node_id, energy in nodes.items()},
        "energy_by_tier": tiers,
        "busy_s_by_node": {n: m.busy_s for n, m in world.nodes.items() if m.busy},
    }


def _order(tier: str) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


def round_instants(metrics: list[MetricRow], clouds: set[str]) -> dict[float, str]:
    """Instant → node of every row of a :data:`SCORES` metric recorded at a cloud node
    (no such row: at any node), first node per instant."""
    scored = [r for r in metrics if r.metric in SCORES]
    at_cloud = [r for r in scored if r.node in clouds] or scored
    out: dict[float, str] = {}
    for row in at_cloud:
        out.setdefault(row.t, row.node)
    return out


def with_energy_rows(metrics: list[MetricRow], meter: EnergyMeter) -> list[MetricRow]:
    """``metrics`` with a group of energy rows after the last row of each round instant
    (:func:`round_instants`), and one at the run's end T if later: ``energy_j`` (every
    node, J drawn over [0, t]), ``energy_j.TIER`` (that tier's nodes) and
    ``round_energy_j`` (every node, since the group before, or since 0). Nothing is added
    when no node draws power."""
    if not meter.powered:
        return list(metrics)
    world = meter.world
    clouds = {n for n, m in world.nodes.items() if m.tier == "cloud"}
    instants = round_instants(metrics, clouds)
    if not instants or max(instants) < meter.t_end:
        instants[meter.t_end] = next(iter(sorted(clouds)), next(iter(world.nodes)))
    last_row = {}
    for i, row in enumerate(metrics):
        if row.t in instants:
            last_row[row.t] = i
    groups: dict[int, list[MetricRow]] = {}
    before = 0.0
    for t in sorted(instants):
        tiers = meter.by_tier(t)
        total = sum(tiers.values())
        rows = [MetricRow(t, instants[t], "energy_j", total)]
        rows += [
            MetricRow(t, instants[t], f"energy_j.{tier}", tiers.get(tier, 0.0)) for tier in TIERS
        ]
        rows.append(MetricRow(t, instants[t], "round_energy_j", total - before))
        before = total
        if t not in last_row:  # T: after the last row recorded by then, in time order
            last_row[t] = max((i for i, r in enumerate(metrics) if r.t <= t), default=-1)
        groups.setdefault(last_row[t], []).extend(rows)
    out: list[MetricRow] = groups.pop(-1, [])
    for i, row in enumerate(metrics):
        out.append(row)
        out += groups.pop(i, [])
    return out
