"""Fusion models: MulT, EF-LSTM, LF-LSTM, and Mega-CE²'s edge adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from learning.models.adapter import EdgeAdapter, PersonalizedModel
from learning.models.base import FusionModel
from learning.models.lstm import EFLSTM, LFLSTM
from learning.models.mult import MulT

MODELS: dict[str, type[FusionModel]] = {"mult": MulT, "ef_lstm": EFLSTM, "lf_lstm": LFLSTM}
"""Model names a scenario may use."""


def build_model(
    name: str, feature_dims: Mapping[str, int], out_dim: int = 1, **kwargs: Any
) -> FusionModel:
    """The model ``name`` over ``feature_dims`` (modality → D_m) with ``out_dim`` outputs;
    ``kwargs`` go to its constructor (e.g. ``width``, ``layers``, ``heads`` for MulT)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](feature_dims, out_dim, **kwargs)


__all__ = [
    "EFLSTM",
    "LFLSTM",
    "MODELS",
    "EdgeAdapter",
    "FusionModel",
    "MulT",
    "PersonalizedModel",
    "build_model",
]
