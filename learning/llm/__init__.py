"""Small causal LMs for ML-ECS: an offline BPE tokenizer, backbones and LoRA helpers."""

from learning.llm.backbones import (
    FAMILIES,
    GPT2_LARGE,
    LLM_DEFAULT,
    LORA_TARGETS,
    SLM_DEFAULT,
    BackboneSpec,
    add_lora,
    build_backbone,
    load_lora_state,
    lora_state,
    meta_counts,
    parameter_counts,
)
from learning.llm.tokenizer import (
    EOS_ID,
    EOS_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    build_tokenizer,
)

__all__ = [
    "EOS_ID",
    "EOS_TOKEN",
    "FAMILIES",
    "GPT2_LARGE",
    "LLM_DEFAULT",
    "LORA_TARGETS",
    "PAD_ID",
    "PAD_TOKEN",
    "SLM_DEFAULT",
    "SPECIAL_TOKENS",
    "UNK_TOKEN",
    "BackboneSpec",
    "add_lora",
    "build_backbone",
    "build_tokenizer",
    "load_lora_state",
    "lora_state",
    "meta_counts",
    "parameter_counts",
]
