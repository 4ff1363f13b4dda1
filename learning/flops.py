"""FLOPs of one forward pass and of one training step, the work behind virtual compute
time (docs/design.md, rule 1).

Counted by ``torch.utils.flop_counter.FlopCounterMode`` on a deep copy of the model, so
the model's parameters, gradients, buffers and train/eval mode are untouched, and with
every global RNG — torch's (CPU, and CUDA once initialised), numpy's and Python's
``random`` — restored afterwards: a count runs only while the cache is cold, so it must
leave no trace on what follows (otherwise a run's results would depend on what ran
before in the process). A generator a counted step holds itself (a
``numpy.random.Generator`` in a closure, a ``torch.Generator``) cannot be restored: draw
such randomness outside the step and pass it in.

The counter's convention holds throughout: a multiply-add is 2 FLOPs and only matrix
products, convolutions and attention count; elementwise work (activations, norms,
softmax, losses, dropout) is free. Three things make the counter see every such op:

* oneDNN (mkldnn) and cuDNN are switched off while counting (process-wide, so do not
  count while another thread trains), so ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` run
  PyTorch's reference kernels, whose matmuls are counted (the fused ``mkldnn_rnn_layer``
  and ``_cudnn_rnn`` count 0), whatever kernels the host has (verified on CPU only);
* CPU scaled-dot-product attention (``_scaled_dot_product_flash_attention_for_cpu`` and
  its backward, missing from torch's table) is counted with torch's formulas for the
  CUDA kernels;
* :func:`forward_flops` runs with autograd on and every parameter requiring grad, so
  ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` skip their fused inference
  fast path (which counts 0); the graph is discarded.

Results are cached per (model signature — class, module repr, and (name, shape,
requires_grad) of every parameter, so freezing changes it —, input shapes, dtypes and
devices, loss, optimizer); :func:`clear_cache` empties the cache.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

#: FLOPs per updated parameter element of one optimizer step (PyTorch's update rules):
#: SGD p −= lr·g: 2; SGD with momentum b = μ·b + g, p −= lr·b: 4; Adam m = β1·m + (1−β1)·g: 3,
#: v = β2·v + (1−β2)·g²: 4, d = √v / c2 + ε: 3, p −= s·m / d: 3 → 13; AdamW the same.
OPTIMIZER_FLOPS: dict[str, int] = {"sgd": 2, "sgd_momentum": 4, "adam": 13, "adamw": 13}
#: Extra FLOPs per element when ``weight_decay`` ≠ 0: coupled g += wd·p: 2; AdamW's
#: decoupled p ·= 1 − lr·wd: 1.
WEIGHT_DECAY_FLOPS: dict[str, int] = {"sgd": 2, "sgd_momentum": 2, "adam": 2, "adamw": 1}

_aten = torch.ops.aten
_cache: dict[tuple[Any, ...], int] = {}


def _sdpa_cpu_flop(query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward_flop(grad: Any, query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
    return sdpa_backward_flop_count(grad, query, key, value)


_EXTRA_FORMULAS = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
}


def clear_cache() -> None:
    """Forget every cached count."""
    _cache.clear()


def forward_flops(model: nn.Module, example_inputs: Any) -> int:
    """FLOPs of one forward pass in eval mode on ``example_inputs``: a tuple is unpacked
    as positional arguments (``model(*example_inputs)``), anything else — a
    ``dict[str, Tensor]`` of features, a tensor — is the single argument."""
    key = ("forward", _model_key(model), _struct_key(example_inputs))
    if key not in _cache:
        work = _working_copy(model, train=False)
        for p in work.parameters():
            p.requires_grad_(p.is_floating_point())
        with _counting() as counter, torch.enable_grad():
            _call(work, example_inputs)
        _cache[key] = counter.get_total_flops()
    return _cache[key]


def train_step_flops(
    model: nn.Module,
    batch: tuple[Any, Tensor],
    loss_fn: Callable[[Any, Tensor], Tensor],
    optimizer: str = "adam",
    weight_decay: float = 0.0,
) -> int:
    """FLOPs of one training step on ``batch = (inputs, target)``, in train mode:
    forward (``inputs`` passed as in :func:`forward_flops`), ``loss_fn(output, target)``
    and its backward, all counted, plus the ``optimizer`` update
    (:data:`OPTIMIZER_FLOPS`, + :data:`WEIGHT_DECAY_FLOPS` if ``weight_decay`` ≠ 0)
    on every parameter element that received a gradient. An output with as many
    elements as a floating ``target`` is reshaped to it first (``L1Loss`` on (B, 1) vs
    (B,)). Frozen parameters get no weight gradient and no update; a model with nothing
    to train costs its forward pass. Gradient clipping is not counted.
    """
    if optimizer not in OPTIMIZER_FLOPS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_FLOPS)}, not {optimizer!r}")
    inputs, target = batch
    key = (
        "train",
        _model_key(model),
        _struct_key(batch),
        _loss_key(loss_fn),
        optimizer,
        weight_decay != 0,
    )
    if key not in _cache:
        work = _working_copy(model, train=True)
        with _counting() as counter:
            out = _call(work, inputs)
            if target.is_floating_point() and out.numel() == target.numel():
                out = out.reshape(target.shape)
            loss = loss_fn(out, target)
            if loss.requires_grad:
                loss.backward()
        per_element = OPTIMIZER_FLOPS[optimizer]
        if weight_decay != 0:
            per_element += WEIGHT_DECAY_FLOPS[optimizer]
        updated = sum(p.numel() for p in work.parameters() if p.grad is not None)
        _cache[key] = counter.get_total_flops() + per_element * updated
    return _cache[key]


def closure_flops(
    key: Any,
    step: Callable[..., Tensor],
    models: Sequence[nn.Module],
    optimizer: str | None = "adamw",
) -> int:
    """FLOPs of ``loss = step(*models)``, of ``loss.backward()`` when the loss requires
    grad, and of the ``optimizer`` update of every parameter that received a gradient
    (``None``: no update, e.g. a forward-only step). Counted the first time ``key`` is
    seen, on deep copies of ``models`` in their current train/eval mode — the models,
    their gradients and the global RNGs are untouched — and cached under ``key``, which
    must identify the step's shapes (e.g. a name and the batch size). ``step`` runs only
    when the cache is cold, so it must draw from no generator of its own (see the module
    docstring): pass anything random in, drawn beforehand."""
    full_key = ("closure", key, tuple(_model_key(m) for m in models), optimizer)
    if full_key not in _cache:
        copies = copy.deepcopy(list(models))
        for work in copies:
            for p in work.parameters():
                p.grad = None
        with _counting() as counter:
            loss = step(*copies)
            if loss.requires_grad:
                loss.backward()
        updated = sum(p.numel() for w in copies for p in w.parameters() if p.grad is not None)
        per_element = 0 if optimizer is None else OPTIMIZER_FLOPS[optimizer]
        _cache[full_key] = counter.get_total_flops() + per_element * updated
    return _cache[full_key]


def _call(model: nn.Module, inputs: Any) -> Any:
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def _working_copy(model: nn.Module, train: bool) -> nn.Module:
    work = copy.deepcopy(model).train(train)
    for p in work.parameters():
        p.grad = None
    return work


@contextmanager
def _counting() -> Iterator[FlopCounterMode]:
    """A flop counter with reference kernels; torch's, numpy's and Python's global RNG
    states restored after."""
    saved = torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled
    cuda = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    torch.backends.mkldnn.enabled = torch.backends.cudnn.enabled = False
    try:
        with (
            torch.random.fork_rng(devices=cuda),
            FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter,
        ):
            yield counter
    finally:
        torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled = saved
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _model_key(model: nn.Module) -> tuple[Any, ...]:
    """Class, module tree and (name, shape, requires_grad) of every parameter."""
    params = sorted((n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters())
    return type(model).__module__, type(model).__qualname__, repr(model), tuple(params)


def _struct_key(x: Any) -> Any:
    """Shapes, dtypes and devices of the tensors in a nest of dicts, tuples and lists."""
    if isinstance(x, Tensor):
        return "tensor", tuple(x.shape), str(x.dtype), x.device.type
    if isinstance(x, Mapping):
        return "map", tuple(sorted((str(k), _struct_key(v)) for k, v in x.items()))
    if isinstance(x, (tuple, list)):
        return type(x).__name__, tuple(_struct_key(v) for v in x)
    return repr(x)


def _loss_key(loss_fn: Callable[..., Any]) -> Any:
    if isinstance(loss_fn, nn.Module):
        return type(loss_fn).__module__, type(loss_fn).__qualname__, repr(loss_fn)
    return loss_fn
