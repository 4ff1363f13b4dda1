"""Energy: the equations of docs/energy.md against hand calculations on made traffic,
compute overlapping transmission, the summary and the metrics rows of a run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from simnet.cli import main
from simnet.engine.energy import EnergyMeter, Occupancy
from simnet.engine.faults import NodeEvent
from simnet.engine.world import World
from simnet.topology.graph import LinkSpec, NodeSpec, Power, Topology
from simnet.topology.profiles import profiles
from simnet.wire.message import Message

MB = 1_000_000
RATE = 8.0  # Mbit/s: 1 MB/s
LAT_MS = 2.0  # per link: a two-hop route waits 4 ms
DEVICE = Power(idle_w=1.0, busy_w=6.0, tx_w=3.0, rx_w=2.0)


def star(**world: object) -> World:
    """a, b, c (end devices, 1 GFLOP/s, DEVICE power) around the edge r (no power)."""
    nodes = [NodeSpec(n, "end", 1e9, 1, DEVICE) for n in "abc"] + [NodeSpec("r", "edge", 1e12)]
    links = [LinkSpec(n, "r", LAT_MS, RATE, RATE) for n in "abc"]
    return World(Topology(nodes, links), **world)


def at(w: World, t: float, action) -> None:
    def go():
        yield w.env.timeout(t)
        action()

    w.env.process(go())


def send(w: World, src: str, dst: str, size: int, t: float) -> None:
    at(w, t, lambda: w.nodes[src].send(Message(src, dst, "data", size_bytes=size)))


def compute(w: World, node: str, flops: float, t: float) -> None:
    at(w, t, lambda: w.nodes[node].compute(flops))


def close(value: float, expected: float) -> bool:
    return math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)


def test_two_flows_sharing_the_radio_cost_its_time_once():
    w = star()
    send(w, "a", "b", MB, 0.0)  # alone at 1 MB/s from 0.004 s, half from 0.504 s: ends 1.504
    send(w, "a", "c", MB, 0.5)  # half until 1.504 (0.5 MB), then alone: ends 2.004
    w.run()
    assert [t.t_recv for t in w.network.transfers] == pytest.approx([1.504, 2.004])
    meter = EnergyMeter(w, 2.004)
    a, b, c = (meter.node(n) for n in "abc")
    assert close(a.tx_j, 3.0 * 2.0)  # ∪ [0.004, 1.504] ∪ [0.504, 2.004]: 2.0 s, not 3.0 s
    assert close(a.rx_j, 0.0)
    assert close(a.idle_j, 1.0 * 0.004)
    assert close(b.rx_j, 2.0 * 1.5) and close(b.idle_j, 1.0 * (2.004 - 1.5))
    assert close(c.rx_j, 2.0 * 1.5) and close(c.idle_j, 1.0 * 0.504)
    assert close(a.total_j, 6.004) and a.compute_j == 0
    assert meter.node("r").total_j == 0  # forwarding is not charged, and r draws nothing


def test_compute_overlapping_transmission_adds_and_leaves_no_idle():
    w = star()
    compute(w, "a", 2e9, 0.0)  # busy [0, 2]
    send(w, "a", "b", MB, 1.0)  # sending [1.004, 2.004]
    compute(w, "b", 1e9, 0.0)  # busy [0, 1], then receiving [1.004, 2.004]
    w.run()
    meter = EnergyMeter(w, 3.0)
    a, b = meter.node("a"), meter.node("b")
    assert close(a.compute_j, 6.0 * 2.0) and close(a.tx_j, 3.0 * 1.0)
    assert close(a.idle_j, 1.0 * (3.0 - 2.004))  # active: [0, 2] ∪ [1.004, 2.004]
    assert close(b.compute_j, 6.0) and close(b.rx_j, 2.0)
    assert close(b.idle_j, 1.0 * (3.0 - 1.0 - 1.0))  # active [0, 1] and [1.004, 2.004]
    assert close(w.nodes["a"].busy_s, 2.0)


def test_slots_pay_per_busy_slot_and_idle_counts_the_union():
    nodes = [NodeSpec("x", "edge", 1e9, 2, Power(idle_w=10.0, busy_w=50.0))]
    w = World(Topology(nodes, []))
    compute(w, "x", 2e9, 0.0)  # slot 1: [0, 2]
    compute(w, "x", 2e9, 1.0)  # slot 2: [1, 3]
    w.run()
    x = EnergyMeter(w, 4.0).node("x")
    assert close(x.compute_j, 50.0 * 4.0)  # 2 + 2 busy slot-seconds
    assert close(x.idle_j, 10.0 * 1.0)  # [0, 3] active of [0, 4]
    assert close(x.compute_j, 50.0 * w.nodes["x"].busy_s)  # busy_w × the compute model's s


def test_latency_phases_and_drops_follow_the_bandwidth_phase():
    w = star(node_events=[NodeEvent(0.5, "c", False)])
    send(w, "a", "c", MB, 0.0)  # bandwidth phase [0.004, 0.5], then c crashes: dropped
    send(w, "b", "c", 100, 0.498)  # still in its 4 ms latency phase at 0.5: no radio time
    w.run()
    assert [t.status for t in w.network.transfers] == ["dropped", "dropped"]
    meter = EnergyMeter(w, 1.0)
    assert close(meter.node("a").tx_j, 3.0 * 0.496)
    assert close(meter.node("c").rx_j, 2.0 * 0.496)
    assert close(meter.node("b").tx_j, 0.0) and close(meter.node("b").idle_j, 1.0)


def test_energy_until_t_is_the_same_equations_on_the_clipped_intervals():
    w = star()
    send(w, "a", "b", MB, 0.0)
    send(w, "a", "c", MB, 0.5)
    compute(w, "a", 1e9, 0.25)  # busy [0.25, 1.25]
    w.run()
    meter = EnergyMeter(w, 2.004)
    a = meter.node("a", 1.0)  # sending [0.004, 1.0], busy [0.25, 1.0]
    assert close(a.tx_j, 3.0 * 0.996) and close(a.compute_j, 6.0 * 0.75)
    assert close(a.idle_j, 1.0 * 0.004)
    tiers = meter.by_tier(1.0)
    assert close(tiers["end"], sum(meter.node(n, 1.0).total_j for n in "abc"))
    assert tiers["edge"] == 0


def test_occupancy_is_the_length_of_the_union_or_the_sum():
    spans = [(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (6.0, 7.0), (4.0, 4.0)]
    assert Occupancy(spans, union=True).until(10.0) == 5.0
    assert Occupancy(spans, union=False).until(10.0) == 6.0
    assert Occupancy(spans, union=True).until(2.5) == 2.5
    assert Occupancy(spans, union=False).until(2.5) == 3.5
    assert Occupancy([], union=True).until(1.0) == 0.0


TRAFFIC = """
name: energy_traffic
topology:
  nodes:
    - {id: a, tier: end, power: {idle_w: 1, tx_w: 3, rx_w: 2}}
    - {id: b, tier: end, power: {idle_w: 1, tx_w: 3, rx_w: 2}}
    - {id: c, tier: end, power: {idle_w: 1, tx_w: 3, rx_w: 2}}
    - {id: r, tier: edge}
  links:
    - {a: a, b: r, latency_ms: 2, bandwidth_mbps: 8}
    - {a: b, b: r, latency_ms: 2, bandwidth_mbps: 8}
    - {a: c, b: r, latency_ms: 2, bandwidth_mbps: 8}
workload:
  kind: traffic
  transfers:
    - {src: a, dst: b, bytes: 1000000, at: 0.0}
    - {src: a, dst: c, bytes: 1000000, at: 0.5}
"""


def test_a_run_reports_energy_in_the_summary_the_metrics_and_the_figures(tmp_path, capsys):
    scenario = tmp_path / "traffic.yaml"
    scenario.write_text(TRAFFIC)
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["virtual_time_s"] == pytest.approx(2.004)
    a = summary["energy"]["a"]
    assert close(a["tx_j"], 6.0) and close(a["idle_j"], 0.004) and close(a["total_j"], 6.004)
    assert close(summary["energy"]["b"]["total_j"], 3.0 + 0.504)
    assert close(summary["energy_by_tier"]["end"]["total_j"], 6.004 + 3.504 + 3.504)
    assert summary["energy_by_tier"]["edge"]["total_j"] == 0
    assert set(summary["energy"]) == {"a", "b", "c"}  # r draws nothing
    assert summary["busy_s_by_node"] == {}  # nobody computed
    with (out / "metrics.csv").open() as handle:
        energy = [r for r in csv.DictReader(handle) if "energy" in r["metric"]]
    assert [r["metric"] for r in energy] == [
        "energy_j", "energy_j.end", "energy_j.edge", "energy_j.cloud", "round_energy_j",
    ]  # fmt: skip
    assert {float(r["t"]) for r in energy} == {summary["virtual_time_s"]}
    assert close(float(energy[0]["value"]), 13.012) and energy[0]["value"] == energy[4]["value"]
    assert (out / "figures" / "energy_by_tier.png").is_file()
    assert "energy" in capsys.readouterr().out


def test_a_run_without_power_writes_no_energy_rows(tmp_path):
    scenario = tmp_path / "traffic.yaml"
    data = yaml.safe_load(TRAFFIC)
    for node in data["topology"]["nodes"]:
        node.pop("power", None)
    scenario.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out), "--no-figures", "--quiet"]) == 0
    assert "energy" not in (out / "metrics.csv").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["energy"] == {}
    assert [e["total_j"] for e in summary["energy_by_tier"].values()] == [0.0, 0.0]


def test_round_energy_rows_follow_each_cloud_score(tmp_path: Path):
    from simnet.config.scenario import load_scenario
    from simnet.runner import run_scenario

    root = Path(__file__).resolve().parents[1]
    scenario = load_scenario(root / "scenarios" / "mosei_devices.yaml", SHORT_DEVICES)
    summary = run_scenario(scenario, tmp_path / "run", progress=False, figures=True)
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    scored = [float(r["t"]) for r in rows if r["node"] == "cloud0" and r["metric"] == "acc2_non0"]
    totals = [(float(r["t"]), float(r["value"])) for r in rows if r["metric"] == "energy_j"]
    rounds = [float(r["value"]) for r in rows if r["metric"] == "round_energy_j"]
    assert [t for t, _ in totals][: len(scored)] == scored
    assert totals[-1][0] == summary["virtual_time_s"]
    assert close(totals[-1][1], sum(e["total_j"] for e in summary["energy"].values()))
    assert close(sum(rounds), totals[-1][1])  # the rounds' energies add up to the whole
    assert all(b >= a for (_, a), (_, b) in zip(totals, totals[1:], strict=False))
    pi = profiles()["raspberry-pi-4"]["power"]  # end0 … end5's profile
    busy = {
        n: s for n, s in summary["busy_s_by_node"].items() if n in {f"end{i}" for i in range(6)}
    }
    assert busy
    for node, seconds in busy.items():
        assert close(summary["energy"][node]["compute_j"], pi["busy_w"] * seconds)
    figures = tmp_path / "run" / "figures"
    assert (figures / "accuracy_vs_energy.png").is_file()


SHORT_DEVICES = [
    "workload.data.train=270",
    "workload.data.test=90",
    "workload.end.training.epochs=1",
    "workload.model.options={width: 8, layers: 1, heads: 2}",
    "workload.cloud.updates=6",
]
