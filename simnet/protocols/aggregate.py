"""One aggregation by a strategy, as every protocol runs it: a learning job charged the
strategy's FLOPs, its figures recorded, its round-end hook called."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from learning.jobs import Job
from simnet.protocols.context import Context
from simnet.strategies import State, Strategy, Update


async def aggregate(
    ctx: Context, node_id: str, strategy: Strategy, current: State, updates: Sequence[Update],
    metrics: Mapping[str, float] | None = None,
) -> State:  # fmt: skip
    """``strategy.aggregate(current, updates)`` on ``node_id``, charged
    ``strategy.flops(P, n)`` FLOPs (P: elements of ``current``, n: updates); then
    ``metrics`` and the strategy's own :meth:`~Strategy.metrics` recorded there, and
    ``strategy.on_round_end(round, new state)`` called (round: the updates' ``round``)."""
    node = ctx.node(node_id)
    elements = sum(v.numel() for v in current.values())
    flops = strategy.flops(elements, len(updates))
    merged = await node.work(
        Job(strategy, "aggregate", (current, list(updates)), flops, local=True)
    )
    for name, value in {**(metrics or {}), **strategy.metrics()}.items():
        node.metric(name, value)
    strategy.on_round_end(updates[0].round, merged)
    return merged
