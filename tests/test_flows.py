"""The flow table stays equal to one rebuilt from scratch through any adds and removals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from simnet.engine.flows import FlowTable


def _route(rng: np.random.Generator, hops: int) -> SimpleNamespace:
    """A route crosses each directed hop once, its reverse route other hops."""
    crossed = rng.choice(hops, size=int(rng.integers(1, 6)), replace=False).tolist()
    cut = int(rng.integers(1, len(crossed) + 1))
    forward, back = crossed[:cut], crossed[cut:]
    return SimpleNamespace(
        entry_hops=tuple(forward + back),
        entry_weight=(1.0,) * len(forward) + (0.05,) * len(back),
        penalty=float(rng.uniform(0.1, 2.0)),
        bound=float(rng.uniform(1e3, 1e6)),
    )


def _view(table: FlowTable) -> list[tuple]:
    """Per flow: size, penalty, bound and its (hop, weight) entries in order, hops as the
    network numbers them, checked against the capacity of the slot they sit in."""
    hop_of = {slot: hop for hop, slot in table._slot_of.items()}
    rows = []
    for f in range(table.n):
        at = np.flatnonzero(table.entry_flow == f)
        entries = []
        for e in at:
            slot = int(table.entry_slot[e])
            assert table.capacity[slot] == table._hop_capacity[hop_of[slot]]
            entries.append((hop_of[slot], float(table.entry_weight[e])))
        rows.append((table.floor[f], table.penalty[f], table.bound[f], tuple(entries)))
    return rows


def test_adds_and_removals_keep_the_table_equal_to_a_fresh_one():
    rng = np.random.default_rng(7)
    capacity = rng.uniform(1e5, 1e7, size=12)
    table = FlowTable(capacity)
    alive: list[tuple[int, SimpleNamespace]] = []
    for step in range(400):
        if alive and rng.random() < 0.45:
            count = 1 if rng.random() < 0.7 else int(rng.integers(1, len(alive) + 1))
            gone = sorted(rng.choice(len(alive), size=count, replace=False).tolist())
            table.remove(gone)
            alive = [a for i, a in enumerate(alive) if i not in set(gone)]
        else:
            size, route = int(rng.integers(1, 10**6)), _route(rng, capacity.size)
            table.add(size, route)
            alive.append((size, route))
        fresh = FlowTable(capacity)
        for size, route in alive:
            fresh.add(size, route)
        assert _view(table) == _view(fresh), step
        assert table.entries == sum(len(r.entry_hops) for _, r in alive)
        users = np.bincount(table.entry_slot, minlength=table._users.size)
        assert (table._users == users).all()
        assert len(table._slot_of) == len({h for _, r in alive for h in r.entry_hops})
