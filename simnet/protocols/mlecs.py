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

from learning.aggregation import weighted_average
from learning.data.dataset import MultimodalSplit
from learning.llm import load_lora_state
from learning.llm.unified import ENCODERS, UnifiedModel
from learning.mlecs import Mlecs, State
from simnet.actor import DELIVERED, kind_is
from simnet.message import Message
from simnet.protocols.context import Context

REPORTED = ("accuracy", "f1_macro")


@dataclass
class Device:
    """A device: its node, unified model, modalities and data."""

    node: str
    model: UnifiedModel
    public: MultimodalSplit
    private: MultimodalSplit
    test: MultimodalSplit
    metrics: dict[str, float]
    rounds_done: int = 0
    """Standalone: rounds of local training done (a recovered device goes on from there)."""


def shared_state(model: UnifiedModel, method: str) -> State:
    """What a device uploads: LoRA tensors, plus its modality encoders for Multi-FedAvg."""
    state = Mlecs.lora(model)
    if method == "multi_fedavg":
        state.update(
            {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(ENCODERS)}
        )
    return state


def load_shared(model: UnifiedModel, state: State) -> None:
    """Load what came back from the server: LoRA (``lora_`` keys) and any encoder weights."""
    lora = {k: v for k, v in state.items() if not k.startswith(ENCODERS)}
    load_lora_state(model.lm, lora)
    encoders = {k: v for k, v in state.items() if k.startswith(ENCODERS)}
    if encoders:
        model.load_state_dict(encoders, strict=False)


def average_by_key(states: list[State], weights: list[float]) -> State:
    """Each key averaged over the states that hold it, with their weights."""
    keys = sorted({k for s in states for k in s})
    out = {}
    for key in keys:
        holders = [(s, w) for s, w in zip(states, weights, strict=True) if key in s]
        merged = weighted_average([{key: s[key]} for s, _ in holders], [w for _, w in holders])
        out[key] = merged[key]
    return out


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
    ) -> None:
        self.ctx, self.learner, self.node = ctx, learner, node
        self.api = ctx.node(node)
        self.devices, self.method, self.rounds = devices, method, rounds
        self.public, self.public_test = public, public_test
        self.seed, self.advance = seed, advance
        self.deadline_s = deadline_s
        modalities = public.modalities
        self.llm = learner.model("llm", modalities, seed)
        self.slm = learner.model("slm", modalities, seed + 1)
        self.metrics: dict[str, float] = {}
        self.late = 0
        """Updates that came after their round closed (discarded)."""

    async def process(self) -> None:
        for r in range(1, self.rounds + 1):
            if self.method != "multi_fedavg":
                anchors, flops = await self.api.job(self.learner.represent, self.llm, self.public)
                await self.api.compute(flops)
                for d in self.devices:
                    self.ctx.send(self.node, d.node, "representations", {"s": anchors}, round=r)
            else:
                for d in self.devices:
                    self.ctx.send(self.node, d.node, "round_start", round=r)
            updates = await self._collect(r)
            if updates:
                await self._aggregate(updates, r)
            else:
                self.api.count("empty_round")
            self.advance(1)
        for d in self.devices:
            self.ctx.send(self.node, d.node, "stop")

    async def _collect(self, r: int) -> list[Message]:
        """Round ``r``'s updates, in device order: all of them, or those in by the deadline."""
        node = self.api
        until = None if self.deadline_s is None else node.now + self.deadline_s
        order = [d.node for d in self.devices]
        updates: dict[str, Message] = {}
        while len(updates) < len(self.devices):
            left = None if until is None else until - node.now
            message = await node.receive(kind_is("lora_update"), left)
            if message is None:
                break
            if message.meta["round"] == r:
                updates[message.src] = message
            else:
                self.late += 1
        return [updates[n] for n in order if n in updates]

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
        counts = [1 if self.method == "no_mma" else m.meta["modalities"] for m in updates]
        await self.api.job(self._merge, states, counts)
        if self.method != "no_se_ccl":
            flops = await self.api.job(
                self.learner.se_ccl, self.llm, self.slm, self.public, self.seed * 1000 + r
            )
            await self.api.compute(flops)
        self.metrics = await self.api.job(self.learner.evaluate, self.llm, self.public_test)
        self.ctx.record(self.node, self.metrics, REPORTED)
        shipped = Mlecs.lora(self.slm)
        for d in self.devices:
            self.ctx.send(self.node, d.node, "server_lora", shipped, round=r)

    def _merge(self, states: list[State], counts: list[int]) -> None:
        """MMA of the devices' LoRA into the SLM."""
        load_lora_state(self.slm.lm, self.learner.mma(states, counts))


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
        ctx, learner, device, seed = self.ctx, self.learner, self.device, self.seed
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
            if message.kind == "representations":
                anchors = message.payload["s"]
                flops = await node.job(learner.ccl, device.model, device.public, anchors, own - 1)
                flops += await node.job(learner.amt, device.model, device.private, own)
            else:  # Multi-FedAvg: plain local training
                flops = await node.job(learner.local, device.model, device.private, own)
            await node.compute(flops)
            device.metrics = await node.job(learner.evaluate, device.model, device.test)
            ctx.record(device.node, device.metrics, REPORTED)
            meta = {
                "round": r,
                "modalities": len(device.private.modalities),
                "samples": len(device.private),
            }
            shared = await node.job(shared_state, device.model, self.method)
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
            await node.job(load_shared, self.device.model, newest.payload)


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
            flops = await node.job(learner.local, device.model, device.private, seed + 2 * r + 1)
            await node.compute(flops)
            device.metrics = await node.job(learner.evaluate, device.model, device.test)
            ctx.record(device.node, device.metrics, REPORTED)
        device.rounds_done = r
        advance(1)
