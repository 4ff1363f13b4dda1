"""Multimodal data: the dataset interface, MOSI/MOSEI loaders, synthetic data, partitions."""

from learning.data.dataset import MultimodalDataset, MultimodalSplit
from learning.data.mosei import load_mosei
from learning.data.partition import (
    dirichlet_partition,
    iid_partition,
    modality_availability,
    public_private_split,
)
from learning.data.synthetic import fall_like, mosei_like

__all__ = [
    "MultimodalDataset",
    "MultimodalSplit",
    "dirichlet_partition",
    "fall_like",
    "iid_partition",
    "load_mosei",
    "modality_availability",
    "mosei_like",
    "public_private_split",
]
