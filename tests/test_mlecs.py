"""ML-ECS's stages on small models: what each trains, the MMA weights, FLOPs."""

from __future__ import annotations

import pytest
import torch

from learning.data import fall_like
from learning.mlecs import Mlecs, MlecsSettings

SETTINGS = MlecsSettings(answers=("walking", "falling", "lying"), prompt="The person is", steps=3)


@pytest.fixture(scope="module")
def ml():
    data = fall_like(60, 10, 30, seed=0, difficulty=0.3)
    return data, Mlecs(data.feature_dims(), SETTINGS, seed=0)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def test_amt_trains_only_encoders_and_lora(ml):
    data, learner = ml
    device = learner.model("slm", ("acce", "rgb"), seed=3)
    before = snapshot(device)
    flops = learner.amt(device, data.train.only(("acce", "rgb")), seed=1)
    moved = changed(before, device)
    assert flops > 0 and moved
    assert all(n.startswith("encoders.") or "lora_" in n for n in moved)
    assert any("lora_" in n for n in moved) and any(n.startswith("encoders.") for n in moved)
    assert all(
        p.requires_grad == ("lora_" in n or not n.startswith("lm."))
        for n, p in device.named_parameters()
    )


def test_ccl_uses_the_server_anchors_and_trains_the_connector(ml):
    data, learner = ml
    server = learner.model("llm", data.modalities, seed=1)
    anchors, represent_flops = learner.represent(server, data.train)
    assert anchors.shape == (len(data.train), SETTINGS.shared_dim) and represent_flops > 0
    device = learner.model("slm", ("rgb", "depth"), seed=4)
    before = snapshot(device)
    flops = learner.ccl(device, data.train.only(("rgb", "depth")), anchors, seed=2)
    moved = changed(before, device)
    assert flops > 0
    assert any(n.startswith("projectors.") for n in moved) and any("prompt" in n for n in moved)
    # the same stage again costs the same FLOPs (counted once per batch shape)
    assert learner.ccl(device, data.train.only(("rgb", "depth")), anchors, seed=2) == flops


def test_mma_weights_by_modality_count(ml):
    _, learner = ml
    states = [{"w": torch.full((2,), float(v))} for v in (1.0, 4.0, 10.0)]
    merged = learner.mma(states, [1, 2, 3])
    expected = (1 * 1.0 + 2 * 4.0 + 3 * 10.0) / 6
    torch.testing.assert_close(merged["w"], torch.full((2,), expected))


def test_se_ccl_moves_both_server_models_and_lora_is_all_that_travels(ml):
    data, learner = ml
    llm = learner.model("llm", data.modalities, seed=1)
    slm = learner.model("slm", data.modalities, seed=2)
    before_l, before_s = snapshot(llm), snapshot(slm)
    assert learner.se_ccl(llm, slm, data.train, seed=5) > 0
    assert any("lora_" in n for n in changed(before_l, llm))
    assert any("lora_" in n for n in changed(before_s, slm))
    shipped = learner.lora(slm)
    assert shipped and all("lora_" in k for k in shipped)
    lm_params = sum(p.numel() for p in slm.lm.parameters())
    assert sum(v.numel() for v in shipped.values()) < 0.1 * lm_params
    metrics = learner.evaluate(slm, data.test)
    assert set(metrics) == {"accuracy", "f1_macro", "f1_weighted"}
