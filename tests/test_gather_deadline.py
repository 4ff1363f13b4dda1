"""NodeApi.gather at its deadline: a message at the very instant the deadline's timeout
fires counts, and the gather ends there, also when float rounding put that instant a hair
past the deadline (the old code then asked SimPy for a negative timeout: ValueError)."""

from __future__ import annotations

import pytest

from simnet.actor import kind_is
from simnet.engine.sim_runtime import SimRuntime
from simnet.engine.world import World
from simnet.topology.graph import LinkSpec, NodeSpec, Topology
from simnet.wire.message import Message


def gather_with_arrivals(arrivals: list[float], deadline_s: float) -> tuple[list[int], float]:
    """b gathers up to 3 ``x`` messages from t = 0 with ``deadline_s``; message k is put
    in its mailbox at ``arrivals[k]``. Returns the numbers gathered and the end time."""
    nodes = [NodeSpec("a", "end", 1e9), NodeSpec("b", "edge", 1e9)]
    world = World(Topology(nodes, [LinkSpec("a", "b", 10, 8, 8)]))
    runtime = SimRuntime(world)
    for k, at in enumerate(arrivals):
        message = Message("a", "b", "x", {}, {"k": k})
        world.env.timeout(at).callbacks.append(lambda _, m=message: world.nodes["b"].mailbox.put(m))
    seen: list[tuple[list[int], float]] = []

    async def gatherer() -> None:
        b = runtime.node("b")
        got = await b.gather(kind_is("x"), 3, deadline_s)
        seen.append(([m.meta["k"] for m in got], b.now))

    runtime.start("b", gatherer)
    world.run()
    return seen[0]


def test_a_message_exactly_at_the_deadline_counts_and_ends_the_gather() -> None:
    assert gather_with_arrivals([1.0, 2.0, 2.5], 2.0) == ([0, 1], 2.0)


def test_a_deadline_passed_by_rounding_ends_the_gather_instead_of_raising() -> None:
    """From t = 0.03 the timeout left is 0.3 − 0.03, which fires at 0.30000000000000004:
    past the deadline 0.3. A message then is taken, and the next wait is 0, not < 0."""
    fires = 0.03 + (0.3 - 0.03)
    assert fires > 0.3
    got, t = gather_with_arrivals([0.03, fires, 0.5], 0.3)
    assert got == [0, 1] and t == pytest.approx(0.3)
