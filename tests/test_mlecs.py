"""ML-ECS's stages on small models: what each trains, the MMA weights, FLOPs."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
import torch

from learning.data import fall_like
from learning.flops import OPTIMIZER_FLOPS
from learning.flops import _counting as counting
from learning.mlecs import Mlecs, MlecsSettings
from simnet.executors import PoolExecutor

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
    private = data.train.only(("acce", "rgb"))
    learner.amt(device, private, seed=1)
    moved = changed(before, device)
    assert moved
    # the frozen weights get no gradient and no AdamW update: AMT costs less than local
    assert 0 < learner.amt_flops(device, private, 1) < learner.local_flops(device, private, 1)
    assert all(n.startswith("encoders.") or "lora_" in n for n in moved)
    assert any("lora_" in n for n in moved) and any(n.startswith("encoders.") for n in moved)
    assert all(
        p.requires_grad == ("lora_" in n or not n.startswith("lm."))
        for n, p in device.named_parameters()
    )


def test_ccl_uses_the_server_anchors_and_trains_the_connector(ml):
    data, learner = ml
    server = learner.model("llm", data.modalities, seed=1)
    anchors = learner.represent(server, data.train)
    assert anchors.shape == (len(data.train), SETTINGS.shared_dim)
    assert learner.represent_flops(server, data.train) > 0
    device = learner.model("slm", ("rgb", "depth"), seed=4)
    before = snapshot(device)
    learner.ccl(device, data.train.only(("rgb", "depth")), anchors, seed=2)
    moved = changed(before, device)
    assert any(n.startswith("projectors.") for n in moved) and any("prompt" in n for n in moved)


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
    learner.se_ccl(llm, slm, data.train, seed=5)
    assert any("lora_" in n for n in changed(before_l, llm))
    assert any("lora_" in n for n in changed(before_s, slm))
    shipped = learner.lora(slm)
    assert shipped and all("lora_" in k for k in shipped)
    lm_params = sum(p.numel() for p in slm.lm.parameters())
    assert sum(v.numel() for v in shipped.values()) < 0.1 * lm_params
    result = learner.evaluate(slm, data.test)
    assert set(result.metrics) == {"accuracy", "f1_macro", "f1_weighted"}
    assert result.generated == ()


def test_planned_flops_are_what_the_training_steps_do(ml):
    """CCL's planned FLOPs against a FLOP counter wrapped around the real training: the
    counted forward and backward passes plus AdamW's per-element update (not seen by the
    counter) on every trainable element, once per step. 60 samples in batches of 8 over
    3 steps: sizes 8, 8, 8; with 20 samples and 9 steps the epoch's last batch (4) counts."""
    data, learner = ml
    server = learner.model("llm", data.modalities, seed=1)
    anchors = learner.represent(server, data.train)
    for n, steps in ((60, 3), (20, 9)):
        settings = replace(SETTINGS, steps=steps)
        learner.settings = settings
        try:
            share = data.train.subset(list(range(n))).only(("rgb", "depth"))
            device = learner.model("slm", ("rgb", "depth"), seed=4)
            planned = learner.ccl_flops(device, share, anchors[:n], seed=2)
            trainable = sum(p.numel() for p in device.parameters() if p.requires_grad)
            with counting() as counter:  # the counter closure_flops uses, around training
                learner.ccl(device, share, anchors[:n], seed=2)
        finally:
            learner.settings = SETTINGS
        update = OPTIMIZER_FLOPS["adamw"] * trainable * steps
        assert planned == counter.get_total_flops() + update, (n, steps)


def test_a_device_update_job_on_states_is_the_training_of_the_model(ml):
    """The job (a state in, a state out; run here and in a worker process, from the
    learner's recipe) gives the bits of CCL then AMT on the device's own model, and its
    FLOPs are those of the two stages."""
    data, learner = ml
    mods = ("acce", "rgb")
    public, private = data.train.only(mods), data.valid.only(mods)
    anchors = learner.represent(learner.model("llm", data.modalities, seed=1), data.train)
    model = learner.model("slm", mods, seed=4)
    job = learner.device_update_job(mods, learner.state(model), private, 7, (public, anchors))
    stages = learner.ccl_flops(model, public, anchors, 6) + learner.amt_flops(model, private, 7)
    assert job.flops == stages
    learner.ccl(model, public, anchors, 6)
    learner.amt(model, private, 7)
    expected = learner.state(model)
    assert len(pickle.dumps(learner)) < 4_000  # the recipe, not the backbones
    pool = PoolExecutor(workers=1, threads=torch.get_num_threads())
    try:
        remote = pool.take(pool.submit(job))
    finally:
        pool.close()
    for result in (job.run(), remote):
        assert result.keys() == expected.keys()
        assert all(torch.equal(result[k], expected[k]) for k in expected)


def test_a_state_loads_only_into_a_model_of_its_backbone_and_modalities(ml):
    data, learner = ml
    state = learner.fresh("slm", ("acce", "rgb"), seed=4)
    model = learner.loaded("slm", ("acce", "rgb"), state)
    assert all(torch.equal(learner.state(model)[k], state[k]) for k in state)
    with pytest.raises(KeyError, match="not a state of this model"):
        learner.loaded("slm", ("rgb", "depth"), state)
    with pytest.raises(KeyError, match="lacks"):
        learner.loaded("slm", ("acce", "rgb"), {k: v for k, v in state.items() if "lora_" not in k})
