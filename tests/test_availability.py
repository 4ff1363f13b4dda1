"""Availability: online intervals from a file and from a seeded chain, their checks, and
a federated run in which a device is left out of every round it is offline for."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simnet.cli import main
from simnet.config.scenario import load_scenario
from simnet.engine.availability import MarkovAvailabilityConfig, read_availability
from simnet.errors import InputError
from simnet.runner import simulate
from simnet.topology.graph import LinkSpec, NodeSpec, Topology

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ROOT / "scenarios" / "mosei_devices.yaml"
SHORT = [
    "workload.data.train=270",
    "workload.data.test=90",
    "workload.end.training.epochs=1",
    "workload.model.options={width: 8, layers: 1, heads: 2}",
    "workload.cloud.updates=12",
    "workload.edge.clients_per_round=null",
    "workload.edge.deadline_s=1.0",
]


def topology() -> Topology:
    nodes = [NodeSpec("cloud", "cloud", 1e13), NodeSpec("edge", "edge", 1e12)]
    nodes += [NodeSpec(f"end{i}", "end", 1e9) for i in range(3)]
    links = [LinkSpec("edge", "cloud", 1, 100, 100)]
    links += [LinkSpec(f"end{i}", "edge", 1, 10, 10) for i in range(3)]
    return Topology(nodes, links)


def trace(tmp_path: Path, text: str):
    (tmp_path / "online.csv").write_text(text)
    return read_availability("online.csv", topology(), "s.yaml", tmp_path, seed=0)


def test_a_trace_gives_the_changes_of_its_intervals(tmp_path):
    got = trace(tmp_path, "node,start_s,end_s\nend0,5,7\nend0,0,2\nend0,7,9\nend1,1,\n")
    assert got.nodes == ["end0", "end1"]
    assert list(got.transitions("end0")) == [(2.0, False), (5.0, True), (9.0, False)]
    assert list(got.transitions("end1")) == [(0.0, False), (1.0, True)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("end9,0,1", "online.csv row 2, node: unknown node 'end9'"),
        ("end0,2,1", "online.csv row 2, end_s: must be after start_s"),
        ("end0,1,1", "online.csv row 2, end_s: must be after start_s"),
        ("end0,x,1", "online.csv row 2, start_s: not a number ('x')"),
        ("end0,0,5\nend1,0,1\nend0,4,6",
         "online.csv row 4, start_s: end0's interval overlaps the one of row 2"),
        ("end0,-1,5", "online.csv row 2, start_s: must be finite and >= 0"),
        ("end0,,5", "online.csv row 2, start_s: required"),
        ("cloud,0,5", "taking the cloud (cloud) offline is not modelled"),
    ],
)  # fmt: skip
def test_a_bad_trace_is_refused_naming_file_row_and_field(tmp_path, rows, message):
    with pytest.raises(InputError) as error:
        trace(tmp_path, f"node,start_s,end_s\n{rows}\n")
    assert message in str(error.value)
    assert error.value.field == "faults.availability"


def test_a_trace_without_its_columns_is_refused(tmp_path):
    with pytest.raises(InputError, match="needs the columns node, start_s, end_s"):
        trace(tmp_path, "node,t_down,t_up\nend0,1,2\n")


def test_the_chain_is_seeded_per_node_and_spends_its_share_online():
    spec = MarkovAvailabilityConfig(kind="markov", mean_on_s=3.0, mean_off_s=1.0, nodes="end")
    chain = read_availability(spec, topology(), "s.yaml", Path("."), seed=7)
    assert chain.nodes == ["end0", "end1", "end2"]

    def online_share(node: str, horizon: float) -> float:
        online, t, total = True, 0.0, 0.0
        for at, state in chain.transitions(node):
            if at > horizon:
                break
            total += (at - t) if online else 0.0
            online, t = state, at
        return (total + ((horizon - t) if online else 0.0)) / horizon

    again = read_availability(spec, topology(), "s.yaml", Path("."), seed=7)
    first = [c for c, _ in zip(chain.transitions("end1"), range(50), strict=False)]
    assert first == [c for c, _ in zip(again.transitions("end1"), range(50), strict=False)]
    other = read_availability(spec, topology(), "s.yaml", Path("."), seed=8)
    assert first != [c for c, _ in zip(other.transitions("end1"), range(50), strict=False)]
    assert [s for _, s in first[1:]] == [not s for _, s in first[:-1]]  # it alternates
    assert online_share("end0", 40_000.0) == pytest.approx(0.75, abs=0.02)


def test_validate_refuses_a_bad_trace_in_one_line(tmp_path, capsys):
    (tmp_path / "online.csv").write_text("node,start_s,end_s\nend0,3,2\n")
    status = main([
        "validate", str(DEVICES), "--set", f"faults.availability={tmp_path / 'online.csv'}",
    ])  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "faults.availability" in err and "online.csv row 2, end_s" in err


def test_a_device_is_left_out_of_every_round_it_is_offline_for(tmp_path):
    # end0 goes offline at 0.7 s for good; end4 is offline until 0.8 s; end8 is offline
    # from 0.5 s to 1 s (the run takes about 1.5 s)
    (tmp_path / "online.csv").write_text(
        "node,start_s,end_s\nend0,0,0.7\nend4,0.8,\nend8,0,0.5\nend8,1.0,\n"
    )
    online = {"end0": [(0.0, 0.7)], "end4": [(0.8, math.inf)],
              "end8": [(0.0, 0.5), (1.0, math.inf)]}  # fmt: skip
    overrides = [*SHORT, f"faults.availability={tmp_path / 'online.csv'}"]
    run = simulate(load_scenario(DEVICES, overrides), progress=False)
    assert run.workload.finished

    def is_online(node: str, t: float) -> bool:
        return any(s <= t < e for s, e in online.get(node, [(0.0, math.inf)]))

    transfers = run.world.network.transfers
    models = [t for t in transfers if t.kind == "model"]
    assert {t.dst for t in models} >= {"end0", "end4", "end8"}
    for model in models:  # offline ends are never sent a round's model
        assert is_online(model.dst, model.t_send), (model.dst, model.t_send)
    for transfer in transfers:  # nothing reaches or leaves a device while it is offline
        if transfer.status == "delivered":
            for node in (transfer.src, transfer.dst):
                assert is_online(node, transfer.t_send) and is_online(node, transfer.t_recv)
    for node in online:  # nor does it compute
        for start, end in run.world.nodes[node].busy:
            assert any(s <= start and end <= e for s, e in online[node]), (node, start, end)
    selected = [
        (r.node, r.metric, r.t) for r in run.world.metrics if r.metric.startswith("selected:")
    ]
    assert selected  # rounds with an offline end record whom they took
    for _, metric, t in selected:
        assert is_online(metric.split(":")[1], t)
    assert run.world.faults["offline"] == 3 and run.world.faults["online"] == 2
    assert run.world.faults["crash"] == 0


def test_an_ml_ecs_round_opens_to_the_devices_online_and_closes_when_they_answered(tmp_path):
    (tmp_path / "online.csv").write_text("node,start_s,end_s\nleaf1,0.1,\n")
    overrides = ["workload.rounds=4", "workload.data.samples=240", "workload.model.steps=2",
                 "workload.model.warmup_steps=2", "workload.deadline_s=30",
                 f"faults.availability={tmp_path / 'online.csv'}"]  # fmt: skip
    run = simulate(load_scenario(ROOT / "scenarios" / "mlecs_urfall.yaml", overrides), False)
    assert run.workload.finished
    opens = [t for t in run.world.network.transfers if t.kind == "representations"]
    to_leaf1 = [t.t_send for t in opens if t.dst == "leaf1"]
    assert all(t >= 0.1 for t in to_leaf1) and to_leaf1  # offline at 0 s, then it takes part
    first = min(t.t_send for t in opens)
    assert sorted(t.dst for t in opens if t.t_send == first) == ["leaf0", "leaf2", "leaf3",
                                                                 "leaf4", "leaf5"]  # fmt: skip
    second = min(t.t_send for t in opens if t.t_send > first)
    assert second < 1.0  # the first round closed with the five, not at its 30 s deadline
    assert run.world.nodes["leaf1"].busy[0][0] >= 0.1  # it trained only once online


def test_clients_per_round_samples_among_the_devices_online(tmp_path):
    (tmp_path / "online.csv").write_text(
        "node,start_s,end_s\nend0,0,0.7\nend1,0.4,\nend4,0.8,\nend8,0,0.5\nend8,1.0,\n"
    )
    online = {"end0": [(0.0, 0.7)], "end1": [(0.4, math.inf)], "end4": [(0.8, math.inf)],
              "end8": [(0.0, 0.5), (1.0, math.inf)]}  # fmt: skip
    overrides = [*SHORT, "workload.edge.clients_per_round=2",
                 f"faults.availability={tmp_path / 'online.csv'}"]  # fmt: skip
    run = simulate(load_scenario(DEVICES, overrides), progress=False)
    assert run.workload.finished
    ends = {f"edge{e}": [f"end{3 * e + i}" for i in range(3)] for e in range(3)}
    rounds: dict[tuple[str, float], list[str]] = {}
    for row in run.world.metrics:
        if row.metric.startswith("selected:"):
            rounds.setdefault((row.node, row.value), []).append(row.metric.split(":")[1])
    t_of = {(r.node, r.value): r.t for r in run.world.metrics if r.metric.startswith("selected:")}
    assert len(rounds) >= 9
    for (edge, round_), chosen in rounds.items():
        t = t_of[edge, round_]
        up = [e for e in ends[edge] if any(s <= t < f for s, f in online.get(e, [(0, math.inf)]))]
        assert set(chosen) <= set(up) and len(chosen) == min(2, len(up)), (edge, t, chosen, up)
