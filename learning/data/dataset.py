"""Multimodal datasets as plain tensors: the interface every loader and generator returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]
"""(features by modality, labels) for one mini-batch."""


@dataclass
class MultimodalSplit:
    """``N`` samples: ``features[m]`` is (N, T_m, D_m) float32 for each modality ``m``;
    ``labels`` is (N,) float32 for regression (sentiment in [-3, 3]) or int64 classes.

    ``present`` (optional): per modality, an (N,) bool tensor — False where a sample lacks
    the modality (its features are then zeros and models mask it out); ``None``: every
    sample has every modality.
    """

    features: dict[str, torch.Tensor]
    labels: torch.Tensor
    present: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        n = self.labels.shape[0]
        for name, x in self.features.items():
            if x.dim() != 3 or x.shape[0] != n:
                raise ValueError(f"modality {name!r}: expected ({n}, T, D), got {tuple(x.shape)}")
        if self.present is not None and (
            set(self.present) != set(self.features)
            or any(m.shape != (n,) for m in self.present.values())
        ):
            raise ValueError(f"present must hold an ({n},) mask for each modality")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.features)

    def subset(self, index: torch.Tensor | list[int]) -> MultimodalSplit:
        """The samples at ``index`` (in that order)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        present = None if self.present is None else {m: p[idx] for m, p in self.present.items()}
        features = {m: x[idx] for m, x in self.features.items()}
        return MultimodalSplit(features, self.labels[idx], present)

    def only(self, modalities: list[str] | tuple[str, ...]) -> MultimodalSplit:
        """The same samples with only ``modalities`` kept."""
        present = None if self.present is None else {m: self.present[m] for m in modalities}
        return MultimodalSplit({m: self.features[m] for m in modalities}, self.labels, present)

    def masked_batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor] | None]]:
        """Like :meth:`batches`, with each batch's ``present`` masks (or ``None``)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            part = self.subset(order[start : start + batch_size])
            yield part.features, part.labels, part.present

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Mini-batches in order, or in a permutation drawn from ``generator``."""
        for features, labels, _ in self.masked_batches(batch_size, shuffle, generator):
            yield features, labels


@dataclass
class MultimodalDataset:
    """Train/valid/test splits of one task.

    ``task`` is ``regression`` (MOSI/MOSEI sentiment) or ``classification``
    (``num_classes`` classes, labels 0..num_classes-1).
    """

    train: MultimodalSplit
    valid: MultimodalSplit
    test: MultimodalSplit
    task: Literal["regression", "classification"] = "regression"
    num_classes: int = 0

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.train.modalities

    def only(self, modalities: list[str] | tuple[str, ...]) -> MultimodalDataset:
        """The same dataset with only ``modalities`` kept in every split."""
        train, valid, test = (s.only(modalities) for s in (self.train, self.valid, self.test))
        return MultimodalDataset(train, valid, test, self.task, self.num_classes)

    def feature_dims(self) -> dict[str, int]:
        """Feature size ``D_m`` of each modality."""
        return {m: int(x.shape[-1]) for m, x in self.train.features.items()}
