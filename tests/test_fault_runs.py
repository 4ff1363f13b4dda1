"""Whole runs under faults: scenarios/faults_mosei.yaml in every Mega-CE² mode and ML-ECS
under crashes, drop-out and a flapping link run to completion with bytes conserved; a run
that cannot finish says so; an edge with nothing new pushes nothing."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from simnet.cli import main
from simnet.config.scenario import load_scenario
from simnet.report.records import is_complete
from simnet.runner import run_scenario
from simnet.topology.graph import link_class

ROOT = Path(__file__).resolve().parents[1]
FAULTS_MOSEI = ROOT / "scenarios" / "faults_mosei.yaml"
SHORT = [
    "workload.data.train=270",
    "workload.data.test=90",
    "workload.end.training.epochs=1",
    "workload.model.options={width: 8, layers: 1, heads: 2}",
    "workload.cloud.updates=12",
    "workload.inference.requests=6",
    # the same faults, earlier: the shortened training is over in a few seconds
    "faults.nodes.0.at=1.0",
    "faults.nodes.1.at=2.5",
    "network.events.0.at=1.5",
    "network.events.1.at=2.0",
    "network.events.2.at=3.0",
    "network.events.3.at=3.2",
]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def check_bytes_conserved(summary: dict, out: Path) -> None:
    """sent = delivered + dropped + in flight, per kind and per link class, in the summary
    and recomputed from messages.csv."""
    messages = rows(out / "messages.csv")
    topo = yaml.safe_load((out / "scenario.yaml").read_text())["topology"]
    tiers = {n["id"]: n["tier"] for n in topo["nodes"]}
    by_kind: dict[str, Counter] = defaultdict(Counter)
    by_class: dict[str, Counter] = defaultdict(Counter)
    for m in messages:
        size, route = int(m["bytes"]), m["route"].split(">")
        hops = zip(route[:-1], route[1:], strict=True)
        classes = {link_class(tiers[u], tiers[v]) for u, v in hops}
        for counter in [by_kind[m["kind"]], *(by_class[c] for c in classes)]:
            counter["sent"] += size
            counter[m["status"]] += size
    for table, expected in [
        (summary["bytes_by_kind"], by_kind),
        (summary["message_bytes_by_link_class"], by_class),
    ]:
        assert set(table) == set(expected)
        for key, counts in table.items():
            assert counts["sent"] == counts["delivered"] + counts["dropped"] + counts["in_flight"]
            assert counts == {s: expected[key][s] for s in counts}, key
    assert summary["bytes_total"] == sum(int(m["bytes"]) for m in messages)


@pytest.mark.parametrize("mode", ["async", "sync", "flat"])
def test_faults_mosei_runs_to_completion_in_every_mode(mode, tmp_path):
    sets = [*SHORT, f"workload.cloud.mode={mode}"]
    if mode == "flat":
        sets.append("workload.inference.placements=[cloud]")
    summary = run_scenario(
        load_scenario(FAULTS_MOSEI, sets), tmp_path / "run", progress=False, figures=False
    )
    assert summary["complete"], summary.get("incomplete_reason")
    faults = summary["faults"]
    assert faults["crash"] == faults["recovery"] == 1 and faults["dropout"] > 0
    assert set(faults) >= {"crash", "recovery", "dropout", "retry", "gave_up", "skipped_push"}
    check_bytes_conserved(summary, tmp_path / "run")
    messages = rows(tmp_path / "run" / "messages.csv")
    # edge1 is down from 1.0 s to 2.5 s: nothing reaches it, nothing leaves it
    for m in messages:
        if "edge1" in m["route"].split(">") and m["status"] == "delivered":
            assert not (1.0 <= float(m["t_send"]) < 2.5 or 1.0 <= float(m["t_recv"]) < 2.5), m
    # rounds went on: the cloud reached its target number of updates
    if mode != "flat":
        assert summary["updates_merged"] >= 12
    metrics = rows(tmp_path / "run" / "metrics.csv")
    dropouts = [m for m in metrics if m["metric"] == "dropout"]
    assert len(dropouts) == faults["dropout"] and {m["node"][:3] for m in dropouts} == {"end"}


def test_mlecs_runs_to_completion_under_faults(tmp_path):
    scenario = yaml.safe_load((ROOT / "scenarios" / "mlecs_urfall.yaml").read_text())
    scenario["faults"] = {
        "nodes": [{"node": "leaf1", "at": 0.0, "state": "down"},
                  {"node": "leaf1", "at": 5.0, "state": "up"}],
        "dropout": {"tier": "end", "probability": 0.3},
    }  # fmt: skip
    scenario["network"] = {"events": [{"at": 0.0, "a": "leaf2", "b": "center", "state": "down"}]}
    path = tmp_path / "mlecs_faults.yaml"
    path.write_text(yaml.safe_dump(scenario))
    sets = [
        "workload.rounds=4",
        "workload.data.samples=240",
        "workload.model.steps=2",
        "workload.model.warmup_steps=2",
    ]
    with pytest.raises(Exception, match="workload.deadline_s: required"):
        load_scenario(path, sets)
    summary = run_scenario(
        load_scenario(path, [*sets, "workload.deadline_s=30"]), tmp_path / "run",
        progress=False, figures=False,
    )  # fmt: skip
    assert summary["complete"], summary.get("incomplete_reason")
    assert summary["faults"]["crash"] == 1 and summary["faults"]["recovery"] == 1
    check_bytes_conserved(summary, tmp_path / "run")
    messages = rows(tmp_path / "run" / "messages.csv")
    # leaf2's link is down for good: nothing of it gets through, every round goes on
    assert all(m["status"] == "dropped" for m in messages if "leaf2" in m["route"].split(">"))
    updates = [m for m in messages if m["kind"] == "lora_update" and m["status"] == "delivered"]
    assert updates and "leaf2" not in {m["src"] for m in updates}
    assert "leaf1" in {m["src"] for m in updates}  # it came back and took part


def test_an_edge_with_no_update_in_time_skips_its_push(tmp_path):
    """edge2's ends are cut off at 1.5 s: its rounds bring no update, and it must not push
    the model it pulled (the old code pushed it with its full sample count and the cloud
    merged it as new); it pulls again instead."""
    cuts = [{"at": 1.5, "a": f"end{k}", "b": "edge2", "state": "down"} for k in (6, 7, 8)]
    sets = [*SHORT, "workload.inference=null", "faults.nodes=[]", "faults.dropout=null",
            f"network.events={json.dumps(cuts)}", "workload.edge.deadline_s=0.5",
            "workload.cloud.updates=24"]  # fmt: skip
    out = tmp_path / "run"
    summary = run_scenario(load_scenario(FAULTS_MOSEI, sets), out, progress=False, figures=False)
    assert summary["complete"], summary.get("incomplete_reason")
    messages = rows(out / "messages.csv")
    pushes = [m for m in messages if m["kind"] == "edge_update"]
    assert all(float(m["t_send"]) < 1.5 for m in pushes if m["src"] == "edge2")
    pulls = [m for m in messages if m["kind"] == "model_request" and m["src"] == "edge2"]
    assert summary["faults"]["skipped_push"] == len(pulls) - 1 > 0
    assert all(float(m["t_send"]) > 1.5 for m in pulls[1:])
    metrics = rows(out / "metrics.csv")
    skips = [m for m in metrics if m["metric"] == "skipped_push"]
    assert {m["node"] for m in skips} == {"edge2"} and len(skips) == len(pulls) - 1
    merged = [m for m in metrics if m["metric"] == "staleness"]
    assert summary["updates_merged"] == len(merged) <= len(pushes)


def test_a_run_that_cannot_finish_is_marked_incomplete(tmp_path, capsys):
    """Every backhaul fails for good: edges give up, nobody merges; the run says so, with
    exit status 3, and is not taken for a finished run."""
    sets = [*SHORT, "workload.inference=null", "faults.nodes=[]"]
    cuts = [{"at": 0.0, "a": f"edge{k}", "b": "cloud0", "state": "down"} for k in range(3)]
    sets.append(f"network.events={json.dumps(cuts)}")
    out = tmp_path / "run"
    status = main(["run", str(FAULTS_MOSEI), "--out", str(out), "--no-figures",
                   *(arg for s in sets for arg in ("--set", s))])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and not is_complete(out)
    reason = summary["incomplete_reason"]
    assert reason.startswith("no event left at t = ")
    assert "cloud0 waited for model_request or edge_update" in reason
    assert "INCOMPLETE" in captured.out and "incomplete run: " in captured.err
    assert summary["faults"]["gave_up"] == 3  # each edge's first pull, after its retries


def test_a_protocol_that_never_ends_stops_at_the_time_limit(tmp_path):
    """Every end sits out every round: the edges' rounds go on for ever in virtual time;
    the run stops at execution.time_limit_s, incomplete."""
    sets = [
        *SHORT, "workload.inference=null", "faults.nodes=[]", "network.events=[]",
        "faults.dropout.probability=1.0", "execution.time_limit_s=40",
    ]  # fmt: skip
    out = tmp_path / "run"
    summary = run_scenario(load_scenario(FAULTS_MOSEI, sets), out, progress=False, figures=False)
    assert not summary["complete"]
    assert summary["virtual_time_s"] <= 40
    assert summary["incomplete_reason"].startswith(
        "the clock reached execution.time_limit_s = 40 s with events left"
    )
    assert summary["cloud"]["version"] == 0 and summary["faults"]["skipped_push"] > 0


def test_an_answer_to_a_request_from_before_a_crash_is_not_taken_for_a_new_one(tmp_path):
    """edge0 goes down while the cloud's answer to its push is in flight (0.53 s) and comes
    back at 1.5 s and pulls again. The cloud keeps resending the old answer (1.03 s: edge0
    down; 2.03 s: delivered). edge0 must run one round per answer to its *current*
    request; taking the old answer too would leave it with two requests outstanding."""
    from test_federated import scenario

    path = scenario(
        tmp_path,
        edge={"deadline_s": 2.0},
        cloud={"mode": "async", "updates": 12, "deadline_s": 2.0},
    )
    data = yaml.safe_load(path.read_text())
    data["faults"] = {
        "nodes": [{"node": "edge0", "at": 0.53, "state": "down"},
                  {"node": "edge0", "at": 1.5, "state": "up"}],
        "retry": {"timeout_s": 0.5, "attempts": 6},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    summary = run_scenario(load_scenario(path), out, progress=False, figures=False)
    assert summary["complete"], summary.get("incomplete_reason")
    after = [m for m in rows(out / "messages.csv") if float(m["t_send"]) >= 1.5]
    answers = [m for m in after if m["kind"] == "global_model" and m["dst"] == "edge0"
               and m["status"] == "delivered"]  # fmt: skip
    stale = [m for m in answers if float(m["t_send"]) == pytest.approx(0.53 + 0.5 + 1.0)]
    assert len(stale) == 1  # the resent answer from before the crash
    rounds = {m["t_send"] for m in after if m["kind"] == "model" and m["src"] == "edge0"}
    assert len(rounds) == len(answers) - 1
