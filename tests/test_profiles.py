"""Device profiles: the shipped table, expansion onto nodes and links, overrides, generated
trees, and the one-line refusal of an unknown name."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from simnet.cli import main
from simnet.errors import InputError
from simnet.topology.graph import Power
from simnet.topology.load import load_topology, topology_from_dict
from simnet.topology.profiles import profiles

NAMES = ["raspberry-pi-4", "jetson-nano", "jetson-orin-nano", "smartphone-midrange",
         "laptop-cpu", "edge-server-t4", "cloud-a100"]  # fmt: skip


def test_the_table_has_the_devices_and_every_number_its_source():
    table = profiles()
    assert list(table) == NAMES
    for name, entry in table.items():
        assert isinstance(entry["flops"], float) and entry["flops"] > 0, name
        assert set(entry["power"]) <= {"idle_w", "busy_w", "tx_w", "rx_w"}
        assert all(isinstance(w, int | float) and w > 0 for w in entry["power"].values())
        assert set(entry.get("link", {})) <= {"latency_ms", "up_mbps", "down_mbps"}
    text = resources.files("simnet.topology").joinpath("profiles.yaml").read_text()
    numbers = [line for line in text.splitlines() if re.match(r"\s+\w+: [0-9.e+]+\s", line)]
    assert len(numbers) >= 7 * 3
    assert all(re.search(r"#\s*\S.{10,}", line) for line in numbers), "a number lacks its source"


def topo(nodes, links=()):
    return topology_from_dict({"nodes": nodes, "links": list(links)}, "t.yaml")


def test_a_profile_fills_flops_power_and_the_access_link():
    pi = profiles()["raspberry-pi-4"]
    t = topo(
        [{"id": "e", "tier": "edge", "flops": 1e12},
         {"id": "p", "tier": "end", "profile": "raspberry-pi-4"}],
        [{"a": "p", "b": "e"}],
    )  # fmt: skip
    node = t.nodes["p"]
    assert node.flops == pi["flops"] and node.power == Power(**pi["power"])
    link = t.link("p", "e")
    assert link.latency_ms == pi["link"]["latency_ms"]
    assert (link.up_mbps, link.down_mbps) == (pi["link"]["up_mbps"], pi["link"]["down_mbps"])
    assert t.nodes["e"].power == Power()


def test_fields_on_the_node_and_the_link_win_key_by_key():
    phone = profiles()["smartphone-midrange"]
    t = topo(
        [{"id": "e", "tier": "edge"},
         {"id": "p", "tier": "end", "profile": "smartphone-midrange", "flops": 3e9,
          "power": {"idle_w": 0.25}}],
        [{"b": "p", "a": "e", "latency_ms": 1}],
    )  # fmt: skip
    node = t.nodes["p"]
    assert node.flops == 3e9
    assert node.power == Power(**{**phone["power"], "idle_w": 0.25})
    link = t.link("p", "e")  # its end b's profile gives the bandwidths, the link its latency
    assert link.latency_ms == 1 and link.up_mbps == phone["link"]["up_mbps"]
    again = topology_from_dict(t.to_dict(), "again.yaml")  # a run's scenario.yaml reads back
    assert again.nodes == t.nodes and again.links == t.links


def test_a_link_without_values_and_no_profile_to_give_them_is_refused():
    with pytest.raises(InputError, match="links.0"):
        topo([{"id": "a", "tier": "end"}, {"id": "b", "tier": "edge"}], [{"a": "a", "b": "b"}])


def test_generated_trees_take_profiles_per_tier_and_per_end_class():
    t = load_topology(
        {"generate": "tree", "edges": 1, "ends_per_edge": 2,
         "profiles": {"edge": {"profile": "edge-server-t4"}, "end": {"flops": 2e9}},
         "end_classes": [{"profile": "jetson-nano"}, {"weight": 1}]},
        "s.yaml", Path("."),
    )  # fmt: skip
    assert t.nodes["edge0"].flops == profiles()["edge-server-t4"]["flops"]
    jetson = profiles()["jetson-nano"]  # a class's profile wins over the tier's flops
    assert t.nodes["end0"].flops == jetson["flops"]
    assert t.nodes["end0"].power.busy_w == jetson["power"]["busy_w"]
    assert t.nodes["end1"].power == Power() and t.nodes["end1"].flops == 2e9
    assert t.nodes["cloud0"].flops == 5e13


def test_an_unknown_profile_is_one_line_listing_the_known_ones(tmp_path, capsys):
    topology = tmp_path / "t.yaml"
    topology.write_text("nodes:\n  - {id: a, tier: end, profile: pi-5}\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("topology: t.yaml\nworkload: {kind: traffic, transfers: []}\n")
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nodes.0.profile" in err and "unknown profile 'pi-5'" in err
    assert all(name in err for name in NAMES)
