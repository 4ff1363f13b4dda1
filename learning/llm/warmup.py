"""Warm-up of a randomly initialised backbone, standing in for language pretraining.

simnet builds its language models offline from config classes, so they start knowing no
language at all; ML-ECS's backbones are pretrained. Before any federated training, a
backbone is trained briefly (all its weights, next-token cross-entropy) on the task's own
texts — the instruction followed by each answer — so that, like a pretrained model, it
writes a well-formed answer and the soft prompt only has to choose which one. This is a
one-off set-up step of the learning library, not part of any simulated protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def warm_up(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    steps: int = 60,
    lr: float = 3e-3,
    seed: int = 0,
) -> float:
    """Train every weight of causal LM ``model`` for ``steps`` AdamW steps, one text per
    step in turn; return the last step's loss. Seeded; the global RNG is left as it was;
    the model ends in eval mode."""
    ids = [torch.tensor(tokenizer(t)["input_ids"], dtype=torch.long)[None] for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for step in range(steps):
            batch = ids[step % len(ids)]
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    return float(loss.detach())
