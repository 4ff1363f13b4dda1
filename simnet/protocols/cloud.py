"""The cloud of the three-tier protocol, asynchronous (Mega-CE²) or synchronous
(HierFAVG), and the flat FedAvg server.

Asynchronous: an update from edge e that pulled version v_e arrives at version v with
staleness τ = v − v_e (versions since the pull); once the strategy's ``buffer`` holds
its updates (1 by default: at once) the strategy aggregates them into version v + 1 —
FedAsync by default (:class:`~simnet.strategies.FedAsync`: α_t = min(1, α·s(τ)·n_e/n̄),
w ← (1 − α_t)·w + α_t·w_e), or FedBuff, or the user's.

Synchronous round (every edge's update of the round in, or — with ``deadline_s`` —
those in by ``deadline_s`` after the round's first): the strategy aggregates them,
FedAvg by default: w = Σ_e (n_e / Σ n)·w_e.
An update for an older version than the current one is late: not merged, answered with
the current model. With ``deadline_s``, once training is done the cloud waits at most
``deadline_s`` without hearing from an edge before it stops the edges it has not stopped.
Cloud-only: the ends' raw media go up, the cloud extracts features and trains alone (on
the media of every end, or of those in by ``deadline_s`` after the first).
The cloud model is evaluated on the held-out test split after every new version
(measurement only: it takes no virtual time).
"""

from __future__ import annotations

from collections.abc import Callable

from learning.data.dataset import MultimodalSplit
from learning.federated import State
from simnet.actor import kind_is
from simnet.protocols.aggregate import aggregate
from simnet.protocols.context import Context
from simnet.protocols.hierarchical import REPORTED, Aggregator, concat
from simnet.strategies import Strategy, Update
from simnet.wire.message import Message


class CloudModel:
    """The global model, its version, its evaluation history."""

    def __init__(
        self, ctx: Context, node: str, test: MultimodalSplit, advance: Callable[[float], None]
    ) -> None:
        self.ctx = ctx
        self.node = node
        self.api = ctx.node(node)
        self.test = test
        self.advance = advance
        self.state: State = ctx.learner.initial
        self.version = 0
        self.history: list[tuple[float, dict[str, float]]] = []

    async def publish(self, state: State) -> None:
        """Adopt ``state`` as the next version and evaluate it."""
        self.state = state
        self.version += 1
        await self.evaluate()

    async def evaluate(self) -> None:
        metrics = await self.api.job(self.ctx.learner.evaluate, self.state, self.test)
        self.history.append((self.api.now, metrics))
        self.ctx.record(self.node, metrics, REPORTED)
        self.api.metric("version", self.version)


class Cloud(CloudModel):
    """Serves ``edges``; stops after ``updates`` merged edge models (async) or
    ``updates / len(edges)`` rounds (sync); ``deadline_s`` as in the module doc."""

    def __init__(
        self,
        ctx: Context,
        node: str,
        edges: list[str],
        mode: str,
        strategy: Strategy,
        updates: int,
        test: MultimodalSplit,
        advance: Callable[[float], None],
        deadline_s: float | None = None,
    ) -> None:
        super().__init__(ctx, node, test, advance)
        self.edges = edges
        self.mode = mode
        self.strategy = strategy
        self.buffered: list[Update] = []
        """Asynchronous updates waiting for the strategy's ``buffer`` to fill."""
        self.updates = updates
        self.deadline_s = deadline_s
        self.merged = 0
        self.late = 0
        """Updates that arrived for an older version than the current (sync: after their
        round closed), not merged."""
        self.requests: dict[str, int] = {}
        """The latest request number heard from each edge; an answer carries it."""
        self.staleness: list[int] = []
        self.round: dict[str, Message] = {}
        self.round_closes: float | None = None
        self.pending: list[str] = []
        self.stopped: set[str] = set()

    @property
    def done(self) -> bool:
        return self.merged >= self.updates

    async def process(self) -> None:
        """Answer first pulls at once; an edge's update is also its next pull."""
        await self.evaluate()
        node = self.api
        while len(self.stopped) < len(self.edges):
            message = await node.receive(kind_is("model_request", "edge_update"), self._wait())
            if message is None:  # a deadline passed
                if self.done:
                    for edge in self.edges:
                        self._answer(edge)
                    return
                await self._close_round()
                continue
            if self.mode == "async":
                self.strategy.on_client(message.src, message.meta["samples"])
            self.requests[message.src] = message.meta["request"]
            if message.kind == "model_request" or self.done:
                self._answer(message.src)
            elif self.mode == "async":
                await self._merge_async(message)
                self._answer(message.src)
            elif message.meta["version"] != self.version:
                self.late += 1
                self._answer(message.src)
            else:
                await self._collect_sync(message)

    def _wait(self) -> float | None:
        """Seconds to wait for the next message before acting on a deadline (``None``:
        as long as it takes)."""
        if self.deadline_s is None:
            return None
        if self.done:
            return self.deadline_s
        if self.round_closes is not None:
            return max(0.0, self.round_closes - self.api.now)
        return None

    def _answer(self, edge: str) -> None:
        if edge in self.stopped:
            return
        if self.done:
            self.ctx.post(self.node, edge, "stop")
            self.stopped.add(edge)
        else:
            request = self.requests[edge]
            self.ctx.post(
                self.node, edge, "global_model", self.state, version=self.version, request=request
            )

    async def _merge_async(self, message: Message) -> None:
        """Buffer the update; once the strategy's ``buffer`` is full, aggregate them into
        the next version (the staleness metric: the update's τ, or the buffer's mean)."""
        tau = self.version - message.meta["version"]
        update = Update(message.payload, message.meta["samples"], message.src, tau,
                        self.version + 1)  # fmt: skip
        self.buffered.append(update)
        if len(self.buffered) < self.strategy.buffer:
            return
        updates, self.buffered = self.buffered, []
        taus = [u.staleness for u in updates]
        shown = taus[0] if len(taus) == 1 else sum(taus) / len(taus)
        state = await aggregate(self.ctx, self.node, self.strategy, self.state, updates,
                                {"staleness": shown})  # fmt: skip
        self.staleness.extend(taus)
        self.merged += len(updates)
        self.advance(len(updates))
        await self.publish(state)

    async def _collect_sync(self, message: Message) -> None:
        if not self.round and self.deadline_s is not None:
            self.round_closes = self.api.now + self.deadline_s
        self.round[message.src] = message
        self.pending.append(message.src)
        if len(self.round) == len(self.edges):
            await self._close_round()

    async def _close_round(self) -> None:
        """Average the round's updates (in edge order), publish, answer their senders."""
        messages = [self.round[e] for e in self.edges if e in self.round]
        updates = [Update(m.payload, m.meta["samples"], m.src, 0, self.version + 1)
                   for m in messages]  # fmt: skip
        state = await aggregate(self.ctx, self.node, self.strategy, self.state, updates)
        self.staleness.extend(0 for _ in updates)
        self.merged += len(updates)
        self.advance(len(updates))
        self.round, self.round_closes = {}, None
        await self.publish(state)
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

    async def process(self) -> None:
        await self.evaluate()
        for _ in range(self.rounds):
            state, trained = await self.aggregator.run_round(self.state)
            self.advance(1)
            if trained:
                await self.publish(state)
            else:  # no end's update came: nothing to publish
                self.api.count("empty_round")
        self.aggregator.stop()


class CentralServer(CloudModel):
    """Cloud-only training: every end uploads its raw media; the cloud extracts the
    features (``feature_flops`` per sample) and trains centrally, ``epochs`` epochs, on the
    media that came (with ``deadline_s``: in by ``deadline_s`` after the first)."""

    def __init__(
        self,
        ctx: Context,
        node: str,
        data: dict[str, MultimodalSplit],
        feature_flops: float,
        epochs: int,
        test: MultimodalSplit,
        advance: Callable[[float], None],
        deadline_s: float | None = None,
    ) -> None:
        super().__init__(ctx, node, test, advance)
        self.data = data
        self.feature_flops = feature_flops
        self.epochs = epochs
        self.deadline_s = deadline_s

    async def process(self) -> None:
        await self.evaluate()
        node = self.api
        arrived: set[str] = set()

        def new(message: Message) -> bool:
            """Whether the media are an end's first (not a resend)."""
            first = message.src not in arrived
            arrived.add(message.src)
            return first

        await node.gather(kind_is("raw_media"), len(self.data), self.deadline_s,
                          from_first=True, counts=new)  # fmt: skip
        train = concat([split for end, split in self.data.items() if end in arrived])
        await node.compute(self.feature_flops * len(train))
        for _ in range(self.epochs):
            state = await node.work(
                self.ctx.learner.local_update_job(self.state, train, self.ctx.next_seed())
            )
            self.advance(1)
            await self.publish(state)


async def raw_upload(ctx: Context, end: str, cloud: str, samples: int, raw_bytes: int) -> bool:
    """An end device of cloud-only training: upload ``samples`` × ``raw_bytes`` bytes of raw
    media (not materialised: the message declares its size; resent if dropped)."""
    node = ctx.node(end)
    size = samples * raw_bytes
    return await ctx.retrying(end, lambda: node.send(cloud, "raw_media", size_bytes=size))
