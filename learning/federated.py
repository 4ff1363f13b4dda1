"""The learning side of federated training: what a node computes, never when.

A :class:`Learner` owns one model architecture and its training settings and turns model
states (``dict[str, Tensor]``, what messages carry) into new states. Each step that costs
compute time is planned as a :class:`~learning.jobs.Job` (``*_job`` methods) that knows
its FLOPs before it runs; an executor then runs the step (``local_update``,
``tune_adapter``, ``aggregate``, ``merge``) on this learner or on a copy rebuilt in
another process from the learner's recipe (its ``__reduce__``: factory, task, settings,
seed, device). It keeps one scratch model per kind (plain, personalised) and loads states
into it, so nodes need not hold models of their own; a learner runs one step at a time.
Steps run on the learner's ``device`` (``cpu`` or ``cuda``); states come and go on the CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from learning.aggregation import mix, weighted_average
from learning.batched import batched_train
from learning.data.dataset import MultimodalSplit
from learning.flops import forward_flops
from learning.jobs import Job
from learning.models import FusionModel, PersonalizedModel
from learning.models.adapter import EdgeAdapter
from learning.train import Task, TrainConfig, evaluate, predict, train, train_flops

State = dict[str, torch.Tensor]

AGGREGATE_FLOPS_PER_ELEMENT = 2
"""A weighted sum costs one multiply-add per element and state."""
MIX_FLOPS_PER_ELEMENT = 3
"""(1 − α)·w + α·w_new as w + α·(w_new − w): a subtraction and a multiply-add."""


def copy_state(module: torch.nn.Module) -> State:
    """A detached copy of ``module``'s state, on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class Learner:
    """Local training, aggregation, adapter tuning and evaluation for one ``task``.

    ``factory`` builds a fresh model (same architecture every call; picklable, e.g. a
    ``functools.partial``, for executors in other processes); ``local`` is the training
    of an end device, ``adapter`` the tuning of an edge adapter (base frozen). Training,
    evaluation and inference run on ``device``; FLOPs are counted on CPU copies.
    """

    def __init__(
        self,
        factory: Callable[[], FusionModel],
        task: Task,
        local: TrainConfig,
        adapter: TrainConfig,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.factory = factory
        self.task = task
        self.local = replace(local, device=device)
        self.adapter = replace(adapter, device=device)
        self.seed = seed
        self.device = device
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.model = factory()
            self.personal = PersonalizedModel(factory())
        self.initial = copy_state(self.model)
        self.personal.freeze_base()
        self.params = sum(v.numel() for v in self.initial.values())
        """Elements of a model state (parameters and buffers)."""
        self.trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        """Trainable parameters of the global model."""
        on_cpu = device == "cpu"
        self.work = self.model if on_cpu else copy.deepcopy(self.model).to(device)
        self.work_personal = self.personal if on_cpu else copy.deepcopy(self.personal).to(device)
        """The models that train and predict, on ``device`` (the CPU ones count FLOPs)."""

    def __reduce__(self) -> tuple[type[Learner], tuple]:
        """Pickled as its recipe: an unpickled learner is built afresh (same models)."""
        recipe = (self.factory, self.task, self.local, self.adapter, self.seed, self.device)
        return Learner, recipe

    def local_update_job(self, state: State, data: MultimodalSplit, seed: int) -> Job:
        """:meth:`local_update` of ``state`` on ``data`` with the local settings."""
        flops = train_flops(self.model, data, self.task, replace(self.local, seed=seed))
        group = (data.modalities, data.present is None)
        return Job(self, "local_update", (state, data, seed), flops, batch="local_updates",
                   group=group)  # fmt: skip

    def local_update(self, state: State, data: MultimodalSplit, seed: int) -> State:
        """Train ``state`` on ``data`` with the local settings: the new state."""
        self.work.load_state_dict(state)
        train(self.work, data, self.task, replace(self.local, seed=seed))
        return copy_state(self.work)

    def local_updates(
        self, states: Sequence[State], datas: Sequence[MultimodalSplit], seeds: Sequence[int]
    ) -> list[State]:
        """:meth:`local_update` of many clients as one vectorised job
        (:func:`~learning.batched.batched_train`); the data must hold the same modalities,
        with presence masks in all or none."""
        return batched_train(self.work, self.task, self.local, states, datas, seeds)

    def aggregate_job(self, states: Sequence[State], weights: Sequence[float]) -> Job:
        """:meth:`aggregate`: one multiply-add per element and state."""
        flops = AGGREGATE_FLOPS_PER_ELEMENT * self.params * len(states)
        return Job(self, "aggregate", (list(states), list(weights)), flops, local=True)

    @staticmethod
    def aggregate(states: Sequence[State], weights: Sequence[float]) -> State:
        """Weighted average of ``states``."""
        return weighted_average(states, weights)

    def merge_job(self, state: State, new: State, alpha: float) -> Job:
        """:meth:`merge`: a subtraction and a multiply-add per element."""
        flops = MIX_FLOPS_PER_ELEMENT * self.params
        return Job(self, "merge", (state, new, alpha), flops, local=True)

    @staticmethod
    def merge(state: State, new: State, alpha: float) -> State:
        """(1 − α)·state + α·new."""
        return mix(state, new, alpha)

    def new_adapter(self, seed: int) -> State:
        """A freshly initialised adapter state, N(0, 0.02²) weights, drawn from ``seed``."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out_dim = self.personal.adapter.out.out_features
            fresh = EdgeAdapter(self.personal.base.token_dim, out_dim)
        return copy_state(fresh)

    def tune_adapter_job(
        self, base: State, adapter: State, data: MultimodalSplit, seed: int
    ) -> Job:
        """:meth:`tune_adapter` of ``adapter`` on ``data`` with the base frozen at ``base``."""
        flops = train_flops(self.personal, data, self.task, replace(self.adapter, seed=seed))
        return Job(self, "tune_adapter", (base, adapter, data, seed), flops)

    def tune_adapter(self, base: State, adapter: State, data: MultimodalSplit, seed: int) -> State:
        """Train ``adapter`` on ``data`` with the base frozen at ``base``: the new adapter."""
        self._load_personal(base, adapter)
        train(self.work_personal, data, self.task, replace(self.adapter, seed=seed))
        return copy_state(self.work_personal.adapter)

    def evaluate(self, state: State, data: MultimodalSplit) -> dict[str, float]:
        """Held-out metrics of ``state`` on ``data``."""
        self.work.load_state_dict(state)
        return evaluate(self.work, data, self.task, self.device)

    def evaluate_personal(
        self, base: State, adapter: State, data: MultimodalSplit
    ) -> dict[str, float]:
        """Held-out metrics of the personalised model (base + adapter) on ``data``."""
        self._load_personal(base, adapter)
        return evaluate(self.work_personal, data, self.task, self.device)

    def infer(
        self, base: State, adapter: State | None, sample: MultimodalSplit
    ) -> tuple[torch.Tensor, int]:
        """Predictions for ``sample`` by ``base`` (+ ``adapter``): (outputs, forward FLOPs)."""
        if adapter is None:
            model, counted = self.work, self.model
            self.work.load_state_dict(base)
        else:
            model, counted = self.work_personal, self.personal
            self._load_personal(base, adapter)
        flops = forward_flops(counted, (sample.features,))
        return predict(model, sample, device=self.device), flops

    def _load_personal(self, base: State, adapter: State) -> None:
        self.work_personal.base.load_state_dict(base)
        self.work_personal.adapter.load_state_dict(adapter)
