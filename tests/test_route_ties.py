"""Route ties are exact: integer-µs latency sums, then hops, then node ids, in any order."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from simnet.topology.graph import LinkSpec, NodeSpec, Topology


def topology(links: list[tuple[str, str, float]], order: list[str] | None = None) -> Topology:
    """Edge nodes (in ``order``, else first seen) joined by (a, b, latency ms) links."""
    ids = order or list(dict.fromkeys(x for a, b, _ in links for x in (a, b)))
    return Topology(
        [NodeSpec(x, "edge", 1e9) for x in ids],
        [LinkSpec(a, b, ms, 1.0, 1.0) for a, b, ms in links],
    )


@pytest.mark.parametrize("reverse", [False, True])
def test_equal_decimal_sums_tie_and_the_smaller_ids_win(reverse):
    # 0.1 + 0.2 ms and 0.3 + 0 ms: equal in decimal, not in float (3.0000000000000003e-4 s)
    links = [("s", "a", 0.1), ("a", "t", 0.2), ("s", "b", 0.3), ("b", "t", 0.0)]
    topo = topology(links[::-1] if reverse else links)
    assert topo._tree is None
    assert topo.path("s", "t") == ("s", "a", "t")
    assert topo.path("t", "s") == ("t", "a", "s")


@pytest.mark.parametrize("reverse", [False, True])
def test_equal_latency_takes_fewer_hops(reverse):
    # 0.1 + 0.3 ms sums below 0.4 ms in float; in µs they tie and the direct link wins
    links = [("s", "a", 0.1), ("a", "t", 0.3), ("s", "t", 0.4)]
    topo = topology(links[::-1] if reverse else links)
    assert topo.path("s", "t") == ("s", "t")
    assert topo.path("t", "s") == ("t", "s")


def test_latencies_are_compared_to_the_microsecond():
    assert LinkSpec("a", "b", 0.1 + 0.2, 1.0, 1.0).latency_us == 300
    assert LinkSpec("a", "b", 12.3456, 1.0, 1.0).latency_us == 12346
    # 0.0004 ms rounds to 0 µs: the two routes tie on latency, then on hops, then on ids
    topo = topology([("s", "b", 0.0004), ("b", "t", 0.0), ("s", "a", 0.0), ("a", "t", 0.0)])
    assert topo.path("s", "t") == ("s", "a", "t")


def oracle(graph: nx.Graph, src: str, dst: str) -> tuple[str, ...]:
    """The least (Σ µs, hops, node ids) simple path, by enumeration; weights in ``us``."""
    if src == dst:
        return (src,)
    return min(
        (sum(graph[u][v]["us"] for u, v in itertools.pairwise(p)), len(p), tuple(p))
        for p in nx.all_simple_paths(graph, src, dst)
    )[2]


def test_routes_match_the_rule_in_any_declaration_order():
    """Random graphs with cycles and latencies on a 0.1 ms grid (zero included): every
    pair's route is the rule's, whatever the order of nodes, links and link ends."""
    rng = np.random.default_rng(24)
    for _ in range(40):
        n = int(rng.integers(3, 8))
        names = [f"n{i}" for i in range(n)]
        pairs = [(a, b) for a, b in itertools.combinations(names, 2) if rng.random() < 0.6]
        tenths = {p: int(rng.choice([0, 1, 2, 3, 4, 7])) for p in pairs}
        graph = nx.Graph()
        graph.add_nodes_from(names)
        graph.add_edges_from((a, b, {"us": 100 * k}) for (a, b), k in tenths.items())
        links = [(a, b, k / 10) for (a, b), k in tenths.items()]
        shuffled = [
            (b, a, ms) if rng.random() < 0.5 else (a, b, ms)
            for a, b, ms in (links[i] for i in rng.permutation(len(links)))
        ]
        topos = [
            topology(links, names),
            topology(shuffled, [names[i] for i in rng.permutation(n)]),
        ]
        for src, dst in itertools.product(names, repeat=2):
            if not nx.has_path(graph, src, dst):
                continue
            want = oracle(graph, src, dst)
            assert [t.path(src, dst) for t in topos] == [want, want], (links, src, dst)
