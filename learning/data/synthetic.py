"""Embedded synthetic datasets shaped like CMU-MOSEI (sentiment) and UR-Fall (fall detection).

Both share one latent-factor process (equations in ``docs/data.md``): every sample has
three hidden factors ``z``; the label depends on all three; modality ``i`` (in ``dims``
order) carries a noisy copy of only two of them, ``z[i mod 3]`` and ``z[(i+1) mod 3]``,
written through a fixed random projection into a few random frames among noise frames.
No single modality determines the label; all of them together do, up to noise scaled by
``difficulty``. Every draw comes from ``numpy.random.default_rng`` streams spawned from
``seed`` (the bulk frame noise from a ``torch.Generator`` seeded by them): the projections
and each split have their own stream, so a split does not change when another's size does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist

import numpy as np
import torch

from learning.data.dataset import MultimodalDataset, MultimodalSplit

N_FACTORS = 3
SIGNAL_AMPLITUDE = 2.0  # A: signal amplitude (projection columns have unit norm)
SIGNAL_FRAME_SHARE = 0.1  # share of a sequence's frames that carry the signal
VIEW_NOISE = 0.5  # σ_u per unit difficulty: noise on the factors a modality sees
FRAME_NOISE = 1.0  # σ_x per unit difficulty: noise on every feature of every frame
LABEL_NOISE = 0.3  # σ_y per unit difficulty: noise on the label score
SENTIMENT_GAIN = 0.5  # β in y = 3·tanh(β·(s + σ_y·ε))

MOSEI_DIMS = {"text": 300, "audio": 74, "vision": 35}
FALL_DIMS = {"acce": 3, "rgb": 64, "depth": 32}


def _seq_lens(seq_len: int | Sequence[int], dims: Mapping[str, int]) -> dict[str, int]:
    lens = [seq_len] * len(dims) if isinstance(seq_len, int) else list(seq_len)
    if len(lens) != len(dims):
        raise ValueError(f"seq_len: {len(lens)} lengths for {len(dims)} modalities")
    if any(t < 1 for t in lens) or any(d < 1 for d in dims.values()):
        raise ValueError("seq_len and dims must be positive")
    return dict(zip(dims, lens, strict=True))


def _check(sizes: Sequence[int], difficulty: float) -> None:
    if any(n < 1 for n in sizes):
        raise ValueError(f"split sizes must be positive, got {tuple(sizes)}")
    if difficulty < 0:
        raise ValueError(f"difficulty must be >= 0, got {difficulty}")


def _projections(rng: np.random.Generator, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """P_m: (D_m, 2) Gaussian matrices with unit-norm columns."""
    out = {}
    for m, d in dims.items():
        p = rng.standard_normal((d, 2))
        out[m] = p / np.linalg.norm(p, axis=0, keepdims=True)
    return out


def _features(
    rng: np.random.Generator,
    z: np.ndarray,
    proj: Mapping[str, np.ndarray],
    lens: Mapping[str, int],
    difficulty: float,
) -> dict[str, torch.Tensor]:
    """Sequences (N, T_m, D_m) float32 for factors ``z`` (N, 3)."""
    n = z.shape[0]
    out = {}
    for i, (m, p) in enumerate(proj.items()):
        seen = [i % N_FACTORS, (i + 1) % N_FACTORS]
        u = z[:, seen] + VIEW_NOISE * difficulty * rng.standard_normal((n, 2))
        signal = (SIGNAL_AMPLITUDE * u @ p.T).astype(np.float32)  # (N, D_m)
        t, d = lens[m], p.shape[0]
        torch_rng = torch.Generator().manual_seed(int(rng.integers(2**63)))
        x = torch.randn((n, t, d), generator=torch_rng).numpy()  # torch: 2-3x faster here
        x *= FRAME_NOISE * difficulty
        k = max(1, round(SIGNAL_FRAME_SHARE * t))
        frames = np.argsort(rng.random((n, t)), axis=1)[:, :k]  # k distinct frames per sample
        x[np.arange(n)[:, None], frames] += signal[:, None, :]
        out[m] = torch.from_numpy(x)
    return out


def _score(rng: np.random.Generator, z: np.ndarray, difficulty: float) -> np.ndarray:
    """Noisy label score s + σ_y·ε with s = Σ z_k / √3 (unit variance)."""
    s = z.sum(axis=1) / np.sqrt(N_FACTORS)
    return s + LABEL_NOISE * difficulty * rng.standard_normal(z.shape[0])


def _generate(
    sizes: Sequence[int],
    dims: Mapping[str, int],
    lens: Mapping[str, int],
    difficulty: float,
    seed: int,
    label_fn: Callable[[np.random.Generator, np.ndarray], torch.Tensor],
) -> list[MultimodalSplit]:
    """One split per size; ``label_fn`` turns (rng, noisy scores (N,)) into labels (N,)."""
    param_rng, *split_rngs = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(1 + len(sizes))
    )
    proj = _projections(param_rng, dims)
    splits = []
    for n, rng in zip(sizes, split_rngs, strict=True):
        z = rng.standard_normal((n, N_FACTORS))
        labels = label_fn(rng, _score(rng, z, difficulty))
        splits.append(MultimodalSplit(_features(rng, z, proj, lens, difficulty), labels))
    return splits


def mosei_like(
    n_train: int,
    n_valid: int,
    n_test: int,
    seq_len: int | Sequence[int] = (50, 50, 50),
    dims: Mapping[str, int] | None = None,
    difficulty: float = 1.0,
    seed: int = 0,
    rounded_share: float = 0.5,
) -> MultimodalDataset:
    """A regression dataset shaped like aligned CMU-MOSEI features.

    Features ``(N, T_m, D_m)`` float32 for each modality of ``dims`` (default text 300,
    audio 74, vision 35; ``seq_len`` one int or one per modality), labels (N,) float32 in
    [-3, 3]: y = 3·tanh(0.5·(s + 0.3·difficulty·ε)), and a ``rounded_share`` of them rounded
    to multiples of 1/3 like averaged annotator scores (so exact zeros and ties occur).
    ``difficulty`` ≥ 0 scales every noise term; 0 is noiseless.
    """
    dims = dict(MOSEI_DIMS if dims is None else dims)
    _check((n_train, n_valid, n_test), difficulty)
    if not 0.0 <= rounded_share <= 1.0:
        raise ValueError(f"rounded_share must be in [0, 1], got {rounded_share}")

    def sentiment(rng: np.random.Generator, score: np.ndarray) -> torch.Tensor:
        y = 3.0 * np.tanh(SENTIMENT_GAIN * score)
        rounded = rng.random(y.shape[0]) < rounded_share
        y[rounded] = np.round(3.0 * y[rounded]) / 3.0
        return torch.from_numpy(y.astype(np.float32))

    train, valid, test = _generate(
        (n_train, n_valid, n_test), dims, _seq_lens(seq_len, dims), difficulty, seed, sentiment
    )
    return MultimodalDataset(train, valid, test, task="regression")


def fall_like(
    n_train: int,
    n_valid: int,
    n_test: int,
    seq_len: int | Sequence[int] = (32, 8, 8),
    dims: Mapping[str, int] | None = None,
    num_classes: int = 3,
    difficulty: float = 1.0,
    seed: int = 0,
) -> MultimodalDataset:
    """A classification dataset shaped like UR-Fall (accelerometer, RGB and depth features).

    Features ``(N, T_m, D_m)`` float32 (default acce 3 × 32 frames, rgb 64 × 8, depth
    32 × 8), labels (N,) int64 in 0..num_classes-1: the noisy score cut at the quantiles
    of its own distribution, so classes are balanced and ordered (for 3 classes read
    0 = not lying, 1 = falling / temporary pose, 2 = lying).
    """
    dims = dict(FALL_DIMS if dims is None else dims)
    _check((n_train, n_valid, n_test), difficulty)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    spread = NormalDist(0.0, float(np.sqrt(1.0 + (LABEL_NOISE * difficulty) ** 2)))
    cuts = np.array([spread.inv_cdf(j / num_classes) for j in range(1, num_classes)])

    def classes(rng: np.random.Generator, score: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.searchsorted(cuts, score).astype(np.int64))

    train, valid, test = _generate(
        (n_train, n_valid, n_test), dims, _seq_lens(seq_len, dims), difficulty, seed, classes
    )
    return MultimodalDataset(train, valid, test, task="classification", num_classes=num_classes)
