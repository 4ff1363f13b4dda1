"""Topology files, generators, GraphML import and static routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from simnet.errors import InputError
from simnet.topology.graph import Topology
from simnet.topology.graphml import great_circle_km
from simnet.topology.load import load_topology, topology_from_dict
from simnet.topology.routing import NoRouteError

ROOT = Path(__file__).parents[1]
TOPOLOGIES = ROOT / "topologies"


def test_design_format_with_defaults_and_asymmetric_links():
    topo = load_topology("three_tier.yaml", "s.yaml", TOPOLOGIES)
    assert len(topo.nodes) == 7 and len(topo.links) == 6
    assert topo.nodes["end0"].flops == 5.0e10 and topo.nodes["end0"].slots == 1
    link = topo.link("edge0", "end0")
    assert (link.mbps("end0"), link.mbps("edge0")) == (10, 40)
    assert topo.link_class("edge0", "end0") == "end-edge"
    assert topo.route("end0", "end3") == (
        ("end0", "edge0"), ("edge0", "cloud"), ("cloud", "edge1"), ("edge1", "end3")
    )  # fmt: skip
    tiny = topology_from_dict({"nodes": [{"id": 1, "tier": "cloud"}]}, "t")
    assert tiny.nodes["1"].flops == 5.0e13  # numeric ids become strings; tier default flops


def test_round_trip_through_the_file_format():
    topo = load_topology("three_tier.yaml", "s.yaml", TOPOLOGIES)
    again = topology_from_dict(topo.to_dict(), "again")
    assert again.to_dict() == topo.to_dict()


def test_unreachable_destination_raises():
    topo = topology_from_dict(
        {"nodes": [{"id": "a", "tier": "end"}, {"id": "b", "tier": "end"}]}, "t"
    )
    with pytest.raises(NoRouteError, match="no route from 'a' to 'b'"):
        topo.path("a", "b")


def test_tree_generator_counts_and_attachment():
    topo = load_topology(
        {"generate": "tree", "clouds": 2, "edges": 3, "ends_per_edge": 2,
         "profiles": {"edge": {"flops": 1e12, "slots": 4}},
         "links": {"end-edge": {"latency_ms": 2, "up_mbps": 5, "down_mbps": 50}}},
        "s.yaml", ROOT,
    )  # fmt: skip
    tiers = [n.tier for n in topo.nodes.values()]
    assert (tiers.count("cloud"), tiers.count("edge"), tiers.count("end")) == (2, 3, 6)
    assert topo.path("end5", "edge2") == ("end5", "edge2")  # end i -> edge i // 2
    assert topo.path("edge2", "cloud0") == ("edge2", "cloud0")  # edge e -> cloud e % 2
    assert topo.path("edge1", "cloud1") == ("edge1", "cloud1")
    assert topo.link("cloud0", "cloud1").latency_ms == 10  # default cloud-cloud class
    assert topo.link("edge0", "cloud0").up_mbps == 100  # default edge-cloud class
    end_link = topo.link("end0", "edge0")
    assert (end_link.a, end_link.up_mbps, end_link.down_mbps) == ("end0", 5, 50)
    assert (topo.nodes["edge1"].flops, topo.nodes["edge1"].slots) == (1e12, 4)
    assert sorted({topo.link_class(*tuple(k)) for k in topo.links}) == [
        "cloud-cloud", "edge-cloud", "end-edge"
    ]  # fmt: skip


def test_star_generator():
    topo = load_topology({"generate": "star", "leaves": 4}, "s.yaml", ROOT)
    assert sorted(topo.nodes) == ["center", "leaf0", "leaf1", "leaf2", "leaf3"]
    assert topo.nodes["center"].tier == "edge" and topo.nodes["leaf0"].tier == "end"
    assert topo.path("leaf0", "leaf3") == ("leaf0", "center", "leaf3")
    assert topo.link("leaf2", "center").latency_ms == 5


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"generate": "tree", "edges": 1, "ends_per_edge": 1, "fanout": 3}, "topology.fanout"),
        ({"generate": "tree", "edges": 1}, "topology.ends_per_edge"),
        ({"generate": "tree", "edges": 1, "ends_per_edge": 1,
          "links": {"end-edge": {"latency_ms": 1}}}, "topology.links.end-edge"),
        ({"generate": "ring", "size": 3}, "topology.generate"),
        ({"generate": "star", "leaves": 2, "leaf_tier": "fog"}, "topology.leaf_tier"),
    ],
)  # fmt: skip
def test_generator_errors_name_the_field(spec, field):
    with pytest.raises(InputError) as err:
        load_topology(spec, "s.yaml", ROOT)
    assert err.value.source == "s.yaml" and err.value.field == field


def test_graphml_import_of_a_topology_zoo_file():
    topo = load_topology(
        {"graphml": "abilene_mini.graphml", "node_id_attr": "label",
         "tiers": {"Chicago": "cloud"}},
        "s.yaml", TOPOLOGIES,
    )  # fmt: skip
    assert set(topo.nodes) == {"New York", "Chicago", "Washington DC", "Indianapolis", "Atlanta"}
    assert topo.nodes["Chicago"].tier == "cloud" and topo.nodes["Atlanta"].tier == "edge"
    # 10 Gbit/s from LinkSpeedRaw; parallel 2.5 Gbit/s links merge into 5 Gbit/s
    assert topo.link("New York", "Chicago").up_mbps == pytest.approx(10_000)
    assert topo.link("Chicago", "Indianapolis").up_mbps == pytest.approx(5_000)
    # no speed on DC-Atlanta: default 1000 Mbit/s
    assert topo.link("Washington DC", "Atlanta").up_mbps == 1000
    # New York-Chicago is about 1,145 km: ~5.7 ms in fibre at 200 km/ms
    assert topo.link("New York", "Chicago").latency_ms == pytest.approx(1145 / 200, rel=0.01)
    assert len(topo.links) == 5


def test_great_circle_against_a_known_distance():
    # London (51.5074, -0.1278) to Paris (48.8566, 2.3522): 343.5 km (published value)
    assert great_circle_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343.5, abs=1)


GRAPHML_TWO_NODES = """<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="label" attr.type="string" for="node" id="d0" />
  <key attr.name="delay" attr.type="double" for="edge" id="d1" />
  <key attr.name="flops" attr.type="double" for="node" id="d2" />
  <graph edgedefault="undirected">
    <node id="a"><data key="d0">Same</data><data key="d2">7e9</data></node>
    <node id="b"><data key="d0">{label_b}</data></node>
    <edge source="a" target="b"><data key="d1">12.5</data></edge>
    <edge source="a" target="a"><data key="d1">1</data></edge>
  </graph>
</graphml>
"""


def test_graphml_latency_attribute_flops_and_self_loops(tmp_path):
    (tmp_path / "g.graphml").write_text(GRAPHML_TWO_NODES.format(label_b="Other"))
    topo = load_topology(
        {"graphml": "g.graphml", "latency_ms_attr": "delay", "bandwidth_mbps_default": 50},
        "s.yaml", tmp_path,
    )  # fmt: skip
    assert topo.link("a", "b").latency_ms == 12.5 and topo.link("a", "b").up_mbps == 50
    assert topo.nodes["a"].flops == 7e9 and topo.nodes["b"].flops == 2e12
    assert len(topo.links) == 1


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"graphml": "g.graphml", "node_id_attr": "label"}, "topology.node_id_attr", "'Same'"),
        ({"graphml": "missing.graphml"}, "topology.graphml", "file not found"),
        ({"graphml": "bad.graphml"}, "topology.graphml", "cannot read"),
        ({"graphml": "g.graphml", "tiers": {"zz": "cloud"}}, "topology.tiers.zz", "no node"),
        ({"graphml": "g.graphml", "latency": 3}, "topology.latency", "unknown field"),
    ],
)
def test_graphml_errors(tmp_path, spec, field, text):
    (tmp_path / "g.graphml").write_text(GRAPHML_TWO_NODES.format(label_b="Same"))
    (tmp_path / "bad.graphml").write_text("<graphml><graph><node id=")
    with pytest.raises(InputError) as err:
        load_topology(spec, "s.yaml", tmp_path)
    assert err.value.field == field and text in err.value.message


def test_tree_routes_are_the_shortest_paths_dijkstra_finds():
    """On a tree every route comes from parent pointers (O(depth)); it must be the route
    the general search finds, zero-latency links included."""
    import numpy as np

    from simnet.topology.graph import LinkSpec, NodeSpec, Topology
    from simnet.topology.routing import ShortestPaths

    rng = np.random.default_rng(5)
    for _ in range(100):
        n = int(rng.integers(1, 40))
        names = [f"n{i}" for i in range(n)]
        links = [LinkSpec(names[int(rng.integers(0, i))], names[i], float(rng.choice([0, 1, 2.5])),
                      10.0, 10.0) for i in range(1, n)]  # fmt: skip
        topology = Topology([NodeSpec(x, "edge", 1e9) for x in names], links)
        assert topology._tree is not None
        for a, b in rng.integers(0, n, size=(20, 2)):
            search = ShortestPaths(names[a], topology._sorted_neighbours.__getitem__,
                                   lambda u, v, t=topology: t.link(u, v).latency_us)  # fmt: skip
            assert topology.path(names[a], names[b]) == search.to(names[b])


def edge_nodes(ids: str, links: list[tuple[str, str, float]]) -> Topology:
    """Edge nodes ``ids`` joined by (a, b, latency ms) links of 1 Mbit/s."""
    return topology_from_dict(
        {"nodes": [{"id": x, "tier": "edge", "flops": 1e9} for x in ids],
         "links": [{"a": a, "b": b, "latency_ms": ms, "bandwidth_mbps": 1}
                   for a, b, ms in links]},
        "x.yaml",
    )  # fmt: skip


def test_a_graph_with_a_cycle_or_two_parts_is_not_routed_as_a_tree():
    triangle = [("a", "b", 1), ("b", "c", 1), ("a", "c", 5)]
    cycle = edge_nodes("abc", triangle)
    assert cycle._tree is None and cycle.path("a", "c") == ("a", "b", "c")
    parts = edge_nodes("abcd", triangle)  # as many links as a tree of 4 nodes, but d is apart
    assert len(parts.links) == len(parts.nodes) - 1 and parts._tree is None
    with pytest.raises(NoRouteError):
        parts.path("a", "d")
