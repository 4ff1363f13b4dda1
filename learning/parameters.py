"""Parameter sizes of a model by kind of module (Mega-CE² Table 5).

* ``self-attention``: every ``nn.MultiheadAttention`` (its input projections and its
  output projection);
* ``linear projection``: every ``nn.Linear`` and ``nn.Conv1d`` outside an attention
  module (MulT's input projections, FFNs and head; the adapter's output layer);
* ``trainable``: every parameter that requires a gradient (norms and the rest included).

Sizes are the parameters' storage: elements × bytes per element (4 for float32). Models
built on the meta device count the same without allocating memory.
"""

from __future__ import annotations

from torch import nn

KINDS = ("self-attention", "linear projection", "trainable")


def parameter_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of ``model``'s parameters of each of :data:`KINDS` (a parameter shared by
    two modules counts once)."""
    attention: set[int] = set()
    projection: set[int] = set()
    sizes: dict[int, int] = {}
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            attention.update(id(p) for p in module.parameters())
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            projection.update(id(p) for p in module.parameters() if id(p) not in attention)
    trainable = set()
    for p in model.parameters():
        sizes[id(p)] = p.numel() * p.element_size()
        if p.requires_grad:
            trainable.add(id(p))
    groups = (attention, projection, trainable)
    return {kind: sum(sizes[i] for i in ids) for kind, ids in zip(KINDS, groups, strict=True)}
