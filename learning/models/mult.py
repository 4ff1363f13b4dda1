"""MulT, the Multimodal Transformer of Tsai et al. (ACL 2019), with modality masks.

Architecture (reference code ``yaohungt/Multimodal-Transformer``; defaults are its
CMU-MOSEI setting, ≈1.07 M parameters at text/audio/vision = 300/74/35 features):

* each modality: dropout (text only, p = ``embed_dropout``), then a kernel-1 Conv1d
  without bias to the common ``width`` d;
* one crossmodal encoder per ordered pair source → target (six for three modalities):
  the target sequence queries the source sequence, ``layers`` deep, width d;
* one self-attention "memory" encoder per target over the concatenation of its
  crossmodal outputs (width (M−1)·d), ``max(layers, 3)`` deep;
* the last time step of each memory encoder, concatenated, goes through a residual
  two-layer MLP and a linear output layer.

Encoder layers are pre-LayerNorm, with an FFN of width 4E; encoder inputs are scaled by
√E and get sinusoidal positions (no parameters) and ``embed_dropout``; a LayerNorm
closes each encoder. Dropouts: attention ``attn_dropout`` (crossmodal encoders into
audio or vision: ``cross_attn_dropout``, 0 by default), ReLU 0.1, residual 0.1.

Ablations (Mega-CE² Table 4, MulT's §5.2): ``modalities`` keeps only some of the data's
modalities (the others are ignored: not projected, not attended to); ``targets`` keeps
only the crossmodal encoders into those modalities and their memory encoders, so only
their tokens reach the head (``targets=["text"]`` is MulT's "only [V,A → L]").

Masks: a source modality absent for a sample contributes nothing to the crossmodal
attention (the attention sublayer's output is multiplied by 0; skipped entirely when
the modality is absent from the batch), so the target still carries its own sequence
through the residual stream; an absent target's token is zero. With one modality, its
memory encoder reads its projected sequence directly.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from learning.models.base import Features, FusionModel, OptionError, Presence

CROSS_ATTN_DROPOUT = {"audio": 0.0, "vision": 0.0}
"""MulT's MOSEI setting: no attention dropout in the encoders that attend into audio or
vision (``attn_dropout_a``, ``attn_dropout_v``)."""


class Uniforms:
    """Where :func:`dropout` takes its uniform draws within :func:`vectorised`: each call
    the next ``x.numel()`` of ``values`` (one client's stream, an input of the vectorised
    function); with ``values`` None it only counts them (``used``)."""

    def __init__(self, values: torch.Tensor | None = None) -> None:
        self.values = values
        self.used = 0

    def take(self, like: torch.Tensor) -> torch.Tensor | None:
        start, self.used = self.used, self.used + like.numel()
        return None if self.values is None else self.values[start : self.used].view_as(like)


_vectorised: contextvars.ContextVar[Uniforms | None | bool] = contextvars.ContextVar("vectorised")
"""Within :func:`vectorised`: its uniforms (or None); outside, unset (read as False)."""


@contextmanager
def vectorised(uniforms: Uniforms | None = None) -> Iterator[None]:
    """Within it, MulT runs on ops that ``torch.func.vmap`` batches natively: attention as
    explicit matrix products (:func:`attend`) rather than ``nn.MultiheadAttention``'s fused
    kernel, and dropout as uniforms ``u`` compared with p (:func:`dropout`), taken from
    ``uniforms`` (else drawn from torch's generator). The same function and parameters;
    other float rounding and other dropout draws."""
    token = _vectorised.set(uniforms)
    try:
        yield
    finally:
        _vectorised.reset(token)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout``; within :func:`vectorised`, x · [u ≥ p] / (1 − p), u uniform."""
    uniforms = _vectorised.get(False)
    if uniforms is False or not training or p == 0.0:
        return F.dropout(x, p, training)
    u = uniforms.take(x) if isinstance(uniforms, Uniforms) else None
    return x * ((torch.rand_like(x) if u is None else u) >= p) / (1.0 - p)


def attend(attn: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """``attn(q, kv, kv)`` spelled out: per head h, softmax(Q_h K_hᵀ / √d) V_h with
    Q = q W_qᵀ + b_q, K = kv W_kᵀ + b_k, V = kv W_vᵀ + b_v, d = E / heads, attention
    dropout, then the output projection."""
    e, heads = attn.embed_dim, attn.num_heads
    w = attn.in_proj_weight.chunk(3)
    b = attn.in_proj_bias.chunk(3)

    def split(x: torch.Tensor, k: int) -> torch.Tensor:
        return F.linear(x, w[k], b[k]).unflatten(-1, (heads, e // heads)).transpose(-3, -2)

    scores = split(q, 0) @ split(kv, 1).transpose(-2, -1) / math.sqrt(e // heads)
    weights = dropout(scores.softmax(-1), attn.dropout, attn.training)
    return attn.out_proj((weights @ split(kv, 2)).transpose(-3, -2).flatten(-2))


def sinusoidal_positions(length: int, dim: int, device: torch.device, dtype: torch.dtype):
    """(length, dim) embedding of positions 1..length: sines then cosines of
    position · 10000^(−i/(dim/2 − 1)), i < dim/2 (a zero column pads an odd dim)."""
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -scale)
    pos = torch.arange(1, length + 1, device=device, dtype=torch.float32)[:, None] * freqs
    emb = torch.cat([torch.sin(pos), torch.cos(pos)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb.to(dtype)


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer; ``cross`` layers attend from ``x`` to a source sequence."""

    def __init__(
        self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float
    ) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, batch_first=True)
        self.norm_attn = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout

    def forward(
        self,
        x: torch.Tensor,
        source: torch.Tensor | None = None,
        source_weight: torch.Tensor | None = None,
        cross: bool = False,
    ) -> torch.Tensor:
        """``x`` (B, T, E) after one layer. Self-attention unless ``cross``; a cross
        layer with ``source`` None skips attention, ``source_weight`` (B,) scales it."""
        if not cross or source is not None:
            q = self.norm_attn(x)
            kv = self.norm_attn(source) if cross else q
            if _vectorised.get(False) is not False:
                a = attend(self.attn, q, kv)
            else:
                a = self.attn(q, kv, kv, need_weights=False)[0]
            a = dropout(a, self.res_dropout, self.training)
            x = x + (a if source_weight is None else a * source_weight[:, None, None])
        h = dropout(F.relu(self.fc1(self.norm_ffn(x))), self.relu_dropout, self.training)
        return x + dropout(self.fc2(h), self.res_dropout, self.training)


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` with input scaling, positions and a final norm."""

    def __init__(
        self,
        dim: int,
        heads: int,
        layers: int,
        attn_dropout: float,
        relu_dropout: float,
        res_dropout: float,
        embed_dropout: float,
        cross: bool,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(dim, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.dim = dim
        self.embed_dropout = embed_dropout
        self.cross = cross

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        pos = sinusoidal_positions(x.shape[1], self.dim, x.device, x.dtype)
        return dropout(math.sqrt(self.dim) * x + pos, self.embed_dropout, self.training)

    def forward(
        self,
        x: torch.Tensor,
        source: torch.Tensor | None = None,
        source_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self._embed(x)
        src = None if source is None else self._embed(source)
        for layer in self.layers:
            x = layer(x, src, source_weight, self.cross)
        return self.norm(x)


def subset(option: str, names: Sequence[str] | None, within: tuple[str, ...]) -> tuple[str, ...]:
    """The modalities of ``within`` that ``names`` lists, in ``within``'s order (all of
    them for ``None``); :class:`OptionError` for an empty list or an unknown name."""
    if names is None:
        return within
    choices = ", ".join(within)
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise OptionError(option, f"must be a non-empty list of modalities out of {choices}")
    unknown = [n for n in names if n not in within]
    if unknown:
        raise OptionError(option, f"unknown modality {unknown[0]!r}; choose from {choices}")
    return tuple(mod for mod in within if mod in names)


class MulT(FusionModel):
    """Multimodal Transformer over ``feature_dims`` (modality → D_m), output ``out_dim``;
    ``modalities`` (default all) are those it uses, ``targets`` (default all of those)
    the ones whose crossmodal and memory encoders it keeps.

    Tokens: one per target, the last step of its memory encoder, E = (M−1)·width with M
    used modalities (width when M = 1).
    """

    def __init__(
        self,
        feature_dims: Mapping[str, int],
        out_dim: int = 1,
        width: int = 30,
        layers: int = 5,
        heads: int = 5,
        attn_dropout: float = 0.1,
        cross_attn_dropout: Mapping[str, float] | None = None,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        embed_dropout: float = 0.25,
        out_dropout: float = 0.0,
        modalities: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not feature_dims:
            raise ValueError("MulT needs at least one modality")
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.modalities = subset("modalities", modalities, tuple(feature_dims))
        self.targets = subset("targets", targets, self.modalities)
        self.ignored = tuple(mod for mod in feature_dims if mod not in self.modalities)
        """Modalities of the data the model leaves out (dropped from its inputs)."""
        m = len(self.modalities)
        self.token_dim = width * max(m - 1, 1)
        self.embed_dropout = embed_dropout
        self.out_dropout = out_dropout
        cross_drop = dict(CROSS_ATTN_DROPOUT if cross_attn_dropout is None else cross_attn_dropout)
        common = {"relu_dropout": relu_dropout, "res_dropout": res_dropout}
        common["embed_dropout"] = embed_dropout
        self.project = nn.ModuleDict(
            {
                mod: nn.Conv1d(feature_dims[mod], width, kernel_size=1, bias=False)
                for mod in self.modalities
            }
        )
        self.crossmodal = nn.ModuleDict(
            {
                f"{src}_to_{tgt}": Encoder(
                    width, heads, layers, cross_drop.get(tgt, attn_dropout), cross=True, **common
                )
                for tgt in self.targets
                for src in self.modalities
                if src != tgt
            }
        )
        self.memory = nn.ModuleDict(
            {
                tgt: Encoder(
                    self.token_dim, heads, max(layers, 3), attn_dropout, cross=False, **common
                )
                for tgt in self.targets
            }
        )
        fused = len(self.targets) * self.token_dim
        self.proj1 = nn.Linear(fused, fused)
        self.proj2 = nn.Linear(fused, fused)
        self.out = nn.Linear(fused, out_dim)

    def encode(
        self, features: Features, present: Presence | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ignored:
            features = {mod: x for mod, x in features.items() if mod not in self.ignored}
        xs, weights = self.inputs(features, present)
        proj = {}
        for mod, x in xs.items():
            if mod == "text":
                x = dropout(x, self.embed_dropout, self.training)
            proj[mod] = self.project[mod](x.transpose(1, 2)).transpose(1, 2)
        tokens = {}
        for tgt in (t for t in self.targets if t in proj):
            parts = [
                self.crossmodal[f"{src}_to_{tgt}"](proj[tgt], proj.get(src), weights.get(src))
                for src in self.modalities
                if src != tgt
            ]
            seq = torch.cat(parts, dim=-1) if parts else proj[tgt]
            tokens[tgt] = self.memory[tgt](seq)[:, -1]
        return self.stack_tokens(tokens, weights, self.targets)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        h = tokens.flatten(1)
        mlp = self.proj2(dropout(F.relu(self.proj1(h)), self.out_dropout, self.training))
        return self.out(mlp + h)
