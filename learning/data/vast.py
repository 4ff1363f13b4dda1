"""Captioned clips shaped like VAST (vision, audio, subtitle → a summary): synthetic, or a
real local subset.

**Synthetic** (equations in ``docs/data.md``): every clip has five latent attributes —
scene, object, action, sound, spoken topic — each drawn uniformly from a small
vocabulary (:data:`ATTRIBUTES`). Its reference summary fills one of
:data:`TEMPLATES` (drawn uniformly: varied phrasing the features do not reveal) with the
attributes' words. Modality ``m`` carries only the attributes :data:`CARRIED` ``[m]``:
in ``k = max(1, round(SIGNAL_FRAME_SHARE · T_m))`` random frames of its (T_m, D_m)
sequence it adds ``SIGNAL_AMPLITUDE · Σ_{a ∈ C_m} e_{m,a,v_a}``, with ``e`` fixed unit
Gaussian vectors per modality, attribute and value; every frame also gets
N(0, (FRAME_NOISE · difficulty)²) noise. So a device without the audio modality cannot
know the sound, one without subtitles not the topic, and its summaries lose those words.

**Real** (:func:`load_vast`): a directory with ``annotations.json`` — a list of
``{"clip_id": ..., "vast_cap": ...}`` (VAST-27M's field names; ``caption`` is accepted
for ``vast_cap``) — and ``features/{vision,audio,subtitle}/{clip_id}.npy``, one float
array per clip and modality, (T, D) or (D,) (read as T = 1); shorter sequences are
zero-padded at the end to the modality's longest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learning.data.dataset import MultimodalSplit

VAST_MODALITIES = ("vision", "audio", "subtitle")
VAST_DIMS = {"vision": 48, "audio": 32, "subtitle": 64}
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "scene": ("beach", "kitchen", "city street", "forest", "stadium", "garden"),
    "object": ("dog", "car", "guitar", "ball", "bicycle", "laptop"),
    "action": ("running", "cooking", "singing", "dancing", "driving", "talking"),
    "sound": ("music", "applause", "rain", "engine noise", "laughter", "birdsong"),
    "topic": ("the weather", "football", "a recipe", "a holiday trip", "the news", "a party"),
}
CARRIED: dict[str, tuple[str, ...]] = {
    "vision": ("scene", "object", "action"),
    "audio": ("sound", "action"),
    "subtitle": ("topic", "object"),
}
"""C_m: the attributes modality m carries."""
TEMPLATES: tuple[str, ...] = (
    "A person is {action} in a {scene} with a {object}. {Sound} can be heard while they "
    "talk about {topic}.",
    "In a {scene}, someone is {action} next to a {object} with {sound} in the background. "
    "The speaker mentions {topic}.",
    "A {object} is seen in a {scene} where a person is {action}, with {sound} in the "
    "background and a conversation about {topic}.",
    "The video shows a {scene} with a {object}. A person is {action} while {sound} fills "
    "the air, and they talk about {topic}.",
)
SEQ_LEN = 8
SIGNAL_AMPLITUDE = 2.0
SIGNAL_FRAME_SHARE = 0.25
FRAME_NOISE = 1.0


class VastFileError(ValueError):
    """A local VAST subset that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Captioned:
    """Clips with their summaries: ``split.labels[i]`` is the index in ``texts`` of clip
    i's reference summary; ``attributes`` (N, 5) the value index of each attribute of
    :data:`ATTRIBUTES` (synthetic clips; ``None`` for real ones)."""

    split: MultimodalSplit
    texts: tuple[str, ...]
    attributes: np.ndarray | None = None


def summary_text(template: int, values: dict[str, str]) -> str:
    """:data:`TEMPLATES` ``[template]`` filled with the attribute words ``values``."""
    return TEMPLATES[template].format(Sound=values["sound"].capitalize(), **values)


def vast_like(
    n: int,
    seq_len: int = SEQ_LEN,
    dims: dict[str, int] | None = None,
    difficulty: float = 0.3,
    seed: int = 0,
) -> Captioned:
    """``n`` synthetic clips (see the module doc), features (n, seq_len, D_m) float32."""
    dims = dict(VAST_DIMS if dims is None else dims)
    if n < 1 or seq_len < 1 or min(dims.values()) < 1 or difficulty < 0:
        raise ValueError("n, seq_len and dims must be positive and difficulty >= 0")
    if set(dims) != set(VAST_MODALITIES):
        raise ValueError(f"dims must name the modalities {list(VAST_MODALITIES)}")
    embed_rng, clip_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    embeddings = {
        m: {a: _unit_rows(embed_rng, len(ATTRIBUTES[a]), d) for a in CARRIED[m]}
        for m, d in dims.items()
    }
    names = list(ATTRIBUTES)
    values = np.stack([clip_rng.integers(len(ATTRIBUTES[a]), size=n) for a in names], axis=1)
    templates = clip_rng.integers(len(TEMPLATES), size=n)
    texts = tuple(
        summary_text(int(t), {a: ATTRIBUTES[a][int(v)] for a, v in zip(names, row, strict=True)})
        for t, row in zip(templates, values, strict=True)
    )
    k = max(1, round(SIGNAL_FRAME_SHARE * seq_len))
    features = {}
    for m, d in dims.items():
        signal = sum(embeddings[m][a][values[:, names.index(a)]] for a in CARRIED[m])
        x = FRAME_NOISE * difficulty * clip_rng.standard_normal((n, seq_len, d))
        frames = np.argsort(clip_rng.random((n, seq_len)), axis=1)[:, :k]
        x[np.arange(n)[:, None], frames] += SIGNAL_AMPLITUDE * signal[:, None, :]
        features[m] = torch.from_numpy(x.astype(np.float32))
    split = MultimodalSplit(features, torch.arange(n, dtype=torch.long))
    return Captioned(split, texts, values)


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    e = rng.standard_normal((rows, dim))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def load_vast(directory: Path | str) -> Captioned:
    """A real local VAST subset (layout in the module doc); :class:`VastFileError` naming
    the file and what is wrong with it."""
    directory = Path(directory)
    index = directory / "annotations.json"
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VastFileError(f"{index}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VastFileError(f"{index}: unreadable ({exc})") from None
    if not isinstance(entries, list) or not entries:
        raise VastFileError(f"{index}: expected a non-empty list of clips")
    ids, texts = [], []
    for i, entry in enumerate(entries):
        caption = entry.get("vast_cap", entry.get("caption")) if isinstance(entry, dict) else None
        clip = entry.get("clip_id") if isinstance(entry, dict) else None
        if not isinstance(clip, str) or not isinstance(caption, str) or not caption.strip():
            raise VastFileError(f"{index}: clip {i} needs a string clip_id and vast_cap")
        ids.append(clip)
        texts.append(" ".join(caption.split()))
    features = {m: _modality(directory / "features" / m, ids) for m in VAST_MODALITIES}
    return Captioned(MultimodalSplit(features, torch.arange(len(ids))), tuple(texts))


def _modality(folder: Path, ids: list[str]) -> torch.Tensor:
    """(N, T, D) float32: each clip's array, zero-padded to the longest."""
    arrays = []
    for clip in ids:
        path = folder / f"{clip}.npy"
        try:
            a = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise VastFileError(f"{path}: not found") from None
        except (OSError, ValueError) as exc:
            raise VastFileError(f"{path}: not a numpy array file ({exc})") from None
        a = a[None] if a.ndim == 1 else a
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise VastFileError(f"{path}: expected a finite (T, D) or (D,) array, got {a.shape}")
        arrays.append(a.astype(np.float32))
    widths = {a.shape[1] for a in arrays}
    if len(widths) > 1:
        raise VastFileError(f"{folder}: feature sizes differ between clips: {sorted(widths)}")
    out = np.zeros((len(arrays), max(a.shape[0] for a in arrays), widths.pop()), np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return torch.from_numpy(out)
