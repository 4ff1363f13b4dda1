"""Embedded synthetic datasets: shapes, determinism, and that fusion carries more signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.data import MultimodalDataset, MultimodalSplit, fall_like, mosei_like


def _pooled(split: MultimodalSplit, modalities: tuple[str, ...]) -> np.ndarray:
    """Time-averaged features of ``modalities``, concatenated: (N, Σ D_m)."""
    return np.concatenate([split.features[m].mean(dim=1).numpy() for m in modalities], axis=1)


def _ridge_corr(ds: MultimodalDataset, modalities: tuple[str, ...], lam: float = 10.0) -> float:
    """Test-set Pearson correlation of a ridge regression fit on the train split."""
    x, y = _pooled(ds.train, modalities), ds.train.labels.numpy().astype(float)
    mean = x.mean(axis=0)
    xc = x - mean
    aug = np.vstack([xc, np.sqrt(lam) * np.eye(x.shape[1])])
    w = np.linalg.lstsq(aug, np.r_[y - y.mean(), np.zeros(x.shape[1])], rcond=None)[0]
    pred = (_pooled(ds.test, modalities) - mean) @ w
    return float(np.corrcoef(pred, ds.test.labels.numpy())[0, 1])


def _same(a: MultimodalSplit, b: MultimodalSplit) -> bool:
    return torch.equal(a.labels, b.labels) and all(
        torch.equal(a.features[m], b.features[m]) for m in a.modalities
    )


@pytest.fixture(scope="module")
def mosei() -> MultimodalDataset:
    return mosei_like(1500, 50, 600, seq_len=20, seed=3)


def test_mosei_like_shapes_and_labels(mosei):
    assert mosei.task == "regression"
    assert mosei.feature_dims() == {"text": 300, "audio": 74, "vision": 35}
    for split, n in ((mosei.train, 1500), (mosei.valid, 50), (mosei.test, 600)):
        assert len(split) == n
        assert split.labels.dtype == torch.float32 and split.labels.shape == (n,)
        for x in split.features.values():
            assert x.dtype == torch.float32 and x.shape[:2] == (n, 20)
    y = mosei.train.labels
    assert y.min() >= -3 and y.max() <= 3
    assert (y == 0).sum() > 0  # rounded labels give exact zeros, as in MOSEI
    on_grid = torch.isclose(3 * y, torch.round(3 * y), atol=1e-5)
    assert 0.35 < on_grid.float().mean() < 0.65  # half are rounded to multiples of 1/3


def test_seq_len_and_dims_per_modality():
    ds = mosei_like(4, 2, 2, seq_len=(6, 5, 4), dims={"text": 8, "audio": 3, "vision": 2})
    assert {m: tuple(x.shape[1:]) for m, x in ds.train.features.items()} == {
        "text": (6, 8),
        "audio": (5, 3),
        "vision": (4, 2),
    }
    with pytest.raises(ValueError, match="seq_len"):
        mosei_like(4, 2, 2, seq_len=(6, 5))


def test_same_seed_same_data_and_splits_independent():
    a = mosei_like(30, 10, 10, seq_len=8, seed=1)
    b = mosei_like(30, 10, 20, seq_len=8, seed=1)
    c = mosei_like(30, 10, 10, seq_len=8, seed=2)
    assert _same(a.train, b.train) and _same(a.valid, b.valid)  # test size changes nothing else
    assert not _same(a.train, c.train)
    f1, f2 = fall_like(30, 10, 10, seed=1), fall_like(30, 10, 10, seed=1)
    assert _same(f1.train, f2.train) and _same(f1.test, f2.test)


def test_fusion_beats_every_single_modality(mosei):
    single = {m: _ridge_corr(mosei, (m,)) for m in mosei.modalities}
    fused = _ridge_corr(mosei, mosei.modalities)
    assert all(c > 0.2 for c in single.values()), single  # each modality is informative …
    assert fused > max(single.values()) + 0.1, (fused, single)  # … but fusion is clearly better


def test_difficulty_lowers_the_signal():
    corr = [
        _ridge_corr(mosei_like(800, 10, 400, seq_len=10, seed=0, difficulty=d), ("audio", "vision"))
        for d in (0.0, 1.0, 2.0)
    ]
    assert corr[0] > corr[1] + 0.1 > corr[2] + 0.2, corr
    assert corr[0] > 0.9  # noiseless: two modalities see all three factors


def test_fall_like_is_balanced_classification_where_fusion_helps():
    ds = fall_like(1500, 20, 600, seed=0)
    assert ds.task == "classification" and ds.num_classes == 3
    assert ds.feature_dims() == {"acce": 3, "rgb": 64, "depth": 32}
    y = ds.train.labels
    assert y.dtype == torch.int64 and set(y.tolist()) == {0, 1, 2}
    assert torch.bincount(y).min() > 1500 / 3 * 0.8
    single = max(_ridge_corr(ds, (m,)) for m in ds.modalities)
    assert _ridge_corr(ds, ds.modalities) > single + 0.1
    assert set(fall_like(50, 5, 5, num_classes=5).train.labels.tolist()) <= set(range(5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="difficulty"):
        mosei_like(10, 2, 2, difficulty=-1)
    with pytest.raises(ValueError, match="split sizes"):
        fall_like(10, 0, 2)
    with pytest.raises(ValueError, match="num_classes"):
        fall_like(10, 2, 2, num_classes=1)
