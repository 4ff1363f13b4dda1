"""Batched clients against one-by-one training: client steps per second.

    python bench/batched.py [--clients 9 36] [--device cpu|cuda] [--threads 2] [--repeat 3]

The workload of ``scenarios/mosei_async.yaml``'s ends: MulT (width 16, 2 layers, 2
heads) on MOSEI-shaped features (text/audio/vision 300/74/35, 12 steps), Adam, batches of
24, 12 steps per client (288 samples each), whole local updates: batch assembly,
forward, backward, clipping and optimizer. Prints the one-by-one rate of
:func:`learning.train.train` on the CPU with ``--threads`` torch threads, then for each
client count the rate of :func:`learning.batched.batched_train` on ``--device`` and its
ratio to the one-by-one rate; on CUDA also the peak GPU memory per client. Each rate is
the best of ``--repeat`` runs (wall times on a shared machine vary by tens of percent).
"""

from __future__ import annotations

import argparse
import time

import torch

from learning.batched import batched_train
from learning.data.dataset import MultimodalSplit
from learning.data.synthetic import mosei_like
from learning.models import build_model
from learning.train import TrainConfig, train

STEPS, BATCH = 12, 24


def clients(count: int, device: str) -> tuple[list[MultimodalSplit], list[dict]]:
    """``count`` clients of ``STEPS · BATCH`` samples (drawn from one pool, each client its
    own slice order), each from its own initial state."""
    pool = mosei_like(4 * STEPS * BATCH, 4, 4, seq_len=12, seed=1).train
    features = {m: x.to(device) for m, x in pool.features.items()}
    pool = MultimodalSplit(features, pool.labels.to(device))
    splits, states = [], []
    for c in range(count):
        start = (c * 37) % (len(pool) - STEPS * BATCH)
        splits.append(pool.subset(torch.arange(start, start + STEPS * BATCH)))
        torch.manual_seed(c)
        states.append(build_model("mult", DIMS, 1, **OPTIONS).state_dict())
    return splits, states


DIMS = {"text": 300, "audio": 74, "vision": 35}
OPTIONS = {"width": 16, "layers": 2, "heads": 2}


def one_by_one(threads: int, count: int = 3) -> float:
    """Client steps per second of ``train`` on the CPU, one client after another."""
    torch.set_num_threads(threads)
    splits, states = clients(count, "cpu")
    model = build_model("mult", DIMS, 1, **OPTIONS)
    started = time.perf_counter()
    for c, (split, state) in enumerate(zip(splits, states, strict=True)):
        model.load_state_dict(state)
        train(model, split, "regression", TrainConfig(batch_size=BATCH, lr=1e-3, seed=c))
    return count * STEPS / (time.perf_counter() - started)


def batched(count: int, device: str) -> tuple[float, float]:
    """Client steps per second of ``batched_train`` with ``count`` clients on ``device``
    (after one warm-up step), and the peak GPU memory per client (MiB; 0 on the CPU)."""
    splits, states = clients(count, device)
    model = build_model("mult", DIMS, 1, **OPTIONS)
    cfg = TrainConfig(batch_size=BATCH, lr=1e-3, device=device)
    warm = TrainConfig(batch_size=BATCH, lr=1e-3, device=device, max_steps=1)
    batched_train(model, "regression", warm, states[:2], splits[:2], [0, 1])
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    batched_train(model, "regression", cfg, states, splits, list(range(count)))
    if device == "cuda":
        torch.cuda.synchronize()
    rate = count * STEPS / (time.perf_counter() - started)
    memory = torch.cuda.max_memory_allocated() / 2**20 / count if device == "cuda" else 0.0
    return rate, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[9, 36])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU torch threads")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    base = max(one_by_one(args.threads) for _ in range(args.repeat))
    print(f"one by one, CPU, {args.threads} threads: {base:.1f} client steps/s")
    print(f"{'clients':>8} {'device':>6} {'steps/s':>9} {'× one by one':>13} {'MiB/client':>11}")
    torch.set_num_threads(args.threads)
    for count in args.clients:
        rate, memory = max(batched(count, args.device) for _ in range(args.repeat))
        print(f"{count:>8} {args.device:>6} {rate:>9.1f} {rate / base:>13.2f} {memory:>11.1f}")


if __name__ == "__main__":
    main()
