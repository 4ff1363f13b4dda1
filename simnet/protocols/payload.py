"""Packing datasets into message payloads and back (named tensors only)."""

from __future__ import annotations

import torch

from learning.data.dataset import MultimodalSplit

LABELS = "labels"


def split_payload(prefix: str, split: MultimodalSplit) -> dict[str, torch.Tensor]:
    """``{prefix/modality: features, prefix/labels: labels}``."""
    out = {f"{prefix}/{m}": x for m, x in split.features.items()}
    out[f"{prefix}/{LABELS}"] = split.labels
    return out


def payload_split(prefix: str, payload: dict[str, torch.Tensor]) -> MultimodalSplit:
    """Inverse of :func:`split_payload` for one ``prefix``."""
    head = f"{prefix}/"
    features = {
        k[len(head) :]: v for k, v in payload.items() if k.startswith(head) and k != head + LABELS
    }
    return MultimodalSplit(features, payload[head + LABELS])
