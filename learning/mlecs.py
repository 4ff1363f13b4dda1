"""The learning side of ML-ECS (Algorithm 1): what the devices and the server compute.

Each method trains a :class:`~learning.llm.unified.UnifiedModel` in place for a number of
AdamW steps and returns the FLOPs it spent (counted once per step shape by
:func:`~learning.flops.closure_flops`), so the simulator can charge compute time.

* :meth:`Mlecs.represent` — the server's fused omni-modal representations s' of the
  public set (eq. 9), the anchors of the devices' CCL.
* :meth:`Mlecs.ccl` — device CCL (eq. 11): L_lb + ½(L_A2O + L_O2A), anchor s', the
  device's own modality representations h_m as the others.
* :meth:`Mlecs.amt` — device AMT (eq. 12): L_lb on private data, encoders + LoRA only.
* :meth:`Mlecs.local` — the baselines' local training: L_lb, every trainable weight.
* :meth:`Mlecs.mma` — modality-aware aggregation (eq. 13): w_j = |M_j| / Σ_i |M_i|.
* :meth:`Mlecs.averaging_flops` — the FLOPs of a weighted average of states (MMA, and
  Multi-FedAvg's per-key averaging), in :class:`~learning.federated.Learner`'s convention.
* :meth:`Mlecs.se_ccl` — server SE-CCL (eqs. 15–16): a random anchor modality; LLM loss
  CCL + KL(LLM ← SLM), SLM loss L_lb + KL(SLM ← LLM) on pooled logits (eq. 14).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from learning.aggregation import weighted_average
from learning.data.dataset import MultimodalSplit
from learning.federated import AGGREGATE_FLOPS_PER_ELEMENT
from learning.flops import closure_flops
from learning.llm import (
    LLM_DEFAULT,
    SLM_DEFAULT,
    BackboneSpec,
    add_lora,
    build_backbone,
    build_tokenizer,
    lora_state,
)
from learning.llm.unified import ENCODERS, UnifiedModel
from learning.llm.warmup import warm_up
from learning.losses import pooled_kl, volume_contrastive_loss
from learning.metrics import classification_metrics

State = dict[str, torch.Tensor]
ANCHOR = "_anchor"


@dataclass(frozen=True)
class MlecsSettings:
    """Models and training of ML-ECS. ``answers``: the label texts (class order)."""

    answers: tuple[str, ...]
    prompt: str
    slm: BackboneSpec = SLM_DEFAULT
    llm: BackboneSpec = LLM_DEFAULT
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """LoRA's target modules per backbone (``slm``, ``llm``); absent: the family's default
    (``learning.llm.LORA_TARGETS``)."""
    shared_dim: int = 64
    soft_tokens: int = 4
    batch_size: int = 8
    steps: int = 10
    """AdamW steps per stage (CCL, AMT, SE-CCL) and round."""
    lr: float = 3e-3
    temperature: float = 0.1
    warmup_steps: int = 60
    vocab_size: int = 300


def _batches(split: MultimodalSplit, size: int, seed: int) -> Iterator[tuple[dict, torch.Tensor]]:
    """Endless shuffled mini-batches of ``split``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from split.batches(size, shuffle=True, generator=generator)


class Mlecs:
    """Tokenizer, warmed-up backbones and the stages of an ML-ECS round."""

    def __init__(self, feature_dims: Mapping[str, int], settings: MlecsSettings, seed: int) -> None:
        self.dims = dict(feature_dims)
        self.settings = settings
        self.seed = seed
        texts = [settings.prompt, *(f"{settings.prompt} {a}<eos>" for a in settings.answers)]
        self.tokenizer = build_tokenizer(texts, settings.vocab_size)
        self.bases = {}
        for name, spec in (("slm", settings.slm), ("llm", settings.llm)):
            base = build_backbone(spec, len(self.tokenizer), seed)
            warm_up(base, self.tokenizer, texts[1:], settings.warmup_steps, seed=seed)
            self.bases[name] = base

    def model(self, backbone: str, modalities: Sequence[str], seed: int) -> UnifiedModel:
        """A unified model over ``modalities`` on a copy of the warmed ``backbone``
        (``slm`` or ``llm``) with fresh LoRA and connector weights drawn from ``seed``."""
        s = self.settings
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            lm = add_lora(
                copy.deepcopy(self.bases[backbone]),
                s.lora_r,
                s.lora_alpha,
                s.lora_dropout,
                list(s.lora_targets[backbone]) if backbone in s.lora_targets else None,
                seed=seed,
            )
            return UnifiedModel(
                {m: self.dims[m] for m in modalities}, lm, self.tokenizer, s.answers, s.prompt,
                shared_dim=s.shared_dim, soft_tokens=s.soft_tokens,
            )  # fmt: skip

    def _train(
        self,
        name: str,
        models: Sequence[nn.Module],
        loss_fn,
        data,
        seed: int,
        per_step: Sequence | None = None,
    ) -> int:
        """``steps`` AdamW steps of ``loss_fn(batch, *models)`` over the trainable
        parameters of ``models``; returns their FLOPs. ``batch`` is ``(features, labels)``,
        or ``(features, labels, per_step[i])`` at step ``i`` when ``per_step`` is given.

        ``loss_fn`` must be a pure function of its arguments (dropout aside, which draws
        from torch's RNG, seeded here): it is also called, once per step shape, by
        :func:`~learning.flops.closure_flops` only while the FLOP cache is cold, so any
        other random choice inside it would depend on what ran before in the process.
        Draw such choices up front from ``seed`` and pass them as ``per_step``."""
        params = [p for m in models for p in m.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.settings.lr)
        batches = _batches(data, self.settings.batch_size, seed)
        flops = 0
        for m in models:
            m.train()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for i in range(self.settings.steps):
                batch = next(batches)
                key = (name, len(batch[1]), tuple(batch[0]))
                if per_step is not None:
                    batch = (*batch, per_step[i])
                flops += closure_flops(key, lambda *ms, b=batch: loss_fn(b, *ms), models)
                loss = loss_fn(batch, *models)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
        for m in models:
            m.eval()
        return flops

    @torch.no_grad()
    def represent(self, model: UnifiedModel, data: MultimodalSplit) -> tuple[torch.Tensor, int]:
        """s' (N, d) for every sample of ``data`` (all of the model's modalities), FLOPs."""
        model.eval()
        fused = model.fuse(model.represent(data.features))
        flops = closure_flops(
            ("represent", len(data)),
            lambda m: m.fuse(m.represent(data.features)).sum(),
            [model],
            None,
        )
        return fused, flops

    def ccl(
        self, model: UnifiedModel, data: MultimodalSplit, anchors: torch.Tensor, seed: int
    ) -> int:
        """Device CCL on its public share ``data`` (its modalities) with anchors s'."""
        # the anchors ride along with their samples as one more (N, 1, d) "modality"
        split = MultimodalSplit({**data.features, ANCHOR: anchors[:, None]}, data.labels)
        temperature = self.settings.temperature

        def loss(batch, m):
            features, labels = batch
            reps = m.represent({k: v for k, v in features.items() if k != ANCHOR})
            task = m.lm_loss(m.fuse(reps), labels)
            others = torch.stack(list(reps.values()), dim=1)
            contrast = volume_contrastive_loss(features[ANCHOR][:, 0], others, temperature)
            return task + contrast["total"]

        return self._train("ccl", [model], loss, split, seed)

    def local(self, model: UnifiedModel, data: MultimodalSplit, seed: int) -> int:
        """Plain local training on ``data`` (the baselines): L_lb, everything trainable."""
        return self._train("local", [model], self._lb, data, seed)

    @staticmethod
    def _lb(batch, model: UnifiedModel) -> torch.Tensor:
        features, labels = batch
        return model.lm_loss(model.fuse(model.represent(features)), labels)

    def amt(self, model: UnifiedModel, data: MultimodalSplit, seed: int) -> int:
        """Device AMT on private ``data``: L_lb, only encoders and LoRA trainable."""
        frozen = [
            p for n, p in model.named_parameters()
            if p.requires_grad and not (n.startswith(ENCODERS) or "lora_" in n)
        ]  # fmt: skip
        for p in frozen:
            p.requires_grad_(False)
        try:
            return self._train("amt", [model], self._lb, data, seed)
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def mma(self, states: Sequence[State], modality_counts: Sequence[int]) -> State:
        """Eq. 13: Σ_j w_j·φ_j with w_j = |M_j| / Σ_i |M_i|."""
        return weighted_average(states, [float(c) for c in modality_counts])

    @staticmethod
    def averaging_flops(states: Sequence[State]) -> int:
        """FLOPs of averaging ``states`` key by key, each key over the states holding it
        (MMA; Multi-FedAvg's per-key averaging): ``AGGREGATE_FLOPS_PER_ELEMENT`` (one
        multiply-add) per element and state, as :meth:`~learning.federated.Learner.aggregate`
        counts. For n states of E elements each: 2·E·n."""
        elements = sum(v.numel() for state in states for v in state.values())
        return AGGREGATE_FLOPS_PER_ELEMENT * elements

    def se_ccl(self, llm: UnifiedModel, slm: UnifiedModel, data: MultimodalSplit, seed: int) -> int:
        """Server SE-CCL on the public set: eqs. 15 (LLM) and 16 (SLM), trained together.
        The anchor modality of every step is drawn up front from ``seed``."""
        rng = np.random.default_rng(seed)
        modalities = list(data.features)
        steps = self.settings.steps
        anchors = [modalities[int(rng.integers(len(modalities)))] for _ in range(steps)]
        temperature = self.settings.temperature

        def loss(batch, big, small):
            features, labels, anchor_modality = batch
            reps_l, reps_s = big.represent(features), small.represent(features)
            fused_l, fused_s = big.fuse(reps_l), small.fuse(reps_s)
            others = torch.stack([h for m, h in reps_l.items() if m != anchor_modality], dim=1)
            ccl = (
                big.lm_loss(fused_l, labels)
                + volume_contrastive_loss(reps_l[anchor_modality], others, temperature)["total"]
            )
            logits_l, logits_s = big.logits(fused_l, labels), small.logits(fused_s, labels)
            # Both backbones are built on self.tokenizer: compare token by token (eq. 14).
            kl_s = pooled_kl(logits_s, logits_l, shared_vocab=True)
            slm_loss = small.lm_loss(fused_s, labels) + kl_s
            return ccl + pooled_kl(logits_l, logits_s, shared_vocab=True) + slm_loss

        return self._train("se_ccl", [llm, slm], loss, data, seed, per_step=anchors)

    @staticmethod
    def lora(model: UnifiedModel) -> State:
        """The LoRA tensors of ``model``'s LM (what ML-ECS transmits)."""
        return lora_state(model.lm)

    @staticmethod
    def evaluate(model: UnifiedModel, data: MultimodalSplit) -> dict[str, float]:
        """Accuracy and F1 of the generated answers (an unreadable answer is wrong)."""
        model.eval()
        predicted = torch.cat([model.classify(f) for f, _ in data.batches(64)])
        return classification_metrics(predicted.numpy(), data.labels.numpy())
