"""MulT restricted to some modalities or to the crossmodal encoders into some targets
(Mega-CE² Table 4): which encoders exist, parameter counts by hand, ignored inputs."""

from __future__ import annotations

import pytest
import torch

from learning.models import MulT, PersonalizedModel
from learning.models.base import OptionError

DIMS = {"text": 5, "audio": 3, "vision": 2}
SMALL = {"width": 4, "layers": 1, "heads": 2}


def encoder(e: int, layers: int) -> int:
    """Parameters of an encoder of width e: per layer attention 4e² + 4e, two LayerNorms
    4e, FFN e·4e + 4e + 4e·e + e; a final LayerNorm 2e."""
    return layers * (4 * e * e + 4 * e + 4 * e + 8 * e * e + 5 * e) + 2 * e


def head(fused: int) -> int:
    return 2 * (fused * fused + fused) + fused + 1


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def features(batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, 4, d, generator=g) for m, d in DIMS.items()}


def test_only_the_crossmodal_encoders_into_the_target_are_kept():
    model = MulT(DIMS, 1, targets=["text"], **SMALL)
    assert set(model.crossmodal) == {"audio_to_text", "vision_to_text"}
    assert set(model.memory) == {"text"} and set(model.project) == set(DIMS)
    # projections 10·4; two crossmodal encoders of width 4, one layer; a memory encoder
    # of width 8, three layers; the head over one token of 8
    assert count(model) == 40 + 2 * encoder(4, 1) + encoder(8, 3) + head(8) == 3329
    tokens, weights = model.encode(features())
    assert tokens.shape == (3, 1, 8) and weights.shape == (3, 1)


def test_a_unimodal_model_has_no_crossmodal_encoder():
    model = MulT(DIMS, 1, modalities=["text"], **SMALL)
    assert not model.crossmodal and set(model.memory) == {"text"} and set(model.project) == {"text"}
    assert count(model) == 5 * 4 + encoder(4, 3) + head(4) == 805
    full = MulT(DIMS, 1, **SMALL)
    assert count(full) == 40 + 6 * encoder(4, 1) + 3 * encoder(8, 3) + head(24) == 10673


def test_output_does_not_depend_on_an_ignored_modality():
    torch.manual_seed(0)
    model = MulT(DIMS, 1, modalities=["text", "audio"], **SMALL).eval()
    x = features()
    y = model(x)
    other = {**x, "vision": torch.full_like(x["vision"], float("nan"))}
    assert torch.equal(model(other), y)
    assert torch.equal(model({"text": x["text"], "audio": x["audio"]}), y)
    assert not torch.equal(model({**x, "audio": x["audio"] + 1.0}), y)
    # a personalised model reads the same two tokens
    personal = PersonalizedModel(model).eval()
    assert torch.equal(personal(other), personal(x))


def test_a_target_still_reads_every_used_source():
    torch.manual_seed(0)
    model = MulT(DIMS, 1, targets=["vision"], **SMALL).eval()
    x = features()
    assert not torch.equal(model({**x, "text": x["text"] + 1.0}), model(x))


@pytest.mark.parametrize(
    ("options", "option", "text"),
    [
        ({"modalities": ["smell"]}, "modalities", "unknown modality 'smell'"),
        ({"modalities": []}, "modalities", "non-empty list"),
        ({"modalities": "text"}, "modalities", "non-empty list"),
        ({"modalities": ["text", "audio"], "targets": ["vision"]}, "targets",
         "choose from text, audio"),
    ],
)  # fmt: skip
def test_bad_restrictions_name_the_option(options, option, text):
    with pytest.raises(OptionError) as err:
        MulT(DIMS, 1, **SMALL, **options)
    assert err.value.option == option and text in err.value.message
