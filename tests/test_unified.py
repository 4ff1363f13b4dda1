"""ML-ECS's unified model: wiring, the answer-only LM loss, what trains."""

from __future__ import annotations

import pytest
import torch

from learning.data import fall_like
from learning.llm import SLM_DEFAULT, add_lora, build_backbone, build_tokenizer
from learning.llm.unified import IGNORE, UnifiedModel
from learning.llm.warmup import warm_up

ANSWERS = ("walking", "falling", "lying")
PROMPT = "Sensor readings show the person is"


@pytest.fixture(scope="module")
def setup():
    data = fall_like(16, 4, 4, seed=0)
    tok = build_tokenizer([PROMPT, *(f" {a}<eos>" for a in ANSWERS)], vocab_size=300)
    torch.manual_seed(0)
    lm = add_lora(build_backbone(SLM_DEFAULT, len(tok), seed=0), seed=0)
    return data, tok, UnifiedModel(data.feature_dims(), lm, tok, ANSWERS, PROMPT, soft_tokens=3)


def test_shapes_and_the_shared_space(setup):
    data, _, model = setup
    features, _ = next(data.train.batches(5))
    reps = model.represent(features)
    assert {m: tuple(h.shape) for m, h in reps.items()} == {m: (5, 64) for m in features}
    assert model.fuse(reps).shape == (5, 64)  # same space as h_m: a valid anchor
    hidden = model.lm.get_input_embeddings().embedding_dim
    assert model.soft_prompt(model.fuse(reps)).shape == (5, 3, hidden)
    # any subset of modalities fuses
    assert model.fuse(model.represent({"rgb": features["rgb"]})).shape == (5, 64)
    with pytest.raises(ValueError):
        model.represent({"smell": features["rgb"]})


def test_loss_counts_answer_tokens_only(setup):
    data, tok, model = setup
    features, labels = next(data.train.batches(4))
    fused = model.fuse(model.represent(features))
    embeds, targets = model._inputs(fused, [model.answer_ids[int(y)] for y in labels])
    n_prefix = 3 + len(model.prompt_ids)
    assert embeds.shape[1] == targets.shape[1]
    assert (targets[:, :n_prefix] == IGNORE).all()
    for row, y in zip(targets, labels, strict=True):
        kept = row[row != IGNORE]
        assert tok.decode(kept) == f" {ANSWERS[int(y)]}<eos>"


def test_only_the_connector_encoders_and_lora_train(setup):
    data, _, model = setup
    model.train()
    model.zero_grad()
    features, labels = next(data.train.batches(4))
    loss = model.lm_loss(model.fuse(model.represent(features)), labels)
    assert torch.isfinite(loss)
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    assert any(n.startswith("encoders.") for n in trained)
    assert any("lora_" in n for n in trained)
    lm_trained = {n for n in trained if n.startswith("lm.")}
    assert all("lora_" in n for n in lm_trained)
    model.eval()
    predictions = model.classify(features)
    assert predictions.shape == (4,) and set(predictions.tolist()) <= {-1, 0, 1, 2}


def test_warm_up_teaches_a_random_backbone_the_answers():
    tok = build_tokenizer([PROMPT, *(f" {a}<eos>" for a in ANSWERS)], vocab_size=300)
    texts = [f"{PROMPT} {a}<eos>" for a in ANSWERS]
    models = [build_backbone(SLM_DEFAULT, len(tok), seed=0) for _ in range(2)]
    before = models[0](
        **tok(texts[0], return_tensors="pt"), labels=tok(texts[0], return_tensors="pt")["input_ids"]
    ).loss
    losses = [warm_up(m, tok, texts, steps=60, seed=1) for m in models]
    assert losses[0] == losses[1] < 0.5 * float(before)  # deterministic, and it learned
    # greedy continuation of the instruction is now one of the answers
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    for _ in range(3):
        ids = torch.cat([ids, models[0](input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    text = tok.decode(ids[0])[len(PROMPT) :]
    assert any(text.startswith(f" {a}") for a in ANSWERS), text
