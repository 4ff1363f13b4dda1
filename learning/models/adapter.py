"""Mega-CE²'s edge adapter (eq. 5): y = w_g(x) + f_θ(x), f_θ attention + linear only.

:class:`EdgeAdapter` reads the base model's fused tokens (B, K, E): one multi-head
self-attention over the tokens (absent tokens masked out as keys), a mean over the
present tokens, a linear layer to the output. Every weight is drawn from N(0, 0.02²)
and every bias is 0, as in the paper, so at initialisation the adapter's output is small
but not zero (of order 0.02²·E per unit of token scale).

:class:`PersonalizedModel` adds it to a base :class:`~learning.models.base.FusionModel`.
The adapter never leaves the edge: protocols send ``model.base.state_dict()``, and
:meth:`PersonalizedModel.freeze_base` makes the adapter the only trainable part.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from learning.models.base import Features, FusionModel, Presence

INIT_STD = 0.02
"""Standard deviation of the adapter's initial weights (Mega-CE² §3.4)."""


class EdgeAdapter(nn.Module):
    """f_θ over tokens of width ``token_dim`` with ``heads`` attention heads
    (default: gcd(4, token_dim)), output ``out_dim``."""

    def __init__(self, token_dim: int, out_dim: int = 1, heads: int | None = None) -> None:
        super().__init__()
        heads = math.gcd(4, token_dim) if heads is None else heads
        self.attn = nn.MultiheadAttention(token_dim, heads, batch_first=True)
        self.out = nn.Linear(token_dim, out_dim)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, INIT_STD)

    def forward(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B, out_dim) from tokens (B, K, E) and their weights (B, K) in {0, 1}."""
        blocked = (1.0 - weights) * (torch.finfo(tokens.dtype).min / 2)
        h = self.attn(tokens, tokens, tokens, key_padding_mask=blocked, need_weights=False)[0]
        pooled = (h * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
        return self.out(pooled)


class PersonalizedModel(nn.Module):
    """A base fusion model plus an edge adapter on its tokens: base(x) + adapter(x)."""

    def __init__(self, base: FusionModel, out_dim: int = 1, heads: int | None = None) -> None:
        super().__init__()
        self.base = base
        self.adapter = EdgeAdapter(base.token_dim, out_dim, heads)

    def forward(self, features: Features, present: Presence | None = None) -> torch.Tensor:
        tokens, weights = self.base.encode(features, present)
        return self.base.decode(tokens) + self.adapter(tokens, weights)

    def freeze_base(self, frozen: bool = True) -> None:
        """Stop (or resume) training the base; the adapter stays trainable."""
        self.base.requires_grad_(not frozen)
