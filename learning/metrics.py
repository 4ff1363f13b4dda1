"""Evaluation metrics, implemented with numpy (no scikit-learn).

Sentiment regression follows MulT (``eval_metrics.py``) and MMSA (``metricsTop.py``);
F1 scores follow ``sklearn.metrics.f1_score``: per-class F1 = 2·TP / (2·TP + FP + FN)
over the labels present in truth ∪ prediction, a label only ever predicted gets F1 0
(the denominator is then FP > 0, so sklearn's ``zero_division`` never applies),
"weighted" averages them by true support (a label absent from truth weighs 0),
"macro" takes their plain mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _flat(x: Any) -> np.ndarray:
    """A flat numpy copy of an array-like or a (CPU or CUDA, grad or not) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x).reshape(-1)


def _pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _flat(pred), _flat(truth)
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.size} values but truth has {t.size}")
    if p.size == 0:
        raise ValueError("metrics of an empty set are undefined")
    return p, t


def _f1_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(macro, weighted) F1 over the labels in truth ∪ pred."""
    f1s, supports = [], []
    for label in np.union1d(truth, pred):
        is_pred, is_true = pred == label, truth == label
        tp = np.sum(is_pred & is_true)
        fp = np.sum(is_pred & ~is_true)
        fn = np.sum(~is_pred & is_true)
        f1s.append(2 * tp / (2 * tp + fp + fn))
        supports.append(np.sum(is_true))
    f1, support = np.asarray(f1s, dtype=float), np.asarray(supports, dtype=float)
    return float(np.mean(f1)), float(np.sum(f1 * support) / np.sum(support))


def sentiment_metrics(pred: Any, truth: Any) -> dict[str, float]:
    """MulT/MMSA sentiment scores of predictions ``pred`` against labels ``truth`` in [-3, 3].

    ``mae``: mean |p − t|. ``corr``: Pearson correlation (``np.corrcoef``); 0.0, not NaN,
    when either side is constant. ``acc7`` / ``acc5``: share of samples with
    ``np.round(clip(p, ±3)) == np.round(clip(t, ±3))`` (±2 for ``acc5``); like MulT this
    keeps numpy's round-half-to-even, so 0.5 → 0, 1.5 → 2, -2.5 → -2.
    ``acc2_has0`` / ``f1_has0`` (MMSA): all samples, classes p ≥ 0 vs t ≥ 0.
    ``acc2_non0`` / ``f1_non0`` (MulT ``exclude_zero=True``): samples with t ≠ 0 only,
    classes p > 0 vs t > 0; NaN when every t is 0. F1 is sklearn's ``average='weighted'``
    with the truth as ``y_true`` (as MMSA; MulT's code swaps the arguments).
    Inputs are flattened; values are fractions in [0, 1] except ``mae`` and ``corr``.
    """
    p, t = _pair(pred, truth)
    p, t = p.astype(np.float64), t.astype(np.float64)
    constant = np.ptp(p) == 0 or np.ptp(t) == 0
    scores = {
        "mae": float(np.mean(np.abs(p - t))),
        "corr": 0.0 if constant else float(np.corrcoef(p, t)[0, 1]),
        "acc7": float(np.mean(np.round(np.clip(p, -3, 3)) == np.round(np.clip(t, -3, 3)))),
        "acc5": float(np.mean(np.round(np.clip(p, -2, 2)) == np.round(np.clip(t, -2, 2)))),
        "acc2_has0": float(np.mean((p >= 0) == (t >= 0))),
        "f1_has0": _f1_scores(p >= 0, t >= 0)[1],
    }
    non0 = t != 0
    if non0.any():
        p_pos, t_pos = p[non0] > 0, t[non0] > 0
        scores["acc2_non0"] = float(np.mean(p_pos == t_pos))
        scores["f1_non0"] = _f1_scores(p_pos, t_pos)[1]
    else:
        scores["acc2_non0"] = scores["f1_non0"] = float("nan")
    return scores


def classification_metrics(pred_labels: Any, truth: Any) -> dict[str, float]:
    """``accuracy``, ``f1_macro`` and ``f1_weighted`` (sklearn semantics, see module doc)
    of predicted class labels against true labels; inputs are flattened."""
    p, t = _pair(pred_labels, truth)
    macro, weighted = _f1_scores(p, t)
    return {"accuracy": float(np.mean(p == t)), "f1_macro": macro, "f1_weighted": weighted}
