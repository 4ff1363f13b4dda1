"""Offline tokenizer, tiny causal-LM backbones, LoRA helpers and meta-device parameter counts
checked against hand calculations."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoTokenizer

from learning.llm import (
    EOS_ID,
    GPT2_LARGE,
    LLM_DEFAULT,
    PAD_ID,
    SLM_DEFAULT,
    BackboneSpec,
    add_lora,
    build_backbone,
    build_tokenizer,
    load_lora_state,
    lora_state,
    meta_counts,
    parameter_counts,
)

LABELS = ["walking", "falling", "lying", "sitting", "standing"]
TEXTS = [
    f"Question: what is the person doing in clip {i}? Answer: {LABELS[i % 5]}<eos>"
    for i in range(60)
]
VOCAB = 400
SPECS = {"slm": SLM_DEFAULT, "llm": LLM_DEFAULT}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(TEXTS, vocab_size=VOCAB)


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def _ids(vocab: int, shape=(2, 7), seed: int = 5) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


# --- tokenizer -------------------------------------------------------------------------


def test_tokenizer_specials_and_text_round_trip(tokenizer):
    assert len(tokenizer) <= VOCAB
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<pad>", PAD_ID)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<eos>", EOS_ID)
    for text in [*TEXTS[:5], "unseen bytes: café ☃ 42", " falling"]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    ids = tokenizer(" falling<eos>")["input_ids"]
    assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1]
    assert tokenizer.decode(ids, skip_special_tokens=True) == " falling"
    batch = tokenizer([" a", " falling down now"], padding=True)["input_ids"]
    assert len(batch[0]) == len(batch[1]) and PAD_ID in batch[0]


def test_tokenizer_save_load_and_determinism(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (loaded.pad_token_id, loaded.eos_token_id) == (PAD_ID, EOS_ID)
    for text in TEXTS[:5]:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    again = build_tokenizer(list(reversed(TEXTS)), vocab_size=VOCAB)
    assert again.get_vocab() == tokenizer.get_vocab()
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(TEXTS, vocab_size=100)


# --- backbones --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["slm", "llm"])
def test_forward_shapes_ids_and_embeds(name, tokenizer):
    spec = SPECS[name]
    vocab = len(tokenizer)
    model = build_backbone(spec, vocab, seed=0)
    assert not model.training
    assert model.config.pad_token_id == PAD_ID and model.config.eos_token_id == EOS_ID
    ids = tokenizer(TEXTS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**ids).logits
        emb = model(inputs_embeds=torch.randn(3, 5, spec.hidden)).logits
    assert out.shape == (3, ids["input_ids"].shape[1], vocab)
    assert emb.shape == (3, 5, vocab)
    assert torch.isfinite(out).all() and torch.isfinite(emb).all()


def test_defaults_differ_in_architecture_and_size():
    slm, llm = build_backbone(SLM_DEFAULT, seed=0), build_backbone(LLM_DEFAULT, seed=0)
    assert slm.config.model_type == "gpt2" and llm.config.model_type == "llama"
    assert parameter_counts(llm)["total"] > parameter_counts(slm)["total"]


@pytest.mark.parametrize("name", ["slm", "llm"])
def test_same_seed_same_weights_and_global_rng_untouched(name):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_backbone(SPECS[name], 300, seed=7)
    assert torch.equal(torch.rand(3), expected)
    b, c = build_backbone(SPECS[name], 300, seed=7), build_backbone(SPECS[name], 300, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_local_checkpoint_path(tmp_path):
    model = build_backbone(SLM_DEFAULT, 300, seed=3)
    model.save_pretrained(tmp_path)
    loaded = build_backbone(BackboneSpec(path=str(tmp_path)))
    assert torch.equal(_logits(loaded, _ids(300)), _logits(model, _ids(300)))
    with pytest.raises(FileNotFoundError, match="not found"):
        build_backbone(BackboneSpec(path=str(tmp_path / "missing")))


def test_spec_validation():
    with pytest.raises(ValueError, match="family"):
        BackboneSpec(family="bert")
    with pytest.raises(ValueError, match="divisible"):
        BackboneSpec(hidden=65, heads=2)


# --- LoRA -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["slm", "llm"])
def test_lora_trainable_identity_at_init_and_state_round_trip(name):
    base = build_backbone(SPECS[name], 300, seed=0)
    ids = _ids(300)
    before = _logits(base, ids)
    model = add_lora(base, seed=0)
    assert not model.training
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
    assert torch.equal(_logits(model, ids), before)  # B = 0 at init

    state = lora_state(model)
    assert state and all("lora" in k for k in state)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    changed = _logits(model, ids)
    assert not torch.equal(changed, before)
    b_key = next(k for k in state if "lora_B" in k)
    assert not torch.equal(lora_state(model)[b_key], state[b_key])
    load_lora_state(model, state)
    assert torch.equal(_logits(model, ids), before)
    again = lora_state(model)
    assert list(again) == list(state)
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_lora_state_is_a_copy_and_load_checks_keys():
    model = add_lora(build_backbone(SLM_DEFAULT, 300, seed=0), seed=1)
    state = lora_state(model)
    key = next(iter(state))
    state[key].add_(1.0)
    assert not torch.equal(lora_state(model)[key], state[key])
    with pytest.raises(KeyError, match="mismatch"):
        load_lora_state(model, {**state, "bogus.lora_A.weight": state[key]})
    with pytest.raises(KeyError, match="mismatch"):
        load_lora_state(model, {k: v for k, v in state.items() if k != key})


def test_lora_seed_reproducible():
    a = lora_state(add_lora(build_backbone(SLM_DEFAULT, 300, seed=0), seed=4))
    b = lora_state(add_lora(build_backbone(SLM_DEFAULT, 300, seed=0), seed=4))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _gpt2_by_hand(spec: BackboneSpec) -> int:
    """GPT-2 parameters with MLP width 4·hidden and the LM head tied to the embedding."""
    h, n = spec.hidden, spec.layers
    ln = 2 * h
    attn = (h * 3 * h + 3 * h) + (h * h + h)  # c_attn, c_proj with biases
    mlp = (h * 4 * h + 4 * h) + (4 * h * h + h)  # c_fc, c_proj with biases
    return spec.vocab_size * h + spec.max_positions * h + n * (2 * ln + attn + mlp) + ln


def test_parameter_counts_default_slm_by_hand():
    spec, r = replace(SLM_DEFAULT, vocab_size=300), 8
    base = _gpt2_by_hand(spec)
    lora = spec.layers * r * (spec.hidden + 3 * spec.hidden)  # c_attn: A (r, h) + B (3h, r)
    counts = parameter_counts(add_lora(build_backbone(spec, seed=0), r=r))
    assert counts == {"total": base + lora, "trainable": lora, "ratio": lora / (base + lora)}
    assert counts["ratio"] < 0.2


# --- real-size counts on the meta device ------------------------------------------------


def test_meta_counts_gpt2_large_by_hand():
    base = _gpt2_by_hand(GPT2_LARGE)
    assert base == 774_030_080
    c8, c24 = meta_counts(GPT2_LARGE, r=8), meta_counts(GPT2_LARGE, r=24)
    assert c8["base"] == c24["base"] == base
    assert abs(c8["base"] - 774_030_080) <= 0.01 * 774_030_080
    lora8 = GPT2_LARGE.layers * 8 * (GPT2_LARGE.hidden + 3 * GPT2_LARGE.hidden)
    assert c8["lora"] == c8["trainable"] == lora8 == 1_474_560
    assert c24["lora"] == GPT2_LARGE.layers * 24 * (4 * GPT2_LARGE.hidden) == 3 * c8["lora"]
    assert c8["total"] == base + lora8
    assert c8["ratio"] == pytest.approx(lora8 / (base + lora8))


def test_meta_counts_llama_default_matches_built_model():
    h, n, r = LLM_DEFAULT.hidden, LLM_DEFAULT.layers, 8
    counts = meta_counts(LLM_DEFAULT, r=r)
    assert counts["lora"] == n * 2 * r * (h + h)  # q_proj, v_proj: h -> h
    built = parameter_counts(add_lora(build_backbone(LLM_DEFAULT, seed=0), r=r))
    assert (counts["total"], counts["trainable"]) == (built["total"], built["trainable"])
