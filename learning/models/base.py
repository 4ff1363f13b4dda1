"""The interface every fusion model keeps: modality tokens in, prediction out, masks.

A model maps ``features`` (modality → (B, T_m, D_m) tensor) to an output (B, out_dim) in
two stages: :meth:`FusionModel.encode` gives fused *tokens* (B, K, E) with a weight per
token (B, K) — 1 present, 0 absent — and :meth:`FusionModel.decode` maps the tokens to
the output. The edge adapter of Mega-CE² reads the same tokens.

Missing modalities: a modality of the model that is not a key of ``features`` is absent
for the whole batch (its computation is skipped); ``present[m]`` (B,) bool marks it
absent per sample. An absent modality's values never reach the output (they are zeroed
before use, so NaN or −inf there is harmless).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

Features = Mapping[str, torch.Tensor]
"""Modality → (B, T_m, D_m) float tensor."""

Presence = Mapping[str, torch.Tensor]
"""Modality → (B,) bool tensor: which samples hold it."""


class OptionError(ValueError):
    """A model constructor ``option`` with a bad value (``message`` says why)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")


class FusionModel(nn.Module):
    """Base class: ``modalities`` the model was built for, ``token_dim`` E of its tokens."""

    modalities: tuple[str, ...]
    token_dim: int

    def encode(
        self, features: Features, present: Presence | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused tokens (B, K, E), zero where absent, and their weights (B, K) in {0, 1}."""
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Output (B, out_dim) from tokens (B, K, E)."""
        raise NotImplementedError

    def forward(self, features: Features, present: Presence | None = None) -> torch.Tensor:
        return self.decode(self.encode(features, present)[0])

    def inputs(
        self, features: Features, present: Presence | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The features given, absent samples zeroed, and each one's (B,) float weight.

        Raises ``ValueError`` for a modality the model does not know, a batch-size
        mismatch, or a batch with no modality at all.
        """
        unknown = sorted(set(features) - set(self.modalities))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; model has {list(self.modalities)}")
        given = [m for m in self.modalities if m in features]
        if not given:
            raise ValueError(f"no modality given; model has {list(self.modalities)}")
        batch = features[given[0]].shape[0]
        xs: dict[str, torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        for m in given:
            x = features[m]
            if x.dim() != 3 or x.shape[0] != batch:
                raise ValueError(f"modality {m!r}: expected ({batch}, T, D), got {tuple(x.shape)}")
            mask = None if present is None or m not in present else present[m].to(x.device)
            if mask is None:
                weights[m] = x.new_ones(batch)
                xs[m] = x
            else:
                weights[m] = mask.to(x.dtype)
                xs[m] = torch.where(mask.bool()[:, None, None], x, torch.zeros((), dtype=x.dtype))
        return xs, weights

    def stack_tokens(
        self, tokens: dict[str, torch.Tensor], weights: dict[str, torch.Tensor],
        names: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """One token per modality of ``names`` (default: the model's), in that order:
        (B, K, E) zeroed where absent, and (B, K) weights; a modality missing from
        ``tokens`` is a zero token."""
        names = self.modalities if names is None else names
        ref = next(iter(tokens.values()))
        zero_token = ref.new_zeros(ref.shape)
        zero_weight = ref.new_zeros(ref.shape[0])
        w = torch.stack([weights.get(m, zero_weight) for m in names], dim=1)
        t = torch.stack([tokens.get(m, zero_token) for m in names], dim=1)
        return t * w[..., None], w
