"""Local training and evaluation loops: seeded, CPU by default, CUDA if asked.

Losses follow the references: L1 for sentiment regression (MulT), cross-entropy for
classification. A device that lacks a modality trains on ``split.only(available)``:
models treat a modality absent from the batch as masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from learning.data.dataset import MultimodalDataset, MultimodalSplit
from learning.flops import WEIGHT_DECAY_FLOPS, closure_flops, train_step_flops
from learning.metrics import classification_metrics, sentiment_metrics

Task = Literal["regression", "classification"]

PROX_FLOPS_PER_ELEMENT = 7
"""FLOPs per trainable parameter element of FedProx's term (μ/2)·‖w − w⁰‖² in one step
(``F.mse_loss(w, w⁰, reduction="sum")``, scaled): forward w − w⁰, its square, the sum: 3;
backward 2·(w − w⁰)·ḡ, the difference recomputed: 3; its sum with the data-loss gradient:
1. (The flop counter counts elementwise work as free, so this is added by hand, like the
optimizer's :data:`~learning.flops.OPTIMIZER_FLOPS`.)"""


@dataclass(frozen=True)
class TrainConfig:
    """How to train: ``epochs`` passes (or stop after ``max_steps`` optimizer steps),
    mini-batches of ``batch_size`` samples, learning rate ``lr``, gradient-norm clip
    ``grad_clip`` (``None``: off). Defaults follow MulT's MOSEI setting.

    ``prox_mu`` is FedProx's proximal coefficient μ ≥ 0 (Li et al. 2020): each step
    minimises L(w) + (μ/2)·‖w − w⁰‖², the norm over all trainable parameters and w⁰
    their values when the call of :func:`train` starts (in federated training, the model
    the client received). The term's gradient μ·(w − w⁰) enters before clipping and the
    optimizer, so every trainable parameter gets a gradient; the reported loss is L's.
    0 (the default): plain training, no extra op.
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 24
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    grad_clip: float | None = 0.8
    device: str = "cpu"
    seed: int = 0
    prox_mu: float = 0.0

    def __post_init__(self) -> None:
        if not self.prox_mu >= 0:
            raise ValueError(f"prox_mu must be >= 0, not {self.prox_mu!r}")


@dataclass(frozen=True)
class TrainResult:
    """What one call of :func:`train` did: optimizer ``steps``, ``samples`` seen, and the
    mean training loss L over them (without FedProx's proximal term)."""

    steps: int
    samples: int
    loss: float


def loss_function(task: Task) -> nn.Module:
    """L1 for regression, cross-entropy for classification."""
    return nn.L1Loss() if task == "regression" else nn.CrossEntropyLoss()


def _target(
    out: torch.Tensor, labels: torch.Tensor, task: Task
) -> tuple[torch.Tensor, torch.Tensor]:
    if task == "regression":
        return out.reshape(-1), labels.reshape(-1).float()
    return out, labels.long()


def proximal_term(
    params: Sequence[torch.Tensor], start: Sequence[torch.Tensor], mu: float
) -> torch.Tensor:
    """FedProx's (μ/2)·Σ‖w − w⁰‖² over ``params`` and their starting values ``start``."""
    pairs = zip(params, start, strict=True)
    return 0.5 * mu * sum(F.mse_loss(p, p0, reduction="sum") for p, p0 in pairs)


def train_flops(model: nn.Module, split: MultimodalSplit, task: Task, cfg: TrainConfig) -> int:
    """FLOPs of what :func:`train` does with ``cfg`` on ``split``: one training step per
    mini-batch (batch shapes as ``train`` draws them, the last one possibly smaller),
    ``cfg.epochs`` epochs or ``cfg.max_steps``. A step is
    :func:`~learning.flops.train_step_flops`; with ``cfg.prox_mu`` > 0 it is counted on
    ``train``'s own loss L + (μ/2)·‖w − w⁰‖² (:func:`_proximal_step_flops`)."""
    n = len(split)
    sizes = [min(cfg.batch_size, n - start) for start in range(0, n, cfg.batch_size)] * cfg.epochs
    if cfg.max_steps is not None:
        sizes = sizes[: cfg.max_steps]
    criterion = loss_function(task)
    total = 0
    for size in sorted(set(sizes)):
        features, labels = next(split.subset(list(range(size))).batches(size))
        labels = labels if task == "classification" else labels.float()
        if cfg.prox_mu:
            step = _proximal_step_flops(model, features, labels, task, cfg)
        else:
            step = train_step_flops(
                model, (features, labels), criterion, cfg.optimizer, cfg.weight_decay
            )
        total += step * sizes.count(size)
    return total


def _proximal_step_flops(
    model: nn.Module, features: dict[str, torch.Tensor], labels: torch.Tensor, task: Task,
    cfg: TrainConfig,
) -> int:  # fmt: skip
    """One FedProx step on (``features``, ``labels``): the forward pass, L + (μ/2)·‖w − w⁰‖²
    and its backward as the flop counter sees them (it counts the proximal term as 0), the
    optimizer's update of every trainable element (each gets a gradient from the term),
    plus per trainable element :data:`PROX_FLOPS_PER_ELEMENT` and the weight decay's
    :data:`~learning.flops.WEIGHT_DECAY_FLOPS` if ``cfg.weight_decay`` ≠ 0. That is, with
    T trainable elements, C the counted matrix work and U the optimizer's FLOPs per element:
    C + (U + [wd ≠ 0]·WD + PROX_FLOPS_PER_ELEMENT)·T."""
    criterion = loss_function(task)

    def step(work: nn.Module) -> torch.Tensor:
        work.train()
        params = [p for p in work.parameters() if p.requires_grad]
        start = [p.detach().clone() for p in params]
        out, target = _target(work(features), labels, task)
        return criterion(out, target) + proximal_term(params, start, cfg.prox_mu)

    shapes = tuple((m, tuple(x.shape), str(x.dtype)) for m, x in sorted(features.items()))
    key = ("fedprox_step", task, shapes, tuple(labels.shape), str(labels.dtype))
    counted = closure_flops(key, step, [model], cfg.optimizer)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_element = PROX_FLOPS_PER_ELEMENT
    if cfg.weight_decay != 0:
        per_element += WEIGHT_DECAY_FLOPS[cfg.optimizer]
    return counted + per_element * trainable


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg`` over ``params``."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    return kinds[cfg.optimizer](params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(model: nn.Module, split: MultimodalSplit, task: Task, cfg: TrainConfig) -> TrainResult:
    """Train the trainable parameters of ``model`` on ``split`` in place.

    Deterministic for a given ``cfg.seed``: shuffling and dropout draw from a generator
    seeded here, and the global RNG state is restored afterwards. With ``cfg.prox_mu`` > 0
    each step minimises L + (μ/2)·‖w − w⁰‖², w⁰ the trainable parameters as they are now.
    """
    device = torch.device(cfg.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params] if cfg.prox_mu else None
    optimizer = make_optimizer(params, cfg)
    criterion = loss_function(task)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    steps = samples = 0
    total = 0.0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        for _ in range(cfg.epochs):
            batches = split.masked_batches(cfg.batch_size, shuffle=True, generator=shuffle)
            for features, labels, present in batches:
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break
                out = _forward(model, features, present, device)
                out, target = _target(out, labels.to(device), task)
                loss = criterion(out, target)
                objective = loss
                if start is not None:
                    objective = loss + proximal_term(params, start, cfg.prox_mu)
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                steps += 1
                samples += len(labels)
                total += float(loss.detach()) * len(labels)
    return TrainResult(steps, samples, total / max(samples, 1))


@torch.no_grad()
def predict(
    model: nn.Module, split: MultimodalSplit, batch_size: int = 256, device: str = "cpu"
) -> torch.Tensor:
    """Model outputs for every sample of ``split`` in order, on the CPU, in eval mode."""
    model.to(device).eval()
    outs = [
        _forward(model, features, present, torch.device(device)).cpu()
        for features, _, present in split.masked_batches(batch_size)
    ]
    return torch.cat(outs)


def _forward(
    model: nn.Module,
    features: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor] | None,
    device: torch.device,
) -> torch.Tensor:
    """``model`` on a batch moved to ``device``, with its ``present`` masks if it has any."""
    features = {m: x.to(device) for m, x in features.items()}
    if present is None:
        return model(features)
    return model(features, {m: p.to(device) for m, p in present.items()})


def fit(
    model: nn.Module, data: MultimodalDataset, cfg: TrainConfig
) -> tuple[dict[str, float], int]:
    """Train ``cfg.epochs`` epochs on ``data.train`` and keep the weights of the epoch with
    the best validation score (lowest MAE for regression, highest accuracy for
    classification), as MulT's reference training does. Returns (that epoch's validation
    metrics, the epoch, 1-based). Epoch ``e`` shuffles with seed ``cfg.seed + e``.
    """
    task = data.task
    key, sign = ("mae", -1.0) if task == "regression" else ("accuracy", 1.0)
    best: tuple[float, int, dict[str, float], dict[str, torch.Tensor]] | None = None
    for epoch in range(1, cfg.epochs + 1):
        train(model, data.train, task, replace(cfg, epochs=1, seed=cfg.seed + epoch - 1))
        metrics = evaluate(model, data.valid, task, cfg.device)
        if best is None or sign * metrics[key] > best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (sign * metrics[key], epoch, metrics, state)
    if best is None:
        raise ValueError("fit needs cfg.epochs >= 1")
    model.load_state_dict(best[3])
    return best[2], best[1]


def evaluate(
    model: nn.Module, split: MultimodalSplit, task: Task, device: str = "cpu"
) -> dict[str, float]:
    """Held-out metrics: :func:`sentiment_metrics` or :func:`classification_metrics`."""
    out = predict(model, split, device=device)
    if task == "regression":
        return sentiment_metrics(out.reshape(-1).numpy(), split.labels.numpy())
    return classification_metrics(out.argmax(dim=1).numpy(), split.labels.numpy())
