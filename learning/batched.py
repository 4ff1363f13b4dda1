"""Many clients' local updates of one architecture as one vectorised job (``torch.func``).

Client ``c`` (state ``w_c``, data ``D_c``, seed ``s_c``) does what
:func:`~learning.train.train` does: ``epochs`` passes over ``D_c`` in mini-batches of
``B`` shuffled by a generator seeded with ``s_c``, each step the mean loss over the batch,
gradient-norm clipping, then one optimizer step. Here every client's parameters are
stacked along a new leading axis and each step runs once for all clients under
``torch.func.vmap``:

* batches are padded to ``B`` samples, padding weighted 0, so a client's loss is
  ``Σ_i ω_i ℓ_i / Σ_i ω_i`` over its real samples only;
* a client with fewer steps than the longest sits the remaining steps out: each step
  runs for the clients that take it only;
* FedProx (``cfg.prox_mu`` = μ > 0): client ``c``'s loss gets ``train``'s proximal term
  (μ/2)·‖w_c − w_c⁰‖², w_c⁰ its own starting state (:func:`~learning.train.proximal_term`);
* clipping (``‖g_c‖`` over all of a client's gradients) and the optimizer (Adam, AdamW
  or SGD, PyTorch's update rules) act per client, with per-client step counts;
* the model runs on ops vmap batches natively (:func:`~learning.models.mult.vectorised`:
  explicit attention products, dropout as a uniform draw).

* dropout masks come from each client's own generator (on the training device), seeded
  with its seed, drawn outside the vectorised function and handed to it
  (:class:`~learning.models.mult.Uniforms`), so a client's result does not depend on the
  clients batched with it.

With dropout off the result equals one-by-one training up to float rounding (the kernels
differ); with dropout on, the masks differ from those ``train`` draws from torch's
generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from learning.data.dataset import MultimodalSplit
from learning.models.mult import Uniforms, vectorised
from learning.train import Task, TrainConfig, proximal_term

State = dict[str, torch.Tensor]
CLIP_EPS = 1e-6
"""``torch.nn.utils.clip_grad_norm_``'s ε: the clip factor is max_norm / (‖g‖ + ε)."""


def _plan(split: MultimodalSplit, cfg: TrainConfig, seed: int) -> list[tuple]:
    """The (features, labels, present) of every step ``train`` takes on ``split``."""
    shuffle = torch.Generator().manual_seed(seed)
    steps: list[tuple] = []
    for _ in range(cfg.epochs):
        for batch in split.masked_batches(cfg.batch_size, shuffle=True, generator=shuffle):
            if cfg.max_steps is not None and len(steps) >= cfg.max_steps:
                break
            steps.append(batch)
    return steps


def _padded(x: torch.Tensor, size: int, fill: float = 0.0) -> torch.Tensor:
    """``x`` with rows of ``fill`` appended up to ``size`` rows."""
    pad = x.new_full((size - x.shape[0], *x.shape[1:]), fill)
    return torch.cat([x, pad])


def _step_inputs(batches: list[tuple], size: int, device: torch.device) -> tuple:
    """The given clients' batches of one step, stacked and padded to ``size`` samples, on
    ``device``: features, labels, present (or ``None``) and sample weights (C, size)."""
    features, labels, present, weights = {}, [], {}, []
    for f, y, p in batches:
        for m, x in f.items():
            features.setdefault(m, []).append(_padded(x, size))
        for m, x in (p or {}).items():
            present.setdefault(m, []).append(_padded(x, size, 1.0))
        labels.append(_padded(y, size))
        real = torch.arange(size, device=y.device) < y.shape[0]
        weights.append(real.float())
    stack = {m: torch.stack(xs).to(device) for m, xs in features.items()}
    masks = {m: torch.stack(xs).to(device) for m, xs in present.items()} or None
    return stack, torch.stack(labels).to(device), masks, torch.stack(weights).to(device)


def batched_train(
    model: nn.Module, task: Task, cfg: TrainConfig, states: Sequence[State],
    splits: Sequence[MultimodalSplit], seeds: Sequence[int],
) -> list[State]:  # fmt: skip
    """Train a copy of ``model`` from each of ``states`` on its split with its seed, all
    at once; the new states, in order. Every split must hold the same modalities, with
    presence masks in all or none."""
    if not states:
        return []
    device = torch.device(cfg.device)
    model.to(device)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: torch.stack([s[n] for s in states]).float().to(device) for n in names}
    fixed = {
        n: torch.stack([s[n] for s in states]).to(device) for n in states[0] if n not in params
    }
    start = {n: p.clone() for n, p in params.items()} if cfg.prox_mu else None
    plans = [_plan(split, cfg, seed) for split, seed in zip(splits, seeds, strict=True)]
    optimizer = _Optimizer(cfg, params)

    first = plans[next(c for c, plan in enumerate(plans) if plan)][0]
    draws = _uniforms_per_step(model, first, cfg.batch_size, device)
    uniforms = _Draws([torch.Generator(device).manual_seed(seed) for seed in seeds], draws, device)

    def loss(p: State, b: State, features, labels, present, weights, u) -> torch.Tensor:
        args = (features,) if present is None else (features, present)
        with vectorised(Uniforms(u)):
            out = functional_call(model, {**p, **b}, args)
        if task == "regression":
            each = (out.reshape(-1) - labels.float()).abs()
        else:
            each = F.cross_entropy(out, labels.long(), reduction="none")
        return (each * weights).sum() / weights.sum().clamp(min=1.0)

    def proximal(p: State, p0: State, b: State, *batch) -> torch.Tensor:
        """FedProx's loss: the client's loss + (μ/2)·‖w − w⁰‖², w⁰ its starting state."""
        return loss(p, b, *batch) + proximal_term(
            [p[n] for n in names], [p0[n] for n in names], cfg.prox_mu
        )

    objective, lead = (loss, (0, 0)) if start is None else (proximal, (0, 0, 0))
    gradient = {  # present masks given or not
        masked: vmap(grad(objective), in_dims=(*lead, 0, 0, 0 if masked else None, 0, 0))
        for masked in (False, True)
    }
    model.train()
    try:
        for i in range(max(len(plan) for plan in plans)):
            taking = [c for c, plan in enumerate(plans) if i < len(plan)]
            every = len(taking) == len(plans)
            rows = None if every else torch.tensor(taking, device=device)
            features, labels, present, weights = _step_inputs(
                [plans[c][i] for c in taking], cfg.batch_size, device
            )
            sub = params if every else {n: p[rows] for n, p in params.items()}
            constant = fixed if every else {n: b[rows] for n, b in fixed.items()}
            states_in = (sub, constant)
            if start is not None:
                states_in = (sub, start if every else {n: p[rows] for n, p in start.items()},
                             constant)  # fmt: skip
            step = gradient[present is not None]
            grads = step(*states_in, features, labels, present, weights, uniforms(taking))
            if cfg.grad_clip is not None:
                grads = _clipped(grads, cfg.grad_clip)
            params = optimizer.step(params, grads, rows)
    finally:
        uniforms.close()
    return [
        {n: (params[n][c] if n in params else fixed[n][c]).to("cpu", states[c][n].dtype)
         for n in states[c]}
        for c in range(len(states))
    ]  # fmt: skip


def _uniforms_per_step(model: nn.Module, batch: tuple, size: int, device: torch.device) -> int:
    """How many uniforms one client's forward pass on a batch of ``size`` draws for its
    dropouts (counted on ``batch``, padded; every step has the same shapes)."""
    features, _, present, _ = _step_inputs([batch], size, device)
    counter = Uniforms()
    args = {m: x[0] for m, x in features.items()}
    model.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]), vectorised(counter):
        model(args) if present is None else model(args, {m: x[0] for m, x in present.items()})
    return counter.used


class _Draws:
    """Each step's dropout uniforms: (clients taking it, draws), row k the next ``draws``
    of that client's stream. One buffer serves every step (a fresh one per step costs its
    page faults), and on the CPU the rows are drawn in parallel, one thread per torch
    thread (each row from its own stream in order, so the values do not depend on the
    threads): drawing is a fifth of a batched step's time on one thread. (Comparing them
    with p here, to hand in float keep masks, made the vectorised step slower.)"""

    def __init__(self, streams: list[torch.Generator], draws: int, device: torch.device):
        self.streams = streams
        self.buffer = torch.empty(len(streams), draws, device=device)
        threads = torch.get_num_threads() if device.type == "cpu" else 1
        self.pool = ThreadPoolExecutor(threads) if threads > 1 and len(streams) > 1 else None

    def __call__(self, taking: list[int]) -> torch.Tensor:
        u = self.buffer[: len(taking)]

        def draw(k: int) -> None:
            u[k].uniform_(generator=self.streams[taking[k]])

        if self.pool is None:
            for k in range(len(taking)):
                draw(k)
        else:
            list(self.pool.map(draw, range(len(taking))))
        return u

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _clipped(grads: State, max_norm: float) -> State:
    """Each client's gradients scaled by min(1, max_norm / (‖g_c‖ + ε)), ‖g_c‖ the norm
    of all its gradients together."""
    squares = sum(g.flatten(1).pow(2).sum(1) for g in grads.values())
    factor = (max_norm / (squares.sqrt() + CLIP_EPS)).clamp(max=1.0)
    return {n: g * factor.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}


class _Optimizer:
    """Adam, AdamW or SGD (``cfg.optimizer``, PyTorch's default hyper-parameters) over
    stacked parameters, one state and step count per client."""

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, cfg: TrainConfig, params: State) -> None:
        self.cfg = cfg
        clients = next(iter(params.values())).shape[0]
        self.count = torch.zeros(clients, device=next(iter(params.values())).device)
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}

    def step(self, params: State, grads: State, rows: torch.Tensor | None) -> State:
        """``params`` after one step of the clients at ``rows`` (``None``: all of them;
        ``grads``: theirs)."""
        cfg, (b1, b2) = self.cfg, self.BETAS

        def part(full: torch.Tensor) -> torch.Tensor:
            return full if rows is None else full[rows]

        def whole(full: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
            return new if rows is None else full.index_copy(0, rows, new)

        if rows is None:
            self.count += 1
        else:
            self.count[rows] += 1
        t = part(self.count)
        step_size = cfg.lr / (1 - b1**t)
        root = (1 - b2**t).sqrt()
        out = {}
        for n, full in params.items():
            p, g = part(full), grads[n]
            shape = (-1, *([1] * (p.dim() - 1)))
            if cfg.optimizer == "sgd":
                if cfg.weight_decay:
                    g = g + cfg.weight_decay * p
                out[n] = whole(full, p - cfg.lr * g)
                continue
            if cfg.optimizer == "adam" and cfg.weight_decay:
                g = g + cfg.weight_decay * p
            m = part(self.m[n]).lerp(g, 1 - b1)
            v = part(self.v[n]) * b2 + (1 - b2) * g * g
            self.m[n] = whole(self.m[n], m)
            self.v[n] = whole(self.v[n], v)
            decayed = p * (1 - cfg.lr * cfg.weight_decay) if cfg.optimizer == "adamw" else p
            new = decayed - step_size.view(shape) * m / (v.sqrt() / root.view(shape) + self.EPS)
            out[n] = whole(full, new)
        return out
