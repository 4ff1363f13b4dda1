"""Centralized training on the embedded MOSEI-shaped data: MulT vs EF/LF-LSTM vs each
single modality, and MulT's training-step FLOPs at the real MOSEI sizes.

    python bench/centralized.py [--train 2000] [--epochs 10] [--seq-len 20]
                                [--difficulty 1.0] [--seed 0]

Each model trains ``--epochs`` epochs and keeps its best-validation epoch (``fit``).
Prints one row per model: held-out Acc2 (non0), F1 (non0), MAE, Corr, the epoch kept, and
training samples per second (wall clock including per-epoch validation, this machine);
then MulT's parameter count and FLOPs per training sample (forward + backward + Adam)
at text/audio/vision = 300/74/35 features, 50-step sequences, batch 24.
"""

from __future__ import annotations

import argparse
import time

import torch

from learning.data import mosei_like
from learning.flops import train_step_flops
from learning.models import build_model
from learning.train import TrainConfig, evaluate, fit, loss_function

MOSEI_DIMS = {"text": 300, "audio": 74, "vision": 35}


def candidates(modalities: tuple[str, ...]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(label, model name, modalities) for every model compared."""
    rows = [("MulT", "mult", modalities), ("EF-LSTM", "ef_lstm", modalities)]
    rows.append(("LF-LSTM", "lf_lstm", modalities))
    rows += [(f"LF-LSTM ({m} only)", "lf_lstm", (m,)) for m in modalities]
    return rows


def mult_flops_at_mosei_sizes(batch: int = 24, seq_len: int = 50) -> tuple[int, int]:
    """(parameter count, training FLOPs per sample) of the reference MulT."""
    model = build_model("mult", MOSEI_DIMS, 1)
    features = {m: torch.zeros(batch, seq_len, d) for m, d in MOSEI_DIMS.items()}
    flops = train_step_flops(model, (features, torch.zeros(batch)), loss_function("regression"))
    return sum(p.numel() for p in model.parameters()), flops // batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training samples")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seq-len", type=int, default=20, help="time steps per modality")
    parser.add_argument("--difficulty", type=float, default=1.0, help="noise scale of the data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.train
    data = mosei_like(n, n // 4, n // 2, args.seq_len, difficulty=args.difficulty, seed=args.seed)
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    header = (
        f"{'model':<24} {'Acc2':>6} {'F1':>6} {'MAE':>6} {'Corr':>6} {'epoch':>5} {'samples/s':>10}"
    )
    print(header)
    print("-" * len(header))
    dims = data.feature_dims()
    for label, name, mods in candidates(data.modalities):
        torch.manual_seed(args.seed)
        model = build_model(name, {m: dims[m] for m in mods}, 1)
        start = time.perf_counter()
        _, epoch = fit(model, data.only(mods), cfg)
        speed = cfg.epochs * len(data.train) / (time.perf_counter() - start)
        m = evaluate(model, data.test.only(mods), "regression")
        print(
            f"{label:<24} {m['acc2_non0']:>6.3f} {m['f1_non0']:>6.3f} {m['mae']:>6.3f} "
            f"{m['corr']:>6.3f} {epoch:>5} {speed:>10,.0f}"
        )
    params, flops = mult_flops_at_mosei_sizes()
    print(
        f"\nMulT at MOSEI sizes (300/74/35 features, 50 steps): {params:,} parameters, "
        f"{flops / 1e6:,.1f} MFLOPs per training sample (batch 24, Adam)"
    )


if __name__ == "__main__":
    main()
