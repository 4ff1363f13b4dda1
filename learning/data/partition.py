"""Splitting samples and modalities across devices, deterministically by seed.

Every function draws from its own ``numpy.random.default_rng(seed)``; index arrays are
returned sorted (training shuffles anyway). Bad arguments raise ``ValueError`` with a
one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral

import numpy as np

DIRICHLET_TRIES = 1000


def _check_devices(n_samples: int, n_devices: int) -> None:
    if n_devices < 1:
        raise ValueError(f"n_devices must be >= 1, got {n_devices}")
    if n_samples < n_devices:
        raise ValueError(f"{n_devices} devices but only {n_samples} samples")


def _counts(sizes: Sequence[int | float], n_samples: int, n_devices: int) -> np.ndarray:
    """Explicit counts (ints, sum ≤ n_samples) or fractions (floats, sum 1) → counts."""
    if len(sizes) != n_devices:
        raise ValueError(f"sizes has {len(sizes)} entries for {n_devices} devices")
    if all(isinstance(s, Integral) for s in sizes):
        counts = np.asarray(sizes, dtype=np.int64)
        if counts.sum() > n_samples:
            raise ValueError(f"sizes sum to {counts.sum()} > {n_samples} samples")
    else:
        frac = np.asarray(sizes, dtype=float)
        if np.any(frac < 0) or not np.isclose(frac.sum(), 1.0):
            raise ValueError(f"fractional sizes must be >= 0 and sum to 1, got {frac.sum():g}")
        exact = frac * n_samples
        counts = np.floor(exact).astype(np.int64)
        short = n_samples - int(counts.sum())  # largest remainders first, ties by index
        counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    if np.any(counts < 1):
        raise ValueError(f"every device needs >= 1 sample, sizes give {counts.min()}")
    return counts


def iid_partition(
    n_samples: int, n_devices: int, seed: int, sizes: Sequence[int | float] | None = None
) -> list[np.ndarray]:
    """Sample indices 0..n_samples-1 dealt to ``n_devices`` devices uniformly at random.

    ``sizes``: per-device counts (ints; the rest of the samples go unused) or fractions
    (floats summing to 1; rounded by largest remainder so every sample is used). Default:
    equal shares, differing by at most one.
    """
    _check_devices(n_samples, n_devices)
    perm = np.random.default_rng(seed).permutation(n_samples)
    if sizes is None:
        return [np.sort(part) for part in np.array_split(perm, n_devices)]
    bounds = np.cumsum(_counts(sizes, n_samples, n_devices))
    return [np.sort(perm[a:b]) for a, b in zip(np.r_[0, bounds[:-1]], bounds, strict=True)]


def dirichlet_partition(
    labels: Sequence[float] | np.ndarray, n_devices: int, alpha: float, seed: int, min_size: int = 1
) -> list[np.ndarray]:
    """Label-skewed split: each class's samples are dealt by proportions ~ Dir(α·1).

    Classes are the labels rounded to the nearest integer: class ids unchanged, sentiment
    in [-3, 3] grouped into its seven Acc-7 classes. Small ``alpha`` gives each device few
    classes; large ``alpha`` approaches an IID split. The whole draw is repeated until
    every device holds at least ``min_size`` samples (at most 1000 times, then ValueError).
    ``labels`` is (N,) array-like (a CPU tensor works).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    _, classes = np.unique(
        np.round(np.asarray(labels, dtype=float).reshape(-1)), return_inverse=True
    )
    n = classes.shape[0]
    _check_devices(n, n_devices)
    if min_size < 0 or min_size * n_devices > n:
        raise ValueError(f"min_size {min_size} × {n_devices} devices exceeds {n} samples")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(classes == c) for c in range(classes.max() + 1)]
    for _ in range(DIRICHLET_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_devices)]
        for idx in by_class:
            idx = rng.permutation(idx)
            share = rng.dirichlet(np.full(n_devices, alpha))
            cuts = (np.cumsum(share)[:-1] * idx.shape[0]).astype(np.int64)
            for device, chunk in enumerate(np.split(idx, cuts)):
                parts[device].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(p.shape[0] for p in out) >= min_size:
            return out
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) draw gave all {n_devices} devices >= {min_size} samples "
        f"in {DIRICHLET_TRIES} tries; raise alpha or lower min_size"
    )


def public_private_split(
    n_samples: int, seed: int, public_fraction: float = 0.25, train_fraction: float = 0.9
) -> dict[str, np.ndarray]:
    """ML-ECS's split: ``public_fraction`` of the samples public (server and all devices),
    the rest private (dealt to devices afterwards), each part ``train_fraction`` train and
    the rest test. Sizes are ``round(fraction × size)``. Keys ``public_train``,
    ``public_test``, ``private_train``, ``private_test``; index arrays into 0..n_samples-1.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 0.0 < public_fraction < 1.0:
        raise ValueError(f"public_fraction must be in (0, 1), got {public_fraction}")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    perm = np.random.default_rng(seed).permutation(n_samples)
    n_public = round(public_fraction * n_samples)
    out = {}
    for name, part in (("public", perm[:n_public]), ("private", perm[n_public:])):
        n_train = round(train_fraction * part.shape[0])
        out[f"{name}_train"] = np.sort(part[:n_train])
        out[f"{name}_test"] = np.sort(part[n_train:])
    return out


def modality_availability(
    n_devices: int,
    modalities: Sequence[str],
    rate: float | Mapping[str, float],
    seed: int,
) -> list[tuple[str, ...]]:
    """Modalities each device holds: m with probability ρ_m (ML-ECS's modality existing
    rate), independently per device and modality, conditioned on holding at least one.

    ``rate``: one ρ for all modalities or a ρ_m per modality, each in [0, 1], not all 0.
    A device whose draw comes out empty draws again (the whole row) until it is not, so
    the expected share of devices holding m is ρ_m / (1 − Π_j (1 − ρ_j)). Tuples keep
    the order of ``modalities``.
    """
    mods = list(modalities)
    if n_devices < 1 or not mods:
        raise ValueError("need at least one device and one modality")
    if isinstance(rate, Mapping):
        if set(rate) != set(mods):
            raise ValueError(f"rate has modalities {sorted(rate)}, expected {sorted(mods)}")
        rho = np.array([rate[m] for m in mods], dtype=float)
    else:
        rho = np.full(len(mods), float(rate))
    if not np.all((rho >= 0) & (rho <= 1)) or not np.any(rho > 0):
        raise ValueError(f"rates must be in [0, 1] and not all 0, got {rho.tolist()}")
    rng = np.random.default_rng(seed)
    has = rng.random((n_devices, len(mods))) < rho
    empty = ~has.any(axis=1)
    while empty.any():
        has[empty] = rng.random((int(empty.sum()), len(mods))) < rho
        empty = ~has.any(axis=1)
    return [tuple(m for m, h in zip(mods, row, strict=True) if h) for row in has]
