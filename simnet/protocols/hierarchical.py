"""Three-tier (Mega-CE²) and two-tier (FedAvg) training as actors.

Roles and the messages they exchange (``kind``):

* **End** — on start: feature generation (``feature_flops`` FLOPs, once), then ``features``
  to its edge (the share the edge keeps for its adapter, and its held-out samples). Then,
  for every ``model`` of round r: unless it sits round r out (drop-out), local training,
  ``end_update`` back. Stops on ``stop``. If the delivery of its features gave up, it
  delivers them again before training on each model it receives (and sits in) until one
  gets through; the edge takes them in after that round.
* **Edge** — waits for its ends' features (all of them; with a deadline, at most
  ``deadline_s`` after the first), then ``model_request`` to the cloud; on each
  ``global_model``: ``model`` to each end, collect the ``end_update`` messages (synchronously,
  with an optional deadline), aggregate them weighted by sample count, tune its adapter
  on its local data with that model frozen (the adapter never leaves the edge), evaluate,
  ``edge_update`` to the cloud (which is also its next pull). A round that brought no
  update is not pushed (``skipped_push``): the edge pulls again instead. On ``stop``:
  ``stop`` to its ends.
* **Cloud** — ``async``: answers every request at once with the current model and
  merges each ``edge_update`` on arrival (:class:`~simnet.protocols.cloud.Cloud`);
  ``sync``: HierFAVG, one weighted average of the edges per round.
* **Flat** (two-tier FedAvg): the cloud plays the edge's round over all ends directly.

Dropped messages (docs/faults.md): ``features``, ``model_request``, ``edge_update`` and the
cloud's answers are resent (:meth:`Context.deliver`); a round's ``model`` and
``end_update`` are not (the round's deadline covers them). A crashed end or edge starts
again from :meth:`End.process` / :meth:`Edge.process` when it recovers, with what it had
stored (its data, features, adapter) and nothing it was holding in memory.

The learning itself (training, averaging, tuning, evaluation) is the
:class:`~learning.federated.Learner`'s; here is only who waits for what.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from learning.data.dataset import MultimodalSplit
from learning.federated import State
from simnet.actor import DELIVERED, kind_is
from simnet.errors import PluginError
from simnet.protocols.aggregate import aggregate
from simnet.protocols.context import Context
from simnet.protocols.payload import payload_split, split_payload
from simnet.strategies import FedAvg, Strategy, Update
from simnet.wire.message import Message

REPORTED = ("acc2_non0", "f1_non0", "mae", "corr", "accuracy", "f1_macro")
"""Evaluation metrics written to ``metrics.csv`` (those the task has)."""
GLOBAL = "global_"
"""Prefix of an edge's metrics of its base model alone (beside its personalised ones)."""


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


class End:
    """An end device: its features (until delivered), then local training on every model
    its parent sends."""

    def __init__(
        self, ctx: Context, end: str, parent: str, data: EndData, feature_flops: float
    ) -> None:
        self.ctx = ctx
        self.end = end
        self.parent = parent
        self.data = data
        self.feature_flops = feature_flops
        self.features_made = False
        """Whether its features were generated (they are stored: a crash keeps them)."""
        self.features_sent = False
        """Whether a delivery of its features got through."""

    async def process(self) -> None:
        """The end's actor, from the start or after a recovery."""
        ctx, end, data = self.ctx, self.end, self.data
        node = ctx.node(end)
        await self._send_features()
        while True:
            message = await node.receive(kind_is("model", "stop"))
            if message.kind == "stop":
                return
            r = message.meta["round"]
            if node.sits_out(r):
                continue
            await self._send_features()
            state = await node.work(
                ctx.learner.local_update_job(message.payload, data.train, ctx.next_seed())
            )
            delivery = await ctx.send(
                end, self.parent, "end_update", state, round=r, samples=len(data.train)
            )
            if delivery.status != DELIVERED:
                node.count("gave_up")

    async def _send_features(self) -> None:
        """Generate the features (the first time) and deliver them to the parent by the
        retry policy, unless a delivery of them already got through."""
        if self.features_sent:
            return
        data, node = self.data, self.ctx.node(self.end)
        if not self.features_made:
            await node.compute(self.feature_flops * (len(data.train) + len(data.test)))
            self.features_made = True
        payload = {**split_payload("upload", data.upload), **split_payload("test", data.test)}
        self.features_sent = await self.ctx.deliver(
            self.end, self.parent, "features", payload, samples=len(data.train)
        )


class Aggregator:
    """One node's synchronous round over its ends: select, broadcast, collect, aggregate
    (by ``strategy``: FedAvg by sample count unless the scenario names another).

    Counts ``late`` updates (missed the deadline) and how many were ``used_late`` (the
    ``next`` policy) or ``dropped``. A round's clients are ``strategy.select(r, online ends,
    rng)`` with ``rng`` seeded by (seed, node, r); when that is not every end, each
    selected end is recorded as a ``selected:END`` metric of round r.
    """

    def __init__(
        self, ctx: Context, node: str, ends: list[str], rules: RoundRules,
        strategy: Strategy | None = None,
    ) -> None:  # fmt: skip
        self.ctx = ctx
        self.node = node
        self.ends = ends
        self.rules = rules
        self.strategy = strategy or FedAvg()
        self.round = 0
        self.late = self.used_late = self.dropped = 0

    def select(self) -> list[str]:
        """The ends of the current round, chosen among those online (recorded when not
        every end); none when no end is online."""
        online = [end for end in self.ends if self.ctx.runtime.online(end)]
        if not online:
            return []
        key = zlib.crc32(self.node.encode())
        rng = np.random.default_rng([self.ctx.seed, key, self.round])
        chosen = self.strategy.select(self.round, online, rng)
        unknown = [c for c in chosen if c not in online]
        if unknown or not chosen:
            raise PluginError(
                getattr(self.strategy, "field", "workload.edge.strategy"),
                getattr(self.strategy, "ref", type(self.strategy).__name__),
                f"ValueError: select gave {chosen!r}, not a non-empty subset of {online}",
            )  # fmt: skip
        sampling = self.strategy.sample_size(len(online)) < len(online)
        if sampling or len(chosen) < len(self.ends):
            node = self.ctx.node(self.node)
            for end in chosen:
                node.metric(f"selected:{end}", self.round)
        return chosen

    async def run_round(self, state: State) -> tuple[State, int]:
        """Broadcast ``state`` to the round's ends; return (aggregated state, samples
        behind it); ``(state, 0)`` when no update came."""
        self.round += 1
        chosen = self.select()
        node = self.ctx.node(self.node)
        if not chosen:  # nobody online: the round waits out its deadline
            await node.sleep(self.rules.deadline_s or 0.0)
            return state, 0
        for end in chosen:
            self.ctx.send(self.node, end, "model", state, round=self.round)
        updates: list[Message] = []
        waiting = set(chosen)

        def judge(message: Message) -> bool:
            """Keep this round's update (it counts) or a late one (``next``), or drop it."""
            if message.meta["round"] == self.round:
                counted = message.src in waiting
                waiting.discard(message.src)
                updates.append(message)
                return counted
            if self.rules.late_policy == "next":
                updates.append(message)
                self.used_late += 1
            else:
                self.dropped += 1
            return False

        await node.gather(kind_is("end_update"), len(waiting), self.rules.deadline_s, counts=judge)
        self.late += len(waiting)  # their updates stay queued for a later round to judge
        if not updates:
            return state, 0
        merged = await aggregate(self.ctx, self.node, self.strategy, state, [
            Update(m.payload, m.meta["samples"], m.src, self.round - m.meta["round"], self.round)
            for m in updates
        ])  # fmt: skip
        return merged, sum(m.meta["samples"] for m in updates)

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
        strategy: Strategy | None = None,
    ) -> None:
        self.ctx = ctx
        self.edge = edge
        self.cloud = cloud
        self.rounds = Aggregator(ctx, edge, ends, rules, strategy)
        self.adapter = adapter
        self.samples = 0
        self.heard: set[str] = set()
        """Ends whose features arrived."""
        self.uploads: list[MultimodalSplit] = []
        self.tests: list[MultimodalSplit] = []
        self._local: tuple[MultimodalSplit, MultimodalSplit] | None = None
        self.metrics: dict[str, float] = {}
        """The latest evaluation of the edge's model (personalised when it has an adapter)."""
        self.global_metrics: dict[str, float] = {}
        """With an adapter: the latest evaluation of the base alone on the same samples."""
        self.request = 0
        """Number of the edge's latest pull or push (kept across crashes)."""
        self.state: State | None = None
        """The edge's latest model: the global one it pulled, then its aggregate (the base
        of its personalised model)."""

    async def process(self) -> None:
        """The edge's actor, from the start or after a recovery (it pulls again)."""
        await self._receive_features()
        node = self.ctx.node(self.edge)
        if not await self._request("model_request", None, {}):
            return
        while True:
            message = await node.receive(kind_is("global_model", "stop"))
            if message.kind == "stop":
                self.rounds.stop()
                return
            if message.meta["request"] != self.request:
                continue  # the answer to a request from before a crash: superseded
            self.state = message.payload
            state, trained = await self.rounds.run_round(message.payload)
            self._take_late_features()
            if trained == 0:  # nothing new to push: pull again
                node.count("skipped_push")
                kind, payload, meta = "model_request", None, {}
            else:
                await self._personalize(state)
                kind, payload, meta = "edge_update", state, {"version": message.meta["version"]}
            if not await self._request(kind, payload, meta):
                return

    async def _request(self, kind: str, payload: State | None, meta: dict) -> bool:
        """Pull (``model_request``) or push (``edge_update``, also a pull) under a new
        request number, which the cloud's answer carries; returns whether it got through."""
        self.request += 1
        meta = {**meta, "samples": self.samples, "request": self.request}
        return await self.ctx.deliver(self.edge, self.cloud, kind, payload, **meta)

    async def _receive_features(self) -> None:
        """Wait for the features (the edge's local data and held-out samples) of every end
        online now, at least one; with a deadline, for at most ``deadline_s`` after the
        first arrived."""
        node = self.ctx.node(self.edge)
        online = [e for e in self.rounds.ends if self.ctx.runtime.online(e)]
        missing = len([e for e in online if e not in self.heard]) or int(not self.heard)
        await node.gather(kind_is("features"), missing, self.rounds.rules.deadline_s,
                          from_first=not self.heard, counts=self._add_features)  # fmt: skip

    def _add_features(self, message: Message) -> bool:
        """Keep an end's features; whether they are new (not a resend)."""
        if message.src in self.heard:
            return False  # a resend of features already in
        self.heard.add(message.src)
        self.uploads.append(payload_split("upload", message.payload))
        self.tests.append(payload_split("test", message.payload))
        self.samples += message.meta["samples"]
        return True

    def _take_late_features(self) -> None:
        for message in self.ctx.node(self.edge).take(kind_is("features")):
            self._add_features(message)

    def local_data(self) -> tuple[MultimodalSplit, MultimodalSplit]:
        """The adapter's training data and the held-out samples: every end's upload and
        test shares received so far."""
        if self._local is None or len(self._local[0]) != sum(len(u) for u in self.uploads):
            self._local = concat(self.uploads), concat(self.tests)
        return self._local

    async def _personalize(self, state: State) -> None:
        """Tune the adapter on the edge's data with ``state`` frozen; evaluate the
        personalised model and, for its gain, ``state`` alone on the same held-out samples
        (recorded as ``global_*``). Evaluations take no virtual time. An edge that has no
        end's features yet has nothing to do either on."""
        learner, node = self.ctx.learner, self.ctx.node(self.edge)
        self.state = state
        if not self.uploads:
            return
        train, test = self.local_data()
        base = await node.job(learner.evaluate, state, test)
        if self.adapter is None:
            self.metrics = base
        else:
            self.adapter = await node.work(
                learner.tune_adapter_job(state, self.adapter, train, self.ctx.next_seed())
            )
            self.metrics = await node.job(learner.evaluate_personal, state, self.adapter, test)
            self.global_metrics = base
            self.ctx.record(self.edge, {f"{GLOBAL}{k}": v for k, v in base.items()},
                            tuple(f"{GLOBAL}{k}" for k in REPORTED))  # fmt: skip
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
