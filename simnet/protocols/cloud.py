"""The cloud of the three-tier protocol, asynchronous (Mega-CE²) or synchronous
(HierFAVG), and the flat FedAvg server.

Asynchronous merge of an update from edge e that pulled version v_e, at version v:

    τ   = v − v_e                                   staleness (versions since the pull)
    α_t = min(1, α · s(τ) · n_e / n̄)                n̄: mean data size of the edges heard from
    w   ← (1 − α_t)·w + α_t·w_e,   v ← v + 1

Synchronous round (every edge's update of the round in): w = Σ_e (n_e / Σ n)·w_e.
Cloud-only: the ends' raw media go up, the cloud extracts features and trains alone.
The cloud model is evaluated on the held-out test split after every new version
(measurement only: it takes no virtual time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from learning.aggregation import StalenessRule, staleness_factor
from learning.data.dataset import MultimodalSplit
from learning.federated import State
from simnet.message import Message
from simnet.protocols.hierarchical import (
    REPORTED,
    Aggregator,
    Context,
    Process,
    concat,
    kind_is,
)


@dataclass(frozen=True)
class MergeRule:
    """``α`` and the staleness rule ``s`` (with its ``a``, ``b``) of asynchronous merges."""

    alpha: float = 0.6
    staleness: StalenessRule = "polynomial"
    a: float = 0.5
    b: int = 4

    def weight(self, tau: int, samples: int, mean_samples: float) -> float:
        """α_t = min(1, α · s(τ) · n_e / n̄)."""
        factor = staleness_factor(tau, self.staleness, self.a, self.b)
        return min(1.0, self.alpha * factor * samples / mean_samples)


class CloudModel:
    """The global model, its version, its evaluation history."""

    def __init__(
        self, ctx: Context, node: str, test: MultimodalSplit, advance: Callable[[float], None]
    ) -> None:
        self.ctx = ctx
        self.node = node
        self.test = test
        self.advance = advance
        self.state: State = ctx.learner.initial
        self.version = 0
        self.history: list[tuple[float, dict[str, float]]] = []

    def publish(self, state: State) -> None:
        """Adopt ``state`` as the next version and evaluate it."""
        self.state = state
        self.version += 1
        self.evaluate()

    def evaluate(self) -> None:
        metrics = self.ctx.learner.evaluate(self.state, self.test)
        self.history.append((self.ctx.world.env.now, metrics))
        self.ctx.record(self.node, metrics, REPORTED)
        self.ctx.world.metric(self.node, "version", self.version)


class Cloud(CloudModel):
    """Serves ``edges``; stops after ``updates`` merged edge models (async) or
    ``updates / len(edges)`` rounds (sync)."""

    def __init__(
        self,
        ctx: Context,
        node: str,
        edges: list[str],
        mode: str,
        rule: MergeRule,
        updates: int,
        test: MultimodalSplit,
        advance: Callable[[float], None],
    ) -> None:
        super().__init__(ctx, node, test, advance)
        self.edges = edges
        self.mode = mode
        self.rule = rule
        self.updates = updates
        self.merged = 0
        self.sizes: dict[str, int] = {}
        self.staleness: list[int] = []
        self.round: dict[str, Message] = {}
        self.pending: list[str] = []
        self.stopped: set[str] = set()

    @property
    def done(self) -> bool:
        return self.merged >= self.updates

    def process(self) -> Process:
        """Answer first pulls at once; an edge's update is also its next pull."""
        self.evaluate()
        node = self.ctx.node(self.node)
        while len(self.stopped) < len(self.edges):
            message = yield node.receive(kind_is("model_request", "edge_update"))
            self.sizes[message.src] = message.meta["samples"]
            if message.kind == "model_request" or self.done:
                self._answer(message.src)
            elif self.mode == "async":
                yield from self._merge_async(message)
                self._answer(message.src)
            else:
                yield from self._collect_sync(message)

    def _answer(self, edge: str) -> None:
        if self.done:
            self.ctx.send(self.node, edge, "stop")
            self.stopped.add(edge)
        else:
            self.ctx.send(self.node, edge, "global_model", self.state, version=self.version)

    def _merge_async(self, message: Message) -> Process:
        tau = self.version - message.meta["version"]
        mean = sum(self.sizes.values()) / len(self.sizes)
        alpha = self.rule.weight(tau, message.meta["samples"], mean)
        state, flops = self.ctx.learner.merge(self.state, message.payload, alpha)
        yield self.ctx.compute(self.node, flops)
        self.staleness.append(tau)
        self.ctx.world.metric(self.node, "staleness", tau)
        self.ctx.world.metric(self.node, "alpha", alpha)
        self.merged += 1
        self.advance(1)
        self.publish(state)

    def _collect_sync(self, message: Message) -> Process:
        self.round[message.src] = message
        self.pending.append(message.src)
        if len(self.round) < len(self.edges):
            return
        updates = [self.round[e] for e in self.edges]
        samples = [m.meta["samples"] for m in updates]
        state, flops = self.ctx.learner.aggregate([m.payload for m in updates], samples)
        yield self.ctx.compute(self.node, flops)
        self.staleness.extend(0 for _ in updates)
        self.merged += len(updates)
        self.advance(len(updates))
        self.round = {}
        self.publish(state)
        pending, self.pending = self.pending, []
        for edge in pending:
            self._answer(edge)


class FlatServer(CloudModel):
    """Two-tier FedAvg: the cloud runs ``rounds`` synchronous rounds over every end."""

    def __init__(
        self,
        ctx: Context,
        aggregator: Aggregator,
        rounds: int,
        test: MultimodalSplit,
        advance: Callable[[float], None],
    ) -> None:
        super().__init__(ctx, aggregator.node, test, advance)
        self.aggregator = aggregator
        self.rounds = rounds

    def process(self) -> Process:
        self.evaluate()
        for _ in range(self.rounds):
            state, _ = yield from self.aggregator.run_round(self.state)
            self.advance(1)
            self.publish(state)
        self.aggregator.stop()


class CentralServer(CloudModel):
    """Cloud-only training: every end uploads its raw media; the cloud extracts the
    features (``feature_flops`` per sample) and trains centrally, ``epochs`` epochs."""

    def __init__(
        self,
        ctx: Context,
        node: str,
        data: dict[str, MultimodalSplit],
        feature_flops: float,
        epochs: int,
        test: MultimodalSplit,
        advance: Callable[[float], None],
    ) -> None:
        super().__init__(ctx, node, test, advance)
        self.data = data
        self.feature_flops = feature_flops
        self.epochs = epochs

    def process(self) -> Process:
        self.evaluate()
        node = self.ctx.node(self.node)
        for _ in self.data:
            yield node.receive(kind_is("raw_media"))
        train = concat(list(self.data.values()))
        yield self.ctx.compute(self.node, self.feature_flops * len(train))
        for _ in range(self.epochs):
            state, flops = self.ctx.learner.local_update(self.state, train, self.ctx.next_seed())
            yield self.ctx.compute(self.node, flops)
            self.advance(1)
            self.publish(state)


def raw_upload_process(ctx: Context, end: str, cloud: str, samples: int, raw_bytes: int) -> Process:
    """An end device of cloud-only training: upload ``samples`` × ``raw_bytes`` bytes of raw
    media (not materialised: the message declares its size) and be done."""
    message = Message(end, cloud, "raw_media", size_bytes=samples * raw_bytes)
    yield ctx.node(end).send(message)
