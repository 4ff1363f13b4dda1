"""The learning side of ML-ECS (Algorithm 1): what the devices and the server compute.

The stages train a :class:`~learning.llm.unified.UnifiedModel` in place for a number of
AdamW steps; each has a ``*_flops`` twin that counts its FLOPs before it runs (once per
step shape, :func:`~learning.flops.closure_flops`). The simulator runs the stages as
:class:`~learning.jobs.Job` s on model *states* — the trainable tensors, all that differs
between two models of the same backbone and modalities — planned by
:meth:`Mlecs.device_update_job`, :meth:`Mlecs.anchors_job` and
:meth:`Mlecs.server_update_job`, so any executor can run them (docs/design.md, rule 4).

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from learning.aggregation import weighted_average
from learning.data.dataset import MultimodalSplit
from learning.federated import AGGREGATE_FLOPS_PER_ELEMENT
from learning.flops import closure_flops
from learning.jobs import Job
from learning.llm import (
    LLM_DEFAULT,
    SLM_DEFAULT,
    BackboneSpec,
    add_lora,
    build_backbone,
    build_tokenizer,
    lora_state,
)
from learning.llm.unified import ENCODERS, UnifiedModel, answer_ids
from learning.llm.warmup import warm_up
from learning.losses import pooled_kl, volume_contrastive_loss
from learning.metrics import classification_metrics
from learning.text_metrics import bert_scorer, rouge_lsum

State = dict[str, torch.Tensor]
ANCHOR = "_anchor"


@dataclass(frozen=True)
class MlecsSettings:
    """Models and training of ML-ECS. ``answers``: the texts a label indexes — the class
    names (class order) of a ``classify`` task, every sample's reference summary of a
    ``generate`` task."""

    answers: tuple[str, ...]
    prompt: str
    task: Literal["classify", "generate"] = "classify"
    max_new_tokens: int | None = None
    """Longest generated answer in tokens, greedy decoding (``None``: 4 for ``classify``,
    the longest warm-up text's answer plus 8 for ``generate``)."""
    warmup_texts: tuple[str, ...] = ()
    """The texts the tokenizer and the backbones' warm-up learn from, each read as
    ``"{prompt} {text}<eos>"`` (empty: ``answers``); a generation task passes only its
    public training references, so no test reference is seen before evaluation."""
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


@dataclass(frozen=True)
class Evaluation:
    """A model's scores on a test set; for a ``generate`` task also what it wrote for
    each sample (in order)."""

    metrics: dict[str, float]
    generated: tuple[str, ...] = ()


def _batches(split: MultimodalSplit, size: int, seed: int) -> Iterator[tuple[dict, torch.Tensor]]:
    """Endless shuffled mini-batches of ``split``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from split.batches(size, shuffle=True, generator=generator)


class Mlecs:
    """Tokenizer, warmed-up backbones and the stages of an ML-ECS round.

    Pickled as its recipe (feature widths, settings, seed): a copy in another process
    warms up the same backbones. It keeps one scratch model per backbone and modality set
    and loads states into it (:meth:`loaded`); it runs one job at a time."""

    def __init__(self, feature_dims: Mapping[str, int], settings: MlecsSettings, seed: int) -> None:
        self.dims = dict(feature_dims)
        self.settings = settings
        self.seed = seed
        corpus = settings.warmup_texts or settings.answers
        texts = [settings.prompt, *(f"{settings.prompt} {a}<eos>" for a in corpus)]
        self.tokenizer = build_tokenizer(texts, settings.vocab_size)
        self._answer_lengths = [len(ids) for ids in answer_ids(self.tokenizer, settings.answers)]
        self.max_new_tokens = settings.max_new_tokens or (
            4 if settings.task == "classify"
            else max(len(ids) for ids in answer_ids(self.tokenizer, corpus)) + 8
        )  # fmt: skip
        self.bases = {}
        for name, spec in (("slm", settings.slm), ("llm", settings.llm)):
            base = build_backbone(spec, len(self.tokenizer), seed)
            warm_up(base, self.tokenizer, texts[1:], settings.warmup_steps, seed=seed)
            self.bases[name] = base
        self._scratch: dict[tuple[str, tuple[str, ...]], UnifiedModel] = {}

    def __reduce__(self) -> tuple[type[Mlecs], tuple]:
        return Mlecs, (self.dims, self.settings, self.seed)

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

    # ---------------------------------------------------------------- states
    @staticmethod
    def state(model: UnifiedModel) -> State:
        """Copies of ``model``'s trainable tensors: what sets it apart from every other
        model of its backbone and modalities (the frozen weights are the warmed base's)."""
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def fresh(self, backbone: str, modalities: Sequence[str], seed: int) -> State:
        """The state of :meth:`model` ``(backbone, modalities, seed)``."""
        return self.state(self.model(backbone, modalities, seed))

    def loaded(self, backbone: str, modalities: Sequence[str], state: State) -> UnifiedModel:
        """This learner's scratch model of ``backbone`` over ``modalities``, set to ``state``."""
        model = self._scratch_model(backbone, modalities)
        result = model.load_state_dict(state, strict=False)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        lacking = sorted(trainable & set(result.missing_keys))
        if lacking or result.unexpected_keys:
            raise KeyError(f"not a state of this model: lacks {lacking[:3]}, "
                           f"unknown {result.unexpected_keys[:3]}")  # fmt: skip
        return model

    def parameters(self, backbone: str, modalities: Sequence[str]) -> int:
        """Parameters of a model of ``backbone`` over ``modalities``."""
        return sum(p.numel() for p in self._scratch_model(backbone, modalities).parameters())

    def _scratch_model(self, backbone: str, modalities: Sequence[str]) -> UnifiedModel:
        """The scratch model of ``backbone`` over ``modalities``, whatever it holds (for
        what does not depend on the weights: shapes, FLOPs)."""
        key = (backbone, tuple(modalities))
        if key not in self._scratch:
            self._scratch[key] = self.model(backbone, modalities, seed=0)
        return self._scratch[key]

    # ------------------------------------------------------------------ jobs
    def device_update_job(
        self, modalities: Sequence[str], state: State, private: MultimodalSplit, seed: int,
        ccl: tuple[MultimodalSplit, torch.Tensor] | None = None,
    ) -> Job:  # fmt: skip
        """:meth:`device_update`: CCL on ``ccl = (public share, anchors)`` with seed
        ``seed − 1``, then AMT on ``private`` with ``seed``; without ``ccl``, plain local
        training on ``private`` (the baselines)."""
        model = self._scratch_model("slm", modalities)
        if ccl is None:
            flops = self.local_flops(model, private, seed)
        else:
            flops = self.ccl_flops(model, *ccl, seed - 1) + self.amt_flops(model, private, seed)
        args = (tuple(modalities), state, private, seed, ccl)
        return Job(self, "device_update", args, flops)

    def device_update(
        self, modalities: tuple[str, ...], state: State, private: MultimodalSplit, seed: int,
        ccl: tuple[MultimodalSplit, torch.Tensor] | None = None,
    ) -> State:  # fmt: skip
        """A device's training of a round (see :meth:`device_update_job`): the new state."""
        model = self.loaded("slm", modalities, state)
        if ccl is None:
            self.local(model, private, seed)
        else:
            self.ccl(model, *ccl, seed - 1)
            self.amt(model, private, seed)
        return self.state(model)

    def anchors_job(self, state: State, data: MultimodalSplit) -> Job:
        """:meth:`anchors`: s' of ``data`` by the LLM model at ``state``."""
        flops = self.represent_flops(self._scratch_model("llm", data.modalities), data)
        return Job(self, "anchors", (state, data), flops)

    def anchors(self, state: State, data: MultimodalSplit) -> torch.Tensor:
        """s' (N, d) of ``data`` by the LLM model at ``state`` (:meth:`represent`)."""
        return self.represent(self.loaded("llm", data.modalities, state), data)

    def server_update_job(self, llm: State, slm: State, data: MultimodalSplit, seed: int) -> Job:
        """:meth:`server_update`: SE-CCL of the server's two models on ``data``."""
        modalities = data.modalities
        big, small = self._scratch_model("llm", modalities), self._scratch_model("slm", modalities)
        flops = self.se_ccl_flops(big, small, data, seed)
        return Job(self, "server_update", (llm, slm, data, seed), flops)

    def server_update(
        self, llm: State, slm: State, data: MultimodalSplit, seed: int
    ) -> tuple[State, State]:
        """SE-CCL from ``llm`` and ``slm``: their new states."""
        big = self.loaded("llm", data.modalities, llm)
        small = self.loaded("slm", data.modalities, slm)
        self.se_ccl(big, small, data, seed)
        return self.state(big), self.state(small)

    # ---------------------------------------------------------------- stages
    def _flops(
        self, name: str, models: Sequence[nn.Module], loss_fn: Callable[..., torch.Tensor],
        data: MultimodalSplit, seed: int, per_step: Sequence | None = None,
    ) -> int:  # fmt: skip
        """FLOPs of :meth:`_train` with the same arguments: one
        :func:`~learning.flops.closure_flops` per step, on the batches training will draw,
        keyed by their shape (size, modalities, longest answer)."""
        batches = _batches(data, self.settings.batch_size, seed)
        flops = 0
        with _mode(models, train=True):  # as _train runs them
            for i in range(self.settings.steps):
                batch = next(batches)
                longest = max(self._answer_lengths[int(y)] for y in batch[1])
                key = (name, len(batch[1]), tuple(batch[0]), longest)
                if per_step is not None:
                    batch = (*batch, per_step[i])
                flops += closure_flops(key, lambda *ms, b=batch: loss_fn(b, *ms), models)
        return flops

    def _train(
        self, models: Sequence[nn.Module], loss_fn: Callable[..., torch.Tensor],
        data: MultimodalSplit, seed: int, per_step: Sequence | None = None,
    ) -> None:  # fmt: skip
        """``steps`` AdamW steps of ``loss_fn(batch, *models)`` over the trainable
        parameters of ``models``. ``batch`` is ``(features, labels)``, or ``(features,
        labels, per_step[i])`` at step ``i`` when ``per_step`` is given.

        ``loss_fn`` must be a pure function of its arguments (dropout aside, which draws
        from torch's RNG, seeded here): :meth:`_flops` also calls it, only while the FLOP
        cache is cold. Draw any other random choice up front from ``seed`` and pass it as
        ``per_step``."""
        params = [p for m in models for p in m.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.settings.lr)
        batches = _batches(data, self.settings.batch_size, seed)
        for m in models:
            m.train()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for i in range(self.settings.steps):
                batch = next(batches)
                if per_step is not None:
                    batch = (*batch, per_step[i])
                loss = loss_fn(batch, *models)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
        for m in models:
            m.eval()

    @torch.no_grad()
    def represent(self, model: UnifiedModel, data: MultimodalSplit) -> torch.Tensor:
        """s' (N, d) for every sample of ``data`` (all of the model's modalities)."""
        model.eval()
        return model.fuse(model.represent(data.features))

    @staticmethod
    def represent_flops(model: UnifiedModel, data: MultimodalSplit) -> int:
        """FLOPs of :meth:`represent` (a forward pass over ``data``, in eval mode)."""
        with torch.no_grad(), _mode([model], train=False):
            return closure_flops(
                ("represent", len(data)),
                lambda m: m.fuse(m.represent(data.features)).sum(),
                [model],
                None,
            )

    @staticmethod
    def _with_anchors(data: MultimodalSplit, anchors: torch.Tensor) -> MultimodalSplit:
        """``data`` with the anchors riding along as one more (N, 1, d) "modality"."""
        return MultimodalSplit({**data.features, ANCHOR: anchors[:, None]}, data.labels)

    def _ccl_loss(self, batch, m: UnifiedModel) -> torch.Tensor:
        features, labels = batch
        reps = m.represent({k: v for k, v in features.items() if k != ANCHOR})
        task = m.lm_loss(m.fuse(reps), labels)
        others = torch.stack(list(reps.values()), dim=1)
        anchor = features[ANCHOR][:, 0]
        contrast = volume_contrastive_loss(anchor, others, self.settings.temperature)
        return task + contrast["total"]

    def ccl(
        self, model: UnifiedModel, data: MultimodalSplit, anchors: torch.Tensor, seed: int
    ) -> None:
        """Device CCL on its public share ``data`` (its modalities) with anchors s'."""
        self._train([model], self._ccl_loss, self._with_anchors(data, anchors), seed)

    def ccl_flops(
        self, model: UnifiedModel, data: MultimodalSplit, anchors: torch.Tensor, seed: int
    ) -> int:
        """FLOPs of :meth:`ccl`."""
        split = self._with_anchors(data, anchors)
        return self._flops("ccl", [model], self._ccl_loss, split, seed)

    def local(self, model: UnifiedModel, data: MultimodalSplit, seed: int) -> None:
        """Plain local training on ``data`` (the baselines): L_lb, everything trainable."""
        self._train([model], self._lb, data, seed)

    def local_flops(self, model: UnifiedModel, data: MultimodalSplit, seed: int) -> int:
        """FLOPs of :meth:`local`."""
        return self._flops("local", [model], self._lb, data, seed)

    @staticmethod
    def _lb(batch, model: UnifiedModel) -> torch.Tensor:
        features, labels = batch
        return model.lm_loss(model.fuse(model.represent(features)), labels)

    def amt(self, model: UnifiedModel, data: MultimodalSplit, seed: int) -> None:
        """Device AMT on private ``data``: L_lb, only encoders and LoRA trainable."""
        with _amt_frozen(model):
            self._train([model], self._lb, data, seed)

    def amt_flops(self, model: UnifiedModel, data: MultimodalSplit, seed: int) -> int:
        """FLOPs of :meth:`amt` (the frozen weights get no update)."""
        with _amt_frozen(model):
            return self._flops("amt", [model], self._lb, data, seed)

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

    def _se_ccl_anchors(self, data: MultimodalSplit, seed: int) -> list[str]:
        """The anchor modality of every SE-CCL step, drawn from ``seed``."""
        rng = np.random.default_rng(seed)
        modalities = list(data.features)
        return [modalities[int(rng.integers(len(modalities)))] for _ in range(self.settings.steps)]

    def _se_ccl_loss(self, batch, big: UnifiedModel, small: UnifiedModel) -> torch.Tensor:
        features, labels, anchor_modality = batch
        temperature = self.settings.temperature
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

    def se_ccl(
        self, llm: UnifiedModel, slm: UnifiedModel, data: MultimodalSplit, seed: int
    ) -> None:
        """Server SE-CCL on the public set: eqs. 15 (LLM) and 16 (SLM), trained together.
        The anchor modality of every step is drawn up front from ``seed``."""
        anchors = self._se_ccl_anchors(data, seed)
        self._train([llm, slm], self._se_ccl_loss, data, seed, per_step=anchors)

    def se_ccl_flops(
        self, llm: UnifiedModel, slm: UnifiedModel, data: MultimodalSplit, seed: int
    ) -> int:
        """FLOPs of :meth:`se_ccl`."""
        anchors = self._se_ccl_anchors(data, seed)
        return self._flops("se_ccl", [llm, slm], self._se_ccl_loss, data, seed, anchors)

    @staticmethod
    def lora(model: UnifiedModel) -> State:
        """The LoRA tensors of ``model``'s LM (what ML-ECS transmits)."""
        return lora_state(model.lm)

    def lora_of(self, backbone: str, modalities: Sequence[str], state: State) -> State:
        """:meth:`lora` of the model of ``backbone`` over ``modalities`` at ``state``."""
        return self.lora(self.loaded(backbone, modalities, state))

    def evaluate(self, model: UnifiedModel, data: MultimodalSplit) -> Evaluation:
        """``classify``: accuracy and F1 of the generated answers (an unreadable answer is
        wrong). ``generate``: mean Rouge-LSum and rescaled BERTScore (absent when the
        encoder cannot be loaded) of greedy generations against the references, and the
        generations."""
        model.eval()
        batches = data.batches(64)
        if self.settings.task == "classify":
            predicted = torch.cat([model.classify(f, self.max_new_tokens) for f, _ in batches])
            return Evaluation(classification_metrics(predicted.numpy(), data.labels.numpy()))
        texts = [t for f, _ in batches for t in model.generate(f, self.max_new_tokens)]
        references = [self.settings.answers[int(y)] for y in data.labels]
        metrics = {"rouge_lsum": float(rouge_lsum(texts, references).mean())}
        scorer = bert_scorer(self.settings.answers, seed=self.seed)
        if scorer is not None:
            metrics["bertscore"] = float(scorer(texts, references).mean())
        return Evaluation(metrics, tuple(texts))


@contextmanager
def _amt_frozen(model: UnifiedModel) -> Iterator[None]:
    """AMT's trainable set: everything but the encoders and LoRA frozen for the block."""
    frozen = [
        p for n, p in model.named_parameters()
        if p.requires_grad and not (n.startswith(ENCODERS) or "lora_" in n)
    ]  # fmt: skip
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


@contextmanager
def _mode(models: Sequence[nn.Module], train: bool) -> Iterator[None]:
    """``models`` in train (or eval) mode for the block; every submodule's mode restored
    after."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.train(train)
    try:
        yield
    finally:
        for m, mode in modes:
            m.train(mode)
