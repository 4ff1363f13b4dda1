"""On the embedded MOSEI-shaped data, fusing modalities beats any single one.

A short, seeded training of a small MulT against an LF-LSTM per single modality, each
kept at its best validation epoch and evaluated on the held-out test split.
"""

from __future__ import annotations

import pytest

from learning.data import mosei_like
from learning.models import build_model
from learning.train import TrainConfig, evaluate, fit

SMALL_MULT = {"width": 16, "layers": 2, "heads": 2}
EPOCHS = 10


@pytest.fixture(scope="module")
def data():
    return mosei_like(800, 200, 400, seq_len=12, difficulty=0.3, seed=0)


def test_mult_beats_the_best_unimodal_lf_lstm(data):
    def score(name: str, modalities: tuple[str, ...], **kwargs) -> dict[str, float]:
        dims = data.feature_dims()
        model = build_model(name, {m: dims[m] for m in modalities}, 1, **kwargs)
        fit(model, data.only(modalities), TrainConfig(epochs=EPOCHS, seed=0))
        return evaluate(model, data.test.only(modalities), "regression")

    fused = score("mult", data.modalities, **SMALL_MULT)
    single = {m: score("lf_lstm", (m,)) for m in data.modalities}
    print({"mult": fused, **single})
    best_mae = min(s["mae"] for s in single.values())
    best_corr = max(s["corr"] for s in single.values())
    best_acc = max(s["acc2_non0"] for s in single.values())
    assert fused["mae"] < best_mae - 0.05, (fused, single)
    assert fused["corr"] > best_corr + 0.05, (fused, single)
    assert fused["acc2_non0"] > best_acc, (fused, single)
