"""Three-tier (Mega-CE²) and two-tier (FedAvg) training as SimPy processes.

Roles and the messages they exchange (``kind``):

* **End** — on start: feature generation (``feature_flops`` FLOPs), then ``features`` to
  its edge (the share the edge keeps for its adapter, and its held-out samples). Then,
  for every ``edge_model``: local training, ``end_update`` back. Stops on ``stop``.
* **Edge** — ``model_request`` to the cloud once; on each ``global_model``: ``edge_model``
  to each end, collect the ``end_update``\\ s (synchronously, with an optional deadline),
  aggregate them weighted by sample count, tune its adapter on its local data with that
  model frozen (the adapter never leaves the edge), evaluate, ``edge_update`` to the
  cloud (which is also its next pull). On ``stop``: ``stop`` to its ends.
* **Cloud** — ``async``: answers every request at once with the current model and
  merges each ``edge_update`` on arrival (:class:`~simnet.protocols.cloud.Cloud`);
  ``sync``: HierFAVG, one weighted average of all edges per round.
* **Flat** (two-tier FedAvg): the cloud plays the edge's round over all ends directly.

The learning itself (training, averaging, tuning, evaluation) is the
:class:`~learning.federated.Learner`'s; here is only who waits for what.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal

import simpy
import torch

from learning.data.dataset import MultimodalSplit
from learning.federated import Learner, State
from simnet.message import Message
from simnet.node import Node
from simnet.protocols.payload import payload_split, split_payload
from simnet.world import World

Process = Generator[simpy.Event, Any, Any]

REPORTED = ("acc2_non0", "f1_non0", "mae", "corr", "accuracy", "f1_macro")
"""Evaluation metrics written to ``metrics.csv`` (those the task has)."""


@dataclass(frozen=True)
class EndData:
    """An end device's samples: ``train`` for local training, ``upload`` (a share of
    ``train``) and ``test`` sent to its edge as features."""

    train: MultimodalSplit
    upload: MultimodalSplit
    test: MultimodalSplit


@dataclass(frozen=True)
class RoundRules:
    """How an aggregator waits for its ends: ``deadline_s`` after the broadcast (``None``:
    wait for all); ``late_policy`` for an update that misses it: ``drop`` it, or use it
    in the ``next`` round."""

    deadline_s: float | None = None
    late_policy: Literal["drop", "next"] = "drop"


class Context:
    """What every role shares: the world, the learning side (a
    :class:`~learning.federated.Learner` or an ML-ECS :class:`~learning.mlecs.Mlecs`),
    the metric recorder, node seeds."""

    def __init__(self, world: World, learner: Learner | Any, seed: int) -> None:
        self.world = world
        self.learner = learner
        self.seed = seed
        self.counter = 0
        self.parameters: dict[str, int] = {}
        """Tensor elements sent, by message kind."""

    def next_seed(self) -> int:
        """A fresh training seed, deterministic in the order the simulation asks."""
        self.counter += 1
        return self.seed * 1_000_003 + self.counter

    def node(self, node_id: str) -> Node:
        return self.world.nodes[node_id]

    def send(self, src: str, dst: str, kind: str, payload: State | None = None, **meta: Any):
        """Send a message of real tensors; counts their elements under ``kind``."""
        payload = dict(payload or {})
        count = sum(t.numel() for t in payload.values())
        self.parameters[kind] = self.parameters.get(kind, 0) + count
        return self.node(src).send(Message(src, dst, kind, payload, meta))

    def compute(self, node_id: str, flops: float) -> simpy.Process:
        return self.node(node_id).compute(flops)

    def record(self, node_id: str, metrics: dict[str, float], keys: tuple[str, ...]) -> None:
        for key in keys:
            if key in metrics:
                self.world.metric(node_id, key, metrics[key])


def kind_is(*kinds: str):
    """A mailbox filter accepting messages of ``kinds``."""
    return lambda message: message.kind in kinds


def end_process(
    ctx: Context, end: str, parent: str, data: EndData, feature_flops: float
) -> Process:
    """An end device: features once, then train on every model its parent sends."""
    yield ctx.compute(end, feature_flops * (len(data.train) + len(data.test)))
    payload = {**split_payload("upload", data.upload), **split_payload("test", data.test)}
    ctx.send(end, parent, "features", payload, samples=len(data.train))
    node = ctx.node(end)
    while True:
        message = yield node.receive(kind_is("model", "stop"))
        if message.kind == "stop":
            return
        state, flops = ctx.learner.local_update(message.payload, data.train, ctx.next_seed())
        yield ctx.compute(end, flops)
        ctx.send(
            end, parent, "end_update", state, round=message.meta["round"], samples=len(data.train)
        )


class Aggregator:
    """One node's synchronous round over its ends: broadcast, collect, weighted average.

    Counts ``late`` updates (missed the deadline) and how many were ``used_late`` (the
    ``next`` policy) or ``dropped``.
    """

    def __init__(self, ctx: Context, node: str, ends: list[str], rules: RoundRules) -> None:
        self.ctx = ctx
        self.node = node
        self.ends = ends
        self.rules = rules
        self.round = 0
        self.late = self.used_late = self.dropped = 0

    def run_round(self, state: State) -> Process:
        """Broadcast ``state``; return (averaged state, samples behind it)."""
        self.round += 1
        for end in self.ends:
            self.ctx.send(self.node, end, "model", state, round=self.round)
        updates: list[Message] = []
        waiting = set(self.ends)
        node = self.ctx.node(self.node)
        env = self.ctx.world.env
        deadline = None if self.rules.deadline_s is None else env.timeout(self.rules.deadline_s)
        while waiting:
            get = node.receive(kind_is("end_update"))
            yield get if deadline is None else get | deadline
            if not get.triggered:
                get.cancel()
                break
            message = get.value
            if message.meta["round"] == self.round:
                waiting.discard(message.src)
                updates.append(message)
            elif self.rules.late_policy == "next":
                updates.append(message)
                self.used_late += 1
            else:
                self.dropped += 1
        self.late += len(waiting)  # their updates stay queued for a later round to judge
        if not updates:
            return state, 0
        samples = [m.meta["samples"] for m in updates]
        merged, flops = self.ctx.learner.aggregate([m.payload for m in updates], samples)
        yield self.ctx.compute(self.node, flops)
        return merged, sum(samples)

    def stop(self) -> None:
        for end in self.ends:
            self.ctx.send(self.node, end, "stop")


class Edge:
    """An edge server of the three-tier protocol (see the module doc)."""

    def __init__(
        self,
        ctx: Context,
        edge: str,
        cloud: str,
        ends: list[str],
        rules: RoundRules,
        adapter: State | None,
    ) -> None:
        self.ctx = ctx
        self.edge = edge
        self.cloud = cloud
        self.rounds = Aggregator(ctx, edge, ends, rules)
        self.adapter = adapter
        self.samples = 0
        self.train: MultimodalSplit | None = None
        self.test: MultimodalSplit | None = None
        self.metrics: dict[str, float] = {}
        self.state: State | None = None
        """The edge's latest model: the global one it pulled, then its aggregate (the base
        of its personalised model)."""

    def process(self) -> Process:
        yield from self._receive_features()
        node = self.ctx.node(self.edge)
        self.ctx.send(self.edge, self.cloud, "model_request", samples=self.samples)
        while True:
            message = yield node.receive(kind_is("global_model", "stop"))
            if message.kind == "stop":
                self.rounds.stop()
                return
            self.state = message.payload
            state, _ = yield from self.rounds.run_round(message.payload)
            yield from self._personalize(state)
            self.ctx.send(
                self.edge, self.cloud, "edge_update", state,
                version=message.meta["version"], samples=self.samples,
            )  # fmt: skip

    def _receive_features(self) -> Process:
        """Wait for every end's features: the edge's local data and held-out samples."""
        node = self.ctx.node(self.edge)
        uploads, tests = [], []
        for _ in self.rounds.ends:
            message = yield node.receive(kind_is("features"))
            uploads.append(payload_split("upload", message.payload))
            tests.append(payload_split("test", message.payload))
            self.samples += message.meta["samples"]
        self.train = concat(uploads)
        self.test = concat(tests)

    def _personalize(self, state: State) -> Process:
        """Tune the adapter on the edge's data with ``state`` frozen; evaluate."""
        learner = self.ctx.learner
        self.state = state
        if self.adapter is None:
            self.metrics = learner.evaluate(state, self.test)
        else:
            self.adapter, flops = learner.tune_adapter(
                state, self.adapter, self.train, self.ctx.next_seed()
            )
            yield self.ctx.compute(self.edge, flops)
            self.metrics = learner.evaluate_personal(state, self.adapter, self.test)
        self.ctx.record(self.edge, self.metrics, REPORTED)


def concat(splits: list[MultimodalSplit]) -> MultimodalSplit:
    """One split holding every sample of ``splits`` in order. Where the splits hold
    different modalities, a sample's missing ones are zeros marked absent in ``present``."""
    modalities = list(dict.fromkeys(m for s in splits for m in s.modalities))
    labels = torch.cat([s.labels for s in splits])
    if all(s.modalities == tuple(modalities) and s.present is None for s in splits):
        features = {m: torch.cat([s.features[m] for s in splits]) for m in modalities}
        return MultimodalSplit(features, labels)
    shapes = {m: s.features[m].shape[1:] for s in reversed(splits) for m in s.modalities}
    features, present = {}, {}
    for m in modalities:
        parts, masks = [], []
        for s in splits:
            has = m in s.features
            parts.append(s.features[m] if has else torch.zeros(len(s), *shapes[m]))
            mask = s.present[m] if has and s.present is not None else torch.full((len(s),), has)
            masks.append(mask)
        features[m], present[m] = torch.cat(parts), torch.cat(masks)
    return MultimodalSplit(features, labels, present)
