"""ML-ECS's unified multimodal model: encoders → projectors → fusion → soft prompt → LM.

For a batch with modalities M_j (each (B, T_m, D_m) features):

    z_m = mean_t GELU(W_m x_{m,t})                    modality encoder E_m         (B, enc)
    h_m = P_m z_m                                      projector, eq. 4             (B, d)
    s   = f_u(h)  = GELU(W_u LN(mean_{m∈M_j} h_m))     fusion layer, eq. 9          (B, d)
    p   = [f_spg(s) ; embed(prompt) ; embed(answer)]   soft prompt + text, eq. 10
    f_spg(s) = W₂ Dropout(GELU(W₁ s))  reshaped to (B, n_soft, H)

and the causal LM (with LoRA) reads ``p`` as ``inputs_embeds``. The supervised loss
L_lb is the LM's cross-entropy on the answer tokens only. h_m and s live in the same
d-dimensional space, so the server's fused representation s' can serve as the anchor of
the volume contrastive loss against a device's h_m (eqs. 7–8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100
"""Label id the LM loss skips (soft prompt and instruction positions)."""
ENCODERS = "encoders."
"""Name prefix of the modality encoders' parameters in a :class:`UnifiedModel`."""


class ModalityEncoder(nn.Module):
    """E_m: per-step linear + GELU, mean over time: (B, T, D) → (B, width)."""

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x)).mean(dim=1)


def answer_ids(tokenizer: Any, answers: Sequence[str]) -> list[torch.Tensor]:
    """The token ids of each answer text as the LM reads it: `` {answer}<eos>``. A batch's
    sequences are as long as its longest answer's (so are its FLOPs)."""
    eos = tokenizer.eos_token
    return [torch.tensor(tokenizer(f" {a}{eos}")["input_ids"], dtype=torch.long) for a in answers]


class UnifiedModel(nn.Module):
    """Encoders, projectors, fusion and soft-prompt generator around a causal ``lm``.

    ``feature_dims``: modality → D_m. ``lm``: a Hugging Face causal LM (LoRA-wrapped or
    not) whose input embedding width is H. ``answers``: the label texts, class order.
    """

    def __init__(
        self,
        feature_dims: Mapping[str, int],
        lm: nn.Module,
        tokenizer,
        answers: Sequence[str],
        prompt: str,
        encoder_width: int = 64,
        shared_dim: int = 64,
        prompt_hidden: int = 256,
        soft_tokens: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.modalities = tuple(feature_dims)
        hidden = lm.get_input_embeddings().embedding_dim
        self.encoders = nn.ModuleDict(
            {m: ModalityEncoder(d, encoder_width) for m, d in feature_dims.items()}
        )
        self.projectors = nn.ModuleDict(
            {m: nn.Linear(encoder_width, shared_dim) for m in feature_dims}
        )
        self.fusion_norm = nn.LayerNorm(shared_dim)
        self.fusion = nn.Linear(shared_dim, shared_dim)
        self.prompt_in = nn.Linear(shared_dim, prompt_hidden)
        self.prompt_out = nn.Linear(prompt_hidden, soft_tokens * hidden)
        self.dropout = dropout
        self.soft_tokens = soft_tokens
        self.lm = lm
        self.tokenizer = tokenizer
        self.prompt_ids = torch.tensor(tokenizer(prompt)["input_ids"], dtype=torch.long)
        self.answer_ids = answer_ids(tokenizer, answers)

    def represent(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """h_m (B, d) for every modality given."""
        unknown = set(features) - set(self.modalities)
        if unknown or not features:
            raise ValueError(f"modalities {sorted(features)}; model has {list(self.modalities)}")
        return {m: self.projectors[m](self.encoders[m](x)) for m, x in features.items()}

    def fuse(self, reps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """s = f_u(h) (B, d): the fused representation of the modalities given."""
        mean = torch.stack(list(reps.values())).mean(dim=0)
        return F.gelu(self.fusion(self.fusion_norm(mean)))

    def soft_prompt(self, fused: torch.Tensor) -> torch.Tensor:
        """f_spg(s): (B, n_soft, H)."""
        h = F.dropout(F.gelu(self.prompt_in(fused)), self.dropout, self.training)
        return self.prompt_out(h).view(fused.shape[0], self.soft_tokens, -1)

    def _inputs(
        self, fused: torch.Tensor, answers: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """inputs_embeds (B, n_soft + prompt [+ answer], H) and LM labels (or None)."""
        batch = fused.shape[0]
        embed = self.lm.get_input_embeddings()
        device = fused.device
        prompt = embed(self.prompt_ids.to(device)).expand(batch, -1, -1)
        parts = [self.soft_prompt(fused), prompt]
        if answers is None:
            return torch.cat(parts, dim=1), None
        longest = max(len(a) for a in answers)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((batch, longest), pad, dtype=torch.long, device=device)
        labels = torch.full((batch, parts[0].shape[1] + len(self.prompt_ids) + longest), IGNORE)
        start = labels.shape[1] - longest
        for i, answer in enumerate(answers):
            ids[i, : len(answer)] = answer
            labels[i, start : start + len(answer)] = answer
        parts.append(embed(ids))
        return torch.cat(parts, dim=1), labels.to(device)

    def lm_loss(self, fused: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_lb: the LM's cross-entropy on the answer tokens of class ``labels`` (B,)."""
        answers = [self.answer_ids[int(y)] for y in labels]
        embeds, targets = self._inputs(fused, answers)
        return self.lm(inputs_embeds=embeds, labels=targets).loss

    def logits(self, fused: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The LM's output logits (B, L, vocab) on soft prompt + prompt + answer."""
        embeds, _ = self._inputs(fused, [self.answer_ids[int(y)] for y in labels])
        return self.lm(inputs_embeds=embeds).logits

    @torch.no_grad()
    def generate(self, features: Mapping[str, torch.Tensor], max_new_tokens: int) -> list[str]:
        """Greedy decoding of at most ``max_new_tokens`` tokens per sample; each text cut
        at its first ``<eos>`` and stripped."""
        fused = self.fuse(self.represent(features))
        embeds, _ = self._inputs(fused, None)
        embed = self.lm.get_input_embeddings()
        eos_id = self.tokenizer.eos_token_id
        generated: list[torch.Tensor] = []
        done = torch.zeros(fused.shape[0], dtype=torch.bool)
        for _ in range(max_new_tokens):
            next_ids = self.lm(inputs_embeds=embeds).logits[:, -1].argmax(dim=-1)
            generated.append(next_ids)
            done |= next_ids.cpu() == eos_id
            if bool(done.all()):
                break
            embeds = torch.cat([embeds, embed(next_ids)[:, None]], dim=1)
        eos = self.tokenizer.eos_token
        texts = self.tokenizer.batch_decode(
            torch.stack(generated, dim=1), skip_special_tokens=False
        )
        return [t.split(eos)[0].strip() for t in texts]

    @torch.no_grad()
    def classify(
        self, features: Mapping[str, torch.Tensor], max_new_tokens: int = 4
    ) -> torch.Tensor:
        """:meth:`generate` of at most ``max_new_tokens`` tokens, read back as a class:
        the answer whose text the generated text equals (ignoring spaces and ``<eos>``),
        else −1."""
        eos = self.tokenizer.eos_token
        keys = {
            self.tokenizer.decode(a).replace(eos, "").strip(): c
            for c, a in enumerate(self.answer_ids)
        }
        texts = self.generate(features, max_new_tokens)
        return torch.tensor([keys.get(t, -1) for t in texts])
