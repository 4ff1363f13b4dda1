"""ML-ECS rounds (Algorithm 1) between a server and its devices, as actors.

Round r, method ``ml_ecs``:

1. server: s' = fused omni-modal representations of the public training set (its LLM
   unified model) → ``representations`` to every device;
2. device j (from round 2 on, after loading the ``server_lora`` of round r − 1): CCL on
   its public share with anchors s', AMT on its private data, evaluation on its private
   test data → ``lora_update`` (its LoRA, meta ``modalities`` = |M_j|) to the server;
3. server, once every update is in: MMA (w_j = |M_j| / Σ|M_i|) into its SLM, charged
   2 FLOPs per received element (:meth:`~learning.mlecs.Mlecs.averaging_flops`), SE-CCL
   (LLM and SLM), evaluation on the public test set → ``server_lora`` to every device.

Variants: ``no_mma`` (uniform weights), ``no_se_ccl`` (step 3 without SE-CCL),
``multi_fedavg`` (no CCL, no representations; devices train locally — every trainable
weight, L_lb — upload LoRA and their modality encoders, the server averages each tensor
over the devices holding it, weighted by samples — charged like MMA — and sends each
device its part back),
``standalone`` (the same local training, no messages).

With ``deadline_s`` the server closes a round ``deadline_s`` after its broadcast with the
updates in by then (an update of an older round is discarded) and skips a round with
none (``empty_round``). A device that sits a round out (drop-out) neither trains nor
uploads; before training it loads the newest ``server_lora`` it has received, and
waits for round r − 1's (at most ``deadline_s``) only if its own upload of round r − 1
was delivered. The server sends ``server_lora`` to the devices whose updates it merged
(``ml_ecs`` and its ablations: to every device). Nothing is resent: every message is tied
to a round, which the deadline covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from learning.aggregation import weighted_average
from learning.data.dataset import MultimodalSplit
from learning.llm import load_lora_state
from learning.llm.unified import ENCODERS
from learning.mlecs import Evaluation, Mlecs, State
from simnet.actor import DELIVERED, kind_is
from simnet.protocols.context import Context
from simnet.strategies import MMA, Strategy, Update
from simnet.wire.message import Message

REPORTED = ("accuracy", "f1_macro", "rouge_lsum", "bertscore")


@dataclass
class Device:
    """A device: its node, the ``modalities`` of its SLM unified model, the model's
    ``state`` (:meth:`Mlecs.state`) and its data."""

    node: str
    modalities: tuple[str, ...]
    state: State
    public: MultimodalSplit
    private: MultimodalSplit
    test: MultimodalSplit
    metrics: dict[str, float]
    generated: tuple[str, ...] = ()
    """What its model wrote for each test sample at its last evaluation (generation tasks)."""
    rounds_done: int = 0
    """Standalone: rounds of local training done (a recovered device goes on from there)."""


def shared_state(learner: Mlecs, device: Device, method: str) -> State:
    """What a device uploads: LoRA tensors, plus its modality encoders for Multi-FedAvg."""
    shared = learner.lora_of("slm", device.modalities, device.state)
    if method == "multi_fedavg":
        shared.update({k: v.clone() for k, v in device.state.items() if k.startswith(ENCODERS)})
    return shared


def with_lora(learner: Mlecs, backbone: str, modalities: tuple[str, ...], state: State,
              shared: State) -> State:  # fmt: skip
    """``state`` with what came back from the server loaded: LoRA (``lora_`` keys) and
    any encoder weights."""
    model = learner.loaded(backbone, modalities, state)
    load_lora_state(model.lm, {k: v for k, v in shared.items() if not k.startswith(ENCODERS)})
    encoders = {k: v for k, v in shared.items() if k.startswith(ENCODERS)}
    if encoders:
        model.load_state_dict(encoders, strict=False)
    return Mlecs.state(model)


def load_server_lora(learner: Mlecs, device: Device, shared: State) -> State:
    """``device``'s state with a ``server_lora`` payload loaded."""
    return with_lora(learner, "slm", device.modalities, device.state, shared)


def evaluated(learner: Mlecs, backbone: str, modalities: tuple[str, ...], state: State,
              data: MultimodalSplit) -> Evaluation:  # fmt: skip
    """Metrics (and, for a generation task, the texts) of the model at ``state`` on
    ``data``."""
    return learner.evaluate(learner.loaded(backbone, modalities, state), data)


def average_by_key(states: list[State], weights: list[float]) -> State:
    """Each key averaged over the states that hold it, with their weights."""
    keys = sorted({k for s in states for k in s})
    out = {}
    for key in keys:
        holders = [(s, w) for s, w in zip(states, weights, strict=True) if key in s]
        merged = weighted_average([{key: s[key]} for s, _ in holders], [w for _, w in holders])
        out[key] = merged[key]
    return out


async def train_and_evaluate(
    ctx: Context, learner: Mlecs, device: Device, seed: int,
    ccl: tuple[MultimodalSplit, Any] | None = None,
) -> None:  # fmt: skip
    """A device's training of a round (:meth:`Mlecs.device_update_job`), then its
    evaluation on its test data, recorded."""
    node = ctx.node(device.node)
    modalities = device.modalities
    job = learner.device_update_job(modalities, device.state, device.private, seed, ccl)
    device.state = await node.work(job)
    result = await node.job(evaluated, learner, "slm", modalities, device.state, device.test)
    device.metrics, device.generated = result.metrics, result.generated
    ctx.record(device.node, device.metrics, REPORTED)


class MlecsServer:
    """The server's rounds; ``advance`` moves the progress bar one round."""

    def __init__(
        self,
        ctx: Context,
        learner: Mlecs,
        node: str,
        devices: list[Device],
        method: str,
        rounds: int,
        public: MultimodalSplit,
        public_test: MultimodalSplit,
        seed: int,
        advance: Callable[[float], None],
        deadline_s: float | None = None,
        strategy: Strategy | None = None,
    ) -> None:
        self.ctx, self.learner, self.node = ctx, learner, node
        self.strategy = strategy or MMA()
        self.api = ctx.node(node)
        self.devices, self.method, self.rounds = devices, method, rounds
        self.public, self.public_test = public, public_test
        self.seed, self.advance = seed, advance
        self.deadline_s = deadline_s
        self.modalities = public.modalities
        self.llm = learner.fresh("llm", self.modalities, seed)
        self.slm = learner.fresh("slm", self.modalities, seed + 1)
        """The states of the server's two unified models."""
        self.metrics: dict[str, float] = {}
        self.generated: tuple[str, ...] = ()
        """What its LLM model wrote for each public test sample at its last evaluation."""
        self.late = 0
        """Updates that came after their round closed (discarded)."""

    async def process(self) -> None:
        for r in range(1, self.rounds + 1):
            online = [d.node for d in self.devices if self.ctx.runtime.online(d.node)]
            if online:
                await self._open(r, online)
                updates = await self._collect(r, len(online))
            else:  # nobody online: the round waits out its deadline
                await self.api.sleep(self.deadline_s or 0.0)
                updates = []
            if updates:
                await self._aggregate(updates, r)
            else:
                self.api.count("empty_round")
            self.advance(1)
        for d in self.devices:
            self.ctx.send(self.node, d.node, "stop")

    async def _open(self, r: int, online: list[str]) -> None:
        """Start round ``r``: the anchors s' to every ``online`` device (Multi-FedAvg:
        ``round_start``)."""
        if self.method != "multi_fedavg":
            anchors = await self.api.work(self.learner.anchors_job(self.llm, self.public))
            for device in online:
                self.ctx.send(self.node, device, "representations", {"s": anchors}, round=r)
        else:
            for device in online:
                self.ctx.send(self.node, device, "round_start", round=r)

    async def _collect(self, r: int, expected: int) -> list[Message]:
        """Round ``r``'s updates, in device order: the ``expected`` ones (of the devices
        online at its start), or those in by the deadline."""
        order = [d.node for d in self.devices]
        updates: dict[str, Message] = {}

        def keep(message: Message) -> bool:
            """Keep round ``r``'s update (a device's first counts); count a late one."""
            if message.meta["round"] != r:
                self.late += 1
                return False
            first = message.src not in updates
            updates[message.src] = message
            return first

        await self.api.gather(kind_is("lora_update"), expected, self.deadline_s,
                              counts=keep)  # fmt: skip
        return [updates[n] for n in order if n in updates]

    async def _evaluate(self) -> None:
        """Score the server's LLM on the public test set and record it (no virtual time)."""
        result = await self.api.job(
            evaluated, self.learner, "llm", self.modalities, self.llm, self.public_test
        )
        self.metrics, self.generated = result.metrics, result.generated
        self.ctx.record(self.node, self.metrics, REPORTED)

    async def _aggregate(self, updates: list[Message], r: int) -> None:
        states = [m.payload for m in updates]
        await self.api.compute(Mlecs.averaging_flops(states))
        if self.method == "multi_fedavg":
            samples = [m.meta["samples"] for m in updates]
            merged = await self.api.job(average_by_key, states, samples)
            for m in updates:
                part = {k: v for k, v in merged.items() if k in m.payload}
                self.ctx.send(self.node, m.src, "server_lora", part, round=r)
            return
        merged = await self.api.job(self._merge, updates, r)
        self.slm = await self.api.job(
            with_lora, self.learner, "slm", self.modalities, self.slm, merged
        )
        if self.method != "no_se_ccl":
            job = self.learner.server_update_job(self.llm, self.slm, self.public,
                                                 self.seed * 1000 + r)  # fmt: skip
            self.llm, self.slm = await self.api.work(job)
        await self._evaluate()
        shipped = await self.api.job(self.learner.lora_of, "slm", self.modalities, self.slm)
        for d in self.devices:
            self.ctx.send(self.node, d.node, "server_lora", shipped, round=r)

    def _merge(self, messages: list[Message], r: int) -> State:
        """The strategy's aggregate of round ``r``'s LoRA updates (weights: modality
        counts, 1 each for ``no_mma``) against the server SLM's LoRA."""
        updates = [
            Update(m.payload, 1 if self.method == "no_mma" else m.meta["modalities"], m.src, 0, r)
            for m in messages
        ]
        current = self.learner.lora_of("slm", self.modalities, self.slm)
        merged = self.strategy.aggregate(current, updates)
        self.strategy.on_round_end(r, merged)
        return merged


class DeviceActor:
    """A device's rounds (see the module doc); :meth:`process` is also its restart."""

    def __init__(
        self, ctx: Context, learner: Mlecs, device: Device, server: str, method: str,
        seed: int, deadline_s: float | None,
    ) -> None:  # fmt: skip
        self.ctx, self.learner, self.device = ctx, learner, device
        self.server, self.method, self.seed = server, method, seed
        self.deadline_s = deadline_s

    async def process(self) -> None:
        ctx, device, seed = self.ctx, self.device, self.seed
        node = ctx.node(device.node)
        uploaded = 0  # the last round whose upload was delivered (since the last start)
        while True:
            message = await node.receive(kind_is("representations", "round_start", "stop"))
            if message.kind == "stop":
                return
            r = message.meta["round"]
            await self._load_server_lora(r, waits=uploaded == r - 1 and r > 1)
            if node.sits_out(r):
                continue
            own = seed + 2 * r + 1  # the seed of training on its private data
            await self._train(message, own)
            meta = {
                "round": r,
                "modalities": len(device.private.modalities),
                "samples": len(device.private),
            }
            shared = await self._shared()
            delivery = await ctx.send(device.node, self.server, "lora_update", shared, **meta)
            if delivery.status == DELIVERED:
                uploaded = r
            else:
                node.count("gave_up")

    async def _load_server_lora(self, r: int, waits: bool) -> None:
        """Load the newest ``server_lora`` received; if ``waits``, first wait (at most
        ``deadline_s``) for round r − 1's."""
        node = self.ctx.node(self.device.node)
        received = node.take(kind_is("server_lora"))
        if waits and not any(m.meta["round"] == r - 1 for m in received):
            back = await node.receive(kind_is("server_lora", round=r - 1), self.deadline_s)
            received += [] if back is None else [back]
        if received:
            newest = max(received, key=lambda m: m.meta["round"])
            await self._apply(newest.payload)

    async def _train(self, message: Message, seed: int) -> None:
        """The round's training and evaluation: CCL with the server's anchors then AMT;
        Multi-FedAvg (``round_start``): plain local training."""
        device = self.device
        ccl = (device.public, message.payload["s"]) if message.kind == "representations" else None
        await train_and_evaluate(self.ctx, self.learner, device, seed, ccl)

    async def _shared(self) -> State:
        """The payload of the round's ``lora_update``."""
        node = self.ctx.node(self.device.node)
        return await node.job(shared_state, self.learner, self.device, self.method)

    async def _apply(self, payload: State) -> None:
        """Take in a ``server_lora`` payload."""
        device, node = self.device, self.ctx.node(self.device.node)
        device.state = await node.job(load_server_lora, self.learner, device, payload)


async def standalone(
    ctx: Context,
    learner: Mlecs,
    device: Device,
    rounds: int,
    seed: int,
    advance: Callable[[float], None],
) -> None:
    """Standalone: local training on private data each round, no messages (a recovered
    device goes on with the rounds it has not done; a round it sits out counts as done)."""
    node = ctx.node(device.node)
    while device.rounds_done < rounds:
        r = device.rounds_done + 1
        if not node.sits_out(r):
            await train_and_evaluate(ctx, learner, device, seed + 2 * r + 1)
        device.rounds_done = r
        advance(1)
