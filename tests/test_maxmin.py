"""Progressive filling yields the max-min fair allocation (checked by its definition)."""

from __future__ import annotations

import numpy as np
import pytest

from simnet.engine.maxmin import max_min_rates


def random_instance(rng: np.random.Generator, flows: int, hops: int):
    capacity = rng.choice([1.0, 2.0, 5.0, 10.0, 3.3], size=hops)
    routes = [rng.choice(hops, size=rng.integers(1, 4), replace=False) for _ in range(flows)]
    entry_flow = np.repeat(np.arange(flows), [len(r) for r in routes])
    entry_hop = np.concatenate(routes)
    return capacity, routes, entry_flow, entry_hop


@pytest.mark.parametrize("seed", range(20))
def test_allocation_is_feasible_and_every_flow_has_a_bottleneck(seed):
    rng = np.random.default_rng(seed)
    capacity, routes, entry_flow, entry_hop = random_instance(rng, 30, 12)
    rates = max_min_rates(entry_flow, entry_hop, capacity)
    load = np.bincount(entry_hop, weights=rates[entry_flow], minlength=capacity.size)
    assert np.all(load <= capacity * (1 + 1e-9))
    # Max-min fairness: each flow crosses a saturated hop where no flow is faster.
    for f, route in enumerate(routes):
        assert any(
            np.isclose(load[h], capacity[h])
            and rates[f] >= max(rates[g] for g, r in enumerate(routes) if h in r) - 1e-9
            for h in route
        ), f"flow {f} has no bottleneck"


def test_parking_lot_by_hand():
    # Hops 0 and 1 of capacity 1; a long flow crosses both, one short flow on each:
    # everyone gets 1/2. Raise hop 1 to 3: the short flow on hop 1 gets 3 - 1/2 = 2.5.
    flow = np.array([0, 0, 1, 2])
    hop = np.array([0, 1, 0, 1])
    assert max_min_rates(flow, hop, np.array([1.0, 1.0])).tolist() == [0.5, 0.5, 0.5]
    assert max_min_rates(flow, hop, np.array([1.0, 3.0])).tolist() == [0.5, 0.5, 2.5]


def test_single_flow_gets_its_slowest_hop():
    assert max_min_rates(np.array([0, 0]), np.array([0, 2]), np.array([4.0, 1.0, 3.0])) == [3.0]
