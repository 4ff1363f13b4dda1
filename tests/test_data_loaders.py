"""MOSI/MOSEI pickles in MulT's and MMSA's layouts, built small in tmp_path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from learning.data import load_mosei

SIZES = {"train": 6, "valid": 3, "test": 4}
DIMS = {"text": 5, "audio": 4, "vision": 3}


def _split(n: int, layout: str, rng: np.random.Generator) -> dict:
    split = {m: rng.standard_normal((n, 7, d)) for m, d in DIMS.items()}  # float64, as on disk
    split["audio"][0, 0, 0] = -np.inf
    split["vision"][0, 1, 0] = np.nan
    labels = rng.uniform(-3, 3, n)
    if layout == "mult":
        split["labels"] = labels.reshape(n, 1, 1).astype(np.float32)
        split["id"] = np.array([["vid", str(i), "0"] for i in range(n)])
    else:
        split["regression_labels"] = labels
        split["classification_labels"] = np.sign(labels) + 1
        split["raw_text"] = ["words"] * n
        split["audio_lengths"] = np.full(n, 5)
        split["vision_lengths"] = np.full(n, 7)
    return split


def _write(tmp_path, layout: str, drop: tuple[str, str] | None = None):
    rng = np.random.default_rng(0)
    data = {name: _split(n, layout, rng) for name, n in SIZES.items()}
    if drop is not None:
        split, key = drop
        if key:
            del data[split][key]
        else:
            del data[split]
    path = tmp_path / f"{layout}.pkl"
    path.write_bytes(pickle.dumps(data))
    return path, data


@pytest.mark.parametrize("layout", ["mult", "mmsa"])
@pytest.mark.parametrize("forced", [False, True])
def test_loads_either_layout(tmp_path, layout, forced):
    path, raw = _write(tmp_path, layout)
    ds = load_mosei(path, layout=layout if forced else "auto")
    assert ds.task == "regression"
    assert ds.modalities == ("text", "audio", "vision")
    for name, n in SIZES.items():
        split = getattr(ds, name)
        assert split.labels.shape == (n,) and split.labels.dtype == torch.float32
        key = "labels" if layout == "mult" else "regression_labels"
        np.testing.assert_allclose(split.labels.numpy(), raw[name][key].reshape(-1), rtol=1e-6)
        for m, d in DIMS.items():
            x = split.features[m]
            assert x.shape == (n, 7, d) and x.dtype == torch.float32
            assert torch.isfinite(x).all()
    assert ds.train.features["audio"][0, 0, 0] == 0.0  # -inf → 0
    assert ds.train.features["vision"][0, 1, 0] == 0.0  # NaN → 0


def test_mmsa_lengths_zero_the_padding(tmp_path):
    path, raw = _write(tmp_path, "mmsa")
    audio = load_mosei(path).train.features["audio"]
    assert (audio[:, 5:] == 0).all()
    np.testing.assert_allclose(audio[1:, :5].numpy(), raw["train"]["audio"][1:, :5], rtol=1e-6)


def test_forcing_the_wrong_layout_names_the_missing_key(tmp_path):
    path, _ = _write(tmp_path, "mult")
    with pytest.raises(ValueError, match="regression_labels"):
        load_mosei(path, layout="mmsa")


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_mosei(tmp_path / "mosei_senti_data.pkl")
    message = str(err.value)
    assert "\n" not in message
    for hint in ("mosei_senti_data.pkl", "Multimodal-Transformer", "MMSA", "workload.data.path"):
        assert hint in message


@pytest.mark.parametrize(
    ("layout", "drop", "named"),
    [
        ("mult", ("valid", "audio"), "'audio'"),
        ("mult", ("test", "labels"), "'labels'"),
        ("mmsa", ("train", "vision"), "'vision'"),
        ("mmsa", ("test", None), "'test'"),
    ],
)
def test_malformed_file_names_the_missing_key(tmp_path, layout, drop, named):
    path, _ = _write(tmp_path, layout, drop)
    with pytest.raises(ValueError, match=named):
        load_mosei(path)


def test_unknown_layout_is_refused(tmp_path):
    path, _ = _write(tmp_path, "mult")
    with pytest.raises(ValueError, match="layout"):
        load_mosei(path, layout="csv")
