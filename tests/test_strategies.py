"""Built-in strategies against hand computations on two or three updates, sampling, and
strategies plugged in as module:Class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_federated import scenario

import simnet
from simnet.strategies import MMA, FedAsync, FedAvg, FedBuff, Strategy, Update


def state(*values: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(values, dtype=torch.float64), "n": torch.tensor([7])}


def test_fedavg_is_the_sample_weighted_mean():
    updates = [Update(state(1.0, 2.0), 1, "a"), Update(state(5.0, 6.0), 3, "b")]
    out = FedAvg().aggregate(state(0.0, 0.0), updates)
    assert out["w"].tolist() == [(1 + 15) / 4, (2 + 18) / 4]  # 4.0, 5.0
    assert out["n"].tolist() == [7]


def test_mma_weights_by_modality_counts():
    updates = [Update(state(3.0), 1, "a"), Update(state(6.0), 2, "b"), Update(state(9.0), 3, "c")]
    assert MMA().aggregate(state(0.0), updates)["w"].item() == pytest.approx((3 + 12 + 27) / 6)


def test_fedasync_mixes_with_staleness_and_data_size():
    """α = 0.6, polynomial a = 0.5, τ = 3: s = 4^-0.5 = 0.5; n_e = 100, n̄ = (100 + 300)/2:
    α_t = 0.6 · 0.5 · 0.5 = 0.15; w = 0.85·10 + 0.15·20 = 11.5."""
    rule = FedAsync(alpha=0.6, staleness="polynomial", a=0.5)
    rule.on_client("e0", 100)
    rule.on_client("e1", 300)
    out = rule.aggregate(state(10.0), [Update(state(20.0), 100, "e0", staleness=3)])
    assert out["w"].item() == pytest.approx(11.5)
    assert rule.metrics() == {"alpha": pytest.approx(0.15)}


def test_fedasync_hinge_and_a_capped_weight():
    """hinge a = 0.5, b = 2, τ = 4: s = 1/(0.5·2 + 1) = 0.5; n_e/n̄ = 300/200 → α_t = 0.45;
    then τ = 0 with α = 1 and n_e/n̄ = 1.5: min(1, 1.5) = 1, w = the update."""
    rule = FedAsync(alpha=0.6, staleness="hinge", a=0.5, b=2)
    rule.on_client("e0", 100)
    rule.on_client("e1", 300)
    out = rule.aggregate(state(0.0), [Update(state(10.0), 300, "e1", staleness=4)])
    assert out["w"].item() == pytest.approx(4.5)
    capped = FedAsync(alpha=1.0, staleness="constant")
    capped.on_client("e0", 100)
    capped.on_client("e1", 300)
    assert capped.aggregate(state(0.0), [Update(state(8.0), 300, "e1")])["w"].item() == 8.0


def test_fedbuff_applies_the_staleness_weighted_mean_change():
    """K = 2, η = 1, polynomial a = 0.5: τ = 0 → s = 1, τ = 3 → s = 0.5;
    w = 2 + (1/2)·(1·(6 − 2) + 0.5·(10 − 2)) = 2 + 4 = 6."""
    rule = FedBuff(buffer=2, alpha=1.0, staleness="polynomial", a=0.5)
    updates = [Update(state(6.0), 5, "e0", 0), Update(state(10.0), 9, "e1", 3)]
    out = rule.aggregate(state(2.0), updates)
    assert out["w"].item() == pytest.approx(6.0)
    assert rule.buffer == 2 and rule.flops(10, 2) == 60


def test_default_select_samples_k_in_order_and_is_seeded():
    clients = [f"end{i}" for i in range(6)]
    s = Strategy()
    assert s.select(1, clients, np.random.default_rng(0)) == clients
    s.clients_per_round = 2
    picks = [s.select(1, clients, np.random.default_rng([0, 5, r])) for r in range(20)]
    assert all(len(p) == 2 and p == sorted(p, key=clients.index) for p in picks)
    assert len({tuple(p) for p in picks}) > 3  # rounds draw different ends
    assert picks == [s.select(1, clients, np.random.default_rng([0, 5, r])) for r in range(20)]
    s.clients_per_round, s.fraction = None, 0.5
    assert len(s.select(1, clients, np.random.default_rng(1))) == 3


KEEP = '''
from simnet.strategies import Strategy


class Keep(Strategy):
    """Ignores every update: the model never changes."""

    def __init__(self, note="kept"):
        self.note = note

    def aggregate(self, current, updates):
        return {k: v.clone() for k, v in current.items()}


class Boom(Strategy):
    def aggregate(self, current, updates):
        raise ValueError("boom in user code")


NotAStrategy = dict
'''


def user_scenario(tmp_path: Path, **workload) -> Path:
    (tmp_path / "mine.py").write_text(KEEP)
    return scenario(tmp_path, **{"cloud": {"updates": 4}, **workload})


def test_a_user_strategy_from_a_file_next_to_the_scenario_is_used(tmp_path):
    """Edges that keep the model push back what they pulled: every cloud version scores
    exactly what the initial model scores."""
    path = user_scenario(tmp_path, edge={"strategy": "./mine.py:Keep"})
    result = simnet.run(path, out=tmp_path / "run", progress=False, figures=False)
    assert result.complete
    scores = result.metric("acc2_non0", "cloud")["value"]
    assert len(scores) == 5 and scores.nunique() == 1
    baseline = simnet.run(scenario(tmp_path, name="plain", cloud={"updates": 4}),
                          out=tmp_path / "plain", progress=False, figures=False)  # fmt: skip
    assert baseline.metric("acc2_non0", "cloud")["value"].nunique() > 1
    kept = result.scenario["workload"]["edge"]["strategy"]  # relative to the run directory
    assert kept == "../mine.py:Keep"
    assert (result.run_dir / kept.split(":")[0]).resolve() == (tmp_path / "mine.py").resolve()


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("mine.Keep", "or module:Class (got 'mine.Keep')"),
        ("mine:", "expected module:Name, got 'mine:'"),
        ("no_such_module_xyz:Keep", "cannot import"),
        ("./mine.py:Missing", "has no Missing"),
        ("./mine.py:NotAStrategy", "is not a subclass of simnet.strategies.base.Strategy"),
        ("./absent.py:Keep", "file not found"),
    ],
)
def test_a_bad_plugin_reference_is_one_line_exit_2(tmp_path, ref, says):
    path = user_scenario(tmp_path, edge={"strategy": ref})
    out = subprocess.run([sys.executable, "-m", "simnet", "validate", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "workload.edge.strategy" in out.stderr and says in out.stderr


def test_an_exception_in_user_code_fails_the_run_with_its_traceback(tmp_path):
    path = user_scenario(tmp_path, cloud={"strategy": "./mine.py:Boom", "updates": 4})
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "simnet", "run", str(path), "--out", str(run_dir), "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1
    assert 'mine.py", line' in out.stderr and "boom in user code" in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run failed: plug-in ") and last.endswith(
        "mine.py:Boom (workload.cloud.strategy) raised ValueError: boom in user code"
    )
    assert not (run_dir / "summary.json").exists()


def test_client_sampling_sends_only_to_the_selected_ends(tmp_path):
    path = scenario(tmp_path, cloud={"updates": 4}, edge={"clients_per_round": 1})
    result = simnet.run(path, out=tmp_path / "run", progress=False, figures=False)
    assert result.complete
    selected = result.metrics[result.metrics["metric"].str.startswith("selected:")]
    models = result.messages[result.messages["kind"] == "model"]
    assert len(selected) == len(models) > 0
    for edge, rows in selected.groupby("node"):
        sent = models[models["src"] == edge]
        picked = rows["metric"].str.removeprefix("selected:").tolist()
        assert picked == sent["dst"].tolist()  # one end per round, in round order
        assert rows["value"].tolist() == list(range(1, len(rows) + 1))
    again = simnet.run(path, out=tmp_path / "again", progress=False, figures=False)
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_fedbuff_run_makes_a_version_every_k_updates(tmp_path):
    path = scenario(tmp_path, cloud={"updates": 4, "strategy": "fedbuff", "buffer": 2})
    result = simnet.run(path, out=tmp_path / "run", progress=False, figures=False)
    assert result.complete and result.summary["updates_merged"] == 4
    versions = result.metric("version", "cloud")["value"].tolist()
    assert versions == [0.0, 1.0, 2.0]
    assert len(result.metric("staleness", "cloud")) == 2


def test_fedprox_sets_the_proximal_coefficient(tmp_path):
    from simnet.workloads.federated import EndConfig

    assert EndConfig(strategy="fedprox", mu=0.3).train_config().prox_mu == 0.3
    assert EndConfig(mu=0.3).train_config().prox_mu == 0.0
    plain = simnet.run(scenario(tmp_path, cloud={"updates": 2}), out=tmp_path / "a",
                       progress=False, figures=False)  # fmt: skip
    fedprox = {"workload.end.strategy": "fedprox", "workload.end.mu": 1.0}
    prox = simnet.run(scenario(tmp_path, cloud={"updates": 2}), fedprox, out=tmp_path / "b",
                      progress=False, figures=False)  # fmt: skip
    assert prox.complete
    a, b = (r.metric("acc2_non0", "cloud")["value"] for r in (plain, prox))
    assert a.iloc[0] == b.iloc[0] and not a.equals(b)  # same start, other training
