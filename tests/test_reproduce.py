"""``simnet reproduce``: the paper's numbers as transcribed, tables and claims from hand-made
sweep results, and a tiny end-to-end reproduction that resumes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simnet.reproduce import ml_ecs, reproduce
from simnet.reproduce.common import at_least, paper_data

PAPER = Path(__file__).resolve().parents[2] / "shared" / "papers" / "ml-ecs.txt"


def test_table1_numbers_are_the_papers():
    data = paper_data("ml_ecs")
    rows = data["table1"]["rows"]
    if PAPER.is_file():  # the paper's text, where this checkout has it beside it
        text = PAPER.read_text(encoding="utf-8")
        block = text[text.index("$\\rho = 0.8$") :]
        ours = re.search(r"\tOurs\t(.+)", block)[1].split("\t")
        assert [float(v) for v in ours] == rows[0.8]["ml_ecs"]["vast"] + rows[0.8]["ml_ecs"]["fall"]
    assert rows[0.5]["standalone"]["fall"] == [0.697, 0.768, 0.647, 0.912]
    assert rows[0.7]["fedilora"]["vast"][-2:] == [None, None]  # "-" in the paper
    assert data["table2"]["rows"]["fall"]["avg_f1"] == [0.801, 0.803, 0.796, 0.794]


def results(values: dict[tuple[float, str], list[float]]) -> pd.DataFrame:
    """A Table 1 sweep table: per (rho, method) one row per seed with avg F1 ``values``."""
    rows = []
    for (rho, method), scores in values.items():
        for seed, score in enumerate(scores):
            rows.append({"workload.rho": rho, "workload.method": method, "seed": seed,
                         "complete": True, "device_f1_macro.mean": score,
                         "device_f1_macro.best": score + 0.1, "device_f1_macro.worst": score - 0.1,
                         "uploaded_parameters_per_device_round.mean": 10.0 if method != "standalone"
                         else 0.0, "bytes_total": 1000.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_table1_means_and_stds_over_seeds_and_the_claims_they_decide():
    values = {(rho, m): [0.5, 0.7] if m == "ml_ecs" else [0.5, 0.5]
              for rho in ml_ecs.RHOS for m in ml_ecs.METHODS}  # fmt: skip
    values[(0.7, "ml_ecs")] = [0.4, 0.4]  # below standalone at ρ = 0.7
    table = results(values)
    paper = paper_data("ml_ecs")
    frames = {"table1-fall": table, "table1-vast": table.iloc[:0]}
    t1 = ml_ecs.table1(frames, paper)
    cell = t1[(t1.task == "fall") & (t1.rho == 0.5) & (t1.method == "ml_ecs")].set_index("metric")
    assert cell.loc["avg_f1", "ours"] == pytest.approx(0.6)
    assert cell.loc["avg_f1", "ours_std"] == pytest.approx(0.1414213562, rel=1e-9)  # sample std
    assert cell.loc["best_f1", "ours"] == pytest.approx(0.7)
    assert pd.isna(cell.loc["server_f1", "ours"]) and cell.loc["server_f1", "paper"] == 0.918
    assert len(t1) == 3 * 6 * (4 + 8)
    fall = t1[t1.task == "fall"]
    ours = fall[(fall.metric == "avg_f1") & (fall.method == "ml_ecs")].set_index("rho").ours
    alone = fall[(fall.metric == "avg_f1") & (fall.method == "standalone")].set_index("rho").ours
    claim = at_least("x", ours, alone)
    assert claim.holds is False and "0.7: 0.400 vs 0.500" in claim.detail
    assert at_least("x", ours.drop(0.7), alone).holds is True
    assert at_least("x", ours, alone.drop(0.5)).holds is None


def tiny(monkeypatch) -> list[tuple[str, object]]:
    monkeypatch.setattr(ml_ecs, "RHOS", (0.8,))
    monkeypatch.setattr(ml_ecs, "DEVICES", (3,))
    monkeypatch.setattr(ml_ecs, "implemented", lambda: ("standalone", "multi_fedavg", "ml_ecs"))
    return [("workload.rounds", 1), ("workload.model.steps", 2), ("workload.data.samples", 200),
            ("workload.model.warmup_steps", 10), ("workload.model.max_new_tokens", 6)]  # fmt: skip


def test_a_tiny_reproduction_writes_every_table_and_resumes(tmp_path, monkeypatch):
    done = reproduce("ml-ecs", tmp_path, quick=True, overrides=tiny(monkeypatch), progress=False)
    t1 = pd.read_csv(tmp_path / "table1.csv")
    assert list(t1.columns) == ["task", "rho", "method", "metric", "ours", "ours_std", "paper"]
    assert len(t1) == 6 * (8 + 4)  # every paper method listed; the missing ones empty
    ran = t1[
        t1.method.isin(["standalone", "multi_fedavg", "ml_ecs"])
        & ~t1.metric.str.startswith("server")
    ]
    assert ran.ours.notna().all()
    assert t1[t1.method == "fedilora"].ours.isna().all()
    t2 = pd.read_csv(tmp_path / "table2.csv")
    assert list(t2.columns) == ["task", "devices", "metric", "ours", "paper"]
    assert len(t2) == 12 and (t2.devices == 3).all()
    for name in ("fig3.png", "fig3.pdf", "report.md", "fig3.csv"):
        assert (tmp_path / name).is_file()
    assert "## Claims, decided on our numbers" in (tmp_path / "report.md").read_text()
    assert any("uploads the fewest" in c.text and c.holds for c in done.claims)
    run = next((tmp_path / "table1-fall").glob("*/summary.json"))
    stamp = run.stat().st_mtime_ns
    reproduce("ml-ecs", tmp_path, quick=True, overrides=tiny(monkeypatch), progress=False)
    assert run.stat().st_mtime_ns == stamp  # resumed: nothing ran again


@pytest.mark.parametrize("args", [["ml-ecs", "--seeds", "0"], ["ml-ecs", "--workers", "0"]])
def test_bad_reproduce_arguments_are_one_line_exit_2(args, tmp_path):
    done = subprocess.run([sys.executable, "-m", "simnet", "reproduce", *args, "--out",
                           str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_the_scalability_claim_reads_a_drop_of_negative_scores_as_a_drop(monkeypatch):
    monkeypatch.setattr(ml_ecs, "DEVICES", (3, 20))
    t2 = pd.DataFrame(
        [["vast", 3, "avg_bs", -0.054], ["vast", 20, "avg_bs", -0.063],
         ["fall", 3, "avg_f1", 0.5], ["fall", 20, "avg_f1", 0.49]],
        columns=["task", "devices", "metric", "ours"],
    )  # fmt: skip
    empty = pd.DataFrame(columns=["task", "rho", "method", "metric", "ours"])
    comm = pd.DataFrame(columns=["task", "method", "uploaded_per_round", "ratio_to_ml_ecs"])
    found = {c.text: c for c in ml_ecs.claims(empty, t2, comm)}
    bs = found["vast: avg_bs drops < 5 % from 3 to 20 devices"]
    assert bs.holds is False and bs.detail == "+16.7% lower"  # (−0.054 − −0.063) / 0.054
    assert found["fall: avg_f1 drops < 5 % from 3 to 20 devices"].holds is True  # 2 %
