"""Sentiment and classification metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learning.metrics import classification_metrics, sentiment_metrics


def test_mae_and_pearson_correlation():
    m = sentiment_metrics([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 4.0, 3.0])
    # |p - t| = 1, 0, 1, 1 -> 3/4
    assert m["mae"] == pytest.approx(0.75)
    # deviations p: -1.5 -.5 .5 1.5 (Σ² = 5); t: -.75 -.75 1.25 .25 (Σ² = 2.75)
    # Σ products = 1.125 + .375 + .625 + .375 = 2.5 -> r = 2.5 / √(5 · 2.75)
    assert m["corr"] == pytest.approx(2.5 / math.sqrt(13.75))


def test_correlation_with_a_constant_side_is_zero_not_nan():
    assert sentiment_metrics([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["corr"] == 0.0
    assert sentiment_metrics([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])["corr"] == 0.0


def test_acc7_and_acc5_clip_then_round_half_to_even():
    pred = [0.5, 1.5, -0.5, 2.5, -2.5, 3.7]
    truth = [0.0, 2.0, 0.0, 2.0, -3.0, 3.0]
    m = sentiment_metrics(pred, truth)
    # acc7, clip ±3 then np.round: pred -> 0, 2, -0, 2, -2, 3; truth -> 0, 2, 0, 2, -3, 3
    # only -2.5 -> -2 ≠ -3 misses (round-half-up would also miss 0.5 -> 1): 5/6
    assert m["acc7"] == pytest.approx(5 / 6)
    # acc5, clip ±2: pred -> .5 1.5 -.5 2 -2 2 -> 0 2 -0 2 -2 2; truth -> 0 2 0 2 -2 2: 6/6
    assert m["acc5"] == 1.0


def test_zero_is_positive_in_has0_and_excluded_or_negative_in_non0():
    pred = [0.0, 0.0, 1.0, -1.0, 2.0, -0.5]
    truth = [0.0, 1.0, 0.0, -2.0, 1.0, 1.5]
    m = sentiment_metrics(pred, truth)
    # has0, all six: p ≥ 0 = T T T F T F; t ≥ 0 = T T T F T T -> only the last differs: 5/6
    assert m["acc2_has0"] == pytest.approx(5 / 6)
    # class T (support 5): tp 4, fp 0, fn 1 -> F1 = 8/9; class F (support 1): tp 1, fp 1,
    # fn 0 -> F1 = 2/3; weighted = (5 · 8/9 + 1 · 2/3) / 6 = 23/27
    assert m["f1_has0"] == pytest.approx(23 / 27)
    # non0 keeps samples 1, 3, 4, 5 (t ≠ 0): p > 0 = F F T F (pred 0.0 is negative);
    # t > 0 = T F T T -> samples 3 and 4 agree: 2/4
    assert m["acc2_non0"] == pytest.approx(0.5)
    # class T (support 3): tp 1, fp 0, fn 2 -> 2/4; class F (support 1): tp 1, fp 2, fn 0
    # -> 2/4; weighted = (3 · .5 + 1 · .5) / 4
    assert m["f1_non0"] == pytest.approx(0.5)


def test_weighted_f1_weighs_by_true_support():
    # six positives, two negatives (all t ≠ 0, so has0 and non0 agree)
    truth = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0]
    pred = [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0]
    m = sentiment_metrics(pred, truth)
    # class +: tp 4, fp 1, fn 2 -> 8/11; class −: tp 1, fp 2, fn 1 -> 2/5
    # weighted = (6 · 8/11 + 2 · 2/5) / 8 = 71/110 (macro would be 31/55, accuracy 5/8)
    assert m["f1_non0"] == pytest.approx(71 / 110)
    assert m["f1_has0"] == pytest.approx(71 / 110)
    assert m["acc2_non0"] == m["acc2_has0"] == pytest.approx(5 / 8)


def test_class_only_predicted_has_zero_weight():
    m = sentiment_metrics([1.0, -1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 1.0])
    # truth all positive; pred positive 3 times: class + tp 3, fp 0, fn 1 -> 6/7, weight 4/4;
    # class − only predicted: F1 0, weight 0 -> 6/7 (MulT's swapped arguments give 9/14)
    assert m["f1_non0"] == pytest.approx(6 / 7)
    assert m["acc2_non0"] == pytest.approx(0.75)


def test_perfect_predictions():
    values = [-2.4, -0.3, 0.0, 1.1, 2.9]
    m = sentiment_metrics(values, values)
    assert m["mae"] == 0.0
    assert m["corr"] == pytest.approx(1.0)
    for name in ("acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"):
        assert m[name] == 1.0, name


def test_non0_is_nan_without_nonzero_truth():
    m = sentiment_metrics([0.5, -1.0, 0.0], [0.0, 0.0, 0.0])
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    # has0: p ≥ 0 = T F T vs all T -> 2/3
    assert m["acc2_has0"] == pytest.approx(2 / 3)
    assert m["corr"] == 0.0


def test_accepts_tensors_of_any_shape():
    pred = torch.tensor([[1.0], [-1.0], [2.0]], requires_grad=True)
    truth = np.array([1.0, 1.0, 2.0])
    m = sentiment_metrics(pred, truth)
    assert m["mae"] == pytest.approx(2 / 3)  # |diff| = 0, 2, 0
    assert sorted(m) == sorted(
        ["mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"]
    )
    assert all(isinstance(v, float) for v in m.values())


def test_length_mismatch_and_empty_input_are_errors():
    with pytest.raises(ValueError, match="2 values but truth has 3"):
        sentiment_metrics([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [])


def test_classification_metrics_macro_over_truth_and_predicted_labels():
    truth = [0, 0, 1, 1, 1]
    pred = [0, 2, 1, 1, 0]
    m = classification_metrics(np.array(pred), torch.tensor(truth))
    # class 0: tp 1, fp 1, fn 1 -> 2/4; class 1: tp 2, fp 0, fn 1 -> 4/5;
    # class 2 (only predicted): tp 0, fp 1 -> 0
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 0.5 + 3 * 0.8 + 0 * 0.0) / 5)


def test_classification_weighted_f1_imbalanced():
    truth = [1, 1, 1, 1, 1, 1, 0, 0]
    pred = [1, 1, 1, 1, 0, 0, 0, 1]
    m = classification_metrics(pred, truth)
    # same counts as test_weighted_f1_weighs_by_true_support: F1 = 8/11 (class 1), 2/5 (class 0)
    assert m["f1_weighted"] == pytest.approx(71 / 110)
    assert m["f1_macro"] == pytest.approx(31 / 55)
    assert m["accuracy"] == pytest.approx(5 / 8)
