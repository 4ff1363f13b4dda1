"""The learning side of the ML-ECS paper's three other baselines (§4.1): Co-PLMs, FediLoRA
and FedMLLM. Pure tensor maths and training stages; the protocol is
:mod:`simnet.protocols.mlecs_baselines`, docs/mlecs.md states every rule as an equation.

* **Co-PLMs** (Liu et al. 2025, ref. [24]) — :func:`mutual_learning_loss` (SAML: each
  model's L_lb plus the pooled KL toward the other, eq. 14's :func:`~learning.losses.pooled_kl`),
  :meth:`MlecsBaselines.co_plms_device_job` (a device's SLM and its distilled proxy model
  on private data; the SLM's L_lb is its domain-specific tuning, DST) and
  :meth:`MlecsBaselines.co_plms_server_job` (the aggregated proxy and the server's LLM on
  the public set).
* **FediLoRA** (Yang et al. 2025, ref. [40]) — :func:`dimension_wise_average` (each rank
  dimension averaged over the clients that have it), :func:`rank_slice` (a client's share
  of the global LoRA), :func:`layer_edit` (a local LoRA layer whose cosine similarity with
  the global one is below a threshold is replaced by it), :func:`editing_flops`.
* **FedMLLM** (Xu et al. 2024, ref. [36]) — :data:`DEBIAS` (the prompt's debiasing
  sentence), :func:`regulariser_weight` (λ_j = λ·(1 − |M_j| / |M|)),
  :func:`intermediate_layers`, :func:`proximal_term` and
  :meth:`MlecsBaselines.fedmllm_job` (L_lb + the proximal term on the intermediate layers'
  LoRA toward the received global LoRA).

States are :meth:`~learning.mlecs.Mlecs.state` dicts (the unified model's parameter
names); a LoRA key holds ``lora_A`` (rank on dim 0, (r, in)) or ``lora_B`` (rank on dim 1,
(out, r)).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch
from torch import Tensor

from learning.data.dataset import MultimodalSplit
from learning.jobs import Job
from learning.llm.unified import ENCODERS, UnifiedModel
from learning.losses import pooled_kl
from learning.mlecs import Mlecs, MlecsSettings, State

METHODS = ("co_plms", "fedilora", "fedmllm")
"""The baselines of this module (``workload.method``)."""
FEDILORA_RANK = 24
"""FediLoRA's device LoRA rank (the ML-ECS paper's setting; ML-ECS uses 8)."""
EDIT_THRESHOLD = 0.5
"""FediLoRA's editing threshold τ: a local layer with cos < τ to the global one is replaced."""
EDIT_FLOPS_PER_ELEMENT = 6
"""FLOPs of the editing's similarities per local LoRA element: three multiply-adds (the dot
product and the two squared norms)."""
DEBIAS = " Ignore which modalities are missing."
"""FedMLLM's prompt-based debiasing: the sentence appended to the instruction prompt."""
FEDMLLM_LAMBDA = 1.0
"""FedMLLM's base regularisation strength λ (scaled by the missing-modality rate)."""
CONNECTOR = ("projectors.", "fusion_norm.", "fusion.", "prompt_in.", "prompt_out.")
"""Name prefixes of the connector between the encoders and the LM: modality projectors,
fusion layer, soft-prompt generator (FedMLLM's auxiliary parameters)."""
_LAYER = re.compile(r"\.(?:h|layers)\.(\d+)\.")
"""A transformer block's index in a parameter name (GPT-2 ``h.i``, LLaMA/Qwen2 ``layers.i``)."""


def is_lora(key: str) -> bool:
    return "lora_A" in key or "lora_B" in key


def rank_dim(key: str) -> int:
    """The rank axis of a LoRA tensor: 0 for ``lora_A`` (r, in), 1 for ``lora_B`` (out, r)."""
    if "lora_A" in key:
        return 0
    if "lora_B" in key:
        return 1
    raise ValueError(f"not a LoRA tensor: {key}")


def lora_layers(keys: Sequence[str]) -> dict[str, list[str]]:
    """The LoRA keys of ``keys`` grouped by layer (the adapted module: the name up to
    ``.lora_A`` / ``.lora_B``), in sorted order."""
    layers: dict[str, list[str]] = {}
    for key in sorted(keys):
        if is_lora(key):
            layers.setdefault(re.split(r"\.lora_[AB]", key)[0], []).append(key)
    return layers


# ------------------------------------------------------------------------------- Co-PLMs
def mutual_learning_loss(lb_a: Tensor, lb_b: Tensor, logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """SAML: L = L_lb(a) + KL(b ‖ a) + L_lb(b) + KL(a ‖ b) on pooled logits
    (:func:`~learning.losses.pooled_kl`, teachers detached: each KL trains its student
    only). Structure-agnostic: only the models' output distributions meet."""
    return lb_a + pooled_kl(logits_a, logits_b) + lb_b + pooled_kl(logits_b, logits_a)


def lm_loss_and_logits(model: UnifiedModel, fused: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """L_lb and the logits of one LM forward pass (the two :meth:`UnifiedModel.lm_loss`
    and :meth:`UnifiedModel.logits` would run it twice)."""
    embeds, targets = model._inputs(fused, [model.answer_ids[int(y)] for y in labels])
    out = model.lm(inputs_embeds=embeds, labels=targets)
    return out.loss, out.logits


# ------------------------------------------------------------------------------ FediLoRA
def dimension_wise_average(states: Sequence[State], weights: Sequence[float]) -> State:
    """FediLoRA's aggregation. A LoRA tensor's rank dimension k is averaged over the states
    whose rank exceeds k: G[k] = Σ_{j: r_j > k} w_j·L_j[k] / Σ_{j: r_j > k} w_j (rows of
    ``lora_A``, columns of ``lora_B``; the result has the largest rank). Any other key is
    the weighted average over the states holding it. With equal ranks it is the weighted
    average; zero-padding the smaller ranks instead would scale dimension k by
    Σ_{r_j > k} w_j / Σ_j w_j (dilution)."""
    if not states or len(states) != len(weights) or min(weights) < 0:
        raise ValueError(f"need one weight >= 0 per state (got {len(states)}, {list(weights)})")
    out: State = {}
    for key in sorted({k for s in states for k in s}):
        holders = [(s[key], float(w)) for s, w in zip(states, weights, strict=True) if key in s]
        if not is_lora(key):
            total = sum(w for _, w in holders)
            out[key] = sum(t * (w / total) for t, w in holders)
            continue
        dim = rank_dim(key)
        rank = max(t.shape[dim] for t, _ in holders)
        shape = list(holders[0][0].shape)
        shape[dim] = rank
        acc, mass = torch.zeros(shape), torch.zeros(rank)
        for t, w in holders:
            r = t.shape[dim]
            acc.narrow(dim, 0, r).add_(t, alpha=w)
            mass[:r] += w
        if bool((mass <= 0).any()):
            raise ValueError(f"{key}: a rank dimension has no positive weight")
        out[key] = acc / (mass[:, None] if dim == 0 else mass[None, :])
    return out


def rank_slice(state: State, like: Mapping[str, Tensor]) -> State:
    """The keys of ``like`` from ``state``, each LoRA tensor cut to ``like``'s rank (a
    client of rank r gets the first r dimensions of the global LoRA)."""
    out = {}
    for key, mine in like.items():
        value = state[key]
        if is_lora(key):
            value = value.narrow(rank_dim(key), 0, mine.shape[rank_dim(key)])
        out[key] = value.clone()
    return out


def _cosine(a: Tensor, b: Tensor) -> float:
    """cos(a, b) of two flattened tensors; 0 if either is zero."""
    norms = float(a.norm() * b.norm())
    return float(a @ b) / norms if norms > 0 else 0.0


def layer_edit(
    local: State, received: Mapping[str, Tensor], threshold: float = EDIT_THRESHOLD
) -> tuple[State, list[str]]:
    """FediLoRA's layer-wise model editing: for every LoRA layer ℓ (its A and B), with u_ℓ
    the local layer's tensors flattened and concatenated and g_ℓ the received global's (cut
    to the local rank), the layer becomes g_ℓ where cos(u_ℓ, g_ℓ) < ``threshold`` and stays
    u_ℓ otherwise; every other key of ``local`` is kept. Returns the new state and the
    replaced layers."""
    out = dict(local)
    replaced = []
    mine = {k: v for k, v in local.items() if is_lora(k)}
    global_ = rank_slice(dict(received), mine)
    for layer, keys in lora_layers(list(mine)).items():
        u = torch.cat([local[k].flatten() for k in keys])
        g = torch.cat([global_[k].flatten() for k in keys])
        if _cosine(u, g) < threshold:
            out.update({k: global_[k] for k in keys})
            replaced.append(layer)
    return out, replaced


def editing_flops(local: State) -> int:
    """FLOPs of :func:`layer_edit` on ``local``: :data:`EDIT_FLOPS_PER_ELEMENT` per LoRA
    element (the replacement itself is a copy)."""
    return EDIT_FLOPS_PER_ELEMENT * sum(v.numel() for k, v in local.items() if is_lora(k))


# ------------------------------------------------------------------------------- FedMLLM
def regulariser_weight(lam: float, held: int, total: int) -> float:
    """λ_j = λ·(1 − |M_j| / |M|): the more modalities a device lacks, the stronger it is
    held to the global model (0 for a device with every modality)."""
    if not 0 < held <= total:
        raise ValueError(f"need 0 < held <= total, got {held}, {total}")
    return lam * (1.0 - held / total)


def intermediate_layers(n_layers: int) -> range:
    """The intermediate transformer blocks: all but the first and the last ⌊L / 4⌋ (every
    block when L < 4: a 2-layer LM has no block to spare)."""
    cut = n_layers // 4
    return range(cut, n_layers - cut)


def regularised_keys(keys: Sequence[str]) -> list[str]:
    """The LoRA keys of the intermediate blocks (:func:`intermediate_layers` of the blocks
    the keys name)."""
    blocks = {k: int(m.group(1)) for k in keys if is_lora(k) and (m := _LAYER.search(k))}
    if not blocks:
        return []
    middle = intermediate_layers(max(blocks.values()) + 1)
    return sorted(k for k, b in blocks.items() if b in middle)


def proximal_term(params: Mapping[str, Tensor], anchor: Mapping[str, Tensor], lam: float) -> Tensor:
    """λ_j·Σ_{k ∈ I} ‖θ_k − θ_k^g‖²  over the intermediate LoRA keys I present in ``anchor``
    (the received global LoRA; gradients reach ``params`` only)."""
    keys = [k for k in regularised_keys(list(anchor)) if k in params]
    if lam == 0 or not keys:
        return torch.zeros(())
    return lam * sum((params[k] - anchor[k].detach()).pow(2).sum() for k in keys)


# ------------------------------------------------------------------------------ learner
def baseline_settings(method: str, settings: MlecsSettings) -> MlecsSettings:
    """``settings`` as ``method`` runs them: FediLoRA's LoRA rank :data:`FEDILORA_RANK`,
    FedMLLM's debiasing sentence appended to the prompt (the tokenizer and warm-up read
    it too); the others unchanged."""
    if method == "fedilora":
        return replace(settings, lora_r=FEDILORA_RANK)
    if method == "fedmllm":
        return replace(settings, prompt=settings.prompt + DEBIAS)
    return settings


class MlecsBaselines(Mlecs):
    """:class:`~learning.mlecs.Mlecs` with the baselines' stages and jobs."""

    def __reduce__(self) -> tuple[type[MlecsBaselines], tuple]:
        return MlecsBaselines, (self.dims, self.settings, self.seed)

    def _proxy(self, modalities: Sequence[str], state: State) -> UnifiedModel:
        """A second scratch SLM-backbone model over ``modalities`` (Co-PLMs' proxy trains
        beside the device's SLM), set to ``state``."""
        key = ("proxy", tuple(modalities))
        if key not in self._scratch:
            self._scratch[key] = self.model("slm", modalities, seed=0)
        model = self._scratch[key]
        model.load_state_dict(state, strict=False)
        return model

    def _saml_loss(self, batch, a: UnifiedModel, b: UnifiedModel) -> Tensor:
        features, labels = batch
        lb_a, logits_a = lm_loss_and_logits(a, a.fuse(a.represent(features)), labels)
        lb_b, logits_b = lm_loss_and_logits(b, b.fuse(b.represent(features)), labels)
        return mutual_learning_loss(lb_a, lb_b, logits_a, logits_b)

    # ------------------------------------------------------------------- Co-PLMs
    def co_plms_device_job(
        self, modalities: Sequence[str], state: State, proxy: State, private: MultimodalSplit,
        seed: int,
    ) -> Job:  # fmt: skip
        """:meth:`co_plms_device`: SAML of the device's SLM (``state``) and its proxy on
        ``private``."""
        mods = tuple(modalities)
        models = [self._scratch_model("slm", mods), self._proxy(mods, proxy)]
        flops = self._flops("saml_device", models, self._saml_loss, private, seed)
        return Job(self, "co_plms_device", (mods, state, proxy, private, seed), flops)

    def co_plms_device(
        self, modalities: tuple[str, ...], state: State, proxy: State, private: MultimodalSplit,
        seed: int,
    ) -> tuple[State, State]:  # fmt: skip
        """The new states of the device's SLM and its proxy."""
        slm, dpm = self.loaded("slm", modalities, state), self._proxy(modalities, proxy)
        self._train([slm, dpm], self._saml_loss, private, seed)
        return self.state(slm), self.state(dpm)

    def co_plms_server_job(self, llm: State, proxy: State, data: MultimodalSplit, seed: int) -> Job:
        """:meth:`co_plms_server`: SAML of the server's LLM and the aggregated proxy on the
        public ``data``."""
        mods = data.modalities
        models = [self._scratch_model("llm", mods), self._scratch_model("slm", mods)]
        flops = self._flops("saml_server", models, self._saml_loss, data, seed)
        return Job(self, "co_plms_server", (llm, proxy, data, seed), flops)

    def co_plms_server(
        self, llm: State, proxy: State, data: MultimodalSplit, seed: int
    ) -> tuple[State, State]:
        """The new states of the server's LLM and proxy."""
        big = self.loaded("llm", data.modalities, llm)
        small = self.loaded("slm", data.modalities, proxy)
        self._train([big, small], self._saml_loss, data, seed)
        return self.state(big), self.state(small)

    # ------------------------------------------------------------------- FedMLLM
    def _fedmllm_loss(self, anchor: State, lam: float):
        def loss(batch, model: UnifiedModel) -> Tensor:
            params = dict(model.named_parameters())
            return self._lb(batch, model) + proximal_term(params, anchor, lam)

        return loss

    def fedmllm_job(
        self, modalities: Sequence[str], state: State, anchor: State, lam: float,
        private: MultimodalSplit, seed: int,
    ) -> Job:  # fmt: skip
        """:meth:`fedmllm`: local training with the proximal term toward ``anchor`` (the
        received global LoRA; empty in round 1) at strength ``lam``."""
        mods = tuple(modalities)
        model = self._scratch_model("slm", mods)
        loss = self._fedmllm_loss(anchor, lam)
        flops = self._flops("fedmllm", [model], loss, private, seed)
        return Job(self, "fedmllm", (mods, state, anchor, lam, private, seed), flops)

    def fedmllm(
        self, modalities: tuple[str, ...], state: State, anchor: State, lam: float,
        private: MultimodalSplit, seed: int,
    ) -> State:  # fmt: skip
        """The device's new state after FedMLLM's local training."""
        model = self.loaded("slm", modalities, state)
        self._train([model], self._fedmllm_loss(anchor, lam), private, seed)
        return self.state(model)


def shared_keys(method: str, state: State) -> list[str]:
    """What a device of ``method`` uploads from its (proxy's) state: Co-PLMs the proxy's
    every trainable tensor (LoRA, encoders, connector); FediLoRA the LoRA; FedMLLM the LoRA
    and the connector (:data:`CONNECTOR`)."""
    if method == "co_plms":
        return sorted(state)
    if method == "fedilora":
        return sorted(k for k in state if is_lora(k))
    if method == "fedmllm":
        return sorted(k for k in state if is_lora(k) or k.startswith(CONNECTOR))
    raise ValueError(f"not a baseline of this module: {method!r}")


__all__ = [
    "CONNECTOR",
    "DEBIAS",
    "ENCODERS",
    "METHODS",
    "MlecsBaselines",
    "baseline_settings",
    "dimension_wise_average",
    "editing_flops",
    "intermediate_layers",
    "layer_edit",
    "mutual_learning_loss",
    "proximal_term",
    "rank_slice",
    "regularised_keys",
    "regulariser_weight",
    "shared_keys",
]
