"""``simnet reproduce mega-ce2``: the paper's numbers as transcribed, tables and claims from
hand-made sweep results, Table 5's sizes by hand, a tiny reproduction that resumes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from learning.models import MulT
from learning.parameters import parameter_bytes
from simnet.reproduce import mega_ce2, reproduce
from simnet.reproduce.common import at_most, paper_data

PAPER = Path(__file__).resolve().parents[2] / "shared" / "papers" / "mega-ce2.txt"
TINY = [
    ("workload.data.train", 180), ("workload.data.valid", 20), ("workload.data.test", 60),
    ("workload.data.seq_len", 4), ("workload.cloud.updates", 3),
    ("workload.end.training.epochs", 1), ("workload.edge.adapter_training.epochs", 1),
]  # fmt: skip
"""Below ``--quick``: tiny data, three merges (the baselines: three epochs)."""


def test_the_numbers_are_the_papers():
    data = paper_data("mega_ce2")
    assert data["table2"]["rows"]["EF-LSTM"] == [74.5, 44.7, 0.675]
    assert data["table2"]["rows"]["Mega-CE2"] == [86.6, 59.7, 0.514]
    assert data["table3"]["rows"]["Cloud-Only"][-1] == 3.1322
    assert data["table4"]["rows"]["only [V,A->L]"] == [82.1, 52.6, 0.575]
    assert data["table5"]["rows"]["trainable"] == [50.41, 0.45]
    if PAPER.is_file():  # the paper's text, where this checkout has it beside it
        text = PAPER.read_text(encoding="utf-8")
        table2 = text[text.index("Table 2:") :]
        lf = re.search(r"\nLF-LSTM\t(.+)", table2)[1].split("\t")
        assert [float(v) for v in lf] == data["table2"]["rows"]["LF-LSTM"]
        audio = re.search(r"\nAudio-only\t(.+)", text)[1].split("\t")
        assert [float(v) for v in audio] == data["table4"]["rows"]["audio-only"]
        linear = re.search(r"\nLinear Projection\t(.+)", text)[1].split("\t")
        assert [float(v) for v in linear] == data["table5"]["rows"]["linear projection"]
        assert "<b>3.1322 s</b>" in text and "1.7500s" in text


def scores(acc2: list[float], mae: list[float], **columns) -> list[dict]:
    """Sweep rows (one per seed) with the cloud model's acc2, F1 (= acc2) and MAE."""
    pairs = enumerate(zip(acc2, mae, strict=True))
    return [{"seed": k, "complete": True, "cloud.acc2_non0": a, "cloud.f1_non0": a,
             "cloud.mae": m, **columns} for k, (a, m) in pairs]  # fmt: skip


def swept(key: str, cases: list[tuple[object, float, float]]) -> list[dict]:
    """One seed per swept value: (value of ``key``, acc2, MAE)."""
    return [row for value, a, m in cases for row in scores([a], [m], **{key: value})]


def hand_made() -> dict[str, pd.DataFrame]:
    ours = scores([0.80, 0.90], [0.6, 0.5])
    for row, g in zip(ours, (0.70, 0.80), strict=True):
        row |= {"inference.edge.feature_s": 0.01, "inference.edge.upload_s": 0.02,
                "inference.edge.compute_s": 0.001, "inference.edge.download_s": 0.003,
                "inference.edge.total_s": 0.034, "personalisation.edge0.global.acc2": g,
                "personalisation.edge0.personalised.acc2": g + 0.1,
                "personalisation.edge1.global.acc2": 0.6,
                "personalisation.edge1.personalised.acc2": 0.5}  # fmt: skip
    cloud = [{"seed": 0, "complete": True, "inference.cloud.upload_s": 3.0,
              "inference.cloud.compute_s": 0.2, "inference.cloud.download_s": 0.05,
              "inference.cloud.total_s": 3.25}]  # fmt: skip
    model = "workload.model.name"
    baselines = swept(model, [("ef_lstm", 0.70, 0.7), ("ef_lstm", 0.70, 0.7),
                              ("lf_lstm", 0.95, 0.4), ("lf_lstm", 0.95, 0.4)])  # fmt: skip
    option = "workload.model.options."
    modalities = swept(
        f"{option}modalities", [(["text"], 0.6, 0.9), (["audio"], 0.7, 0.8), (["vision"], 0.5, 1.0)]
    )
    targets = swept(
        f"{option}targets", [(["text"], 0.8, 0.7), (["vision"], 0.7, 0.7), (["audio"], 0.6, 0.7)]
    )
    rows = {"mega-ce2": ours, "cloud-only": cloud, "baselines": baselines,
            "ablation-modalities": modalities, "ablation-targets": targets}  # fmt: skip
    return {name: pd.DataFrame(r) for name, r in rows.items()}


def test_tables_and_claims_from_hand_made_results():
    paper = paper_data("mega_ce2")
    results = hand_made()
    t2 = mega_ce2.table2(results, paper).set_index(["model", "metric"])
    assert t2.loc[("Mega-CE2", "acc2"), "ours"] == pytest.approx(85.0)  # percent
    assert t2.loc[("Mega-CE2", "acc2"), "ours_std"] == pytest.approx(7.0710678)  # sample std
    assert t2.loc[("Mega-CE2", "mae"), "ours"] == pytest.approx(0.55)
    assert t2.loc[("LF-LSTM", "f1"), "ours"] == pytest.approx(95.0)
    assert pd.isna(t2.loc[("RAVEN", "acc2"), "ours"]) and t2.loc[("RAVEN", "acc2"), "paper"] == 81.2
    assert len(t2) == 6 * 3
    t3 = mega_ce2.table3(results, paper).set_index(["deployment", "stage"])
    assert t3.loc[("Mega-CE2", "t_trans"), "ours_s"] == 0.02
    assert pd.isna(t3.loc[("Mega-CE2", "t_trans_raw"), "ours_s"])
    assert t3.loc[("Cloud-Only", "t_trans_raw"), "ours_s"] == 3.0
    assert pd.isna(t3.loc[("Cloud-Only", "t_gen"), "ours_s"])
    assert t3.loc[("Cloud-Only", "end_to_end"), "paper_s"] == 3.1322
    t4 = mega_ce2.table4(results, paper)
    acc2 = t4[t4.metric == "acc2"].set_index("variant").ours
    assert acc2.to_dict() == pytest.approx({"text-only": 60.0, "audio-only": 70.0,
                                            "video-only": 50.0, "only [V,A->L]": 80.0,
                                            "only [L,A->V]": 70.0, "only [L,V->A]": 60.0,
                                            "full": 85.0})  # fmt: skip
    gains = mega_ce2.personalisation(results["mega-ce2"]).set_index("edge")
    assert gains.loc["edge0", "global"] == pytest.approx(75.0)
    assert gains.loc["edge0", "gain"] == pytest.approx(10.0)
    assert gains.loc["edge1", "gain"] == pytest.approx(-10.0)
    t5 = mega_ce2.table5({"m": MulT({"text": 5, "audio": 3}, 1, width=4, layers=1, heads=2)},
                         paper)  # fmt: skip
    found = {c.text: c for c in mega_ce2.claims(t2.reset_index(), t3.reset_index(), t4, t5,
                                                 gains.reset_index(), paper)}  # fmt: skip
    verdicts = {text: c.holds for text, c in found.items()}
    assert verdicts == {
        "Mega-CE² acc2 ≥ EF-LSTM": True, "Mega-CE² mae ≤ EF-LSTM": True,
        "Mega-CE² acc2 ≥ LF-LSTM": False, "Mega-CE² mae ≤ LF-LSTM": False,
        "full MulT acc2 ≥ every ablation variant": True,
        "text-only is the best unimodal variant (acc2)": False,  # audio-only is
        "edge end-to-end latency < cloud-only (paper: −96.2%)": True,
        "adapter < 8% of the global model's parameters": True,
        "personalised acc2 ≥ global on every edge": False,  # edge1 lost 10 points
    }  # fmt: skip
    assert found["text-only is the best unimodal variant (acc2)"].detail == "best: audio-only"


def test_at_most_and_its_strict_form():
    one, two = pd.Series({"a": 1.0, "b": 2.0}), pd.Series({"a": 1.0, "b": 3.0})
    assert at_most("x", one, two).holds is True
    assert at_most("x", one, two, strict=True).holds is False  # equal at "a"
    assert at_most("x", two, one).holds is False and at_most("x", one, two.drop("b")).holds is None


def test_table5_sizes_by_module_kind_against_a_hand_count():
    model = MulT({"text": 5, "audio": 3, "vision": 2}, 1, width=4, layers=1, heads=2)
    # attention: 6 crossmodal layers of width 4 (4·4² + 4·4 = 80) and 9 memory layers of
    # width 8 (4·8² + 4·8 = 288); projections: Conv1d 10·4, crossmodal FFNs 6·(4·16 + 16 +
    # 16·4 + 4), memory FFNs 9·(8·32 + 32 + 32·8 + 8), head over 24: 2·(24² + 24) + 25
    attention, linear = 6 * 80 + 9 * 288, 40 + 6 * 148 + 9 * 552 + 1225
    norms = 6 * (2 * 2 * 4 + 2 * 4) + 3 * (3 * 2 * 2 * 8 + 2 * 8)
    assert parameter_bytes(model) == {"self-attention": 4 * attention,
                                      "linear projection": 4 * linear,
                                      "trainable": 4 * (attention + linear + norms)}  # fmt: skip
    rows = {kind: (g, a) for kind, g, a in mega_ce2.sizes(model)}
    # the adapter over tokens of width 8: attention 288, output layer 8 + 1, in MB of 10⁶ bytes
    assert rows["self-attention"] == (4 * attention / 1e6, 4 * 288 / 1e6)
    assert rows["linear projection"][1] == 4 * 9 / 1e6
    assert rows["trainable"][1] == 4 * (288 + 9) / 1e6
    frozen = MulT({"text": 5}, 1, width=4, layers=1, heads=2).requires_grad_(False)
    assert parameter_bytes(frozen)["trainable"] == 0 < parameter_bytes(frozen)["self-attention"]
    big = mega_ce2.paper_sized()
    assert next(big.parameters()).device == torch.device("meta")
    assert parameter_bytes(big)["trainable"] == 4 * 1_073_731  # docs/models.md's count


def test_a_tiny_reproduction_writes_every_table_and_resumes(tmp_path):
    done = reproduce("mega-ce2", tmp_path, quick=True, overrides=TINY, progress=False)
    shapes = {"table2.csv": (["model", "metric", "ours", "ours_std", "paper"], 18),
              "table3.csv": (["deployment", "stage", "ours_s", "paper_s"], 12),
              "table4.csv": (["variant", "metric", "ours", "paper"], 21),
              "table5.csv": (["model", "module", "global_mb", "adapter_mb", "paper_global_mb",
                              "paper_adapter_mb"], 6)}  # fmt: skip
    for name, (columns, rows) in shapes.items():
        table = pd.read_csv(tmp_path / name)
        assert list(table.columns) == columns and len(table) == rows, name
    t2 = pd.read_csv(tmp_path / "table2.csv")
    assert t2[t2.model.isin(["MCTN", "RAVEN", "V2EM"])].ours.isna().all()
    assert t2[t2.model.isin(["EF-LSTM", "LF-LSTM", "Mega-CE2"])].ours.notna().all()
    assert pd.read_csv(tmp_path / "table4.csv").ours.notna().all()
    t3 = pd.read_csv(tmp_path / "table3.csv").set_index(["deployment", "stage"]).ours_s
    run = next((tmp_path / "mega-ce2").glob("000-*"))
    summary = json.loads((run / "summary.json").read_text())
    assert t3["Mega-CE2", "end_to_end"] == summary["inference"]["edge"]["total_s"]
    gains = pd.read_csv(tmp_path / "personalisation.csv")
    assert set(gains.edge) == {"edge0", "edge1", "edge2"}
    for name in ("report.md", "personalisation.png", "personalisation.pdf"):
        assert (tmp_path / name).is_file()
    report = (tmp_path / "report.md").read_text()
    assert "## Claims, decided on our numbers" in report and "Mega-CE² acc2 ≥ EF-LSTM" in report
    assert len(done.claims) == 9
    stamp = (run / "summary.json").stat().st_mtime_ns
    reproduce("mega-ce2", tmp_path, quick=True, overrides=TINY, progress=False)
    assert (run / "summary.json").stat().st_mtime_ns == stamp  # resumed: nothing ran again


@pytest.mark.parametrize(
    "args", [["nope"], ["mega-ce2", "--seeds", "0"], ["mega-ce2", "--workers", "0"]]
)
def test_bad_reproduce_arguments_are_one_line_exit_2(args, tmp_path):
    done = subprocess.run([sys.executable, "-m", "simnet", "reproduce", *args, "--out",
                           str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ("paper" if args == ["nope"] else args[1]) in done.stderr
