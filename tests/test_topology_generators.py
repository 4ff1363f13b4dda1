"""Topology producers as pure functions: ``tree``, ``star`` and ``from_graphml``.

They return plain dicts in the topology file format of docs/design.md; every test also feeds
the dict through :func:`topology_from_dict`, the validation a hand-written file gets.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from simnet.errors import InputError
from simnet.topology.generators import StarSpec, TreeLinks, star, tree
from simnet.topology.graphml import from_graphml
from simnet.topology.load import topology_from_dict

FIXTURE = Path(__file__).parents[1] / "topologies" / "abilene_mini.graphml"


def tier_of(node_id: str) -> str:
    """The tier a generated id names: ``edge3`` → ``edge``."""
    return node_id.rstrip("0123456789")


def link_map(data: dict[str, Any]) -> dict[frozenset[str], dict[str, Any]]:
    return {frozenset((link["a"], link["b"])): link for link in data["links"]}


def checked(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` after checking it is plain, YAML-safe and a valid topology file."""
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    topology_from_dict(data, "generated")
    return data


# --- tree ------------------------------------------------------------------------------


def test_tree_counts_attachment_and_global_end_numbering():
    data = checked(tree({"clouds": 2, "edges": 3, "ends_per_edge": 2}, "s.yaml"))
    tiers = Counter(node["tier"] for node in data["nodes"])
    assert tiers == {"cloud": 2, "edge": 3, "end": 6}
    assert [n["id"] for n in data["nodes"] if n["tier"] == "end"] == [f"end{i}" for i in range(6)]
    classes = Counter(f"{tier_of(link['a'])}-{tier_of(link['b'])}" for link in data["links"])
    assert classes == {"end-edge": 6, "edge-cloud": 3, "cloud-cloud": 1}
    uplinks = {link["a"]: link["b"] for link in data["links"] if tier_of(link["a"]) != "cloud"}
    assert [uplinks[f"edge{e}"] for e in range(3)] == ["cloud0", "cloud1", "cloud0"]  # e % 2
    assert [uplinks[f"end{i}"] for i in range(6)] == [f"edge{i // 2}" for i in range(6)]


def test_tree_clouds_are_fully_meshed():
    data = checked(tree({"clouds": 4, "edges": 1, "ends_per_edge": 0}, "s.yaml"))
    mesh = {k for k, link in link_map(data).items() if tier_of(link["a"]) == "cloud"}
    assert mesh == {frozenset((f"cloud{i}", f"cloud{j}")) for i in range(4) for j in range(i)}
    assert not any(n["tier"] == "end" for n in data["nodes"])  # ends_per_edge 0: no ends


def test_tree_defaults_filled():
    data = checked(tree({"edges": 1, "ends_per_edge": 1}, "s.yaml"))
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes == {
        "cloud0": {"id": "cloud0", "tier": "cloud", "flops": 5e13, "slots": 1},
        "edge0": {"id": "edge0", "tier": "edge", "flops": 2e12, "slots": 1},
        "end0": {"id": "end0", "tier": "end", "flops": 5e10, "slots": 1},
    }
    links = link_map(data)
    assert links[frozenset(("end0", "edge0"))] == {
        "a": "end0", "b": "edge0", "latency_ms": 5, "up_mbps": 20, "down_mbps": 20
    }  # fmt: skip
    assert links[frozenset(("edge0", "cloud0"))] == {
        "a": "edge0", "b": "cloud0", "latency_ms": 30, "up_mbps": 100, "down_mbps": 100
    }  # fmt: skip
    defaults = TreeLinks()
    assert (defaults.cloud_cloud.latency_ms, defaults.cloud_cloud.bandwidth_mbps) == (10, 1000)


def test_tree_profiles_and_asymmetric_links():
    spec = {
        "edges": 2,
        "ends_per_edge": 1,
        "profiles": {"end": {"flops": 1e9, "slots": 2}, "cloud": {"slots": 8}},
        "links": {"end-edge": {"latency_ms": 2, "up_mbps": 5, "down_mbps": 50}},
    }
    data = checked(tree(spec, "s.yaml"))
    nodes = {n["id"]: n for n in data["nodes"]}
    assert (nodes["end1"]["flops"], nodes["end1"]["slots"]) == (1e9, 2)
    assert (nodes["cloud0"]["flops"], nodes["cloud0"]["slots"]) == (5e13, 8)  # default flops kept
    link = link_map(data)[frozenset(("end1", "edge1"))]
    assert (link["a"], link["latency_ms"], link["up_mbps"], link["down_mbps"]) == ("end1", 2, 5, 50)


def test_tree_end_classes_are_dealt_in_an_interleaved_pattern():
    """Weights 2, 1, 1: slots A at 1/4, 3/4, B at 1/2, C at 1/2 → pattern A B C A, repeated
    over the ends in order; a class without flops or link keeps the tree's."""
    spec = {
        "edges": 2, "ends_per_edge": 4,
        "profiles": {"end": {"flops": 1e9}},
        "links": {"end-edge": {"latency_ms": 5, "bandwidth_mbps": 20}},
        "end_classes": [
            {"weight": 2},
            {"weight": 1, "flops": 4e9, "link": {"latency_ms": 1, "bandwidth_mbps": 100}},
            {"weight": 1, "flops": 2.5e8},
        ],
    }  # fmt: skip
    data = checked(tree(spec, "s.yaml"))
    flops = {n["id"]: n["flops"] for n in data["nodes"]}
    assert [flops[f"end{i}"] for i in range(8)] == [1e9, 4e9, 2.5e8, 1e9] * 2
    links = link_map(data)
    speeds = [links[frozenset((f"end{i}", f"edge{i // 4}"))]["up_mbps"] for i in range(8)]
    assert speeds == [20, 100, 20, 20] * 2


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"edges": 1, "ends_per_edge": 1, "end_classes": []}, "end_classes", "at least 1"),
        ({"edges": 1, "ends_per_edge": 1, "end_classes": [{"weight": 0}]},
         "end_classes.0.weight", "greater than or equal to 1"),
        ({"edges": 0, "ends_per_edge": 1}, "edges", "greater than or equal to 1"),
        ({"edges": 1, "ends_per_edge": -1}, "ends_per_edge", "greater than or equal to 0"),
        ({"edges": 1, "ends_per_edge": 1, "clouds": 0}, "clouds", "greater than or equal to 1"),
        ({"edges": 1}, "ends_per_edge", "required"),
        ({"edges": 1, "ends_per_edge": 1, "fanout": 3}, "fanout", "unknown field"),
        ({"edges": 1, "ends_per_edge": 1, "links": {"end-fog": {}}}, "links.end-fog", "unknown"),
        ({"edges": 1, "ends_per_edge": 1, "links": {"edge-cloud": {"latency_ms": 1}}},
         "links.edge-cloud", "bandwidth_mbps"),
        ({"edges": 1, "ends_per_edge": 1, "profiles": {"fog": {}}}, "profiles.fog", "unknown"),
        ({"edges": 1, "ends_per_edge": 1, "profiles": {"edge": {"slots": 0}}},
         "profiles.edge.slots", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_tree_errors_name_the_field(spec, field, text):
    with pytest.raises(InputError) as err:
        tree(spec, "s.yaml")
    assert (err.value.source, err.value.field) == ("s.yaml", field)
    assert text in err.value.message


# --- star ------------------------------------------------------------------------------


def test_star_shape_and_defaults():
    data = checked(star({"leaves": 3}, "s.yaml"))
    assert [(n["id"], n["tier"]) for n in data["nodes"]] == [
        ("center", "edge"), ("leaf0", "end"), ("leaf1", "end"), ("leaf2", "end")
    ]  # fmt: skip
    assert data["links"] == [
        {"a": f"leaf{i}", "b": "center", "latency_ms": 5, "up_mbps": 20, "down_mbps": 20}
        for i in range(3)
    ]
    assert StarSpec(leaves=1).center_tier == "edge"


def test_star_tiers_link_and_profiles():
    spec = {
        "leaves": 2,
        "center_tier": "cloud",
        "leaf_tier": "edge",
        "link": {"latency_ms": 40, "up_mbps": 10, "down_mbps": 100},
        "profiles": {"cloud": {"flops": 1e14, "slots": 4}},
    }
    data = checked(star(spec, "s.yaml"))
    assert data["nodes"][0] == {"id": "center", "tier": "cloud", "flops": 1e14, "slots": 4}
    assert data["nodes"][1]["flops"] == 2e12
    assert data["links"][1] == {
        "a": "leaf1", "b": "center", "latency_ms": 40, "up_mbps": 10, "down_mbps": 100
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"leaves": 0}, "leaves"),
        ({"leaves": 2, "leaf_tier": "fog"}, "leaf_tier"),
        ({"leaves": 2, "link": {"latency_ms": -1, "bandwidth_mbps": 1}}, "link.latency_ms"),
        ({"leaves": 2, "links": {}}, "links"),
    ],
)
def test_star_errors_name_the_field(spec, field):
    with pytest.raises(InputError) as err:
        star(spec, "s.yaml")
    assert err.value.field == field


# --- GraphML ---------------------------------------------------------------------------


def independent_great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Central angle from 3-D unit vectors (atan2 of |cross| and dot), Earth radius 6371 km."""

    def unit(lat: float, lon: float) -> tuple[float, float, float]:
        phi, lam = math.radians(lat), math.radians(lon)
        return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))

    (x1, y1, z1), (x2, y2, z2) = unit(lat1, lon1), unit(lat2, lon2)
    cross = (y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2)
    dot = x1 * x2 + y1 * y2 + z1 * z2
    return 6371.0 * math.atan2(math.hypot(*cross), dot)


NEW_YORK = (40.71427, -74.00597)
CHICAGO = (41.85003, -87.65005)


def test_graphml_fixture_default_mapping():
    data = checked(from_graphml(FIXTURE, {}, "s.yaml"))
    assert [n["id"] for n in data["nodes"]] == ["0", "1", "2", "3", "4"]  # GraphML ids
    assert {n["tier"] for n in data["nodes"]} == {"edge"}
    assert {n["flops"] for n in data["nodes"]} == {2e12}
    links = link_map(data)
    assert len(links) == 5  # six GraphML edges, one parallel pair merged
    km = independent_great_circle_km(*NEW_YORK, *CHICAGO)
    assert km == pytest.approx(1145, abs=5)  # published New York-Chicago distance
    assert links[frozenset(("0", "1"))]["latency_ms"] == pytest.approx(km / 200, rel=1e-9)
    assert links[frozenset(("0", "1"))]["bandwidth_mbps"] == pytest.approx(10_000)  # 1e10 bit/s
    assert links[frozenset(("1", "3"))]["bandwidth_mbps"] == pytest.approx(5_000)  # 2 × 2.5 G
    assert links[frozenset(("2", "4"))]["bandwidth_mbps"] == 1000  # no LinkSpeedRaw


def test_graphml_fixture_labels_tiers_profiles_and_scales():
    spec = {
        "node_id_attr": "label",
        "tiers": {"Chicago": "cloud", "Atlanta": "end"},
        "profiles": {"edge": {"flops": 3e12, "slots": 2}},
        "bandwidth_attr": "LinkSpeed",  # "10" with LinkSpeedUnits G
        "bandwidth_scale": 1000,
        "bandwidth_mbps_default": 100,
        "latency_from_coordinates": False,
        "latency_ms_default": 7,
    }
    data = checked(from_graphml(FIXTURE, spec, "s.yaml"))
    nodes = {n["id"]: n for n in data["nodes"]}
    assert set(nodes) == {"New York", "Chicago", "Washington DC", "Indianapolis", "Atlanta"}
    assert (nodes["Chicago"]["tier"], nodes["Atlanta"]["tier"]) == ("cloud", "end")
    assert nodes["New York"] == {"id": "New York", "tier": "edge", "flops": 3e12, "slots": 2}
    assert nodes["Chicago"]["flops"] == 5e13
    links = link_map(data)
    assert links[frozenset(("New York", "Chicago"))]["bandwidth_mbps"] == 10_000
    assert links[frozenset(("Chicago", "Indianapolis"))]["bandwidth_mbps"] == 5_000
    assert links[frozenset(("Washington DC", "Atlanta"))]["bandwidth_mbps"] == 100
    assert {link["latency_ms"] for link in data["links"]} == {7}


def graphml(nodes: str, edges: str, directed: bool = False) -> str:
    """A small GraphML document with ITZ-style keys plus ``tier``, ``flops`` and ``delay``."""
    default = "directed" if directed else "undirected"
    return f"""<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="label" attr.type="string" for="node" id="n0" />
  <key attr.name="Latitude" attr.type="double" for="node" id="n1" />
  <key attr.name="Longitude" attr.type="double" for="node" id="n2" />
  <key attr.name="tier" attr.type="string" for="node" id="n3" />
  <key attr.name="flops" attr.type="double" for="node" id="n4" />
  <key attr.name="LinkSpeedRaw" attr.type="double" for="edge" id="e0" />
  <key attr.name="delay" attr.type="string" for="edge" id="e1" />
  <graph edgedefault="{default}">
{nodes}
{edges}
  </graph>
</graphml>
"""


def node(gid: str, label: str, lat: float | None = None, lon: float | None = None, **extra) -> str:
    data = f'<data key="n0">{label}</data>'
    if lat is not None:
        data += f'<data key="n1">{lat}</data><data key="n2">{lon}</data>'
    if "tier" in extra:
        data += f'<data key="n3">{extra["tier"]}</data>'
    if "flops" in extra:
        data += f'<data key="n4">{extra["flops"]}</data>'
    return f'    <node id="{gid}">{data}</node>'


def edge(a: str, b: str, bps: float | None = None, delay: str | None = None) -> str:
    data = "" if bps is None else f'<data key="e0">{bps}</data>'
    data += "" if delay is None else f'<data key="e1">{delay}</data>'
    return f'    <edge source="{a}" target="{b}">{data}</edge>'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "net.graphml"
    path.write_text(text)
    return path


LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)


def test_graphml_latency_from_coordinates_and_bandwidth_from_link_speed(tmp_path):
    path = write(
        tmp_path,
        graphml(
            node("a", "London", *LONDON) + "\n" + node("b", "Paris", *PARIS),
            edge("a", "b", bps=4e8),
        ),
    )
    (link,) = checked(from_graphml(path, {"node_id_attr": "label"}, "s.yaml"))["links"]
    km = independent_great_circle_km(*LONDON, *PARIS)
    assert km == pytest.approx(343.5, abs=1)  # published London-Paris distance
    assert link["latency_ms"] == pytest.approx(km / 200, rel=1e-9)  # ≈ 1.72 ms
    assert link["bandwidth_mbps"] == pytest.approx(400)


def test_graphml_parallel_edges_self_loops_latency_attr_tiers_and_flops(tmp_path):
    nodes = "\n".join(
        [
            node("a", "A", tier="cloud", flops=9e13),
            node("b", "B", tier="end"),
            node("c", "C"),
        ]
    )
    edges = "\n".join(
        [
            edge("a", "b", bps=1e8, delay="12"),
            edge("b", "a", bps=3e8, delay="4.5"),  # parallel (reversed): merged
            edge("a", "a", bps=1e9, delay="0"),  # self-loop: ignored
            edge("b", "c"),  # no attributes: defaults
        ]
    )
    spec = {"tier_attr": "tier", "latency_ms_attr": "delay", "tiers": {"c": "cloud"}}
    data = checked(from_graphml(write(tmp_path, graphml(nodes, edges)), spec, "s.yaml"))
    assert data["nodes"] == [
        {"id": "a", "tier": "cloud", "flops": 9e13, "slots": 1},  # node attribute wins
        {"id": "b", "tier": "end", "flops": 5e10, "slots": 1},
        {"id": "c", "tier": "cloud", "flops": 5e13, "slots": 1},  # override; no tier attr
    ]
    links = link_map(data)
    assert len(links) == 2
    merged = links[frozenset("ab")]
    assert (merged["latency_ms"], merged["bandwidth_mbps"]) == (4.5, pytest.approx(400))
    assert links[frozenset("bc")]["latency_ms"] == 1.0
    assert links[frozenset("bc")]["bandwidth_mbps"] == 1000


def test_graphml_directed_arcs_are_the_two_directions(tmp_path):
    nodes = node("a", "A") + "\n" + node("b", "B")
    edges = "\n".join([edge("a", "b", bps=1e7), edge("a", "b", bps=1e7), edge("b", "a", 5e7)])
    data = checked(from_graphml(write(tmp_path, graphml(nodes, edges, directed=True)), {}, "s"))
    (link,) = data["links"]
    assert (link["a"], link["b"], link["up_mbps"], link["down_mbps"]) == ("a", "b", 20, 50)


GRAPHML_ERRORS = [
    ({"node_id_attr": "label"}, "node_id_attr", "two nodes would both be called 'Twin'"),
    ({"tiers": {"zz": "cloud"}}, "tiers.zz", "no node 'zz'"),
    ({"tiers": {"a": "fog"}}, "tiers.a", "'fog'"),
    ({"tier_attr": "tier"}, "tier_attr", "tier 'fog'"),
    ({"latency_ms_attr": "delay"}, "latency_ms_attr", "is not a number (got 'soon')"),
    ({"bandwidth_attr": "delay"}, "bandwidth_attr", "'a'-'b': delay is not a number"),
    ({"bandwidth_scale": 0}, "bandwidth_scale", "greater than 0"),
    ({"latency_ms": 3}, "latency_ms", "unknown field"),
]


@pytest.mark.parametrize(("spec", "field", "text"), GRAPHML_ERRORS)
def test_graphml_errors_name_the_field(tmp_path, spec, field, text):
    nodes = node("a", "Twin", tier="fog") + "\n" + node("b", "Twin", tier="end")
    path = write(tmp_path, graphml(nodes, edge("a", "b", bps=1e6, delay="soon")))
    with pytest.raises(InputError) as err:
        from_graphml(path, spec, "s.yaml")
    assert (err.value.source, err.value.field) == ("s.yaml", field)
    assert text in err.value.message


def test_graphml_missing_and_unparsable_files(tmp_path):
    with pytest.raises(InputError) as err:
        from_graphml(tmp_path / "nowhere.graphml", {}, "s.yaml")
    assert err.value.field == "graphml" and err.value.message.startswith("file not found: ")
    bad = tmp_path / "bad.graphml"
    bad.write_text("<graphml><graph><node id=")
    with pytest.raises(InputError) as err:
        from_graphml(bad, {}, "s.yaml")
    assert err.value.field == "graphml" and "cannot read" in err.value.message
    assert "\n" not in str(err.value)


def test_graphml_non_positive_values_are_errors(tmp_path):
    nodes = node("a", "A", flops=0) + "\n" + node("b", "B")
    path = write(tmp_path, graphml(nodes, edge("a", "b", bps=1e6)))
    with pytest.raises(InputError, match="node 'a': flops must be > 0"):
        from_graphml(path, {}, "s.yaml")
    nodes = node("a", "A") + "\n" + node("b", "B")
    path = write(tmp_path, graphml(nodes, edge("a", "b", bps=0, delay="-1")))
    with pytest.raises(InputError, match="LinkSpeedRaw must be > 0"):
        from_graphml(path, {}, "s.yaml")
    with pytest.raises(InputError, match="delay must be >= 0"):
        from_graphml(path, {"latency_ms_attr": "delay"}, "s.yaml")
