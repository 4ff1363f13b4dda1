"""Personalisation gain: every edge with an adapter scores its base model and its
personalised model on the same held-out samples; summary, metrics.csv, printed table and
figure agree with an independent evaluation of the model the edge pushed."""

from __future__ import annotations

import csv

import pytest
from test_federated import SMALL_MODEL, scenario

from learning.models import build_model
from learning.train import evaluate
from simnet.config.scenario import load_scenario
from simnet.engine.node import Machine
from simnet.protocols.hierarchical import concat
from simnet.report.figures import write_run_figures
from simnet.report.table import format_summary
from simnet.runner import run_scenario
from simnet.workloads.federated import end_datasets, ends_in_order, load_data, roles

UPDATES = {"workload.cloud.updates": 4}


def test_global_scores_are_those_of_the_model_each_edge_pushed(tmp_path, monkeypatch):
    pushed = {}
    original = Machine.send

    def spy(self, message, codec=None):
        if message.kind == "edge_update":
            pushed[message.src] = message.payload  # the last one is the last evaluated
        return original(self, message, codec)

    monkeypatch.setattr(Machine, "send", spy)
    loaded = load_scenario(scenario(tmp_path), UPDATES)
    summary = run_scenario(loaded, tmp_path / "run", progress=False, figures=False)
    entries = summary["personalisation"]
    assert set(entries) == set(pushed) == {"edge0", "edge1"}

    config, seed = loaded.workload, loaded.seed
    dataset = load_data(config.data, seed)
    _, children = roles(loaded.topology)
    data = end_datasets(dataset, ends_in_order(children), config.partition, seed)
    model = build_model(SMALL_MODEL["name"], dataset.feature_dims(), 1, **SMALL_MODEL["options"])
    last = {}
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            last[(row["node"], row["metric"])] = float(row["value"])
    for edge, entry in entries.items():
        model.load_state_dict(pushed[edge])
        scores = evaluate(model, concat([data[end].test for end in children[edge]]), "regression")
        assert entry["global"] == pytest.approx(
            {"acc2": scores["acc2_non0"], "f1": scores["f1_non0"], "mae": scores["mae"]}
        )
        mine = summary["edges"][edge]
        assert entry["personalised"] == {"acc2": mine["acc2_non0"], "f1": mine["f1_non0"],
                                         "mae": mine["mae"]}  # fmt: skip
        assert entry["personalised"]["mae"] != entry["global"]["mae"]  # the adapter acts
        assert last[(edge, "global_mae")] == entry["global"]["mae"]  # the timeline's end
        assert last[(edge, "global_acc2_non0")] == entry["global"]["acc2"]

    gains = [entries[e]["personalised"]["acc2"] - entries[e]["global"]["acc2"] for e in entries]
    line = next(r for r in format_summary(summary, tmp_path).splitlines() if "gain" in r)
    assert f"edge0 {gains[0]:+.3f}, edge1 {gains[1]:+.3f}" in line
    assert f"(mean {(gains[0] + gains[1]) / 2:+.3f})" in line
    names = [p.name for p in write_run_figures(tmp_path / "run")]
    assert names[-1] == "personalisation.png"


def test_edges_without_adapters_have_no_entry(tmp_path):
    loaded = load_scenario(scenario(tmp_path), {**UPDATES, "workload.edge.adapter": False})
    summary = run_scenario(loaded, tmp_path / "run", progress=False, figures=True)
    assert summary["personalisation"] == {} and summary["edges"]["edge0"]
    assert not (tmp_path / "run" / "figures" / "personalisation.png").exists()
    assert "gain" not in format_summary(summary, tmp_path)
