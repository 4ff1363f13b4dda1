"""CMU-MOSI / CMU-MOSEI feature files in MulT's or MMSA's pickle layout.

Both layouts map ``'train' | 'valid' | 'test'`` to a dict of numpy arrays:

* MulT (``mosi_data.pkl``, ``mosei_senti_data.pkl``, ``*_noalign.pkl``): ``text``,
  ``audio``, ``vision`` (N, T, D), ``labels`` (N, 1, 1), ``id``.
* MMSA (``aligned_50.pkl``, ``unaligned_50.pkl``): ``text``, ``audio``, ``vision``,
  ``regression_labels`` (N,), optional ``audio_lengths`` / ``vision_lengths`` (N,), and
  keys this loader ignores (``classification_labels``, ``raw_text``, ``text_bert``, ``id``…).

``pickle`` is used here, and only here, to read these public dataset files that the user
supplies; simnet never sends pickles over its simulated wire. Unpickling runs code chosen
by the file's author, so load only files from a source you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from learning.data.dataset import MultimodalDataset, MultimodalSplit

Layout = Literal["auto", "mult", "mmsa"]
SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
LABEL_KEY = {"mult": "labels", "mmsa": "regression_labels"}

WHERE_TO_GET = (
    "get MulT's pickles (mosi_data.pkl, mosei_senti_data.pkl) from the links in the README of "
    "github.com/yaohungt/Multimodal-Transformer or MMSA's (MOSI|MOSEI/Processed/"
    "aligned_50.pkl, unaligned_50.pkl) from the README of github.com/thuiar/MMSA, then "
    "point the scenario at the file with workload.data.path"
)


def _detect(path: Path, split: dict[str, Any], layout: Layout) -> Literal["mult", "mmsa"]:
    if layout != "auto":
        return layout
    if "regression_labels" in split:
        return "mmsa"
    if "labels" in split:
        return "mult"
    raise ValueError(f"{path}: train: missing key 'labels' (MulT) or 'regression_labels' (MMSA)")


def _features(path: Path, name: str, split: dict[str, Any], key: str, n: int) -> torch.Tensor:
    """``split[key]`` as a (n, T, D) float32 tensor with every non-finite value set to 0;
    frames at or past ``split[key + '_lengths']`` (MMSA padding), when given, set to 0."""
    x = np.ascontiguousarray(split[key], dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != n:
        raise ValueError(f"{path}: {name}.{key}: expected ({n}, T, D), got {x.shape}")
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    lengths = split.get(f"{key}_lengths")
    if lengths is not None:
        lengths = np.asarray(lengths).reshape(-1)
        if lengths.shape[0] != n:
            raise ValueError(f"{path}: {name}.{key}_lengths: expected {n} values")
        x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return torch.from_numpy(x)


def _split(path: Path, data: dict[str, Any], name: str, layout: Layout) -> MultimodalSplit:
    split = data[name]
    label_key = LABEL_KEY[layout]
    for key in (*MODALITIES, label_key):
        if key not in split:
            raise ValueError(f"{path}: {name}: missing key {key!r} ({layout} layout)")
    labels = np.asarray(split[label_key], dtype=np.float32).reshape(-1)
    n = labels.shape[0]
    features = {m: _features(path, name, split, m, n) for m in MODALITIES}
    return MultimodalSplit(features, torch.from_numpy(labels.copy()))


def load_mosei(path: str | Path, layout: Layout = "auto") -> MultimodalDataset:
    """Read a CMU-MOSI/MOSEI feature pickle (MulT or MMSA layout) into a regression dataset.

    Modalities ``text``, ``audio``, ``vision`` as (N, T, D) float32 (COVAREP's -inf, and
    any NaN or ±inf, become 0); labels (N,) float32 sentiment in [-3, 3]. ``layout``
    ``auto`` picks MMSA if the train split has ``regression_labels``, else MulT.
    Raises ``FileNotFoundError`` (saying where to get the files) if ``path`` does not
    exist, ``ValueError`` naming the missing split or key if the file is malformed.
    """
    if layout not in ("auto", *LABEL_KEY):
        raise ValueError(f"layout must be 'auto', 'mult' or 'mmsa', got {layout!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file; {WHERE_TO_GET}")
    with path.open("rb") as f:
        data = pickle.load(f)  # trusted, user-supplied dataset file (see module docstring)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of splits, got {type(data).__name__}")
    for name in SPLITS:
        if not isinstance(data.get(name), dict):
            raise ValueError(f"{path}: missing split {name!r}")
    chosen = _detect(path, data["train"], layout)
    train, valid, test = (_split(path, data, name, chosen) for name in SPLITS)
    return MultimodalDataset(train, valid, test, task="regression")
