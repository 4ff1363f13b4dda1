"""Partitions of samples and modalities across devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.data import (
    dirichlet_partition,
    iid_partition,
    modality_availability,
    public_private_split,
)


def _covers_once(parts: list[np.ndarray], n: int) -> bool:
    return np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def test_iid_partition_covers_every_index_once_in_equal_shares():
    parts = iid_partition(103, 10, seed=0)
    assert _covers_once(parts, 103)
    assert sorted(len(p) for p in parts) == [10] * 7 + [11] * 3
    assert all(
        np.array_equal(a, b) for a, b in zip(parts, iid_partition(103, 10, seed=0), strict=True)
    )
    assert not np.array_equal(parts[0], iid_partition(103, 10, seed=1)[0])


def test_iid_partition_explicit_sizes():
    parts = iid_partition(100, 3, seed=0, sizes=[10, 20, 30])
    assert [len(p) for p in parts] == [10, 20, 30]
    assert len(np.unique(np.concatenate(parts))) == 60
    parts = iid_partition(101, 3, seed=0, sizes=[0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [51, 30, 20] and _covers_once(parts, 101)


@pytest.mark.parametrize(
    ("args", "sizes", "message"),
    [
        ((5, 6), None, "devices"),
        ((5, 0), None, "n_devices"),
        ((10, 2), [6, 6], "sum"),
        ((10, 2), [0.5, 0.6], "sum to 1"),
        ((10, 2), [10, 0], ">= 1 sample"),
        ((10, 3), [5, 5], "entries"),
    ],
)
def test_iid_partition_rejects_bad_arguments(args, sizes, message):
    with pytest.raises(ValueError, match=message):
        iid_partition(*args, seed=0, sizes=sizes)


def _label_entropy(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean over devices of the entropy (nats) of the device's label distribution."""
    out = []
    for p in parts:
        freq = np.bincount(labels[p], minlength=labels.max() + 1) / len(p)
        freq = freq[freq > 0]
        out.append(-(freq * np.log(freq)).sum())
    return float(np.mean(out))


def test_dirichlet_partition_skew_follows_alpha():
    labels = np.random.default_rng(0).integers(0, 5, 2000)
    skewed = dirichlet_partition(labels, 10, alpha=0.1, seed=0)
    mild = dirichlet_partition(labels, 10, alpha=100.0, seed=0)
    for parts in (skewed, mild):
        assert _covers_once(parts, 2000) and min(len(p) for p in parts) >= 1
    assert _label_entropy(labels, skewed) < 0.8 < 1.5 < _label_entropy(labels, mild)
    again = dirichlet_partition(labels, 10, alpha=0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(skewed, again, strict=True))


def test_dirichlet_partition_bins_regression_labels():
    labels = torch.tensor(np.random.default_rng(1).uniform(-3, 3, 600), dtype=torch.float32)
    parts = dirichlet_partition(labels, 4, alpha=0.05, seed=0, min_size=20)
    assert _covers_once(parts, 600) and min(len(p) for p in parts) >= 20
    classes = np.round(labels.numpy()).astype(int) + 3  # the seven Acc-7 classes
    assert _label_entropy(classes, parts) < 1.2  # log 7 ≈ 1.95 if unskewed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0, "n_devices": 11}, "devices"),
        ({"alpha": 1.0, "min_size": 4}, "min_size"),
        ({"alpha": 1e-3, "min_size": 3}, "tries"),
    ],
)
def test_dirichlet_partition_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dirichlet_partition(np.arange(10) % 2, **{"n_devices": 3, "seed": 0, **kwargs})


def test_public_private_split_follows_ml_ecs():
    split = public_private_split(1001, seed=0)
    assert _covers_once(list(split.values()), 1001)
    assert len(split["public_train"]) + len(split["public_test"]) == round(0.25 * 1001)
    assert len(split["public_train"]) == round(0.9 * 250)
    assert len(split["private_train"]) == round(0.9 * 751)
    same = public_private_split(1001, seed=0)
    assert all(np.array_equal(split[k], same[k]) for k in split)
    with pytest.raises(ValueError, match="public_fraction"):
        public_private_split(100, seed=0, public_fraction=1.0)
    with pytest.raises(ValueError, match="train_fraction"):
        public_private_split(100, seed=0, train_fraction=0.0)


def test_modality_availability_rates_and_never_empty():
    mods = ("acce", "rgb", "depth")
    rho = {"acce": 0.9, "rgb": 0.5, "depth": 0.2}
    held = modality_availability(20000, mods, rho, seed=0)
    assert all(len(h) >= 1 for h in held)
    assert all(list(h) == [m for m in mods if m in h] for h in held)
    expected_scale = 1 / (1 - np.prod([1 - r for r in rho.values()]))  # conditioned on ≥ 1
    for m, r in rho.items():
        share = np.mean([m in h for h in held])
        assert share == pytest.approx(r * expected_scale, abs=0.015), m
    assert held == modality_availability(20000, mods, rho, seed=0)
    assert modality_availability(5, mods, 1.0, seed=0) == [mods] * 5


def test_modality_availability_zero_rate_and_bad_rates():
    held = modality_availability(500, ("a", "b"), {"a": 0.0, "b": 0.1}, seed=0)
    assert set(held) == {("b",)}
    for rate in (1.5, -0.1, 0.0, {"a": 0.5}):
        with pytest.raises(ValueError, match="rate"):
            modality_availability(3, ("a", "b"), rate, seed=0)
