"""Causal-LM backbones built offline: tiny randomly initialised ones from config classes, a
local checkpoint, or a real-size configuration on the meta device for parameter counts.

ML-ECS runs the same small LM (the "SLM") on every device and on the server, and a larger LM
of another architecture (the "LLM") on the server only. Only LoRA tensors are trained and
communicated (r = 8, alpha = 16, dropout 0.05, no bias, task CAUSAL_LM).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import Tensor, nn
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from learning.llm.tokenizer import EOS_ID, PAD_ID

FAMILIES: tuple[str, ...] = ("gpt2", "llama", "qwen2")
#: LoRA target modules per family (peft's own defaults): GPT-2's fused q/k/v ``c_attn``
#: (a Conv1D, in → 3·in); LLaMA's and Qwen2's ``q_proj`` and ``v_proj``.
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "llama": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
}


@dataclass(frozen=True)
class BackboneSpec:
    """A causal-LM backbone: a ``family`` with sizes, or ``path``, a local HF checkpoint
    directory (then the sizes are ignored and the family is read from the checkpoint).

    ``hidden`` is the model width, ``heads`` the attention heads (``hidden % heads == 0``),
    ``intermediate`` the MLP width (``None``: 4·hidden), ``max_positions`` the longest
    sequence in tokens, ``vocab_size`` the default vocabulary.
    """

    family: str = "gpt2"
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    vocab_size: int = 512
    max_positions: int = 128
    intermediate: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            return
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if min(self.hidden, self.layers, self.heads, self.vocab_size, self.max_positions) < 1:
            raise ValueError(f"sizes must be positive: {self}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} not divisible by heads {self.heads}")


SLM_DEFAULT = BackboneSpec(family="gpt2", hidden=64, layers=2, heads=2)
LLM_DEFAULT = BackboneSpec(family="llama", hidden=96, layers=2, heads=4, intermediate=192)
#: GPT-2 large (774,030,080 parameters, tied embeddings); MiniLLM-gpt2-720M, the paper's
#: device SLM, has this shape.
GPT2_LARGE = BackboneSpec(
    family="gpt2", hidden=1280, layers=36, heads=20, vocab_size=50257, max_positions=1024
)


def _config(spec: BackboneSpec, vocab_size: int, pad_id: int, eos_id: int) -> PretrainedConfig:
    inner = spec.intermediate or 4 * spec.hidden
    ids = {"pad_token_id": pad_id, "eos_token_id": eos_id, "bos_token_id": eos_id}
    if spec.family == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=spec.max_positions,
            n_embd=spec.hidden,
            n_layer=spec.layers,
            n_head=spec.heads,
            n_inner=inner,
            **ids,
        )
    config_class = LlamaConfig if spec.family == "llama" else Qwen2Config
    return config_class(
        vocab_size=vocab_size,
        max_position_embeddings=spec.max_positions,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        intermediate_size=inner,
        **ids,
    )


_MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    "gpt2": GPT2LMHeadModel,
    "llama": LlamaForCausalLM,
    "qwen2": Qwen2ForCausalLM,
}


def build_backbone(
    spec: BackboneSpec,
    vocab_size: int | None = None,
    seed: int = 0,
    *,
    pad_token_id: int = PAD_ID,
    eos_token_id: int = EOS_ID,
) -> PreTrainedModel:
    """A causal LM in eval mode: randomly initialised from ``spec`` (identical for the same
    seed; the global RNG is left untouched), or loaded from ``spec.path`` without network.

    ``vocab_size`` (default ``spec.vocab_size``; for a checkpoint its own) sets the rows of
    the embedding; a checkpoint with another size is resized (new rows drawn by seed). The
    token ids default to :mod:`learning.llm.tokenizer`'s. Takes ``input_ids`` (B, T) or
    ``inputs_embeds`` (B, T, hidden) and returns logits (B, T, vocab_size).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.path is not None:
            if not Path(spec.path).is_dir():
                raise FileNotFoundError(f"backbone checkpoint directory not found: {spec.path}")
            model = AutoModelForCausalLM.from_pretrained(spec.path, local_files_only=True)
            if vocab_size is not None and vocab_size != model.get_input_embeddings().num_embeddings:
                model.resize_token_embeddings(vocab_size)
        else:
            config = _config(spec, vocab_size or spec.vocab_size, pad_token_id, eos_token_id)
            model = _MODEL_CLASSES[spec.family](config)
            model.generation_config.pad_token_id = pad_token_id
            model.generation_config.eos_token_id = eos_token_id
            model.generation_config.bos_token_id = eos_token_id
    model.loss_type = "ForCausalLM"  # the default loss, named (else transformers warns)
    return model.eval()


def _family(model: nn.Module) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LORA_TARGETS:
        raise ValueError(f"no default LoRA targets for model type {model_type!r}; pass them")
    return model_type


def add_lora(
    model: PreTrainedModel,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: list[str] | tuple[str, ...] | None = None,
    *,
    seed: int | None = None,
) -> PeftModel:
    """Wrap ``model`` (modified in place; train/eval mode kept) with LoRA adapters of rank
    ``r`` on ``target_modules`` (default :data:`LORA_TARGETS` of its family); only the LoRA
    tensors require grad. B starts at zero, so the output equals the base model's until trained.
    ``seed`` makes the random A matrices reproducible without touching the global RNG.
    """
    targets = list(target_modules or LORA_TARGETS[_family(model)])
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=targets,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores W as (in, out)
    )
    training = model.training
    with torch.random.fork_rng(devices=[], enabled=seed is not None), warnings.catch_warnings():
        # peft asks transformers a deprecated question; nothing for a user to act on
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        if seed is not None:
            torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    return peft_model.train(training)


def lora_state(model: PeftModel) -> dict[str, Tensor]:
    """Detached copies of the LoRA tensors only (peft's keys, adapter name removed)."""
    state = get_peft_model_state_dict(model, save_embedding_layers=False)
    return {k: v.detach().clone() for k, v in state.items() if "lora_" in k}


def load_lora_state(model: PeftModel, state: dict[str, Tensor]) -> None:
    """Copy ``state`` (as from :func:`lora_state`, same keys and shapes) into ``model``'s
    LoRA tensors; raises ``KeyError`` on a missing or unknown key."""
    expected = set(lora_state(model))
    if set(state) != expected:
        missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
        raise KeyError(f"LoRA state mismatch: missing {missing[:3]}, unknown {unknown[:3]}")
    set_peft_model_state_dict(model, state)


def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """``total`` parameters (tied ones once), ``trainable`` ones (the LoRA tensors after
    :func:`add_lora`) and ``ratio`` = trainable / total."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "ratio": trainable / total if total else 0.0}


def meta_counts(
    spec: BackboneSpec, r: int = 8, target_modules: list[str] | tuple[str, ...] | None = None
) -> dict[str, Any]:
    """:func:`parameter_counts` of a real-size ``spec`` with LoRA rank ``r``, built on the
    meta device (no memory allocated): ``total`` includes the LoRA tensors, ``base`` does
    not, ``lora`` = trainable, ``ratio`` = lora / total."""
    if spec.path is not None:
        raise ValueError("meta_counts needs a family spec, not a checkpoint path")
    with torch.device("meta"):
        config = _config(spec, spec.vocab_size, PAD_ID, EOS_ID)
        model = _MODEL_CLASSES[spec.family](config)
        base = sum(p.numel() for p in model.parameters())
        counts = parameter_counts(add_lora(model, r=r, target_modules=target_modules))
    return {"base": base, "lora": counts["trainable"], **counts}
